package logs

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Stream names where a line came from. It is a word without spaces because it
// is a field of the on-disk record.
type Stream string

// Streams. Core carries messages that Corral itself writes about a unit
// (started, exited with status=1, ...), interleaved with its output as
// systemd's journal does.
const (
	Stdout Stream = "stdout"
	Stderr Stream = "stderr"
	Core   Stream = "core"
)

// Entry is one log record.
type Entry struct {
	Time   time.Time
	Unit   string
	Stream Stream
	Msg    string
}

// validStream keeps the record parseable: the stream is the second
// space-separated field.
func validStream(s Stream) error {
	if s == "" || strings.ContainsAny(string(s), " \t\r\n\\") {
		return fmt.Errorf("invalid log stream %q", s)
	}
	return nil
}

// appendRecord formats one record, `<RFC3339Nano UTC> <stream> <msg>\n`.
// msg is escaped so that a record is always exactly one line: "\n" and "\r"
// become `\n` and `\r` (a bare CR would otherwise be eaten by line readers),
// and a backslash is doubled so the escaping can be undone exactly.
func appendRecord(b []byte, t time.Time, stream Stream, msg []byte) []byte {
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, ' ')
	b = append(b, stream...)
	b = append(b, ' ')
	for {
		i := bytes.IndexAny(msg, "\\\n\r")
		if i < 0 {
			b = append(b, msg...)
			break
		}
		b = append(b, msg[:i]...)
		switch msg[i] {
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		}
		msg = msg[i+1:]
	}
	return append(b, '\n')
}

var errBadRecord = errors.New("malformed log record")

// parseRecord is the inverse of appendRecord. line has no trailing newline.
func parseRecord(line []byte) (t time.Time, stream Stream, msg string, err error) {
	i := bytes.IndexByte(line, ' ')
	if i < 0 {
		return t, "", "", errBadRecord
	}
	t, err = time.Parse(time.RFC3339Nano, string(line[:i]))
	if err != nil {
		return t, "", "", errBadRecord
	}
	rest := line[i+1:]
	j := bytes.IndexByte(rest, ' ')
	if j <= 0 {
		return t, "", "", errBadRecord
	}
	stream = Stream(rest[:j])
	return t, stream, unescape(rest[j+1:]), nil
}

func unescape(b []byte) string {
	if bytes.IndexByte(b, '\\') < 0 {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\\' || i+1 == len(b) {
			sb.WriteByte(c)
			continue
		}
		i++
		switch b[i] {
		case 'n':
			sb.WriteByte('\n')
		case 'r':
			sb.WriteByte('\r')
		case '\\':
			sb.WriteByte('\\')
		default: // not something we wrote; keep it as it is
			sb.WriteByte('\\')
			sb.WriteByte(b[i])
		}
	}
	return sb.String()
}
