package qemu

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExt4Size(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]int
		min   int64
	}{
		{"empty", nil, 16 << 20},
		{"one big file", map[string]int{"big": 10 << 20}, 26 << 20},
		{"many small", func() map[string]int {
			m := map[string]int{}
			for i := range 2000 {
				m[filepath.Join("d", strings.Repeat("x", i%50)+string(rune('a'+i%26))+"-"+string(rune('A'+i/26%26))+"-"+string(rune('0'+i/676)))] = 10
			}
			return m
		}(), 16<<20 + 2000*4096},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, size := range tc.files {
				p := filepath.Join(dir, n)
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ext4Size(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got < tc.min || got%(1<<20) != 0 {
				t.Errorf("ext4Size = %d, want ≥ %d and whole MiB", got, tc.min)
			}
		})
	}
	if _, err := ext4Size(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("ext4Size of a missing dir did not fail")
	}
}

func TestSlots(t *testing.T) {
	dir := t.TempDir()
	slots, err := createSlots(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(slots) != Slots {
		t.Fatalf("%d slots, want %d", len(slots), Slots)
	}
	for _, s := range slots {
		fi, err := os.Stat(s)
		if err != nil || fi.Size() != SlotSize {
			t.Fatalf("slot %s: %v %v, want %d bytes", s, fi, err, SlotSize)
		}
	}
	img := filepath.Join(dir, "img.ext4")
	content := bytes.Repeat([]byte("corral"), 100000)
	os.WriteFile(img, content, 0o644)
	if err := fillSlot(slots[1], img); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(slots[1])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, len(content)+4096)
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	if fi.Size() != SlotSize || !bytes.Equal(got[:len(content)], content) || !bytes.Equal(got[len(content):], make([]byte, 4096)) {
		t.Errorf("slot after fill: size %d, image at its start %v", fi.Size(), bytes.Equal(got[:len(content)], content))
	}
	if err := fillSlot(slots[2], filepath.Join(dir, "missing")); err == nil {
		t.Error("fill from a missing image did not fail")
	}
}
