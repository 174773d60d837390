package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Version answers with non-empty fields: kubelet refuses a runtime whose
// version it cannot log.
func (s *Server) Version(ctx context.Context, req *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{
		Version:           "0.1.0",
		RuntimeName:       "corral",
		RuntimeVersion:    s.version,
		RuntimeApiVersion: "v1",
	}, nil
}
