package native

import (
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// tee sits between a container's main process and its log pipes: it
// copies every byte the process writes to the log, and to the clients
// attached at that moment, as written (a prompt or an `echo -n` has no
// newline, which the line-based log would hold back).
type tee struct {
	outR, outW *os.File // the process's stdout: write end for the spawn, read end here
	errR, errW *os.File
	started    bool

	mu   sync.Mutex
	subs map[*subscriber]struct{}
	wg   sync.WaitGroup
	done chan struct{} // closed when both streams ended (the process and its children are gone)
}

// subscriber is one attached client. Each has its own queue, so that a
// slow client never holds up the container's output (it loses chunks
// instead).
type subscriber struct {
	out, err io.Writer
	q        chan chunk
}

type chunk struct {
	stderr bool
	b      []byte
}

func newTee() (*tee, error) {
	t := &tee{subs: map[*subscriber]struct{}{}, done: make(chan struct{})}
	var err error
	if t.outR, t.outW, err = os.Pipe(); err != nil {
		return nil, err
	}
	if t.errR, t.errW, err = os.Pipe(); err != nil {
		t.outR.Close()
		t.outW.Close()
		return nil, err
	}
	return t, nil
}

// hook puts the tee between the process and stdout/stderr (the log pipes
// the service made): it copies them, because the service closes its own
// after the spawn. It returns the files to give the process instead.
func (t *tee) hook(stdout, stderr *os.File) (*os.File, *os.File) {
	if t.started {
		return stdout, stderr
	}
	dup := func(f *os.File) *os.File {
		if f == nil {
			return nil
		}
		fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil
		}
		return os.NewFile(uintptr(fd), f.Name())
	}
	t.started = true
	t.wg.Add(2)
	go t.copy(t.outR, dup(stdout), false)
	go t.copy(t.errR, dup(stderr), true)
	go func() { t.wg.Wait(); close(t.done) }()
	return t.outW, t.errW
}

// spawned drops our copies of the write ends once the process has them
// (so that the streams end with it), and the read ends too if the process
// never got them.
func (t *tee) spawned() {
	t.outW.Close()
	t.errW.Close()
	if !t.started {
		t.outR.Close()
		t.errR.Close()
		close(t.done)
	}
}

func (t *tee) copy(r, log *os.File, stderr bool) {
	defer t.wg.Done()
	defer r.Close()
	if log != nil {
		defer log.Close()
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if log != nil {
				log.Write(buf[:n])
			}
			b := append([]byte(nil), buf[:n]...)
			t.mu.Lock()
			for s := range t.subs {
				select {
				case s.q <- chunk{stderr, b}:
				default: // a client that does not keep up loses output
				}
			}
			t.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// attach streams the output written from now on to out and errw (stderr
// goes to out when errw is nil) until the process is gone or stop is
// closed.
func (t *tee) attach(out, errw io.Writer, stop <-chan struct{}) {
	s := &subscriber{out: out, err: errw, q: make(chan chunk, 256)}
	t.mu.Lock()
	t.subs[s] = struct{}{}
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.subs, s)
		t.mu.Unlock()
	}()
	write := func(c chunk) {
		w := s.out
		if c.stderr && s.err != nil {
			w = s.err
		}
		if w != nil {
			w.Write(c.b)
		}
	}
	for {
		select {
		case c := <-s.q:
			write(c)
		case <-t.done:
			for {
				select {
				case c := <-s.q:
					write(c)
				default:
					return
				}
			}
		case <-stop:
			return
		}
	}
}
