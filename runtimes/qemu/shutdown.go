package qemu

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"corral.io/corral/runtimes"
)

// Shutdown removes every VM pod when the agent stops: the guest is shut
// down (QMP quit after the grace period), CNI DEL releases the pod's
// address, the network namespace is unmounted, and the run directory and
// the pod cgroup go. VM pods are not recorded in the state DB yet, so a
// pod left running would be unknown to the next agent and its netns mount
// and IP lease would leak for good. Pods are removed in parallel (each
// waits for its guest). After Shutdown the backend refuses new pods.
//
// The agent must call it before the manager stops its units: CNI plugins
// and `ip` run through the manager's spawner and reaper, which end with
// the manager's Run. Calling it again is harmless.
func (b *Backend) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	b.shutdown = true
	ids := make([]string, 0, len(b.pods))
	for id := range b.pods {
		ids = append(ids, id)
	}
	b.mu.Unlock()
	if len(ids) > 0 {
		b.log.Info("agent stopping: removing VM pods", "pods", len(ids))
	}
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.RemovePodSandbox(ctx, id); err != nil {
				errs[i] = fmt.Errorf("shutdown: %w", err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// refuseAfterShutdown is RunPodSandbox's check: a pod started while the
// agent stops would outlive Shutdown.
func (b *Backend) refuseAfterShutdown(id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shutdown {
		return fmt.Errorf("pod sandbox %s: %w: the agent is stopping", id, runtimes.ErrUnavailable)
	}
	return nil
}
