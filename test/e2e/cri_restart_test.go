package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-dev/peapod/internal/dirs"
)

// criClient is a CRI v1 client on the daemon's socket, as crictl or a
// kubelet would use it.
type criClient struct {
	runtimeapi.RuntimeServiceClient
	conn *grpc.ClientConn
}

func (d *daemon) cri() *criClient {
	d.t.Helper()
	ds, err := dirs.New(d.root)
	if err != nil {
		d.t.Fatal(err)
	}
	conn, err := grpc.NewClient("unix://"+ds.CRISocket(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		d.t.Fatalf("dial CRI socket: %v", err)
	}
	d.t.Cleanup(func() { conn.Close() })
	return &criClient{RuntimeServiceClient: runtimeapi.NewRuntimeServiceClient(conn), conn: conn}
}

func criCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// criPod runs a sandbox for the test through the CRI socket.
func criPod(t *testing.T, c *criClient, d *daemon, name string) (string, *runtimeapi.PodSandboxConfig) {
	t.Helper()
	sbc := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "e2e", Uid: "uid-" + name},
		Hostname:     name,
		LogDirectory: filepath.Join(d.root, "crilogs", name),
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD},
			},
		},
	}
	resp, err := c.RunPodSandbox(criCtx(t), &runtimeapi.RunPodSandboxRequest{Config: sbc})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	return resp.PodSandboxId, sbc
}

// criContainer creates and starts a busybox container in the sandbox.
func criContainer(t *testing.T, c *criClient, sb string, sbc *runtimeapi.PodSandboxConfig, name string, mod func(*runtimeapi.ContainerConfig), args ...string) string {
	t.Helper()
	cc := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: "busybox"},
		Command:  args,
		LogPath:  name + ".log",
		Linux: &runtimeapi.LinuxContainerConfig{
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD},
			},
		},
	}
	if mod != nil {
		mod(cc)
	}
	cr, err := c.CreateContainer(criCtx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: sb, Config: cc, SandboxConfig: sbc})
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", name, err)
	}
	if _, err := c.StartContainer(criCtx(t), &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		t.Fatalf("StartContainer %s: %v", name, err)
	}
	return cr.ContainerId
}

func criStatus(t *testing.T, c *criClient, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	resp, err := c.ContainerStatus(criCtx(t), &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("ContainerStatus %s: %v", id, err)
	}
	return resp.Status
}

// criWaitExited polls until the container has exited; the bound only keeps
// a broken runtime from hanging the test.
func criWaitExited(t *testing.T, c *criClient, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if st := criStatus(t, c, id); st.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			return st
		}
	}
	t.Fatalf("container %s did not exit", id)
	return nil
}

// criRemovePod stops and removes a sandbox with all its containers.
func criRemovePod(t *testing.T, c *criClient, sb string) {
	t.Helper()
	if _, err := c.StopPodSandbox(criCtx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Errorf("StopPodSandbox: %v", err)
	}
	if _, err := c.RemovePodSandbox(criCtx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Errorf("RemovePodSandbox: %v", err)
	}
}

func logSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return fi.Size()
}

// waitGrows polls until the file is larger than it was; a liveness bound.
func waitGrows(t *testing.T, path, when string) {
	t.Helper()
	before := logSize(path)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if logSize(path) > before {
			return
		}
	}
	t.Fatalf("log %s did not grow %s (size %d)", path, when, before)
}

// memoryHog is a container that, once /tmp/go exists, fills memory past its
// 32 MiB limit (busybox tail keeps a line that never ends).
func memoryHog(cc *runtimeapi.ContainerConfig) {
	cc.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 32 << 20}
}

const waitForGo = "while [ ! -e /tmp/go ]; do sleep 0.05; done; "

