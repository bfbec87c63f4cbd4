package criruntime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-dev/peapod/internal/image"
	"github.com/peapod-dev/peapod/internal/oci"
)

// containerSpec builds the OCI spec of a container in sandbox sb, as
// containerd's containerSpec (container_create_linux.go) does.
func (s *Service) containerSpec(ctx context.Context, rec *containerRecord, sb *sandboxRecord, img *image.Image, rootfs string) (*specs.Spec, error) {
	config := rec.Config
	var imgConfig v1.Config
	if img.Config != nil {
		imgConfig = img.Config.Config
	}
	sc := config.GetLinux().GetSecurityContext()

	spec := oci.DefaultSpec()
	spec.Root = &specs.Root{Path: rootfs, Readonly: sc.GetReadonlyRootfs()}

	args, err := processArgs(config, imgConfig)
	if err != nil {
		return nil, err
	}
	spec.Process.Args = args
	spec.Process.Terminal = config.GetTty()

	// Environment: HOSTNAME, then the image's, then the config's, each later
	// value replacing an earlier one of the same name.
	env := []string{oci.DefaultPathEnv}
	if h := sb.Config.GetHostname(); h != "" {
		env = append(env, "HOSTNAME="+h)
	}
	env = oci.MergeEnv(env, imgConfig.Env...)
	for _, kv := range config.GetEnvs() {
		env = oci.MergeEnv(env, kv.GetKey()+"="+string(kv.GetValue()))
	}
	spec.Process.Env = env

	spec.Process.Cwd = "/"
	if wd := config.GetWorkingDir(); wd != "" {
		spec.Process.Cwd = wd
	} else if imgConfig.WorkingDir != "" {
		spec.Process.Cwd = imgConfig.WorkingDir
	}

	user, err := resolveUser(rootfs, imgConfig.User, sc)
	if err != nil {
		return nil, err
	}
	spec.Process.User = user
	rec.UID, rec.GID, rec.Groups = user.UID, user.GID, user.AdditionalGids

	// Security context: the subset a pod needs (capabilities, no new
	// privileges, masked and read-only paths, privileged).
	if sc.GetPrivileged() {
		if !sb.Config.GetLinux().GetSecurityContext().GetPrivileged() {
			return nil, invalidf("a privileged container needs a privileged sandbox")
		}
		all := allCapabilities()
		spec.Process.Capabilities = &specs.LinuxCapabilities{Bounding: all, Permitted: all, Effective: all}
		spec.Linux.MaskedPaths, spec.Linux.ReadonlyPaths = nil, nil
		spec.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
		devs, err := hostDevices()
		if err != nil {
			return nil, fmt.Errorf("list host devices for a privileged container: %w", err)
		}
		spec.Linux.Devices = devs
		for i := range spec.Mounts {
			if spec.Mounts[i].Destination == "/sys" || spec.Mounts[i].Destination == "/sys/fs/cgroup" {
				spec.Mounts[i].Options = replaceOption(spec.Mounts[i].Options, "ro", "rw")
			}
		}
	} else if caps := sc.GetCapabilities(); caps != nil {
		c, err := adjustCapabilities(spec.Process.Capabilities.Bounding, caps.GetAddCapabilities(), caps.GetDropCapabilities())
		if err != nil {
			return nil, err
		}
		spec.Process.Capabilities = &specs.LinuxCapabilities{Bounding: c, Permitted: c, Effective: c}
	}
	if !sc.GetPrivileged() {
		// A privileged container runs without seccomp, as with containerd.
		spec.Linux.Seccomp, err = seccompFor(sc.GetSeccomp(), sc.GetSeccompProfilePath(), spec.Process.Capabilities.Bounding)
		if err != nil {
			return nil, err
		}
	}
	spec.Process.NoNewPrivileges = sc.GetNoNewPrivs()
	if p := sc.GetMaskedPaths(); p != nil {
		spec.Linux.MaskedPaths = p
	}
	if p := sc.GetReadonlyPaths(); p != nil {
		spec.Linux.ReadonlyPaths = p
	}

	// Namespaces: the sandbox's network, IPC and UTS; PID as asked; own mount.
	if err := s.containerNamespaces(spec, config, sb); err != nil {
		return nil, err
	}

	// Mounts: the sandbox's files, then the config's (which override them).
	ro := sc.GetReadonlyRootfs()
	sandboxDir := s.sandboxDir(sb.ID)
	for _, f := range []string{"hosts", "resolv.conf", "hostname"} {
		oci.AddMount(spec, specs.Mount{
			Destination: "/etc/" + f, Type: "bind", Source: filepath.Join(sandboxDir, f),
			Options: []string{"rbind", "rprivate", rwOption(ro)},
		})
	}
	oci.AddMount(spec, specs.Mount{Destination: "/dev/shm", Type: "bind", Source: s.shmSource(sb), Options: []string{"rbind", "rprivate", "rw"}})
	for _, m := range config.GetMounts() {
		if m.GetRecursiveReadOnly() && !s.rro {
			return nil, invalidf("recursive read-only mount %s: runc here does not support it", m.GetContainerPath())
		}
		om, err := ociMount(m)
		if err != nil {
			return nil, err
		}
		oci.AddMount(spec, om)
	}

	if podUserns(sb.Config) != nil {
		if err := makeMountpoints(rootfs, spec); err != nil {
			return nil, err
		}
	}

	if p := rootfsPropagation(config.GetMounts()); p != "" {
		spec.Linux.RootfsPropagation = p
	}

	// Resources and cgroup.
	spec.Linux.CgroupsPath = rec.CgroupPath
	if r := config.GetLinux().GetResources(); r != nil {
		applyResources(spec.Linux.Resources, r)
		adj := oci.ClampOOMScoreAdj(int(r.GetOomScoreAdj()))
		spec.Process.OOMScoreAdj = &adj
	} else {
		adj := oci.ClampOOMScoreAdj(0)
		spec.Process.OOMScoreAdj = &adj
	}
	spec.Annotations = map[string]string{}
	for k, v := range config.GetAnnotations() {
		spec.Annotations[k] = v
	}
	spec.Annotations["io.kubernetes.cri.container-type"] = "container"
	spec.Annotations["io.kubernetes.cri.sandbox-id"] = sb.ID
	spec.Annotations["io.kubernetes.cri.container-name"] = config.GetMetadata().GetName()
	return spec, nil
}

