//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criClient dials the node's CRI socket as kubelet does, with a send limit
// above the server's so that oversized requests reach the server.
func criClient(t *testing.T, n *node) (runtimeapi.RuntimeServiceClient, runtimeapi.ImageServiceClient) {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+n.sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20), grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return runtimeapi.NewRuntimeServiceClient(conn), runtimeapi.NewImageServiceClient(conn)
}

func wantCode(t *testing.T, what string, err error, code codes.Code, msgHas string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code {
		t.Errorf("%s: code %s (%v), want %s", what, st.Code(), err, code)
		return
	}
	if msgHas != "" && !strings.Contains(st.Message(), msgHas) {
		t.Errorf("%s: message %q does not say %q", what, st.Message(), msgHas)
	}
}

// TestBadInput sends kubelet-shaped requests with hostile or wrong fields
// over the real socket: each must get a clear gRPC error, and nothing may be
// written outside the log directory the request names.
func TestBadInput(t *testing.T) {
	n := startNode(t, "")
	rt, img := criClient(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := scratch(t, "badinput")
	logDir := filepath.Join(dir, "pods", "p1")
	outside := filepath.Join(dir, "outside")
	os.MkdirAll(outside, 0o755)

	podCfg := func(name string) *runtimeapi.PodSandboxConfig {
		return &runtimeapi.PodSandboxConfig{
			Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "e2e", Uid: name + "-uid"},
			LogDirectory: logDir,
			Annotations:  map[string]string{"corral.io/runtime": "native"},
			Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_NODE, Ipc: runtimeapi.NamespaceMode_NODE},
			}},
		}
	}
	ctrCfg := func(name, logPath string) *runtimeapi.ContainerConfig {
		return &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: name},
			Image:    &runtimeapi.ImageSpec{Image: hostImage},
			Command:  []string{"/bin/sh", "-c", "echo escaped; sleep 60"},
			LogPath:  logPath,
		}
	}

	// Unknown handler, by RuntimeClass and by annotation.
	_, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: podCfg("h1"), RuntimeHandler: "no-such-handler"})
	wantCode(t, "RunPodSandbox with an unknown handler", err, codes.InvalidArgument, "no-such-handler")
	pc := podCfg("h2")
	pc.Annotations["corral.io/runtime"] = "no-such-annotation-handler"
	_, err = rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pc})
	wantCode(t, "RunPodSandbox with an unknown corral.io/runtime", err, codes.InvalidArgument, "no-such-annotation-handler")
	_, err = img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: hostImage, RuntimeHandler: "no-such-handler"}})
	wantCode(t, "PullImage with an unknown handler", err, codes.InvalidArgument, "no-such-handler")

	// A log directory that is relative or climbs.
	for _, d := range []string{"relative/logs", dir + "/pods/../../escape"} {
		pc := podCfg("ld")
		pc.LogDirectory = d
		_, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pc})
		wantCode(t, "RunPodSandbox log_directory "+d, err, codes.InvalidArgument, "log_directory")
	}

	run, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: podCfg("p1")})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	podID := run.PodSandboxId
	t.Cleanup(func() {
		rt.StopPodSandbox(context.Background(), &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID})
		rt.RemovePodSandbox(context.Background(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID})
	})

	// log_path escaping the pod's log directory, relative or absolute.
	for _, lp := range []string{"../../outside/escape.log", "c/../../../outside/escape.log", filepath.Join(outside, "escape.log")} {
		_, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: ctrCfg("esc", lp), SandboxConfig: podCfg("p1")})
		wantCode(t, "CreateContainer log_path "+lp, err, codes.InvalidArgument, "log_path")
	}

	// Mounts: relative or climbing paths.
	for _, m := range []*runtimeapi.Mount{
		{ContainerPath: "relative/dir", HostPath: outside},
		{ContainerPath: dir + "/pods/../../../etc", HostPath: outside},
		{ContainerPath: outside, HostPath: dir + "/../../../etc"},
	} {
		c := ctrCfg("mnt", "mnt.log")
		c.Mounts = []*runtimeapi.Mount{m}
		_, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: c, SandboxConfig: podCfg("p1")})
		wantCode(t, "CreateContainer mount "+m.HostPath+" → "+m.ContainerPath, err, codes.InvalidArgument, "mount")
	}
	// A valid bind mount is made in the container's own mount namespace:
	// the container sees it, the host does not.
	c := ctrCfg("mnt", "mnt.log")
	c.Command = []string{"/bin/sh", "-c", "ls " + outside + "/hostname && sleep 60"}
	c.Mounts = []*runtimeapi.Mount{{ContainerPath: outside, HostPath: "/etc", Readonly: true}}
	cr, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: c, SandboxConfig: podCfg("p1")})
	if err != nil {
		t.Fatalf("CreateContainer with a valid mount: %v", err)
	}
	if _, err := rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		t.Fatalf("StartContainer with a valid mount: %v", err)
	}
	eventually(t, "the container sees its mount", 10*time.Second, func() error {
		data, _ := os.ReadFile(filepath.Join(logDir, "mnt.log"))
		if !strings.Contains(string(data), outside+"/hostname") {
			return fmt.Errorf("container log: %q", data)
		}
		return nil
	})
	if mounted(outside) {
		t.Errorf("the container's bind mount on %s is visible on the host", outside)
	}
	rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: cr.ContainerId, Timeout: 1})
	if _, err := rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		t.Errorf("RemoveContainer: %v", err)
	}

	// An image other than the host image on the native handler.
	c = ctrCfg("img", "img.log")
	c.Image.Image = "docker.io/library/busybox:latest"
	_, err = rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: c, SandboxConfig: podCfg("p1")})
	wantCode(t, "CreateContainer with another image", err, codes.InvalidArgument, hostImage)

	// Unknown IDs: status is NotFound, stop and remove are idempotent.
	const ghost = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	_, err = rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ghost})
	wantCode(t, "ContainerStatus of an unknown ID", err, codes.NotFound, ghost)
	_, err = rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: ghost})
	wantCode(t, "PodSandboxStatus of an unknown ID", err, codes.NotFound, ghost)
	_, err = rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: ghost, Config: ctrCfg("g", "g.log"), SandboxConfig: podCfg("p1")})
	wantCode(t, "CreateContainer in an unknown pod", err, codes.NotFound, ghost)
	_, err = rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: ghost})
	wantCode(t, "StartContainer of an unknown ID", err, codes.NotFound, ghost)
	_, err = rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: ghost, Cmd: []string{"true"}, Timeout: 5})
	wantCode(t, "ExecSync in an unknown container", err, codes.NotFound, ghost)
	_, err = rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: ghost})
	wantCode(t, "StopContainer of an unknown ID", err, codes.OK, "")
	_, err = rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: ghost})
	wantCode(t, "RemoveContainer of an unknown ID", err, codes.OK, "")
	_, err = rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: ghost})
	wantCode(t, "StopPodSandbox of an unknown ID", err, codes.OK, "")
	_, err = rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: ghost})
	wantCode(t, "RemovePodSandbox of an unknown ID", err, codes.OK, "")

	// Huge requests: above the message limit, and many small entries.
	big := podCfg("big")
	big.Labels = map[string]string{"big": strings.Repeat("x", 20<<20)}
	_, err = rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: big})
	wantCode(t, "RunPodSandbox of 20 MiB", err, codes.ResourceExhausted, "")
	many := podCfg("many")
	many.Annotations = map[string]string{}
	for i := 0; i < 5000; i++ {
		many.Annotations[strings.Repeat("k", 8)+string(rune('a'+i%26))+strings.Repeat("z", i/26)] = "v"
	}
	_, err = rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: many})
	wantCode(t, "RunPodSandbox with 5000 annotations", err, codes.InvalidArgument, "annotations")
	long := ctrCfg("long", "long.log")
	for i := 0; i < 10000; i++ {
		long.Envs = append(long.Envs, &runtimeapi.KeyValue{Key: "K", Value: []byte("v")})
	}
	_, err = rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: long, SandboxConfig: podCfg("p1")})
	wantCode(t, "CreateContainer with 10000 envs", err, codes.InvalidArgument, "envs")
	_, err = rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: ghost, Cmd: make([]string, 10000)})
	if st, _ := status.FromError(err); st.Code() != codes.InvalidArgument && st.Code() != codes.NotFound {
		t.Errorf("ExecSync with 10000 args: %v, want InvalidArgument or NotFound", err)
	}

	// (filepath.Join would clean the ".." away; the paths above are built
	// by hand on purpose.)

	// The server still works, and nothing was written outside logDir.
	if _, err := rt.Version(ctx, &runtimeapi.VersionRequest{}); err != nil {
		t.Errorf("Version after bad input: %v", err)
	}
	ls, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil || len(ls.Containers) != 0 {
		t.Errorf("containers after refused creates: %v, %v", ls, err)
	}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && !strings.HasPrefix(p, logDir+"/") {
			t.Errorf("file written outside the pod's log directory: %s", p)
		}
		return nil
	})
	for _, p := range []string{filepath.Join(filepath.Dir(dir), "escape"), "relative"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s was created", p)
		}
	}
}

// mounted reports whether dir is a mount point in our mount namespace.
func mounted(dir string) bool {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}
