package manager

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"corral.io/corral/agent/proc"
)

// BeforeStop hooks run at shutdown while processes can still be spawned and
// reaped (VM pods tear down through CNI plugins then).
func TestBeforeStopRunsWhileReaperWorks(t *testing.T) {
	base := fmt.Sprintf("corral-test-%d-beforestop", os.Getpid())
	m, err := New(Config{Root: t.TempDir(), CgroupBase: base, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, "") }()
	<-m.ready
	defer m.cg.Remove("")

	var hookErr error
	ran := false
	m.BeforeStop(func(ctx context.Context) {
		ran = true
		pid, err := m.spawn.Start(ctx, &proc.Spec{Path: "/bin/true", Argv: []string{"true"}})
		if err != nil {
			hookErr = err
			return
		}
		select {
		case e := <-m.reaper.Watch(pid):
			if e.Code() != 0 {
				hookErr = fmt.Errorf("true exited %s", e)
			}
		case <-time.After(10 * time.Second):
			hookErr = fmt.Errorf("no exit from the reaper for pid %d", pid)
		}
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !ran {
		t.Fatal("BeforeStop hook did not run")
	}
	if hookErr != nil {
		t.Errorf("in the hook: %v", hookErr)
	}
}
