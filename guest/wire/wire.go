// Package wire is the host↔guest protocol of VM pods: length-prefixed
// frames carrying a stream ID, multiplexed over one byte stream (the
// virtio-serial port "agent"; vsock later). It is stdlib-only on purpose:
// the guest agent that links it is PID 1 of every VM, and under TCG each
// extra megabyte of binary is boot time, which rules out gRPC and ttrpc.
//
// A frame is
//
//	uint32 length (big-endian) of what follows
//	uint32 stream ID
//	uint8  kind
//	payload (length-5 bytes)
//
// A stream starts with a Call frame (JSON Request) from either side and is
// answered with a Reply frame (JSON Response). Unary calls end there;
// streaming calls (start, exec, dial) go on with Stdin/Stdout/Stderr data
// frames, CloseStdin, Signal and Resize frames, and end with an Exit frame.
// The host opens odd stream IDs and the guest even ones, so both may open
// streams without agreeing first. See docs/VM.md.
package wire

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Kind is what a frame carries.
type Kind uint8

// Frame kinds.
const (
	Call       Kind = 1 // JSON Request; opens the stream
	Reply      Kind = 2 // JSON Response; ends a unary stream
	Stdin      Kind = 3 // data host→guest (or bytes to a dialled port)
	Stdout     Kind = 4 // data guest→host
	Stderr     Kind = 5
	CloseStdin Kind = 6 // no more Stdin
	Exit       Kind = 7 // JSON ExitStatus; ends a streaming call
	Signal     Kind = 8 // JSON {"signal":N}: deliver to the stream's process
	Resize     Kind = 9 // JSON {"width":W,"height":H}
)

// MaxPayload bounds a frame so a corrupt length cannot make the reader
// allocate gigabytes.
const MaxPayload = 1 << 20

// Frame is one unit on the wire.
type Frame struct {
	Stream uint32
	Kind   Kind
	Data   []byte
}

// Request opens a stream.
type Request struct {
	Method string          `json:"method"`
	Args   json.RawMessage `json:"args,omitempty"`
}

