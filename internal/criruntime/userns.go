package criruntime

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// probeUserNamespaces reports whether pods can have a user namespace of
// their own: the kernel has them, their number is not capped at 0, and root
// (where the rootfs of pause and of the containers live) and its parents can
// be searched by everyone, as runc needs from inside a pod's user namespace
// (containerd makes its root 0711 for this).
func probeUserNamespaces(root string) bool {
	if _, err := os.Stat("/proc/self/ns/user"); err != nil {
		return false
	}
	for p := filepath.Clean(root); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if p == "/" {
			break
		}
	}
	b, err := os.ReadFile("/proc/sys/user/max_user_namespaces")
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return err == nil && n > 0
}

// validateUserns checks a sandbox's user namespace options as the kubelet
// sends them: NODE (the host's, no mappings) or POD with one UID and one GID
// mapping that maps container ID 0, and a network namespace of the pod (which
// the user namespace owns). CONTAINER and TARGET mean nothing for a user
// namespace.
func (s *Service) validateUserns(nsOpts *runtimeapi.NamespaceOption) error {
	o := nsOpts.GetUsernsOptions()
	if o == nil {
		return nil // the host's (mode POD is 0, the default of a set option)
	}
	switch o.GetMode() {
	case runtimeapi.NamespaceMode_NODE:
		if len(o.GetUids()) > 0 || len(o.GetGids()) > 0 {
			return invalidf("user namespace mode NODE takes no ID mappings")
		}
		return nil
	case runtimeapi.NamespaceMode_POD:
		if s.cfg.Network == nil || nsOpts.GetNetwork() == runtimeapi.NamespaceMode_NODE {
			return invalidf("a user namespace needs a pod network of its own")
		}
	default:
		return invalidf("user namespace mode %s is not supported (only NODE and POD are)", o.GetMode())
	}
	if !s.userns {
		return invalidf("user namespaces are not available here: the kernel lacks them, or %s or a parent is not searchable by all (chmod o+x)", s.cfg.Root)
	}
	for _, m := range []struct {
		what string
		ids  []*runtimeapi.IDMapping
	}{{"UID", o.GetUids()}, {"GID", o.GetGids()}} {
		if len(m.ids) != 1 {
			return invalidf("user namespace: exactly one %s mapping is supported, got %d", m.what, len(m.ids))
		}
		if m.ids[0].GetContainerId() != 0 || m.ids[0].GetLength() == 0 {
			return invalidf("user namespace: the %s mapping must map container ID 0 (got container ID %d, length %d)",
				m.what, m.ids[0].GetContainerId(), m.ids[0].GetLength())
		}
	}
	return nil
}

// podUserns returns the sandbox's user namespace options when it has a user
// namespace of its own, else nil.
func podUserns(c *runtimeapi.PodSandboxConfig) *runtimeapi.UserNamespace {
	o := c.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	if o == nil || o.GetMode() != runtimeapi.NamespaceMode_POD {
		return nil
	}
	return o
}

// applyUserns puts the spec in the pod's user namespace at path, with the
// pod's ID mappings, which runc also wants when it joins one.
func applyUserns(spec *specs.Spec, o *runtimeapi.UserNamespace, path string) {
	ns := specs.LinuxNamespace{Type: specs.UserNamespace, Path: path}
	spec.Linux.Namespaces = append([]specs.LinuxNamespace{ns}, spec.Linux.Namespaces...)
	spec.Linux.UIDMappings = idMappings(o.GetUids())
	spec.Linux.GIDMappings = idMappings(o.GetGids())
}

// usernsHolder is a process holding a pod's new user namespace and, owned
// by it, the pod's network namespace. The network namespace must belong to
// the pod's user namespace: runc joins the user namespace before the
// others, and sysfs can only be mounted from the user namespace that owns
// the network namespace. The holder lives until pause has joined both.
type usernsHolder struct {
	cmd *exec.Cmd
}

// startUsernsHolder runs a copy of pause (it only sleeps) in a new user
// namespace with the pod's mappings and a new network namespace.
func (s *Service) startUsernsHolder(o *runtimeapi.UserNamespace) (*usernsHolder, error) {
	cmd := exec.Command(filepath.Join(s.pauseRootfs(), "pause"))
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET,
		UidMappings: sysIDMappings(o.GetUids()),
		GidMappings: sysIDMappings(o.GetGids()),
		// Containers call setgroups for their supplemental groups.
		GidMappingsEnableSetgroups: true,
		Pdeathsig:                  syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("create the pod's user namespace: %w", err)
	}
	return &usernsHolder{cmd: cmd}, nil
}

func (h *usernsHolder) nsPath(typ string) string {
	return fmt.Sprintf("/proc/%d/ns/%s", h.cmd.Process.Pid, typ)
}

func (h *usernsHolder) stop() {
	h.cmd.Process.Kill()
	h.cmd.Wait()
}

func sysIDMappings(ms []*runtimeapi.IDMapping) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, 0, len(ms))
	for _, m := range ms {
		out = append(out, syscall.SysProcIDMap{ContainerID: int(m.GetContainerId()), HostID: int(m.GetHostId()), Size: int(m.GetLength())})
	}
	return out
}

func idMappings(ms []*runtimeapi.IDMapping) []specs.LinuxIDMapping {
	out := make([]specs.LinuxIDMapping, 0, len(ms))
	for _, m := range ms {
		out = append(out, specs.LinuxIDMapping{ContainerID: m.GetContainerId(), HostID: m.GetHostId(), Size: m.GetLength()})
	}
	return out
}

// makeMountpoints creates, as the host's root, the mount points of the spec
// that the image lacks (an /etc/hosts, say). runc would create them from
// inside the pod's user namespace, where the rootfs's directories, owned by
// an unmapped root, are not writable. What is under /dev lands on runc's
// own tmpfs.
func makeMountpoints(rootfs string, spec *specs.Spec) error {
	for _, m := range spec.Mounts {
		dst := filepath.Clean(m.Destination)
		if strings.HasPrefix(dst, "/dev/") {
			continue
		}
		p, err := securejoin.SecureJoin(rootfs, dst)
		if err != nil {
			return fmt.Errorf("mount point %s: %w", dst, err)
		}
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		dir := true
		if m.Type == "bind" {
			if fi, err := os.Stat(m.Source); err == nil && !fi.IsDir() {
				dir = false
			}
		}
		if !dir {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return fmt.Errorf("mount point %s: %w", dst, err)
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return fmt.Errorf("mount point %s: %w", dst, err)
			}
			f.Close()
		} else if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("mount point %s: %w", dst, err)
		}
	}
	return nil
}
