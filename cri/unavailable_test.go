package cri

import (
	"testing"

	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestUnavailableHandlerStaysListed(t *testing.T) {
	e := newTestService(t, withBackend("runc", Unavailable("containerd", "not built in")))
	c := e.conditions()[ConditionHandlerPrefix+"runc"]
	if c == nil || c.Status || c.Reason != "BackendUnavailable" || c.Message != "not built in" {
		t.Fatalf("runc condition = %v", c)
	}
	_, err := e.rt.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: podConfig("a", nil), RuntimeHandler: "runc"})
	wantCode(t, err, codes.Unavailable, "containerd", "not built in")
	e.runPod("b", "", nil)
	if l, err := e.rt.ListPodSandbox(ctx(t), &runtimeapi.ListPodSandboxRequest{}); err != nil || len(l.Items) != 1 {
		t.Fatalf("list with an unavailable handler = %v, %v", l, err)
	}
}
