//go:build integration

// Package boot boots a real Debian bookworm image under QEMU, once with
// systemd as init (the baseline) and once with init=/usr/sbin/corral, and
// checks that the services a Debian server runs come up, that a file written
// just before an ACPI power-off survives the next boot, and how long boot
// took and how much memory PID 1 uses. The image comes from
// hack/boot/image.sh (cached); Corral's binaries come from `make install`
// into a cpio appended to the initramfs, whose init copies them onto the root.
package boot

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readyLine is what both inits print on the console when multi-user.target
// is reached: systemd with systemd.show_status=1 prints
// "[  OK  ] Reached target multi-user.target - Multi-User System." (but not
// always: it goes quiet while a getty owns the console, hence the ssh
// fallback in waitReady); Corral prints "corral: reached multi-user.target"
// (docs/PID1.md).
var readyLine = regexp.MustCompile(`Reached target .*(multi-user\.target|Multi-User System)|corral: reached multi-user\.target`)

// switchRootLine carries the guest's uptime when the initramfs hands over
// to init: the anchor that turns host-observed console times into guest
// uptime, so that both inits are measured on the guest's clock.
var switchRootLine = regexp.MustCompile(`^initramfs: switch_root to \S+ at ([0-9.]+)`)

// issueLine is agetty's /etc/issue on the serial console ("Debian GNU/Linux
// 12 corral-boot ttyS0") and loginPrompt its prompt.
var (
	issueLine   = regexp.MustCompile(`Debian GNU/Linux .*ttyS0`)
	loginPrompt = regexp.MustCompile(`login: `)
)

// memLine is Corral PID 1's answer to SIGUSR1.
var memLine = regexp.MustCompile(`msg=memory heap_alloc=`)

// services are what the image runs and the test checks.
// serial-getty@ttyS0.service comes from the inits' getty generators
// (console=ttyS0 on the kernel command line).
var services = []string{"ssh.service", "cron.service", "rsyslog.service", "nginx.service", "serial-getty@ttyS0.service"}

// daemons are their processes, checked independently of the init's CLI.
var daemons = []string{"sshd", "cron", "rsyslogd", "nginx", "agetty"}

type initKind struct {
	name string
	init string // kernel init=, "" for /sbin/init (systemd)
	ctl  string // CLI in the guest
	// agentRSS names the core process whose RSS is reported too.
	agent string
}

type result struct {
	name       string
	ready      time.Duration // qemu start → multi-user.target (host clock)
	uptime     time.Duration // kernel start → multi-user.target (guest clock)
	initReady  time.Duration // switch_root → multi-user.target (guest clock): the init's own boot time
	readyBy    string        // how it was measured
	pid1RSS    string
	agentRSS   string
	poweroff   time.Duration
	persisted  bool
	servicesOK bool
	problems   []string
}

func repoRoot(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr)
	}
	return strings.TrimSpace(string(out))
}

