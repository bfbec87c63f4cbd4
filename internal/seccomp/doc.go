//go:generate go run ./gen

// Package seccomp compiles an OCI seccomp config to a classic-BPF program
// that confines a process exactly as runc 1.1.5 with libseccomp 2.5.4
// (Debian 12's runc) confines a container for the same config, without cgo.
//
// The program has three parts, in this order:
//
//  1. runc's -ENOSYS stub (when the default action is not ALLOW, LOG or
//     TRACE): for each architecture listed in the config, a syscall number
//     greater than the largest one the profile names gets ERRNO(ENOSYS), so
//     programs can fall back from syscalls newer than the profile. On x86_64
//     the x32 bit (0x40000000, tested with JSET) selects the x32 maximum.
//  2. libseccomp's architecture dispatch: the arch word selects a section;
//     an architecture not in the filter gets the bad-arch action, KILL. In an
//     x86_64 section without x32 a number >= 0x40000000 other than -1 is a
//     bad arch too; with x32 both ABIs share one section.
//  3. Per architecture, a binary search over the syscall numbers that have
//     rules; each syscall tries its rules in order (ORed), each rule tests its
//     argument conditions (ANDed, 64-bit values as two 32-bit halves), and
//     falls back to the default action.
//
// Conditional rules of one syscall may have different actions only when
// every two of them with different actions are disjoint, as proved on one
// argument from the conditions compiled for each ABI (after i386's 32-bit
// truncation and its socketcall/ipc rewrite of argument 0): EQ against NE
// of the same value, against another EQ, or against a MASKED_EQ it fails;
// two MASKED_EQ requiring a shared mask bit both set and clear; and no rule
// of the syscall uses an ordering operator, nor on i386 MASKED_EQ (merged
// with other actions, libseccomp changes other rules' outcome for these).
// Then no input matches
// rules of two actions, and trying them in order gives libseccomp's answer
// however it merges their condition trees. A rule without conditions
// still replaces the conditional ones.
//
// Refused with ErrUnsupported (runc should apply the config instead):
// notify actions and listenerPath, architectures other than x86_64, i386,
// x32 and aarch64, flags other than LOG, SPEC_ALLOW and TSYNC, errnoRet
// above 4095, conditional rules of one syscall with different actions not
// proved disjoint or using those operators, and programs over 4096
// instructions.
//
// Jumps are built from short conditional jumps over one unconditional jump,
// so no program is limited by the 8-bit conditional jump offsets.
package seccomp
