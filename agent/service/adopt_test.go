package service

import (
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"corral.io/corral/agent/reaper"
	"corral.io/corral/agent/unit"
)

// pidWatcher is a fake PIDWatcher: the test decides when and how an
// adopted process ends.
type pidWatcher struct {
	mu  sync.Mutex
	chs map[int]chan reaper.Exit
}

func (p *pidWatcher) WatchPID(pid int, _ uint64) (<-chan reaper.Exit, func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.chs == nil {
		p.chs = map[int]chan reaper.Exit{}
	}
	ch := make(chan reaper.Exit, 1)
	p.chs[pid] = ch
	return ch, func() {}
}

func (p *pidWatcher) exit(t *testing.T, pid int, st unix.WaitStatus) {
	t.Helper()
	p.mu.Lock()
	ch := p.chs[pid]
	p.mu.Unlock()
	if ch == nil {
		t.Fatalf("pid %d is not watched", pid)
	}
	ch <- reaper.Exit{PID: pid, Status: st, Time: time.Now()}
}

func TestAdopt(t *testing.T) {
	const main = 4_100_000
	tests := []struct {
		name     string
		mod      func(*unit.Service)
		rec      Adoption
		watching bool
		exit     *unix.WaitStatus // the adopted main process then ends so
		want     SubState
		result   Result
		code     int // ExecMainCode after the exit
		status   int
		restart  bool // RequestRestart called
		signals  []string
	}{
		{name: "running, exit 3 with Restart=on-failure restarts",
			mod: func(s *unit.Service) { s.Restart = unit.RestartOnFailure },
			rec: Adoption{SubState: Running, MainPID: main, MainPIDStart: 7, InvocationID: "abc"}, watching: true,
			exit: ptr(exitStatus(3)), want: AutoRestart, result: ExitCode, code: cldExited, status: 3, restart: true},
		{name: "running, exit 0 with Restart=on-failure ends dead",
			mod: func(s *unit.Service) { s.Restart = unit.RestartOnFailure },
			rec: Adoption{SubState: Running, MainPID: main}, watching: true,
			exit: ptr(exitStatus(0)), want: Dead, result: Success, code: cldExited, status: 0},
		{name: "running, unknown exit fails with result unknown",
			rec: Adoption{SubState: Running, MainPID: main}, watching: true,
			exit: ptr(StatusUnknown), want: Failed, result: Unknown, code: 0, status: 0},
		{name: "running, unknown exit with Restart=on-abnormal restarts",
			mod: func(s *unit.Service) { s.Restart = unit.RestartOnAbnormal },
			rec: Adoption{SubState: Running, MainPID: main}, watching: true,
			exit: ptr(StatusUnknown), want: AutoRestart, result: Unknown, restart: true},
		{name: "oneshot exited stays exited",
			mod: func(s *unit.Service) { s.Type = unit.Oneshot; s.RemainAfterExit = true },
			rec: Adoption{SubState: Exited, ExecMainCode: cldExited}, want: Exited, result: Success, code: cldExited},
		{name: "failed is restored quietly",
			rec:  Adoption{SubState: Failed, Result: ExitCode, ExecMainCode: cldExited, ExecMainStatus: 9, NRestarts: 2},
			want: Failed, result: ExitCode, code: cldExited, status: 9},
		{name: "a stop in progress goes on and never restarts",
			mod: func(s *unit.Service) { s.Restart = unit.RestartAlways },
			rec: Adoption{SubState: StopSigterm, MainPID: main}, watching: true,
			exit: ptr(sigStatus(unix.SIGTERM)), want: Dead, result: Success, code: cldKilled, status: int(unix.SIGTERM),
			signals: []string{itoa(main) + ":TERM"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, newUnit(tt.mod))
			f.w.mu.Lock()
			f.w.alive[main] = "adopted"
			f.w.mu.Unlock()
			pw := &pidWatcher{}
			if got := f.s.Adopt(tt.rec, pw); got != tt.watching {
				t.Errorf("Adopt = %v, want %v", got, tt.watching)
			}
			st := f.s.Status()
			if st.InvocationID != tt.rec.InvocationID || st.NRestarts != tt.rec.NRestarts {
				t.Errorf("restored %+v from %+v", st, tt.rec)
			}
			f.mu.Lock()
			quiet := len(f.changes) == 0
			f.mu.Unlock()
			if !quiet && tt.signals == nil {
				t.Errorf("the restored state was reported as a change: %+v", f.changes)
			}
			if tt.exit != nil {
				if st.MainPID != main {
					t.Errorf("MainPID %d after Adopt, want %d", st.MainPID, main)
				}
				pw.exit(t, main, *tt.exit)
			}
			st = f.waitState(t, tt.want)
			if st.Result != tt.result || st.ExecMainCode != tt.code || st.ExecMainStatus != tt.status {
				t.Errorf("result %s code %d status %d, want %s %d %d", st.Result, st.ExecMainCode, st.ExecMainStatus, tt.result, tt.code, tt.status)
			}
			f.w.mu.Lock()
			restarted, sigs := len(f.w.restart) > 0, slices.Clone(f.w.signals)
			f.w.mu.Unlock()
			if tt.restart {
				deadline := time.Now().Add(5 * time.Second)
				for !restarted && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
					f.w.mu.Lock()
					restarted = len(f.w.restart) > 0
					f.w.mu.Unlock()
				}
			}
			if restarted != tt.restart {
				t.Errorf("restart requested = %v, want %v", restarted, tt.restart)
			}
			for _, s := range tt.signals {
				if !slices.Contains(sigs, s) {
					t.Errorf("signals %v lack %s", sigs, s)
				}
			}
		})
	}
}

