package unit

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSpecifiers(t *testing.T) {
	h := testHost("/r")
	tests := []struct {
		unit, in, want string
		warns          int
	}{
		{"getty@tty1.service", "%n %N %p %i %I", "getty@tty1.service getty@tty1 getty tty1 tty1", 0},
		{"foo-bar@a-b\\x2dc.service", "%p|%P|%i|%I|%f|%j|%J", `foo-bar|foo/bar|a-b\x2dc|a/b-c|/a/b-c|bar|bar`, 0},
		{"var-lib.service", "%f", "/var/lib", 0},
		{"x.service", "%t %S %C %L %E %T %V", "/r/run /r/var/lib /r/var/cache /r/var/log /r/etc /r/tmp /r/var/tmp", 0},
		{"x.service", "%h %s %u %U %g %G", "/root /bin/sh root 0 root 0", 0},
		{"x.service", "%H %l %q %m %b %v %a %o %w", "node1.example.com node1 node1 mid bid 6.18.0 x86-64 debian 12", 0},
		{"x.service", "100%% %Z", "100% %Z", 1},
		{"x.service", "trailing %", "trailing %", 1},
	}
	for _, tt := range tests {
		c := specCtx{host: &h, name: tt.unit}
		got, warns := c.expand(tt.in)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: expand(%q) (-want +got)\n%s", tt.unit, tt.in, diff)
		}
		if len(warns) != tt.warns {
			t.Errorf("%s: expand(%q) warnings %q, want %d", tt.unit, tt.in, warns, tt.warns)
		}
	}
}

func TestNames(t *testing.T) {
	tests := []struct {
		name            string
		valid, template bool
		templateOf      string
	}{
		{"foo.service", true, false, ""},
		{"foo@.service", true, true, ""},
		{"foo@bar.service", true, false, "foo@.service"},
		{"-.slice", true, false, ""},
		{"foo.bar", false, false, ""},
		{"foo", false, false, ""},
		{"a@b@c.service", false, false, "a@.service"},
		{"sp ace.service", false, false, ""},
	}
	for _, tt := range tests {
		if got := ValidName(tt.name); got != tt.valid {
			t.Errorf("ValidName(%q) = %v", tt.name, got)
		}
		if got := IsTemplate(tt.name); got != tt.template && tt.valid {
			t.Errorf("IsTemplate(%q) = %v", tt.name, got)
		}
		if got := TemplateOf(tt.name); got != tt.templateOf && tt.valid {
			t.Errorf("TemplateOf(%q) = %q", tt.name, got)
		}
	}
}
