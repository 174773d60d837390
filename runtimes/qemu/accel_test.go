package qemu

import (
	"slices"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestDetectAccel(t *testing.T) {
	const vmx = "processor\t: 0\nflags\t\t: fpu vme vmx sse\ncpu MHz\t\t: 2596.124\n"
	const plain = "processor\t: 0\nflags\t\t: fpu vme sse\ncpu MHz\t\t: 2000.000\n"
	for _, tc := range []struct {
		name    string
		h       HostInfo
		accel   string
		cpu     string
		cmdline []string
	}{
		{"kvm", HostInfo{CPUInfo: vmx, DevKVM: true}, "kvm", "host", nil},
		{"pvm falls back to tcg", HostInfo{CPUInfo: vmx, DevKVM: true, PVM: true}, "tcg", "max", []string{"tsc_early_khz=2596124", "tsc=reliable"}},
		{"no /dev/kvm", HostInfo{CPUInfo: vmx}, "tcg", "max", []string{"tsc_early_khz=2596124", "tsc=reliable"}},
		{"no vmx flag", HostInfo{CPUInfo: plain, DevKVM: true}, "tcg", "max", []string{"tsc_early_khz=2000000", "tsc=reliable"}},
		{"no MHz line", HostInfo{CPUInfo: "flags: sse\n"}, "tcg", "max", []string{"tsc=reliable"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := DetectAccel(tc.h)
			if a.Name != tc.accel || a.CPU != tc.cpu || !slices.Equal(a.Cmdline, tc.cmdline) {
				t.Errorf("DetectAccel = %+v, want %s %s %v", a, tc.accel, tc.cpu, tc.cmdline)
			}
		})
	}
}

func TestArgs(t *testing.T) {
	a := Accel{Name: "tcg", CPU: "max", Cmdline: []string{"tsc=reliable"}}
	args := Args(a, Machine{Kernel: "/k", Initrd: "/i", MemoryMiB: 256, CPUs: 2, Images: []string{"/a.ext4", "/b.ext4"},
		AgentSocket: "/r/agent.sock", QMPSocket: "/r/qmp.sock", Console: "/r/console.log",
		MAC: "02:00:00:00:00:01", Cmdline: []string{"corral.ip=10.0.0.2/24"}})
	line := strings.Join(args, " ")
	for _, want := range []string{
		"-M microvm", "-accel tcg", "-cpu max", "-m 256", "-smp 2", "-nodefaults", "-display none", "-no-reboot",
		"-kernel /k", "-initrd /i", "tsc=reliable", "-serial file:/r/console.log",
		"-qmp unix:/r/qmp.sock,server=on,wait=off",
		"socket,id=agent,path=/r/agent.sock,server=on,wait=off", "virtserialport,name=agent,chardev=agent",
		"id=img0,file=/a.ext4,format=raw,if=none,readonly=on", "id=img1,file=/b.ext4",
		"virtio-blk-device,drive=img1,serial=img1", "tsc=reliable corral.ip=10.0.0.2/24",
		"-netdev tap,id=net0,ifname=tap0,script=no,downscript=no", "virtio-net-device,netdev=net0,mac=02:00:00:00:00:01",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("args lack %q:\n%s", want, line)
		}
	}
}

func TestArgsWithoutNIC(t *testing.T) {
	args := strings.Join(Args(Accel{Name: "kvm", CPU: "host"}, Machine{Kernel: "/k", Initrd: "/i", MemoryMiB: 64, CPUs: 1}), " ")
	if strings.Contains(args, "netdev") {
		t.Errorf("a machine without MAC has a NIC: %s", args)
	}
}

func TestContainerArgv(t *testing.T) {
	for _, tc := range []struct {
		command, args, entrypoint, cmd, want []string
	}{
		{entrypoint: []string{"/ep"}, cmd: []string{"-x"}, want: []string{"/ep", "-x"}},
		{cmd: []string{"sh"}, want: []string{"sh"}},
		{args: []string{"-y"}, entrypoint: []string{"/ep"}, cmd: []string{"-x"}, want: []string{"/ep", "-y"}},
		{command: []string{"/c"}, entrypoint: []string{"/ep"}, cmd: []string{"-x"}, want: []string{"/c"}},
		{command: []string{"/c"}, args: []string{"a"}, entrypoint: []string{"/ep"}, want: []string{"/c", "a"}},
		{want: []string{}},
	} {
		if got := containerArgv(tc.command, tc.args, tc.entrypoint, tc.cmd); !slices.Equal(got, tc.want) {
			t.Errorf("containerArgv(%v, %v, %v, %v) = %v, want %v", tc.command, tc.args, tc.entrypoint, tc.cmd, got, tc.want)
		}
	}
}

