package cgroups

import (
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// The kubelet's CPU conversion constants (pkg/kubelet/cm/helpers_linux.go).
const (
	MinShares      = 2
	MaxShares      = 262144
	SharesPerCPU   = 1024
	MilliCPUToCPU  = 1000
	QuotaPeriod    = 100000 // CFS period, µs (100 ms)
	MinQuotaPeriod = 1000   // smallest CFS quota, µs
)

// The kubelet's oom_score_adj values (pkg/kubelet/qos/policy.go).
const (
	PodInfraOOMAdj        = -998
	guaranteedOOMScoreAdj = -997
	besteffortOOMScoreAdj = 1000
	// systemCriticalPriority is scheduling.SystemCriticalPriority: pods at or
	// above it are node-critical and protected like Guaranteed ones.
	systemCriticalPriority = 2 * 1000000000
)

// MilliCPUToShares converts a CPU request to cpu.shares as the kubelet does:
// 1024 per CPU, at least MinShares (also for no request), at most MaxShares.
func MilliCPUToShares(milliCPU int64) uint64 {
	if milliCPU == 0 {
		return MinShares
	}
	shares := milliCPU * SharesPerCPU / MilliCPUToCPU
	if shares < MinShares {
		return MinShares
	}
	if shares > MaxShares {
		return MaxShares
	}
	return uint64(shares)
}

// MilliCPUToQuota converts a CPU limit to a CFS quota for the given period
// (µs), at least MinQuotaPeriod; 0 for no limit.
func MilliCPUToQuota(milliCPU, period int64) int64 {
	if milliCPU == 0 {
		return 0
	}
	quota := milliCPU * period / MilliCPUToCPU
	if quota < MinQuotaPeriod {
		return MinQuotaPeriod
	}
	return quota
}

// QOSClass is the kubelet's GetPodQOS: the class recorded in the pod's
// status, else the one its (pod-level, else init and app containers')
// cpu and memory requests and limits give.
func QOSClass(pod *corev1.Pod) corev1.PodQOSClass {
	if pod.Status.QOSClass != "" {
		return pod.Status.QOSClass
	}
	return ComputeQOSClass(pod)
}

// ComputeQOSClass is the kubelet's ComputePodQOS (PodLevelResources enabled,
// its default): any Burstable container, or a mix of Guaranteed and
// BestEffort ones, make the pod Burstable.
func ComputeQOSClass(pod *corev1.Pod) corev1.PodQOSClass {
	if pod.Spec.Resources != nil {
		return resourceQOS(pod.Spec.Resources)
	}
	var podQOS corev1.PodQOSClass
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			qos := resourceQOS(&cs[i].Resources)
			switch {
			case qos == corev1.PodQOSBurstable:
				return qos
			case podQOS == "":
				podQOS = qos
			case podQOS != qos:
				return corev1.PodQOSBurstable
			}
		}
	}
	if podQOS == "" {
		podQOS = corev1.PodQOSBestEffort
	}
	return podQOS
}

// resourceQOS classifies one set of requirements by cpu and memory.
func resourceQOS(r *corev1.ResourceRequirements) corev1.PodQOSClass {
	if len(r.Requests) == 0 && len(r.Limits) == 0 {
		return corev1.PodQOSBestEffort
	}
	var qos corev1.PodQOSClass
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, lim := r.Requests[name], r.Limits[name]
		if !req.Equal(lim) {
			return corev1.PodQOSBurstable
		}
		bestEffort := req.IsZero()
		switch {
		case qos == "" && bestEffort:
			qos = corev1.PodQOSBestEffort
		case qos == "":
			qos = corev1.PodQOSGuaranteed
		case bestEffort != (qos == corev1.PodQOSBestEffort):
			return corev1.PodQOSBurstable
		}
	}
	return qos
}

// ResourcesFor converts one container's requests and limits to its cgroup
// resources as the kubelet does for CRI (kuberuntime calculateLinuxResources):
// cpu shares from the request (the limit when only that is set), the CFS
// period always and a quota from the cpu limit, the memory limit.
func ResourcesFor(r corev1.ResourceRequirements) *specs.LinuxResources {
	cpuReq, cpuLim := r.Requests.Cpu(), r.Limits.Cpu()
	shares := MilliCPUToShares(cpuReq.MilliValue())
	if cpuReq.IsZero() && !cpuLim.IsZero() {
		shares = MilliCPUToShares(cpuLim.MilliValue())
	}
	period := uint64(QuotaPeriod)
	out := &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: &shares, Period: &period}}
	if q := MilliCPUToQuota(cpuLim.MilliValue(), QuotaPeriod); q != 0 {
		out.CPU.Quota = &q
	}
	if mem := r.Limits.Memory().Value(); mem != 0 {
		out.Memory = &specs.LinuxMemory{Limit: &mem}
	}
	return out
}

