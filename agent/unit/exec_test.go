package unit

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSplitWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{`a b  c`, []string{"a", "b", "c"}, false},
		{`"a b" 'c d'`, []string{"a b", "c d"}, false},
		{`a"b c"d`, []string{"ab cd"}, false},
		{`"" x`, []string{"", "x"}, false},
		{`a\ b`, []string{"a b"}, false},
		{`"tab\there" \x41\101\u00e9`, []string{"tab\there", "AAé"}, false},
		{`'it\'s'`, []string{"it's"}, false},
		{`$FOO ${BAR}`, []string{"$FOO", "${BAR}"}, false},
		{`"unterminated`, nil, true},
		{`bad\q`, nil, true},
	}
	for _, tt := range tests {
		got, err := splitWords(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("splitWords(%q) err = %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("splitWords(%q) (-want +got)\n%s", tt.in, diff)
		}
	}
	if _, err := splitWords(`"x`); !errors.Is(err, errUnterminatedQuote) {
		t.Errorf("unterminated quote error = %v", err)
	}
}

func TestParseCommand(t *testing.T) {
	tests := []struct {
		in    string
		want  Command
		warns int
		err   bool
	}{
		{"/bin/echo hi", Command{Path: "/bin/echo", Args: []string{"/bin/echo", "hi"}}, 0, false},
		{"-/bin/false", Command{Path: "/bin/false", Args: []string{"/bin/false"}, Flags: IgnoreFailure}, 0, false},
		{"@/bin/sh sh -c 'echo $X'", Command{Path: "/bin/sh", Args: []string{"sh", "-c", "echo $X"}, Flags: Argv0}, 0, false},
		{"+-:/bin/true", Command{Path: "/bin/true", Args: []string{"/bin/true"}, Flags: FullPrivileges | IgnoreFailure | NoEnvExpand}, 0, false},
		{"!/bin/true", Command{Path: "/bin/true", Args: []string{"/bin/true"}}, 1, false},
		{"!!/bin/true", Command{Path: "/bin/true", Args: []string{"/bin/true"}}, 1, false},
		{"sleep 1", Command{Path: "sleep", Args: []string{"sleep", "1"}}, 0, false},
		{"./run.sh", Command{}, 0, true},
		{"@/bin/sh", Command{}, 0, true},
		{"-", Command{}, 0, true},
		{`/bin/echo "oops`, Command{}, 0, true},
	}
	for _, tt := range tests {
		warns := 0
		got, err := parseCommand(tt.in, func(string) { warns++ })
		if (err != nil) != tt.err {
			t.Errorf("parseCommand(%q) err = %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("parseCommand(%q) (-want +got)\n%s", tt.in, diff)
		}
		if warns != tt.warns {
			t.Errorf("parseCommand(%q) warnings = %d, want %d", tt.in, warns, tt.warns)
		}
	}
}
