package qemu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/digitalocean/go-qemu/qemu"
	"github.com/digitalocean/go-qemu/qmp"

	"corral.io/corral/agent/manager"
	"corral.io/corral/agent/proc"
	"corral.io/corral/agent/service"
	"corral.io/corral/agent/unit"
	"corral.io/corral/guest"
	"corral.io/corral/guest/wire"
)

// vm is one running microVM: its QEMU unit, the agent channel and QMP.
type vm struct {
	unit   string
	dir    string
	conn   net.Conn
	mux    *wire.Mux
	mon    *qmp.SocketMonitor
	dom    *qemu.Domain
	exited chan struct{} // closed when the QEMU unit is no longer active
	kernel string        // guest kernel release, from ping
	booted time.Duration // unit start → agent answered
}

// bootVM starts QEMU for pod id as a transient unit in cgroup cg and waits
// until the guest agent answers.
func (b *Backend) bootVM(ctx context.Context, id, cg string, m Machine) (_ *vm, retErr error) {
	v := &vm{unit: "corral-vm-" + id + ".service", dir: filepath.Dir(m.AgentSocket), exited: make(chan struct{})}
	u := b.units.ParseTransient(v.unit, "[Unit]\nDescription=VM pod "+id+"\nDefaultDependencies=no\n[Service]\nType=exec\nExecStart=/bin/true\nKillMode=control-group\nTimeoutStopSec=10\n")
	if u.LoadState != unit.LoadLoaded {
		return nil, fmt.Errorf("vm unit %s: %s", v.unit, u.LoadError)
	}
	bin, err := exec.LookPath(b.cfg.QEMU)
	if err != nil {
		return nil, fmt.Errorf("vm %s: %w", id, err)
	}
	argv := append([]string{bin}, Args(b.accel, m)...)
	u.Service.ExecStart = []unit.Command{{Path: bin, Args: argv, Flags: unit.NoEnvExpand}}
	closed := false
	opts := manager.TransientOptions{Cgroups: b.cg, Cgroup: cg, Adjust: func(sp *proc.Spec, _ string, _ bool) {
		if m.NetNS != "" {
			sp.Namespaces = map[string]string{"net": m.NetNS}
		}
	}, OnChange: func(_, st service.Status) {
		if !closed && (st.ActiveState == "inactive" || st.ActiveState == "failed") {
			closed = true
			close(v.exited)
		}
	}}
	if err := b.units.AddTransient(u, opts); err != nil {
		return nil, fmt.Errorf("vm unit %s: %w", v.unit, err)
	}
	t0 := time.Now()
	defer func() {
		if retErr != nil {
			b.destroyVM(context.WithoutCancel(ctx), v)
		}
	}()
	if err := b.units.StartUnit(ctx, v.unit); err != nil {
		return v, fmt.Errorf("vm unit %s: %w", v.unit, err)
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.BootTimeout)
	defer cancel()
	conn, err := dialRetry(ctx, v, "unix", m.AgentSocket)
	if err != nil {
		return v, fmt.Errorf("vm %s: agent channel: %w", id, err)
	}
	v.conn = conn
	v.mux = wire.NewMux(conn, true, nil)
	go v.mux.Run()
	if err := b.connectQMP(ctx, v, m.QMPSocket, id); err != nil {
		return v, err
	}
	var info guest.Info
	if err := v.mux.Call(ctx, "ping", nil, &info); err != nil {
		return v, fmt.Errorf("vm %s: guest agent did not answer (console: %s): %w", id, m.Console, err)
	}
	v.kernel = info.Kernel
	v.booted = time.Since(t0)
	b.log.Info("vm booted", "pod", id, "unit", v.unit, "guest_kernel", info.Kernel, "boot", v.booted)
	return v, nil
}

// dialRetry dials until the socket exists and accepts, the VM dies, or
// ctx ends: QEMU creates its sockets shortly after it starts.
func dialRetry(ctx context.Context, v *vm, network, addr string) (net.Conn, error) {
	for {
		c, err := net.Dial(network, addr)
		if err == nil {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: %w (last: %v)", addr, ctx.Err(), err)
		case <-v.exited:
			return nil, fmt.Errorf("%s: qemu exited (corralctl logs -u %s)", addr, v.unit)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// connectQMP connects the monitor (Connect before NewDomain, as go-qemu
// needs) and subscribes to events before any command is sent.
func (b *Backend) connectQMP(ctx context.Context, v *vm, path, id string) error {
	for {
		if _, err := os.Stat(path); err == nil {
			mon, err := qmp.NewSocketMonitor("unix", path, 2*time.Second)
			if err == nil {
				if err = mon.Connect(); err == nil {
					v.mon = mon
					break
				}
				mon.Disconnect()
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("vm %s: qmp %s: %w", id, path, ctx.Err())
		case <-v.exited:
			return fmt.Errorf("vm %s: qemu exited before qmp answered", id)
		case <-time.After(5 * time.Millisecond):
		}
	}
	dom, err := qemu.NewDomain(v.mon, id)
	if err != nil {
		return fmt.Errorf("vm %s: qmp: %w", id, err)
	}
	v.dom = dom
	events, done, err := dom.Events()
	if err != nil {
		return fmt.Errorf("vm %s: qmp events: %w", id, err)
	}
	go func() {
		defer close(done)
		for ev := range events {
			b.log.Debug("qmp event", "pod", id, "event", ev.Event)
		}
	}()
	return nil
}

// stopVM shuts the guest down: a shutdown call over the channel (the guest
// stops its containers, syncs and resets, which ends QEMU under
// -no-reboot), system_powerdown when the channel is gone, then `quit`
// after the grace period, and finally the unit's stop, which kills
// whatever is left in its cgroup.
func (b *Backend) stopVM(ctx context.Context, v *vm, grace time.Duration) {
	if v == nil {
		return
	}
	select {
	case <-v.exited:
	default:
		asked := false
		if v.mux != nil {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			asked = v.mux.Call(cctx, "shutdown", nil, nil) == nil
			cancel()
		}
		if !asked && v.dom != nil {
			v.dom.SystemPowerdown()
		}
		select {
		case <-v.exited:
		case <-time.After(grace):
			if v.mon != nil {
				v.mon.Run([]byte(`{"execute":"quit"}`))
			}
		case <-ctx.Done():
		}
	}
	b.destroyVM(ctx, v)
}

// destroyVM releases the VM's host resources; idempotent.
func (b *Backend) destroyVM(ctx context.Context, v *vm) {
	if v.dom != nil {
		v.dom.Close() // also disconnects the monitor
		v.dom, v.mon = nil, nil
	} else if v.mon != nil {
		v.mon.Disconnect()
		v.mon = nil
	}
	if v.conn != nil {
		v.conn.Close()
	}
	if err := b.units.StopUnit(ctx, v.unit, 10*time.Second); err != nil {
		b.log.Warn("stop vm unit", "unit", v.unit, "err", err)
	}
	if err := b.units.RemoveTransient(v.unit); err != nil && !errors.Is(err, os.ErrNotExist) {
		b.log.Debug("remove vm unit", "unit", v.unit, "err", err)
	}
}
