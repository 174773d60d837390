package remote

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RunPodSandbox creates the pod on the remote; id (Corral's) is not sent:
// the remote makes its own, which Corral maps.
func (b *Backend) RunPodSandbox(ctx context.Context, id string, cfg *runtimeapi.PodSandboxConfig, handler string) (string, error) {
	resp, err := b.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: b.remoteHandler(ctx, handler)})
	if err != nil {
		return "", b.wrap("run pod sandbox", cfg.GetMetadata().GetNamespace()+"/"+cfg.GetMetadata().GetName(), err)
	}
	return resp.GetPodSandboxId(), nil
}

func (b *Backend) StopPodSandbox(ctx context.Context, id string) error {
	_, err := b.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
	return b.wrap("stop pod sandbox", id, err)
}

func (b *Backend) RemovePodSandbox(ctx context.Context, id string) error {
	_, err := b.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
	return b.wrap("remove pod sandbox", id, err)
}

func (b *Backend) PodSandboxStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.PodSandboxStatusResponse, error) {
	resp, err := b.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: verbose})
	if err != nil {
		return nil, b.wrap("pod sandbox status", id, err)
	}
	if st := resp.GetStatus(); st != nil && b.handler != "" {
		st.RuntimeHandler = b.handler
	}
	return resp, nil
}

// ListPodSandbox lists every pod of the remote; the CRI server keeps those
// Corral created (through this handler) and drops the rest.
func (b *Backend) ListPodSandbox(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	resp, err := b.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: filter})
	if err != nil {
		return nil, b.wrap("list pod sandboxes", "", err)
	}
	if b.handler != "" {
		for _, p := range resp.GetItems() {
			p.RuntimeHandler = b.handler
		}
	}
	return resp.GetItems(), nil
}

func (b *Backend) PodSandboxStats(ctx context.Context, id string) (*runtimeapi.PodSandboxStats, error) {
	resp, err := b.rt.PodSandboxStats(ctx, &runtimeapi.PodSandboxStatsRequest{PodSandboxId: id})
	if err != nil {
		return nil, b.wrap("pod sandbox stats", id, err)
	}
	return resp.GetStats(), nil
}

func (b *Backend) ListPodSandboxStats(ctx context.Context, filter *runtimeapi.PodSandboxStatsFilter) ([]*runtimeapi.PodSandboxStats, error) {
	resp, err := b.rt.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{Filter: filter})
	if err != nil {
		return nil, b.wrap("list pod sandbox stats", "", err)
	}
	return resp.GetStats(), nil
}

// PortForward returns the remote's streaming URL.
func (b *Backend) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	resp, err := b.rt.PortForward(ctx, req)
	return resp, b.wrap("port forward", req.GetPodSandboxId(), err)
}
