package cri

import (
	"context"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// cleanupTimeout bounds a rollback, which runs even if the caller gave up.
const cleanupTimeout = 30 * time.Second

// RunPodSandbox routes the pod to its handler's backend, then records the
// ID map before kubelet learns the ID.
func (s *Server) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (_ *runtimeapi.RunPodSandboxResponse, retErr error) {
	cfg := req.GetConfig()
	if err := checkPodConfig("config", cfg); err != nil {
		return nil, err
	}
	name := podName(cfg.GetMetadata())
	handler, b, err := s.route(req.GetRuntimeHandler(), cfg.GetAnnotations())
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w", name, err)
	}
	id := newID()
	bid, err := b.RunPodSandbox(ctx, id, cfg, handler)
	if err != nil {
		return nil, fmt.Errorf("pod %s on handler %q: %w", name, handler, err)
	}
	defer func() {
		if retErr != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			defer cancel()
			if err := b.StopPodSandbox(cctx, bid); err != nil {
				s.log.Warn("cri: rollback: stop pod", "pod", name, "backend_id", bid, "err", err)
			}
			if err := b.RemovePodSandbox(cctx, bid); err != nil {
				s.log.Warn("cri: rollback: remove pod", "pod", name, "backend_id", bid, "err", err)
			}
		}
	}()
	id = s.adoptID(kindPod, b, id, bid)
	if err := s.ids.put(kindPod, id, record{Handler: handler, BackendID: bid}); err != nil {
		return nil, fmt.Errorf("pod %s: %w", name, err)
	}
	s.log.Info("cri: pod sandbox created", "pod", name, "id", id, "handler", handler, "backend_id", bid)
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: id}, nil
}

// podName is namespace/name for messages.
func podName(md *runtimeapi.PodSandboxMetadata) string {
	return md.GetNamespace() + "/" + md.GetName()
}
