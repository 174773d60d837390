package remote

import (
	"context"
	"errors"
	"io"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerEvents relays the remote's GetContainerEvents stream until ctx
// is done. The stream ends whenever the remote restarts; it is opened again
// after a short delay, so subscribers (kubelet's evented PLEG, Corral's own
// reconciliation) see containers that exit or vanish behind Corral's back
// as soon as the remote is back. Events lost while it was down are the
// remote's to replay: kubelet relists anyway after a gap.
func (b *Backend) ContainerEvents(ctx context.Context, ch chan<- *runtimeapi.ContainerEventResponse) error {
	for {
		err := b.relay(ctx, ch)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		b.log.Debug("remote: container events stream ended, reconnecting", "backend", b.kind, "address", b.path, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(b.retry):
		}
	}
}

func (b *Backend) relay(ctx context.Context, ch chan<- *runtimeapi.ContainerEventResponse) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := b.rt.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		return b.wrap("container events", "", err)
	}
	for {
		e, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return err
		}
		if err != nil {
			return b.wrap("container events", "", err)
		}
		if b.handler != "" && e.GetPodSandboxStatus() != nil {
			e.PodSandboxStatus.RuntimeHandler = b.handler
		}
		select {
		case ch <- e:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
