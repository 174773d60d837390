package socket

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"corral.io/corral/agent/unit"
)

func stream(addr string) unit.SocketListen { return unit.SocketListen{Kind: "stream", Address: addr} }

// Accept=no on a unix path: the service is started on the first
// connection, answers on the listening fd it inherited, and after it exits
// the socket listens again and activates it a second time.
func TestAcceptNoUnixStream(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "deeper", "echo.sock")
	link := filepath.Join(dir, "links", "echo-link.sock")
	f := newFakeManager(t, "stream")
	s := startSocket(t, "echo.socket", unit.Socket{
		Listen:        []unit.SocketListen{stream(path)},
		SocketMode:    0o600,
		DirectoryMode: 0o750,
		SocketUser:    "65534",
		SocketGroup:   "65533",
		Symlinks:      []string{link},
		RemoveOnStop:  true,
	}, f)

	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, want socket 0600", st.Mode())
	}
	sys := st.Sys().(*syscall.Stat_t)
	if sys.Uid != 65534 || sys.Gid != 65533 {
		t.Errorf("socket owner = %d:%d, want 65534:65533", sys.Uid, sys.Gid)
	}
	for _, d := range []string{filepath.Dir(path), filepath.Dir(filepath.Dir(path))} {
		if st, err := os.Stat(d); err != nil || st.Mode().Perm() != 0o750 {
			t.Errorf("directory %s: %v %v, want 0750", d, st.Mode(), err)
		}
	}
	if got := s.Status(); got.ActiveState != "active" || got.SubState != SubListening {
		t.Errorf("after Start: %+v", got)
	}
	if s.ServiceName() != "echo.service" {
		t.Errorf("ServiceName = %q", s.ServiceName())
	}

	for i := 1; i <= 2; i++ {
		got := dialRead(t, "unix", link, "") // through the symlink
		if !strings.HasPrefix(got, "hello from ") || !strings.HasSuffix(got, "name=echo nfds=1") {
			t.Fatalf("connection %d: answer %q", i, got)
		}
		eventually(t, "service to stop and socket to listen", func() bool {
			return !f.ServiceActive("echo.service") && s.Status().SubState == SubListening
		})
	}
	if n, _ := f.count(); n != 2 {
		t.Errorf("activations = %d, want 2", n)
	}

	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := s.Status(); got.ActiveState != "inactive" || got.SubState != SubDead {
		t.Errorf("after Stop: %+v", got)
	}
	for _, p := range []string{path, link} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("RemoveOnStop: %s still there (%v)", p, err)
		}
	}
}

// Without RemoveOnStop the node stays, and a restart binds over it.
func TestRestartOverStaleNode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.sock")
	f := newFakeManager(t, "stream")
	s := startSocket(t, "x.socket", unit.Socket{Listen: []unit.SocketListen{stream(path)}}, f)
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("node removed without RemoveOnStop: %v", err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("restart: %v", err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o666 {
		t.Errorf("default SocketMode: %v, want 0666", st.Mode())
	}
	if got := dialRead(t, "unix", path, ""); !strings.HasSuffix(got, "name=x nfds=1") {
		t.Errorf("answer %q", got)
	}
}

// Accept=yes: three concurrent connections make three instances with
// systemd's names, each answering on its own connection.
func TestAcceptYesConcurrent(t *testing.T) {
	port := freePort(t, "tcp4", "127.0.0.1")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	f := newFakeManager(t, "instance", "CORRAL_HELPER_HOLD=1")
	s := startSocket(t, "echo.socket", unit.Socket{Listen: []unit.SocketListen{stream(addr)}, Accept: true, NoDelay: true, KeepAlive: true}, f)
	if s.ServiceName() != "echo@.service" {
		t.Errorf("ServiceName = %q", s.ServiceName())
	}
	if files, _ := s.Files(); len(files) != 0 {
		t.Errorf("Accept=yes Files() = %d files, want none", len(files))
	}

	// Hold all three connections open at once, so the instances run
	// concurrently.
	var conns []net.Conn
	for i := 0; i < 3; i++ {
		c, err := net.DialTimeout("tcp4", addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(15 * time.Second))
		conns = append(conns, c)
	}
	var wg sync.WaitGroup
	answers := make([]string, 3)
	errs := make([]error, 3)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fmt.Fprintf(c, "msg%d\n", i)
			buf := make([]byte, 512)
			n, err := c.Read(buf)
			answers[i], errs[i] = strings.TrimSpace(string(buf[:n])), err
		}()
	}
	wg.Wait()
	re := regexp.MustCompile(`^echo@(\d+)-127\.0\.0\.1:` + strconv.Itoa(port) + `-127\.0\.0\.1:(\d+)\.service msg(\d)$`)
	seen := map[string]bool{}
	for i, a := range answers {
		if errs[i] != nil {
			t.Fatalf("conn %d: %v", i, errs[i])
		}
		m := re.FindStringSubmatch(a)
		if m == nil || m[3] != strconv.Itoa(i) {
			t.Fatalf("conn %d: answer %q does not match %s", i, a, re)
		}
		local := conns[i].LocalAddr().(*net.TCPAddr).Port
		if m[2] != strconv.Itoa(local) {
			t.Errorf("conn %d: instance names remote port %s, client port is %d", i, m[2], local)
		}
		seen[m[1]] = true
	}
	if len(seen) != 3 || !seen["0"] || !seen["1"] || !seen["2"] {
		t.Errorf("instance numbers = %v, want 0, 1, 2", seen)
	}
	if st := s.Status(); st.NAccepted != 3 || st.NConnections != 3 || st.SubState != SubListening {
		t.Errorf("with 3 open instances: %+v", st)
	}
	for _, c := range conns {
		c.Close()
	}
	eventually(t, "NConnections to drop to 0", func() bool { return s.Status().NConnections == 0 })
	if st := s.Status(); st.NAccepted != 3 {
		t.Errorf("NAccepted = %d, want 3", st.NAccepted)
	}
}

