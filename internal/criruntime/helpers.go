package criruntime

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// newID returns 64 random hex digits, the ID form containerd and CRI-O use.
func newID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("read random ID: %v", err)) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

// makeSandboxName is the reserved name of a sandbox, unique per attempt:
// <name>_<namespace>_<uid>_<attempt> (containerd's makeSandboxName).
func makeSandboxName(m *runtimeapi.PodSandboxMetadata) string {
	return strings.Join([]string{m.GetName(), m.GetNamespace(), m.GetUid(), strconv.FormatUint(uint64(m.GetAttempt()), 10)}, "_")
}

// makeContainerName is the reserved name of a container:
// <container>_<pod>_<namespace>_<pod uid>_<attempt> (containerd's makeContainerName).
func makeContainerName(c *runtimeapi.ContainerMetadata, s *runtimeapi.PodSandboxMetadata) string {
	return strings.Join([]string{c.GetName(), s.GetName(), s.GetNamespace(), s.GetUid(), strconv.FormatUint(uint64(c.GetAttempt()), 10)}, "_")
}

// procStartTime returns the start time of pid (field 22 of /proc/<pid>/stat,
// in clock ticks since boot) and whether it is still running (not a zombie).
func procStartTime(pid int) (start uint64, running bool, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false, err
	}
	// The command name (field 2) may hold spaces and parentheses: the fields
	// after it start after the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, false, fmt.Errorf("parse /proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state), so field 22 is f[19].
	if len(f) < 20 {
		return 0, false, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f))
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("parse /proc/%d/stat start time: %w", pid, err)
	}
	return start, f[0] != "Z" && f[0] != "X", nil
}

// processAlive reports whether pid is a running (not zombie) process with
// the given start time, so that a recycled PID is never mistaken for it.
func processAlive(pid int, startTime uint64) bool {
	if pid <= 0 {
		return false
	}
	st, running, err := procStartTime(pid)
	return err == nil && running && st == startTime
}

// parseSignal parses an image StopSignal: "SIGTERM", "TERM" or "15".
func parseSignal(s string) (syscall.Signal, error) {
	if s == "" {
		return unix.SIGTERM, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("signal %d out of range", n)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sig := unix.SignalNum(name)
	if sig == 0 {
		return 0, fmt.Errorf("unknown signal %q", s)
	}
	return sig, nil
}

// matchLabels reports whether labels has every key/value of selector.
func matchLabels(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
