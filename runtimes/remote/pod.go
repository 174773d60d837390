package remote

import (
	"context"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RunPodSandbox creates the pod on the remote; id (Corral's) is not sent:
// the remote makes its own, which Corral maps.
func (b *Backend) RunPodSandbox(ctx context.Context, id string, cfg *runtimeapi.PodSandboxConfig, handler string) (string, error) {
	t0 := time.Now()
	resp, err := b.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: b.remoteHandler(ctx, handler)})
	if err != nil {
		b.removeFailedAttempt(ctx, cfg.GetMetadata(), t0)
		return "", b.wrap("run pod sandbox", cfg.GetMetadata().GetNamespace()+"/"+cfg.GetMetadata().GetName(), err)
	}
	return resp.GetPodSandboxId(), nil
}

// leftoverTimeout bounds the clean-up after a failed RunPodSandbox, which
// runs even when the caller gave up.
const leftoverTimeout = 30 * time.Second

// removeFailedAttempt removes what a failed RunPodSandbox left on the
// remote. containerd 2.4 keeps a failed sandbox (state unknown, its name
// still reserved) when its own rollback fails, e.g. after an NRI plugin
// refused the pod: the retry kubelet makes then fails with "name ... is
// reserved for <the failed attempt>", and since Corral never mapped the
// failed attempt, nothing would ever remove it. critest's "NRI
// RunPodSandbox … clean up when the NRI hook errors, then allow retry" hit
// it through Corral. A leftover is a sandbox with the same metadata (name,
// namespace, uid, attempt) that is not ready and was created by this call
// (created at or after t0, or with no creation time): an older sandbox of
// the same attempt may be one Corral maps, and is left alone.
func (b *Backend) removeFailedAttempt(ctx context.Context, md *runtimeapi.PodSandboxMetadata, t0 time.Time) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leftoverTimeout)
	defer cancel()
	resp, err := b.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return // the remote is gone or failing: nothing to clean now
	}
	for _, p := range resp.GetItems() {
		m := p.GetMetadata()
		if m.GetName() != md.GetName() || m.GetNamespace() != md.GetNamespace() || m.GetUid() != md.GetUid() ||
			m.GetAttempt() != md.GetAttempt() || p.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY ||
			(p.GetCreatedAt() > 0 && p.GetCreatedAt() < t0.UnixNano()) {
			continue
		}
		_, serr := b.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.GetId()})
		_, rerr := b.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.GetId()})
		b.log.Warn("remote: removed the sandbox a failed RunPodSandbox left behind", "backend", b.kind,
			"pod", md.GetNamespace()+"/"+md.GetName(), "backend_id", p.GetId(), "stop_err", serr, "remove_err", rerr)
	}
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