// PodResourcesFor returns the pod cgroup's resources as the kubelet's
// ResourceConfigForPod computes them (CFS quota enforced, 100 ms period):
// Guaranteed pods get shares, quota and memory limit; Burstable pods
// shares, and quota or memory limit only when every container declares that
// limit (or the pod does); BestEffort pods the minimum shares. pidsLimit > 0
// caps the pod's processes (the kubelet's podPidsLimit).
func PodResourcesFor(pod *corev1.Pod, pidsLimit int64) *specs.LinuxResources {
	reqs, limits := podRequests(pod), podLimits(pod)
	cpuDeclared, memDeclared := true, true
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			if cs[i].Resources.Limits.Cpu().IsZero() {
				cpuDeclared = false
			}
			if cs[i].Resources.Limits.Memory().IsZero() {
				memDeclared = false
			}
		}
	}
	if podLevelSet(pod) {
		if !pod.Spec.Resources.Limits.Cpu().IsZero() {
			cpuDeclared = true
		}
		if !pod.Spec.Resources.Limits.Memory().IsZero() {
			memDeclared = true
		}
	}
	shares := MilliCPUToShares(reqs.Cpu().MilliValue())
	quota := MilliCPUToQuota(limits.Cpu().MilliValue(), QuotaPeriod)
	period := uint64(QuotaPeriod)
	memLimit := limits.Memory().Value()

	out := &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: &shares}}
	switch QOSClass(pod) {
	case corev1.PodQOSGuaranteed:
		out.CPU.Quota, out.CPU.Period = &quota, &period
		out.Memory = &specs.LinuxMemory{Limit: &memLimit}
	case corev1.PodQOSBurstable:
		if cpuDeclared {
			out.CPU.Quota, out.CPU.Period = &quota, &period
		}
		if memDeclared {
			out.Memory = &specs.LinuxMemory{Limit: &memLimit}
		}
	default:
		minShares := uint64(MinShares)
		out.CPU.Shares = &minShares
	}
	for size, limit := range hugePageLimits(reqs) {
		out.HugepageLimits = append(out.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: size, Limit: limit})
	}
	if pidsLimit > 0 {
		out.Pids = &specs.LinuxPids{Limit: &pidsLimit}
	}
	return out
}

// OOMScoreAdj is the kubelet's GetContainerOOMScoreAdjust: -997 for
// Guaranteed and node-critical pods, 1000 for BestEffort, and for Burstable
// 1000 minus the container's share of the node's memory in thousandths,
// clamped to [3, 999] (a sidecar no higher than the smallest regular
// container's).
func OOMScoreAdj(pod *corev1.Pod, c *corev1.Container, memoryCapacity int64) int {
	if pod.Spec.Priority != nil && *pod.Spec.Priority >= systemCriticalPriority {
		return guaranteedOOMScoreAdj
	}
	switch QOSClass(pod) {
	case corev1.PodQOSGuaranteed:
		return guaranteedOOMScoreAdj
	case corev1.PodQOSBestEffort:
		return besteffortOOMScoreAdj
	}
	if memoryCapacity <= 0 {
		return besteffortOOMScoreAdj - 1
	}
	adj := 1000 - 1000*c.Resources.Requests.Memory().Value()/memoryCapacity
	if isSidecar(pod, c) {
		if smallest := minRegularMemoryRequest(pod); smallest > 0 {
			if minAdj := 1000 - 1000*smallest/memoryCapacity; adj > minAdj {
				adj = minAdj
			}
		}
	}
	if adj < 1000+guaranteedOOMScoreAdj {
		return 1000 + guaranteedOOMScoreAdj
	}
	if adj == besteffortOOMScoreAdj {
		return int(adj - 1)
	}
	return int(adj)
}

func isSidecar(pod *corev1.Pod, c *corev1.Container) bool {
	if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		return false
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == c.Name {
			return true
		}
	}
	return false
}

