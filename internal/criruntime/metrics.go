package criruntime

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The metrics peapod reports through ListPodSandboxMetrics, in cadvisor's
// names where their units match: per container from its cgroup, per pod
// from its network namespace. Values are unsigned integers (the CRI's
// type), so CPU time is in whole seconds.
var metricDescriptors = []*runtimeapi.MetricDescriptor{
	{Name: "container_cpu_usage_seconds_total", Help: "Cumulative CPU time consumed, in whole seconds.", LabelKeys: []string{}},
	{Name: "container_memory_usage_bytes", Help: "Current memory usage, including all memory regardless of when it was accessed.", LabelKeys: []string{}},
	{Name: "container_memory_working_set_bytes", Help: "Current working set (usage minus inactive file pages).", LabelKeys: []string{}},
	{Name: "container_memory_rss", Help: "Size of RSS in bytes.", LabelKeys: []string{}},
	{Name: "container_network_receive_bytes_total", Help: "Cumulative count of bytes received.", LabelKeys: []string{"interface"}},
	{Name: "container_network_transmit_bytes_total", Help: "Cumulative count of bytes transmitted.", LabelKeys: []string{"interface"}},
}

// ListMetricDescriptors describes the metrics of ListPodSandboxMetrics.
func (s *Service) ListMetricDescriptors(ctx context.Context, req *runtimeapi.ListMetricDescriptorsRequest) (*runtimeapi.ListMetricDescriptorsResponse, error) {
	return &runtimeapi.ListMetricDescriptorsResponse{Descriptors: metricDescriptors}, nil
}

// ListPodSandboxMetrics reports the metrics of every sandbox and its
// containers.
func (s *Service) ListPodSandboxMetrics(ctx context.Context, req *runtimeapi.ListPodSandboxMetricsRequest) (*runtimeapi.ListPodSandboxMetricsResponse, error) {
	out, err := s.podSandboxMetrics()
	if err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.ListPodSandboxMetricsResponse{PodMetrics: out}, nil
}

func (s *Service) podSandboxMetrics() ([]*runtimeapi.PodSandboxMetrics, error) {
	s.mu.RLock()
	sbs := make([]sandboxRecord, 0, len(s.sandboxes))
	for _, sb := range s.sandboxes {
		sbs = append(sbs, *sb)
	}
	s.mu.RUnlock()
	var out []*runtimeapi.PodSandboxMetrics
	for i := range sbs {
		st, err := s.sandboxStats(&sbs[i])
		if err != nil {
			return nil, err
		}
		out = append(out, sandboxMetrics(st))
	}
	return out, nil
}

// sandboxMetrics turns a sandbox's stats into metrics.
func sandboxMetrics(st *runtimeapi.PodSandboxStats) *runtimeapi.PodSandboxMetrics {
	m := &runtimeapi.PodSandboxMetrics{PodSandboxId: st.GetAttributes().GetId()}
	if n := st.GetLinux().GetNetwork(); n != nil {
		for _, i := range n.GetInterfaces() {
			m.Metrics = append(m.Metrics,
				metric("container_network_receive_bytes_total", n.GetTimestamp(), runtimeapi.MetricType_COUNTER, i.GetRxBytes(), i.GetName()),
				metric("container_network_transmit_bytes_total", n.GetTimestamp(), runtimeapi.MetricType_COUNTER, i.GetTxBytes(), i.GetName()))
		}
	}
	for _, c := range st.GetLinux().GetContainers() {
		cm := &runtimeapi.ContainerMetrics{ContainerId: c.GetAttributes().GetId()}
		if cpu := c.GetCpu(); cpu != nil {
			secs := &runtimeapi.UInt64Value{Value: cpu.GetUsageCoreNanoSeconds().GetValue() / 1e9}
			cm.Metrics = append(cm.Metrics, metric("container_cpu_usage_seconds_total", cpu.GetTimestamp(), runtimeapi.MetricType_COUNTER, secs))
		}
		if mem := c.GetMemory(); mem != nil {
			cm.Metrics = append(cm.Metrics,
				metric("container_memory_usage_bytes", mem.GetTimestamp(), runtimeapi.MetricType_GAUGE, mem.GetUsageBytes()),
				metric("container_memory_working_set_bytes", mem.GetTimestamp(), runtimeapi.MetricType_GAUGE, mem.GetWorkingSetBytes()),
				metric("container_memory_rss", mem.GetTimestamp(), runtimeapi.MetricType_GAUGE, mem.GetRssBytes()))
		}
		m.ContainerMetrics = append(m.ContainerMetrics, cm)
	}
	return m
}

func metric(name string, ts int64, t runtimeapi.MetricType, v *runtimeapi.UInt64Value, labels ...string) *runtimeapi.Metric {
	return &runtimeapi.Metric{Name: name, Timestamp: ts, MetricType: t, Value: v, LabelValues: append([]string{}, labels...)}
}
