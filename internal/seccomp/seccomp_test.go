package seccomp

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// run interprets prog over a seccomp_data the way the kernel does.
func run(t *testing.T, prog []unix.SockFilter, arch, nr uint32, args ...uint64) uint32 {
	t.Helper()
	data := make([]byte, 64)
	binary.LittleEndian.PutUint32(data[0:], nr)
	binary.LittleEndian.PutUint32(data[4:], arch)
	for i, a := range args {
		binary.LittleEndian.PutUint64(data[16+8*i:], a)
	}
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			acc = binary.LittleEndian.Uint32(data[in.K:])
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			acc &= in.K
		case unix.BPF_RET | unix.BPF_K:
			return in.K
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(in.K)
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K,
			unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			var ok bool
			switch in.Code &^ (unix.BPF_JMP | unix.BPF_K) {
			case unix.BPF_JEQ:
				ok = acc == in.K
			case unix.BPF_JGT:
				ok = acc > in.K
			case unix.BPF_JGE:
				ok = acc >= in.K
			case unix.BPF_JSET:
				ok = acc&in.K != 0
			}
			if ok {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		default:
			t.Fatalf("instruction %d: unknown code %#x", pc, in.Code)
		}
	}
	t.Fatal("program ran off its end")
	return 0
}

func compile(t *testing.T, cfg *specs.LinuxSeccomp) []unix.SockFilter {
	t.Helper()
	p, err := Compile(cfg)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p.Filter
}

func uptr(v uint) *uint { return &v }

const errnoEPERM = retErrno | uint32(unix.EPERM)
const errnoENOSYS = retErrno | uint32(unix.ENOSYS)

func TestTables(t *testing.T) {
	for _, c := range []struct {
		arch specs.Arch
		name string
		nr   uint32
	}{
		{specs.ArchX86_64, "read", 0},
		{specs.ArchX86_64, "getpid", 39},
		{specs.ArchX86_64, "clone3", 435},
		{specs.ArchX86_64, "set_mempolicy_home_node", 450},
		{specs.ArchX86, "getpid", 20},
		{specs.ArchX86, "socketcall", 102},
		{specs.ArchX86, "socket", 359},
		{specs.ArchX86, "_llseek", 140},
		{specs.ArchX32, "getpid", 39 | x32Bit},
		{specs.ArchX32, "execve", 520 | x32Bit},
		{specs.ArchAARCH64, "getpid", 172},
		{specs.ArchAARCH64, "openat", 56},
	} {
		if nr, ok := abis[c.arch].resolve(c.name); !ok || nr != c.nr {
			t.Errorf("%s %s = %d, %v; want %d", c.arch, c.name, nr, ok, c.nr)
		}
	}
	// Unknown to libseccomp 2.5.4, so ignored by runc.
	for _, name := range []string{"mseal", "fchmodat2", "uretprobe", "nosuchcall"} {
		if nr, ok := abis[specs.ArchX86_64].resolve(name); ok {
			t.Errorf("x86_64 %s resolves to %d", name, nr)
		}
	}
	if _, ok := abis[specs.ArchX32].resolve("uselib"); ok {
		t.Error("x32 has uselib")
	}
}

func TestActions(t *testing.T) {
	x86 := []specs.Arch{specs.ArchX86_64}
	for _, c := range []struct {
		act      specs.LinuxSeccompAction
		errnoRet *uint
		want     uint32
	}{
		{specs.ActAllow, nil, retAllow},
		{specs.ActErrno, nil, errnoEPERM},
		{specs.ActErrno, uptr(13), retErrno | 13},
		{specs.ActKill, nil, retKillThread},
		{specs.ActKillThread, nil, retKillThread},
		{specs.ActKillProcess, nil, retKillProcess},
		{specs.ActTrap, nil, retTrap},
		{specs.ActTrace, nil, retTrace | 1},
		{specs.ActTrace, uptr(7), retTrace | 7},
		{specs.ActLog, nil, retLog},
	} {
		def := specs.ActAllow
		if c.act == specs.ActAllow {
			def = specs.ActKillProcess
		}
		prog := compile(t, &specs.LinuxSeccomp{DefaultAction: def, Architectures: x86, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"getpid"}, Action: c.act, ErrnoRet: c.errnoRet},
		}})
		if got := run(t, prog, auditArchX86_64, 39); got != c.want {
			t.Errorf("%s errnoRet %v: getpid gets %#x, want %#x", c.act, c.errnoRet, got, c.want)
		}
	}
}

