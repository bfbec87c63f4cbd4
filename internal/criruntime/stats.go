package criruntime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-dev/peapod/internal/cgroups"
	"github.com/peapod-dev/peapod/internal/diskusage"
	"github.com/peapod-dev/peapod/internal/netns"
)

// ContainerStats returns a container's CPU, memory and writable layer usage.
func (s *Service) ContainerStats(ctx context.Context, req *runtimeapi.ContainerStatsRequest) (*runtimeapi.ContainerStatsResponse, error) {
	rec, err := s.getContainer(req.GetContainerId())
	if err != nil {
		return nil, toStatus(err)
	}
	st, err := s.containerStats(&rec)
	if err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.ContainerStatsResponse{Stats: st}, nil
}

// ListContainerStats returns the stats of the containers matching the
// filter (ID or prefix, sandbox ID, label selector).
func (s *Service) ListContainerStats(ctx context.Context, req *runtimeapi.ListContainerStatsRequest) (*runtimeapi.ListContainerStatsResponse, error) {
	f := req.GetFilter()
	var out []*runtimeapi.ContainerStats
	for _, rec := range s.allContainers() {
		if f != nil {
			if f.GetId() != "" && !strings.HasPrefix(rec.ID, f.GetId()) {
				continue
			}
			if f.GetPodSandboxId() != "" && !strings.HasPrefix(rec.SandboxID, f.GetPodSandboxId()) {
				continue
			}
			if !matchLabels(f.GetLabelSelector(), rec.Config.GetLabels()) {
				continue
			}
		}
		st, err := s.containerStats(&rec)
		if err != nil {
			return nil, toStatus(err)
		}
		out = append(out, st)
	}
	return &runtimeapi.ListContainerStatsResponse{Stats: out}, nil
}

// PodSandboxStats returns the pod cgroup's CPU, memory and process usage,
// the pod network's interface counters and its containers' stats.
func (s *Service) PodSandboxStats(ctx context.Context, req *runtimeapi.PodSandboxStatsRequest) (*runtimeapi.PodSandboxStatsResponse, error) {
	sb, err := s.getSandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, toStatus(err)
	}
	st, err := s.sandboxStats(&sb)
	if err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.PodSandboxStatsResponse{Stats: st}, nil
}

// ListPodSandboxStats returns the stats of the sandboxes matching the
// filter (ID or prefix, label selector).
func (s *Service) ListPodSandboxStats(ctx context.Context, req *runtimeapi.ListPodSandboxStatsRequest) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	f := req.GetFilter()
	s.mu.RLock()
	var sbs []sandboxRecord
	for _, sb := range s.sandboxes {
		if f != nil {
			if f.GetId() != "" && !strings.HasPrefix(sb.ID, f.GetId()) {
				continue
			}
			if !matchLabels(f.GetLabelSelector(), sb.Config.GetLabels()) {
				continue
			}
		}
		sbs = append(sbs, *sb)
	}
	s.mu.RUnlock()
	var out []*runtimeapi.PodSandboxStats
	for i := range sbs {
		st, err := s.sandboxStats(&sbs[i])
		if err != nil {
			return nil, toStatus(err)
		}
		out = append(out, st)
	}
	return &runtimeapi.ListPodSandboxStatsResponse{Stats: out}, nil
}

func (s *Service) allContainers() []containerRecord {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]containerRecord, 0, len(s.containers))
	for _, c := range s.containers {
		out = append(out, *c)
	}
	return out
}

// containerStats reads a container's usage. A container whose cgroup is gone
// (it exited) has only its attributes and writable layer.
func (s *Service) containerStats(rec *containerRecord) (*runtimeapi.ContainerStats, error) {
	now := s.clock.Now()
	st := &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{
			Id: rec.ID, Metadata: rec.Config.GetMetadata(),
			Labels: rec.Config.GetLabels(), Annotations: rec.Config.GetAnnotations(),
		},
		WritableLayer: s.writableLayerUsage(rec.ID, now),
	}
	if rec.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return st, nil
	}
	cpu, mem, _, err := s.cgroupUsage(rec.ID, rec.CgroupPath, now)
	if err != nil {
		return nil, err
	}
	st.Cpu, st.Memory = cpu, mem
	return st, nil
}

func (s *Service) sandboxStats(sb *sandboxRecord) (*runtimeapi.PodSandboxStats, error) {
	now := s.clock.Now()
	linux := &runtimeapi.LinuxPodSandboxStats{}
	if s.sandboxState(sb) == runtimeapi.PodSandboxState_SANDBOX_READY {
		// The pod's cgroup is the CgroupParent its config names (the
		// kubelet's pod cgroup); without one (the default parent is shared)
		// or when peapod cannot read it, the pause container's cgroup.
		var cpu *runtimeapi.CpuUsage
		var mem *runtimeapi.MemoryUsage
		var procs uint64
		var err error
		if sb.Config.GetLinux().GetCgroupParent() != "" {
			cpu, mem, procs, err = s.cgroupUsage(sb.ID, sb.CgroupParent, now)
		}
		if err == nil && cpu == nil {
			cpu, mem, procs, err = s.cgroupUsage(sb.ID, cgroupsPath(sb.CgroupParent, sb.ID), now)
		}
		if err != nil {
			return nil, err
		}
		linux.Cpu, linux.Memory = cpu, mem
		linux.Process = &runtimeapi.ProcessUsage{Timestamp: now.UnixNano(), ProcessCount: &runtimeapi.UInt64Value{Value: procs}}
		if sb.NetNSPath != "" {
			linux.Network = networkUsage(sb.NetNSPath, now)
		}
	}
	for _, c := range s.sandboxContainers(sb.ID) {
		cs, err := s.containerStats(&c)
		if err != nil {
			return nil, err
		}
		linux.Containers = append(linux.Containers, cs)
	}
	return &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{
			Id: sb.ID, Metadata: sb.Config.GetMetadata(),
			Labels: sb.Config.GetLabels(), Annotations: sb.Config.GetAnnotations(),
		},
		Linux: linux,
	}, nil
}

