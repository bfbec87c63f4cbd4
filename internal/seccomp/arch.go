package seccomp

import (
	"runtime"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// Audit architecture values, as the kernel puts them in seccomp_data.arch.
const (
	auditArchX86_64  = 0xc000003e
	auditArchI386    = 0x40000003
	auditArchAArch64 = 0xc00000b7
)

// x32Bit marks a syscall number of the x32 ABI on AUDIT_ARCH_X86_64.
const x32Bit = 0x40000000

// abi is one syscall ABI libseccomp can filter.
type abi struct {
	name  specs.Arch
	audit uint32
	// is32 says the arguments are 32-bit: only their low halves are
	// compared, and values are truncated, as libseccomp does.
	is32 bool
	// resolve maps a syscall name to its number in this ABI.
	resolve func(name string) (uint32, bool)
	// multiplexed says socket and SysV IPC calls also go through
	// socketcall(2) and ipc(2), which libseccomp filters by their first
	// argument.
	multiplexed bool
}

// x32Specific are the x32 syscalls whose number is not the x86_64 one.
var x32Specific = map[string]uint32{
	"rt_sigaction": 512, "rt_sigreturn": 513, "ioctl": 514, "readv": 515, "writev": 516,
	"recvfrom": 517, "sendmsg": 518, "recvmsg": 519, "execve": 520, "ptrace": 521,
	"rt_sigpending": 522, "rt_sigtimedwait": 523, "rt_sigqueueinfo": 524, "sigaltstack": 525,
	"timer_create": 526, "mq_notify": 527, "kexec_load": 528, "waitid": 529,
	"set_robust_list": 530, "get_robust_list": 531, "vmsplice": 532, "move_pages": 533,
	"preadv": 534, "pwritev": 535, "rt_tgsigqueueinfo": 536, "recvmmsg": 537, "sendmmsg": 538,
	"process_vm_readv": 539, "process_vm_writev": 540, "setsockopt": 541, "getsockopt": 542,
	"io_setup": 543, "io_submit": 544, "execveat": 545, "preadv2": 546, "pwritev2": 547,
}

// notInX32 are x86_64 syscalls the x32 ABI lacks.
var notInX32 = map[string]bool{
	"create_module": true, "epoll_ctl_old": true, "epoll_wait_old": true, "get_kernel_syms": true,
	"get_thread_area": true, "nfsservctl": true, "query_module": true, "set_thread_area": true,
	"_sysctl": true, "uselib": true, "vserver": true,
}

func lookup(table map[string]uint32) func(string) (uint32, bool) {
	return func(name string) (uint32, bool) {
		n, ok := table[name]
		return n, ok
	}
}

func resolveX32(name string) (uint32, bool) {
	if notInX32[name] {
		return 0, false
	}
	if n, ok := x32Specific[name]; ok {
		return n | x32Bit, true
	}
	n, ok := sysnumX86_64[name]
	return n | x32Bit, ok
}

var abis = map[specs.Arch]*abi{
	specs.ArchX86_64:  {name: specs.ArchX86_64, audit: auditArchX86_64, resolve: lookup(sysnumX86_64)},
	specs.ArchX32:     {name: specs.ArchX32, audit: auditArchX86_64, resolve: resolveX32},
	specs.ArchX86:     {name: specs.ArchX86, audit: auditArchI386, is32: true, resolve: lookup(sysnumX86), multiplexed: true},
	specs.ArchAARCH64: {name: specs.ArchAARCH64, audit: auditArchAArch64, resolve: lookup(sysnumAArch64)},
}

// NativeArch is libseccomp's name for this process's architecture, which
// libseccomp always filters; false when Go's GOARCH has none.
func NativeArch() (specs.Arch, bool) {
	a, ok := goarchs[runtime.GOARCH]
	return a, ok
}

var goarchs = map[string]specs.Arch{
	"amd64": specs.ArchX86_64, "386": specs.ArchX86, "arm64": specs.ArchAARCH64, "arm": specs.ArchARM,
	"ppc64le": specs.ArchPPC64LE, "s390x": specs.ArchS390X, "riscv64": specs.ArchRISCV64,
	"mips64": specs.ArchMIPS64, "mips64le": specs.ArchMIPSEL64,
}

// knownAnywhere says libseccomp resolves name on some architecture; runc
// drops a rule whose name it cannot resolve at all.
func knownAnywhere(name string) bool {
	for _, a := range abis {
		if _, ok := a.resolve(name); ok {
			return true
		}
	}
	return false
}

// Multiplexed socket and IPC calls: the value of socketcall's or ipc's first
// argument that selects each (libseccomp's __PNR_* numbers modulo 100/200).
var (
	socketcallNumbers = map[string]uint32{
		"socket": 1, "bind": 2, "connect": 3, "listen": 4, "accept": 5, "getsockname": 6,
		"getpeername": 7, "socketpair": 8, "send": 9, "recv": 10, "sendto": 11, "recvfrom": 12,
		"shutdown": 13, "setsockopt": 14, "getsockopt": 15, "sendmsg": 16, "recvmsg": 17,
		"accept4": 18, "recvmmsg": 19, "sendmmsg": 20,
	}
	ipcNumbers = map[string]uint32{
		"semop": 1, "semget": 2, "semctl": 3, "semtimedop": 4, "msgsnd": 11, "msgrcv": 12,
		"msgget": 13, "msgctl": 14, "shmat": 21, "shmdt": 22, "shmget": 23, "shmctl": 24,
	}
)