// The daemon can be stopped (SIGTERM) or killed (SIGKILL) with containers
// running: they keep running and logging while it is down, a container that
// exits meanwhile — with a code, or killed by the OOM killer — is reported
// with that code and reason once it is back, and everything is removed
// cleanly afterwards.
func TestCRISurvivesDaemon(t *testing.T) {
	for _, tc := range []struct {
		name string
		down func(d *daemon)
	}{
		{"SIGTERM", func(d *daemon) { d.stop() }},
		{"SIGKILL", func(d *daemon) {
			d.cmd.Process.Signal(syscall.SIGKILL)
			<-d.done
			d.cmd = nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := startDaemon(t)
			d.importBusybox()
			c := d.cri()
			sb, sbc := criPod(t, c, d, "survive-"+strings.ToLower(tc.name))
			runner := criContainer(t, c, sb, sbc, "runner", nil, "sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done")
			ender := criContainer(t, c, sb, sbc, "ender", nil, "sh", "-c", waitForGo+"exit 7")
			hog := criContainer(t, c, sb, sbc, "hog", memoryHog, "sh", "-c", waitForGo+"tail /dev/zero")
			runnerLog := criStatus(t, c, runner).LogPath
			waitGrows(t, runnerLog, "before the daemon stops")
			runnerPid := containerPid(t, d, runner)

			tc.down(d)
			c.conn.Close()
			if !processAlive(runnerPid) {
				t.Fatalf("the running container's process %d ended with the daemon", runnerPid)
			}
			waitGrows(t, runnerLog, "while the daemon is down")
			for _, id := range []string{ender, hog} {
				if err := os.WriteFile(filepath.Join(d.root, "containers", id, "rootfs", "tmp", "go"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for _, id := range []string{ender, hog} {
				exitFile := filepath.Join(d.root, "containers", id, "exit")
				for deadline := time.Now().Add(time.Minute); logSize(exitFile) < 0; time.Sleep(50 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("container %s did not exit while the daemon was down", id)
					}
				}
			}

			d.start()
			c = d.cri()
			if st := criStatus(t, c, runner); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
				t.Errorf("runner after restart: %v, want running", st.State)
			}
			if containerPid(t, d, runner) != runnerPid {
				t.Errorf("runner's process changed across the restart")
			}
			waitGrows(t, runnerLog, "after the daemon is back")
			if st := criStatus(t, c, ender); st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 7 || st.Reason != "Error" {
				t.Errorf("ender after restart: state %v exit %d reason %q, want exited 7 Error", st.State, st.ExitCode, st.Reason)
			}
			if st := criStatus(t, c, hog); st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 137 || st.Reason != "OOMKilled" {
				t.Errorf("hog after restart: state %v exit %d reason %q, want exited 137 OOMKilled", st.State, st.ExitCode, st.Reason)
			}
			pods, err := c.ListPodSandbox(criCtx(t), &runtimeapi.ListPodSandboxRequest{})
			if err != nil {
				t.Fatalf("ListPodSandbox: %v", err)
			}
			if len(pods.Items) != 1 || pods.Items[0].Id != sb || pods.Items[0].State != runtimeapi.PodSandboxState_SANDBOX_READY {
				t.Errorf("sandboxes after restart: %v, want %s ready", pods.Items, sb)
			}
			// The recovered runtime still drives the running container.
			if _, err := c.StopContainer(criCtx(t), &runtimeapi.StopContainerRequest{ContainerId: runner, Timeout: 10}); err != nil {
				t.Errorf("StopContainer after restart: %v", err)
			}
			if st := criStatus(t, c, runner); st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
				t.Errorf("runner after StopContainer: %v", st.State)
			}
			criRemovePod(t, c, sb)
			d.assertNoLeaks()
		})
	}
}

// A container over its memory limit is reported OOMKilled with exit 137
// through the socket, and its pod is removed without leaks.
func TestCRIOOMKilled(t *testing.T) {
	d := startDaemon(t)
	d.importBusybox()
	c := d.cri()
	sb, sbc := criPod(t, c, d, "oom")
	hog := criContainer(t, c, sb, sbc, "hog", memoryHog, "tail", "/dev/zero")
	if st := criWaitExited(t, c, hog); st.ExitCode != 137 || st.Reason != "OOMKilled" {
		t.Errorf("container over its memory limit: exit %d reason %q, want 137 OOMKilled", st.ExitCode, st.Reason)
	}
	criRemovePod(t, c, sb)
	d.assertNoLeaks()
}

// containerPid is the container's process as runc knows it.
func containerPid(t *testing.T, d *daemon, id string) int {
	t.Helper()
	ds, err := dirs.New(d.root)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(ds.RuncRoot(), id, "state.json"))
	if err != nil {
		t.Fatalf("runc state of %s: %v", id, err)
	}
	var st struct {
		Pid int `json:"init_process_pid"`
	}
	if err := json.Unmarshal(b, &st); err != nil || st.Pid <= 0 {
		t.Fatalf("runc state of %s: pid %d: %v", id, st.Pid, err)
	}
	return st.Pid
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z'
}
