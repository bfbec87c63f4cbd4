// Command peapod-pause is the pod's infra process: it holds the pod's
// namespaces open, reaps orphaned processes when it is PID 1 of a shared PID
// namespace, and otherwise sleeps. It behaves like Kubernetes' pause.c.
//
// It runs once per pod, so it is kept small: it imports no package that needs
// cgo (it must link statically) and none that costs memory at start (fmt, flag).
package main

import (
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
)

func main() {
	// One P and a small heap goal: pause allocates almost nothing after
	// start, so extra Ps, GC workers and heap headroom would only cost memory.
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(10)

	if len(os.Args) > 1 {
		if os.Args[1] == "-v" {
			os.Stdout.WriteString("peapod-pause " + versionString() + "\n")
			os.Exit(0)
		}
		os.Stderr.WriteString("usage: peapod-pause [-v]\n")
		os.Exit(2)
	}
	if os.Getpid() != 1 {
		os.Stderr.WriteString("Warning: pause should be the first process\n")
	}

	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	// Children may have exited before Notify took effect; their SIGCHLD is lost.
	reap()
	for sig := range sigs {
		switch sig {
		case syscall.SIGCHLD:
			reap()
		case syscall.SIGINT, syscall.SIGTERM:
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
	switch sig {
	case syscall.SIGINT:
		return "Interrupt"
	case syscall.SIGTERM:
		return "Terminated"
	}
	return sig.String()
}

// version may be stamped at link time (-ldflags "-X main.version=v0.1.0");
// otherwise -v reports what the Go toolchain recorded about the build.
var version string

func versionString() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}
