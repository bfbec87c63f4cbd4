package criruntime_test

import (
	"context"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A container over its memory limit is reported OOMKilled with exit 137.
func TestOOMKilled(t *testing.T) {
	e := newEnv(t)
	sbc := e.sandboxConfig("oom", runtimeapi.NamespaceMode_POD)
	sb := e.runSandbox(sbc)
	c := containerConfig("hog", runtimeapi.NamespaceMode_POD, "dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1")
	c.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 32 << 20}
	id := e.runContainer(sb, sbc, c)
	if st := e.waitExited(id); st.ExitCode != 137 || st.Reason != "OOMKilled" {
		t.Errorf("container over its memory limit: exit %d reason %q", st.ExitCode, st.Reason)
	}
}

// Container and sandbox stats come from their cgroups and the pod's
// network namespace.
func TestStats(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sbc := e.sandboxConfig("stats", runtimeapi.NamespaceMode_POD)
	sb := e.runSandbox(sbc)
	c := containerConfig("busy", runtimeapi.NamespaceMode_POD, "sh", "-c", "dd if=/dev/zero of=/tmp/f bs=1M count=4; while true; do :; done")
	id := e.runContainer(sb, sbc, c)
	e.execUntil(id, "test", "-s", "/tmp/f")

	cs, err := e.svc.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: id})
	if err != nil {
		t.Fatal(err)
	}
	st := cs.Stats
	if st.GetAttributes().GetId() != id || st.GetCpu().GetUsageCoreNanoSeconds().GetValue() == 0 || st.GetMemory().GetWorkingSetBytes().GetValue() == 0 {
		t.Errorf("container stats: %v", st)
	}
	if st.GetWritableLayer().GetUsedBytes().GetValue() < 4<<20 {
		t.Errorf("writable layer usage %d, want at least 4 MiB", st.GetWritableLayer().GetUsedBytes().GetValue())
	}
	// The second read has a rate.
	cs, err = e.svc.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: id})
	if err != nil || cs.Stats.GetCpu().GetUsageNanoCores() == nil {
		t.Errorf("second read has no usage_nano_cores: %v %v", cs, err)
	}
	list, err := e.svc.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{Filter: &runtimeapi.ContainerStatsFilter{PodSandboxId: sb}})
	if err != nil || len(list.Stats) != 1 {
		t.Errorf("ListContainerStats: %v %v", list, err)
	}

	ps, err := e.svc.PodSandboxStats(ctx, &runtimeapi.PodSandboxStatsRequest{PodSandboxId: sb})
	if err != nil {
		t.Fatal(err)
	}
	l := ps.Stats.GetLinux()
	if l.GetCpu().GetUsageCoreNanoSeconds().GetValue() == 0 || l.GetProcess().GetProcessCount().GetValue() < 2 || len(l.GetContainers()) != 1 {
		t.Errorf("sandbox stats: %v", ps.Stats)
	}
	if l.GetNetwork().GetDefaultInterface().GetName() != "eth0" {
		t.Errorf("sandbox network stats: %v", l.GetNetwork())
	}
	metrics, err := e.svc.ListPodSandboxMetrics(ctx, &runtimeapi.ListPodSandboxMetricsRequest{})
	if err != nil || len(metrics.PodMetrics) != 1 || metrics.PodMetrics[0].PodSandboxId != sb || len(metrics.PodMetrics[0].ContainerMetrics) != 1 || len(metrics.PodMetrics[0].Metrics) == 0 {
		t.Errorf("ListPodSandboxMetrics: %v %v", metrics, err)
	}
	pl, err := e.svc.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{Filter: &runtimeapi.PodSandboxStatsFilter{LabelSelector: map[string]string{"app": "stats"}}})
	if err != nil || len(pl.Stats) != 1 {
		t.Errorf("ListPodSandboxStats: %v %v", pl, err)
	}
}

// A sandbox whose config names no cgroup parent (crictl, critest) goes
// below DefaultCgroupParent, where OOM kills and usage can be read.
func TestDefaultCgroupParent(t *testing.T) {
	e := newEnv(t, func(e *env) { e.cfg.DefaultCgroupParent = e.cgroupParent })
	sbc := e.sandboxConfig("noparent", runtimeapi.NamespaceMode_POD)
	sbc.Linux.CgroupParent = ""
	sb := e.runSandbox(sbc)
	c := containerConfig("hog", runtimeapi.NamespaceMode_POD, "dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1")
	c.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 15 << 20, MemorySwapLimitInBytes: 15 << 20}
	id := e.runContainer(sb, sbc, c)
	if st := e.waitExited(id); st.ExitCode != 137 || st.Reason != "OOMKilled" {
		t.Errorf("container over its memory limit: exit %d reason %q", st.ExitCode, st.Reason)
	}
	ps, err := e.svc.PodSandboxStats(context.Background(), &runtimeapi.PodSandboxStatsRequest{PodSandboxId: sb})
	if err != nil || ps.Stats.GetLinux().GetCpu() == nil || ps.Stats.GetLinux().GetMemory() == nil {
		t.Errorf("stats of a sandbox in the default parent: %v %v", ps, err)
	}
}
