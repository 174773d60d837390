package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// metricser is a backend with CRI metrics (a remote CRI runtime).
type metricser interface {
	ListMetricDescriptors(ctx context.Context) ([]*runtimeapi.MetricDescriptor, error)
	ListPodSandboxMetrics(ctx context.Context) ([]*runtimeapi.PodSandboxMetrics, error)
}

// ListMetricDescriptors merges the descriptors of backends with metrics;
// Unimplemented when none has any, so that kubelet uses cAdvisor.
func (s *Server) ListMetricDescriptors(ctx context.Context, req *runtimeapi.ListMetricDescriptorsRequest) (*runtimeapi.ListMetricDescriptorsResponse, error) {
	resp := &runtimeapi.ListMetricDescriptorsResponse{}
	seen, n := map[string]bool{}, 0
	for _, h := range s.handlers {
		m, ok := s.backends[h].(metricser)
		if !ok {
			continue
		}
		n++
		ds, err := m.ListMetricDescriptors(ctx)
		if err != nil {
			s.log.Warn("cri: backend skipped", "op", "list metric descriptors", "handler", h, "err", err)
		}
		for _, d := range ds {
			if !seen[d.GetName()] {
				seen[d.GetName()] = true
				resp.Descriptors = append(resp.Descriptors, d)
			}
		}
	}
	if n == 0 {
		return nil, unsupported(s.def, "ListMetricDescriptors")
	}
	return resp, nil
}

// ListPodSandboxMetrics merges the metrics of Corral's pods, with Corral IDs.
func (s *Server) ListPodSandboxMetrics(ctx context.Context, req *runtimeapi.ListPodSandboxMetricsRequest) (*runtimeapi.ListPodSandboxMetricsResponse, error) {
	resp := &runtimeapi.ListPodSandboxMetricsResponse{}
	n := 0
	for _, h := range s.handlers {
		m, ok := s.backends[h].(metricser)
		if !ok {
			continue
		}
		n++
		pms, err := m.ListPodSandboxMetrics(ctx)
		if err != nil {
			s.log.Warn("cri: backend skipped", "op", "list pod sandbox metrics", "handler", h, "err", err)
		}
		for _, pm := range pms {
			if !s.translateIDs(h, nil, &pm.PodSandboxId) || pm.PodSandboxId == "" {
				continue
			}
			var cms []*runtimeapi.ContainerMetrics
			for _, cm := range pm.GetContainerMetrics() {
				if id, ok := s.ids.corral(kindContainer, h, cm.GetContainerId()); ok {
					cm.ContainerId = id
					cms = append(cms, cm)
				}
			}
			pm.ContainerMetrics = cms
			resp.PodMetrics = append(resp.PodMetrics, pm)
		}
	}
	if n == 0 {
		return nil, unsupported(s.def, "ListPodSandboxMetrics")
	}
	return resp, nil
}
