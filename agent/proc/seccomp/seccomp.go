// Package seccomp compiles seccomp profiles (the OCI/Docker JSON format that
// kubelet's Localhost profiles use, and a built-in RuntimeDefault) into
// classic BPF programs for proc.Spec.Seccomp. libseccomp needs cgo, which
// the agent does without; the subset here (actions, per-syscall rules,
// argument comparisons, caps includes/excludes) is what profiles use on an
// x86_64 host.
package seccomp

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Profile is a seccomp profile as JSON has it.
type Profile struct {
	DefaultAction   string   `json:"defaultAction"`
	DefaultErrnoRet *uint32  `json:"defaultErrnoRet,omitempty"`
	Architectures   []string `json:"architectures,omitempty"`
	Syscalls        []Rule   `json:"syscalls,omitempty"`
}

// Rule is one syscalls entry.
type Rule struct {
	Names    []string `json:"names,omitempty"`
	Name     string   `json:"name,omitempty"` // older single-name form
	Action   string   `json:"action"`
	ErrnoRet *uint32  `json:"errnoRet,omitempty"`
	Args     []Arg    `json:"args,omitempty"`
	Includes Filter   `json:"includes"`
	Excludes Filter   `json:"excludes"`
}

// Filter limits a rule to some capabilities or architectures (Docker's
// default profile uses them).
type Filter struct {
	Caps   []string `json:"caps,omitempty"`
	Arches []string `json:"arches,omitempty"`
}

// Arg compares one syscall argument: Value is the operand (the mask for
// SCMP_CMP_MASKED_EQ, then compared with ValueTwo).
type Arg struct {
	Index    uint   `json:"index"`
	Value    uint64 `json:"value"`
	ValueTwo uint64 `json:"valueTwo"`
	Op       string `json:"op"`
}

// Parse reads a profile.
func Parse(data []byte) (*Profile, error) {
	var p Profile
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	if p.DefaultAction == "" {
		return nil, errors.New("seccomp profile: no defaultAction")
	}
	return &p, nil
}

const (
	retKillProcess = 0x80000000
	retKillThread  = 0x00000000
	retTrap        = 0x00030000
	retErrno       = 0x00050000
	retTrace       = 0x7ff00000
	retLog         = 0x7ffc0000
	retAllow       = 0x7fff0000

	auditArchX8664 = 0xc000003e
	x32Bit         = 0x40000000

	offNr   = 0
	offArch = 4
	offArgs = 16
)

func action(name string, errno *uint32) (uint32, error) {
	data := uint32(unix.EPERM)
	if errno != nil {
		data = *errno
	}
	switch name {
	case "SCMP_ACT_ALLOW":
		return retAllow, nil
	case "SCMP_ACT_ERRNO":
		return retErrno | data&0xffff, nil
	case "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD":
		return retKillThread, nil
	case "SCMP_ACT_KILL_PROCESS":
		return retKillProcess, nil
	case "SCMP_ACT_TRAP":
		return retTrap, nil
	case "SCMP_ACT_TRACE":
		return retTrace | data&0xffff, nil
	case "SCMP_ACT_LOG":
		return retLog, nil
	}
	return 0, fmt.Errorf("seccomp profile: action %q is not supported", name)
}

// Compile turns p into a BPF program for an x86_64 process whose
// capabilities hasCap reports (for rules' includes/excludes). Syscall
// names this kernel's table lacks are skipped, as libseccomp does. Any
// other architecture (32-bit or x32 calls) gets the profile's errno
// action for everything: their numbers differ, so rules written for
// x86_64 would not hold for them.
func Compile(p *Profile, hasCap func(string) bool) ([]unix.SockFilter, error) {
	if len(syscalls) == 0 {
		return nil, errors.New("seccomp: no syscall table for this architecture")
	}
	def, err := action(p.DefaultAction, p.DefaultErrnoRet)
	if err != nil {
		return nil, err
	}
	if len(p.Architectures) > 0 && !slices.ContainsFunc(p.Architectures, isX8664) {
		return nil, fmt.Errorf("seccomp profile: architectures %v do not include x86_64", p.Architectures)
	}
	var a asm
	foreign := uint32(retErrno | unix.EPERM)
	// Jumps reach at most 255 instructions ahead: the foreign-call
	// returns come first.
	a.stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, offArch)
	a.jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, auditArchX8664, "native", "")
	a.ret(foreign)
	a.label("native")
	a.stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, offNr)
	a.jump(unix.BPF_JMP|unix.BPF_JSET|unix.BPF_K, x32Bit, "", "x86_64")
	a.ret(foreign)
	a.label("x86_64")
	for i, r := range p.Syscalls {
		if !applies(r, hasCap) {
			continue
		}
		act, err := action(r.Action, r.ErrnoRet)
		if err != nil {
			return nil, err
		}
		names := r.Names
		if r.Name != "" {
			names = append(names, r.Name)
		}
		for j, name := range names {
			nr, ok := syscalls[name]
			if !ok {
				continue
			}
			next := fmt.Sprintf("r%d.%d", i, j)
			a.jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, nr, "", next)
			if len(r.Args) == 0 {
				a.ret(act)
				a.label(next)
				continue
			}
			fail := next + ".fail"
			for k, arg := range r.Args {
				if err := a.arg(arg, fmt.Sprintf("%s.a%d", next, k), fail); err != nil {
					return nil, err
				}
			}
			a.ret(act)
			a.label(fail)
			a.stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, offNr) // the comparisons replaced A
			a.label(next)
		}
	}
	a.ret(def)
	return a.link()
}

