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
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CPU and OOM constants of the kubelet (pkg/kubelet/cm, pkg/kubelet/qos).
const (
	minShares     = 2
	maxShares     = 262144
	sharesPerCPU  = 1024
	milliCPUToCPU = 1000
	quotaPeriod   = 100000 // 100 ms in µs
	minQuota      = 1000

	guaranteedOOMScoreAdj = -997
	besteffortOOMScoreAdj = 1000
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

// getPodQOS is the kubelet's qos.GetPodQOS (ComputePodQOS).
func getPodQOS(pod *corev1.Pod) corev1.PodQOSClass {
	if pod.Status.QOSClass != "" {
		return pod.Status.QOSClass
	}
	return computePodQOS(pod)
}

func computePodQOS(pod *corev1.Pod) corev1.PodQOSClass {
	requests := corev1.ResourceList{}
	limits := corev1.ResourceList{}
	isGuaranteed := true
	all := append(append([]corev1.Container{}, pod.Spec.Containers...), pod.Spec.InitContainers...)
	for i := range all {
		c := &all[i]
		for name, q := range containerRequests(c) {
			if !isSupportedQoSResource(name) || q.Sign() <= 0 {
				continue
			}
			add(requests, name, q)
		}
		found := map[corev1.ResourceName]bool{}
		for name, q := range c.Resources.Limits {
			if !isSupportedQoSResource(name) || q.Sign() <= 0 {
				continue
			}
			found[name] = true
			add(limits, name, q)
		}
		if !found[corev1.ResourceCPU] || !found[corev1.ResourceMemory] {
			isGuaranteed = false
		}
	}
	if len(requests) == 0 && len(limits) == 0 {
		return corev1.PodQOSBestEffort
	}
	if isGuaranteed {
		for name, req := range requests {
			if lim, ok := limits[name]; !ok || lim.Cmp(req) != 0 {
				isGuaranteed = false
				break
			}
		}
	}
	if isGuaranteed && len(requests) == len(limits) {
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

func isSupportedQoSResource(name corev1.ResourceName) bool {
	return name == corev1.ResourceCPU || name == corev1.ResourceMemory
}

func add(l corev1.ResourceList, name corev1.ResourceName, q resource.Quantity) {
	if cur, ok := l[name]; ok {
		cur.Add(q)
		l[name] = cur
		return
	}
	l[name] = q.DeepCopy()
}

// milliCPUToShares converts milli-CPU to cgroup v1 cpu.shares (MilliCPUToShares).
func milliCPUToShares(milliCPU int64) uint64 {
	if milliCPU == 0 {
		return minShares
	}
	shares := milliCPU * sharesPerCPU / milliCPUToCPU
	if shares < minShares {
		return minShares
	}
	if shares > maxShares {
		return maxShares
	}
	return uint64(shares)
}

// milliCPUToQuota converts a milli-CPU limit to a CFS quota for the period.
func milliCPUToQuota(milliCPU, period int64) int64 {
	if milliCPU == 0 {
		return 0
	}
	quota := milliCPU * period / milliCPUToCPU
	if quota < minQuota {
		quota = minQuota
	}
	return quota
}

// podResources sums the pod's requests and limits: max(sum of app containers,
// each init container), as resource.PodRequests/PodLimits.
func podResources(pod *corev1.Pod) (cpuReq, cpuLim, memLim int64, cpuLimAll, memLimAll bool) {
	cpuLimAll, memLimAll = true, true
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		r := containerRequests(c)
		cpuReq += r.Cpu().MilliValue()
		cpuLim += c.Resources.Limits.Cpu().MilliValue()
		memLim += c.Resources.Limits.Memory().Value()
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		r := containerRequests(c)
		cpuReq = max(cpuReq, r.Cpu().MilliValue())
		cpuLim = max(cpuLim, c.Resources.Limits.Cpu().MilliValue())
		memLim = max(memLim, c.Resources.Limits.Memory().Value())
	}
	all := append(append([]corev1.Container{}, pod.Spec.Containers...), pod.Spec.InitContainers...)
	for i := range all {
		if all[i].Resources.Limits.Cpu().IsZero() {
			cpuLimAll = false
		}
		if all[i].Resources.Limits.Memory().IsZero() {
			memLimAll = false
		}
	}
	return
}

// podCgroupResources is ResourceConfigForPod: the pod cgroup's limits by QoS
// class. Limits are set only when every container declares them.
func podCgroupResources(pod *corev1.Pod) *specs.LinuxResources {
	cpuReq, cpuLim, memLim, cpuLimAll, memLimAll := podResources(pod)
	shares := milliCPUToShares(cpuReq)
	period := uint64(quotaPeriod)
	r := &specs.LinuxResources{CPU: &specs.LinuxCPU{}}
	switch getPodQOS(pod) {
	case corev1.PodQOSGuaranteed:
		quota := milliCPUToQuota(cpuLim, quotaPeriod)
		r.CPU.Shares, r.CPU.Quota, r.CPU.Period = &shares, &quota, &period
		r.Memory = &specs.LinuxMemory{Limit: &memLim}
	case corev1.PodQOSBurstable:
		r.CPU.Shares = &shares
		if cpuLimAll {
			quota := milliCPUToQuota(cpuLim, quotaPeriod)
			r.CPU.Quota, r.CPU.Period = &quota, &period
		}
		if memLimAll {
			r.Memory = &specs.LinuxMemory{Limit: &memLim}
		}
	default:
		s := uint64(minShares)
		r.CPU.Shares = &s
	}
	return r
}

// calculateLinuxResources is the kubelet's: shares from the request (or the
// limit when there is no request), CFS quota from the limit, memory limit.
func calculateLinuxResources(cpuReq, cpuLim, memLim int64) *runtimeapi.LinuxContainerResources {
	r := &runtimeapi.LinuxContainerResources{}
	if cpuReq == 0 && cpuLim != 0 {
		r.CpuShares = int64(milliCPUToShares(cpuLim))
	} else {
		r.CpuShares = int64(milliCPUToShares(cpuReq))
	}
	if cpuLim != 0 {
		r.CpuPeriod = quotaPeriod
		r.CpuQuota = milliCPUToQuota(cpuLim, quotaPeriod)
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

// containerOOMScoreAdjust is qos.GetContainerOOMScoreAdjust.
func containerOOMScoreAdjust(pod *corev1.Pod, c *corev1.Container, memoryCapacity int64) int {
	switch getPodQOS(pod) {
	case corev1.PodQOSGuaranteed:
		return guaranteedOOMScoreAdj
	case corev1.PodQOSBestEffort:
		return besteffortOOMScoreAdj
	}
	if memoryCapacity <= 0 {
		return besteffortOOMScoreAdj - 1
	}
	creq := containerRequests(c)
	memoryRequest := creq.Memory().Value()
	adj := 1000 - (1000*memoryRequest)/memoryCapacity
	if int(adj) < 1000+guaranteedOOMScoreAdj {
		return 1000 + guaranteedOOMScoreAdj
	}
	if int(adj) == besteffortOOMScoreAdj {
		return int(adj - 1)
	}
	return int(adj)
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
