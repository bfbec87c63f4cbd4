package podmanager

import (
	"bufio"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-dev/peapod/internal/cgroups"
)

// containerRequests returns the container's requests as the API server's
// defaulting leaves them: a limit without a request is also the request.
func containerRequests(c *corev1.Container) corev1.ResourceList {
	out := corev1.ResourceList{}
	for name, q := range c.Resources.Limits {
		out[name] = q.DeepCopy()
	}
	for name, q := range c.Resources.Requests {
		out[name] = q.DeepCopy()
	}
	return out
}

// getPodQOS is the kubelet's GetPodQOS, shared with internal/cgroups so that the
// pod's cgroup and its status agree.
func getPodQOS(pod *corev1.Pod) corev1.PodQOSClass { return cgroups.QOSClass(pod) }

// computePodQOS is ComputePodQOS (ignores the class in the status).
func computePodQOS(pod *corev1.Pod) corev1.PodQOSClass { return cgroups.ComputeQOSClass(pod) }

// podCgroupResources is ResourceConfigForPod: the pod cgroup's limits by QoS
// class (internal/cgroups).
func podCgroupResources(pod *corev1.Pod, pidsLimit int64) *specs.LinuxResources {
	return cgroups.PodResourcesFor(pod, pidsLimit)
}

// calculateLinuxResources is the kubelet's: shares from the request (or the
// limit when there is no request), CFS quota from the limit, memory limit.
func calculateLinuxResources(cpuReq, cpuLim, memLim int64) *runtimeapi.LinuxContainerResources {
	r := &runtimeapi.LinuxContainerResources{}
	if cpuReq == 0 && cpuLim != 0 {
		r.CpuShares = int64(cgroups.MilliCPUToShares(cpuLim))
	} else {
		r.CpuShares = int64(cgroups.MilliCPUToShares(cpuReq))
	}
	if cpuLim != 0 {
		r.CpuPeriod = cgroups.QuotaPeriod
		r.CpuQuota = cgroups.MilliCPUToQuota(cpuLim, cgroups.QuotaPeriod)
	}
	if memLim != 0 {
		r.MemoryLimitInBytes = memLim
	}
	return r
}

// containerResources is generateLinuxContainerResources.
func containerResources(pod *corev1.Pod, c *corev1.Container, memoryCapacity int64) *runtimeapi.LinuxContainerResources {
	req := containerRequests(c)
	r := calculateLinuxResources(req.Cpu().MilliValue(), c.Resources.Limits.Cpu().MilliValue(), c.Resources.Limits.Memory().Value())
	r.OomScoreAdj = int64(containerOOMScoreAdjust(pod, c, memoryCapacity))
	return r
}

// sandboxResources is calculateSandboxResources: the sum over app containers.
func sandboxResources(pod *corev1.Pod) *runtimeapi.LinuxContainerResources {
	var cpuReq, cpuLim, memLim int64
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		creq := containerRequests(c)
		cpuReq += creq.Cpu().MilliValue()
		cpuLim += c.Resources.Limits.Cpu().MilliValue()
		memLim += c.Resources.Limits.Memory().Value()
	}
	return calculateLinuxResources(cpuReq, cpuLim, memLim)
}

// containerOOMScoreAdjust is qos.GetContainerOOMScoreAdjust (internal/cgroups).
func containerOOMScoreAdjust(pod *corev1.Pod, c *corev1.Container, memoryCapacity int64) int {
	return cgroups.OOMScoreAdj(pod, c, memoryCapacity)
}

// machineMemory reads MemTotal from /proc/meminfo (0 when unknown).
func machineMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}

// detectHostIP returns the first global unicast IPv4 address of the machine,
// else 127.0.0.1.
func detectHostIP() string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

func secondsDuration(s int64) time.Duration { return time.Duration(s) * time.Second }