func TestDefaultAndStub(t *testing.T) {
	cfg := &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: uptr(uint(unix.EACCES)),
		Architectures:   []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"getpid", "read", "nosuchcall", "mseal"}, Action: specs.ActAllow},
			{Names: []string{"mkdir"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(unix.EACCES))},
			{Names: []string{"keyctl"}, Action: specs.ActErrno},
		},
	}
	prog := compile(t, cfg)
	deny := retErrno | uint32(unix.EACCES)
	for _, c := range []struct {
		what       string
		arch, nr   uint32
		want       uint32
		args       []uint64
		comparison string
	}{
		{what: "x86_64 getpid", arch: auditArchX86_64, nr: 39, want: retAllow},
		{what: "x86_64 read", arch: auditArchX86_64, nr: 0, want: retAllow},
		{what: "x86_64 keyctl EPERM", arch: auditArchX86_64, nr: 250, want: errnoEPERM},
		{what: "x86_64 mkdir repeats default", arch: auditArchX86_64, nr: 83, want: deny},
		{what: "x86_64 chdir default", arch: auditArchX86_64, nr: 80, want: deny},
		// keyctl (250) is the largest named syscall, mseal is unknown.
		{what: "x86_64 above last named", arch: auditArchX86_64, nr: 251, want: errnoENOSYS},
		{what: "x86_64 mseal", arch: auditArchX86_64, nr: 462, want: errnoENOSYS},
		{what: "i386 getpid", arch: auditArchI386, nr: 20, want: retAllow},
		{what: "i386 read", arch: auditArchI386, nr: 3, want: retAllow},
		{what: "i386 keyctl", arch: auditArchI386, nr: 288, want: errnoEPERM},
		{what: "i386 x86_64 getpid number", arch: auditArchI386, nr: 39, want: deny},
		{what: "i386 above last", arch: auditArchI386, nr: 289, want: errnoENOSYS},
		{what: "x32 getpid", arch: auditArchX86_64, nr: 39 | x32Bit, want: retAllow},
		{what: "x32 keyctl", arch: auditArchX86_64, nr: 250 | x32Bit, want: errnoEPERM},
		{what: "x32 above last", arch: auditArchX86_64, nr: 251 | x32Bit, want: errnoENOSYS},
		{what: "bad arch", arch: auditArchAArch64, nr: 172, want: retKillThread},
	} {
		if got := run(t, prog, c.arch, c.nr, c.args...); got != c.want {
			t.Errorf("%s: got %#x, want %#x", c.what, got, c.want)
		}
	}

	// Without x32 listed, x32 numbers are a bad architecture (but -1 is not),
	// and the stub leaves them alone.
	cfg.Architectures = []specs.Arch{specs.ArchX86_64}
	prog = compile(t, cfg)
	for _, c := range []struct {
		nr, want uint32
	}{{39 | x32Bit, retKillThread}, {0xffffffff, deny}, {39, retAllow}, {251, errnoENOSYS}} {
		if got := run(t, prog, auditArchX86_64, c.nr); got != c.want {
			t.Errorf("x86_64 only, nr %#x: got %#x, want %#x", c.nr, got, c.want)
		}
	}
	if got := run(t, prog, auditArchI386, 20); got != retKillThread {
		t.Errorf("i386 not listed: got %#x, want KILL", got)
	}

	// runc 1.1.5 adds no stub for unlisted architectures, nor for
	// permissive default actions.
	cfg.Architectures = nil
	if got := run(t, compile(t, cfg), auditArchX86_64, 400); got != deny {
		t.Errorf("no architectures: nr 400 got %#x, want default", got)
	}
	allow := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86_64},
		Syscalls: []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: specs.ActErrno}}}
	if got := run(t, compile(t, allow), auditArchX86_64, 400); got != retAllow {
		t.Errorf("default allow: nr 400 got %#x, want allow", got)
	}
}

