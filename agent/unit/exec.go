package unit

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// errUnterminatedQuote is a syntax error: the unit is refused (LoadState
// "error") instead of guessing where the quote should have ended.
var errUnterminatedQuote = errors.New("unterminated quoted string")

// splitWords splits s into words the way systemd's extract_first_word() does
// with EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE: whitespace separates words, single
// and double quotes group (anywhere in a word), and C escapes are decoded.
func splitWords(s string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool // inside a word
		quote byte
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case c == '\\':
			if i+1 >= len(s) {
				cur.WriteByte('\\')
				in = true
				continue
			}
			n, w, err := cunescapeOne(s[i+1:])
			if err != nil {
				return nil, err
			}
			cur.WriteString(w)
			i += n
			in = true
		case quote != 0:
			cur.WriteByte(c)
		case c == '\'' || c == '"':
			quote = c
			in = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quote != 0 {
		return nil, errUnterminatedQuote
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

// cunescapeOne decodes the escape sequence at the start of s (after the
// backslash), returning the bytes consumed and the decoded text.
func cunescapeOne(s string) (int, string, error) {
	switch c := s[0]; c {
	case 'a':
		return 1, "\a", nil
	case 'b':
		return 1, "\b", nil
	case 'f':
		return 1, "\f", nil
	case 'n':
		return 1, "\n", nil
	case 'r':
		return 1, "\r", nil
	case 't':
		return 1, "\t", nil
	case 'v':
		return 1, "\v", nil
	case 's':
		return 1, " ", nil
	case '\\', '"', '\'', ' ', ';':
		return 1, string(c), nil
	case 'x':
		if len(s) >= 3 {
			if v, err := strconv.ParseUint(s[1:3], 16, 8); err == nil && v != 0 {
				return 3, string([]byte{byte(v)}), nil
			}
		}
	case 'u', 'U':
		n := 4
		if c == 'U' {
			n = 8
		}
		if len(s) > n {
			if v, err := strconv.ParseUint(s[1:n+1], 16, 32); err == nil && v != 0 && utf8.ValidRune(rune(v)) {
				return n + 1, string(rune(v)), nil
			}
		}
	case '0', '1', '2', '3':
		if len(s) >= 3 {
			if v, err := strconv.ParseUint(s[:3], 8, 8); err == nil && v != 0 {
				return 3, string([]byte{byte(v)}), nil
			}
		}
	}
	return 0, "", fmt.Errorf("invalid escape sequence \\%s", firstRune(s))
}

func firstRune(s string) string {
	_, n := utf8.DecodeRuneInString(s)
	return s[:n]
}

// parseCommand parses one Exec*= value: the prefixes '-', '@', '+', ':',
// '!' and '!!', then the quoted and escaped words. '!' and '!!' (ambient
// capability tricks) are accepted and reported through warn because Corral
// runs such commands with full privileges anyway.
//
// $VAR and ${VAR} are left in place on purpose; see Command.
func parseCommand(s string, warn func(string)) (Command, error) {
	var cmd Command
	i := 0
	seenBang := false
loop:
	for ; i < len(s); i++ {
		switch s[i] {
		case '-':
			cmd.Flags |= IgnoreFailure
		case '@':
			cmd.Flags |= Argv0
		case '+':
			cmd.Flags |= FullPrivileges
		case ':':
			cmd.Flags |= NoEnvExpand
		case '!':
			if !seenBang {
				seenBang = true
				if strings.HasPrefix(s[i:], "!!") {
					i++
					warn("'!!' prefix is not supported; command runs with full privileges")
				} else {
					warn("'!' prefix is not supported; command runs with full privileges")
				}
			}
		default:
			break loop
		}
	}
	words, err := splitWords(s[i:])
	if err != nil {
		return Command{}, err
	}
	if len(words) > 0 && words[len(words)-1] == ";" { // old multi-command separator at end: drop
		words = words[:len(words)-1]
	}
	if len(words) == 0 {
		return Command{}, errors.New("empty command line")
	}
	cmd.Path = words[0]
	if cmd.Flags&Argv0 != 0 {
		if len(words) < 2 {
			return Command{}, errors.New("'@' prefix needs an argv[0] after the path")
		}
		cmd.Args = words[1:]
	} else {
		cmd.Args = words
	}
	if strings.Contains(cmd.Path, "/") && !strings.HasPrefix(cmd.Path, "/") {
		return Command{}, &badSettingError{fmt.Sprintf("executable path %q is not absolute", cmd.Path)}
	}
	return cmd, nil
}

// badSettingError marks a value error that makes the whole unit unusable
// (LoadState "bad-setting") rather than just the one assignment.
type badSettingError struct{ msg string }

func (e *badSettingError) Error() string { return e.msg }
