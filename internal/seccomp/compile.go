package seccomp

import (
	"errors"
	"fmt"
	"runtime"
	"sort"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// ErrUnsupported wraps the reason a config cannot be compiled exactly as
// runc would install it; the caller should let runc apply it instead.
var ErrUnsupported = errors.New("seccomp config not supported")

// Program is a compiled seccomp filter for this machine's architecture.
type Program struct {
	Filter []unix.SockFilter
	// Flags are the SECCOMP_FILTER_FLAG_* bits to install it with.
	Flags uint
}

// Seccomp return values (SECCOMP_RET_*).
const (
	retKillThread  = 0x00000000
	retKillProcess = 0x80000000
	retTrap        = 0x00030000
	retErrno       = 0x00050000
	retTrace       = 0x7ff00000
	retLog         = 0x7ffc0000
	retAllow       = 0x7fff0000
)

// maxErrno is the largest errno the kernel returns (MAX_ERRNO).
const maxErrno = 4095

// runcEnosysRet is the value runc 1.1.5 compares defaultErrnoRet with to skip
// its -ENOSYS stub: SCMP_ACT_ERRNO(ENOSYS), not ENOSYS itself, so in practice
// only this odd errno turns the stub off.
const runcEnosysRet = retErrno | uint(unix.ENOSYS)

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsupported, fmt.Sprintf(format, args...))
}

// action converts an OCI action to its return value as runc does: KILL is
// KILL_THREAD, ERRNO and TRACE carry errnoRet or EPERM.
func action(a specs.LinuxSeccompAction, errnoRet *uint) (uint32, error) {
	data := uint32(unix.EPERM)
	if errnoRet != nil {
		if *errnoRet > maxErrno {
			return 0, unsupported("errnoRet %d above %d", *errnoRet, maxErrno)
		}
		data = uint32(*errnoRet)
	}
	switch a {
	case specs.ActKill, specs.ActKillThread:
		return retKillThread, nil
	case specs.ActKillProcess:
		return retKillProcess, nil
	case specs.ActTrap:
		return retTrap, nil
	case specs.ActErrno:
		return retErrno | data, nil
	case specs.ActTrace:
		return retTrace | data, nil
	case specs.ActLog:
		return retLog, nil
	case specs.ActAllow:
		return retAllow, nil
	case specs.ActNotify:
		return 0, unsupported("action %s needs a seccomp agent", a)
	}
	return 0, fmt.Errorf("unknown seccomp action %q", a)
}

// cond is one argument comparison as libseccomp evaluates it.
type cond struct {
	arg   uint
	op    specs.LinuxSeccompOperator
	mask  uint64 // MASKED_EQ only
	datum uint64
}

// rule is one libseccomp rule for one syscall of one ABI.
type rule struct {
	action uint32
	conds  []cond
}

// syscallRules are the rules of one syscall number, in the order added.
type syscallRules struct {
	nr    uint32
	rules []rule
}

// section is what libseccomp filters for one audit architecture.
type section struct {
	audit    uint32
	abis     []*abi
	syscalls map[uint32]*syscallRules
}

// Compile translates cfg into the program runc would install for it on this
// machine's architecture. It returns nil and no error when cfg turns
// seccomp off (nil, or no default action and no rules), as runc does.
func Compile(cfg *specs.LinuxSeccomp) (*Program, error) {
	if cfg == nil || cfg.DefaultAction == "" && len(cfg.Syscalls) == 0 {
		return nil, nil
	}
	if cfg.ListenerPath != "" {
		return nil, unsupported("listenerPath needs a seccomp agent")
	}
	flags, err := filterFlags(cfg.Flags)
	if err != nil {
		return nil, err
	}
	defAct, err := action(cfg.DefaultAction, cfg.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("default action: %w", err)
	}
	native, ok := NativeArch()
	if _, tables := abis[native]; !ok || !tables {
		return nil, unsupported("no syscall tables for GOARCH %s", runtime.GOARCH)
	}
	listed, err := listedABIs(cfg.Architectures)
	if err != nil {
		return nil, err
	}
	sections := sectionsFor(append([]*abi{abis[native]}, listed...))
	for _, sc := range cfg.Syscalls {
		act, err := action(sc.Action, sc.ErrnoRet)
		if err != nil {
			return nil, fmt.Errorf("syscalls %v: %w", sc.Names, err)
		}
		// runc skips rules that repeat the default action (libseccomp
		// refuses them), before looking at names and conditions.
		if act == defAct {
			continue
		}
		rules, err := splitRules(sc.Args)
		if err != nil {
			return nil, fmt.Errorf("syscalls %v: %w", sc.Names, err)
		}
		for _, name := range sc.Names {
			for _, s := range sections {
				for _, a := range s.abis {
					addRules(s, a, name, act, rules)
				}
			}
		}
	}
	var b builder
	if stubWanted(cfg) {
		b.enosysStub(lastSyscalls(cfg, listed))
	}
	if err := b.filter(sections, defAct); err != nil {
		return nil, err
	}
	prog, err := b.assemble()
	if err != nil {
		return nil, err
	}
	return &Program{Filter: prog, Flags: flags}, nil
}