func TestConditions(t *testing.T) {
	const hi = uint64(1) << 32
	cases := []struct {
		op         specs.LinuxSeccompOperator
		value, two uint64
		match      []uint64
		miss       []uint64
	}{
		{specs.OpEqualTo, 5 + hi, 0, []uint64{5 + hi}, []uint64{5, hi, 6 + hi, 5 + 2*hi}},
		{specs.OpNotEqual, 5 + hi, 0, []uint64{5, hi, 6 + hi}, []uint64{5 + hi}},
		{specs.OpGreaterThan, 5 + hi, 0, []uint64{6 + hi, 2 * hi, ^uint64(0)}, []uint64{5 + hi, 4 + hi, 0xffffffff, 6}},
		{specs.OpGreaterEqual, 5 + hi, 0, []uint64{5 + hi, 2 * hi}, []uint64{4 + hi, 0xffffffff}},
		{specs.OpLessThan, 5 + hi, 0, []uint64{4 + hi, 0xffffffff, 0}, []uint64{5 + hi, 2 * hi, 6 + hi}},
		{specs.OpLessEqual, 5 + hi, 0, []uint64{5 + hi, 0xffffffff}, []uint64{6 + hi, 2 * hi}},
		{specs.OpMaskedEqual, 0xf0 | 0xff*hi, 0x30 | 0x12*hi, []uint64{0x3f | 0x12*hi, 0x30 | 0xf12*hi}, []uint64{0x30, 0x40 | 0x12*hi}},
		// A datum outside the mask is masked too; a zero mask always holds.
		{specs.OpMaskedEqual, 0xf0, 0x1f0, []uint64{0xf0, 0x1f0}, []uint64{0x100}},
		{specs.OpMaskedEqual, 0, 7, []uint64{0, 9}, nil},
	}
	for _, c := range cases {
		prog := compile(t, &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86_64},
			Syscalls: []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: specs.ActAllow,
				Args: []specs.LinuxSeccompArg{{Index: 3, Op: c.op, Value: c.value, ValueTwo: c.two}}}}})
		for _, v := range c.match {
			if got := run(t, prog, auditArchX86_64, 39, 0, 0, 0, v); got != retAllow {
				t.Errorf("%s %#x/%#x: arg %#x got %#x, want allow", c.op, c.value, c.two, v, got)
			}
		}
		for _, v := range c.miss {
			if got := run(t, prog, auditArchX86_64, 39, 0, 0, 0, v); got != errnoEPERM {
				t.Errorf("%s %#x/%#x: arg %#x got %#x, want default", c.op, c.value, c.two, v, got)
			}
		}
	}
}

