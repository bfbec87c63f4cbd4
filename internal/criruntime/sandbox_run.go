package criruntime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	plog "github.com/peapod-dev/peapod/internal/log"
	"github.com/peapod-dev/peapod/internal/netns"
	"github.com/peapod-dev/peapod/internal/network"
	"github.com/peapod-dev/peapod/internal/oci"
)

// cleanupTimeout bounds each rollback and teardown step, which runs on a
// fresh context so that a cancelled request still cleans up after itself.
const cleanupTimeout = 30 * time.Second

// RunPodSandbox creates and starts a pod-level sandbox: the sandbox
// directory (hostname, resolv.conf, hosts, shm), a pinned network namespace
// with the CNI network set up in it, and peapod-pause run by runc holding the
// pod's namespaces. Every step is undone if a later one fails.
func (s *Service) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	id, err := s.runPodSandbox(ctx, req)
	if err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: id}, nil
}

func (s *Service) runPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (_ string, retErr error) {
	start := s.clock.Now()
	var netTime time.Duration
	var waitNetwork func() netResult // nil without a pod network
	config := req.GetConfig()
	if err := validateSandboxConfig(config); err != nil {
		return "", err
	}
	if err := s.validateUserns(config.GetLinux().GetSecurityContext().GetNamespaceOptions()); err != nil {
		return "", err
	}
	if h := req.GetRuntimeHandler(); h != "" && h != "runc" {
		return "", invalidf("runtime handler %q is not supported (only the default runc handler is)", h)
	}
	id := newID()
	name := makeSandboxName(config.GetMetadata())
	ctx = s.logWith(ctx, "podsandboxid", id, "pod", config.GetMetadata().GetNamespace()+"/"+config.GetMetadata().GetName())
	log := plog.FromContext(ctx)
	log.Debug("run pod sandbox")

	if err := s.reserveName(name, id); err != nil {
		return "", fmt.Errorf("reserve sandbox name: %w", err)
	}
	defer func() {
		if retErr != nil {
			s.releaseName(name)
		}
	}()

	rec := &sandboxRecord{
		ID:             id,
		Name:           name,
		Config:         config,
		RuntimeHandler: req.GetRuntimeHandler(),
		State:          runtimeapi.PodSandboxState_SANDBOX_NOTREADY,
		CreatedAt:      s.clock.Now().UnixNano(),
		CgroupParent:   config.GetLinux().GetCgroupParent(),
	}
	if rec.CgroupParent == "" {
		rec.CgroupParent = s.cfg.DefaultCgroupParent
	}
	nsOpts := config.GetLinux().GetSecurityContext().GetNamespaceOptions()
	usernsPath := "" // the pod's user namespace to join, if it has one

	// The sandbox directory holds the files containers bind-mount.
	dir := s.sandboxDir(id)
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return "", fmt.Errorf("create sandbox directory: %w", err)
	}
	defer func() {
		if retErr != nil {
			if err := s.removeSandboxDir(id); err != nil {
				log.Error("rollback: remove sandbox directory", "error", err)
			}
		}
	}()
	if err := writeSandboxFiles(dir, config); err != nil {
		return "", err
	}

	// Network: pin a new network namespace and let CNI set it up before the
	// pause process starts in it.
	if nsOpts.GetNetwork() != runtimeapi.NamespaceMode_NODE {
		if s.cfg.Network == nil {
			return "", errors.New("set up pod network: no network manager configured")
		}
		var path string
		var err error
		if u := podUserns(config); u != nil {
			// The network namespace belongs to the pod's user namespace.
			h, err := s.startUsernsHolder(u)
			if err != nil {
				return "", err
			}
			defer h.stop()
			usernsPath = h.nsPath("user")
			path, err = netns.Pin(s.netnsDir(), id, h.nsPath("net"))
			if err != nil {
				return "", fmt.Errorf("pin network namespace: %w", err)
			}
		} else if path, err = netns.New(s.netnsDir(), id); err != nil {
			return "", fmt.Errorf("create network namespace: %w", err)
		}
		rec.NetNSPath = path
		defer func() {
			if retErr != nil {
				if err := netns.Remove(path); err != nil {
					log.Error("rollback: remove network namespace", "error", err)
				}
			}
		}()
		// CNI ADD runs while runc runs the pause container (both only
		// need the pinned netns).
		pn := podNetwork(config)
		netDone := make(chan netResult, 1)
		netStart := s.clock.Now()
		go func() {
			res, err := s.cfg.Network.Setup(ctx, id, path, pn)
			netDone <- netResult{res: res, err: err, took: s.clock.Since(netStart)}
		}()
		var once sync.Once
		var nr netResult
		waitNetwork = func() netResult {
			once.Do(func() { nr = <-netDone })
			return nr
		}
		// The teardown is deferred whatever Setup returns: a plugin that
		// fails part-way may have allocated an address or made a veth.
		defer func() {
			if retErr != nil {
				waitNetwork()
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
				defer cancel()
				if err := s.cfg.Network.Teardown(cctx, id, path, pn); err != nil {
					log.Error("rollback: tear down pod network", "error", err)
				}
			}
		}()
	}

	// /dev/shm shared by the pod's containers, as containerd does.
	if nsOpts.GetIpc() != runtimeapi.NamespaceMode_NODE {
		shm := filepath.Join(dir, "shm")
		if err := os.MkdirAll(shm, 0o700); err != nil {
			return "", fmt.Errorf("create sandbox shm directory: %w", err)
		}
		if err := unix.Mount("shm", shm, "tmpfs", unix.MS_NOEXEC|unix.MS_NOSUID|unix.MS_NODEV, "mode=1777,size=65536k"); err != nil {
			return "", fmt.Errorf("mount sandbox shm: %w", err)
		}
		// removeSandboxDir (deferred above) unmounts it.
	}

	spec, err := s.sandboxSpec(rec, usernsPath)
	if err != nil {
		return "", err
	}
	if err := oci.WriteBundle(dir, spec); err != nil {
		return "", fmt.Errorf("write sandbox bundle: %w", err)
	}

	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", os.DevNull, err)
	}
	defer devnull.Close()
	// pause writes only when it warns, ends or crashes: kept, that says why
	// a sandbox stopped being ready.
	pauseLog, err := os.OpenFile(filepath.Join(dir, pauseLogName), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return "", fmt.Errorf("create pause log: %w", err)
	}
	defer pauseLog.Close()
	pidFile := filepath.Join(dir, "pause.pid")
	defer func() {
		if retErr != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			defer cancel()
			if err := s.cfg.Runc.Delete(cctx, id, true); err != nil {
				log.Error("rollback: delete pause container", "error", err)
			}
		}
	}()
	// pause starts at once, beside the CNI setup: it only holds the
	// namespaces, whatever their state (one runc call instead of two).
	runcStart := s.clock.Now()
	if err := s.cfg.Runc.Run(ctx, id, dir, oci.CreateOpts{PidFile: pidFile, Stdin: devnull, Stdout: pauseLog, Stderr: pauseLog}); err != nil {
		return "", fmt.Errorf("run pause container: %w", err)
	}
	runcTime := s.clock.Since(runcStart)
	if waitNetwork != nil {
		nr := waitNetwork()
		netTime = nr.took
		if nr.err != nil {
			return "", fmt.Errorf("set up pod network: %w", nr.err)
		}
		for _, ip := range nr.res.IPs {
			rec.IPs = append(rec.IPs, ip.String())
		}
		rec.NetworkReady = true
	}
	if err := writeHosts(filepath.Join(dir, "hosts"), config.GetHostname(), rec.IPs, rec.NetNSPath == ""); err != nil {
		return "", err
	}
	pid, err := readPidFile(pidFile)
	if err != nil {
		return "", fmt.Errorf("pause container: %w", err)
	}
	startTime, _, err := procStartTime(pid)
	if err != nil {
		return "", fmt.Errorf("pause container process %d: %w", pid, err)
	}
	rec.Pid, rec.PidStartTime = pid, startTime
	rec.State = runtimeapi.PodSandboxState_SANDBOX_READY

	s.mu.Lock()
	err = s.store.putSandbox(rec)
	if err == nil {
		s.sandboxes[id] = rec
	}
	s.mu.Unlock()
	if err != nil {
		return "", fmt.Errorf("record sandbox: %w", err)
	}
	s.watchPause(id, pid, startTime)
	s.emit(id, id, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT)
	s.emit(id, id, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT)
	log.Info("pod sandbox running", "pid", pid, "ips", rec.IPs,
		"took", s.clock.Since(start), "network", netTime, "runc", runcTime)
	return id, nil
}