// filterFlags maps the OCI flags runc passes to seccomp(2). runc applies
// the filter to its own thread only, so TSYNC adds nothing.
func filterFlags(flags []specs.LinuxSeccompFlag) (uint, error) {
	var out uint
	for _, f := range flags {
		switch f {
		case specs.LinuxSeccompFlagLog:
			out |= unix.SECCOMP_FILTER_FLAG_LOG
		case specs.LinuxSeccompFlagSpecAllow:
			out |= unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW
		case "SECCOMP_FILTER_FLAG_TSYNC":
		default:
			return 0, unsupported("flag %s", f)
		}
	}
	return out, nil
}

func listedABIs(archs []specs.Arch) ([]*abi, error) {
	var out []*abi
	for _, name := range archs {
		a, ok := abis[name]
		if !ok {
			return nil, unsupported("architecture %s has no syscall table here", name)
		}
		out = append(out, a)
	}
	return out, nil
}

// sectionsFor groups ABIs by audit architecture, native first, each once.
func sectionsFor(list []*abi) []*section {
	var out []*section
	for _, a := range list {
		var s *section
		for _, o := range out {
			if o.audit == a.audit {
				s = o
			}
		}
		if s == nil {
			s = &section{audit: a.audit, syscalls: map[uint32]*syscallRules{}}
			out = append(out, s)
		}
		dup := false
		for _, o := range s.abis {
			dup = dup || o == a
		}
		if !dup {
			s.abis = append(s.abis, a)
		}
	}
	return out
}

// splitRules turns one OCI syscall entry's conditions into libseccomp rules
// as runc does: one rule ANDing all conditions, or, when two conditions test
// the same argument, one rule per condition (ORed).
func splitRules(args []specs.LinuxSeccompArg) ([][]cond, error) {
	if len(args) == 0 {
		return [][]cond{nil}, nil
	}
	var conds []cond
	seen := map[uint]bool{}
	repeated := false
	for _, a := range args {
		if a.Index > 5 {
			return nil, fmt.Errorf("argument index %d out of range", a.Index)
		}
		c := cond{arg: a.Index, op: a.Op, datum: a.Value}
		switch a.Op {
		case specs.OpEqualTo, specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpGreaterThan, specs.OpGreaterEqual:
		case specs.OpMaskedEqual:
			c.mask, c.datum = a.Value, a.ValueTwo
		default:
			return nil, fmt.Errorf("unknown seccomp operator %q", a.Op)
		}
		repeated = repeated || seen[a.Index]
		seen[a.Index] = true
		conds = append(conds, c)
	}
	if !repeated {
		return [][]cond{conds}, nil
	}
	out := make([][]cond, len(conds))
	for i, c := range conds {
		out[i] = []cond{c}
	}
	return out, nil
}

// addRules adds the rules for name to section s for ABI a, as libseccomp
// does: nothing when a lacks the syscall, and on multiplexing ABIs a rule
// on socketcall(2)/ipc(2) whose first argument selects the call, besides
// the direct syscall.
func addRules(s *section, a *abi, name string, act uint32, rules [][]cond) {
	if a.multiplexed {
		if call, ok := socketcallNumbers[name]; ok {
			addMuxed(s, a, "socketcall", call, act, rules)
		} else if call, ok := ipcNumbers[name]; ok {
			addMuxed(s, a, "ipc", call, act, rules)
		}
	}
	nr, ok := a.resolve(name)
	if !ok {
		return
	}
	for _, conds := range rules {
		s.add(nr, rule{action: act, conds: normalize(a, conds)})
	}
}

// addMuxed adds rules on the multiplexer: libseccomp replaces any condition
// on argument 0 with "equals call" and keeps the others as they are.
func addMuxed(s *section, a *abi, mux string, call uint32, act uint32, rules [][]cond) {
	nr, ok := a.resolve(mux)
	if !ok {
		return
	}
	for _, conds := range rules {
		out := []cond{{arg: 0, op: specs.OpEqualTo, datum: uint64(call)}}
		for _, c := range conds {
			if c.arg != 0 {
				out = append(out, c)
			}
		}
		s.add(nr, rule{action: act, conds: normalize(a, out)})
	}
}

