package unit

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkLoad10000 loads 10,000 generated services that want, require
// and order after each other, then links the graph (FillInverse), which
// is what the manager does at start-up.
func BenchmarkLoad10000(b *testing.B) {
	const n = 10000
	dir := b.TempDir()
	for i := 0; i < n; i++ {
		text := fmt.Sprintf("[Unit]\nDescription=unit %d\nWants=u%d.service\nRequires=u%d.service\nAfter=u%d.service u%d.service\n"+
			"[Service]\nExecStart=/bin/sleep %d\nRestart=on-failure\nEnvironment=N=%d\n[Install]\nWantedBy=multi-user.target\n",
			i, (i+1)%n, (i+7)%n, (i+1)%n, (i+7)%n, i, i)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("u%d.service", i)), []byte(text), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	root := b.TempDir()
	b.ResetTimer()
	for b.Loop() {
		l := NewLoader(root, dir)
		names, err := l.Names()
		if err != nil {
			b.Fatal(err)
		}
		units := make([]*Unit, 0, len(names))
		for _, name := range names {
			u := l.Load(name)
			if u.LoadState != LoadLoaded {
				b.Fatalf("%s: %s %s", name, u.LoadState, u.LoadError)
			}
			units = append(units, u)
		}
		FillInverse(units)
		if len(units) < n {
			b.Fatalf("loaded %d units, want at least %d", len(units), n)
		}
	}
}