// MaxConnections: a connection beyond the limit is dropped, and a slot
// frees up when the instance stops.
func TestMaxConnections(t *testing.T) {
	path := "@corral-test-max-" + strconv.Itoa(os.Getpid())
	f := newFakeManager(t, "instance", "CORRAL_HELPER_HOLD=1")
	s := startSocket(t, "m.socket", unit.Socket{Listen: []unit.SocketListen{stream(path)}, Accept: true, MaxConnections: 1}, f)

	c1, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c1.SetDeadline(time.Now().Add(15 * time.Second))
	fmt.Fprintln(c1, "one")
	buf := make([]byte, 256)
	n, err := c1.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	// Unix peers are named <n>-<pid>-<uid>.
	if want := fmt.Sprintf("m@0-%d-0.service one", os.Getpid()); strings.TrimSpace(string(buf[:n])) != want {
		t.Errorf("answer %q, want %q", buf[:n], want)
	}

	c2, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c2.SetDeadline(time.Now().Add(15 * time.Second))
	if n, err := c2.Read(buf); err == nil {
		t.Errorf("connection over MaxConnections answered %q", buf[:n])
	}
	c2.Close()

	c1.Close()
	eventually(t, "slot to free", func() bool { return s.Status().NConnections == 0 })
	if got := dialRead(t, "unix", path, "three"); !strings.HasSuffix(got, " three") {
		t.Errorf("after the slot freed: %q", got)
	}
	if _, inst := f.count(); len(inst) != 2 {
		t.Errorf("instances = %v, want 2", inst)
	}
}

func TestDatagramUDP(t *testing.T) {
	port := freePort(t, "udp4", "127.0.0.1")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	f := newFakeManager(t, "datagram")
	startSocket(t, "dg.socket", unit.Socket{
		Listen:        []unit.SocketListen{{Kind: "datagram", Address: addr}},
		ReceiveBuffer: 1 << 20, SendBuffer: 1 << 20,
	}, f)
	c, err := net.Dial("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "echo:ping" {
		t.Fatalf("answer %q, %v", buf[:n], err)
	}
}

func TestFIFO(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "run", "ctl.fifo")
	out := filepath.Join(dir, "out")
	f := newFakeManager(t, "fifo", "CORRAL_HELPER_OUT="+out)
	startSocket(t, "ctl.socket", unit.Socket{
		Listen:     []unit.SocketListen{{Kind: "fifo", Address: path}},
		SocketMode: 0o620,
	}, f)
	st, err := os.Stat(path)
	if err != nil || st.Mode()&os.ModeNamedPipe == 0 || st.Mode().Perm() != 0o620 {
		t.Fatalf("fifo: %v %v, want named pipe 0620", st.Mode(), err)
	}
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(w, "reload")
	w.Close()
	eventually(t, "helper output", func() bool {
		b, _ := os.ReadFile(out)
		return string(b) == "got reload\n"
	})
}

