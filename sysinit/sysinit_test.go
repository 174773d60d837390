package sysinit

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestBackoff(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name    string
		uptimes []time.Duration
		want    []time.Duration
	}{
		{"first crash restarts at once", []time.Duration{0}, []time.Duration{0}},
		{"crash loop doubles to 1s", []time.Duration{0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
			[]time.Duration{0, 10 * ms, 20 * ms, 40 * ms, 80 * ms, 160 * ms, 320 * ms, 640 * ms, time.Second, time.Second}},
		{"slow crash restarts at once but keeps backoff", []time.Duration{0, 0, 2 * time.Second, 0},
			[]time.Duration{0, 10 * ms, 0, 20 * ms}},
		{"ten seconds of uptime resets", []time.Duration{0, 0, 0, 10 * time.Second, 0, 0},
			[]time.Duration{0, 10 * ms, 20 * ms, 0, 0, 10 * ms}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b backoff
			var got []time.Duration
			for _, u := range tt.uptimes {
				got = append(got, b.next(u))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("delays (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRecordBinaryRoundTrip(t *testing.T) {
	tests := []Record{
		{PID: 1234, StartTime: 987654321, Status: unix.WaitStatus(1 << 8), Time: time.Unix(1700000000, 123456789)},
		{PID: 7, Status: unix.WaitStatus(unix.SIGKILL)},
		{PID: 1<<22 + 5, StartTime: 1<<63 + 1, Status: 0, Time: time.Unix(0, 1)},
	}
	for _, r := range tests {
		b, err := r.MarshalBinary()
		if err != nil || len(b) != RecordSize {
			t.Fatalf("MarshalBinary(%+v) = %d bytes, %v; want %d bytes", r, len(b), err, RecordSize)
		}
		var got Record
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("UnmarshalBinary: %v", err)
		}
		if got.PID != r.PID || got.StartTime != r.StartTime || got.Status != r.Status || !got.Time.Equal(r.Time) {
			t.Errorf("round trip: got %+v, want %+v", got, r)
		}
	}
	var r Record
	if err := r.UnmarshalBinary(make([]byte, RecordSize-1)); err == nil {
		t.Error("UnmarshalBinary of a short buffer succeeded")
	}
}

func TestTableIsBounded(t *testing.T) {
	tests := []struct {
		size, adds  int
		wantPIDs    []int
		wantDropped uint64
	}{
		{size: 3, adds: 0, wantPIDs: nil},
		{size: 3, adds: 2, wantPIDs: []int{1, 2}},
		{size: 3, adds: 3, wantPIDs: []int{1, 2, 3}},
		{size: 3, adds: 7, wantPIDs: []int{5, 6, 7}, wantDropped: 4},
	}
	for _, tt := range tests {
		tb := NewTable(tt.size)
		for i := 1; i <= tt.adds; i++ {
			tb.Add(Record{PID: i})
		}
		var got []int
		for _, r := range tb.Records() {
			got = append(got, r.PID)
		}
		if !slices.Equal(got, tt.wantPIDs) || tb.Dropped() != tt.wantDropped {
			t.Errorf("size %d, %d adds: got %v dropped %d, want %v dropped %d", tt.size, tt.adds, got, tb.Dropped(), tt.wantPIDs, tt.wantDropped)
		}
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		ws   unix.WaitStatus
		want string
	}{
		{0, "status=0"},
		{3 << 8, "status=3"},
		{unix.WaitStatus(unix.SIGKILL), "signal=KILL"},
		{unix.WaitStatus(unix.SIGSEGV) | 0x80, "signal=SEGV (core dumped)"},
	}
	for _, tt := range tests {
		if got := Describe(tt.ws); got != tt.want {
			t.Errorf("Describe(%#x) = %q, want %q", uint32(tt.ws), got, tt.want)
		}
	}
}

func TestParseStat(t *testing.T) {
	// Fields 5..21 are irrelevant here; field 22 is the start time.
	mid := strings.Repeat(" 0", 17)
	tests := []struct {
		in      string
		want    stat
		wantErr bool
	}{
		{in: "12 (sleep) S 7" + mid + " 4242 1 2 3", want: stat{State: 'S', PPID: 7, Start: 4242}},
		{in: "99 (a) b (c)) Z 1" + mid + " 77 0", want: stat{State: 'Z', PPID: 1, Start: 77}},
		{in: "5 (x) R", wantErr: true},
		{in: "5 (x) R x" + mid + " 1", wantErr: true},
		{in: "garbage", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseStat([]byte(tt.in))
		if (err != nil) != tt.wantErr {
			t.Errorf("parseStat(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if err == nil && got != tt.want {
			t.Errorf("parseStat(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseStatOfSelf(t *testing.T) {
	s, err := readStat("/proc", unix.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.PPID != unix.Getppid() || s.Start == 0 || s.State == 0 || s.State == 'Z' {
		t.Errorf("readStat(self) = %+v, want PPID %d, a start time, a live state", s, unix.Getppid())
	}
}

func TestDescendants(t *testing.T) {
	tab := map[int]stat{
		1:  {PPID: 0},
		10: {PPID: 1},  // us
		11: {PPID: 10}, // child
		12: {PPID: 11}, // grandchild
		13: {PPID: 12}, // great-grandchild
		20: {PPID: 1},  // unrelated
		21: {PPID: 20},
		30: {PPID: 99}, // parent vanished during the scan
		40: {PPID: 40}, // self-loop must not hang
	}
	tests := []struct {
		root int
		want []int
	}{
		{10, []int{11, 12, 13}},
		{12, []int{13}},
		{13, nil},
		{20, []int{21}},
		{1, []int{10, 11, 12, 13, 20, 21}},
	}
	for _, tt := range tests {
		got := descendants(tab, tt.root)
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("descendants(%d) = %v, want %v", tt.root, got, tt.want)
		}
	}
}

func TestAgentArgs(t *testing.T) {
	c := Config{Root: "/r", UnitDirs: []string{"/a", "/b"}, CgroupRoot: "corral-x", LogLevel: "debug", Helper: "/bin/corral"}
	want := []string{"--root", "/r", "--unit-dir", "/a", "--unit-dir", "/b", "--cgroup-root", "corral-x", "--log-level", "debug", "--helper", "/bin/corral"}
	if diff := cmp.Diff(want, c.AgentArgs()); diff != "" {
		t.Errorf("AgentArgs (-want +got):\n%s", diff)
	}
	if got := (Config{Root: "/"}).AgentArgs(); !slices.Equal(got, []string{"--root", "/"}) {
		t.Errorf("minimal AgentArgs = %v", got)
	}
}
