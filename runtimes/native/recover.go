package native

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/agent/logs"
	"corral.io/corral/agent/manager"
	"corral.io/corral/agent/service"
	"corral.io/corral/agent/unit"
)

// Containers across a restart of the core (issue 7, docs/RECOVERY.md). The
// backend is built before the manager runs its recovery, so it registers
// the real transient unit of every container it has a record of
// (AdoptTransient): recovery then re-adopts that unit, with the container's
// namespaces (Adjust), its exit handling (OnChange) and its CRI log mirror
// in place before the first line of the outage is drained. Once the
// manager is ready, each container that was running takes the state its
// unit came back in.

// adopter is the part of *manager.Manager recovery needs.
type adopter interface {
	AdoptTransient(u *unit.Unit, opts manager.TransientOptions) (bool, error)
	Ready() <-chan struct{}
}

// recoverContainers re-registers the units of the recorded containers; it
// is called by New after load. Containers recorded running stay running
// until the manager says otherwise (reconcile).
func (b *Backend) recoverContainers() {
	a, ok := b.units.(adopter)
	if !ok {
		return
	}
	var running []string
	for id, c := range b.containers {
		var rec ctrRecord
		if found, err := b.db.Get(bucketContainers, id, &rec); err != nil || !found {
			continue
		}
		if rec.State != runtimeapi.ContainerState_CONTAINER_RUNNING && rec.State != runtimeapi.ContainerState_CONTAINER_CREATED {
			continue // exited: its status is in the record, no unit needed
		}
		if err := b.adoptContainer(a, c); err != nil {
			b.log.Warn("container not re-adopted; it shows as exited", "container", id, "unit", c.rec.Unit, "err", err)
			continue
		}
		if rec.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			c.rec.State, c.rec.Reason = rec.State, rec.Reason
			running = append(running, id)
		}
	}
	if len(running) > 0 {
		go b.reconcile(a.Ready(), running)
	}
}

// adoptContainer builds the container's unit and options again, as
// CreateContainer did, and hands them to the manager.
func (b *Backend) adoptContainer(a adopter, c *container) error {
	p := b.pods[c.rec.PodID]
	if p == nil {
		return fmt.Errorf("pod %s: no record", c.rec.PodID)
	}
	if p.cfg == nil {
		p.cfg = &runtimeapi.PodSandboxConfig{}
		if err := proto.Unmarshal(p.rec.Config, p.cfg); err != nil {
			return fmt.Errorf("pod %s: config record: %w", p.rec.ID, err)
		}
	}
	cfg := &runtimeapi.ContainerConfig{}
	if err := proto.Unmarshal(c.rec.Config, cfg); err != nil {
		return fmt.Errorf("config record: %w", err)
	}
	c.cfg = cfg
	argv := append(append([]string{}, cfg.GetCommand()...), cfg.GetArgs()...)
	if len(argv) == 0 || argv[0] == "" {
		return fmt.Errorf("config record without a command")
	}
	u, err := b.buildUnit(c.rec.Unit, p, cfg, argv)
	if err != nil {
		return err
	}
	id := c.rec.ID
	opts := manager.TransientOptions{
		Cgroups: b.cg, Cgroup: c.rec.Cgroup,
		Adjust:   b.adjust(c, p),
		OnChange: func(_, st service.Status) { b.unitChanged(id, st) },
	}
	if c.rec.LogPath != "" {
		if c.log, err = logs.OpenCRIFile(c.rec.LogPath); err != nil {
			return err
		}
		opts.LogMirror = c.log
	}
	if _, err := a.AdoptTransient(u, opts); err != nil {
		if c.log != nil {
			c.log.Close()
			c.log = nil
		}
		return err
	}
	return nil
}

// reconcile waits for the manager's recovery, then gives each container
// recorded running the state of its unit: still running, or exited with
// the status the supervisor recorded (an exit during the outage). Exits
// after recovery arrive through OnChange as usual.
func (b *Backend) reconcile(ready <-chan struct{}, ids []string) {
	select {
	case <-ready:
	case <-time.After(10 * time.Minute):
		return
	}
	for _, id := range ids {
		b.mu.Lock()
		c := b.containers[id]
		name := ""
		if c != nil {
			name = c.rec.Unit
		}
		b.mu.Unlock()
		if c == nil {
			continue
		}
		st, ok := b.units.UnitState(name)
		if !ok {
			st.ActiveState = "failed"
		}
		b.unitChanged(id, st)
		b.log.Info("container re-adopted", "container", id, "unit", name, "state", st.ActiveState, "main_pid", st.MainPID)
	}
}