func TestAbstractUnix(t *testing.T) {
	name := fmt.Sprintf("@corral-test-abstract-%d", os.Getpid())
	f := newFakeManager(t, "stream")
	startSocket(t, "abs.socket", unit.Socket{
		Listen: []unit.SocketListen{stream(name)}, PassCredentials: true, FileDescriptorName: "control",
	}, f)
	if got := dialRead(t, "unix", name, ""); !strings.HasSuffix(got, "name=control nfds=1") {
		t.Errorf("answer %q", got)
	}
}

func TestIPv6(t *testing.T) {
	t.Run("loopback", func(t *testing.T) {
		port := freePort(t, "tcp6", "::1")
		addr := fmt.Sprintf("[::1]:%d", port)
		f := newFakeManager(t, "stream")
		startSocket(t, "v6.socket", unit.Socket{Listen: []unit.SocketListen{stream(addr)}, BindIPv6Only: "ipv6-only"}, f)
		if got := dialRead(t, "tcp6", addr, ""); !strings.HasPrefix(got, "hello from") {
			t.Errorf("answer %q", got)
		}
	})
	// A bare port is [::]:port; with BindIPv6Only=both it takes IPv4 too.
	t.Run("port-dual-stack", func(t *testing.T) {
		port := freePort(t, "tcp", "")
		f := newFakeManager(t, "stream")
		s := startSocket(t, "dual.socket", unit.Socket{Listen: []unit.SocketListen{stream(strconv.Itoa(port))}, BindIPv6Only: "both", ReusePort: true}, f)
		for _, addr := range []string{fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("[::1]:%d", port)} {
			if got := dialRead(t, "tcp", addr, ""); !strings.HasPrefix(got, "hello from") {
				t.Errorf("%s: answer %q", addr, got)
			}
			eventually(t, "listening again", func() bool {
				return !f.ServiceActive("dual.service") && s.Status().SubState == SubListening
			})
		}
	})
}

// Several Listen lines: Files() keeps their order and the names.
func TestFilesOrder(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t, "udp4", "127.0.0.1")
	f := newFakeManager(t, "stream")
	s := startSocket(t, "multi.socket", unit.Socket{Listen: []unit.SocketListen{
		stream(filepath.Join(dir, "a.sock")),
		{Kind: "datagram", Address: fmt.Sprintf("127.0.0.1:%d", port)},
		{Kind: "seqpacket", Address: filepath.Join(dir, "c.sock")},
	}}, f)
	files, names := s.Files()
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	if len(files) != 3 || strings.Join(names, ":") != "multi:multi:multi" {
		t.Fatalf("Files() = %d files, names %v", len(files), names)
	}
	wantTypes := []int{syscall.SOCK_STREAM, syscall.SOCK_DGRAM, syscall.SOCK_SEQPACKET}
	for i, file := range files {
		typ, err := syscall.GetsockoptInt(int(file.Fd()), syscall.SOL_SOCKET, syscall.SO_TYPE)
		if err != nil || typ != wantTypes[i] {
			t.Errorf("file %d: SO_TYPE %d (%v), want %d", i, typ, err, wantTypes[i])
		}
	}
	// The duplicates are independent of the Socket's own fds.
	files[0].Close()
	if got := dialRead(t, "unix", filepath.Join(dir, "a.sock"), ""); !strings.HasSuffix(got, "nfds=3") {
		t.Errorf("answer %q", got)
	}
}