// netResult is the outcome of the CNI setup running beside runc create.
type netResult struct {
	res  *network.Result
	err  error
	took time.Duration
}

func validateSandboxConfig(c *runtimeapi.PodSandboxConfig) error {
	if c == nil {
		return invalidf("sandbox config is required")
	}
	m := c.GetMetadata()
	if m.GetName() == "" || m.GetNamespace() == "" || m.GetUid() == "" {
		return invalidf("sandbox metadata name, namespace and uid are required (got %q, %q, %q)", m.GetName(), m.GetNamespace(), m.GetUid())
	}
	if o := c.GetLinux().GetSecurityContext().GetNamespaceOptions(); o != nil {
		if o.GetNetwork() == runtimeapi.NamespaceMode_TARGET || o.GetIpc() == runtimeapi.NamespaceMode_TARGET || o.GetPid() == runtimeapi.NamespaceMode_TARGET {
			return invalidf("namespace mode TARGET is only valid for a container's PID namespace")
		}
	}
	return nil
}

func podNetwork(c *runtimeapi.PodSandboxConfig) network.PodNetwork {
	m := c.GetMetadata()
	pn := network.PodNetwork{Name: m.GetName(), Namespace: m.GetNamespace(), UID: m.GetUid()}
	for _, p := range c.GetPortMappings() {
		if p.GetHostPort() <= 0 {
			continue // like the kubelet's hostport manager: only mapped ports
		}
		pn.PortMappings = append(pn.PortMappings, network.PortMapping{
			HostPort:      p.GetHostPort(),
			ContainerPort: p.GetContainerPort(),
			Protocol:      strings.ToLower(p.GetProtocol().String()),
			HostIP:        p.GetHostIp(),
		})
	}
	return pn
}

