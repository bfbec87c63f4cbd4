package criruntime_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Two containers of one pod share its network namespace: one serves HTTP,
// the other reaches it on 127.0.0.1. The pod has an IP of the test network
// and the hostname, hosts and resolv.conf of its sandbox.
func TestPodSharesNetwork(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sbc := e.sandboxConfig("web", runtimeapi.NamespaceMode_CONTAINER)
	sbc.DnsConfig = &runtimeapi.DNSConfig{Servers: []string{"10.201.0.53"}, Searches: []string{"default.svc.cluster.local"}, Options: []string{"ndots:5"}}
	sb := e.runSandbox(sbc)

	st, err := e.svc.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb})
	if err != nil {
		t.Fatal(err)
	}
	if st.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("sandbox state %v, want READY", st.Status.State)
	}
	inSubnet(t, st.Status.GetNetwork().GetIp())
	if st.Status.Labels["app"] != "web" || st.Status.Metadata.Name != "web" {
		t.Errorf("sandbox status labels/metadata: %v %v", st.Status.Labels, st.Status.Metadata)
	}

	server := e.runContainer(sb, sbc, containerConfig("server", runtimeapi.NamespaceMode_CONTAINER,
		"sh", "-c", "mkdir -p /www && echo hello from server > /www/index.html && exec httpd -f -p 8080 -h /www"))
	client := e.runContainer(sb, sbc, containerConfig("client", runtimeapi.NamespaceMode_CONTAINER, "sleep", "1000"))

	if out := e.execUntil(client, "wget", "-q", "-O", "-", "http://127.0.0.1:8080/"); out != "hello from server\n" {
		t.Errorf("client got %q from the server on 127.0.0.1", out)
	}
	if out := e.execUntil(client, "hostname"); out != "web\n" {
		t.Errorf("hostname in container: %q", out)
	}
	if out := e.execUntil(client, "cat", "/etc/resolv.conf"); !strings.Contains(out, "nameserver 10.201.0.53") || !strings.Contains(out, "search default.svc.cluster.local") || !strings.Contains(out, "options ndots:5") {
		t.Errorf("resolv.conf in container: %q", out)
	}
	if out := e.execUntil(client, "cat", "/etc/hosts"); !strings.Contains(out, st.Status.Network.Ip+"\tweb") {
		t.Errorf("hosts in container: %q", out)
	}
	if out := e.execUntil(client, "ip", "-4", "-o", "addr", "show", "eth0"); !strings.Contains(out, st.Status.Network.Ip+"/") {
		t.Errorf("eth0 of the pod: %q", out)
	}

	if st, err := e.svc.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb}); err != nil || len(st.ContainersStatuses) != 2 || st.Timestamp == 0 {
		t.Errorf("sandbox status with its containers: %v %v", st, err)
	}
	cs := e.status(server)
	if cs.State != runtimeapi.ContainerState_CONTAINER_RUNNING || cs.StartedAt == 0 || cs.CreatedAt == 0 {
		t.Errorf("server status: %v", cs)
	}
	if cs.LogPath != filepath.Join(sbc.LogDirectory, "server/0.log") {
		t.Errorf("log path %q", cs.LogPath)
	}
	if cs.ImageRef == "" || !strings.HasPrefix(cs.ImageId, "sha256:") || cs.Image.GetImage() != busybox {
		t.Errorf("image fields: %q %q %q", cs.Image.GetImage(), cs.ImageRef, cs.ImageId)
	}

	list, err := e.svc.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{LabelSelector: map[string]string{"container": "client"}}})
	if err != nil || len(list.Containers) != 1 || list.Containers[0].Id != client {
		t.Errorf("ListContainers by label: %v %v", list, err)
	}
	list, err = e.svc.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: sb, State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}})
	if err != nil || len(list.Containers) != 2 {
		t.Errorf("ListContainers by sandbox and state: %v %v", list, err)
	}

	// Pod-level resources are recorded.
	if _, err := e.svc.UpdatePodSandboxResources(ctx, &runtimeapi.UpdatePodSandboxResourcesRequest{PodSandboxId: sb,
		Resources: &runtimeapi.LinuxContainerResources{CpuShares: 300}}); err != nil {
		t.Errorf("UpdatePodSandboxResources: %v", err)
	}
	if _, err := e.svc.UpdatePodSandboxResources(ctx, &runtimeapi.UpdatePodSandboxResourcesRequest{PodSandboxId: "unknown"}); code(err) != codes.NotFound {
		t.Errorf("UpdatePodSandboxResources of an unknown sandbox: %v", err)
	}

	// A second sandbox with the same metadata is refused.
	if _, err := e.svc.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbc}); code(err) != codes.AlreadyExists {
		t.Errorf("second sandbox with the same name: %v, want AlreadyExists", err)
	}
}

