package seccomp

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Load installs the program on the calling thread only (no TSYNC), as
// runc does; the caller locks the OS thread and execs right after. Like
// runc it does not set no_new_privs: without it the caller needs
// CAP_SYS_ADMIN.
func (p *Program) Load() error {
	if len(p.Filter) == 0 {
		return errors.New("load seccomp filter: empty program")
	}
	fprog := unix.SockFprog{Len: uint16(len(p.Filter)), Filter: &p.Filter[0]}
	_, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(p.Flags), uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(p.Filter)
	if errno != 0 {
		return fmt.Errorf("load seccomp filter of %d instructions with flags %#x: %w", len(p.Filter), p.Flags, errno)
	}
	return nil
}
