package plan

import (
	"bytes"
	"reflect"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	p := &Plan{
		Args: []string{"sh", "-c", "echo 'a\nb'"}, Env: []string{"A=1", "B="}, Cwd: "/tmp",
		UID: 1000, GID: 3000, Groups: []uint32{2000, 100}, Umask: 0o27,
		Caps:    Caps{Bounding: []uint32{0, 10}, Effective: []uint32{10}, Ambient: []uint32{40}},
		LastCap: 40, NoNewPrivileges: true,
		Rlimits:     []Rlimit{{Type: 7, Soft: 1024, Hard: 1 << 62}},
		OOMScoreAdj: KeepOOMScoreAdj, SessionKeyring: "_ses.x", CgroupsV1: []string{"/sys/fs/cgroup/cpu/a"},
		Namespaces: 0x20000, SeccompFlags: 2, SeccompFilter: []byte{1, 2, 3, 4, 5, 6, 7, 8},
	}
	var b bytes.Buffer
	if err := p.Encode(&b); err != nil {
		t.Fatal(err)
	}
	b.WriteString("after") // Decode must not read past the plan
	got, err := Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, p) {
		t.Errorf("decoded %+v, want %+v", got, p)
	}
	if b.String() != "after" {
		t.Errorf("Decode consumed past the plan: %q left", b.String())
	}
}

func TestDecodeRefusesMalformed(t *testing.T) {
	var b bytes.Buffer
	if err := (&Plan{Args: []string{"true"}}).Encode(&b); err != nil {
		t.Fatal(err)
	}
	full := b.Bytes()
	for _, in := range [][]byte{
		nil,
		full[:len(full)-1], // truncated
		append([]byte{0x05}, 0xff, 0xff, 0xff, 0xff, 0xff), // a length past the end
		{0xff, 0xff, 0xff, 0xff, 0x7f},                     // too large
	} {
		if _, err := Decode(bytes.NewReader(in)); err == nil {
			t.Errorf("Decode(%x) succeeded", in)
		}
	}
}
