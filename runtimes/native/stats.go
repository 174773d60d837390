package native

import (
	"context"
	"io"

	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/agent/logs"
)

// followOutput copies the container's output from now on to out and errw
// until ctx ends or the container exits.
func (b *Backend) followOutput(ctx context.Context, c *container, out, errw io.Writer) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			b.mu.Lock()
			st := c.rec.State
			b.mu.Unlock()
			if st != runtimeapi.ContainerState_CONTAINER_RUNNING {
				// Let the last lines through first.
				time.Sleep(200 * time.Millisecond)
				cancel()
				return
			}
		}
	}()
	b.units.LogStore().Read(ctx, c.rec.Unit, logs.Query{Since: time.Now(), Follow: true}, func(e logs.Entry) error {
		w := out
		switch e.Stream {
		case logs.Stderr:
			if errw != nil {
				w = errw
			}
		case logs.Stdout:
		default:
			return nil
		}
		if w != nil {
			w.Write([]byte(e.Msg + "\n"))
		}
		return nil
	})
}

func (b *Backend) cpuMem(cg string, now int64) (*runtimeapi.CpuUsage, *runtimeapi.MemoryUsage, uint64, error) {
	st, err := b.cg.Stats(cg)
	if err != nil {
		return nil, nil, 0, err
	}
	cpu := &runtimeapi.CpuUsage{Timestamp: now, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: st.CPUUsageNS}}
	mem := &runtimeapi.MemoryUsage{Timestamp: now,
		WorkingSetBytes: &runtimeapi.UInt64Value{Value: st.MemoryWorkingSet},
		UsageBytes:      &runtimeapi.UInt64Value{Value: st.MemoryUsage},
	}
	if st.MemoryLimit > 0 && st.MemoryLimit >= st.MemoryWorkingSet {
		mem.AvailableBytes = &runtimeapi.UInt64Value{Value: st.MemoryLimit - st.MemoryWorkingSet}
	}
	return cpu, mem, st.Pids, nil
}

func (b *Backend) containerStatsLocked(c *container) *runtimeapi.ContainerStats {
	now := time.Now().UnixNano()
	s := &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{Id: c.rec.ID, Metadata: c.cfg.GetMetadata(), Labels: c.cfg.GetLabels(), Annotations: c.cfg.GetAnnotations()},
		Cpu:        &runtimeapi.CpuUsage{Timestamp: now, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{}},
		Memory:     &runtimeapi.MemoryUsage{Timestamp: now, WorkingSetBytes: &runtimeapi.UInt64Value{}},
		WritableLayer: &runtimeapi.FilesystemUsage{Timestamp: now, FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: "/"},
			UsedBytes: &runtimeapi.UInt64Value{}, InodesUsed: &runtimeapi.UInt64Value{}},
	}
	if c.rec.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
		if cpu, mem, _, err := b.cpuMem(c.rec.Cgroup, now); err == nil {
			s.Cpu, s.Memory = cpu, mem
		}
	}
	return s
}

// ContainerStats reports a container's CPU and memory from its cgroup.
func (b *Backend) ContainerStats(ctx context.Context, id string) (*runtimeapi.ContainerStats, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, err := b.containerLocked(id)
	if err != nil {
		return nil, err
	}
	return b.containerStatsLocked(c), nil
}

// ListContainerStats reports the containers matching filter.
func (b *Backend) ListContainerStats(ctx context.Context, f *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*runtimeapi.ContainerStats
	for id := range b.containers {
		c, err := b.containerLocked(id)
		if err != nil {
			continue
		}
		if f != nil && ((f.Id != "" && f.Id != id) || (f.PodSandboxId != "" && f.PodSandboxId != c.rec.PodID) || !matchLabels(f.LabelSelector, c.cfg.GetLabels())) {
			continue
		}
		out = append(out, b.containerStatsLocked(c))
	}
	return out, nil
}

// PodSandboxStats reports the pod's cgroup and its containers.
func (b *Backend) PodSandboxStats(ctx context.Context, id string) (*runtimeapi.PodSandboxStats, error) {
	p, err := b.getPod(id)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.podStatsLocked(p), nil
}

