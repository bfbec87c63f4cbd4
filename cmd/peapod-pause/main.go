// Command peapod-pause is the pod's infra process: it holds the pod's
// namespaces open, reaps orphaned processes when it is PID 1 of a shared PID
// namespace, and otherwise sleeps. It behaves like Kubernetes' pause.c.
//
// It runs once per pod, so it stays small: it imports no package that needs
// cgo (it must link statically) and no fmt, flag or runtime/debug, which
// together add about a quarter of its mapped size.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

// version is what -v prints; builds may stamp it with
// -ldflags "-X main.version=v0.1.0".
var version = "devel"

func main() {
	if len(os.Args) > 1 {
		if os.Args[1] == "-v" {
			os.Stdout.WriteString("peapod-pause " + version + "\n")
			os.Exit(0)
		}
		os.Stderr.WriteString("usage: peapod-pause [-v]\n")
		os.Exit(2)
	}
	if os.Getpid() != 1 {
		os.Stderr.WriteString("Warning: pause should be the first process\n")
	} else {
		// The kernel drops signals that PID 1 of a namespace has no handler
		// for, so pause.c as PID 1 outlives them all. Go's runtime handles
		// these itself and would exit (with a stack dump for most); ignoring
		// them keeps a container that shares the PID namespace from ending
		// the pod with "kill -HUP 1". Real faults still crash: Go ignores
		// only the ones sent with kill.
		signal.Ignore(syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGILL, syscall.SIGTRAP, syscall.SIGABRT,
			syscall.SIGBUS, syscall.SIGFPE, syscall.SIGSEGV, syscall.SIGSTKFLT, syscall.SIGSYS)
	}

	// Separate channels, because Notify drops a signal when its channel is
	// full: a burst of SIGCHLD must not crowd out SIGTERM. One slot each is
	// enough, as a pending SIGCHLD already stands for any further exits.
	children := make(chan os.Signal, 1)
	shutdown := make(chan os.Signal, 1)
	signal.Notify(children, syscall.SIGCHLD)
	signal.Notify(shutdown, syscall.SIGINT, syscall.SIGTERM)
	// Children may have exited before Notify took effect; their SIGCHLD is lost.
	reap()
	for {
		select {
		case <-children:
			reap()
		case sig := <-shutdown:
			os.Stderr.WriteString("Shutting down, got signal: " + signalName(sig) + "\n")
			os.Exit(0)
		}
	}
}

// reap collects every exited child without blocking. SIGCHLD is not queued:
// one delivery may stand for many exits, so it loops until none is left.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}

// signalName returns the name psignal(3) prints, as pause.c does.
func signalName(sig os.Signal) string {
	if sig == syscall.SIGINT {
		return "Interrupt"
	}
	return "Terminated"
}