// With a shared PID namespace, pause is PID 1 of the container.
func TestSharedPIDNamespace(t *testing.T) {
	e := newEnv(t)
	sbc := e.sandboxConfig("shared", runtimeapi.NamespaceMode_POD)
	sb := e.runSandbox(sbc)
	c := e.runContainer(sb, sbc, containerConfig("main", runtimeapi.NamespaceMode_POD, "sleep", "1000"))
	out := e.execUntil(c, "ps", "-o", "pid,args")
	found := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "1" && f[1] == "/pause" {
			found = true
		}
	}
	if !found {
		t.Errorf("ps in the container does not show /pause as PID 1:\n%s", out)
	}

	// Orphans that exit are reaped by pause: no zombie stays.
	e.execUntil(c, "sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do (sleep 0.01 &); done")
	e.execUntil(c, "sh", "-c", "! ps -o stat | grep -q Z")

	// With its own PID namespace, the container's process is PID 1.
	own := e.runContainer(sb, sbc, containerConfig("own", runtimeapi.NamespaceMode_CONTAINER, "sleep", "1000"))
	out = e.execUntil(own, "ps", "-o", "pid,args")
	if !strings.Contains(out, "1 sleep 1000") || strings.Contains(out, "/pause") {
		t.Errorf("ps in a container with its own PID namespace:\n%s", out)
	}
}

// Exit codes and reasons; logs go to the CRI log file.
func TestExitCodes(t *testing.T) {
	e := newEnv(t)
	sbc := e.sandboxConfig("exits", runtimeapi.NamespaceMode_POD)
	sb := e.runSandbox(sbc)
	ok := e.runContainer(sb, sbc, containerConfig("ok", runtimeapi.NamespaceMode_POD, "sh", "-c", "echo out; echo err >&2; exit 0"))
	bad := e.runContainer(sb, sbc, containerConfig("bad", runtimeapi.NamespaceMode_POD, "sh", "-c", "exit 3"))

	st := e.waitExited(ok)
	if st.ExitCode != 0 || st.Reason != "Completed" || st.FinishedAt < st.StartedAt || st.StartedAt == 0 {
		t.Errorf("exit 0: code %d reason %q started %d finished %d", st.ExitCode, st.Reason, st.StartedAt, st.FinishedAt)
	}
	st = e.waitExited(bad)
	if st.ExitCode != 3 || st.Reason != "Error" {
		t.Errorf("exit 3: code %d reason %q", st.ExitCode, st.Reason)
	}
	log, err := os.ReadFile(e.status(ok).LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), " stdout F out\n") || !strings.Contains(string(log), " stderr F err\n") {
		t.Errorf("log file:\n%s", log)
	}
	// A created container that never started is killed with its sandbox.
	e.createContainer(sb, sbc, containerConfig("never", runtimeapi.NamespaceMode_POD, "sleep", "1000"))
}

// StopContainer sends SIGTERM, then SIGKILL once the timeout has passed;
// Stop and Remove are idempotent, for unknown IDs too.
func TestStopAndIdempotence(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sbc := e.sandboxConfig("stop", runtimeapi.NamespaceMode_CONTAINER)
	sb := e.runSandbox(sbc)
	stubborn := e.runContainer(sb, sbc, containerConfig("stubborn", runtimeapi.NamespaceMode_CONTAINER,
		"sh", "-c", `trap "echo got TERM" TERM; echo ready; while true; do sleep 0.1; done`))
	polite := e.runContainer(sb, sbc, containerConfig("polite", runtimeapi.NamespaceMode_CONTAINER,
		"sh", "-c", `trap "exit 0" TERM; while true; do sleep 0.1; done`))
	e.execUntil(stubborn, "true")
	e.execUntil(polite, "true")

	if _, err := e.svc.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: stubborn, Timeout: 1}); err != nil {
		t.Fatal(err)
	}
	if st := e.status(stubborn); st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 137 {
		t.Errorf("container ignoring SIGTERM after stop: state %v exit %d", st.State, st.ExitCode)
	}
	if _, err := e.svc.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: polite, Timeout: 30}); err != nil {
		t.Fatal(err)
	}
	if st := e.status(polite); st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 0 {
		t.Errorf("container exiting on SIGTERM: state %v exit %d", st.State, st.ExitCode)
	}
	for i := 0; i < 2; i++ {
		if _, err := e.svc.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: stubborn, Timeout: 1}); err != nil {
			t.Errorf("StopContainer again: %v", err)
		}
	}
	for i := 0; i < 2; i++ {
		if _, err := e.svc.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: stubborn}); err != nil {
			t.Errorf("RemoveContainer #%d: %v", i, err)
		}
	}
	if _, err := e.svc.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: stubborn}); code(err) != codes.NotFound {
		t.Errorf("status of removed container: %v, want NotFound", err)
	}
	for i := 0; i < 2; i++ {
		if _, err := e.svc.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb}); err != nil {
			t.Errorf("StopPodSandbox #%d: %v", i, err)
		}
	}
	st, err := e.svc.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb})
	if err != nil || st.Status.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY || st.Status.Network.GetIp() != "" {
		t.Errorf("stopped sandbox status: %v %v", st, err)
	}
	list, err := e.svc.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}}})
	if err != nil || len(list.Items) != 0 {
		t.Errorf("ready sandboxes after stop: %v %v", list, err)
	}
	for i := 0; i < 2; i++ {
		if _, err := e.svc.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb}); err != nil {
			t.Errorf("RemovePodSandbox #%d: %v", i, err)
		}
	}
	if _, err := e.svc.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: "unknown"}); err != nil {
		t.Errorf("StopPodSandbox of an unknown ID: %v", err)
	}
	if _, err := e.svc.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb}); code(err) != codes.NotFound {
		t.Errorf("status of removed sandbox: %v, want NotFound", err)
	}
	e.checkClean()
}