func TestBoot(t *testing.T) {
	repo := repoRoot(t)
	t0 := time.Now()
	lines := strings.Split(run(t, repo, "hack/boot/image.sh"), "\n")
	img := lines[len(lines)-1]
	t.Logf("image %s (%.1fs)", img, time.Since(t0).Seconds())

	work, err := os.MkdirTemp("/var/tmp", "corral-boot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Console logs are the evidence: copied to $CORRAL_BOOT_LOGS
		// (hack/boot/boot.sh sets it), and the whole work dir is kept
		// when the test failed.
		if dir := os.Getenv("CORRAL_BOOT_LOGS"); dir != "" {
			os.MkdirAll(dir, 0o755)
			logs, _ := filepath.Glob(filepath.Join(work, "*.console"))
			for _, l := range logs {
				if b, err := os.ReadFile(l); err == nil {
					os.WriteFile(filepath.Join(dir, filepath.Base(l)), b, 0o644)
				}
			}
		}
		if t.Failed() {
			t.Logf("console logs kept in %s", work)
			return
		}
		os.RemoveAll(work)
	})

	// Corral's initramfs: the image's plus a cpio with /stage = make install.
	stage := filepath.Join(work, "stage")
	run(t, repo, "make", "-s", "install", "DESTDIR="+filepath.Join(stage, "stage"), "PREFIX=/usr")
	corralInitrd := filepath.Join(work, "initrd-corral.img")
	run(t, work, "sh", "-c", fmt.Sprintf("cp %s/initrd.img %s && cd %s && find stage | cpio -o -H newc --quiet >> %s",
		img, corralInitrd, stage, corralInitrd))

	kinds := []initKind{
		{name: "systemd", ctl: "systemctl"},
		{name: "corral", init: "/usr/sbin/corral", ctl: "corralctl", agent: "corral-agent"},
	}
	var results []result
	for _, k := range kinds {
		initrd := filepath.Join(img, "initrd.img")
		if k.init != "" {
			initrd = corralInitrd
		}
		r := result{}
		t.Run(k.name, func(t *testing.T) {
			r = bootTwice(t, img, work, initrd, k)
		})
		results = append(results, r)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "boot test (%s, same image and kernel, %s)\n", time.Now().Format(time.RFC3339), filepath.Base(img))
	fmt.Fprintf(&b, "multi-user.target reached, seconds: since qemu start / guest uptime / since switch_root (the init's own part)\n")
	fmt.Fprintf(&b, "%-8s %8s %8s %8s %8s %12s %12s %9s %9s %s\n", "init", "qemu", "uptime", "init", "by", "PID1 RSS", "core RSS", "poweroff", "persists", "problems")
	for _, r := range results {
		if r.name == "" {
			continue // not run (-run filter)
		}
		fmt.Fprintf(&b, "%-8s %8.2f %8.2f %8.2f %8s %12s %12s %8.2fs %9v %s\n", r.name, r.ready.Seconds(), r.uptime.Seconds(), r.initReady.Seconds(),
			r.readyBy, r.pid1RSS, r.agentRSS, r.poweroff.Seconds(), r.persisted, strings.Join(r.problems, "; "))
	}
	t.Log("\n" + b.String())
	if f := os.Getenv("CORRAL_BOOT_RESULTS"); f != "" {
		os.WriteFile(f, []byte(b.String()), 0o644)
	}
}