func TestRulesAndOrAnd(t *testing.T) {
	cfg := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86},
		Syscalls: []specs.LinuxSyscall{
			// ANDed: arg0 == 1 && arg1 > 10.
			{Names: []string{"getpid"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
				{Index: 0, Op: specs.OpEqualTo, Value: 1}, {Index: 1, Op: specs.OpGreaterThan, Value: 10}}},
			// ORed with the rule above.
			{Names: []string{"getpid"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
				{Index: 2, Op: specs.OpEqualTo, Value: 7}}},
			// Two conditions on one argument: runc makes them two rules (ORed).
			{Names: []string{"getppid"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
				{Index: 0, Op: specs.OpEqualTo, Value: 1}, {Index: 0, Op: specs.OpEqualTo, Value: 2}}},
			// A conditional rule and a later unconditional one: the latter wins.
			{Names: []string{"gettid"}, Action: specs.ActKillProcess, Args: []specs.LinuxSeccompArg{
				{Index: 0, Op: specs.OpEqualTo, Value: 1}}},
			{Names: []string{"gettid"}, Action: specs.ActAllow},
			// Socket rules go through socketcall on i386, with arg0 replaced.
			{Names: []string{"socket"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
				{Index: 0, Op: specs.OpEqualTo, Value: 2}}},
			// 64-bit datum on i386 is truncated.
			{Names: []string{"umask"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
				{Index: 0, Op: specs.OpEqualTo, Value: 0x100000022}}},
		}}
	prog := compile(t, cfg)
	for _, c := range []struct {
		what     string
		arch, nr uint32
		args     []uint64
		want     uint32
	}{
		{"and holds", auditArchX86_64, 39, []uint64{1, 11}, retAllow},
		{"and half", auditArchX86_64, 39, []uint64{1, 10}, errnoEPERM},
		{"and other half", auditArchX86_64, 39, []uint64{2, 11}, errnoEPERM},
		{"or second rule", auditArchX86_64, 39, []uint64{0, 0, 7}, retAllow},
		{"same arg 1", auditArchX86_64, 110, []uint64{1}, retAllow},
		{"same arg 2", auditArchX86_64, 110, []uint64{2}, retAllow},
		{"same arg 3", auditArchX86_64, 110, []uint64{3}, errnoEPERM},
		{"unconditional wins", auditArchX86_64, 186, []uint64{1}, retAllow},
		{"x86_64 socket", auditArchX86_64, 41, []uint64{2}, retAllow},
		{"x86_64 socket other", auditArchX86_64, 41, []uint64{10}, errnoEPERM},
		{"i386 socket direct", auditArchI386, 359, []uint64{2}, retAllow},
		{"i386 socketcall SYS_SOCKET", auditArchI386, 102, []uint64{1}, retAllow},
		{"i386 socketcall SYS_BIND", auditArchI386, 102, []uint64{2}, errnoEPERM},
		{"x86_64 umask 64-bit", auditArchX86_64, 95, []uint64{0x100000022}, retAllow},
		{"x86_64 umask low half", auditArchX86_64, 95, []uint64{0x22}, errnoEPERM},
		{"i386 umask low half", auditArchI386, 60, []uint64{0x22}, retAllow},
		{"i386 umask other", auditArchI386, 60, []uint64{0x23}, errnoEPERM},
	} {
		if got := run(t, prog, c.arch, c.nr, c.args...); got != c.want {
			t.Errorf("%s: got %#x, want %#x", c.what, got, c.want)
		}
	}
}

// cmp is a one-condition rule list for the tests below.
func cmp(arg uint, op specs.LinuxSeccompOperator, value, two uint64) []specs.LinuxSeccompArg {
	return []specs.LinuxSeccompArg{{Index: arg, Op: op, Value: value, ValueTwo: two}}
}

func TestDisjointActions(t *testing.T) {
	const hi = uint64(1) << 32
	eacces := retErrno | uint32(unix.EACCES)
	for _, c := range []struct {
		what        string
		allow, deny []specs.LinuxSeccompArg
		// arg0 values and the action each gets.
		allowed, denied, neither []uint64
	}{
		{"EQ and NE", cmp(0, specs.OpNotEqual, 5, 0), cmp(0, specs.OpEqualTo, 5, 0),
			[]uint64{4, 5 + hi}, []uint64{5}, nil},
		{"EQ and EQ", cmp(0, specs.OpEqualTo, 5, 0), cmp(0, specs.OpEqualTo, 5+hi, 0),
			[]uint64{5}, []uint64{5 + hi}, []uint64{6}},
		{"MASKED_EQ and MASKED_EQ", cmp(0, specs.OpMaskedEqual, 0xff, 0x12), cmp(0, specs.OpMaskedEqual, 0xf0f, 0x21f),
			[]uint64{0x512, 0xe12}, []uint64{0x21f, 0x2ff}, []uint64{0x11f}},
		{"EQ and MASKED_EQ", cmp(0, specs.OpMaskedEqual, 0xf, 3), cmp(0, specs.OpEqualTo, 4, 0),
			[]uint64{3, 0x13}, []uint64{4}, []uint64{5}},
	} {
		prog := compile(t, &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86_64},
			Syscalls: []specs.LinuxSyscall{
				{Names: []string{"umask"}, Action: specs.ActAllow, Args: c.allow},
				{Names: []string{"umask"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(unix.EACCES)), Args: c.deny},
			}})
		for want, values := range map[uint32][]uint64{retAllow: c.allowed, eacces: c.denied, errnoEPERM: c.neither} {
			for _, v := range values {
				if got := run(t, prog, auditArchX86_64, 95, v); got != want {
					t.Errorf("%s: arg0 %#x got %#x, want %#x", c.what, v, got, want)
				}
			}
		}
	}
}