// A restarted Service recovers running containers and records the exit of
// one that ended while no Service was running.
func TestRestartRecovers(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sbc := e.sandboxConfig("restart", runtimeapi.NamespaceMode_POD)
	sb := e.runSandbox(sbc)
	runner := e.runContainer(sb, sbc, containerConfig("runner", runtimeapi.NamespaceMode_POD, "sleep", "1000"))
	ender := e.runContainer(sb, sbc, containerConfig("ender", runtimeapi.NamespaceMode_POD,
		"sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.05; done; exit 7"))

	if err := e.svc.Close(); err != nil {
		t.Fatal(err)
	}
	e.svc = nil
	// Let "ender" exit while no Service runs; its monitor records the exit.
	if err := os.WriteFile(filepath.Join(e.dirs.Root, "containers", ender, "rootfs", "tmp", "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	exitFile := filepath.Join(e.dirs.Root, "containers", ender, "exit")
	for !fileExists(exitFile) {
		sleepBriefly()
	}
	e.start()

	if st := e.status(runner); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("running container after restart: %v", st.State)
	}
	if st := e.waitExited(ender); st.ExitCode != 7 || st.Reason != "Error" {
		t.Errorf("container that exited during the restart: exit %d reason %q", st.ExitCode, st.Reason)
	}
	sst, err := e.svc.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb})
	if err != nil || sst.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("sandbox after restart: %v %v", sst, err)
	}
	e.execUntil(runner, "true")
	// The recovered container's exit is still noticed.
	if _, err := e.svc.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: runner, Timeout: 10}); err != nil {
		t.Fatal(err)
	}
	if st := e.status(runner); st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Errorf("recovered container after stop: %v", st.State)
	}
	// A restart with everything stopped keeps the records.
	e.restart()
	if st := e.status(ender); st.ExitCode != 7 {
		t.Errorf("exit code after a second restart: %d", st.ExitCode)
	}
}

func TestExecSyncTimeout(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sbc := e.sandboxConfig("exec", runtimeapi.NamespaceMode_POD)
	sb := e.runSandbox(sbc)
	c := e.runContainer(sb, sbc, containerConfig("main", runtimeapi.NamespaceMode_POD, "sleep", "1000"))
	resp, err := e.svc.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: c, Cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 5"}})
	if err != nil || resp.ExitCode != 5 || string(resp.Stdout) != "out\n" || string(resp.Stderr) != "err\n" {
		t.Errorf("ExecSync: %v %v", resp, err)
	}
	_, err = e.svc.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: c, Cmd: []string{"sleep", "600"}, Timeout: 1})
	if code(err) != codes.DeadlineExceeded {
		t.Errorf("ExecSync past its timeout: %v, want DeadlineExceeded", err)
	}
	// The timed-out command is gone: only pause and the container's sleep remain.
	out := e.execUntil(c, "ps", "-o", "pid,args")
	if strings.Contains(out, "sleep 600") {
		t.Errorf("timed-out exec left its process:\n%s", out)
	}
	if _, err := e.svc.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: "unknown", Cmd: []string{"true"}}); code(err) != codes.NotFound {
		t.Errorf("ExecSync in unknown container: %v", err)
	}
}