func minRegularMemoryRequest(pod *corev1.Pod) int64 {
	var smallest int64
	for i := range pod.Spec.Containers {
		v := pod.Spec.Containers[i].Resources.Requests.Memory().Value()
		if v > 0 && (smallest == 0 || v < smallest) {
			smallest = v
		}
	}
	return smallest
}

// podLevelSet is resourcehelper.IsPodLevelResourcesSet: pod-level cpu,
// memory or hugepages requests or limits.
func podLevelSet(pod *corev1.Pod) bool {
	if pod.Spec.Resources == nil {
		return false
	}
	for _, l := range []corev1.ResourceList{pod.Spec.Resources.Requests, pod.Spec.Resources.Limits} {
		for name := range l {
			if podLevelResource(name) {
				return true
			}
		}
	}
	return false
}

func podLevelResource(name corev1.ResourceName) bool {
	return name == corev1.ResourceCPU || name == corev1.ResourceMemory ||
		strings.HasPrefix(string(name), corev1.ResourceHugePagesPrefix)
}

// podRequests is resourcehelper.PodRequests: app containers and sidecars
// summed, at least what any init container needs together with the sidecars
// started before it; pod-level requests override; plus the pod overhead.
func podRequests(pod *corev1.Pod) corev1.ResourceList {
	reqs := aggregate(pod, func(c *corev1.Container) corev1.ResourceList { return c.Resources.Requests })
	if pod.Spec.Resources != nil {
		for name, q := range pod.Spec.Resources.Requests {
			if podLevelResource(name) {
				reqs[name] = q.DeepCopy()
			}
		}
	}
	addList(reqs, pod.Spec.Overhead)
	return reqs
}

// podLimits is resourcehelper.PodLimits: like podRequests for limits, the
// overhead added only to limits that are set.
func podLimits(pod *corev1.Pod) corev1.ResourceList {
	limits := aggregate(pod, func(c *corev1.Container) corev1.ResourceList { return c.Resources.Limits })
	if podLevelSet(pod) {
		for name, q := range pod.Spec.Resources.Limits {
			if podLevelResource(name) {
				limits[name] = q.DeepCopy()
			}
		}
	}
	for name, q := range pod.Spec.Overhead {
		if v, ok := limits[name]; ok && !v.IsZero() {
			v.Add(q)
			limits[name] = v
		}
	}
	return limits
}

// aggregate follows the sidecar KEP's formula (KEP-753).
func aggregate(pod *corev1.Pod, get func(*corev1.Container) corev1.ResourceList) corev1.ResourceList {
	result := corev1.ResourceList{}
	for i := range pod.Spec.Containers {
		addList(result, get(&pod.Spec.Containers[i]))
	}
	sidecars := corev1.ResourceList{}
	initMax := corev1.ResourceList{}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		var use corev1.ResourceList
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			addList(result, get(c))
			addList(sidecars, get(c))
			use = sidecars
		} else {
			use = corev1.ResourceList{}
			addList(use, get(c))
			addList(use, sidecars)
		}
		maxList(initMax, use)
	}
	maxList(result, initMax)
	return result
}

func addList(list, add corev1.ResourceList) {
	for name, q := range add {
		if v, ok := list[name]; ok {
			v.Add(q)
			list[name] = v
		} else {
			list[name] = q.DeepCopy()
		}
	}
}

func maxList(list, other corev1.ResourceList) {
	for name, q := range other {
		if v, ok := list[name]; !ok || q.Cmp(v) > 0 {
			list[name] = q.DeepCopy()
		}
	}
}

// hugePageLimits maps page sizes ("2MB", "1GB", as the kernel names them in
// hugetlb files) to the pod's hugepages requests in bytes.
func hugePageLimits(reqs corev1.ResourceList) map[string]uint64 {
	out := map[string]uint64{}
	for name, q := range reqs {
		size, ok := strings.CutPrefix(string(name), corev1.ResourceHugePagesPrefix)
		if !ok {
			continue
		}
		sq, err := resource.ParseQuantity(size)
		if err != nil {
			continue
		}
		out[pageSizeName(sq.Value())] += uint64(q.Value())
	}
	return out
}

func pageSizeName(bytes int64) string {
	units := []string{"B", "KB", "MB", "GB", "TB"}
	i := 0
	for bytes >= 1024 && bytes%1024 == 0 && i < len(units)-1 {
		bytes /= 1024
		i++
	}
	return strings.TrimSpace(resource.NewQuantity(bytes, resource.DecimalSI).String()) + units[i]
}