// bootTwice boots the image with one init on its own qcow2 overlay, checks
// it, writes a file, powers off through QMP, boots again and checks the file.
func bootTwice(t *testing.T, img, work, initrd string, k initKind) (r result) {
	r.name = k.name
	disk := filepath.Join(work, k.name+".qcow2")
	run(t, work, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", filepath.Join(img, "rootfs.img"), disk)
	cfg := vmConfig{name: k.name, dir: img, disk: disk, initrd: initrd, init: k.init,
		logPath: filepath.Join(work, k.name+"-1.console")}
	problem := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		r.problems = append(r.problems, msg)
		t.Error(msg)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	v := startVM(t, cfg)
	fail := func(err error) result {
		t.Errorf("%v\nconsole tail:\n%s", err, v.tail(60))
		r.problems = append(r.problems, err.Error())
		return r
	}

	at, by, err := waitReady(ctx, v, k)
	if err != nil {
		return fail(err)
	}
	srAt, srUptime, err := v.switchRoot(ctx)
	if err != nil {
		return fail(err)
	}
	if err := v.waitSSH(ctx); err != nil {
		return fail(err)
	}
	// Guest uptime at multi-user.target. systemd records it exactly; for an
	// init that only prints a line, the line's host time is moved onto the
	// guest clock through the switch_root anchor.
	r.uptime, r.readyBy = srUptime+at.Sub(srAt), by
	if k.name == "systemd" {
		if out, err := v.ssh(ctx, "systemctl show -P ActiveEnterTimestampMonotonic multi-user.target"); err == nil {
			if us, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64); err == nil && us > 0 {
				r.uptime, r.readyBy = time.Duration(us)*time.Microsecond, "systemd"
			}
		}
	}
	r.initReady = r.uptime - srUptime
	r.ready = srAt.Sub(v.start) + r.initReady
	t.Logf("%s: multi-user.target at uptime %.2fs, %.2fs after switch_root, %.2fs after qemu start (%s)",
		k.name, r.uptime.Seconds(), r.initReady.Seconds(), r.ready.Seconds(), r.readyBy)

	// The services, by the init's own account and by their processes.
	r.servicesOK = true
	out, err := v.ssh(ctx, k.ctl+" is-active "+strings.Join(services, " "))
	if err != nil {
		r.servicesOK = false
		problem("%s is-active: %v", k.ctl, err)
	} else if got := strings.Fields(out); len(got) != len(services) || strings.Count(out, "active") != len(services) || strings.Contains(out, "inactive") {
		r.servicesOK = false
		problem("%s is-active %v: %q", k.ctl, services, out)
	}
	for _, d := range daemons {
		if _, err := v.ssh(ctx, "pidof "+d); err != nil {
			r.servicesOK = false
			problem("%s is not running", d)
		}
	}

	// The serial getty is Debian's unit as packaged: agetty got the line
	// from the init (StandardInput=tty, TTYPath=/dev/ttyS0) and printed
	// /etc/issue on it; its "login: " prompt ends without a newline, so
	// it is looked for once later output (the power-off) ended the line.
	// (getty@tty1's agetty may run too, on the VT.)
	if out, err := v.ssh(ctx, "for p in $(pidof agetty); do echo \"$(readlink /proc/$p/fd/0): $(tr '\\0' ' ' < /proc/$p/cmdline)\"; done"); err != nil || !strings.Contains(out, "/dev/ttyS0: ") {
		problem("no agetty with /dev/ttyS0 as stdin: %q (%v)", out, err)
	} else {
		t.Logf("%s: agetty: %s", k.name, strings.ReplaceAll(strings.TrimSpace(out), "\n", "; "))
	}
	ictx, icancel := context.WithTimeout(ctx, 30*time.Second)
	if _, err := v.waitLine(ictx, issueLine); err != nil {
		problem("no getty banner on ttyS0: %v", err)
	}
	icancel()

	// syslog(3) keeps working: whoever owns /dev/log (rsyslog binds its
	// own under both inits' units) gets the message to /var/log/syslog.
	mark := "boottest-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if out, err := v.ssh(ctx, "logger -t boottest "+mark+"; for i in $(seq 40); do grep -q "+mark+
		" /var/log/syslog && exit 0; sleep 0.25; done; ls -l /dev/log; exit 1"); err != nil {
		problem("syslog message not in /var/log/syslog: %v %s", err, out)
	}
	if out, err := v.ssh(ctx, "ls -l /dev/log; ss -xap 2>/dev/null | grep -F /dev/log || true"); err == nil {
		t.Logf("%s: /dev/log: %s", k.name, strings.TrimSpace(out))
	}

	rss := func(pid string) string {
		out, err := v.ssh(ctx, "awk '/^VmRSS/ {print $2\" \"$3}' /proc/"+pid+"/status")
		if err != nil {
			return "?"
		}
		return strings.TrimSpace(out)
	}
	r.pid1RSS = rss("1")
	// Where PID 1's memory is: anonymous (heap, stacks) versus pages of
	// its binary (file) — they are reduced in different ways.
	if out, err := v.ssh(ctx, "grep -E '^(VmRSS|RssAnon|RssFile|RssShmem|Threads)' /proc/1/status | tr -s ' \t' ' ' | tr '\n' ' '"); err == nil {
		t.Logf("%s: PID 1 memory: %s", k.name, strings.TrimSpace(out))
	}
	if os.Getenv("CORRAL_BOOT_SMAPS") != "" {
		// Mapping by mapping: which of them holds PID 1's memory.
		out, _ := v.ssh(ctx, "awk '/^[0-9a-f]+-/ {m=$0} /^(Rss|Anonymous):/ && $2>0 {print m\" \"$1$2}' /proc/1/smaps")
		t.Logf("%s: PID 1 smaps:\n%s", k.name, out)
		if k.agent != "" { // Corral's PID 1 logs its Go memory statistics on SIGUSR1
			v.ssh(ctx, "kill -USR1 1")
			mctx, mcancel := context.WithTimeout(ctx, 10*time.Second)
			if _, err := v.waitLine(mctx, memLine); err == nil {
				v.mu.Lock()
				for _, l := range v.lines {
					if memLine.MatchString(l.text) {
						t.Logf("%s: %s", k.name, l.text)
					}
				}
				v.mu.Unlock()
			}
			mcancel()
		}
	}
	r.agentRSS = "-"
	if k.agent != "" {
		if pid, err := v.ssh(ctx, "pidof -s "+k.agent); err == nil {
			r.agentRSS = rss(strings.TrimSpace(pid))
		} else {
			r.agentRSS = "?"
		}
	}

	// Written just before the power button is pressed, with no sync: the
	// init's orderly shutdown must get it to disk.
	token := strconv.FormatInt(time.Now().UnixNano(), 36)
	if _, err := v.ssh(ctx, "echo "+token+" > /root/persist-test"); err != nil {
		return fail(err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 90*time.Second)
	r.poweroff, err = v.powerdown(pctx)
	pcancel()
	if err != nil {
		return fail(err)
	}
	t.Logf("%s: powered off %.2fs after system_powerdown", k.name, r.poweroff.Seconds())
	if !v.hasLine(loginPrompt) {
		problem("no login prompt on ttyS0")
	}

	// Second boot: the file must be there.
	cfg.logPath = filepath.Join(work, k.name+"-2.console")
	v = startVM(t, cfg)
	if err := v.waitSSH(ctx); err != nil {
		return fail(err)
	}
	out, err = v.ssh(ctx, "cat /root/persist-test")
	r.persisted = err == nil && strings.TrimSpace(out) == token
	if !r.persisted {
		problem("file written before power-off: got %q (%v), want %q", strings.TrimSpace(out), err, token)
	}
	pctx, pcancel = context.WithTimeout(ctx, 90*time.Second)
	if _, err := v.powerdown(pctx); err != nil {
		problem("second power-off: %v", err)
	}
	pcancel()
	return r
}

