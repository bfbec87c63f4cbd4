package seccomp

import (
	"encoding/json"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/peapod-dev/peapod/internal/testimage"
)

// inKernel runs calls under cfg's filter in a child process and returns
// each call's errno.
func inKernel(t *testing.T, cfg *specs.LinuxSeccomp, calls [][7]uint64) []unix.Errno {
	t.Helper()
	testimage.RequireRoot(t)
	if runtime.GOARCH != "amd64" {
		t.Skip("syscall numbers below are x86_64's")
	}
	req, err := json.Marshal(childRequest{Config: cfg, Calls: calls})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+string(req))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	var errnos []unix.Errno
	if err := json.Unmarshal(out, &errnos); err != nil {
		t.Fatalf("child output %q: %v", out, err)
	}
	return errnos
}

func TestKernelDockerDefault(t *testing.T) {
	cfg := dockerDefault(t, dockerCaps)
	got := inKernel(t, cfg, [][7]uint64{
		{unix.SYS_GETPID},
		{unix.SYS_ADD_KEY},
		{unix.SYS_BPF, 0, 0, 0},
		{unix.SYS_ACCT, 0},
		{unix.SYS_SETNS, ^uint64(0), 0},
		{unix.SYS_PERSONALITY, 0xffffffff},
		{unix.SYS_PERSONALITY, 1},
		{462}, // mseal: unknown to libseccomp 2.5.4, so the stub's ENOSYS
	})
	want := []unix.Errno{0, unix.ENOSYS, unix.EPERM, unix.EPERM, unix.EBADF, 0, unix.ENOSYS, unix.ENOSYS}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("call %d: errno %v, want %v", i, got[i], want[i])
		}
	}
}

func TestKernelDockerDefaultWithoutAuditWrite(t *testing.T) {
	got := inKernel(t, dockerDefault(t, noAuditWrite), [][7]uint64{
		{unix.SYS_SOCKET, unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_AUDIT},
		{unix.SYS_SOCKET, unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE},
		{unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_STREAM, 9}, // the kernel's answer
		{unix.SYS_GETPID},
	})
	want := []unix.Errno{unix.EINVAL, 0, unix.EPROTONOSUPPORT, 0}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("call %d: errno %v, want %v", i, got[i], want[i])
		}
	}
}

func TestKernelErrnoRetAndConditions(t *testing.T) {
	cfg := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86_64},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"getppid"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(unix.ETXTBSY))},
			{Names: []string{"umask"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(unix.EXDEV)), Args: []specs.LinuxSeccompArg{
				{Index: 0, Op: specs.OpMaskedEqual, Value: 0xffff_0000_0000_00ff, ValueTwo: 0x1234_0000_0000_0022}}},
			{Names: []string{"keyctl"}, Action: specs.ActErrno},
		}}
	got := inKernel(t, cfg, [][7]uint64{
		{unix.SYS_GETPPID},
		{unix.SYS_UMASK, 0x1234_0000_0000_0022},
		{unix.SYS_UMASK, 0x22},
		{unix.SYS_KEYCTL, 0},
		{unix.SYS_GETPID},
	})
	want := []unix.Errno{unix.ETXTBSY, unix.EXDEV, 0, unix.EPERM, 0}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("call %d: errno %v, want %v", i, got[i], want[i])
		}
	}
}
