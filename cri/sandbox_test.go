package cri

import (
	"os"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes/fake"
)

func TestRouting(t *testing.T) {
	e := newTestService(t)
	for _, tc := range []struct {
		name, handler string
		ann           map[string]string
		want          *fake.Backend
	}{
		{"handler", "vm", nil, e.vm},
		{"annotation", "", map[string]string{AnnotationRuntime: "vm"}, e.vm},
		{"handler wins over annotation", "native", map[string]string{AnnotationRuntime: "vm"}, e.native},
		{"default", "", nil, e.native},
		{"default with other annotations", "", map[string]string{"x": "vm"}, e.native},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(tc.want.Calls())
			id := e.runPod(strings.ReplaceAll(tc.name, " ", "-"), tc.handler, tc.ann)
			if !isCorralID(id) {
				t.Fatalf("pod ID %q is not 64 hex characters", id)
			}
			calls := tc.want.Calls()[before:]
			if len(calls) != 1 || calls[0] != "RunPodSandbox "+id {
				t.Fatalf("calls on the expected backend: %q", calls)
			}
			st, err := e.rt.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
			if err != nil {
				t.Fatal(err)
			}
			if st.Status.Id != id || st.Status.Metadata.GetName() == "" {
				t.Fatalf("status id %q (want %q), metadata %v", st.Status.Id, id, st.Status.Metadata)
			}
		})
	}
}

func TestUnknownHandler(t *testing.T) {
	e := newTestService(t)
	for _, tc := range []struct {
		name, handler string
		ann           map[string]string
	}{
		{"handler", "nope", nil},
		{"annotation", "", map[string]string{AnnotationRuntime: "nope"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.rt.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: podConfig("x", tc.ann), RuntimeHandler: tc.handler})
			wantCode(t, err, codes.InvalidArgument, `"nope"`, "basic, native, vm")
		})
	}
}

func TestIDsSurviveRestart(t *testing.T) {
	e := newTestService(t)
	pod := e.runPod("a", "vm", nil)
	ctr := e.createContainer(pod, "c", e.vm)
	e.restart()
	if _, err := e.rt.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod}); err != nil {
		t.Fatalf("pod status after restart: %v", err)
	}
	st, err := e.rt.ContainerStatus(ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: ctr})
	if err != nil || st.Status.Id != ctr {
		t.Fatalf("container status after restart: %v, %v", st, err)
	}
	l, err := e.rt.ListContainers(ctx(t), &runtimeapi.ListContainersRequest{})
	if err != nil || len(l.Containers) != 1 || l.Containers[0].Id != ctr || l.Containers[0].PodSandboxId != pod {
		t.Fatalf("list after restart: %v, %v", l, err)
	}
	// Removing the pod forgets its containers, and that survives too.
	if _, err := e.rt.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	e.restart()
	_, err = e.rt.ContainerStatus(ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: ctr})
	wantCode(t, err, codes.NotFound)
}

func TestStopRemoveIdempotent(t *testing.T) {
	e := newTestService(t)
	pod := e.runPod("a", "", nil)
	ctr := e.createContainer(pod, "c", e.native)
	unknown := strings.Repeat("ab", 32)
	for i := range 2 {
		for _, id := range []string{ctr, unknown} {
			if _, err := e.rt.StopContainer(ctx(t), &runtimeapi.StopContainerRequest{ContainerId: id}); err != nil {
				t.Fatalf("round %d: StopContainer %s: %v", i, id, err)
			}
			if _, err := e.rt.RemoveContainer(ctx(t), &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
				t.Fatalf("round %d: RemoveContainer %s: %v", i, id, err)
			}
		}
		for _, id := range []string{pod, unknown} {
			if _, err := e.rt.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
				t.Fatalf("round %d: StopPodSandbox %s: %v", i, id, err)
			}
			if _, err := e.rt.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
				t.Fatalf("round %d: RemovePodSandbox %s: %v", i, id, err)
			}
		}
	}
	// A pod the backend lost (e.g. after a reboot) is still removable.
	pod = e.runPod("b", "", nil)
	e.native.Fail("RemovePodSandbox", nil)
	bid := e.native.BackendID(pod)
	if err := e.native.RemovePodSandbox(ctx(t), bid); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatalf("remove of a pod the backend lost: %v", err)
	}
	_, err := e.rt.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod})
	wantCode(t, err, codes.NotFound)
}

func TestStatusOfUnknownIsNotFound(t *testing.T) {
	e := newTestService(t)
	unknown := strings.Repeat("cd", 32)
	_, err := e.rt.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: unknown})
	wantCode(t, err, codes.NotFound, unknown)
	_, err = e.rt.ContainerStatus(ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: unknown})
	wantCode(t, err, codes.NotFound, unknown)
	_, err = e.rt.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{ContainerId: unknown})
	wantCode(t, err, codes.NotFound)
	_, err = e.rt.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: unknown,
		Config:        &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "c"}, Image: &runtimeapi.ImageSpec{Image: "i"}},
		SandboxConfig: podConfig("p", nil)})
	wantCode(t, err, codes.NotFound)
}

func TestShortIDPrefix(t *testing.T) {
	e := newTestService(t)
	pod := e.runPod("a", "", nil)
	st, err := e.rt.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod[:12]})
	if err != nil || st.Status.Id != pod {
		t.Fatalf("status by prefix: %v, %v", st, err)
	}
}