// Response answers a Request; Error is non-empty on failure.
type Response struct {
	Error  string          `json:"error,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
}

// ExitStatus ends a streaming call: the process's exit code, or the
// signal that killed it (Code is then 128+Signal, as a shell reports it).
type ExitStatus struct {
	Code   int    `json:"code"`
	Signal int    `json:"signal,omitempty"`
	Error  string `json:"error,omitempty"` // the call failed after its Reply
}

// WriteFrame writes f in one Write, so concurrent writers serialised by a
// mutex never interleave partial frames.
func WriteFrame(w io.Writer, f Frame) error {
	if len(f.Data) > MaxPayload {
		return fmt.Errorf("wire: frame of %d bytes exceeds %d", len(f.Data), MaxPayload)
	}
	buf := make([]byte, 9+len(f.Data))
	binary.BigEndian.PutUint32(buf[0:], uint32(5+len(f.Data)))
	binary.BigEndian.PutUint32(buf[4:], f.Stream)
	buf[8] = byte(f.Kind)
	copy(buf[9:], f.Data)
	_, err := w.Write(buf)
	return err
}

// ReadFrame reads one frame.
func ReadFrame(r io.Reader) (Frame, error) {
	var hdr [9]byte
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n < 5 || n-5 > MaxPayload {
		return Frame{}, fmt.Errorf("wire: bad frame length %d", n)
	}
	if _, err := io.ReadFull(r, hdr[4:]); err != nil {
		return Frame{}, fmt.Errorf("wire: short frame header: %w", err)
	}
	f := Frame{Stream: binary.BigEndian.Uint32(hdr[4:8]), Kind: Kind(hdr[8]), Data: make([]byte, n-5)}
	if _, err := io.ReadFull(r, f.Data); err != nil {
		return Frame{}, fmt.Errorf("wire: short frame: %w", err)
	}
	return f, nil
}

// ErrClosed is returned by a stream whose connection is gone.
var ErrClosed = errors.New("wire: connection closed")

// Handler serves a stream the peer opened; it runs in its own goroutine
// and the stream is closed when it returns.
type Handler func(s *Stream, req Request)

// Mux multiplexes streams over one connection.
type Mux struct {
	w       io.Writer
	r       io.Reader
	handler Handler

	wmu sync.Mutex // one frame at a time

	mu      sync.Mutex
	next    uint32
	streams map[uint32]*Stream
	err     error // set once the read loop ended
	done    chan struct{}
}

// NewMux wraps a connection. host selects the ID parity (host odd, guest
// even); handler serves the peer's calls (nil: refuse them).
func NewMux(rw io.ReadWriter, host bool, handler Handler) *Mux {
	m := &Mux{w: rw, r: bufio.NewReaderSize(rw, 64<<10), handler: handler,
		streams: map[uint32]*Stream{}, done: make(chan struct{})}
	if host {
		m.next = 1
	} else {
		m.next = 2
	}
	return m
}

// Run reads frames until the connection fails, then fails every stream.
func (m *Mux) Run() error {
	var err error
	for {
		var f Frame
		if f, err = ReadFrame(m.r); err != nil {
			break
		}
		m.mu.Lock()
		s := m.streams[f.Stream]
		if s == nil && f.Kind == Call {
			s = m.newStreamLocked(f.Stream)
		}
		m.mu.Unlock()
		if s == nil {
			continue // a late frame of a stream already closed
		}
		if f.Kind == Call && s.opened {
			continue
		}
		if f.Kind == Call {
			s.opened = true
			var req Request
			if jerr := json.Unmarshal(f.Data, &req); jerr != nil || m.handler == nil {
				s.Reply(nil, fmt.Errorf("bad call: %v", jerr))
				s.Close()
				continue
			}
			go func() {
				defer s.Close()
				m.handler(s, req)
			}()
			continue
		}
		s.push(f)
	}
	if errors.Is(err, io.EOF) {
		err = ErrClosed
	}
	m.mu.Lock()
	m.err = err
	for _, s := range m.streams {
		s.fail()
	}
	m.mu.Unlock()
	close(m.done)
	return err
}

// Done is closed when the connection is gone.
func (m *Mux) Done() <-chan struct{} { return m.done }

func (m *Mux) newStreamLocked(id uint32) *Stream {
	s := &Stream{ID: id, m: m, notify: make(chan struct{}, 1)}
	m.streams[id] = s
	return s
}

func (m *Mux) send(f Frame) error {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	select {
	case <-m.done:
		return ErrClosed
	default:
	}
	return WriteFrame(m.w, f)
}

// Open starts a stream with a call of method with args (JSON-encoded).
func (m *Mux) Open(method string, args any) (*Stream, error) {
	raw, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(Request{Method: method, Args: raw})
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	if m.err != nil {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	id := m.next
	m.next += 2
	s := m.newStreamLocked(id)
	s.opened = true
	m.mu.Unlock()
	if err := m.send(Frame{Stream: id, Kind: Call, Data: data}); err != nil {
		s.Close()
		return nil, fmt.Errorf("wire: call %s: %w", method, err)
	}
	return s, nil
}

// Call is a unary call: it opens a stream, waits for the Reply and
// decodes its result into out (when non-nil).
func (m *Mux) Call(ctx context.Context, method string, args, out any) error {
	s, err := m.Open(method, args)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.WaitReply(ctx, out)
}

// Stream is one call and what flows on it.
type Stream struct {
	ID     uint32
	m      *Mux
	opened bool

	mu     sync.Mutex
	queue  []Frame
	failed bool
	closed bool
	notify chan struct{}
}

// push queues f without blocking the read loop (a slow consumer must not
// stall every other stream).
func (s *Stream) push(f Frame) {
	s.mu.Lock()
	s.queue = append(s.queue, f)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *Stream) fail() {
	s.mu.Lock()
	s.failed = true
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Recv returns the next frame from the peer.
func (s *Stream) Recv(ctx context.Context) (Frame, error) {
	for {
		s.mu.Lock()
		if len(s.queue) > 0 {
			f := s.queue[0]
			s.queue = s.queue[1:]
			s.mu.Unlock()
			return f, nil
		}
		failed := s.failed
		s.mu.Unlock()
		if failed {
			return Frame{}, ErrClosed
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return Frame{}, ctx.Err()
		}
	}
}

// WaitReply waits for the Reply frame and decodes its result into out.
func (s *Stream) WaitReply(ctx context.Context, out any) error {
	for {
		f, err := s.Recv(ctx)
		if err != nil {
			return err
		}
		if f.Kind != Reply {
			continue
		}
		var r Response
		if err := json.Unmarshal(f.Data, &r); err != nil {
			return fmt.Errorf("wire: bad reply: %w", err)
		}
		if r.Error != "" {
			return errors.New(r.Error)
		}
		if out != nil && len(r.Result) > 0 {
			return json.Unmarshal(r.Result, out)
		}
		return nil
	}
}

// Send sends one frame of kind on the stream.
func (s *Stream) Send(kind Kind, data []byte) error {
	return s.m.send(Frame{Stream: s.ID, Kind: kind, Data: data})
}

// SendJSON sends v encoded as JSON.
func (s *Stream) SendJSON(kind Kind, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.Send(kind, data)
}

// Reply answers the stream's call with result or err.
func (s *Stream) Reply(result any, err error) error {
	var r Response
	if err != nil {
		r.Error = err.Error()
	} else if result != nil {
		raw, jerr := json.Marshal(result)
		if jerr != nil {
			return jerr
		}
		r.Result = raw
	}
	return s.SendJSON(Reply, r)
}

// Writer returns an io.Writer that sends data frames of kind, split at
// MaxPayload.
func (s *Stream) Writer(kind Kind) io.Writer { return streamWriter{s, kind} }

type streamWriter struct {
	s    *Stream
	kind Kind
}

func (w streamWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := min(len(p), 32<<10)
		if err := w.s.Send(w.kind, p[:c]); err != nil {
			return n, err
		}
		n += c
		p = p[c:]
	}
	return n, nil
}

// Close forgets the stream; later frames for it are dropped.
func (s *Stream) Close() {
	s.m.mu.Lock()
	delete(s.m.streams, s.ID)
	s.m.mu.Unlock()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}
