package cri

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

func TestErrorMapping(t *testing.T) {
	e := newTestService(t)
	pod := e.runPod("a", "", nil)
	ctr := e.createContainer(pod, "c", e.native)
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{fmt.Errorf("x: %w", runtimes.ErrNotFound), codes.NotFound},
		{fmt.Errorf("x: %w", runtimes.ErrInvalid), codes.InvalidArgument},
		{fmt.Errorf("x: %w", runtimes.ErrExists), codes.AlreadyExists},
		{fmt.Errorf("x: %w", runtimes.ErrUnavailable), codes.Unavailable},
		{fmt.Errorf("x: %w", runtimes.ErrUnsupported), codes.Unimplemented},
		{fmt.Errorf("x: %w", runtimes.ErrPrecondition), codes.FailedPrecondition},
		{errors.New("disk on fire"), codes.Internal},
	} {
		t.Run(tc.want.String(), func(t *testing.T) {
			e.native.Fail("StartContainer", tc.err)
			defer e.native.Fail("StartContainer", nil)
			_, err := e.rt.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{ContainerId: ctr})
			wantCode(t, err, tc.want, ctr, tc.err.Error())
		})
	}
}

func TestUnimplementedNamesHandler(t *testing.T) {
	e := newTestService(t)
	pod := e.runPod("a", "basic", nil)
	ctr := e.createContainer(pod, "c", e.basic)
	for name, call := range map[string]func() error{
		"ExecSync": func() error {
			_, err := e.rt.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: ctr, Cmd: []string{"true"}})
			return err
		},
		"Exec": func() error {
			_, err := e.rt.Exec(ctx(t), &runtimeapi.ExecRequest{ContainerId: ctr, Cmd: []string{"sh"}, Stdout: true})
			return err
		},
		"PortForward": func() error {
			_, err := e.rt.PortForward(ctx(t), &runtimeapi.PortForwardRequest{PodSandboxId: pod, Port: []int32{80}})
			return err
		},
		"ContainerStats": func() error {
			_, err := e.rt.ContainerStats(ctx(t), &runtimeapi.ContainerStatsRequest{ContainerId: ctr})
			return err
		},
		"UpdateContainerResources": func() error {
			_, err := e.rt.UpdateContainerResources(ctx(t), &runtimeapi.UpdateContainerResourcesRequest{ContainerId: ctr})
			return err
		},
		"ReopenContainerLog": func() error {
			_, err := e.rt.ReopenContainerLog(ctx(t), &runtimeapi.ReopenContainerLogRequest{ContainerId: ctr})
			return err
		},
	} {
		t.Run(name, func(t *testing.T) { wantCode(t, call(), codes.Unimplemented, `"basic"`, name) })
	}
	// Lists skip backends without stats instead of failing.
	if _, err := e.rt.ListContainerStats(ctx(t), &runtimeapi.ListContainerStatsRequest{}); err != nil {
		t.Fatalf("ListContainerStats: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	e := newTestService(t)
	pod := e.runPod("a", "", nil)
	ctrCfg := func(mod func(*runtimeapi.ContainerConfig)) *runtimeapi.CreateContainerRequest {
		c := &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "c"},
			Image: &runtimeapi.ImageSpec{Image: e.native.Image()}, LogPath: "c/0.log"}
		mod(c)
		return &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: c, SandboxConfig: podConfig("a", nil)}
	}
	runPod := func(mod func(*runtimeapi.PodSandboxConfig)) *runtimeapi.RunPodSandboxRequest {
		c := podConfig("x", nil)
		mod(c)
		return &runtimeapi.RunPodSandboxRequest{Config: c}
	}
	many := map[string]string{}
	for i := range maxMapEntries + 1 {
		many[fmt.Sprint(i)] = ""
	}
	for _, tc := range []struct {
		name string
		call func() error
		code codes.Code
		msg  string
	}{
		{"nil pod config", func() error { _, err := e.rt.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{}); return err },
			codes.InvalidArgument, "config is required"},
		{"nil pod metadata", func() error {
			_, err := e.rt.RunPodSandbox(ctx(t), runPod(func(c *runtimeapi.PodSandboxConfig) { c.Metadata = nil }))
			return err
		}, codes.InvalidArgument, "config.metadata"},
		{"log_directory with ..", func() error {
			_, err := e.rt.RunPodSandbox(ctx(t), runPod(func(c *runtimeapi.PodSandboxConfig) { c.LogDirectory = "/var/log/pods/../../etc" }))
			return err
		}, codes.InvalidArgument, "log_directory"},
		{"relative log_directory", func() error {
			_, err := e.rt.RunPodSandbox(ctx(t), runPod(func(c *runtimeapi.PodSandboxConfig) { c.LogDirectory = "logs" }))
			return err
		}, codes.InvalidArgument, "log_directory"},
		{"too many annotations", func() error {
			_, err := e.rt.RunPodSandbox(ctx(t), runPod(func(c *runtimeapi.PodSandboxConfig) { c.Annotations = many }))
			return err
		}, codes.InvalidArgument, "annotations"},
		{"huge request", func() error {
			_, err := e.rt.RunPodSandbox(ctx(t), runPod(func(c *runtimeapi.PodSandboxConfig) {
				c.Labels = map[string]string{"big": strings.Repeat("x", MaxMsgSize)}
			}))
			return err
		}, codes.ResourceExhausted, ""},
		{"nil container config", func() error {
			_, err := e.rt.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: podConfig("a", nil)})
			return err
		}, codes.InvalidArgument, "config is required"},
		{"nil sandbox config", func() error {
			r := ctrCfg(func(*runtimeapi.ContainerConfig) {})
			r.SandboxConfig = nil
			_, err := e.rt.CreateContainer(ctx(t), r)
			return err
		}, codes.InvalidArgument, "sandbox_config"},
		{"nil container metadata", func() error {
			_, err := e.rt.CreateContainer(ctx(t), ctrCfg(func(c *runtimeapi.ContainerConfig) { c.Metadata = nil }))
			return err
		}, codes.InvalidArgument, "config.metadata"},
		{"nil image", func() error {
			_, err := e.rt.CreateContainer(ctx(t), ctrCfg(func(c *runtimeapi.ContainerConfig) { c.Image = nil }))
			return err
		}, codes.InvalidArgument, "config.image"},
		{"absolute log_path", func() error {
			_, err := e.rt.CreateContainer(ctx(t), ctrCfg(func(c *runtimeapi.ContainerConfig) { c.LogPath = "/etc/passwd" }))
			return err
		}, codes.InvalidArgument, "log_path"},
		{"log_path with ..", func() error {
			_, err := e.rt.CreateContainer(ctx(t), ctrCfg(func(c *runtimeapi.ContainerConfig) { c.LogPath = "c/../../x.log" }))
			return err
		}, codes.InvalidArgument, "log_path"},
		{"too many args", func() error {
			_, err := e.rt.CreateContainer(ctx(t), ctrCfg(func(c *runtimeapi.ContainerConfig) { c.Args = make([]string, maxListItems+1) }))
			return err
		}, codes.InvalidArgument, "command+args"},
		{"empty exec cmd", func() error {
			_, err := e.rt.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: "x"})
			return err
		}, codes.InvalidArgument, "cmd"},
		{"empty container ID", func() error {
			_, err := e.rt.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{})
			return err
		}, codes.InvalidArgument, "container ID is empty"},
		{"image pull without image", func() error {
			_, err := e.img.PullImage(ctx(t), &runtimeapi.PullImageRequest{})
			return err
		}, codes.InvalidArgument, "image.image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.native.Calls())
			wantCode(t, tc.call(), tc.code, tc.msg)
			if calls := e.native.Calls()[before:]; len(calls) != 0 {
				t.Fatalf("bad input reached the backend: %q", calls)
			}
		})
	}
}

func TestRollbackWhenRecordFails(t *testing.T) {
	// The backend's pod is removed again when Corral cannot record its ID
	// (here: the state DB is closed).
	e := newTestService(t)
	e.db.Close()
	_, err := e.rt.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: podConfig("a", nil)})
	wantCode(t, err, codes.Internal)
	calls := e.native.Calls()
	if len(calls) != 3 || !strings.HasPrefix(calls[2], "RemovePodSandbox ") {
		t.Fatalf("calls = %q, want run, stop, remove", calls)
	}
}
