//go:build integration

package boot

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// accel picks the QEMU accelerator the way DESIGN §5 says: vmx/svm means KVM
// with the stock kernel; PVM (/sys/module/kvm_pvm) needs a PVM guest kernel,
// which the image does not have, so it falls back to TCG like a machine
// without virtualisation.
func accel() (name string, cpu string, extraArgs string) {
	info, _ := os.ReadFile("/proc/cpuinfo")
	_, errKVM := os.Stat("/dev/kvm")
	if _, err := os.Stat("/sys/module/kvm_pvm"); err != nil && errKVM == nil &&
		regexp.MustCompile(`(?m)^flags\s*:.*\b(vmx|svm)\b`).Match(info) {
		return "kvm", "host", ""
	}
	// Under TCG the guest's TSC calibration is unreliable (2 boots in 5
	// hang without these): tell it the host's frequency.
	khz := 0
	if m := regexp.MustCompile(`(?m)^cpu MHz\s*:\s*([0-9.]+)`).FindSubmatch(info); m != nil {
		if f, err := strconv.ParseFloat(string(m[1]), 64); err == nil {
			khz = int(f * 1000)
		}
	}
	extra := "tsc=reliable"
	if khz > 0 {
		extra = fmt.Sprintf("tsc_early_khz=%d tsc=reliable", khz)
	}
	return "tcg", "max", extra
}

// line is one console line and when the host read it.
type line struct {
	at   time.Time
	text string
}

// vm is one QEMU process booting the test image.
type vm struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	start   time.Time
	sshPort int
	key     string
	qmpPath string
	logPath string
	stdin   *os.File

	mu    sync.Mutex
	lines []line
	cond  chan struct{} // closed and replaced on every new line
	done  chan struct{} // closed when QEMU exited
	err   error
}

type vmConfig struct {
	name    string
	dir     string // image dir from image.sh
	disk    string // qcow2 overlay
	initrd  string
	init    string // "" = /sbin/init
	logPath string
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startVM(t *testing.T, c vmConfig) *vm {
	t.Helper()
	acc, cpu, extra := accel()
	port := freePort(t)
	qmp := filepath.Join(filepath.Dir(c.disk), c.name+".qmp")
	os.Remove(qmp)
	// Both inits boot to multi-user.target (Debian's default.target is
	// graphical.target, which only adds a display manager).
	appendArgs := "console=ttyS0 root=/dev/vda rw net.ifnames=0 panic=-1 loglevel=4 systemd.show_status=1 " +
		"systemd.unit=multi-user.target corral.unit=multi-user.target " + extra
	if c.init != "" {
		appendArgs += " init=" + c.init
	}
	args := []string{
		"-M", "microvm,acpi=on", "-accel", acc, "-cpu", cpu, "-smp", "2", "-m", "1024",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-kernel", filepath.Join(c.dir, "vmlinuz"), "-initrd", c.initrd, "-append", appendArgs,
		"-drive", "id=root,file=" + c.disk + ",format=qcow2,if=none,cache=unsafe",
		"-device", "virtio-blk-device,drive=root",
		"-netdev", fmt.Sprintf("user,id=n0,hostfwd=tcp:127.0.0.1:%d-:22", port),
		"-device", "virtio-net-device,netdev=n0",
		"-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con",
		"-qmp", "unix:" + qmp + ",server=on,wait=off",
	}
	cmd := exec.Command("qemu-system-x86_64", args...)
	// stdin is a pipe we never write to, so the stdio chardev never sees EOF.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = pr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	logf, err := os.Create(c.logPath)
	if err != nil {
		t.Fatal(err)
	}
	v := &vm{t: t, name: c.name, cmd: cmd, sshPort: port, key: filepath.Join(c.dir, "id_ed25519"),
		qmpPath: qmp, logPath: c.logPath, stdin: pw, cond: make(chan struct{}), done: make(chan struct{})}
	v.start = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start qemu: %v", err)
	}
	pr.Close()
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		defer logf.Close()
		br := bufio.NewReaderSize(out, 64<<10)
		for {
			s, err := br.ReadString('\n')
			if s != "" {
				now := time.Now()
				s = strings.TrimRight(s, "\r\n")
				fmt.Fprintf(logf, "[%8.3f] %s\n", now.Sub(v.start).Seconds(), s)
				v.mu.Lock()
				v.lines = append(v.lines, line{now, s})
				close(v.cond)
				v.cond = make(chan struct{})
				v.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		readers.Wait()
		err := cmd.Wait() // QEMU is our child in the test process, not in the agent
		v.mu.Lock()
		if err != nil {
			v.err = fmt.Errorf("%w: %s", err, stderr.String())
		}
		v.mu.Unlock()
		close(v.done)
	}()
	t.Cleanup(func() { v.kill() })
	return v
}

func (v *vm) kill() {
	select {
	case <-v.done:
	default:
		v.cmd.Process.Kill()
		<-v.done
	}
	v.stdin.Close()
}

// waitLine waits for a console line matching re and returns when it was read.
func (v *vm) waitLine(ctx context.Context, re *regexp.Regexp) (time.Time, error) {
	seen := 0
	for {
		v.mu.Lock()
		for ; seen < len(v.lines); seen++ {
			if re.MatchString(v.lines[seen].text) {
				at := v.lines[seen].at
				v.mu.Unlock()
				return at, nil
			}
		}
		cond := v.cond
		v.mu.Unlock()
		select {
		case <-cond:
		case <-v.done:
			return time.Time{}, fmt.Errorf("%s: qemu exited before %q: %v", v.name, re, v.err)
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%s: no console line %q: %w", v.name, re, ctx.Err())
		}
	}
}

// hasLine tells whether a console line read so far matches re.
func (v *vm) hasLine(re *regexp.Regexp) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, l := range v.lines {
		if re.MatchString(l.text) {
			return true
		}
	}
	return false
}

