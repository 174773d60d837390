package unit

import (
	"fmt"
	"strings"
)

// assignment is one "Key=Value" line of a unit file, with the section it
// appeared in and where, so that every later diagnostic can name file:line.
type assignment struct {
	Section string
	Key     string
	Value   string
	File    string
	Line    int
}

// SyntaxError is a unit file that cannot be tokenised at all. systemd would
// skip the line; Corral refuses the unit (LoadState "error") because a unit
// whose lines are silently dropped may start with a different meaning.
type SyntaxError struct {
	File string
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// parseText splits unit file text into assignments following
// systemd.syntax(7): '#'/';' comments, [Section] headers, trailing-backslash
// continuation lines (comment lines inside a continuation are skipped) and
// whitespace trimming around keys and values. Values are returned raw:
// quoting and escapes are the business of the directive that reads them.
func parseText(file, text string) ([]assignment, error) {
	var (
		out     []assignment
		section string
		cont    strings.Builder // pending continued line
		contAt  int             // line number where the continuation started
		inCont  bool
	)
	lines := strings.Split(text, "\n")
	for i, raw := range lines {
		n := i + 1
		line := strings.TrimRight(raw, "\r")
		if inCont {
			t := strings.TrimLeft(line, " \t")
			if strings.HasPrefix(t, "#") || strings.HasPrefix(t, ";") {
				continue
			}
			if oddTrailingBackslashes(line) {
				cont.WriteString(strings.TrimSuffix(line, "\\"))
				cont.WriteByte(' ')
				continue
			}
			cont.WriteString(line)
			inCont = false
			a, err := parseLine(file, contAt, section, cont.String())
			if err != nil {
				return nil, err
			}
			out = append(out, a)
			cont.Reset()
			continue
		}
		t := strings.TrimSpace(line)
		if t == "" || t[0] == '#' || t[0] == ';' {
			continue
		}
		if t[0] == '[' {
			if !strings.HasSuffix(t, "]") || len(t) < 3 {
				return nil, &SyntaxError{file, n, fmt.Sprintf("unterminated or empty section header %q", t)}
			}
			name := t[1 : len(t)-1]
			if strings.ContainsAny(name, "[]") {
				return nil, &SyntaxError{file, n, fmt.Sprintf("invalid section header %q", t)}
			}
			section = name
			continue
		}
		if oddTrailingBackslashes(line) {
			inCont = true
			contAt = n
			cont.WriteString(strings.TrimSuffix(line, "\\"))
			cont.WriteByte(' ')
			continue
		}
		a, err := parseLine(file, n, section, line)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	if inCont { // file ended inside a continuation: use what we have, like systemd
		a, err := parseLine(file, contAt, section, cont.String())
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// oddTrailingBackslashes reports whether line ends in an odd number of
// backslashes, i.e. the last one is not itself escaped.
func oddTrailingBackslashes(line string) bool {
	n := 0
	for i := len(line) - 1; i >= 0 && line[i] == '\\'; i-- {
		n++
	}
	return n%2 == 1
}

func parseLine(file string, n int, section, line string) (assignment, error) {
	if section == "" {
		return assignment{}, &SyntaxError{file, n, "assignment outside of any section"}
	}
	k, v, ok := strings.Cut(line, "=")
	k = strings.TrimSpace(k)
	if !ok || k == "" || strings.ContainsAny(k, " \t") {
		return assignment{}, &SyntaxError{file, n, fmt.Sprintf("line is neither a section header, a comment nor an assignment: %q", strings.TrimSpace(line))}
	}
	return assignment{Section: section, Key: k, Value: strings.TrimSpace(v), File: file, Line: n}, nil
}
