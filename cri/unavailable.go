package cri

import (
	"context"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// Unavailable is a stand-in backend for a configured handler whose backend
// cannot be built (not compiled in yet, or failed to start): the handler
// stays listed and reports RuntimeReady=false with reason, as DESIGN §4
// asks, instead of vanishing or failing the agent.
func Unavailable(kind, reason string) runtimes.Backend { return unavailable{kind, reason} }

type unavailable struct{ kind, reason string }

func (u unavailable) err() error {
	return fmt.Errorf("backend %s: %s: %w", u.kind, u.reason, runtimes.ErrUnavailable)
}

func (u unavailable) Name() string { return u.kind }
func (u unavailable) Ready(context.Context) (bool, string, string) {
	return false, "BackendUnavailable", u.reason
}
func (u unavailable) RunPodSandbox(context.Context, string, *runtimeapi.PodSandboxConfig, string) (string, error) {
	return "", u.err()
}
func (u unavailable) StopPodSandbox(context.Context, string) error   { return u.err() }
func (u unavailable) RemovePodSandbox(context.Context, string) error { return u.err() }
func (u unavailable) PodSandboxStatus(context.Context, string, bool) (*runtimeapi.PodSandboxStatusResponse, error) {
	return nil, u.err()
}
func (u unavailable) ListPodSandbox(context.Context, *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	return nil, u.err()
}
func (u unavailable) CreateContainer(context.Context, string, string, *runtimeapi.ContainerConfig, *runtimeapi.PodSandboxConfig) (string, error) {
	return "", u.err()
}
func (u unavailable) StartContainer(context.Context, string) error               { return u.err() }
func (u unavailable) StopContainer(context.Context, string, time.Duration) error { return u.err() }
func (u unavailable) RemoveContainer(context.Context, string) error              { return u.err() }
func (u unavailable) ContainerStatus(context.Context, string, bool) (*runtimeapi.ContainerStatusResponse, error) {
	return nil, u.err()
}
func (u unavailable) ListContainers(context.Context, *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	return nil, u.err()
}