// processArgs merges the image's Entrypoint/Cmd with the config's
// Command/Args as containerd (after Docker) and the kubelet do: a config
// Command replaces the Entrypoint and drops the image Cmd; config Args replace
// the image Cmd.
func processArgs(config *runtimeapi.ContainerConfig, img v1.Config) ([]string, error) {
	command, args := config.GetCommand(), config.GetArgs()
	if len(command) == 0 {
		if len(args) == 0 {
			args = append([]string{}, img.Cmd...)
		}
		if !(len(img.Entrypoint) == 1 && img.Entrypoint[0] == "") {
			command = append([]string{}, img.Entrypoint...)
		}
	}
	if len(command) == 0 && len(args) == 0 {
		return nil, invalidf("no command specified: neither the container config nor the image has one")
	}
	return append(append([]string{}, command...), args...), nil
}

// containerNamespaces points the spec at the sandbox's namespaces.
func (s *Service) containerNamespaces(spec *specs.Spec, config *runtimeapi.ContainerConfig, sb *sandboxRecord) error {
	sbNS := sb.Config.GetLinux().GetSecurityContext().GetNamespaceOptions()
	pauseNS := func(t string) string { return fmt.Sprintf("/proc/%d/ns/%s", sb.Pid, t) }
	if sb.NetNSPath != "" {
		oci.SetNamespace(spec, specs.NetworkNamespace, sb.NetNSPath)
		oci.SetNamespace(spec, specs.UTSNamespace, pauseNS("uts"))
	} else {
		oci.RemoveNamespace(spec, specs.NetworkNamespace)
		oci.RemoveNamespace(spec, specs.UTSNamespace)
	}
	if sbNS.GetIpc() == runtimeapi.NamespaceMode_NODE {
		oci.RemoveNamespace(spec, specs.IPCNamespace)
	} else {
		oci.SetNamespace(spec, specs.IPCNamespace, pauseNS("ipc"))
	}
	cNS := config.GetLinux().GetSecurityContext().GetNamespaceOptions()
	switch {
	case sbNS.GetPid() == runtimeapi.NamespaceMode_NODE:
		oci.RemoveNamespace(spec, specs.PIDNamespace)
	case cNS.GetPid() == runtimeapi.NamespaceMode_POD:
		oci.SetNamespace(spec, specs.PIDNamespace, pauseNS("pid"))
	case cNS.GetPid() == runtimeapi.NamespaceMode_CONTAINER:
		oci.SetNamespace(spec, specs.PIDNamespace, "")
	case cNS.GetPid() == runtimeapi.NamespaceMode_NODE:
		// The kubelet asks for the host PID namespace only with a host-PID sandbox.
		return invalidf("host PID namespace for a container needs a host-PID sandbox")
	case cNS.GetPid() == runtimeapi.NamespaceMode_TARGET:
		t, err := s.getContainer(cNS.GetTargetId())
		if err != nil {
			return fmt.Errorf("target container of PID namespace: %w", err)
		}
		if t.State != runtimeapi.ContainerState_CONTAINER_RUNNING && t.State != runtimeapi.ContainerState_CONTAINER_CREATED {
			return &StateError{Op: "share the PID namespace of", ID: t.ID, State: t.State.String()}
		}
		oci.SetNamespace(spec, specs.PIDNamespace, fmt.Sprintf("/proc/%d/ns/pid", t.Pid))
	}
	oci.SetNamespace(spec, specs.MountNamespace, "")
	if u := podUserns(sb.Config); u != nil {
		applyUserns(spec, u, pauseNS("user"))
	}
	return nil
}

