package socket

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// instState tracks one Accept=yes instance for NConnections and
// MaxConnections=.
type instState uint8

// instance is one Accept=yes instance and the peer it serves.
type instance struct {
	state  instState
	source string // peer IP, for MaxConnectionsPerSource=
}

const (
	instActivating instState = iota + 1 // ActivateInstance has not returned yet
	instRunning                         // started; freed by InstanceStopped
	instGone                            // stopped while still activating
)

// pollFDs blocks until a listening fd is readable or wake fires. It returns
// the indexes of the readable listeners (none when woken). Nothing is read:
// with Accept=no the data is for the service.
func pollFDs(lns []*listener, wake int) ([]int, error) {
	pfds := make([]unix.PollFd, 0, len(lns)+1)
	for _, l := range lns {
		pfds = append(pfds, unix.PollFd{Fd: int32(l.fd), Events: unix.POLLIN})
	}
	pfds = append(pfds, unix.PollFd{Fd: int32(wake), Events: unix.POLLIN})
	for {
		_, err := unix.Poll(pfds, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("poll: %w", err)
		}
		break
	}
	if pfds[len(lns)].Revents != 0 {
		return nil, nil
	}
	var ready []int
	for i, p := range pfds[:len(lns)] {
		if p.Revents&unix.POLLNVAL != 0 {
			return nil, fmt.Errorf("poll: %s: fd closed", lns[i].addr.raw)
		}
		if p.Revents != 0 {
			ready = append(ready, i)
		}
	}
	return ready, nil
}

// activationCtx bounds one activation by Timeout= (TimeoutSec=), so a hung
// job cannot keep the socket from ever polling again.
func (s *Socket) activationCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.cfg.Timeout > 0 {
		return context.WithTimeout(ctx, s.cfg.Timeout)
	}
	return context.WithCancel(ctx)
}

// allowTrigger applies TriggerLimitIntervalSec=/TriggerLimitBurst=.
func (s *Socket) allowTrigger() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limit.allow(time.Now())
}

// failFromLoop is how the watch goroutine gives up on its own (trigger
// limit, poll error): close everything and enter failed, unless Stop is
// already tearing the unit down.
func (s *Socket) failFromLoop(ctx context.Context, result string, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ctx.Err() != nil {
		return
	}
	s.log.Error("socket failed", "result", result, "reason", why)
	s.closeLocked()
	s.failLocked(result)
}

// triggerLoop is the Accept=no watch: poll while the service is inactive,
// start it when traffic arrives, then wait for it to stop.
func (s *Socket) triggerLoop(ctx context.Context, lns []*listener, wake int) {
	defer s.wg.Done()
	svc := s.ServiceName()
	for ctx.Err() == nil {
		if s.a.ServiceActive(svc) {
			s.setSubLocked(SubRunning)
			if !s.waitStopped(ctx, svc) {
				return
			}
			s.setSubLocked(SubListening)
			continue
		}
		ready, err := pollFDs(lns, wake)
		if err != nil {
			s.failFromLoop(ctx, ResultResources, err.Error())
			return
		}
		if len(ready) == 0 {
			continue
		}
		if !s.allowTrigger() {
			s.failFromLoop(ctx, ResultTriggerLimitHit, "trigger limit hit, refusing further activation")
			return
		}
		select { // a stop reported before this activation is stale
		case <-s.stopped:
		default:
		}
		s.setSubLocked(SubRunning)
		actx, cancel := s.activationCtx(ctx)
		err = s.a.ActivateService(actx, svc)
		cancel()
		if err != nil && ctx.Err() == nil {
			// Back to polling; if the data keeps the fd readable and the
			// service keeps failing, the trigger limit ends this.
			s.log.Warn("activating service failed", "service", svc, "err", err)
		}
		s.setSubLocked(SubListening)
	}
}

// waitStopped waits for ServiceStopped, re-checking ServiceActive every
// second so that a missed notification only delays polling. It returns false
// when the Socket is being stopped.
func (s *Socket) waitStopped(ctx context.Context, svc string) bool {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-s.stopped:
			return true
		case <-t.C:
			if !s.a.ServiceActive(svc) {
				return true
			}
		}
	}
}

// acceptLoop is the Accept=yes watch: accept every pending connection and
// start one instance per connection, concurrently.
func (s *Socket) acceptLoop(ctx context.Context, lns []*listener, wake int) {
	defer s.wg.Done()
	for ctx.Err() == nil {
		ready, err := pollFDs(lns, wake)
		if err != nil {
			s.failFromLoop(ctx, ResultResources, err.Error())
			return
		}
		for _, i := range ready {
			if !s.acceptAll(ctx, lns[i]) {
				return
			}
		}
	}
}