func TestUnsupported(t *testing.T) {
	for what, cfg := range map[string]*specs.LinuxSeccomp{
		"notify":   {DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: specs.ActNotify}}},
		"listener": {DefaultAction: specs.ActErrno, ListenerPath: "/run/agent.sock"},
		"arch":     {DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchPPC64LE}},
		"flag":     {DefaultAction: specs.ActErrno, Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv}},
		"mixed conditional actions": {DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"getpid"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpEqualTo, Value: 1}}},
			{Names: []string{"getpid"}, Action: specs.ActKillProcess, Args: []specs.LinuxSeccompArg{{Index: 1, Op: specs.OpEqualTo, Value: 2}}},
		}},
		"overlapping EQ and NE": mixed(specs.ArchX86_64, cmp(0, specs.OpEqualTo, 1, 0), cmp(0, specs.OpNotEqual, 2, 0)),
		"overlapping MASKED_EQ": mixed(specs.ArchX86_64, cmp(0, specs.OpMaskedEqual, 0xf0, 0x10), cmp(0, specs.OpMaskedEqual, 0x0f, 0x01)),
		"overlapping NE and NE": mixed(specs.ArchX86_64, cmp(0, specs.OpNotEqual, 5, 0), cmp(0, specs.OpNotEqual, 6, 0)),
		// Disjoint, but libseccomp 2.5.4 allows arg0 0xffffffff here.
		"ordering operators": mixed(specs.ArchX86_64, cmp(0, specs.OpGreaterThan, 1<<32, 0), cmp(0, specs.OpLessEqual, 0xff, 0)),
		"EQ and LT":          mixed(specs.ArchX86_64, cmp(0, specs.OpLessThan, 5, 0), cmp(0, specs.OpEqualTo, 5, 0)),
		// Disjoint on arg1, but libseccomp 2.5.4 allows 0, 1 here.
		"ordering operator beside a proof": {DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86_64},
			Syscalls: []specs.LinuxSyscall{
				{Names: []string{"umask"}, Action: specs.ActKillProcess, Args: cmp(1, specs.OpEqualTo, 0xf0, 0)},
				{Names: []string{"umask"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
					{Index: 0, Op: specs.OpGreaterEqual, Value: 0xffffffff}, {Index: 1, Op: specs.OpNotEqual, Value: 0xf0}}},
				{Names: []string{"umask"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
					{Index: 0, Op: specs.OpLessEqual, Value: ^uint64(0)}, {Index: 1, Op: specs.OpEqualTo, Value: 2}}},
				{Names: []string{"umask"}, Action: specs.ActAllow, Args: cmp(1, specs.OpEqualTo, 0xff, 0)},
			}},
		// Disjoint, but libseccomp 2.5.4 kills i386 umask(1, 0) here.
		"MASKED_EQ on i386": mixed(specs.ArchX86, []specs.LinuxSeccompArg{
			{Index: 0, Op: specs.OpNotEqual, Value: 1 << 32}, {Index: 1, Op: specs.OpEqualTo, Value: 2}}, []specs.LinuxSeccompArg{
			{Index: 1, Op: specs.OpMaskedEqual, Value: ^uint64(0)}, {Index: 0, Op: specs.OpMaskedEqual, Value: 0xffffffff}}),
		// Disjoint in 64 bits, the same in i386's 32.
		"equal once truncated": mixed(specs.ArchX86, cmp(0, specs.OpEqualTo, 1, 0), cmp(0, specs.OpEqualTo, 1+1<<32, 0)),
		// On i386 the socketcall rules lose their arg0 conditions, so
		// "arg0 != 16" becomes "socketcall is SYS_SOCKET", which overlaps
		// the EINVAL rule (libseccomp fails with EEXIST here).
		"socketcall rewrite": {DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86},
			Syscalls: []specs.LinuxSyscall{
				{Names: []string{"socket"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(unix.EINVAL)), Args: []specs.LinuxSeccompArg{
					{Index: 0, Op: specs.OpEqualTo, Value: 16}, {Index: 2, Op: specs.OpEqualTo, Value: 9}}},
				{Names: []string{"socket"}, Action: specs.ActAllow, Args: cmp(0, specs.OpNotEqual, 16, 0)},
			}},
	} {
		if _, err := Compile(cfg); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: got %v, want ErrUnsupported", what, err)
		}
	}
	p, err := Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{
		specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow, "SECCOMP_FILTER_FLAG_TSYNC"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Flags != unix.SECCOMP_FILTER_FLAG_LOG|unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW {
		t.Errorf("flags %#x", p.Flags)
	}
	if p, err := Compile(nil); p != nil || err != nil {
		t.Errorf("nil config: %v, %v", p, err)
	}
}

