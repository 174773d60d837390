package cri

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CreateContainer creates the container on its pod's backend; the container
// remembers its pod so that removing the pod forgets it too.
func (s *Server) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (_ *runtimeapi.CreateContainerResponse, retErr error) {
	cfg := req.GetConfig()
	if err := checkContainerConfig(cfg); err != nil {
		return nil, err
	}
	if err := checkPodConfig("sandbox_config", req.GetSandboxConfig()); err != nil {
		return nil, err
	}
	pod, err := s.pod(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	name := cfg.GetMetadata().GetName()
	id := newID()
	bid, err := pod.backend.CreateContainer(ctx, id, pod.rec.BackendID, cfg, req.GetSandboxConfig())
	if err != nil {
		return nil, fmt.Errorf("container %q in pod %s: %w", name, pod.id, err)
	}
	defer func() {
		if retErr != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			defer cancel()
			if err := pod.backend.RemoveContainer(cctx, bid); err != nil {
				s.log.Warn("cri: rollback: remove container", "container", name, "backend_id", bid, "err", err)
			}
		}
	}()
	id = s.adoptID(kindContainer, pod.backend, id, bid)
	r := record{Handler: pod.rec.Handler, BackendID: bid, Pod: pod.id}
	if err := s.ids.put(kindContainer, id, r); err != nil {
		return nil, fmt.Errorf("container %q in pod %s: %w", name, pod.id, err)
	}
	return &runtimeapi.CreateContainerResponse{ContainerId: id}, nil
}