func rwOption(ro bool) string {
	if ro {
		return "ro"
	}
	return "rw"
}

// ociMount converts a CRI mount (a host path bind) to an OCI mount.
func ociMount(m *runtimeapi.Mount) (specs.Mount, error) {
	src, dst := m.GetHostPath(), m.GetContainerPath()
	if src == "" || !filepath.IsAbs(dst) {
		return specs.Mount{}, invalidf("mount needs a host path and an absolute container path (got %q -> %q)", src, dst)
	}
	// As containerd does, a missing host path is created as a directory.
	if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(src, 0o755); err != nil {
			return specs.Mount{}, fmt.Errorf("create mount source %s: %w", src, err)
		}
	} else if err != nil {
		return specs.Mount{}, fmt.Errorf("mount source %s: %w", src, err)
	}
	opts := []string{"rbind", rwOption(m.GetReadonly())}
	if m.GetRecursiveReadOnly() {
		// As containerd: recursive read-only needs a read-only, private
		// mount; runc applies it with mount_setattr (option "rro").
		if !m.GetReadonly() {
			return specs.Mount{}, invalidf("recursive read-only mount %s must be read-only", dst)
		}
		if m.GetPropagation() != runtimeapi.MountPropagation_PROPAGATION_PRIVATE {
			return specs.Mount{}, invalidf("recursive read-only mount %s must have private propagation", dst)
		}
		opts = []string{"rbind", "rro"}
	}
	switch m.GetPropagation() {
	case runtimeapi.MountPropagation_PROPAGATION_PRIVATE:
		opts = append(opts, "rprivate")
	case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
		if err := ensurePropagation(src, "shared:", "master:"); err != nil {
			return specs.Mount{}, err
		}
		opts = append(opts, "rslave")
	case runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
		if err := ensurePropagation(src, "shared:"); err != nil {
			return specs.Mount{}, err
		}
		opts = append(opts, "rshared")
	}
	return specs.Mount{Destination: dst, Type: "bind", Source: src, Options: opts}, nil
}

// rootfsPropagation is the rootfs propagation the mounts need, as containerd
// sets it: rshared for a bidirectional mount, else rslave for a
// host-to-container one (runc's default is rprivate).
func rootfsPropagation(mounts []*runtimeapi.Mount) string {
	p := ""
	for _, m := range mounts {
		switch m.GetPropagation() {
		case runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
			return "rshared"
		case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
			p = "rslave"
		}
	}
	return p
}

// ensurePropagation checks that the mount holding path propagates as one of
// kinds ("shared:" or "master:" optional fields of mountinfo), as containerd's
// ensureShared and ensureSharedOrSlave do: otherwise the propagation asked
// for could not work.
func ensurePropagation(path string, kinds ...string) error {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("mount source %s: %w", path, err)
	}
	mounts, err := mountinfo.GetMounts(mountinfo.ParentsFilter(real))
	if err != nil {
		return fmt.Errorf("find the mount of %s: %w", path, err)
	}
	var best *mountinfo.Info
	for _, m := range mounts {
		if best == nil || len(m.Mountpoint) > len(best.Mountpoint) {
			best = m
		}
	}
	if best == nil {
		return fmt.Errorf("find the mount of %s: none", path)
	}
	for _, f := range strings.Fields(best.Optional) {
		for _, k := range kinds {
			if strings.HasPrefix(f, k) {
				return nil
			}
		}
	}
	want := "shared"
	if len(kinds) > 1 {
		want = "shared or slave"
	}
	return invalidf("path %q is mounted on %q, which is not a %s mount", path, best.Mountpoint, want)
}

