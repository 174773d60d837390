package unit

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseText(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []assignment
		err  string
	}{
		{
			name: "sections comments and trimming",
			text: "# c\n; c\n[Unit]\n  Description = hello world  \n\n[Service]\nExecStart=/bin/true\n",
			want: []assignment{
				{Section: "Unit", Key: "Description", Value: "hello world", File: "f", Line: 4},
				{Section: "Service", Key: "ExecStart", Value: "/bin/true", File: "f", Line: 7},
			},
		},
		{
			name: "continuation with comment lines inside",
			text: "[Service]\nExecStart=/bin/echo a \\\n# skipped\n; skipped too\n  b \\\n  c\nUser=x\n",
			want: []assignment{
				{Section: "Service", Key: "ExecStart", Value: "/bin/echo a    b    c", File: "f", Line: 2},
				{Section: "Service", Key: "User", Value: "x", File: "f", Line: 7},
			},
		},
		{
			name: "escaped backslash does not continue",
			text: "[Service]\nExecStart=/bin/echo a\\\\\nUser=x\n",
			want: []assignment{
				{Section: "Service", Key: "ExecStart", Value: `/bin/echo a\\`, File: "f", Line: 2},
				{Section: "Service", Key: "User", Value: "x", File: "f", Line: 3},
			},
		},
		{
			name: "continuation at end of file",
			text: "[Service]\nExecStart=/bin/echo \\",
			want: []assignment{{Section: "Service", Key: "ExecStart", Value: "/bin/echo", File: "f", Line: 2}},
		},
		{
			name: "empty value and CRLF",
			text: "[Unit]\r\nWants=\r\n",
			want: []assignment{{Section: "Unit", Key: "Wants", Value: "", File: "f", Line: 2}},
		},
		{name: "assignment before section", text: "Description=x\n", err: "f:1: assignment outside of any section"},
		{name: "no equals sign", text: "[Unit]\nhello world\n", err: `f:2: line is neither a section header, a comment nor an assignment: "hello world"`},
		{name: "unterminated header", text: "[Unit]\n[Service\n", err: `f:2: unterminated or empty section header "[Service"`},
		{name: "empty header", text: "[]\n", err: `f:1: unterminated or empty section header "[]"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseText("f", tt.text)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}
