package criruntime_test

import (
	"context"
	"sort"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// BenchmarkPodLifecycle times RunPodSandbox, CreateContainer and
// StartContainer of a busybox sleep, then StopPodSandbox and
// RemovePodSandbox, and reports the medians (issue 4's benchmark).
func BenchmarkPodLifecycle(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	var run, create, start, stop, remove []time.Duration
	for i := 0; i < b.N; i++ {
		sbc := e.sandboxConfig("bench", runtimeapi.NamespaceMode_POD)
		t0 := time.Now()
		sb, err := e.svc.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbc})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		c, err := e.svc.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb.PodSandboxId, Config: containerConfig("c", runtimeapi.NamespaceMode_POD, "sleep", "1000"), SandboxConfig: sbc})
		if err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if _, err := e.svc.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		if _, err := e.svc.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.PodSandboxId}); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		if _, err := e.svc.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.PodSandboxId}); err != nil {
			b.Fatal(err)
		}
		t5 := time.Now()
		run, create, start, stop, remove = append(run, t1.Sub(t0)), append(create, t2.Sub(t1)), append(start, t3.Sub(t2)), append(stop, t4.Sub(t3)), append(remove, t5.Sub(t4))
	}
	median := func(d []time.Duration) float64 {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return float64(d[len(d)/2].Microseconds()) / 1000
	}
	b.ReportMetric(median(run), "ms/RunPodSandbox")
	b.ReportMetric(median(create), "ms/CreateContainer")
	b.ReportMetric(median(start), "ms/StartContainer")
	b.ReportMetric(median(stop), "ms/StopPodSandbox")
	b.ReportMetric(median(remove), "ms/RemovePodSandbox")
}
