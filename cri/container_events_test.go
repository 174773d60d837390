package cri

import (
	"context"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestContainerEvents(t *testing.T) {
	e := newTestService(t)
	pod := e.runPod("a", "vm", nil)
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := e.rt.GetContainerEvents(c, &runtimeapi.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// The subscription is live once the fake has recorded it.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n := 0
		for _, call := range e.vm.Calls() {
			if call == "ContainerEvents " {
				n++
			}
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no subscription reached the backend")
		}
	}
	ctr := e.createContainer(pod, "c", e.vm)
	if _, err := e.rt.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{ContainerId: ctr}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []runtimeapi.ContainerEventType{
		runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT,
	} {
		ev, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if ev.ContainerEventType != want || ev.ContainerId != ctr || ev.PodSandboxStatus.GetId() != pod ||
			len(ev.ContainersStatuses) != 1 || ev.ContainersStatuses[0].Id != ctr {
			t.Fatalf("event %v, want %s for %s in %s", ev, want, ctr, pod)
		}
	}
}
