// Package plan is what the daemon tells peapod-enter to apply before it
// execs a command in a container, and its encoding on the pipe between
// them. It imports almost nothing: peapod-enter starts for every exec probe,
// and every package linked into it costs start-up time.
package plan

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
)

// Plan is applied by peapod-enter in runc's order (see package child).
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

// maxPlan bounds what Decode reads.
const maxPlan = 16 << 20

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
	var n [binary.MaxVarintLen64]byte
	if _, err := w.Write(n[:binary.PutUvarint(n[:], uint64(len(e.b)))]); err != nil {
		return err
	}
	_, err := w.Write(e.b)
	return err
}

// Decode reads a plan written by Encode.
func Decode(r io.Reader) (*Plan, error) {
	br := &byteReader{r: r}
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, err
	}
	if n > maxPlan {
		return nil, errors.New("plan too large")
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	d := decoder{b: b}
	p := &Plan{}
	p.Args = d.strings()
	p.Env = d.strings()
	p.Cwd = d.string()
	p.UID = uint32(d.uint())
	p.GID = uint32(d.uint())
	p.Groups = d.uints()
	p.Umask = d.int()
	for _, set := range []*[]uint32{&p.Caps.Bounding, &p.Caps.Effective, &p.Caps.Permitted, &p.Caps.Inheritable, &p.Caps.Ambient} {
		*set = d.uints()
	}
	p.LastCap = uint32(d.uint())
	p.NoNewPrivileges = d.bool()
	p.Rlimits = make([]Rlimit, d.count())
	for i := range p.Rlimits {
		p.Rlimits[i] = Rlimit{Type: uint32(d.uint()), Soft: d.uint(), Hard: d.uint()}
	}
	p.OOMScoreAdj = d.int()
	p.SessionKeyring = d.string()
	p.CgroupsV1 = d.strings()
	p.Namespaces = d.uint()
	p.SeccompFlags = d.uint()
	p.SeccompFilter = []byte(d.string())
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("trailing bytes")
	}
	if d.err != nil {
		return nil, errors.New("malformed plan: " + d.err.Error())
	}
	return p, nil
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

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("bad number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) int() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errors.New("bad number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length that must fit in what is left.
func (d *decoder) count() int {
	n := d.uint()
	if n > uint64(len(d.b)) {
		if d.err == nil {
			d.err = errors.New("bad length")
		}
		return 0
	}
	return int(n)
}

func (d *decoder) string() string {
	n := d.count()
	if d.err != nil {
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) bool() bool { return d.uint() != 0 }

func (d *decoder) strings() []string {
	n := d.count()
	var out []string
	for i := 0; i < n && d.err == nil; i++ {
		out = append(out, d.string())
	}
	return out
}

func (d *decoder) uints() []uint32 {
	n := d.count()
	var out []uint32
	for i := 0; i < n && d.err == nil; i++ {
		out = append(out, uint32(d.uint()))
	}
	return out
}

// byteReader reads the length prefix one byte at a time, so that nothing
// past it is consumed.
type byteReader struct{ r io.Reader }

func (b *byteReader) ReadByte() (byte, error) {
	var c [1]byte
	_, err := io.ReadFull(b.r, c[:])
	return c[0], err
}
