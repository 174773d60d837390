package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"corral.io/corral/agent/proc"
	"corral.io/corral/agent/reaper"
)

// Spawner starts a process; *proc.Spawner satisfies it.
type Spawner interface {
	Start(ctx context.Context, spec *proc.Spec) (int, error)
}

// Reaper delivers exits; *reaper.Reaper satisfies it.
type Reaper interface {
	Watch(pid int) <-chan reaper.Exit
	Unwatch(pid int)
}

// Exec runs short-lived helper processes (CNI plugins, and the `ip`,
// `ctr` and `mkfs` calls of VM pods) through the agent's spawner and
// reaper. It is libcni's invoke.Exec.
type Exec struct {
	Spawner Spawner
	Reaper  Reaper
	Log     *slog.Logger
}

var _ invoke.Exec = Exec{}

// Output is the outcome of Run.
type Output struct {
	Stdout, Stderr []byte
	Exit           reaper.Exit
	TimedOut       bool
}

// Run spawns spec (through the trampoline, so it may join namespaces and
// cgroups), feeds it stdin, collects its output and waits for its exit
// through the reaper. When ctx ends first the process is killed and
// TimedOut is set.
func (x Exec) Run(ctx context.Context, spec *proc.Spec, stdin []byte) (Output, error) {
	var res Output
	outR, outW, err := os.Pipe()
	if err != nil {
		return res, err
	}
	defer outR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		outW.Close()
		return res, err
	}
	defer errR.Close()
	var inW *os.File
	if stdin != nil {
		var inR *os.File
		if inR, inW, err = os.Pipe(); err != nil {
			outW.Close()
			errW.Close()
			return res, err
		}
		spec.Stdin = inR
		defer inR.Close()
	}
	spec.Stdout, spec.Stderr = outW, errW
	pid, err := x.Spawner.Start(context.WithoutCancel(ctx), spec)
	outW.Close()
	errW.Close()
	if pid <= 0 {
		if inW != nil {
			inW.Close()
		}
		return res, err
	}
	exits := x.Reaper.Watch(pid)
	defer x.Reaper.Unwatch(pid)
	if inW != nil {
		go func() {
			inW.Write(stdin)
			inW.Close()
		}()
	}
	var wg sync.WaitGroup
	var stdout, stderr bytes.Buffer
	for _, p := range []struct {
		r *os.File
		w *bytes.Buffer
	}{{outR, &stdout}, {errR, &stderr}} {
		wg.Add(1)
		go func() { defer wg.Done(); io.Copy(p.w, p.r) }()
	}
	select {
	case res.Exit = <-exits:
	case <-ctx.Done():
		res.TimedOut = true
		syscall.Kill(pid, syscall.SIGKILL)
		res.Exit = <-exits
	}
	// A background child may still hold the pipes: read what is there,
	// then stop.
	deadline := time.Now().Add(time.Second)
	outR.SetReadDeadline(deadline)
	errR.SetReadDeadline(deadline)
	wg.Wait()
	res.Stdout, res.Stderr = stdout.Bytes(), stderr.Bytes()
	if err != nil {
		return res, fmt.Errorf("run %s: %w", spec.Path, err)
	}
	return res, nil
}

// Command runs argv (argv[0] a path) with optional extra spec settings and
// fails unless it exits 0; the error carries its stderr.
func (x Exec) Command(ctx context.Context, ns map[string]string, argv ...string) ([]byte, error) {
	res, err := x.Run(ctx, &proc.Spec{Path: argv[0], Argv: argv, Namespaces: ns}, nil)
	if err != nil {
		return nil, err
	}
	if res.TimedOut {
		return nil, fmt.Errorf("%s: %w", argv, ctx.Err())
	}
	if res.Exit.Code() != 0 {
		return res.Stdout, fmt.Errorf("%s: %s: %s", argv, res.Exit, bytes.TrimSpace(res.Stderr))
	}
	return res.Stdout, nil
}

// ExecPlugin runs one CNI plugin.
func (x Exec) ExecPlugin(ctx context.Context, path string, stdin []byte, environ []string) ([]byte, error) {
	res, err := x.Run(ctx, &proc.Spec{Path: path, Argv: []string{path}, Env: environ}, stdin)
	if err != nil {
		return nil, err
	}
	if res.TimedOut {
		return nil, fmt.Errorf("CNI plugin %s: %w", path, ctx.Err())
	}
	if res.Exit.Code() != 0 {
		var e types.Error
		if json.Unmarshal(res.Stdout, &e) == nil && (e.Msg != "" || e.Code != 0) {
			return nil, &e
		}
		return nil, fmt.Errorf("CNI plugin %s: %s: %s", path, res.Exit, bytes.TrimSpace(res.Stderr))
	}
	if len(res.Stderr) > 0 && x.Log != nil {
		x.Log.Debug("CNI plugin stderr", "plugin", path, "stderr", string(res.Stderr))
	}
	return res.Stdout, nil
}

// FindInPath finds a plugin binary.
func (Exec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

// Decode reads a plugin's version answer.
func (Exec) Decode(b []byte) (version.PluginInfo, error) {
	var d version.PluginDecoder
	return d.Decode(b)
}
