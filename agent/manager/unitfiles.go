package manager

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"corral.io/corral/agent/apiserver"
	"corral.io/corral/agent/job"
	"corral.io/corral/agent/unit"
)

// DaemonReload re-reads every unit file. Running units keep running; their
// new settings apply from their next start, as in systemd.
func (m *Manager) DaemonReload(ctx context.Context) error {
	m.loader.Invalidate()
	names, err := m.loader.Names()
	if err != nil {
		return fmt.Errorf("daemon-reload: list unit files: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.aliases = map[string]string{}
	known := make([]string, 0, len(m.units))
	for n, e := range m.units {
		if e.u.Transient {
			continue // no file to re-read: CRI containers keep their unit
		}
		known = append(known, n)
	}
	for _, n := range known {
		m.addLocked(m.loader.Load(n), n)
	}
	for _, n := range names {
		if m.lookupLocked(n) == nil {
			m.loadLocked(n)
		}
	}
	m.linkLocked()
	m.gen++
	m.changes.Add(1)
	return nil
}

// unitFileOp is one of the [Install] operations of package unit.
type unitFileOp func(in *unit.Installer, names ...string) ([]unit.Change, error)

// unitFileError classifies the installer's errors for the API.
func unitFileError(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", apiserver.ErrNotFound, err)
	}
	if errors.Is(err, unit.ErrNoInstance) {
		return fmt.Errorf("%w: %w", apiserver.ErrInvalid, err)
	}
	return err
}

func (m *Manager) unitFiles(ctx context.Context, op unitFileOp, names []string, now bool, then job.Type) ([]apiserver.Change, error) {
	for _, n := range names {
		if err := checkName(n); err != nil {
			return nil, err
		}
	}
	changes, err := op(unit.NewInstaller(m.loader, m.cfg.Root), names...)
	out := make([]apiserver.Change, 0, len(changes))
	for _, c := range changes {
		out = append(out, apiserver.Change{Type: c.Type, Path: c.Path, Source: c.Source})
	}
	if err != nil {
		return out, unitFileError(err)
	}
	if err := m.DaemonReload(ctx); err != nil {
		return out, err
	}
	if now {
		for _, n := range names {
			if _, err := m.Enqueue(ctx, n, string(then), "replace", true); err != nil {
				return out, err
			}
		}
	}
	return out, nil
}

// Enable creates the [Install] symlinks.
func (m *Manager) Enable(ctx context.Context, names []string, now bool) ([]apiserver.Change, error) {
	return m.unitFiles(ctx, (*unit.Installer).Enable, names, now, job.Start)
}

// Disable removes them.
func (m *Manager) Disable(ctx context.Context, names []string, now bool) ([]apiserver.Change, error) {
	return m.unitFiles(ctx, (*unit.Installer).Disable, names, now, job.Stop)
}

// Mask links units to /dev/null.
func (m *Manager) Mask(ctx context.Context, names []string, now bool) ([]apiserver.Change, error) {
	return m.unitFiles(ctx, (*unit.Installer).Mask, names, now, job.Stop)
}

// Unmask removes the /dev/null links.
func (m *Manager) Unmask(ctx context.Context, names []string, now bool) ([]apiserver.Change, error) {
	return m.unitFiles(ctx, (*unit.Installer).Unmask, names, now, job.Start)
}

// IsEnabled reports the unit-file state.
func (m *Manager) IsEnabled(ctx context.Context, name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	st, err := unit.NewInstaller(m.loader, m.cfg.Root).IsEnabled(name)
	if err != nil {
		return "", unitFileError(err)
	}
	if st == "not-found" {
		return "", fmt.Errorf("unit file %s does not exist: %w", name, apiserver.ErrNotFound)
	}
	return st, nil
}
