package podmanager

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilexec "k8s.io/utils/exec"
	"k8s.io/utils/ptr"
)

func exitErr(code int) error {
	return utilexec.CodeExitError{Err: errors.New("exit " + strconv.Itoa(code)), Code: code}
}

func TestLivenessProbeFailureRestartsContainer(t *testing.T) {
	pod := testPod("live", func(p *corev1.Pod) {
		p.Spec.Containers[0].LivenessProbe = &corev1.Probe{
			ProbeHandler:                  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/healthy"}}},
			FailureThreshold:              2,
			TerminationGracePeriodSeconds: ptr.To(int64(5)),
		}
	})
	env := newTestEnv(t, pod)
	ctx := context.Background()
	env.sync(t, pod.UID)
	w := env.m.probes.worker(pod.UID, "app", liveness)
	if w == nil {
		t.Fatal("no liveness worker")
	}
	if !w.doProbe(ctx) {
		t.Fatal("worker ended")
	}
	first := env.containers("app")[0].Id
	if r, _ := env.m.probes.get(liveness, first); r != resultSuccess {
		t.Fatalf("liveness %v after success", r)
	}
	env.rt.InjectError("ExecSync", exitErr(1))
	w.doProbe(ctx)
	if r, _ := env.m.probes.get(liveness, first); r != resultSuccess {
		t.Fatalf("one failure below the threshold changed the result to %v", r)
	}
	env.rt.InjectError("ExecSync", exitErr(1))
	w.doProbe(ctx)
	if r, _ := env.m.probes.get(liveness, first); r != resultFailure {
		t.Fatalf("liveness %v after two failures", r)
	}
	// On hold until a new container shows up.
	calls := env.called("ExecSync")
	w.doProbe(ctx)
	if env.called("ExecSync") != calls {
		t.Fatal("probed a container that failed its liveness probe")
	}

	env.sync(t, pod.UID)
	if env.rt.stops["app"] != 5 {
		t.Fatalf("stop timeout %d, want the probe's 5 s", env.rt.stops["app"])
	}
	cs := env.store.pod(pod.UID).Status.ContainerStatuses[0]
	if cs.RestartCount != 1 || cs.State.Running == nil {
		t.Fatalf("after liveness failure %+v", cs)
	}
	if !containsEvent(env, "Normal Killing Container app failed liveness probe, will be restarted") ||
		!containsEvent(env, "Warning Unhealthy Liveness probe failed: ") {
		t.Fatalf("events %v", env.store.eventList())
	}
	// The new container is probed again.
	w.doProbe(ctx)
	if env.called("ExecSync") != calls+1 {
		t.Fatal("new container not probed")
	}
}

func TestReadinessProbeDrivesReady(t *testing.T) {
	healthy := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.UserAgent() != probeUserAgent || r.Header.Get("X-Check") != "1" || r.URL.Path != "/ready" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if !healthy {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	port, _ := strconv.Atoi(u.Port())
	pod := testPod("ready", func(p *corev1.Pod) {
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}
		p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Host: "127.0.0.1", Path: "ready", Port: intstr.FromString("http"), HTTPHeaders: []corev1.HTTPHeader{{Name: "X-Check", Value: "1"}},
		}}}
	})
	env := newTestEnv(t, pod)
	ctx := context.Background()
	env.sync(t, pod.UID)
	st := env.store.pod(pod.UID).Status
	if st.ContainerStatuses[0].Ready || condition(st, corev1.PodReady).Status != corev1.ConditionFalse {
		t.Fatalf("ready before the readiness probe ran: %+v", st)
	}
	w := env.m.probes.worker(pod.UID, "app", readiness)
	w.doProbe(ctx) // sees the container: initial Failure
	w.doProbe(ctx)
	env.sync(t, pod.UID)
	st = env.store.pod(pod.UID).Status
	if !st.ContainerStatuses[0].Ready || condition(st, corev1.PodReady).Status != corev1.ConditionTrue {
		t.Fatalf("not ready after a successful probe: %+v", st.ContainerStatuses[0])
	}
	healthy = false
	for i := 0; i < 3; i++ {
		w.doProbe(ctx)
	}
	env.sync(t, pod.UID)
	st = env.store.pod(pod.UID).Status
	if st.ContainerStatuses[0].Ready || condition(st, corev1.ContainersReady).Status != corev1.ConditionFalse {
		t.Fatalf("still ready after 3 failures: %+v", st.ContainerStatuses[0])
	}
	if !containsEventPrefix(env, "Warning Unhealthy Readiness probe failed: HTTP probe failed with statuscode: 503") {
		t.Fatalf("events %v", env.store.eventList())
	}
}