// waitReady returns when the init reached multi-user.target: its console
// line, or, for an init that prints none, `<ctl> is-active
// multi-user.target` answering "active" over ssh (polled once a second, so
// coarser).
func waitReady(ctx context.Context, v *vm, k initKind) (time.Time, string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type hit struct {
		at  time.Time
		by  string
		err error
	}
	ch := make(chan hit, 2)
	go func() {
		at, err := v.waitLine(ctx, readyLine)
		ch <- hit{at, "console", err}
	}()
	go func() {
		for {
			c, cc := context.WithTimeout(ctx, 20*time.Second)
			out, err := v.ssh(c, k.ctl+" is-active multi-user.target")
			cc()
			if err == nil && strings.TrimSpace(out) == "active" {
				ch <- hit{time.Now(), "ssh", nil}
				return
			}
			select {
			case <-ctx.Done():
				ch <- hit{err: ctx.Err()}
				return
			case <-time.After(time.Second):
			}
		}
	}()
	var errs []string
	for i := 0; i < 2; i++ {
		h := <-ch
		if h.err == nil {
			return h.at, h.by, nil
		}
		errs = append(errs, h.err.Error())
		cancel()
	}
	return time.Time{}, "", fmt.Errorf("%s: multi-user.target not reached: %s", v.name, strings.Join(errs, "; "))
}