func TestContainerUser(t *testing.T) {
	for _, tc := range []struct {
		sc    *runtimeapi.LinuxContainerSecurityContext
		image string
		want  string
	}{
		{nil, "", ""},
		{nil, "www-data:users", "www-data:users"},
		{&runtimeapi.LinuxContainerSecurityContext{RunAsUser: &runtimeapi.Int64Value{Value: 1000}}, "www-data", "1000"},
		{&runtimeapi.LinuxContainerSecurityContext{RunAsUsername: "bob"}, "www-data", "bob"},
		{&runtimeapi.LinuxContainerSecurityContext{RunAsGroup: &runtimeapi.Int64Value{Value: 50}}, "www-data:users", "www-data:50"},
		{&runtimeapi.LinuxContainerSecurityContext{RunAsGroup: &runtimeapi.Int64Value{Value: 50}}, "", "0:50"},
	} {
		if got := containerUser(tc.sc, tc.image); got != tc.want {
			t.Errorf("containerUser(%v, %q) = %q, want %q", tc.sc, tc.image, got, tc.want)
		}
	}
}

func TestEtcFiles(t *testing.T) {
	cfg := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "web"},
		DnsConfig: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"default.svc.cluster.local", "svc.cluster.local"}, Options: []string{"ndots:5"}}}
	files, err := etcFiles(cfg, "10.1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"/etc/hostname":    "web\n",
		"/etc/resolv.conf": "search default.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n",
	}
	for k, v := range want {
		if files[k] != v {
			t.Errorf("%s = %q, want %q", k, files[k], v)
		}
	}
	if !strings.Contains(files["/etc/hosts"], "10.1.2.3\tweb\n") {
		t.Errorf("/etc/hosts = %q, want the pod IP named", files["/etc/hosts"])
	}
	cfg.Hostname = "named"
	cfg.DnsConfig = nil
	files, _ = etcFiles(cfg, "")
	if _, ok := files["/etc/resolv.conf"]; ok || files["/etc/hostname"] != "named\n" {
		t.Errorf("without DNS config: %v", files)
	}
	cfg.DnsConfig = &runtimeapi.DNSConfig{Servers: []string{"1.1.1.1\nnameserver 6.6.6.6"}}
	if _, err := etcFiles(cfg, ""); err == nil {
		t.Error("a line break in a DNS entry was accepted")
	}
}

func TestCheckSecurityAndGroups(t *testing.T) {
	i := func(v int64) *runtimeapi.Int64Value { return &runtimeapi.Int64Value{Value: v} }
	for _, tc := range []struct {
		name    string
		sc      *runtimeapi.LinuxContainerSecurityContext
		invalid bool
	}{
		{"none", nil, false},
		{"group without user", &runtimeapi.LinuxContainerSecurityContext{RunAsGroup: i(5)}, true},
		{"group with uid", &runtimeapi.LinuxContainerSecurityContext{RunAsUser: i(1), RunAsGroup: i(5)}, false},
		{"group with name", &runtimeapi.LinuxContainerSecurityContext{RunAsUsername: "nobody", RunAsGroup: i(5)}, false},
	} {
		if err := checkSecurity(tc.sc); (err != nil) != tc.invalid {
			t.Errorf("%s: checkSecurity = %v, want invalid %v", tc.name, err, tc.invalid)
		}
	}
	got := supplementalGroups(&runtimeapi.LinuxContainerSecurityContext{SupplementalGroups: []int64{1234, -1, 5678}})
	if !slices.Equal(got, []uint32{1234, 5678}) {
		t.Errorf("supplementalGroups = %v, want [1234 5678]", got)
	}
}
