package oci

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// DefaultPathEnv is the PATH a container gets when neither its image nor its
// manifest sets one (containerd's default).
const DefaultPathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// CapabilityNames lists every capability the kernel headers of runc 1.1
// know, by number (linux/capability.h): CapabilityNames[n] is capability n.
var CapabilityNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
	"CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
	"CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
	"CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// DefaultCapabilities are the capabilities of a container that asks for no
// change (containerd's and Docker's default set).
func DefaultCapabilities() []string {
	return []string{
		"CAP_CHOWN",
		"CAP_DAC_OVERRIDE",
		"CAP_FSETID",
		"CAP_FOWNER",
		"CAP_MKNOD",
		"CAP_NET_RAW",
		"CAP_SETGID",
		"CAP_SETUID",
		"CAP_SETFCAP",
		"CAP_SETPCAP",
		"CAP_NET_BIND_SERVICE",
		"CAP_SYS_CHROOT",
		"CAP_KILL",
		"CAP_AUDIT_WRITE",
	}
}

// DefaultMaskedPaths are hidden from unprivileged containers.
func DefaultMaskedPaths() []string {
	return []string{
		"/proc/acpi",
		"/proc/asound",
		"/proc/kcore",
		"/proc/keys",
		"/proc/latency_stats",
		"/proc/timer_list",
		"/proc/timer_stats",
		"/proc/sched_debug",
		"/proc/scsi",
		"/sys/firmware",
		"/sys/devices/virtual/powercap",
	}
}

// DefaultReadonlyPaths are read-only in unprivileged containers.
func DefaultReadonlyPaths() []string {
	return []string{
		"/proc/bus",
		"/proc/fs",
		"/proc/irq",
		"/proc/sys",
		"/proc/sysrq-trigger",
	}
}

// DefaultMounts are the kernel filesystems every container gets.
func DefaultMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
}

// DefaultSpec returns the spec of a container with new namespaces, root
// "rootfs" in the bundle, running `sh` as root in / with the default
// capabilities, mounts, masked and read-only paths. runc adds the default
// devices (null, zero, full, random, urandom, tty, ptmx) and allows them in
// the device cgroup, which otherwise denies everything. There are no rlimits:
// the container inherits the runtime's, and raising them needs privileges we
// may not have. NoNewPrivileges is false because Kubernetes defaults
// allowPrivilegeEscalation to true.
func DefaultSpec() *specs.Spec {
	return &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: "rootfs"},
		Process: &specs.Process{
			Args: []string{"sh"},
			Env:  []string{DefaultPathEnv},
			Cwd:  "/",
			User: specs.User{UID: 0, GID: 0},
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  DefaultCapabilities(),
				Permitted: DefaultCapabilities(),
				Effective: DefaultCapabilities(),
			},
		},
		Mounts: DefaultMounts(),
		Linux: &specs.Linux{
			MaskedPaths:   DefaultMaskedPaths(),
			ReadonlyPaths: DefaultReadonlyPaths(),
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.MountNamespace},
				{Type: specs.NetworkNamespace},
			},
		},
	}
}

// SetNamespace makes the container use a namespace of type t: a new one when
// path is "", else the one at path (e.g. /proc/PID/ns/net or a pinned netns).
func SetNamespace(s *specs.Spec, t specs.LinuxNamespaceType, path string) {
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	for i := range s.Linux.Namespaces {
		if s.Linux.Namespaces[i].Type == t {
			s.Linux.Namespaces[i].Path = path
			return
		}
	}
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: t, Path: path})
}

// RemoveNamespace makes the container share the host's namespace of type t.
func RemoveNamespace(s *specs.Spec, t specs.LinuxNamespaceType) {
	if s.Linux == nil {
		return
	}
	ns := s.Linux.Namespaces[:0]
	for _, n := range s.Linux.Namespaces {
		if n.Type != t {
			ns = append(ns, n)
		}
	}
	s.Linux.Namespaces = ns
}

// AddMount adds m, replacing any mount on the same destination, as a mount
// from the manifest overrides a default one (containerd's CRI does the same).
func AddMount(s *specs.Spec, m specs.Mount) {
	dst := filepath.Clean(m.Destination)
	mounts := s.Mounts[:0]
	for _, old := range s.Mounts {
		if filepath.Clean(old.Destination) != dst {
			mounts = append(mounts, old)
		}
	}
	s.Mounts = append(mounts, m)
}

// MergeEnv returns base with each KEY=VALUE of overrides replacing the entry
// of the same KEY or appended in order, as Kubernetes merges a container's
// env over its image's.
func MergeEnv(base []string, overrides ...string) []string {
	out := make([]string, 0, len(base)+len(overrides))
	index := make(map[string]int, len(base)+len(overrides))
	for _, list := range [][]string{base, overrides} {
		for _, kv := range list {
			k, _, _ := strings.Cut(kv, "=")
			if i, ok := index[k]; ok {
				out[i] = kv
				continue
			}
			index[k] = len(out)
			out = append(out, kv)
		}
	}
	return out
}

// WriteBundle writes s as dir/config.json, replacing any previous one
// atomically so runc never reads a partial file.
func WriteBundle(dir string, s *specs.Spec) (retErr error) {
	data, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encoding runtime spec: %w", err)
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return fmt.Errorf("creating bundle %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".config.json-")
	if err != nil {
		return fmt.Errorf("writing bundle %s: %w", dir, err)
	}
	defer func() {
		if retErr != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing bundle %s: %w", dir, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing bundle %s: %w", dir, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing bundle %s: %w", dir, err)
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, "config.json")); err != nil {
		return fmt.Errorf("writing bundle %s: %w", dir, err)
	}
	return nil
}

// ClampOOMScoreAdj returns v raised to the runtime's own oom_score_adj:
// without CAP_SYS_RESOURCE a lower value would make runc fail, and a
// container should never be less likely to be OOM-killed than its runtime
// (containerd's restrict_oom_score_adj).
func ClampOOMScoreAdj(v int) int {
	data, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return v
	}
	own, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return v
	}
	return max(v, own)
}
