package cni

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"corral.io/corral/agent/proc"
	"corral.io/corral/agent/reaper"
)

func TestMain(m *testing.M) {
	proc.MaybeTrampoline()
	os.Exit(m.Run())
}

func TestConfigPicksFirstFile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   map[string]string
		want    string // network name, "" = error
		wantErr string
	}{
		{name: "none", files: nil, wantErr: "no CNI configuration"},
		{name: "conflist", files: map[string]string{
			"20-b.conflist": `{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"bridge"}]}`,
			"10-a.conflist": `{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge"}]}`,
		}, want: "a"},
		{name: "single conf", files: map[string]string{
			"10-c.conf": `{"cniVersion":"1.0.0","name":"c","type":"bridge"}`,
		}, want: "c"},
		{name: "broken", files: map[string]string{"10-x.conflist": `{`}, wantErr: "10-x.conflist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, body := range tc.files {
				os.WriteFile(filepath.Join(dir, n), []byte(body), 0o644)
			}
			l, err := New(dir, nil, t.TempDir()).Config()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || l.Name != tc.want {
				t.Fatalf("Config() = %v, %v; want network %q", l, err, tc.want)
			}
		})
	}
}

// TestCommand runs real processes through the spawner and the reaper.
func TestCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := reaper.New(slog.Default())
	go r.Run(ctx)
	x := Exec{Spawner: &proc.Spawner{}, Reaper: r}
	out, err := x.Command(ctx, nil, "/bin/sh", "-c", "echo hi")
	if err != nil || string(out) != "hi\n" {
		t.Fatalf("echo: %q %v", out, err)
	}
	if _, err := x.Command(ctx, nil, "/bin/sh", "-c", "echo bad >&2; exit 3"); err == nil || !strings.Contains(err.Error(), "bad") {
		t.Fatalf("exit 3: err = %v, want one naming stderr", err)
	}
	tctx, tcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer tcancel()
	if _, err := x.Command(tctx, nil, "/bin/sleep", "10"); err == nil {
		t.Fatal("sleep past the deadline did not fail")
	}
}