// mixed is a config with an ALLOW and a KILL_PROCESS rule for umask on
// arch (and x86_64).
func mixed(arch specs.Arch, allow, kill []specs.LinuxSeccompArg) *specs.LinuxSeccomp {
	return &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86_64, arch},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"umask"}, Action: specs.ActAllow, Args: allow},
			{Names: []string{"umask"}, Action: specs.ActKillProcess, Args: kill},
		}}
}

// dockerCaps are Docker's default capabilities.
var dockerCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
	"CAP_KILL", "CAP_AUDIT_WRITE"}

// noAuditWrite are Docker's default capabilities but CAP_AUDIT_WRITE, for
// which the profile has socket rules of two actions.
var noAuditWrite = slices.DeleteFunc(slices.Clone(dockerCaps), func(c string) bool { return c == "CAP_AUDIT_WRITE" })

// dockerDefault builds the OCI config criruntime builds from its embedded
// RuntimeDefault profile for a container with the capabilities caps.
func dockerDefault(t testing.TB, caps []string) *specs.LinuxSeccomp {
	t.Helper()
	data, err := os.ReadFile("testdata/docker_default.json")
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		DefaultAction   specs.LinuxSeccompAction `json:"defaultAction"`
		DefaultErrnoRet *uint                    `json:"defaultErrnoRet"`
		Syscalls        []struct {
			specs.LinuxSyscall
			Includes struct {
				Caps   []string `json:"caps"`
				Arches []string `json:"arches"`
				Kernel string   `json:"minKernel"`
			} `json:"includes"`
			Excludes struct {
				Caps   []string `json:"caps"`
				Arches []string `json:"arches"`
			} `json:"excludes"`
		} `json:"syscalls"`
	}
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatal(err)
	}
	out := &specs.LinuxSeccomp{DefaultAction: p.DefaultAction, DefaultErrnoRet: p.DefaultErrnoRet,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}}
	for _, sc := range p.Syscalls {
		in, ex := sc.Includes, sc.Excludes
		if len(in.Arches) > 0 && !slices.Contains(in.Arches, "amd64") || slices.Contains(ex.Arches, "amd64") {
			continue
		}
		ok := true
		for _, c := range in.Caps {
			ok = ok && slices.Contains(caps, c)
		}
		for _, c := range ex.Caps {
			ok = ok && !slices.Contains(caps, c)
		}
		if ok {
			out.Syscalls = append(out.Syscalls, sc.LinuxSyscall)
		}
	}
	return out
}

func TestDockerDefaultInterpreted(t *testing.T) {
	cfg := dockerDefault(t, dockerCaps)
	p, err := Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d instructions", len(p.Filter))
	for _, c := range []struct {
		what string
		nr   uint32
		args []uint64
		want uint32
	}{
		{"getpid", 39, nil, retAllow},
		{"acct", 163, nil, errnoEPERM},
		{"add_key, not in the profile", 248, nil, errnoENOSYS},
		{"bpf without CAP_SYS_ADMIN", 321, nil, errnoEPERM},
		// Allowed unconditionally, then EPERM without CAP_SYS_ADMIN: the
		// first unconditional rule wins in libseccomp.
		{"setns", 308, nil, retAllow},
		{"personality 0xffffffff", 135, []uint64{0xffffffff}, retAllow},
		{"personality 1", 135, []uint64{1}, errnoENOSYS},
		{"mseal", 462, nil, errnoENOSYS},
	} {
		if got := run(t, p.Filter, auditArchX86_64, c.nr, c.args...); got != c.want {
			t.Errorf("%s: got %#x, want %#x", c.what, got, c.want)
		}
	}
}