// writeSandboxFiles writes the hostname and resolv.conf containers bind-mount.
func writeSandboxFiles(dir string, c *runtimeapi.PodSandboxConfig) error {
	hostname := c.GetHostname()
	if hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("read host name: %w", err)
		}
		hostname = h
	}
	if err := os.WriteFile(filepath.Join(dir, "hostname"), []byte(hostname+"\n"), 0o644); err != nil {
		return fmt.Errorf("write sandbox hostname: %w", err)
	}
	var resolv []byte
	if dns := c.GetDnsConfig(); dns != nil {
		resolv = []byte(resolvConf(dns))
	} else {
		b, err := os.ReadFile("/etc/resolv.conf")
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("read host resolv.conf: %w", err)
		}
		resolv = b
	}
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), resolv, 0o644); err != nil {
		return fmt.Errorf("write sandbox resolv.conf: %w", err)
	}
	return nil
}

// resolvConf renders a DNSConfig as containerd's parseDNSOptions does.
func resolvConf(dns *runtimeapi.DNSConfig) string {
	var b strings.Builder
	if len(dns.GetSearches()) > 0 {
		b.WriteString("search " + strings.Join(dns.GetSearches(), " ") + "\n")
	}
	for _, s := range dns.GetServers() {
		b.WriteString("nameserver " + s + "\n")
	}
	if len(dns.GetOptions()) > 0 {
		b.WriteString("options " + strings.Join(dns.GetOptions(), " ") + "\n")
	}
	return b.String()
}

