package native

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"corral.io/corral/agent/proc"
	"corral.io/corral/agent/reaper"
)

// runResult is the outcome of a short-lived process run by run.
type runResult struct {
	Stdout, Stderr []byte
	Exit           reaper.Exit
	TimedOut       bool
}

// run spawns spec (through the trampoline, so it may join namespaces and
// cgroups), feeds it stdin, collects its output and waits for its exit
// through the reaper; nothing in the agent may wait for a child itself.
// When ctx ends first the process is killed and TimedOut is set.
func (b *Backend) run(ctx context.Context, spec *proc.Spec, stdin []byte) (runResult, error) {
	var res runResult
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
	pid, err := b.units.Spawner().Start(context.WithoutCancel(ctx), spec)
	outW.Close()
	errW.Close()
	if pid <= 0 {
		if inW != nil {
			inW.Close()
		}
		return res, err
	}
	exits := b.units.Reaper().Watch(pid)
	defer b.units.Reaper().Unwatch(pid)
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
