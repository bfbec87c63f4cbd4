package seccomp

import (
	"fmt"
	"sort"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Offsets in struct seccomp_data; arguments are little-endian 64-bit words
// on every ABI compiled here.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

type label int

// insn is an instruction whose jump targets are labels; noLabel falls
// through.
type insn struct {
	code   uint16
	k      uint32
	jt, jf label
	ja     label // for BPF_JA
}

const noLabel label = -1

// builder assembles a program from instructions and labels. Conditional
// jumps only ever skip the next instruction, which is an unconditional jump
// to the real target, so offsets never overflow 8 bits.
type builder struct {
	insns  []insn
	labels []int // label → instruction index
}

func (b *builder) newLabel() label {
	b.labels = append(b.labels, -1)
	return label(len(b.labels) - 1)
}

func (b *builder) mark(l label) { b.labels[l] = len(b.insns) }

func (b *builder) emit(i insn) { b.insns = append(b.insns, i) }

func (b *builder) load(off uint32) {
	b.emit(insn{code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, k: off, jt: noLabel, jf: noLabel, ja: noLabel})
}

func (b *builder) and(k uint32) {
	b.emit(insn{code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, k: k, jt: noLabel, jf: noLabel, ja: noLabel})
}

func (b *builder) ret(k uint32) {
	b.emit(insn{code: unix.BPF_RET | unix.BPF_K, k: k, jt: noLabel, jf: noLabel, ja: noLabel})
}

func (b *builder) jump(l label) {
	b.emit(insn{code: unix.BPF_JMP | unix.BPF_JA, jt: noLabel, jf: noLabel, ja: l})
}

// ifTrue jumps to l when "A op k" holds, else falls through.
func (b *builder) ifTrue(op uint16, k uint32, l label) {
	skip := b.newLabel()
	b.emit(insn{code: unix.BPF_JMP | op | unix.BPF_K, k: k, jt: noLabel, jf: skip, ja: noLabel})
	b.jump(l)
	b.mark(skip)
}

// ifFalse jumps to l when "A op k" does not hold, else falls through.
func (b *builder) ifFalse(op uint16, k uint32, l label) {
	skip := b.newLabel()
	b.emit(insn{code: unix.BPF_JMP | op | unix.BPF_K, k: k, jt: skip, jf: noLabel, ja: noLabel})
	b.jump(l)
	b.mark(skip)
}

func (b *builder) assemble() ([]unix.SockFilter, error) {
	if len(b.insns) > unix.BPF_MAXINSNS {
		return nil, unsupported("program of %d instructions exceeds %d", len(b.insns), unix.BPF_MAXINSNS)
	}
	out := make([]unix.SockFilter, len(b.insns))
	for i, in := range b.insns {
		off := func(l label) (int, error) {
			if l == noLabel {
				return 0, nil
			}
			d := b.labels[l] - (i + 1)
			if d < 0 || b.labels[l] < 0 {
				return 0, fmt.Errorf("bad jump from %d to label %d", i, l)
			}
			return d, nil
		}
		jt, err := off(in.jt)
		if err != nil {
			return nil, err
		}
		jf, err := off(in.jf)
		if err != nil {
			return nil, err
		}
		ja, err := off(in.ja)
		if err != nil {
			return nil, err
		}
		if jt > 255 || jf > 255 {
			return nil, fmt.Errorf("conditional jump too long at %d", i)
		}
		k := in.k
		if in.code == unix.BPF_JMP|unix.BPF_JA {
			k = uint32(ja)
		}
		out[i] = unix.SockFilter{Code: in.code, Jt: uint8(jt), Jf: uint8(jf), K: k}
	}
	return out, nil
}

// enosysStub emits runc's stub: per listed architecture, syscall numbers
// above the largest one the config names return ENOSYS; everything else
// goes on to the filter.
func (b *builder) enosysStub(last map[*abi]uint32) {
	filter, enosys := b.newLabel(), b.newLabel()
	byAudit := map[uint32][]*abi{}
	var audits []uint32
	for a := range last {
		if byAudit[a.audit] == nil {
			audits = append(audits, a.audit)
		}
		byAudit[a.audit] = append(byAudit[a.audit], a)
	}
	sort.Slice(audits, func(i, j int) bool { return audits[i] < audits[j] })
	b.load(offArch)
	entry := map[uint32]label{}
	for _, au := range audits {
		entry[au] = b.newLabel()
		b.ifTrue(unix.BPF_JEQ, au, entry[au])
	}
	b.jump(filter)
	for _, au := range audits {
		b.mark(entry[au])
		b.load(offNr)
		var native, x32 *abi
		for _, a := range byAudit[au] {
			if a.name == specs.ArchX32 {
				x32 = a
			} else {
				native = a
			}
		}
		if au == auditArchX86_64 {
			// The x32 bit picks which maximum applies; an ABI the config
			// did not list is left to the filter.
			is32 := b.newLabel()
			b.ifTrue(unix.BPF_JSET, x32Bit, is32)
			if native != nil {
				b.ifTrue(unix.BPF_JGT, last[native], enosys)
			}
			b.jump(filter)
			b.mark(is32)
			if x32 != nil {
				b.ifTrue(unix.BPF_JGT, last[x32], enosys)
			}
			b.jump(filter)
			continue
		}
		b.ifTrue(unix.BPF_JGT, last[native], enosys)
		b.jump(filter)
	}
	b.mark(enosys)
	b.ret(retErrno | uint32(unix.ENOSYS))
	b.mark(filter)
}

// filter emits libseccomp's filter: architecture dispatch, then per
// section a binary search over syscall numbers into each syscall's rules.
func (b *builder) filter(sections []*section, defAct uint32) error {
	entries := make([]label, len(sections))
	b.load(offArch)
	for i, s := range sections {
		entries[i] = b.newLabel()
		b.ifTrue(unix.BPF_JEQ, s.audit, entries[i])
	}
	b.ret(retKillThread)
	for i, s := range sections {
		b.mark(entries[i])
		if err := b.section(s, defAct); err != nil {
			return err
		}
	}
	return nil
}

func (b *builder) section(s *section, defAct uint32) error {
	b.load(offNr)
	if s.audit == auditArchX86_64 && len(s.abis) == 1 {
		// x86_64 alone: x32 numbers are a bad architecture, except -1,
		// which tracers use to skip a syscall.
		table := b.newLabel()
		b.ifFalse(unix.BPF_JGE, x32Bit, table)
		b.ifTrue(unix.BPF_JEQ, 0xffffffff, table)
		b.ret(retKillThread)
		b.mark(table)
	}
	nrs := make([]uint32, 0, len(s.syscalls))
	for nr := range s.syscalls {
		nrs = append(nrs, nr)
	}
	sort.Slice(nrs, func(i, j int) bool { return nrs[i] < nrs[j] })
	is32 := len(s.abis) == 1 && s.abis[0].is32
	leaves := make([]leaf, len(nrs))
	for i, nr := range nrs {
		rules, err := s.syscalls[nr].effective(is32)
		if err != nil {
			return err
		}
		leaves[i] = leaf{nr: nr, rules: rules, target: noLabel}
		if len(rules) > 1 || len(rules[0].conds) > 0 {
			leaves[i].target = b.newLabel()
		}
	}
	b.search(leaves, defAct)
	for _, l := range leaves {
		if l.target == noLabel {
			continue
		}
		b.mark(l.target)
		for _, r := range l.rules {
			next := b.newLabel()
			for _, c := range r.conds {
				b.cond(c, is32, next)
			}
			b.ret(r.action)
			b.mark(next)
		}
		b.ret(defAct)
	}
	return nil
}

// leaf is one syscall number with rules: an unconditional rule returns
// right at the comparison, others jump to target.
type leaf struct {
	nr     uint32
	rules  []rule
	target label
}

// search emits a binary search for the syscall number in A over leaves,
// returning defAct for numbers without rules.
func (b *builder) search(leaves []leaf, defAct uint32) {
	if len(leaves) <= 4 {
		for _, l := range leaves {
			if l.target != noLabel {
				b.ifTrue(unix.BPF_JEQ, l.nr, l.target)
				continue
			}
			next := b.newLabel()
			b.emit(insn{code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, k: l.nr, jt: noLabel, jf: next, ja: noLabel})
			b.ret(l.rules[0].action)
			b.mark(next)
		}
		b.ret(defAct)
		return
	}
	mid := len(leaves) / 2
	upper := b.newLabel()
	b.ifTrue(unix.BPF_JGE, leaves[mid].nr, upper)
	b.search(leaves[:mid], defAct)
	b.mark(upper)
	b.search(leaves[mid:], defAct)
}

// cond emits one argument test that falls through when it holds and jumps
// to fail otherwise. 64-bit values compare as unsigned, high half first.
func (b *builder) cond(c cond, is32 bool, fail label) {
	lo := offArgs + 8*uint32(c.arg)
	hi := lo + 4
	dl, dh := uint32(c.datum), uint32(c.datum>>32)
	pass := b.newLabel()
	switch c.op {
	case specs.OpMaskedEqual:
		ml, mh := uint32(c.mask), uint32(c.mask>>32)
		if !is32 && mh != 0 {
			b.load(hi)
			b.and(mh)
			b.ifFalse(unix.BPF_JEQ, dh, fail)
		}
		if ml != 0 {
			b.load(lo)
			b.and(ml)
			b.ifFalse(unix.BPF_JEQ, dl, fail)
		}
	case specs.OpEqualTo:
		if !is32 {
			b.load(hi)
			b.ifFalse(unix.BPF_JEQ, dh, fail)
		}
		b.load(lo)
		b.ifFalse(unix.BPF_JEQ, dl, fail)
	case specs.OpNotEqual:
		if !is32 {
			b.load(hi)
			b.ifFalse(unix.BPF_JEQ, dh, pass)
		}
		b.load(lo)
		b.ifTrue(unix.BPF_JEQ, dl, fail)
	case specs.OpGreaterThan, specs.OpGreaterEqual:
		if !is32 {
			b.load(hi)
			b.ifTrue(unix.BPF_JGT, dh, pass)
			b.ifFalse(unix.BPF_JEQ, dh, fail)
		}
		b.load(lo)
		op := uint16(unix.BPF_JGT)
		if c.op == specs.OpGreaterEqual {
			op = unix.BPF_JGE
		}
		b.ifFalse(op, dl, fail)
	case specs.OpLessThan, specs.OpLessEqual:
		// LT is "not GE" and LE "not GT".
		if !is32 {
			b.load(hi)
			b.ifTrue(unix.BPF_JGT, dh, fail)
			b.ifFalse(unix.BPF_JEQ, dh, pass)
		}
		b.load(lo)
		op := uint16(unix.BPF_JGE)
		if c.op == specs.OpLessEqual {
			op = unix.BPF_JGT
		}
		b.ifTrue(op, dl, fail)
	}
	b.mark(pass)
}