// cgroupUsage reads a cgroup's CPU and memory usage and process count;
// usage_nano_cores is the rate since the previous read for the same ID.
func (s *Service) cgroupUsage(id, path string, now time.Time) (*runtimeapi.CpuUsage, *runtimeapi.MemoryUsage, uint64, error) {
	if s.cfg.Cgroups == nil {
		return nil, nil, 0, nil
	}
	st, err := s.cfg.Cgroups.Stats(path)
	if errors.Is(err, cgroups.ErrNotFound) || errors.Is(err, cgroups.ErrInvalidPath) {
		// It just exited and its cgroup is gone, or the cgroup is not
		// below the cgroup root peapod manages: no usage to report.
		return nil, nil, 0, nil
	}
	if err != nil {
		return nil, nil, 0, fmt.Errorf("read usage of cgroup %s: %w", path, err)
	}
	ts := now.UnixNano()
	cpu := &runtimeapi.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: st.CPUUsageNanos}}
	if rate, ok := s.cpuRate.rate(id, st.CPUUsageNanos, now); ok {
		cpu.UsageNanoCores = &runtimeapi.UInt64Value{Value: rate}
	}
	mem := &runtimeapi.MemoryUsage{
		Timestamp:       ts,
		WorkingSetBytes: &runtimeapi.UInt64Value{Value: st.MemoryWorkingSetBytes},
		UsageBytes:      &runtimeapi.UInt64Value{Value: st.MemoryUsageBytes},
		RssBytes:        &runtimeapi.UInt64Value{Value: st.MemoryRSSBytes},
		PageFaults:      &runtimeapi.UInt64Value{Value: st.PageFaults},
		MajorPageFaults: &runtimeapi.UInt64Value{Value: st.MajorPageFaults},
	}
	if st.MemoryLimitBytes > 0 && st.MemoryLimitBytes > st.MemoryWorkingSetBytes {
		mem.AvailableBytes = &runtimeapi.UInt64Value{Value: st.MemoryLimitBytes - st.MemoryWorkingSetBytes}
	}
	return cpu, mem, st.Pids, nil
}

// cpuRates remembers the last CPU sample per ID to report usage_nano_cores.
type cpuRates struct {
	mu   sync.Mutex
	last map[string]cpuSample
}

type cpuSample struct {
	usage uint64
	at    time.Time
}

func (c *cpuRates) rate(id string, usage uint64, now time.Time) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		c.last = map[string]cpuSample{}
	}
	prev, ok := c.last[id]
	c.last[id] = cpuSample{usage: usage, at: now}
	dt := now.Sub(prev.at)
	if !ok || dt <= 0 || usage < prev.usage {
		return 0, false
	}
	return uint64(float64(usage-prev.usage) / dt.Seconds()), true
}

func (c *cpuRates) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.last, id)
}

// writableLayerUsage is the disk usage (allocated blocks, as du and
// containerd's fs.DiskUsage count them) and inode count of the container's
// snapshot upper directory; what could be counted when a walk fails.
func (s *Service) writableLayerUsage(id string, now time.Time) *runtimeapi.FilesystemUsage {
	u, _ := diskusage.Of(filepath.Join(s.cfg.Root, "snapshots", id, "upper"))
	return &runtimeapi.FilesystemUsage{
		Timestamp:  now.UnixNano(),
		FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: filepath.Join(s.cfg.Root, "snapshots")},
		UsedBytes:  &runtimeapi.UInt64Value{Value: u.Bytes},
		InodesUsed: &runtimeapi.UInt64Value{Value: u.Inodes},
	}
}

// networkUsage reads the interface counters inside the pod's network
// namespace (eth0 is the default interface, as CNI names it).
func networkUsage(netnsPath string, now time.Time) *runtimeapi.NetworkUsage {
	var ifaces []*runtimeapi.NetworkInterfaceUsage
	err := netns.Do(netnsPath, func() error {
		data, err := os.ReadFile("/proc/thread-self/net/dev")
		if err != nil {
			return err
		}
		ifaces = parseNetDev(string(data))
		return nil
	})
	if err != nil {
		return nil
	}
	u := &runtimeapi.NetworkUsage{Timestamp: now.UnixNano()}
	for _, i := range ifaces {
		if i.Name == "lo" {
			continue
		}
		if i.Name == "eth0" {
			u.DefaultInterface = i
		}
		u.Interfaces = append(u.Interfaces, i)
	}
	return u
}

// parseNetDev parses /proc/net/dev: after "name:", 8 receive and 8
// transmit counters (bytes, packets, errs, ...).
func parseNetDev(data string) []*runtimeapi.NetworkInterfaceUsage {
	var out []*runtimeapi.NetworkInterfaceUsage
	for _, line := range strings.Split(data, "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 16 {
			continue
		}
		n := func(i int) *runtimeapi.UInt64Value {
			v, _ := strconv.ParseUint(f[i], 10, 64)
			return &runtimeapi.UInt64Value{Value: v}
		}
		out = append(out, &runtimeapi.NetworkInterfaceUsage{
			Name: strings.TrimSpace(name), RxBytes: n(0), RxErrors: n(2), TxBytes: n(8), TxErrors: n(10),
		})
	}
	return out
}
