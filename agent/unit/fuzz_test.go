package unit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seedUnits adds every real unit file under testdata/units to the corpus.
func seedUnits(f *testing.F, add func(name, text string)) {
	paths, err := filepath.Glob("testdata/units/*")
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seed units in testdata/units: %v", err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		add(filepath.Base(p), string(b))
	}
}

// FuzzParse feeds arbitrary text through the whole pipeline for each unit
// type: it must never panic, always return a unit with a known LoadState,
// and every warning must point at a real line of the input.
func FuzzParse(f *testing.F) {
	seedUnits(f, func(name, text string) { f.Add(name, text) })
	f.Add("x.service", "[Service]\nExecStart=/bin/echo \"a\\x41\" 'b' \\\n  c\nEnvironment=\"A=1\" B=\\\"\n")
	f.Add("x.socket", "[Socket]\nListenStream=[::1]:80\nAccept=yes\n")
	f.Add("a-b.slice", "[Slice]\nMemoryMax=10%\nCPUQuota=1%\n")
	l := NewLoader(f.TempDir())
	l.Host = testHost("/r")
	f.Fuzz(func(t *testing.T, name, text string) {
		if !ValidName(name) || IsTemplate(name) {
			name = "fuzz.service"
		}
		u := l.ParseString(name, text)
		switch u.LoadState {
		case LoadLoaded:
			if u.Type == TypeService && (u.Service == nil || len(u.Service.ExecStart) > 1 && u.Service.Type != Oneshot) {
				t.Fatalf("loaded service violates invariants: %+v", u.Service)
			}
			if u.Type == TypeSocket && len(u.Socket.Listen) == 0 {
				t.Fatal("loaded socket without Listen")
			}
		case LoadError, LoadBadSetting:
			if !strings.Contains(u.LoadError, name) {
				t.Fatalf("LoadError %q does not name the unit", u.LoadError)
			}
		default:
			t.Fatalf("unexpected LoadState %q", u.LoadState)
		}
		lines := strings.Count(text, "\n") + 1
		for _, w := range u.Warnings {
			if w.File != name || w.Line < 1 || w.Line > lines {
				t.Fatalf("warning %q points outside the input (%d lines)", w, lines)
			}
		}
	})
}

// FuzzSpecifiers checks expansion never panics, leaves text without '%'
// untouched, and turns "%%" into "%".
func FuzzSpecifiers(f *testing.F) {
	seedUnits(f, func(name, text string) { f.Add(name, text) })
	f.Add("getty@tty1.service", "%n %N %p %P %i %I %j %J %f %t %S %C %L %E %T %V %h %u %U %g %G %H %l %m %b %v %a %o %w %W %% %")
	f.Add("a-b@c\\x2dd.service", "%f%i%I%j%J%Z")
	h := testHost("/r")
	f.Fuzz(func(t *testing.T, name, in string) {
		c := specCtx{host: &h, name: name}
		out, _ := c.expand(in)
		if !strings.Contains(in, "%") && out != in {
			t.Fatalf("expand changed text without specifiers: %q → %q", in, out)
		}
		if in == "%%" && out != "%" {
			t.Fatalf("%%%% → %q", out)
		}
		_ = Unescape(name)
		_, _, _ = SplitName(name)
	})
}
