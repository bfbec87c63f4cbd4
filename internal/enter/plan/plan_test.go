package plan_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peapod-dev/peapod/internal/enter/plan"
)

// peapodEnter builds the decoder's side: peapod-enter.
func peapodEnter(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "peapod-enter")
	if out, err := exec.Command("go", "build", "-o", bin, "../../../cmd/peapod-enter").CombinedOutput(); err != nil {
		t.Fatalf("build peapod-enter: %v\n%s", err, out)
	}
	return bin
}

// run gives peapod-enter in as its plan and returns what it reports on its
// status descriptor; it must exit 126 without running anything.
func run(t *testing.T, bin string, in []byte) string {
	t.Helper()
	planR, planW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer statusR.Close()
	cmd := exec.Command(bin)
	cmd.ExtraFiles = []*os.File{planR, statusW} // fds 3 and 4
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	planR.Close()
	statusW.Close()
	_, _ = planW.Write(in)
	planW.Close()
	msg, _ := io.ReadAll(statusR)
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 126 {
		t.Errorf("peapod-enter exited with %v, want exit status 126", err)
	}
	return string(msg)
}

// Every field is read, in Encode's order: a plan with all of them set but no
// command fails on the command, not on its encoding.
func TestPeapodEnterDecodesEncode(t *testing.T) {
	bin := peapodEnter(t)
	p := &plan.Plan{
		Env: []string{"A=1", "B="}, Cwd: "/tmp",
		UID: 1000, GID: 3000, Groups: []uint32{2000, 100}, Umask: 0o27,
		Caps:    plan.Caps{Bounding: []uint32{0, 10}, Effective: []uint32{10}, Ambient: []uint32{40}},
		LastCap: 40, NoNewPrivileges: true,
		Rlimits:     []plan.Rlimit{{Type: 7, Soft: 1024, Hard: 1 << 62}},
		OOMScoreAdj: plan.KeepOOMScoreAdj, SessionKeyring: "_ses.x", CgroupsV1: []string{"/sys/fs/cgroup/cpu/a"},
		Namespaces: 0x20000, SeccompFlags: 2, SeccompFilter: bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 8}, 300),
	}
	var b bytes.Buffer
	if err := p.Encode(&b); err != nil {
		t.Fatal(err)
	}
	if got := run(t, bin, b.Bytes()); got != "no command" {
		t.Errorf("peapod-enter said %q, want %q", got, "no command")
	}
}

func TestPeapodEnterRefusesMalformedPlans(t *testing.T) {
	bin := peapodEnter(t)
	var b bytes.Buffer
	if err := (&plan.Plan{Args: []string{"true"}}).Encode(&b); err != nil {
		t.Fatal(err)
	}
	full := b.Bytes() // a one-byte length, then the fields
	trailing := append([]byte{full[0] + 1}, full[1:]...)
	trailing = append(trailing, 0)
	for name, c := range map[string]struct {
		in   []byte
		want string
	}{
		"empty":            {nil, "read exec plan: unexpected EOF"},
		"truncated":        {full[:len(full)-1], "read exec plan: unexpected EOF"},
		"number past end":  {[]byte{0x05, 0xff, 0xff, 0xff, 0xff, 0xff}, "read exec plan: malformed plan: bad number"},
		"string past end":  {[]byte{0x02, 0x01, 0x09}, "read exec plan: malformed plan: bad length"},
		"trailing bytes":   {trailing, "read exec plan: malformed plan: trailing bytes"},
		"too large":        {[]byte{0xff, 0xff, 0xff, 0xff, 0x7f}, "read exec plan: plan too large"},
		"varint overflows": {bytes.Repeat([]byte{0xff}, 11), "read exec plan: varint overflows a 64-bit integer"},
	} {
		if got := run(t, bin, c.in); !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: peapod-enter said %q, want %q", name, got, c.want)
		}
	}
}

// Encode refuses what peapod-enter would not read.
func TestEncodeRefusesOversizedPlans(t *testing.T) {
	p := &plan.Plan{Args: []string{"true"}, SeccompFilter: make([]byte, plan.MaxPlan)}
	if err := p.Encode(&bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "larger than peapod-enter reads") {
		t.Errorf("Encode of a %d-byte filter: %v", plan.MaxPlan, err)
	}
}
