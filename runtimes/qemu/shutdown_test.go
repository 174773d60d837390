package qemu

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// TestShutdownRefusesNewPods: once the agent is stopping, RunPodSandbox
// fails with Unavailable instead of booting a VM that Shutdown would not
// see; Shutdown of a backend without pods is a no-op, and repeatable.
func TestShutdownRefusesNewPods(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"vmlinux", "initrd.img", "busybox.ext4"} {
		os.WriteFile(filepath.Join(dir, f), nil, 0o644)
	}
	// A fake emulator on PATH: Ready needs one, and nothing is booted.
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	os.WriteFile(filepath.Join(bin, "qemu-fake"), []byte("#!/bin/sh\nexit 1\n"), 0o755)
	b, err := New(nil, Config{Kernel: filepath.Join(dir, "vmlinux"), Initrd: filepath.Join(dir, "initrd.img"),
		QEMU: filepath.Join(bin, "qemu-fake"), RunDir: filepath.Join(dir, "run"), Log: slog.New(slog.DiscardHandler),
		Host: &HostInfo{}})
	if err != nil {
		t.Fatal(err)
	}
	if ok, reason, msg := b.Ready(context.Background()); !ok {
		t.Fatalf("Ready = false %s %s", reason, msg)
	}
	for i := 0; i < 2; i++ {
		if err := b.Shutdown(context.Background()); err != nil {
			t.Fatalf("Shutdown #%d: %v", i+1, err)
		}
	}
	_, err = b.RunPodSandbox(context.Background(), "p1", &runtimeapi.PodSandboxConfig{}, "vm")
	if !errors.Is(err, runtimes.ErrUnavailable) {
		t.Fatalf("RunPodSandbox after Shutdown: %v, want ErrUnavailable", err)
	}
}