// acceptAll accepts until the queue is empty; false means the Socket failed.
func (s *Socket) acceptAll(ctx context.Context, l *listener) bool {
	for ctx.Err() == nil {
		nfd, _, err := unix.Accept4(l.fd, unix.SOCK_CLOEXEC)
		switch {
		case err == nil:
		case errors.Is(err, unix.EAGAIN):
			return true
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.ECONNABORTED):
			continue
		default:
			// EMFILE and friends: back off instead of spinning on a
			// listening fd that stays readable.
			s.log.Warn("accept failed", "address", l.addr.raw, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			return true
		}
		if !s.allowTrigger() {
			unix.Close(nfd)
			s.failFromLoop(ctx, ResultTriggerLimitHit, "trigger limit hit, refusing further activation")
			return false
		}
		s.spawn(ctx, nfd)
	}
	return true
}

// spawn counts the connection and starts its instance in its own goroutine,
// so that one slow start job does not hold up the other connections.
func (s *Socket) spawn(ctx context.Context, nfd int) {
	src := peerSource(nfd)
	if !s.haveSlot(src) {
		s.log.Warn("too many incoming connections, dropping connection",
			"max", s.cfg.MaxConnections, "source", src, "max_per_source", s.cfg.MaxConnectionsPerSource)
		unix.Close(nfd)
		return
	}
	s.mu.Lock()
	name := s.prefix() + "@" + instanceName(nfd, s.nAccepted) + ".service"
	s.nAccepted++
	s.instances[name] = instance{state: instActivating, source: src}
	s.wg.Add(1)
	s.mu.Unlock()
	conn := newFile(nfd, name)
	go func() {
		defer s.wg.Done()
		actx, cancel := s.activationCtx(ctx)
		err := s.a.ActivateInstance(actx, name, conn)
		cancel()
		s.mu.Lock()
		defer s.mu.Unlock()
		if in := s.instances[name]; err != nil || in.state == instGone {
			delete(s.instances, name)
		} else {
			in.state = instRunning
			s.instances[name] = in
		}
		if err != nil && ctx.Err() == nil {
			s.log.Warn("activating instance failed", "service", name, "err", err)
		}
	}()
}

// full reports whether MaxConnections= or MaxConnectionsPerSource= refuse a
// new connection from src; callers hold s.mu.
func (s *Socket) full(src string) bool {
	if len(s.instances) >= s.cfg.MaxConnections {
		return true
	}
	if s.cfg.MaxConnectionsPerSource <= 0 || src == "" {
		return false
	}
	n := 0
	for _, in := range s.instances {
		if in.source == src {
			n++
		}
	}
	return n >= s.cfg.MaxConnectionsPerSource
}

// haveSlot enforces the connection limits. When a limit is reached it first
// drops instances the manager no longer reports active, in case an
// InstanceStopped was missed.
func (s *Socket) haveSlot(src string) bool {
	s.mu.Lock()
	if !s.full(src) {
		s.mu.Unlock()
		return true
	}
	var running []string
	for n, in := range s.instances {
		if in.state == instRunning {
			running = append(running, n)
		}
	}
	s.mu.Unlock()
	var gone []string
	for _, n := range running {
		if !s.a.ServiceActive(n) {
			gone = append(gone, n)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range gone {
		if s.instances[n].state == instRunning {
			delete(s.instances, n)
		}
	}
	return !s.full(src)
}

// peerSource is the source address MaxConnectionsPerSource= counts; as in
// systemd only IP peers have one.
func peerSource(fd int) string {
	sa, err := unix.Getpeername(fd)
	if err != nil {
		return ""
	}
	if ap, ok := ipPort(sa); ok {
		return ap.Addr().Unmap().String()
	}
	return ""
}

// instanceName is systemd's instance_from_socket: "<n>-<local>-<remote>"
// for IP, "<n>-<pid>-<uid>" of the peer for unix sockets.
func instanceName(fd, nr int) string {
	local, err1 := unix.Getsockname(fd)
	remote, err2 := unix.Getpeername(fd)
	if err1 == nil && err2 == nil {
		if l, ok := ipPort(local); ok {
			if r, ok := ipPort(remote); ok {
				if l.Addr().Is4In6() && r.Addr().Is4In6() {
					l = netip.AddrPortFrom(l.Addr().Unmap(), l.Port())
					r = netip.AddrPortFrom(r.Addr().Unmap(), r.Port())
				}
				return fmt.Sprintf("%d-%s:%d-%s:%d", nr, l.Addr().WithZone(""), l.Port(), r.Addr().WithZone(""), r.Port())
			}
		}
	}
	if cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil && cred.Pid > 0 {
		return fmt.Sprintf("%d-%d-%d", nr, cred.Pid, cred.Uid)
	}
	return fmt.Sprintf("%d-unknown", nr)
}

func ipPort(sa unix.Sockaddr) (netip.AddrPort, bool) {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)), true
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)), true
	}
	return netip.AddrPort{}, false
}