func TestStartErrors(t *testing.T) {
	busy, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyAddr := busy.Addr().String()
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	os.WriteFile(notDir, nil, 0o644)
	goodPath := filepath.Join(dir, "good.sock")

	tests := []struct {
		name   string
		cfg    unit.Socket
		substr string // besides the unit name
	}{
		{"garbage", unit.Socket{Listen: []unit.SocketListen{stream("foo")}}, `"foo"`},
		{"port range", unit.Socket{Listen: []unit.SocketListen{stream("1.2.3.4:99999")}}, `"1.2.3.4:99999"`},
		{"port zero", unit.Socket{Listen: []unit.SocketListen{stream("127.0.0.1:0")}}, `"127.0.0.1:0"`},
		{"v6 unclosed", unit.Socket{Listen: []unit.SocketListen{stream("[::1")}}, `"[::1"`},
		{"kind", unit.Socket{Listen: []unit.SocketListen{{Kind: "netlink", Address: "route"}}}, "netlink"},
		{"no listen", unit.Socket{}, "no Listen"},
		{"accept datagram", unit.Socket{Accept: true, Listen: []unit.SocketListen{{Kind: "datagram", Address: "@x"}}}, "Accept=yes"},
		{"accept service", unit.Socket{Accept: true, Service: "x.service", Listen: []unit.SocketListen{stream("@x")}}, "Service="},
		{"in use", unit.Socket{Listen: []unit.SocketListen{stream(goodPath), stream(busyAddr)}}, `"` + busyAddr + `": bind: address already in use`},
		{"parent not a dir", unit.Socket{Listen: []unit.SocketListen{stream(filepath.Join(notDir, "x.sock"))}}, notDir},
		{"bad user", unit.Socket{SocketUser: "no-such-user-corral", Listen: []unit.SocketListen{stream("@y")}}, "no-such-user-corral"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(&unit.Unit{Name: "bad.socket", Socket: &tt.cfg}, "/", newFakeManager(t, "stream"), nil)
			err := s.Start(context.Background())
			if err == nil {
				s.Stop(context.Background())
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), "bad.socket") || !strings.Contains(err.Error(), tt.substr) {
				t.Errorf("error %q does not name the unit and %q", err, tt.substr)
			}
			if st := s.Status(); st.ActiveState != "failed" || st.Result != ResultResources {
				t.Errorf("status %+v, want failed/resources", st)
			}
		})
	}
	// The "in use" case bound goodPath first; the failure must not leave it.
	if _, err := os.Lstat(goodPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partial Start left %s behind: %v", goodPath, err)
	}
}

// A service that never takes the pending connection makes the socket
// trigger again and again; TriggerLimitBurst= ends it in failed.
func TestTriggerLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.sock")
	f := newFakeManager(t, "stream")
	f.noSpawn = true
	s := startSocket(t, "t.socket", unit.Socket{
		Listen: []unit.SocketListen{stream(path)}, TriggerLimitIntervalSec: time.Hour, TriggerLimitBurst: 5,
	}, f)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	eventually(t, "socket to fail", func() bool { return s.Status().SubState == SubFailed })
	st := s.Status()
	if st.ActiveState != "failed" || st.Result != ResultTriggerLimitHit {
		t.Errorf("status %+v, want failed/trigger-limit-hit", st)
	}
	if n, _ := f.count(); n != 5 {
		t.Errorf("activations = %d, want TriggerLimitBurst=5", n)
	}
	if _, err := net.Dial("unix", path); err == nil {
		t.Error("failed socket still accepts connections")
	}
	// Stop keeps failed (like systemd until reset-failed); Start recovers.
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); st.ActiveState != "failed" {
		t.Errorf("after Stop: %+v", st)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); st.SubState != SubListening || st.Result != ResultSuccess {
		t.Errorf("after restart: %+v", st)
	}
}

