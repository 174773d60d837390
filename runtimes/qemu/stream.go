package qemu

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"syscall"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"

	"corral.io/corral/guest"
	"corral.io/corral/guest/wire"
	"corral.io/corral/runtimes"
)

// runningContainer returns the VM of a running container.
func (b *Backend) runningContainer(id string) (*vm, error) {
	c, err := b.getContainer(id)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	running := c.state == runtimeapi.ContainerState_CONTAINER_RUNNING
	b.mu.Unlock()
	if !running {
		return nil, fmt.Errorf("%w: container %s is not running", runtimes.ErrPrecondition, id)
	}
	_, v, err := b.runningPod(c.podID)
	return v, err
}

// execIn runs cmd in the container over an exec stream and copies its
// streams; it returns the exit status. When ctx ends first the process is
// killed.
func (b *Backend) execIn(ctx context.Context, id string, cmd []string, in io.Reader, out, errw io.Writer, tty bool, resize <-chan remotecommand.TerminalSize) (wire.ExitStatus, error) {
	var x wire.ExitStatus
	if len(cmd) == 0 || cmd[0] == "" {
		return x, invalid("exec in container %s: empty command", id)
	}
	v, err := b.runningContainer(id)
	if err != nil {
		return x, err
	}
	s, err := v.mux.Open("exec", guest.ExecArgs{ID: id, Argv: cmd, TTY: tty, Stdin: in != nil})
	if err != nil {
		return x, fmt.Errorf("exec in container %s: %w", id, err)
	}
	defer s.Close()
	if err := s.WaitReply(ctx, nil); err != nil {
		// The guest could not start it (e.g. no such executable): as
		// runc does, that is exit code 127/126 with the reason on stderr,
		// not a failed call.
		if errw != nil {
			fmt.Fprintln(errw, err)
		}
		return wire.ExitStatus{Code: 127, Error: err.Error()}, nil
	}
	if in != nil {
		go func() {
			io.Copy(s.Writer(wire.Stdin), in)
			s.Send(wire.CloseStdin, nil)
		}()
	}
	if resize != nil {
		go func() {
			for sz := range resize {
				s.SendJSON(wire.Resize, guest.ResizeArgs{Width: sz.Width, Height: sz.Height})
			}
		}()
	}
	for {
		f, err := s.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil {
				s.SendJSON(wire.Signal, guest.SignalArgs{Signal: int(syscall.SIGKILL)})
			}
			return x, fmt.Errorf("exec in container %s: %w", id, err)
		}
		switch f.Kind {
		case wire.Stdout:
			if out != nil {
				out.Write(f.Data)
			}
		case wire.Stderr:
			if errw != nil {
				errw.Write(f.Data)
			}
		case wire.Exit:
			json.Unmarshal(f.Data, &x)
			return x, nil
		}
	}
}

// ExecSync runs cmd in the container and returns its output and exit code;
// past timeout (0: none) it is killed and the call fails with
// DeadlineExceeded.
func (b *Backend) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, int32, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var stdout, stderr bytes.Buffer
	x, err := b.execIn(ctx, id, cmd, nil, &stdout, &stderr, false, nil)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return stdout.Bytes(), stderr.Bytes(), 137, fmt.Errorf("exec in container %s: timeout %s exceeded: %w", id, timeout, context.DeadlineExceeded)
		}
		return nil, nil, 0, err
	}
	return stdout.Bytes(), stderr.Bytes(), int32(x.Code), nil
}

// StreamingRuntime serves exec and port-forward for Corral's streaming
// server.
func (b *Backend) StreamingRuntime() streaming.Runtime { return streamer{b} }

type streamer struct{ b *Backend }

// Exec runs cmd in the guest with the client's streams.
func (s streamer) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	var o, e io.Writer
	if out != nil {
		o = out
	}
	if errw != nil {
		e = errw
	}
	x, err := s.b.execIn(ctx, id, cmd, in, o, e, tty, resize)
	if err != nil {
		return err
	}
	if x.Code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command %q in container %s exited with %d", cmd[0], id, x.Code), Code: x.Code}
	}
	return nil
}

// Attach is not there yet for VM pods (docs/VM.md).
func (s streamer) Attach(ctx context.Context, id string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	return fmt.Errorf("attach to container %s: %w", id, runtimes.ErrUnsupported)
}

// PortForward connects stream to 127.0.0.1:port inside the guest.
func (s streamer) PortForward(ctx context.Context, podID string, port int32, stream io.ReadWriteCloser) error {
	_, v, err := s.b.runningPod(podID)
	if err != nil {
		return err
	}
	st, err := v.mux.Open("dial", guest.DialArgs{Port: int(port)})
	if err != nil {
		return fmt.Errorf("port-forward to pod %s port %d: %w", podID, port, err)
	}
	defer st.Close()
	if err := st.WaitReply(ctx, nil); err != nil {
		return fmt.Errorf("port-forward to pod %s port %d: %w", podID, port, err)
	}
	go func() {
		io.Copy(st.Writer(wire.Stdin), stream)
		st.Send(wire.CloseStdin, nil)
	}()
	for {
		f, err := st.Recv(ctx)
		if err != nil {
			return err
		}
		switch f.Kind {
		case wire.Stdout:
			if _, err := stream.Write(f.Data); err != nil {
				return err
			}
		case wire.Exit:
			return nil
		}
	}
}