func (b *Backend) podStatsLocked(p *pod) *runtimeapi.PodSandboxStats {
	now := time.Now().UnixNano()
	l := &runtimeapi.LinuxPodSandboxStats{
		Cpu:     &runtimeapi.CpuUsage{Timestamp: now, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{}},
		Memory:  &runtimeapi.MemoryUsage{Timestamp: now, WorkingSetBytes: &runtimeapi.UInt64Value{}},
		Process: &runtimeapi.ProcessUsage{Timestamp: now, ProcessCount: &runtimeapi.UInt64Value{}},
	}
	if cpu, mem, pids, err := b.cpuMem(p.rec.Cgroup, now); err == nil {
		l.Cpu, l.Memory = cpu, mem
		l.Process.ProcessCount.Value = pids
	}
	for id, c := range b.containers {
		if c.rec.PodID != p.rec.ID {
			continue
		}
		if c, err := b.containerLocked(id); err == nil {
			l.Containers = append(l.Containers, b.containerStatsLocked(c))
		}
	}
	return &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{Id: p.rec.ID, Metadata: p.cfg.GetMetadata(), Labels: p.cfg.GetLabels(), Annotations: p.cfg.GetAnnotations()},
		Linux:      l,
	}
}

// ListPodSandboxStats reports the pods matching filter.
func (b *Backend) ListPodSandboxStats(ctx context.Context, f *runtimeapi.PodSandboxStatsFilter) ([]*runtimeapi.PodSandboxStats, error) {
	b.mu.Lock()
	ids := make([]string, 0, len(b.pods))
	for id := range b.pods {
		ids = append(ids, id)
	}
	b.mu.Unlock()
	var out []*runtimeapi.PodSandboxStats
	for _, id := range ids {
		p, err := b.getPod(id)
		if err != nil {
			continue
		}
		if f != nil && ((f.Id != "" && f.Id != id) || !matchLabels(f.LabelSelector, p.cfg.GetLabels())) {
			continue
		}
		b.mu.Lock()
		out = append(out, b.podStatsLocked(p))
		b.mu.Unlock()
	}
	return out, nil
}

// ContainerEvents sends container lifecycle events until ctx ends.
func (b *Backend) ContainerEvents(ctx context.Context, ch chan<- *runtimeapi.ContainerEventResponse) error {
	sub := make(chan *runtimeapi.ContainerEventResponse, 64)
	b.mu.Lock()
	b.subs[sub] = struct{}{}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.subs, sub)
		b.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-sub:
			select {
			case ch <- ev:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// emit sends an event about c to every subscriber; a subscriber that does
// not keep up loses events rather than blocking the runtime.
func (b *Backend) emit(c *container, t runtimeapi.ContainerEventType) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.subs) == 0 {
		return
	}
	ev := &runtimeapi.ContainerEventResponse{ContainerId: c.rec.ID, ContainerEventType: t, CreatedAt: time.Now().UnixNano()}
	if cc, err := b.containerLocked(c.rec.ID); err == nil {
		ev.ContainersStatuses = []*runtimeapi.ContainerStatus{b.statusLocked(cc)}
	} else if c.cfg != nil {
		ev.ContainersStatuses = []*runtimeapi.ContainerStatus{b.statusLocked(c)}
	}
	if p := b.pods[c.rec.PodID]; p != nil && p.cfg != nil {
		ev.PodSandboxStatus = &runtimeapi.PodSandboxStatus{Id: p.rec.ID, Metadata: p.cfg.GetMetadata(), State: p.rec.State, CreatedAt: p.rec.CreatedAt,
			Labels: p.cfg.GetLabels(), Annotations: p.cfg.GetAnnotations(), RuntimeHandler: p.rec.Handler}
	}
	for s := range b.subs {
		select {
		case s <- ev:
		default:
			b.log.Warn("container event dropped: subscriber too slow", "container", c.rec.ID, "event", t)
		}
	}
}