func isX8664(a string) bool {
	a = strings.ToLower(strings.TrimPrefix(a, "SCMP_ARCH_"))
	return a == "x86_64" || a == "amd64"
}

func applies(r Rule, hasCap func(string) bool) bool {
	has := func(c string) bool { return hasCap != nil && hasCap(strings.TrimPrefix(strings.ToUpper(c), "CAP_")) }
	for _, c := range r.Includes.Caps {
		if !has(c) {
			return false
		}
	}
	for _, c := range r.Excludes.Caps {
		if has(c) {
			return false
		}
	}
	if len(r.Includes.Arches) > 0 && !slices.ContainsFunc(r.Includes.Arches, isX8664) {
		return false
	}
	if slices.ContainsFunc(r.Excludes.Arches, isX8664) {
		return false
	}
	return true
}

// asm is a tiny BPF assembler with forward labels for the jump targets.
type asm struct {
	ins    []unix.SockFilter
	jt, jf []string // label per instruction ("" = fall through)
	labels map[string]int
}

func (a *asm) stmt(code uint16, k uint32) { a.emit(code, k, "", "") }

func (a *asm) jump(code uint16, k uint32, jt, jf string) { a.emit(code, k, jt, jf) }

func (a *asm) ret(k uint32) { a.stmt(unix.BPF_RET|unix.BPF_K, k) }

func (a *asm) emit(code uint16, k uint32, jt, jf string) {
	a.ins = append(a.ins, unix.SockFilter{Code: code, K: k})
	a.jt, a.jf = append(a.jt, jt), append(a.jf, jf)
}

func (a *asm) label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.ins)
}

// arg emits the comparison of one 64-bit argument (two 32-bit halves,
// little-endian) that falls through to pass when it holds and jumps to
// fail otherwise.
func (a *asm) arg(c Arg, pass, fail string) error {
	if c.Index > 5 {
		return fmt.Errorf("seccomp profile: argument index %d", c.Index)
	}
	lo, hi := uint32(offArgs+8*c.Index), uint32(offArgs+8*c.Index+4)
	vLo, vHi := uint32(c.Value), uint32(c.Value>>32)
	ld := func(off uint32) { a.stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, off) }
	const (
		jeq = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jgt = unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K
		jge = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
	)
	switch c.Op {
	case "SCMP_CMP_EQ":
		ld(hi)
		a.jump(jeq, vHi, "", fail)
		ld(lo)
		a.jump(jeq, vLo, "", fail)
	case "SCMP_CMP_NE":
		ld(hi)
		a.jump(jeq, vHi, "", pass)
		ld(lo)
		a.jump(jeq, vLo, fail, "")
	case "SCMP_CMP_MASKED_EQ":
		mLo, mHi := uint32(c.Value), uint32(c.Value>>32)
		ld(hi)
		a.stmt(unix.BPF_ALU|unix.BPF_AND|unix.BPF_K, mHi)
		a.jump(jeq, uint32(c.ValueTwo>>32), "", fail)
		ld(lo)
		a.stmt(unix.BPF_ALU|unix.BPF_AND|unix.BPF_K, mLo)
		a.jump(jeq, uint32(c.ValueTwo), "", fail)
	case "SCMP_CMP_GT", "SCMP_CMP_GE":
		ld(hi)
		a.jump(jgt, vHi, pass, "")
		a.jump(jeq, vHi, "", fail)
		ld(lo)
		op := uint16(jgt)
		if c.Op == "SCMP_CMP_GE" {
			op = jge
		}
		a.jump(op, vLo, "", fail)
	case "SCMP_CMP_LT", "SCMP_CMP_LE":
		ld(hi)
		a.jump(jgt, vHi, fail, "")
		a.jump(jeq, vHi, "", pass)
		ld(lo)
		op := uint16(jge) // a >= v fails LT
		if c.Op == "SCMP_CMP_LE" {
			op = jgt
		}
		a.jump(op, vLo, fail, "")
	default:
		return fmt.Errorf("seccomp profile: comparison %q is not supported", c.Op)
	}
	a.label(pass)
	return nil
}

// link resolves the labels into relative jump offsets.
func (a *asm) link() ([]unix.SockFilter, error) {
	if len(a.ins) > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("seccomp: program of %d instructions is too long", len(a.ins))
	}
	off := func(i int, l string) (uint8, error) {
		if l == "" {
			return 0, nil
		}
		t, ok := a.labels[l]
		if !ok {
			return 0, fmt.Errorf("seccomp: undefined label %s", l)
		}
		d := t - i - 1
		if d < 0 || d > 255 {
			return 0, fmt.Errorf("seccomp: jump to %s out of range (%d)", l, d)
		}
		return uint8(d), nil
	}
	out := slices.Clone(a.ins)
	for i := range out {
		var err error
		if out[i].Jt, err = off(i, a.jt[i]); err != nil {
			return nil, err
		}
		if out[i].Jf, err = off(i, a.jf[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}
