package wire

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"testing"
	"time"
)

func TestFrameRoundTrip(t *testing.T) {
	for _, f := range []Frame{
		{Stream: 1, Kind: Call, Data: []byte(`{"method":"ping"}`)},
		{Stream: 2, Kind: Stdout, Data: []byte{}},
		{Stream: 0xfffffffe, Kind: Exit, Data: bytes.Repeat([]byte("x"), MaxPayload)},
	} {
		var buf bytes.Buffer
		if err := WriteFrame(&buf, f); err != nil {
			t.Fatal(err)
		}
		got, err := ReadFrame(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if got.Stream != f.Stream || got.Kind != f.Kind || !bytes.Equal(got.Data, f.Data) {
			t.Errorf("round trip of stream %d kind %d: got stream %d kind %d len %d", f.Stream, f.Kind, got.Stream, got.Kind, len(got.Data))
		}
	}
}

func TestReadFrameRejects(t *testing.T) {
	for name, raw := range map[string][]byte{
		"length below header": {0, 0, 0, 4, 0, 0, 0, 1},
		"length too large":    {0x7f, 0, 0, 0, 0, 0, 0, 1, 1},
		"truncated payload":   {0, 0, 0, 9, 0, 0, 0, 1, 4, 'a'},
	} {
		if _, err := ReadFrame(bytes.NewReader(raw)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := WriteFrame(&bytes.Buffer{}, Frame{Data: make([]byte, MaxPayload+1)}); err == nil {
		t.Error("oversized frame written")
	}
}

// pair connects a host and a guest mux; the guest echoes "echo" calls and
// streams "count" calls back as Stdout frames then Exit.
func pair(t *testing.T) (*Mux, *Mux, func()) {
	h, g := net.Pipe()
	guest := NewMux(g, false, func(s *Stream, req Request) {
		switch req.Method {
		case "echo":
			var v map[string]string
			json.Unmarshal(req.Args, &v)
			s.Reply(v, nil)
		case "fail":
			s.Reply(nil, errors.New("it failed"))
		case "stdin":
			s.Reply(nil, nil)
			var got []byte
			for {
				f, err := s.Recv(context.Background())
				if err != nil {
					return
				}
				if f.Kind == CloseStdin {
					s.Send(Stdout, got)
					s.SendJSON(Exit, ExitStatus{Code: 3})
					return
				}
				got = append(got, f.Data...)
			}
		}
	})
	host := NewMux(h, true, nil)
	go guest.Run()
	go host.Run()
	return host, guest, func() { h.Close(); g.Close() }
}

func TestMuxCalls(t *testing.T) {
	host, _, done := pair(t)
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tc := range []struct {
		method  string
		args    any
		want    string
		wantErr string
	}{
		{"echo", map[string]string{"a": "b"}, "b", ""},
		{"fail", nil, "", "it failed"},
	} {
		var out map[string]string
		err := host.Call(ctx, tc.method, tc.args, &out)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("%s: err %v, want %q", tc.method, err, tc.wantErr)
			}
			continue
		}
		if err != nil || out["a"] != tc.want {
			t.Errorf("%s: %v %v, want %q", tc.method, out, err, tc.want)
		}
	}
}

func TestMuxStreamAndConcurrency(t *testing.T) {
	host, _, done := pair(t)
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() {
			s, err := host.Open("stdin", nil)
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			if err := s.WaitReply(ctx, nil); err != nil {
				errs <- err
				return
			}
			s.Writer(Stdin).Write([]byte("hello "))
			s.Writer(Stdin).Write([]byte("world"))
			s.Send(CloseStdin, nil)
			var out []byte
			for {
				f, err := s.Recv(ctx)
				if err != nil {
					errs <- err
					return
				}
				if f.Kind == Stdout {
					out = append(out, f.Data...)
				}
				if f.Kind == Exit {
					var x ExitStatus
					json.Unmarshal(f.Data, &x)
					if string(out) != "hello world" || x.Code != 3 {
						errs <- errors.New("stream got " + string(out))
						return
					}
					errs <- nil
					return
				}
			}
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestMuxConnectionLossFailsStreams(t *testing.T) {
	host, _, done := pair(t)
	s, err := host.Open("stdin", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.WaitReply(ctx, nil); err != nil {
		t.Fatal(err)
	}
	done()
	if _, err := s.Recv(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Recv after close: %v, want ErrClosed", err)
	}
	<-host.Done()
	if err := host.Call(ctx, "echo", nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Call after close: %v, want ErrClosed", err)
	}
}