// TestAdoptedStartIsNoop: a start job after re-adoption (the default
// target) must not spawn a second instance.
func TestAdoptedStartIsNoop(t *testing.T) {
	for _, st := range []SubState{Running, Exited} {
		f := newFixture(t, newUnit(nil))
		f.s.Adopt(Adoption{SubState: st, MainPID: map[SubState]int{Running: 4_100_001}[st]}, &pidWatcher{})
		t.Cleanup(func() { f.s.Release() }) // stops the watch; nothing is killed
		if err := f.start(t); err != nil {
			t.Fatalf("%s: Start: %v", st, err)
		}
		f.w.mu.Lock()
		n := len(f.w.specs)
		f.w.mu.Unlock()
		if n != 0 {
			t.Errorf("%s: Start after Adopt spawned %d processes", st, n)
		}
	}
}

// TestAdoptOnlyInactive: a service that already runs is not adopted over.
func TestAdoptOnlyInactive(t *testing.T) {
	f := newFixture(t, newUnit(nil))
	if err := f.start(t); err != nil {
		t.Fatal(err)
	}
	pid := f.s.Status().MainPID
	if f.s.Adopt(Adoption{SubState: Running, MainPID: 4_100_002}, &pidWatcher{}) {
		t.Error("Adopt took over a running service")
	}
	if got := f.s.Status().MainPID; got != pid {
		t.Errorf("MainPID %d, want %d", got, pid)
	}
	f.stop(t)
}

func ptr[T any](v T) *T { return &v }

// TestAdoptStrayAfterFailed: a failed unit was started again and the core
// died before it recorded the new main process, so the record still says
// failed. Recovery must adopt the process it finds in the cgroup; otherwise
// nothing tracks it, a stop leaves it running and a start spawns a second.
func TestAdoptStrayAfterFailed(t *testing.T) {
	for _, rec := range []Adoption{
		{SubState: Failed, Result: Unknown},
		{SubState: Dead},
	} {
		const stray = 4_100_003
		f := newFixture(t, newUnit(nil))
		f.w.mu.Lock()
		f.w.alive[stray] = "stray"
		f.w.mu.Unlock()
		pw := &pidWatcher{}
		f.s.Adopt(rec, pw)
		if !f.s.AdoptStray(stray, 7, pw) {
			t.Fatalf("%s: AdoptStray refused the process in the cgroup", rec.SubState)
		}
		if st := f.s.Status(); st.SubState != Running || st.MainPID != stray {
			t.Fatalf("%s: after AdoptStray %s with MainPID %d, want running with %d", rec.SubState, st.SubState, st.MainPID, stray)
		}
		if err := f.start(t); err != nil {
			t.Fatalf("%s: Start: %v", rec.SubState, err)
		}
		f.w.mu.Lock()
		n := len(f.w.specs)
		f.w.mu.Unlock()
		if n != 0 {
			t.Errorf("%s: Start after AdoptStray spawned %d processes", rec.SubState, n)
		}
		done := make(chan struct{})
		go func() { f.stop(t); close(done) }()
		f.waitState(t, StopSigterm)
		pw.exit(t, stray, sigStatus(unix.SIGTERM))
		<-done
		f.w.mu.Lock()
		sigs := slices.Clone(f.w.signals)
		f.w.mu.Unlock()
		if !slices.Contains(sigs, itoa(stray)+":TERM") {
			t.Errorf("%s: stop sent %v, want SIGTERM to the adopted process %d", rec.SubState, sigs, stray)
		}
		if st := f.s.Status(); st.SubState != Dead {
			t.Errorf("%s: after stop %s, want dead", rec.SubState, st.SubState)
		}
	}
}
