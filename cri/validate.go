package cri

import (
	"fmt"
	"path/filepath"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// Limits on request contents, far above what kubelet sends, so that a
// hostile or broken client cannot make a backend store or spawn without
// bound. MaxMsgSize bounds the total.
const (
	maxMapEntries = 1024 // labels, annotations, sysctls
	maxListItems  = 4096 // command+args, env, mounts, devices
)

func invalid(format string, a ...any) error {
	return fmt.Errorf(format+": %w", append(a, runtimes.ErrInvalid)...)
}

func checkMaps(what string, maps map[string]map[string]string) error {
	for field, m := range maps {
		if len(m) > maxMapEntries {
			return invalid("%s.%s: %d entries (at most %d)", what, field, len(m), maxMapEntries)
		}
	}
	return nil
}

// escapes reports whether p climbs out of its base directory.
func escapes(p string) bool {
	for _, el := range strings.Split(filepath.ToSlash(p), "/") {
		if el == ".." {
			return true
		}
	}
	return false
}

func checkPodConfig(field string, c *runtimeapi.PodSandboxConfig) error {
	if c == nil {
		return invalid("%s is required", field)
	}
	md := c.GetMetadata()
	if md == nil || md.GetName() == "" {
		return invalid("%s.metadata with a name is required", field)
	}
	if d := c.GetLogDirectory(); d != "" && (!filepath.IsAbs(d) || escapes(d)) {
		return invalid("%s.log_directory %q must be an absolute path without \"..\"", field, d)
	}
	return checkMaps(field, map[string]map[string]string{
		"labels": c.GetLabels(), "annotations": c.GetAnnotations(), "linux.sysctls": c.GetLinux().GetSysctls(),
	})
}

func checkContainerConfig(c *runtimeapi.ContainerConfig) error {
	if c == nil {
		return invalid("config is required")
	}
	if c.GetMetadata() == nil || c.GetMetadata().GetName() == "" {
		return invalid("config.metadata with a name is required")
	}
	if c.GetImage() == nil {
		return invalid("config.image is required")
	}
	if p := c.GetLogPath(); p != "" && (filepath.IsAbs(p) || escapes(p)) {
		return invalid("config.log_path %q must be relative to the pod's log_directory, without \"..\"", p)
	}
	for _, l := range []struct {
		field string
		n     int
	}{
		{"command+args", len(c.GetCommand()) + len(c.GetArgs())}, {"envs", len(c.GetEnvs())},
		{"mounts", len(c.GetMounts())}, {"devices", len(c.GetDevices())},
	} {
		if l.n > maxListItems {
			return invalid("config.%s: %d items (at most %d)", l.field, l.n, maxListItems)
		}
	}
	return checkMaps("config", map[string]map[string]string{
		"labels": c.GetLabels(), "annotations": c.GetAnnotations(),
	})
}

func checkCmd(cmd []string) error {
	if len(cmd) == 0 {
		return invalid("cmd is empty")
	}
	if len(cmd) > maxListItems {
		return invalid("cmd: %d items (at most %d)", len(cmd), maxListItems)
	}
	return nil
}
