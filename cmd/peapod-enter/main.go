// Command peapod-enter runs one process inside a running container for the
// daemon's lean exec path (ExecSync, exec probes). See internal/enter.
//
// Its work is done in C (enter.c) by an ELF constructor, before the Go
// runtime would start: the constructor execs the command or exits, so main
// never runs. It is linked statically, so that no dynamic loader runs
// either.
package main

// #cgo CFLAGS: -O2 -Wall -Wextra -Werror
// #cgo LDFLAGS: -static
import "C"

func main() { panic("peapod-enter: the constructor neither exec'd nor exited") }
