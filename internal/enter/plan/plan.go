// Package plan is what the daemon tells peapod-enter, its fork server, to
// apply before it execs a command in a container, and the messages between
// them on a SOCK_SEQPACKET socket (cmd/peapod-enter/enter.c is the other
// side).
//
// A request is a Request header (native byte order), then the plan's
// fields in the order of Plan, each a varint (zigzag for signed numbers) or
// a length and its bytes; its descriptors are those listed at FDStdin.
// peapod-enter answers each request with a Started reply, then each child
// with an Exited reply.
package plan

import (
	"encoding/binary"
	"errors"
	"fmt"
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
	// Cgroups are the files (host paths) to which the child writes its
	// PID first: cgroup.procs in the cgroup v2 directory, tasks in each
	// cgroup v1 one. Their descriptors come with the request.
	Cgroups []string
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

// ServerFD is the descriptor on which peapod-enter finds its socket.
const ServerFD = 3

// The descriptors of a request, in order; then one per Plan.Cgroups, open
// for writing.
const (
	FDStdin = iota
	FDStdout
	FDStderr
	FDStatus // why the child could not exec; closed by a successful exec
	FDPidfd  // the container's init process
	FDFixed  // how many come before the cgroups
)

// FlagJoinPID in Request.Flags forks into the container's PID namespace.
const FlagJoinPID = 1 << 0

// Request is the header of a request.
type Request struct {
	ID      uint64
	Flags   uint32
	Cgroups uint32 // how many cgroup descriptors follow
}

// RequestSize is the size of the Request header.
const RequestSize = 16

// Reply kinds.
const (
	Started = 1 // Errno, or PID with the child's pidfd attached
	Exited  = 2 // PID and its wait status
)

// Reply is one message from peapod-enter.
type Reply struct {
	Kind   uint32
	Errno  int32
	ID     uint64
	PID    int32
	Status int32
}

// ReplySize is the size of a Reply.
const ReplySize = 24

// KeepOOMScoreAdj in Plan.OOMScoreAdj keeps the inherited score.
const KeepOOMScoreAdj = math.MinInt64

// MaxPlan bounds an encoded plan (MAX_PLAN in peapod-enter): a request is
// one socket message.
const MaxPlan = 128 << 10

// ErrTooLarge is returned for a plan larger than MaxPlan.
var ErrTooLarge = errors.New("exec plan larger than peapod-enter reads")

// AppendRequest appends the request for p to b.
func AppendRequest(b []byte, r Request, p *Plan) ([]byte, error) {
	b = binary.NativeEndian.AppendUint64(b, r.ID)
	b = binary.NativeEndian.AppendUint32(b, r.Flags)
	b = binary.NativeEndian.AppendUint32(b, r.Cgroups)
	e := encoder{b: b}
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
	e.strings(p.Cgroups)
	e.uint(p.Namespaces)
	e.uint(p.SeccompFlags)
	e.string(string(p.SeccompFilter))
	if n := len(e.b) - len(b); n > MaxPlan {
		return b, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, n, MaxPlan)
	}
	return e.b, nil
}

// ParseReply decodes a reply.
func ParseReply(b []byte) (Reply, error) {
	if len(b) != ReplySize {
		return Reply{}, fmt.Errorf("reply of %d bytes, want %d", len(b), ReplySize)
	}
	return Reply{
		Kind:   binary.NativeEndian.Uint32(b[0:]),
		Errno:  int32(binary.NativeEndian.Uint32(b[4:])),
		ID:     binary.NativeEndian.Uint64(b[8:]),
		PID:    int32(binary.NativeEndian.Uint32(b[16:])),
		Status: int32(binary.NativeEndian.Uint32(b[20:])),
	}, nil
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
