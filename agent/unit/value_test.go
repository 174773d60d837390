package unit

import (
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestParseTimespan(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		inf, ok bool
	}{
		{"5min 20s", 5*time.Minute + 20*time.Second, false, true},
		{"5min20s", 5*time.Minute + 20*time.Second, false, true},
		{"100ms", 100 * time.Millisecond, false, true},
		{"90", 90 * time.Second, false, true},
		{"1.5h", 90 * time.Minute, false, true},
		{"2 weeks", 14 * 24 * time.Hour, false, true},
		{"10us", 10 * time.Microsecond, false, true},
		{"1d 2h", 26 * time.Hour, false, true},
		{"infinity", 0, true, true},
		{"0", 0, false, true},
		{"", 0, false, false},
		{"5 parsecs", 0, false, false},
		{"abc", 0, false, false},
		{"-5s", 0, false, false},
	}
	for _, tt := range tests {
		d, inf, err := parseTimespan(tt.in, time.Second)
		if (err == nil) != tt.ok || d != tt.want || inf != tt.inf {
			t.Errorf("parseTimespan(%q) = %v, %v, %v; want %v, %v, ok=%v", tt.in, d, inf, err, tt.want, tt.inf, tt.ok)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		inf, ok bool
	}{
		{"1024", 1024, false, true},
		{"1K", 1024, false, true},
		{"512M", 512 << 20, false, true},
		{"2G", 2 << 30, false, true},
		{"1T", 1 << 40, false, true},
		{"1.5K", 1536, false, true},
		{"10MB", 10 << 20, false, true},
		{"infinity", 0, true, true},
		{"1X", 0, false, false},
		{"", 0, false, false},
	}
	for _, tt := range tests {
		n, inf, err := parseSize(tt.in)
		if (err == nil) != tt.ok || n != tt.want || inf != tt.inf {
			t.Errorf("parseSize(%q) = %v, %v, %v", tt.in, n, inf, err)
		}
	}
	if n, err := parseMemory("infinity"); err != nil || n != math.MaxUint64 {
		t.Errorf("parseMemory(infinity) = %v, %v", n, err)
	}
	if n, err := parseMemory("50%"); err != nil || n == 0 || n != physicalMemory()/2 {
		t.Errorf("parseMemory(50%%) = %v, %v; RAM %v", n, err, physicalMemory())
	}
}

func TestParseBoolSignalMode(t *testing.T) {
	for in, want := range map[string]bool{"yes": true, "On": true, "1": true, "t": true, "no": false, "off": false, "0": false} {
		if got, err := parseBool(in); err != nil || got != want {
			t.Errorf("parseBool(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := parseBool("maybe"); err == nil {
		t.Error("parseBool(maybe) succeeded")
	}
	sigs := map[string]int{"SIGTERM": 15, "TERM": 15, "kill": 9, "1": 1, "SIGRTMIN+2": 36, "SIGUSR1": 10}
	for in, want := range sigs {
		if got, err := parseSignal(in); err != nil || got != want {
			t.Errorf("parseSignal(%q) = %v, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"SIGFOO", "0", "65", "RTMIN+40"} {
		if _, err := parseSignal(in); err == nil {
			t.Errorf("parseSignal(%q) succeeded", in)
		}
	}
	if m, err := parseMode("0027"); err != nil || m != 0o27 {
		t.Errorf("parseMode = %o, %v", m, err)
	}
	if _, err := parseMode("0999"); err == nil {
		t.Error("parseMode(0999) succeeded")
	}
	if d, err := parseCPUQuota("20%"); err != nil || d != 200*time.Millisecond {
		t.Errorf("parseCPUQuota(20%%) = %v, %v", d, err)
	}
	if d, err := parseCPUQuota("250%"); err != nil || d != 2500*time.Millisecond {
		t.Errorf("parseCPUQuota(250%%) = %v, %v", d, err)
	}
	if _, err := parseCPUQuota("20"); err == nil {
		t.Error("parseCPUQuota(20) succeeded")
	}
}

func TestParseRlimit(t *testing.T) {
	inf := uint64(unix.RLIM_INFINITY)
	tests := []struct {
		key, in string
		want    Rlimit
		ok      bool
	}{
		{"LimitNOFILE", "1024:4096", Rlimit{unix.RLIMIT_NOFILE, 1024, 4096}, true},
		{"LimitNOFILE", "65536", Rlimit{unix.RLIMIT_NOFILE, 65536, 65536}, true},
		{"LimitNOFILE", "infinity", Rlimit{unix.RLIMIT_NOFILE, inf, inf}, true},
		{"LimitCORE", "0:infinity", Rlimit{unix.RLIMIT_CORE, 0, inf}, true},
		{"LimitMEMLOCK", "64M", Rlimit{unix.RLIMIT_MEMLOCK, 64 << 20, 64 << 20}, true},
		{"LimitCPU", "2min", Rlimit{unix.RLIMIT_CPU, 120, 120}, true},
		{"LimitRTTIME", "1s", Rlimit{unix.RLIMIT_RTTIME, 1000000, 1000000}, true},
		{"LimitNICE", "-5", Rlimit{unix.RLIMIT_NICE, 25, 25}, true},
		{"LimitNOFILE", "4096:1024", Rlimit{}, false},
		{"LimitNOFILE", "lots", Rlimit{}, false},
	}
	for _, tt := range tests {
		got, err := parseRlimit(tt.key, tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("parseRlimit(%s=%s) err = %v", tt.key, tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("parseRlimit(%s=%s) (-want +got)\n%s", tt.key, tt.in, diff)
		}
	}
}

func TestParseExitStatusSet(t *testing.T) {
	var set ExitStatusSet
	if err := parseExitStatusSet("0 1 SIGTERM TERM 255 EXIT_NOTINSTALLED DATAERR", &set); err != nil {
		t.Fatal(err)
	}
	want := ExitStatusSet{Codes: []int{0, 1, 255, 5, 65}, Signals: []int{15, 15}}
	if diff := cmp.Diff(want, set); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	for _, bad := range []string{"256", "SIGNOPE", "-1"} {
		if err := parseExitStatusSet(bad, &ExitStatusSet{}); err == nil {
			t.Errorf("parseExitStatusSet(%q) succeeded", bad)
		}
	}
}