func containsEventPrefix(env *testEnv, p string) bool {
	for _, e := range env.store.eventList() {
		if strings.HasPrefix(e, p) {
			return true
		}
	}
	return false
}

func TestStartupProbeGatesLiveness(t *testing.T) {
	pod := testPod("startup", func(p *corev1.Pod) {
		p.Spec.Containers[0].StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
		p.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"live"}}}}
	})
	env := newTestEnv(t, pod)
	ctx := context.Background()
	env.sync(t, pod.UID)
	if cs := env.store.pod(pod.UID).Status.ContainerStatuses[0]; *cs.Started || cs.Ready {
		t.Fatalf("started before the startup probe: %+v", cs)
	}
	live := env.m.probes.worker(pod.UID, "app", liveness)
	live.doProbe(ctx)
	if n := env.called("ExecSync"); n != 0 {
		t.Fatalf("liveness probed before startup succeeded (%d execs)", n)
	}
	su := env.m.probes.worker(pod.UID, "app", startup)
	su.doProbe(ctx)
	env.sync(t, pod.UID)
	if cs := env.store.pod(pod.UID).Status.ContainerStatuses[0]; !*cs.Started || !cs.Ready {
		t.Fatalf("not started/ready after the startup probe: %+v", cs)
	}
	live.doProbe(ctx)
	if n := env.called("ExecSync"); n != 2 {
		t.Fatalf("%d execs, want the startup and the liveness probe", n)
	}
	su.doProbe(ctx) // startup probing stops once started
	if n := env.called("ExecSync"); n != 2 {
		t.Fatalf("startup probed after start")
	}
}

func TestProbeHandlers(t *testing.T) {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if o, _, _ := tcpProbe(ctx, addr, time.Second); o != outcomeSuccess {
		t.Fatalf("tcp probe of a listener: %v", o)
	}
	ln.Close()
	if o, _, _ := tcpProbe(ctx, addr, time.Second); o != outcomeFailure {
		t.Fatalf("tcp probe of a closed port: %v", o)
	}

	gs := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(gl)
	defer gs.Stop()
	if o, out, _ := grpcProbe(ctx, gl.Addr().String(), "", time.Second); o != outcomeSuccess {
		t.Fatalf("grpc probe: %v %s", o, out)
	}
	hs.SetServingStatus("db", healthpb.HealthCheckResponse_NOT_SERVING)
	if o, out, _ := grpcProbe(ctx, gl.Addr().String(), "db", time.Second); o != outcomeFailure || !strings.Contains(out, "NOT_SERVING") {
		t.Fatalf("grpc probe of a not serving service: %v %s", o, out)
	}

	// Redirects: same host followed, another host is a warning.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("elsewhere")) }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/same":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/other":
			http.Redirect(w, r, strings.Replace(other.URL, "127.0.0.1", "localhost", 1)+"/", http.StatusFound)
		case "/ok":
			w.Write([]byte("fine"))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	for path, want := range map[string]probeOutcome{"/same": outcomeSuccess, "/other": outcomeWarning, "/missing": outcomeFailure} {
		u, _ := url.Parse(srv.URL + path)
		if o, out, _ := httpProbe(ctx, u, http.Header{}, time.Second); o != want {
			t.Errorf("http probe %s: %v (%s), want %v", path, o, out, want)
		}
	}

	if _, err := resolvePort(intstr.FromString("nope"), &corev1.Container{Name: "c"}); err == nil {
		t.Fatal("unknown named port resolved")
	}
}

