package sysinit

import (
	"context"
	"io"
	"log/slog"
)

// NewBootLogger logs everything to the console and copies warnings and
// errors to the kernel log (kmsg, may be nil), so that an early-boot error
// is never lost: it is on the serial console and in dmesg even when the
// console is not being watched.
func NewBootLogger(console, kmsg io.Writer, level slog.Level) *slog.Logger {
	var h slog.Handler = slog.NewTextHandler(console, &slog.HandlerOptions{Level: level})
	if kmsg != nil {
		k := slog.NewTextHandler(&prefixWriter{w: kmsg, prefix: "<4>corral: "}, &slog.HandlerOptions{
			Level:       slog.LevelWarn,
			ReplaceAttr: dropTime,
		})
		h = teeHandler{h, k}
	}
	return slog.New(h)
}

// dropTime removes the timestamp: the kernel stamps kmsg lines itself.
func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// prefixWriter writes each record as one write(2) with a prefix: /dev/kmsg
// takes one message per write, and the prefix carries its priority.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	if _, err := p.w.Write(append([]byte(p.prefix), b...)); err != nil {
		return 0, err
	}
	return len(b), nil
}

// teeHandler sends every record to two handlers, each filtering by its own
// level.
type teeHandler struct{ a, b slog.Handler }

func (t teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return t.a.Enabled(ctx, l) || t.b.Enabled(ctx, l)
}

func (t teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if t.a.Enabled(ctx, r.Level) {
		err = t.a.Handle(ctx, r.Clone())
	}
	if t.b.Enabled(ctx, r.Level) {
		if e := t.b.Handle(ctx, r); err == nil {
			err = e
		}
	}
	return err
}

func (t teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{t.a.WithAttrs(as), t.b.WithAttrs(as)}
}

func (t teeHandler) WithGroup(n string) slog.Handler {
	return teeHandler{t.a.WithGroup(n), t.b.WithGroup(n)}
}