// switchRoot returns when the host read the initramfs' switch_root line and
// the guest uptime it carries.
func (v *vm) switchRoot(ctx context.Context) (time.Time, time.Duration, error) {
	at, err := v.waitLine(ctx, switchRootLine)
	if err != nil {
		return time.Time{}, 0, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, l := range v.lines {
		if m := switchRootLine.FindStringSubmatch(l.text); m != nil {
			f, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				return time.Time{}, 0, fmt.Errorf("%s: switch_root line %q: %w", v.name, l.text, err)
			}
			return at, time.Duration(f * float64(time.Second)), nil
		}
	}
	return time.Time{}, 0, fmt.Errorf("%s: no switch_root line", v.name)
}

// tail returns the last n console lines, for failure messages.
func (v *vm) tail(n int) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	i := max(0, len(v.lines)-n)
	var b strings.Builder
	for _, l := range v.lines[i:] {
		fmt.Fprintf(&b, "[%8.3f] %s\n", l.at.Sub(v.start).Seconds(), l.text)
	}
	return b.String()
}

// ssh runs a shell command in the guest as root.
func (v *vm) ssh(ctx context.Context, script string) (string, error) {
	cmd := exec.CommandContext(ctx, "ssh", "-i", v.key, "-p", strconv.Itoa(v.sshPort),
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
		"-o", "ConnectTimeout=10", "-o", "BatchMode=yes", "root@127.0.0.1", script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: ssh %q: %w: %s", v.name, script, err, out)
	}
	return string(out), nil
}

// waitSSH retries until sshd answers a trivial command.
func (v *vm) waitSSH(ctx context.Context) error {
	var last error
	for {
		c, cancel := context.WithTimeout(ctx, 20*time.Second)
		_, err := v.ssh(c, "true")
		cancel()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-v.done:
			return fmt.Errorf("%s: qemu exited while waiting for ssh: %v", v.name, v.err)
		case <-ctx.Done():
			return fmt.Errorf("%s: ssh never answered: %w (last: %v)", v.name, ctx.Err(), last)
		case <-time.After(time.Second):
		}
	}
}

// powerdown presses the ACPI power button over QMP and waits for QEMU to
// exit (-no-reboot makes a guest reboot an exit too). It returns how long
// the guest took.
func (v *vm) powerdown(ctx context.Context) (time.Duration, error) {
	t0 := time.Now()
	if err := qmpCommand(v.qmpPath, "system_powerdown"); err != nil {
		return 0, err
	}
	select {
	case <-v.done:
		return time.Since(t0), nil
	case <-ctx.Done():
		return 0, fmt.Errorf("%s: guest did not power off after system_powerdown: %w", v.name, ctx.Err())
	}
}

// qmpCommand is a minimal QMP client: greeting, qmp_capabilities, one
// command, its answer.
func qmpCommand(path, command string) error {
	var conn net.Conn
	var err error
	for i := 0; i < 50; i++ {
		if conn, err = net.Dial("unix", path); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("qmp %s: %w", path, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	dec := json.NewDecoder(conn)
	var greeting map[string]any
	if err := dec.Decode(&greeting); err != nil {
		return fmt.Errorf("qmp greeting: %w", err)
	}
	for _, c := range []string{"qmp_capabilities", command} {
		if _, err := fmt.Fprintf(conn, `{"execute":%q}`+"\n", c); err != nil {
			return fmt.Errorf("qmp %s: %w", c, err)
		}
		for { // skip events until the answer
			var msg map[string]json.RawMessage
			if err := dec.Decode(&msg); err != nil {
				if err == io.EOF {
					return fmt.Errorf("qmp %s: connection closed", c)
				}
				return fmt.Errorf("qmp %s: %w", c, err)
			}
			if e, ok := msg["error"]; ok {
				return fmt.Errorf("qmp %s: %s", c, e)
			}
			if _, ok := msg["return"]; ok {
				break
			}
		}
	}
	return nil
}
