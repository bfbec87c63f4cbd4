package criruntime_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-dev/peapod/internal/cgroups"
	"github.com/peapod-dev/peapod/internal/criruntime"
	"github.com/peapod-dev/peapod/internal/dirs"
	"github.com/peapod-dev/peapod/internal/image"
	"github.com/peapod-dev/peapod/internal/network"
	"github.com/peapod-dev/peapod/internal/oci"
	"github.com/peapod-dev/peapod/internal/snapshot"
	"github.com/peapod-dev/peapod/internal/testimage"
)

// The tests run the real parts as root: runc, overlayfs, the CNI plugins of
// /usr/lib/cni on a test bridge, cgroups.
const (
	testBridge = "pprt0"
	testSubnet = "10.201.0.0/24"
	busybox    = "docker.io/library/busybox:latest"
)

var (
	binDir        string // peapod-pause and peapod-monitor built for the tests
	buildErr      error
	cniPluginDirs = []string{"/usr/lib/cni"}
)

func TestMain(m *testing.M) {
	if root := os.Getenv(daemonRootEnv); root != "" {
		os.Exit(runTestDaemon(root))
	}
	if os.Geteuid() == 0 {
		binDir, buildErr = buildBinaries()
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	if os.Geteuid() == 0 {
		// The bridge plugin leaves the test bridge, and the network its
		// node-wide masquerade chain; nothing else may be left.
		_ = exec.Command("ip", "link", "del", testBridge).Run()
		removeNodeMasquerade(testBridge, testSubnet)
	}
	os.Exit(code)
}

// removeNodeMasquerade removes the masquerade chain internal/network makes
// for the default network's bridge and subnet (in real use it stays, as the
// bridge does).
func removeNodeMasquerade(bridge, subnet string) {
	chain := "PEAPOD-MASQ-" + bridge
	_ = exec.Command("iptables", "-w", "-t", "nat", "-D", "POSTROUTING", "-s", subnet, "-m", "comment",
		"--comment", "peapod: masquerade the pods of "+bridge, "-j", chain).Run()
	_ = exec.Command("iptables", "-w", "-t", "nat", "-F", chain).Run()
	_ = exec.Command("iptables", "-w", "-t", "nat", "-X", chain).Run()
}

func buildBinaries() (string, error) {
	dir, err := os.MkdirTemp("", "criruntime-test-bin-")
	if err != nil {
		return "", err
	}
	if out, err := exec.Command("bash", "../../scripts/build.sh", dir).CombinedOutput(); err != nil {
		return dir, fmt.Errorf("build the helper binaries: %v\n%s", err, out)
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "./testdata/sysprobe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return dir, fmt.Errorf("build sysprobe: %v\n%s", err, out)
	}
	return dir, nil
}

// env is one runtime on a temporary root.
type env struct {
	t            testing.TB
	dirs         dirs.Dirs
	cfg          criruntime.Config
	svc          *criruntime.Service
	cgroupRoot   string // the cgroups.Manager's root
	cgroupParent string // the test pods' cgroup, below the root
	ipamDir      string
}

type envOption func(*env)

// withRunc replaces the runc binary (failure injection).
func withRunc(path string) envOption { return func(e *env) { e.cfg.Runc.Binary = path } }

// withPluginDirs replaces the CNI plugin directories (failure injection).
func withPluginDirs(d ...string) envOption {
	return func(e *env) {
		n, err := network.New(network.Config{PluginDirs: d, ConfDir: e.t.TempDir(), CacheDir: filepath.Join(e.dirs.Root, "cni", "cache"), IPAMDir: e.ipamDir, Bridge: testBridge, Subnet: testSubnet})
		if err != nil {
			e.t.Fatal(err)
		}
		e.cfg.Network = n
	}
}

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	testimage.RequireRoot(t)
	runc := testimage.RequireBinary(t, "runc", "runc")
	testimage.RequireBinary(t, "ip", "iproute2")
	for _, p := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if _, err := os.Stat(filepath.Join(cniPluginDirs[0], p)); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("CNI plugin %s missing (apt-get install containernetworking-plugins): %v", p, err)
			}
			t.Skipf("CNI plugin %s missing (apt-get install containernetworking-plugins): %v", p, err)
		}
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	root := t.TempDir()
	d, err := dirs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dirs: d, ipamDir: filepath.Join(root, "cni", "ipam")}
	e.cgroupRoot = "/peapod-test-" + filepath.Base(root)
	e.cgroupParent = e.cgroupRoot + "/pod"
	e.cfg, err = serviceConfig(d, e.cgroupRoot, runc, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.cfg.Images.Import(context.Background(), bytes.NewReader(busyboxRootfs(t)), busybox); err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		o(e)
	}
	t.Cleanup(e.cleanup)
	e.start()
	return e
}

