package native

import (
	"os"
	"path/filepath"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/agent/proc"
	"corral.io/corral/agent/proc/seccomp"
)

// seccompFilter compiles the container's seccomp profile, for its main
// process and every exec: none when unconfined (kubelet's default, a nil
// profile) or privileged, the built-in RuntimeDefault, or a Localhost
// profile file read now (as containerd does at create). The deprecated
// seccomp_profile_path is honoured when the profile field is unset.
func seccompFilter(sc *runtimeapi.LinuxContainerSecurityContext, caps *proc.Caps) (proc.Filter, error) {
	if sc.GetPrivileged() {
		return nil, nil
	}
	var p *seccomp.Profile
	sp := sc.GetSeccomp()
	switch {
	case sp == nil:
		switch path := sc.GetSeccompProfilePath(); {
		case path == "" || path == "unconfined":
			return nil, nil
		case path == "runtime/default" || path == "docker/default":
			p = seccomp.RuntimeDefault()
		case strings.HasPrefix(path, "localhost/"):
			sp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: strings.TrimPrefix(path, "localhost/")}
		default:
			return nil, invalid("seccomp_profile_path %q: want unconfined, runtime/default or localhost/<path>", path)
		}
	case sp.GetProfileType() == runtimeapi.SecurityProfile_Unconfined:
		return nil, nil
	case sp.GetProfileType() == runtimeapi.SecurityProfile_RuntimeDefault:
		p = seccomp.RuntimeDefault()
	}
	if p == nil { // Localhost
		ref := sp.GetLocalhostRef()
		if !filepath.IsAbs(ref) {
			return nil, invalid("seccomp localhost profile %q: the path must be absolute", ref)
		}
		data, err := os.ReadFile(ref)
		if err != nil {
			return nil, invalid("seccomp localhost profile: %v", err)
		}
		if p, err = seccomp.Parse(data); err != nil {
			return nil, invalid("%s: %v", ref, err)
		}
	}
	has := func(name string) bool {
		bit, ok := capBit(name)
		return ok && caps != nil && caps.Bounding&bit != 0
	}
	f, err := seccomp.Compile(p, has)
	if err != nil {
		return nil, invalid("%v", err)
	}
	return f, nil
}