// writeHosts writes the pod's /etc/hosts: a copy of the host's for a pod on
// the host network (as containerd does), else loopback names and the pod's
// hostname on its addresses, as the kubelet's managed hosts file has.
func writeHosts(path, hostname string, ips []string, hostNetwork bool) error {
	if hostNetwork {
		data, err := os.ReadFile("/etc/hosts")
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("read host /etc/hosts: %w", err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return fmt.Errorf("write sandbox hosts: %w", err)
		}
		return nil
	}
	var b strings.Builder
	b.WriteString("# Kubernetes-managed hosts file (peapod).\n")
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
	if hostname != "" {
		for _, ip := range ips {
			if net.ParseIP(ip) != nil {
				b.WriteString(ip + "\t" + hostname + "\n")
			}
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write sandbox hosts: %w", err)
	}
	return nil
}

// sandboxSpec is the OCI spec of the pause container; usernsPath is the
// pod's user namespace, if it has one.
func (s *Service) sandboxSpec(rec *sandboxRecord, usernsPath string) (*specs.Spec, error) {
	config := rec.Config
	nsOpts := config.GetLinux().GetSecurityContext().GetNamespaceOptions()
	spec := oci.DefaultSpec()
	spec.Root = &specs.Root{Path: s.pauseRootfs(), Readonly: true}
	spec.Process.Args = []string{"/pause"}
	// One P is all pause needs; it saves about 70 KiB per pod.
	spec.Process.Env = append(spec.Process.Env, "GOMAXPROCS=1")
	spec.Process.Cwd = "/"
	spec.Process.Terminal = false
	spec.Process.NoNewPrivileges = true
	// pause needs no capability: it sleeps, and reaps its own children.
	spec.Process.Capabilities = &specs.LinuxCapabilities{}
	if sc := config.GetLinux().GetSecurityContext(); sc != nil {
		// The sandbox's identity, as containerd gives pause.
		if u := sc.GetRunAsUser(); u != nil {
			spec.Process.User.UID = uint32(u.GetValue())
		}
		if g := sc.GetRunAsGroup(); g != nil {
			spec.Process.User.GID = uint32(g.GetValue())
		}
		for _, g := range sc.GetSupplementalGroups() {
			spec.Process.User.AdditionalGids = append(spec.Process.User.AdditionalGids, uint32(g))
		}
	}
	adj := oci.ClampOOMScoreAdj(defaultSandboxOOMAdj)
	spec.Process.OOMScoreAdj = &adj
	if spec.Linux == nil {
		spec.Linux = &specs.Linux{}
	}
	if sc := config.GetLinux().GetSecurityContext(); !sc.GetPrivileged() {
		var err error
		spec.Linux.Seccomp, err = seccompFor(sc.GetSeccomp(), sc.GetSeccompProfilePath(), nil)
		if err != nil {
			return nil, err
		}
	}

	var namespaces []specs.LinuxNamespace
	namespaces = append(namespaces, specs.LinuxNamespace{Type: specs.MountNamespace})
	if nsOpts.GetNetwork() != runtimeapi.NamespaceMode_NODE {
		namespaces = append(namespaces,
			specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: rec.NetNSPath},
			specs.LinuxNamespace{Type: specs.UTSNamespace})
		spec.Hostname = config.GetHostname()
	}
	if nsOpts.GetIpc() != runtimeapi.NamespaceMode_NODE {
		namespaces = append(namespaces, specs.LinuxNamespace{Type: specs.IPCNamespace})
	}
	if nsOpts.GetPid() != runtimeapi.NamespaceMode_NODE {
		namespaces = append(namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace})
	}
	spec.Linux.Namespaces = namespaces
	if u := podUserns(config); u != nil {
		applyUserns(spec, u, usernsPath)
	}
	spec.Mounts = withShm(spec.Mounts, s.shmSource(rec))
	spec.Linux.CgroupsPath = cgroupsPath(rec.CgroupParent, rec.ID)
	if len(config.GetLinux().GetSysctls()) > 0 {
		spec.Linux.Sysctl = config.GetLinux().GetSysctls()
	}
	// containerd gives the sandbox the minimum CPU shares.
	if spec.Linux.Resources == nil {
		spec.Linux.Resources = &specs.LinuxResources{}
	}
	shares := uint64(2)
	spec.Linux.Resources.CPU = &specs.LinuxCPU{Shares: &shares}
	return spec, nil
}

// defaultSandboxOOMAdj is the kubelet's oom_score_adj for pause (PodInfraOOMAdj).
const defaultSandboxOOMAdj = -998

// shmSource is what the pod's /dev/shm binds: the sandbox's tmpfs, or the
// host's /dev/shm when the pod shares the host's IPC namespace.
func (s *Service) shmSource(rec *sandboxRecord) string {
	if rec.Config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetIpc() == runtimeapi.NamespaceMode_NODE {
		return "/dev/shm"
	}
	return filepath.Join(s.sandboxDir(rec.ID), "shm")
}

// withShm replaces the /dev/shm mount with a bind of src.
func withShm(mounts []specs.Mount, src string) []specs.Mount {
	out := mounts[:0:0]
	for _, m := range mounts {
		if filepath.Clean(m.Destination) == "/dev/shm" {
			continue
		}
		out = append(out, m)
	}
	return append(out, specs.Mount{Destination: "/dev/shm", Type: "bind", Source: src, Options: []string{"rbind", "rw"}})
}

// cgroupsPath is runc's cgroupfs-form cgroupsPath for id under parent.
func cgroupsPath(parent, id string) string {
	if parent == "" {
		parent = "/"
	}
	return filepath.Join("/", parent, id)
}

func readPidFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read pid file: %w", err)
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil || pid <= 0 {
		return 0, fmt.Errorf("parse pid file %s: %q", path, b)
	}
	return pid, nil
}

// removeSandboxDir unmounts the sandbox's shm and removes its directory.
func (s *Service) removeSandboxDir(id string) error {
	dir := s.sandboxDir(id)
	shm := filepath.Join(dir, "shm")
	if err := unix.Unmount(shm, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount sandbox shm: %w", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove sandbox directory: %w", err)
	}
	return nil
}