func TestDockerDefaultWithoutAuditWriteInterpreted(t *testing.T) {
	p, err := Compile(dockerDefault(t, noAuditWrite))
	if err != nil {
		t.Fatal(err)
	}
	einval := retErrno | uint32(unix.EINVAL)
	const hi = uint64(1) << 32
	for _, c := range []struct {
		what     string
		arch, nr uint32
		args     []uint64
		want     uint32
	}{
		{"socket(AF_NETLINK, NETLINK_AUDIT)", auditArchX86_64, 41, []uint64{unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_AUDIT}, einval},
		{"socket(AF_NETLINK, NETLINK_ROUTE)", auditArchX86_64, 41, []uint64{unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE}, retAllow},
		{"socket(AF_INET, 9)", auditArchX86_64, 41, []uint64{unix.AF_INET, unix.SOCK_STREAM, 9}, retAllow},
		{"socket(AF_NETLINK in 64 bits, NETLINK_AUDIT)", auditArchX86_64, 41, []uint64{unix.AF_NETLINK + hi, unix.SOCK_RAW, unix.NETLINK_AUDIT}, retAllow},
		{"x32 socket(AF_NETLINK, NETLINK_AUDIT)", auditArchX86_64, 41 | x32Bit, []uint64{unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_AUDIT}, einval},
		{"x32 socket(AF_NETLINK, NETLINK_ROUTE)", auditArchX86_64, 41 | x32Bit, []uint64{unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE}, retAllow},
		{"i386 socket(AF_NETLINK, NETLINK_AUDIT)", auditArchI386, 359, []uint64{unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_AUDIT}, einval},
		// i386 compares the low halves only.
		{"i386 socket(AF_NETLINK in 64 bits, NETLINK_AUDIT)", auditArchI386, 359, []uint64{unix.AF_NETLINK + hi, unix.SOCK_RAW, unix.NETLINK_AUDIT}, einval},
		{"i386 socket(AF_NETLINK, NETLINK_ROUTE)", auditArchI386, 359, []uint64{unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE}, retAllow},
		{"i386 socket(AF_INET, 9)", auditArchI386, 359, []uint64{unix.AF_INET, unix.SOCK_STREAM, 9}, retAllow},
		// The profile allows socketcall outright; that rule wins over the
		// socket rules rewritten onto it.
		{"i386 socketcall(SYS_SOCKET)", auditArchI386, 102, []uint64{1, 0, unix.NETLINK_AUDIT}, retAllow},
		{"getpid", auditArchX86_64, 39, nil, retAllow},
	} {
		if got := run(t, p.Filter, c.arch, c.nr, c.args...); got != c.want {
			t.Errorf("%s: got %#x, want %#x", c.what, got, c.want)
		}
	}
}

// Kernel tests: the test binary re-executes itself with childEnv set; the
// child loads the filter on its locked thread and reports the errno of each
// syscall as JSON on stdout.
const childEnv = "PEAPOD_SECCOMP_TEST_CHILD"

type childRequest struct {
	Config *specs.LinuxSeccomp
	Calls  [][7]uint64 // nr, then arguments
}

func TestMain(m *testing.M) {
	if req := os.Getenv(childEnv); req != "" {
		os.Exit(child(req))
	}
	os.Exit(m.Run())
}

func child(req string) int {
	runtime.LockOSThread()
	var r childRequest
	if err := json.Unmarshal([]byte(req), &r); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	p, err := Compile(r.Config)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := p.Load(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var errnos []int
	for _, c := range r.Calls {
		_, _, e := unix.RawSyscall6(uintptr(c[0]), uintptr(c[1]), uintptr(c[2]), uintptr(c[3]), uintptr(c[4]), uintptr(c[5]), uintptr(c[6]))
		errnos = append(errnos, int(e))
	}
	if err := json.NewEncoder(os.Stdout).Encode(errnos); err != nil {
		return 2
	}
	return 0
}