func TestListMergeWithBackendDown(t *testing.T) {
	e := newTestService(t)
	pa := e.runPod("a", "native", nil)
	pb := e.runPod("b", "vm", nil)
	ca := e.createContainer(pa, "ca", e.native)
	cb := e.createContainer(pb, "cb", e.vm)

	pods := func(f *runtimeapi.PodSandboxFilter) []string {
		t.Helper()
		r, err := e.rt.ListPodSandbox(ctx(t), &runtimeapi.ListPodSandboxRequest{Filter: f})
		if err != nil {
			t.Fatalf("ListPodSandbox: %v", err)
		}
		var ids []string
		for _, p := range r.Items {
			ids = append(ids, p.Id)
		}
		slices.Sort(ids)
		return ids
	}
	ctrs := func(f *runtimeapi.ContainerFilter) []string {
		t.Helper()
		r, err := e.rt.ListContainers(ctx(t), &runtimeapi.ListContainersRequest{Filter: f})
		if err != nil {
			t.Fatalf("ListContainers: %v", err)
		}
		var ids []string
		for _, c := range r.Containers {
			ids = append(ids, c.Id+"@"+c.PodSandboxId)
		}
		slices.Sort(ids)
		return ids
	}
	sorted := func(s ...string) []string { slices.Sort(s); return s }

	if got, want := pods(nil), sorted(pa, pb); !slices.Equal(got, want) {
		t.Fatalf("pods = %v, want %v", got, want)
	}
	if got, want := pods(&runtimeapi.PodSandboxFilter{Id: pb}), []string{pb}; !slices.Equal(got, want) {
		t.Fatalf("pods by id = %v, want %v", got, want)
	}
	if got := pods(&runtimeapi.PodSandboxFilter{Id: strings.Repeat("0", 64)}); len(got) != 0 {
		t.Fatalf("pods by unknown id = %v", got)
	}
	if got, want := ctrs(nil), sorted(ca+"@"+pa, cb+"@"+pb); !slices.Equal(got, want) {
		t.Fatalf("containers = %v, want %v", got, want)
	}
	if got, want := ctrs(&runtimeapi.ContainerFilter{PodSandboxId: pb}), []string{cb + "@" + pb}; !slices.Equal(got, want) {
		t.Fatalf("containers by pod = %v, want %v", got, want)
	}
	if got := ctrs(&runtimeapi.ContainerFilter{Id: ca, PodSandboxId: pb}); len(got) != 0 {
		t.Fatalf("container of another pod = %v", got)
	}

	e.vm.SetDown("vm host unreachable")
	if got, want := pods(nil), []string{pa}; !slices.Equal(got, want) {
		t.Fatalf("pods with vm down = %v, want %v", got, want)
	}
	if got, want := ctrs(nil), []string{ca + "@" + pa}; !slices.Equal(got, want) {
		t.Fatalf("containers with vm down = %v, want %v", got, want)
	}
	conds := e.conditions()
	if c := conds[ConditionHandlerPrefix+"vm"]; c == nil || c.Status || c.Reason != "FakeDown" || c.Message != "vm host unreachable" {
		t.Fatalf("vm condition = %v", c)
	}
	if c := conds[runtimeapi.RuntimeReady]; c == nil || !c.Status {
		t.Fatalf("RuntimeReady with a non-default backend down = %v", c)
	}
	e.native.SetDown("boom")
	if c := e.conditions()[runtimeapi.RuntimeReady]; c == nil || c.Status || c.Message != "boom" {
		t.Fatalf("RuntimeReady with the default backend down = %v", c)
	}
}

func (e *env) conditions() map[string]*runtimeapi.RuntimeCondition {
	e.t.Helper()
	r, err := e.rt.Status(ctx(e.t), &runtimeapi.StatusRequest{})
	if err != nil {
		e.t.Fatal(err)
	}
	m := map[string]*runtimeapi.RuntimeCondition{}
	for _, c := range r.Status.Conditions {
		m[c.Type] = c
	}
	return m
}

func TestVersionStatusRuntimeConfig(t *testing.T) {
	e := newTestService(t, withDefault("basic"))
	v, err := e.rt.Version(ctx(t), &runtimeapi.VersionRequest{})
	if err != nil || v.Version == "" || v.RuntimeName != "corral" || v.RuntimeVersion == "" || v.RuntimeApiVersion != "v1" {
		t.Fatalf("Version = %v, %v", v, err)
	}
	rc, err := e.rt.RuntimeConfig(ctx(t), &runtimeapi.RuntimeConfigRequest{})
	if err != nil || rc.GetLinux().GetCgroupDriver() != runtimeapi.CgroupDriver_CGROUPFS {
		t.Fatalf("RuntimeConfig = %v, %v", rc, err)
	}
	st, err := e.rt.Status(ctx(t), &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range st.RuntimeHandlers {
		if h.Features == nil || h.Features.RecursiveReadOnlyMounts || h.Features.UserNamespaces {
			t.Errorf("handler %q features = %v", h.Name, h.Features)
		}
		names = append(names, h.Name)
	}
	if want := []string{"", "basic", "native", "vm"}; !slices.Equal(names, want) {
		t.Fatalf("runtime_handlers = %q, want %q", names, want)
	}
	// The default backend (basic) has no network readiness: the CNI
	// config directory decides.
	if c := e.conditions()[runtimeapi.NetworkReady]; c == nil || c.Status || c.Reason == "" {
		t.Fatalf("NetworkReady without CNI config = %v", c)
	}
	if err := os.MkdirAll(e.cniDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.cniDir+"/10-test.conflist", []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c := e.conditions()[runtimeapi.NetworkReady]; c == nil || !c.Status {
		t.Fatalf("NetworkReady with CNI config = %v", c)
	}
}

func TestSocketMode(t *testing.T) {
	e := newTestService(t)
	fi, err := os.Stat(SocketPath(e.dir))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket mode = %v", fi.Mode())
	}
}