// serviceConfig wires a runtime on the directories d, as the daemon does.
func serviceConfig(d dirs.Dirs, cgroupRoot, runc string, log *slog.Logger) (criruntime.Config, error) {
	cg, err := cgroups.New(cgroupRoot)
	if err != nil {
		return criruntime.Config{}, err
	}
	imgs, err := image.Open(d.Images())
	if err != nil {
		return criruntime.Config{}, err
	}
	net, err := network.New(network.Config{PluginDirs: cniPluginDirs, ConfDir: d.CNIConf(), CacheDir: d.CNICache(), IPAMDir: d.CNIIPAM(), Bridge: testBridge, Subnet: testSubnet})
	if err != nil {
		return criruntime.Config{}, err
	}
	return criruntime.Config{
		Root:          d.Root,
		RunDir:        d.Run,
		Runc:          &oci.Runc{Binary: runc, Root: d.RuncRoot()},
		MonitorBinary: filepath.Join(binDir, "peapod-monitor"),
		PauseBinary:   filepath.Join(binDir, "peapod-pause"),
		EnterBinary:   filepath.Join(binDir, "peapod-enter"),
		Images:        imgs,
		Snapshots:     snapshot.New(d.Snapshots()),
		Network:       net,
		Cgroups:       cg,
		Logger:        log,
	}, nil
}

func (e *env) start() {
	e.t.Helper()
	svc, err := criruntime.New(context.Background(), e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.svc = svc
}

// restart closes the Service and opens a new one on the same root, as a
// daemon restart does.
func (e *env) restart() {
	e.t.Helper()
	if err := e.svc.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.svc = nil
	e.start()
}

// cleanup removes every sandbox, closes the Service and checks that
// nothing is left.
func (e *env) cleanup() {
	t := e.t
	ctx := context.Background()
	if e.svc != nil {
		resp, err := e.svc.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
		if err != nil {
			t.Errorf("cleanup: list sandboxes: %v", err)
		}
		for _, sb := range resp.GetItems() {
			if _, err := e.svc.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
				t.Errorf("cleanup: remove sandbox: %v", err)
			}
		}
		if err := e.svc.Close(); err != nil {
			t.Errorf("cleanup: close: %v", err)
		}
	}
	e.checkClean()
	// netns.New makes the pin directory a shared mount of its own.
	_ = unix.Unmount(e.dirs.Netns(), unix.MNT_DETACH)
	os.RemoveAll(e.dirs.Run)
	for _, c := range []string{"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd"} {
		_ = os.Remove(filepath.Join("/sys/fs/cgroup", c, e.cgroupParent))
		_ = os.Remove(filepath.Join("/sys/fs/cgroup", c, e.cgroupRoot))
	}
}

var ipFile = regexp.MustCompile(`^\d+\.\d+\.\d+\.\d+$`)

// checkClean fails the test if anything of the runtime is left: runc
// containers, processes, mounts, network namespaces, veths on the test
// bridge, IP leases, cgroups.
func (e *env) checkClean() {
	t := e.t
	t.Helper()
	if out, err := exec.Command(e.cfg.Runc.Binary, "--root", e.cfg.Runc.Root, "list", "-q").CombinedOutput(); err == nil && len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("runc containers left: %s", out)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte(e.dirs.Root)) {
			t.Errorf("process left: %s: %s", p, bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mi), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (strings.HasPrefix(f[4], e.dirs.Root) || strings.HasPrefix(f[4], e.dirs.Netns()+"/")) {
			t.Errorf("mount left: %s", f[4])
		}
	}
	if pins, _ := os.ReadDir(e.dirs.Netns()); len(pins) > 0 {
		t.Errorf("network namespace pins left: %v", pins)
	}
	_ = filepath.WalkDir(e.ipamDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && ipFile.MatchString(d.Name()) {
			t.Errorf("IP lease left: %s", p)
		}
		return nil
	})
	if out, err := exec.Command("ip", "-o", "link", "show", "master", testBridge).CombinedOutput(); err == nil && len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("veths left on %s: %s", testBridge, out)
	}
	for _, c := range []string{"memory", "cpu", "pids"} {
		entries, _ := os.ReadDir(filepath.Join("/sys/fs/cgroup", c, e.cgroupParent))
		for _, en := range entries {
			if en.IsDir() {
				t.Errorf("cgroup left: %s/%s/%s", c, e.cgroupParent, en.Name())
			}
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(e.dirs.Root, "sandboxes")); len(entries) > 0 {
		t.Errorf("sandbox directories left: %v", entries)
	}
	if entries, _ := os.ReadDir(filepath.Join(e.dirs.Root, "containers")); len(entries) > 0 {
		t.Errorf("container directories left: %v", entries)
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

var podCount int

// sandboxConfig is a pod's sandbox config; pid is the PID namespace mode.
func (e *env) sandboxConfig(name string, pid runtimeapi.NamespaceMode) *runtimeapi.PodSandboxConfig {
	podCount++
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "default", Uid: fmt.Sprintf("uid-%s-%d", name, podCount)},
		Hostname:     name,
		LogDirectory: filepath.Join(e.dirs.Root, "logs", name),
		Labels:       map[string]string{"app": name},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: e.cgroupParent,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Pid: pid},
			},
		},
	}
}

