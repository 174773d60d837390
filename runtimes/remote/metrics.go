package remote

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListMetricDescriptors forwards kubelet's CRI-metrics discovery: container
// pods' metrics are the remote's (cAdvisor-less stats).
func (b *Backend) ListMetricDescriptors(ctx context.Context) ([]*runtimeapi.MetricDescriptor, error) {
	resp, err := b.rt.ListMetricDescriptors(ctx, &runtimeapi.ListMetricDescriptorsRequest{})
	if err != nil {
		return nil, b.wrap("list metric descriptors", "", err)
	}
	return resp.GetDescriptors(), nil
}

// ListPodSandboxMetrics returns metrics with the remote's pod and container
// IDs; the CRI server translates them.
func (b *Backend) ListPodSandboxMetrics(ctx context.Context) ([]*runtimeapi.PodSandboxMetrics, error) {
	resp, err := b.rt.ListPodSandboxMetrics(ctx, &runtimeapi.ListPodSandboxMetricsRequest{})
	if err != nil {
		return nil, b.wrap("list pod sandbox metrics", "", err)
	}
	return resp.GetPodMetrics(), nil
}