func TestCreateContainerErrors(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sbc := e.sandboxConfig("errs", runtimeapi.NamespaceMode_POD)
	sb := e.runSandbox(sbc)
	c := containerConfig("noimage", runtimeapi.NamespaceMode_POD, "true")
	c.Image.Image = "docker.io/library/absent:1"
	if _, err := e.svc.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb, Config: c, SandboxConfig: sbc}); code(err) != codes.NotFound {
		t.Errorf("missing image: %v, want NotFound", err)
	}
	if _, err := e.svc.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: "unknown", Config: containerConfig("x", 0, "true"), SandboxConfig: sbc}); code(err) != codes.NotFound {
		t.Errorf("unknown sandbox: %v, want NotFound", err)
	}
	if _, err := e.svc.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{}}); code(err) != codes.InvalidArgument {
		t.Errorf("sandbox without metadata: %v, want InvalidArgument", err)
	}
	// A missing command in the image and the config is refused.
	c = containerConfig("nocmd", runtimeapi.NamespaceMode_POD)
	if _, err := e.svc.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb, Config: c, SandboxConfig: sbc}); code(err) != codes.InvalidArgument {
		t.Errorf("no command: %v, want InvalidArgument", err)
	}
	// The same container name and attempt twice is refused.
	c = containerConfig("twice", runtimeapi.NamespaceMode_POD, "sleep", "1000")
	e.createContainer(sb, sbc, c)
	if _, err := e.svc.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb, Config: c, SandboxConfig: sbc}); code(err) != codes.AlreadyExists {
		t.Errorf("same name twice: %v, want AlreadyExists", err)
	}
	e.checkCleanContainers(sb, 1)
}

// checkCleanContainers checks that exactly n containers of the sandbox exist,
// in the metadata and on disk.
func (e *env) checkCleanContainers(sb string, n int) {
	e.t.Helper()
	list, err := e.svc.ListContainers(context.Background(), &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: sb}})
	if err != nil {
		e.t.Fatal(err)
	}
	if len(list.Containers) != n {
		e.t.Errorf("%d containers, want %d", len(list.Containers), n)
	}
	entries, _ := os.ReadDir(filepath.Join(e.dirs.Root, "containers"))
	if len(entries) != n {
		e.t.Errorf("%d container directories, want %d", len(entries), n)
	}
	snaps, _ := os.ReadDir(e.dirs.Snapshots())
	if len(snaps) != n {
		e.t.Errorf("%d snapshots, want %d", len(snaps), n)
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// A container with stdin and a terminal runs; its terminal output is logged.
func TestTtyContainer(t *testing.T) {
	e := newEnv(t)
	sbc := e.sandboxConfig("tty", runtimeapi.NamespaceMode_POD)
	sb := e.runSandbox(sbc)
	c := containerConfig("tty", runtimeapi.NamespaceMode_POD, "sh", "-c", "tty; [ -t 0 ] && echo stdin-is-a-tty; exit 0")
	c.Tty, c.Stdin = true, true
	id := e.runContainer(sb, sbc, c)
	if st := e.waitExited(id); st.ExitCode != 0 {
		t.Errorf("tty container exit %d", st.ExitCode)
	}
	log, err := os.ReadFile(e.status(id).LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "/dev/pts/") || !strings.Contains(string(log), "stdin-is-a-tty") {
		t.Errorf("tty container log:\n%s", log)
	}
}

// UpdateContainerResources changes the container's cgroup; ReopenContainerLog
// makes the monitor write to a new file after the old one was moved away.
func TestUpdateResourcesAndReopenLog(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sbc := e.sandboxConfig("update", runtimeapi.NamespaceMode_POD)
	sb := e.runSandbox(sbc)
	c := containerConfig("c", runtimeapi.NamespaceMode_POD, "sh", "-c", "while true; do echo tick; sleep 0.05; done")
	c.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20, CpuShares: 512}
	id := e.runContainer(sb, sbc, c)

	memLimit := func() string {
		b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", e.cgroupParent, id, "memory.limit_in_bytes"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	if got := memLimit(); got != "67108864" {
		t.Errorf("memory limit %s, want 64 MiB", got)
	}
	if _, err := e.svc.UpdateContainerResources(ctx, &runtimeapi.UpdateContainerResourcesRequest{ContainerId: id,
		Linux: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 128 << 20, CpuShares: 256}}); err != nil {
		t.Fatal(err)
	}
	if got := memLimit(); got != "134217728" {
		t.Errorf("memory limit after update %s, want 128 MiB", got)
	}
	if r := e.status(id).GetResources().GetLinux(); r.GetMemoryLimitInBytes() != 128<<20 {
		t.Errorf("resources in status after update: %v", r)
	}

	logPath := e.status(id).LogPath
	for !fileExists(logPath) {
		sleepBriefly()
	}
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ReopenContainerLog(ctx, &runtimeapi.ReopenContainerLogRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if !fileExists(logPath) {
		t.Error("no new log file after ReopenContainerLog")
	}
}
