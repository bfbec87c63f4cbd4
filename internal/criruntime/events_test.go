package criruntime_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-dev/peapod/internal/cri/inproc"
)

// GetContainerEvents reports a container's lifecycle with its sandbox's
// status, through the in-process adapter the pod manager uses.
func TestContainerEvents(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	rs := inproc.NewRuntimeService(e.svc)
	ch := make(chan *runtimeapi.ContainerEventResponse, 100)
	done := make(chan error, 1)
	connected := make(chan struct{})
	go func() {
		done <- rs.GetContainerEvents(ctx, ch, func(runtimeapi.RuntimeService_GetContainerEventsClient) { close(connected) })
	}()
	<-connected

	sbc := e.sandboxConfig("events", runtimeapi.NamespaceMode_POD)
	sb, err := rs.RunPodSandbox(ctx, sbc, "")
	if err != nil {
		t.Fatal(err)
	}
	c := e.runContainer(sb, sbc, containerConfig("c", runtimeapi.NamespaceMode_POD, "sh", "-c", "exit 0"))
	e.waitExited(c)
	if err := rs.RemoveContainer(ctx, c); err != nil {
		t.Fatal(err)
	}
	want := []runtimeapi.ContainerEventType{
		runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT,
		runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT,
		runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT,
		runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT,
	}
	var got []runtimeapi.ContainerEventType
	for len(got) < len(want) {
		ev := <-ch
		if ev.ContainerId != c {
			continue // the sandbox's own events
		}
		if ev.PodSandboxStatus.GetId() != sb {
			t.Errorf("event %v carries sandbox status %v", ev.ContainerEventType, ev.PodSandboxStatus)
		}
		got = append(got, ev.ContainerEventType)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("events %v, want %v", got, want)
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("GetContainerEvents: %v", err)
	}
}

// A pause process killed from outside makes its sandbox NOTREADY with a
// STOPPED event.
func TestPauseKilled(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rs := inproc.NewRuntimeService(e.svc)
	ch := make(chan *runtimeapi.ContainerEventResponse, 100)
	connected := make(chan struct{})
	go rs.GetContainerEvents(ctx, ch, func(runtimeapi.RuntimeService_GetContainerEventsClient) { close(connected) })
	<-connected

	sbc := e.sandboxConfig("killpause", runtimeapi.NamespaceMode_POD)
	sb := e.runSandbox(sbc)
	st, err := e.svc.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ Pid int }
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil || info.Pid <= 0 {
		t.Fatalf("verbose sandbox status: %v %v", st.Info, err)
	}
	if err := syscall.Kill(info.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for ev := range ch {
		if ev.ContainerId == sb && ev.ContainerEventType == runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT {
			if ev.PodSandboxStatus.GetState() != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
				t.Errorf("sandbox state in the STOPPED event: %v", ev.PodSandboxStatus.GetState())
			}
			break
		}
	}
	// What pause wrote is kept to say why it ended.
	out, err := os.ReadFile(filepath.Join(e.dirs.Root, "sandboxes", sb, "pause.log"))
	if err != nil || string(out) != "Shutting down, got signal: Terminated\n" {
		t.Errorf("pause's output: %q, %v", out, err)
	}
}
