// Command sysprobe calls system calls that seccomp profiles allow or deny,
// with arguments that make an allowed call fail harmlessly (bad pointers or
// descriptors), and prints each result: what a seccomp filter decides shows
// as the errno. Tests run it under runc exec and under peapod-enter and
// compare.
package main

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

type call struct {
	name string
	nr   uintptr
	args [6]uintptr
}

const bad = ^uintptr(0) // -1: no such descriptor, an invalid pointer

var calls = []call{
	{"getpid", unix.SYS_GETPID, [6]uintptr{}},
	{"keyctl", unix.SYS_KEYCTL, [6]uintptr{bad}},
	{"add_key", unix.SYS_ADD_KEY, [6]uintptr{}},
	{"request_key", unix.SYS_REQUEST_KEY, [6]uintptr{}},
	{"bpf", unix.SYS_BPF, [6]uintptr{bad}},
	{"perf_event_open", unix.SYS_PERF_EVENT_OPEN, [6]uintptr{}},
	{"ptrace", unix.SYS_PTRACE, [6]uintptr{bad}},
	{"process_vm_readv", unix.SYS_PROCESS_VM_READV, [6]uintptr{0, bad, 1}},
	{"kexec_load", unix.SYS_KEXEC_LOAD, [6]uintptr{}},
	{"init_module", unix.SYS_INIT_MODULE, [6]uintptr{}},
	{"finit_module", unix.SYS_FINIT_MODULE, [6]uintptr{bad}},
	{"delete_module", unix.SYS_DELETE_MODULE, [6]uintptr{}},
	{"mount", unix.SYS_MOUNT, [6]uintptr{}},
	{"umount2", unix.SYS_UMOUNT2, [6]uintptr{}},
	{"pivot_root", unix.SYS_PIVOT_ROOT, [6]uintptr{}},
	{"chroot", unix.SYS_CHROOT, [6]uintptr{}},
	{"swapon", unix.SYS_SWAPON, [6]uintptr{}},
	{"swapoff", unix.SYS_SWAPOFF, [6]uintptr{}},
	{"setns", unix.SYS_SETNS, [6]uintptr{bad}},
	{"unshare(user)", unix.SYS_UNSHARE, [6]uintptr{unix.CLONE_NEWUSER}},
	{"unshare(net)", unix.SYS_UNSHARE, [6]uintptr{unix.CLONE_NEWNET}},
	{"clone3", unix.SYS_CLONE3, [6]uintptr{}},
	{"io_uring_setup", unix.SYS_IO_URING_SETUP, [6]uintptr{1}},
	{"userfaultfd", unix.SYS_USERFAULTFD, [6]uintptr{bad}},
	{"personality(query)", unix.SYS_PERSONALITY, [6]uintptr{0xffffffff}},
	{"personality(0x20008)", unix.SYS_PERSONALITY, [6]uintptr{0x20008}},
	{"socket(netlink audit)", unix.SYS_SOCKET, [6]uintptr{unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_AUDIT}},
	{"socket(vsock)", unix.SYS_SOCKET, [6]uintptr{unix.AF_VSOCK, unix.SOCK_STREAM}},
	{"socket(inet)", unix.SYS_SOCKET, [6]uintptr{unix.AF_INET, unix.SOCK_STREAM}},
	{"open_tree", unix.SYS_OPEN_TREE, [6]uintptr{bad}},
	{"move_mount", unix.SYS_MOVE_MOUNT, [6]uintptr{bad}},
	{"fsopen", unix.SYS_FSOPEN, [6]uintptr{}},
	{"quotactl", unix.SYS_QUOTACTL, [6]uintptr{}},
	{"iopl", unix.SYS_IOPL, [6]uintptr{5}},
	{"ioperm", unix.SYS_IOPERM, [6]uintptr{0, 0, 0}},
	{"clock_settime", unix.SYS_CLOCK_SETTIME, [6]uintptr{0}},
	{"adjtimex", unix.SYS_ADJTIMEX, [6]uintptr{}},
	{"reboot", unix.SYS_REBOOT, [6]uintptr{}},
	{"open_by_handle_at", unix.SYS_OPEN_BY_HANDLE_AT, [6]uintptr{bad}},
	{"name_to_handle_at", unix.SYS_NAME_TO_HANDLE_AT, [6]uintptr{bad}},
	{"pidfd_getfd", unix.SYS_PIDFD_GETFD, [6]uintptr{bad}},
	{"set_mempolicy", unix.SYS_SET_MEMPOLICY, [6]uintptr{bad}},
	{"mbind", unix.SYS_MBIND, [6]uintptr{0, 0, bad}},
	{"move_pages", unix.SYS_MOVE_PAGES, [6]uintptr{0, 1, bad}},
	{"kcmp", unix.SYS_KCMP, [6]uintptr{0, 0, bad}},
	{"fanotify_init", unix.SYS_FANOTIFY_INIT, [6]uintptr{bad}},
	{"lookup_dcookie", unix.SYS_LOOKUP_DCOOKIE, [6]uintptr{}},
	{"acct", unix.SYS_ACCT, [6]uintptr{bad}},
	{"syslog", unix.SYS_SYSLOG, [6]uintptr{bad}},
	{"vhangup", unix.SYS_VHANGUP, [6]uintptr{}},
	{"uselib", unix.SYS_USELIB, [6]uintptr{}},
	{"mseal", 462, [6]uintptr{bad}},
	{"fchmodat2", 452, [6]uintptr{bad}},
	{"nr 1000", 1000, [6]uintptr{}},
	{"x32 getpid", 0x40000000 | unix.SYS_GETPID, [6]uintptr{}},
}

func main() {
	for _, c := range calls {
		_, _, e := syscall.RawSyscall6(c.nr, c.args[0], c.args[1], c.args[2], c.args[3], c.args[4], c.args[5])
		fmt.Printf("%s %d\n", c.name, e)
	}
}
