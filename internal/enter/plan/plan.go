// Package plan is what the daemon tells peapod-enter to apply before it
// execs a command in a container, and its encoding on the pipe between
// them: one record, its length then its fields in the order of Plan, each
// a varint (zigzag for signed numbers) or a length and its bytes. The
// decoder is peapod-enter's read_plan (cmd/peapod-enter/enter.c).
package plan

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// Plan is applied by peapod-enter in runc's order.
type Plan struct {
	Args []string
	Env  []string
	Cwd  string

	UID    uint32
	GID    uint32
	Groups []uint32
	Umask  int64 // -1: keep the inherited umask

	Caps Caps
	// LastCap is the highest capability the kernel knows.
	LastCap         uint32
	NoNewPrivileges bool
	Rlimits         []Rlimit
	OOMScoreAdj     int64 // KeepOOMScoreAdj: keep the inherited score
	// SessionKeyring is the session keyring to join (runc's "_ses.<id>").
	SessionKeyring string
	// CgroupsV1 are the container's cgroup v1 directories (host paths),
	// which peapod-enter's exec thread joins first.
	CgroupsV1 []string
	// Namespaces are the CLONE_NEW* flags to join, other than PID (joined
	// by the daemon before forking), through the pidfd on fd PidFD.
	Namespaces uint64
	// SeccompFlags and SeccompFilter (classic BPF, 8 bytes per
	// instruction, native byte order) are the container's filter; none when
	// the filter is empty.
	SeccompFlags  uint64
	SeccompFilter []byte
}

// Caps are capability numbers per set.
type Caps struct {
	Bounding, Effective, Permitted, Inheritable, Ambient []uint32
}

// Rlimit is one resource limit (RLIMIT_* number).
type Rlimit struct {
	Type       uint32
	Soft, Hard uint64
}

// Descriptors peapod-enter inherits.
const (
	PlanFD   = 3 // the encoded plan, then EOF
	StatusFD = 4 // why peapod-enter failed; closed by a successful exec
	PidFD    = 5 // pidfd of the container's init process
)

// KeepOOMScoreAdj in Plan.OOMScoreAdj keeps the inherited score.
const KeepOOMScoreAdj = math.MinInt64

// MaxPlan bounds an encoded plan (MAX_PLAN in peapod-enter).
const MaxPlan = 16 << 20

// Encode writes p as one length-prefixed record.
func (p *Plan) Encode(w io.Writer) error {
	var e encoder
	e.strings(p.Args)
	e.strings(p.Env)
	e.string(p.Cwd)
	e.uint(uint64(p.UID))
	e.uint(uint64(p.GID))
	e.uints(p.Groups)
	e.int(p.Umask)
	for _, set := range [][]uint32{p.Caps.Bounding, p.Caps.Effective, p.Caps.Permitted, p.Caps.Inheritable, p.Caps.Ambient} {
		e.uints(set)
	}
	e.uint(uint64(p.LastCap))
	e.bool(p.NoNewPrivileges)
	e.uint(uint64(len(p.Rlimits)))
	for _, r := range p.Rlimits {
		e.uint(uint64(r.Type))
		e.uint(r.Soft)
		e.uint(r.Hard)
	}
	e.int(p.OOMScoreAdj)
	e.string(p.SessionKeyring)
	e.strings(p.CgroupsV1)
	e.uint(p.Namespaces)
	e.uint(p.SeccompFlags)
	e.string(string(p.SeccompFilter))
	if len(e.b) > MaxPlan {
		return fmt.Errorf("exec plan of %d bytes is larger than peapod-enter reads (%d)", len(e.b), MaxPlan)
	}
	var n [binary.MaxVarintLen64]byte
	if _, err := w.Write(n[:binary.PutUvarint(n[:], uint64(len(e.b)))]); err != nil {
		return err
	}
	_, err := w.Write(e.b)
	return err
}

type encoder struct{ b []byte }

func (e *encoder) uint(v uint64)   { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) int(v int64)     { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) string(s string) { e.uint(uint64(len(s))); e.b = append(e.b, s...) }

func (e *encoder) bool(v bool) {
	if v {
		e.uint(1)
	} else {
		e.uint(0)
	}
}

func (e *encoder) strings(s []string) {
	e.uint(uint64(len(s)))
	for _, v := range s {
		e.string(v)
	}
}

func (e *encoder) uints(s []uint32) {
	e.uint(uint64(len(s)))
	for _, v := range s {
		e.uint(uint64(v))
	}
}