// normalize orders conditions by argument (libseccomp keeps one per
// argument, in argument order), truncates them on 32-bit ABIs and drops
// MASKED_EQ tests whose mask leaves nothing to compare.
func normalize(a *abi, conds []cond) []cond {
	var out []cond
	for _, c := range conds {
		if a.is32 {
			c.mask &= 0xffffffff
			c.datum &= 0xffffffff
		}
		if c.op == specs.OpMaskedEqual {
			if c.mask == 0 {
				continue
			}
			c.datum &= c.mask
		}
		out = append(out, c)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].arg < out[j].arg })
	return out
}

func (s *section) add(nr uint32, r rule) {
	sr := s.syscalls[nr]
	if sr == nil {
		sr = &syscallRules{nr: nr}
		s.syscalls[nr] = sr
	}
	sr.rules = append(sr.rules, r)
}

// effective returns the rules libseccomp keeps for one syscall: the first
// unconditional rule alone if there is one (it replaces conditional ones
// and later rules cannot change it), else the conditional rules. Rules of
// different actions must be disjoint, no arguments matching both: then the
// action does not depend on how libseccomp merges their condition trees,
// which is not reproduced here, and trying the rules in order gives it.
func (sr *syscallRules) effective(is32 bool) ([]rule, error) {
	for _, r := range sr.rules {
		if len(r.conds) == 0 {
			return []rule{r}, nil
		}
	}
	mixed := false
	for i, r := range sr.rules {
		for _, o := range sr.rules[:i] {
			if o.action != r.action && !disjoint(o, r) {
				return nil, unsupported("syscall %d has conditional rules with different actions that may overlap", sr.nr)
			}
			mixed = mixed || o.action != r.action
		}
	}
	if mixed && unmergeable(sr.rules, is32) {
		return nil, unsupported("syscall %d has conditional rules with different actions and comparisons libseccomp merges inexactly", sr.nr)
	}
	return sr.rules, nil
}

// unmergeable says some rule compares with LT, LE, GT or GE, or, on a
// 32-bit ABI, MASKED_EQ: merged into trees of different actions these
// change the outcome of other rules in libseccomp 2.5.4 (seen against
// libseccomp itself on random rule sets), so mixed actions leave them out.
func unmergeable(rules []rule, is32 bool) bool {
	for _, r := range rules {
		for _, c := range r.conds {
			switch c.op {
			case specs.OpLessThan, specs.OpLessEqual, specs.OpGreaterThan, specs.OpGreaterEqual:
				return true
			case specs.OpMaskedEqual:
				if is32 {
					return true
				}
			}
		}
	}
	return false
}

// disjoint says some argument has conditions in a and b that no value
// satisfies both. Conditions are normalized (truncated on 32-bit ABIs,
// MASKED_EQ data masked), so this holds for what the program compares.
func disjoint(a, b rule) bool {
	for _, x := range a.conds {
		for _, y := range b.conds {
			if x.arg == y.arg && (contradict(x, y) || contradict(y, x)) {
				return true
			}
		}
	}
	return false
}

// contradict proves that no value satisfies both x and y where that is
// plain; false means not proved.
func contradict(x, y cond) bool {
	switch {
	case x.op == specs.OpEqualTo && y.op == specs.OpEqualTo:
		return x.datum != y.datum
	case x.op == specs.OpEqualTo && y.op == specs.OpNotEqual:
		return x.datum == y.datum
	case x.op == specs.OpEqualTo && y.op == specs.OpMaskedEqual:
		return x.datum&y.mask != y.datum
	case x.op == specs.OpMaskedEqual && y.op == specs.OpMaskedEqual:
		// A bit both masks test, required set by one and clear by the other.
		return (x.datum^y.datum)&x.mask&y.mask != 0
	}
	return false
}

// stubWanted says whether runc prepends its -ENOSYS stub.
func stubWanted(cfg *specs.LinuxSeccomp) bool {
	if cfg.DefaultErrnoRet != nil && *cfg.DefaultErrnoRet == runcEnosysRet {
		return false
	}
	switch cfg.DefaultAction {
	case specs.ActAllow, specs.ActLog, specs.ActTrace:
		return false
	}
	return true
}

// lastSyscalls finds, per listed ABI, the largest number of a syscall the
// config names (whatever its action), as runc 1.1.5 does: only over the
// listed architectures, ABIs naming none are left out.
func lastSyscalls(cfg *specs.LinuxSeccomp, listed []*abi) map[*abi]uint32 {
	out := map[*abi]uint32{}
	for _, a := range listed {
		var last uint32
		for _, sc := range cfg.Syscalls {
			for _, name := range sc.Names {
				if nr, ok := a.resolve(name); ok && nr > last {
					last = nr
				}
			}
		}
		if last != 0 {
			out[a] = last
		}
	}
	return out
}