func (e *env) runSandbox(c *runtimeapi.PodSandboxConfig) string {
	e.t.Helper()
	resp, err := e.svc.RunPodSandbox(context.Background(), &runtimeapi.RunPodSandboxRequest{Config: c})
	if err != nil {
		e.t.Fatalf("RunPodSandbox: %v", err)
	}
	return resp.PodSandboxId
}

func containerConfig(name string, pid runtimeapi.NamespaceMode, args ...string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: "busybox"},
		Command:  args,
		LogPath:  name + "/0.log",
		Labels:   map[string]string{"container": name},
		Linux: &runtimeapi.LinuxContainerConfig{
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Pid: pid},
			},
		},
	}
}

// runContainer creates and starts a container.
func (e *env) runContainer(sandboxID string, sb *runtimeapi.PodSandboxConfig, c *runtimeapi.ContainerConfig) string {
	e.t.Helper()
	id := e.createContainer(sandboxID, sb, c)
	if _, err := e.svc.StartContainer(context.Background(), &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		e.t.Fatalf("StartContainer %s: %v", c.Metadata.Name, err)
	}
	return id
}

func (e *env) createContainer(sandboxID string, sb *runtimeapi.PodSandboxConfig, c *runtimeapi.ContainerConfig) string {
	e.t.Helper()
	resp, err := e.svc.CreateContainer(context.Background(), &runtimeapi.CreateContainerRequest{PodSandboxId: sandboxID, Config: c, SandboxConfig: sb})
	if err != nil {
		e.t.Fatalf("CreateContainer %s: %v", c.Metadata.Name, err)
	}
	return resp.ContainerId
}

func (e *env) status(id string) *runtimeapi.ContainerStatus {
	e.t.Helper()
	resp, err := e.svc.ContainerStatus(context.Background(), &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		e.t.Fatalf("ContainerStatus: %v", err)
	}
	return resp.Status
}

// waitExited polls until the container has exited. The deadline only keeps
// a broken runtime from hanging the test; nothing is asserted about time.
func (e *env) waitExited(id string) *runtimeapi.ContainerStatus {
	e.t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if st := e.status(id); st.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			return st
		}
	}
	e.t.Fatalf("container %s did not exit", id)
	return nil
}

// execUntil runs cmd in the container until it exits 0 (a server in
// another container may still be starting) and returns its output.
func (e *env) execUntil(id string, cmd ...string) string {
	e.t.Helper()
	var last *runtimeapi.ExecSyncResponse
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := e.svc.ExecSync(context.Background(), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 10})
		if err != nil {
			e.t.Fatalf("ExecSync %q: %v", cmd, err)
		}
		if resp.ExitCode == 0 {
			return string(resp.Stdout)
		}
		last = resp
	}
	e.t.Fatalf("ExecSync %q never succeeded: exit %d, stdout %q, stderr %q", cmd, last.ExitCode, last.Stdout, last.Stderr)
	return ""
}

func code(err error) codes.Code { return status.Code(err) }

func inSubnet(t *testing.T, ip string) {
	t.Helper()
	_, n, _ := net.ParseCIDR(testSubnet)
	if p := net.ParseIP(ip); p == nil || !n.Contains(p) {
		t.Errorf("pod IP %q is not in %s", ip, testSubnet)
	}
}

func lookRunc() (string, error) { return exec.LookPath("runc") }
