package cri

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// eventIDWait is how long an event may wait for its ID mapping: a backend
// announces a container before CreateContainer has recorded its Corral ID.
const eventIDWait = 2 * time.Second

// GetContainerEvents fans in the events of every backend that has them,
// with Corral IDs, until the client goes away.
func (s *Server) GetContainerEvents(req *runtimeapi.GetEventsRequest, stream grpc.ServerStreamingServer[runtimeapi.ContainerEventResponse]) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	out := make(chan *runtimeapi.ContainerEventResponse, 64)
	n := 0
	for _, h := range s.handlers {
		ev, ok := s.backends[h].(runtimes.Events)
		if !ok {
			continue
		}
		n++
		go s.relayEvents(ctx, h, ev, out)
	}
	if n == 0 {
		return unsupported(s.def, "GetContainerEvents")
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-out:
			if err := stream.Send(e); err != nil {
				return err
			}
		}
	}
}

// relayEvents translates one backend's events, in order.
func (s *Server) relayEvents(ctx context.Context, h string, ev runtimes.Events, out chan<- *runtimeapi.ContainerEventResponse) {
	in := make(chan *runtimeapi.ContainerEventResponse, 64)
	go func() {
		if err := ev.ContainerEvents(ctx, in); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Warn("cri: container events ended", "handler", h, "err", err)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-in:
			if !s.translateEvent(ctx, h, e) {
				continue
			}
			select {
			case out <- e:
			case <-ctx.Done():
				return
			}
		}
	}
}

func (s *Server) translateEvent(ctx context.Context, h string, e *runtimeapi.ContainerEventResponse) bool {
	deadline := time.Now().Add(eventIDWait)
	for !s.translateIDs(h, &e.ContainerId, nil) {
		if e.ContainerEventType == runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT || time.Now().After(deadline) {
			return false // deleted: its mapping may already be gone
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	if p := e.GetPodSandboxStatus(); p != nil {
		if !s.translateIDs(h, nil, &p.Id) {
			e.PodSandboxStatus = nil
		}
	}
	e.ContainersStatuses = s.translateStatuses(h, e.GetContainersStatuses())
	return true
}