func TestExecProbeTimeoutFails(t *testing.T) {
	env := newTestEnv(t)
	env.rt.InjectError("ExecSync", context.DeadlineExceeded)
	o, out, err := env.m.execProbe(context.Background(), "id", []string{"sleep", "10"}, time.Second)
	if o != outcomeFailure || err != nil || out != `command "sleep 10" timed out` {
		t.Fatalf("%v %q %v", o, out, err)
	}
}

func TestProbeTicks(t *testing.T) {
	// A tick at t0, phase 300 ms into each second.
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 300_000_000, time.UTC)
	for _, c := range []struct {
		took time.Duration // how long the probe after the tick at t0 took
		want time.Duration // the next tick, after t0
	}{
		{0, time.Second},
		{300 * time.Millisecond, time.Second}, // not 1.3 s
		{time.Second - time.Nanosecond, time.Second},
		{time.Second, 2 * time.Second}, // the tick at 1 s is dropped
		{2500 * time.Millisecond, 3 * time.Second},
		{-250 * time.Millisecond, 0}, // a worker starting between ticks
	} {
		now := t0.Add(c.took)
		if got := now.Add(untilTick(now, time.Second, 300*time.Millisecond)).Sub(t0); got != c.want {
			t.Errorf("probe took %v: next tick at +%v, want +%v", c.took, got, c.want)
		}
	}
}

func TestProbePhases(t *testing.T) {
	pod := testPod("phases")
	seen := map[time.Duration]bool{}
	for i := range 100 {
		c := corev1.Container{Name: "c" + strconv.Itoa(i)}
		ph := newProbeWorker(nil, readiness, pod, &c, &corev1.Probe{}).phase(10 * time.Second)
		if ph < 0 || ph >= 10*time.Second || ph%probeGrid != 0 {
			t.Fatalf("phase %v of a 10 s period: not a multiple of %v within it", ph, probeGrid)
		}
		seen[ph] = true
	}
	// 100 workers on 100 slots: spread, not bunched (the hash is fixed, so is the count).
	if len(seen) < 50 {
		t.Fatalf("100 workers share only %d phases", len(seen))
	}
}

func TestHTTPProbeRequests(t *testing.T) {
	ctx := context.Background()
	type seen struct {
		host, agent, encoding string
		close                 bool
	}
	got := make(chan seen, 1)
	big := strings.Repeat("x", 3*maxProbeBody)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Host, r.UserAgent(), r.Header.Get("Accept-Encoding"), r.Close}
		w.Write([]byte(big)) // chunked: no Content-Length
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL + "/big")
	o, out, err := httpProbe(ctx, u, http.Header{"Host": {"example.test"}}, time.Second)
	if o != outcomeSuccess || err != nil || len(out) != maxProbeBody {
		t.Fatalf("http probe: %v, %d bytes of output, %v", o, len(out), err)
	}
	if s := <-got; s != (seen{"example.test", probeUserAgent, "", true}) {
		t.Fatalf("request as the server saw it: %+v", s)
	}

	// https, the certificate unverified.
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer tlsSrv.Close()
	u, _ = url.Parse(tlsSrv.URL)
	if o, out, err := httpProbe(ctx, u, http.Header{}, time.Second); o != outcomeSuccess || err != nil {
		t.Fatalf("https probe: %v %q %v", o, out, err)
	}

	// A server that does not answer within the timeout fails the probe.
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	defer slow.Close()
	defer close(hang)
	u, _ = url.Parse(slow.URL)
	o, out, err = httpProbe(ctx, u, http.Header{}, 100*time.Millisecond)
	if o != outcomeFailure || err != nil || !strings.Contains(out, "Client.Timeout exceeded") {
		t.Fatalf("probe of a server that does not answer: %v %q %v", o, out, err)
	}
}