// applyResources sets the config's cgroup resources on r.
func applyResources(r *specs.LinuxResources, c *runtimeapi.LinuxContainerResources) {
	if c.GetCpuShares() > 0 || c.GetCpuQuota() > 0 || c.GetCpuPeriod() > 0 || c.GetCpusetCpus() != "" || c.GetCpusetMems() != "" {
		if r.CPU == nil {
			r.CPU = &specs.LinuxCPU{}
		}
		if v := c.GetCpuShares(); v > 0 {
			u := uint64(v)
			r.CPU.Shares = &u
		}
		if v := c.GetCpuQuota(); v > 0 {
			r.CPU.Quota = &v
		}
		if v := c.GetCpuPeriod(); v > 0 {
			u := uint64(v)
			r.CPU.Period = &u
		}
		r.CPU.Cpus = c.GetCpusetCpus()
		r.CPU.Mems = c.GetCpusetMems()
	}
	if v := c.GetMemoryLimitInBytes(); v > 0 {
		if r.Memory == nil {
			r.Memory = &specs.LinuxMemory{}
		}
		r.Memory.Limit = &v
		if sw := c.GetMemorySwapLimitInBytes(); sw > 0 {
			r.Memory.Swap = &sw
		}
	}
	for _, h := range c.GetHugepageLimits() {
		r.HugepageLimits = append(r.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: h.GetPageSize(), Limit: h.GetLimit()})
	}
	if len(c.GetUnified()) > 0 {
		r.Unified = c.GetUnified()
	}
}

func replaceOption(opts []string, old, new string) []string {
	out := make([]string, 0, len(opts))
	for _, o := range opts {
		if o == old {
			o = new
		}
		out = append(out, o)
	}
	return out
}

// allCapabilities is every capability the runtime itself has (its bounding
// set), as containerd grants a privileged container or "ALL": asking for one
// the runtime lacks (CAP_SYS_RESOURCE in some sandboxes) would make runc fail.
func allCapabilities() []string {
	ownCapsOnce.Do(func() {
		ownCaps = append([]string{}, oci.CapabilityNames...)
		data, err := os.ReadFile("/proc/self/status")
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(data), "\n") {
			hex, ok := strings.CutPrefix(line, "CapBnd:")
			if !ok {
				continue
			}
			mask, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			if err != nil {
				return
			}
			ownCaps = ownCaps[:0]
			for i, name := range oci.CapabilityNames {
				if mask&(1<<uint(i)) != 0 {
					ownCaps = append(ownCaps, name)
				}
			}
		}
	})
	return append([]string{}, ownCaps...)
}

var (
	ownCapsOnce sync.Once
	ownCaps     []string
)

// adjustCapabilities applies the CRI's add and drop lists ("ALL" allowed,
// names with or without CAP_) to base, as containerd does: drop first, then add.
func adjustCapabilities(base, add, drop []string) ([]string, error) {
	norm := func(c string) (string, error) {
		c = strings.ToUpper(c)
		if c == "ALL" {
			return c, nil
		}
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		for _, k := range oci.CapabilityNames {
			if k == c {
				return c, nil
			}
		}
		return "", invalidf("unknown capability %q", c)
	}
	set := map[string]bool{}
	for _, c := range base {
		set[c] = true
	}
	for _, c := range drop {
		n, err := norm(c)
		if err != nil {
			return nil, err
		}
		if n == "ALL" {
			set = map[string]bool{}
			continue
		}
		delete(set, n)
	}
	for _, c := range add {
		n, err := norm(c)
		if err != nil {
			return nil, err
		}
		if n == "ALL" {
			for _, k := range allCapabilities() {
				set[k] = true
			}
			continue
		}
		set[n] = true
	}
	var out []string
	for _, k := range oci.CapabilityNames {
		if set[k] {
			out = append(out, k)
		}
	}
	return out, nil
}