func TestTriggerLimitDefaults(t *testing.T) {
	for _, accept := range []bool{false, true} {
		c := withDefaults("a.socket", unit.Socket{Accept: accept})
		want := 20
		if accept {
			want = 200
		}
		if c.TriggerLimitIntervalSec != 2*time.Second || c.TriggerLimitBurst != want {
			t.Errorf("Accept=%v: %v/%d, want 2s/%d", accept, c.TriggerLimitIntervalSec, c.TriggerLimitBurst, want)
		}
	}
}

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in      string
		family  int
		ip      string
		port    int
		path    string
		anyPort bool
		bad     bool
	}{
		{in: "/run/a.sock", family: syscall.AF_UNIX, path: "/run/a.sock"},
		{in: "@abs", family: syscall.AF_UNIX, path: "@abs"},
		{in: "8080", family: syscall.AF_INET6, ip: "::", port: 8080, anyPort: true},
		{in: "0.0.0.0:80", family: syscall.AF_INET, ip: "0.0.0.0", port: 80},
		{in: "[::1]:80", family: syscall.AF_INET6, ip: "::1", port: 80},
		{in: "[fe80::1%lo]:80", family: syscall.AF_INET6, ip: "fe80::1%lo", port: 80},
		{in: "relative/path", bad: true},
		{in: "@", bad: true},
		{in: "0", bad: true},
		{in: "65536", bad: true},
		{in: "::1:80", bad: true},
		{in: "[1.2.3.4]:80", bad: true},
		{in: "/" + strings.Repeat("x", 107), bad: true},
	}
	for _, tt := range tests {
		a, err := parseAddress(stream(tt.in))
		if tt.bad {
			if err == nil {
				t.Errorf("%q: parsed as %+v, want error", tt.in, a)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		ip := ""
		if a.ip.IsValid() {
			ip = a.ip.String()
		}
		if a.family != tt.family || ip != tt.ip || a.port != tt.port || a.path != tt.path || a.anyPort != tt.anyPort {
			t.Errorf("%q: got %+v", tt.in, a)
		}
	}
}

// MaxConnectionsPerSource counts per peer IP: a second connection from
// 127.0.0.1 is dropped while one from 127.0.0.2 is still served.
func TestMaxConnectionsPerSource(t *testing.T) {
	port := freePort(t, "tcp4", "127.0.0.1")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	f := newFakeManager(t, "instance", "CORRAL_HELPER_HOLD=1")
	startSocket(t, "ps.socket", unit.Socket{Listen: []unit.SocketListen{stream(addr)}, Accept: true, MaxConnectionsPerSource: 1}, f)
	dial := func(src string) net.Conn {
		d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(15 * time.Second))
		return c
	}
	buf := make([]byte, 256)
	c1 := dial("127.0.0.1")
	defer c1.Close()
	fmt.Fprintln(c1, "one")
	if _, err := c1.Read(buf); err != nil {
		t.Fatalf("first connection: %v", err)
	}
	c2 := dial("127.0.0.1")
	defer c2.Close()
	fmt.Fprintln(c2, "two")
	if n, err := c2.Read(buf); err == nil {
		t.Errorf("second connection from the same source answered %q", buf[:n])
	}
	c3 := dial("127.0.0.2")
	defer c3.Close()
	fmt.Fprintln(c3, "three")
	n, err := c3.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "-127.0.0.2:") {
		t.Errorf("connection from another source: %q, %v", buf[:n], err)
	}
}

// The options of the [Socket] section end up on the fds the service gets.
func TestSocketOptions(t *testing.T) {
	port := freePort(t, "tcp4", "127.0.0.1")
	f := newFakeManager(t, "stream")
	s := startSocket(t, "opt.socket", unit.Socket{
		Listen:    []unit.SocketListen{stream(fmt.Sprintf("127.0.0.1:%d", port))},
		KeepAlive: true, NoDelay: true, ReusePort: true, FreeBind: true, Transparent: true,
		ReceiveBuffer: 1 << 20,
	}, f)
	files, _ := s.Files()
	if len(files) != 1 {
		t.Fatalf("Files() = %d", len(files))
	}
	defer files[0].Close()
	fd := int(files[0].Fd())
	for _, o := range []struct {
		name       string
		level, opt int
	}{
		{"SO_KEEPALIVE", syscall.SOL_SOCKET, syscall.SO_KEEPALIVE},
		{"TCP_NODELAY", syscall.IPPROTO_TCP, syscall.TCP_NODELAY},
		{"SO_REUSEPORT", syscall.SOL_SOCKET, 0xf},
		{"SO_REUSEADDR", syscall.SOL_SOCKET, syscall.SO_REUSEADDR},
		{"IP_FREEBIND", syscall.IPPROTO_IP, syscall.IP_FREEBIND},
		{"IP_TRANSPARENT", syscall.IPPROTO_IP, syscall.IP_TRANSPARENT},
	} {
		if v, err := syscall.GetsockoptInt(fd, o.level, o.opt); err != nil || v == 0 {
			t.Errorf("%s = %d, %v; want set", o.name, v, err)
		}
	}
	// The kernel doubles the requested size.
	if v, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF); err != nil || v < 1<<20 {
		t.Errorf("SO_RCVBUF = %d, %v; want >= 1MiB", v, err)
	}
}
