package criruntime_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-dev/peapod/internal/criruntime"
	"github.com/peapod-dev/peapod/internal/dirs"
)

// The test binary re-runs itself as a "daemon" that runs a pod and is then
// killed with SIGKILL.
const (
	daemonRootEnv   = "CRIRUNTIME_TEST_DAEMON_ROOT"
	daemonBinEnv    = "CRIRUNTIME_TEST_DAEMON_BIN"
	daemonCgroupEnv = "CRIRUNTIME_TEST_DAEMON_CGROUP_ROOT"
)

// runTestDaemon runs a pod with a container that logs forever and one that
// exits with 7 once /tmp/go exists, prints their IDs and waits to be killed.
func runTestDaemon(root string) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "test daemon:", err); return 1 }
	d, err := dirs.New(root)
	if err != nil {
		return fail(err)
	}
	binDir = os.Getenv(daemonBinEnv)
	runc, err := exec.LookPath("runc")
	if err != nil {
		return fail(err)
	}
	cgroupRoot := os.Getenv(daemonCgroupEnv)
	cfg, err := serviceConfig(d, cgroupRoot, runc, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	svc, err := criruntime.New(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	sbc := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "killed", Namespace: "default", Uid: "uid-killed"},
		Hostname:     "killed",
		LogDirectory: filepath.Join(root, "logs", "killed"),
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent:    cgroupRoot + "/pod",
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD}},
		},
	}
	sb, err := svc.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbc})
	if err != nil {
		return fail(err)
	}
	ids := []string{sb.PodSandboxId}
	for _, c := range []*runtimeapi.ContainerConfig{
		containerConfig("runner", runtimeapi.NamespaceMode_POD, "sh", "-c", "while true; do echo tick; sleep 0.05; done"),
		containerConfig("ender", runtimeapi.NamespaceMode_POD, "sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.05; done; exit 7"),
	} {
		cr, err := svc.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb.PodSandboxId, Config: c, SandboxConfig: sbc})
		if err != nil {
			return fail(err)
		}
		if _, err := svc.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
			return fail(err)
		}
		ids = append(ids, cr.ContainerId)
	}
	fmt.Println("ids", strings.Join(ids, " "))
	select {}
}

// kill -9 of the daemon stops no container: logs keep growing, an exit
// while no daemon runs is recorded, and a new daemon recovers everything
// (the monitors are no longer its children).
func TestDaemonKilled(t *testing.T) {
	e := newEnv(t)
	if err := e.svc.Close(); err != nil { // the daemon owns runtime.db now
		t.Fatal(err)
	}
	e.svc = nil

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), daemonRootEnv+"="+e.dirs.Root, daemonBinEnv+"="+binDir, daemonCgroupEnv+"="+e.cgroupRoot)
	cmd.Stderr = testWriter{t}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("test daemon: %v", err)
	}
	f := strings.Fields(line)
	if len(f) != 4 || f[0] != "ids" {
		t.Fatalf("test daemon said %q", line)
	}
	sb, runner, ender := f[1], f[2], f[3]
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	// With no daemon: the runner's log grows, the ender's exit is recorded.
	logPath := filepath.Join(e.dirs.Root, "logs", "killed", "runner", "0.log")
	size := fileSize(logPath)
	for fileSize(logPath) <= size {
		sleepBriefly()
	}
	if err := os.WriteFile(filepath.Join(e.dirs.Root, "containers", ender, "rootfs", "tmp", "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for !fileExists(filepath.Join(e.dirs.Root, "containers", ender, "exit")) {
		sleepBriefly()
	}

	e.start()
	if st := e.status(runner); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("running container after the daemon was killed: %v", st.State)
	}
	if st := e.waitExited(ender); st.ExitCode != 7 || st.Reason != "Error" {
		t.Errorf("container that exited while no daemon ran: exit %d reason %q", st.ExitCode, st.Reason)
	}
	if st, err := e.svc.PodSandboxStatus(context.Background(), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb}); err != nil || st.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("sandbox after the daemon was killed: %v %v", st, err)
	}
	size = fileSize(logPath)
	for fileSize(logPath) <= size {
		sleepBriefly()
	}
	// The recovered container's exit is noticed by the new daemon.
	if _, err := e.svc.StopContainer(context.Background(), &runtimeapi.StopContainerRequest{ContainerId: runner, Timeout: 5}); err != nil {
		t.Fatal(err)
	}
	if st := e.status(runner); st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Errorf("recovered container after stop: %v", st.State)
	}
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return -1
	}
	return fi.Size()
}
