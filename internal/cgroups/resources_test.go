package cgroups

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func list(kv ...string) corev1.ResourceList {
	if len(kv) == 0 {
		return nil
	}
	l := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

func container(name string, req, lim corev1.ResourceList) corev1.Container {
	return corev1.Container{Name: name, Resources: corev1.ResourceRequirements{Requests: req, Limits: lim}}
}

func podWith(cs ...corev1.Container) *corev1.Pod {
	return &corev1.Pod{Spec: corev1.PodSpec{Containers: cs}}
}

func sidecar(c corev1.Container) corev1.Container {
	always := corev1.ContainerRestartPolicyAlways
	c.RestartPolicy = &always
	return c
}

func TestMilliCPUToShares(t *testing.T) {
	for _, tc := range []struct {
		milli int64
		want  uint64
	}{{0, 2}, {1, 2}, {2, 2}, {100, 102}, {250, 256}, {1000, 1024}, {1500, 1536}, {1000000, MaxShares}} {
		if got := MilliCPUToShares(tc.milli); got != tc.want {
			t.Errorf("MilliCPUToShares(%d) = %d, want %d", tc.milli, got, tc.want)
		}
	}
}

func TestMilliCPUToQuota(t *testing.T) {
	for _, tc := range []struct{ milli, want int64 }{{0, 0}, {1, 1000}, {5, 1000}, {10, 1000}, {250, 25000}, {1000, 100000}, {2500, 250000}} {
		if got := MilliCPUToQuota(tc.milli, QuotaPeriod); got != tc.want {
			t.Errorf("MilliCPUToQuota(%d) = %d, want %d", tc.milli, got, tc.want)
		}
	}
}

func TestQOSClass(t *testing.T) {
	cpuMem := list("cpu", "100m", "memory", "100Mi")
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want corev1.PodQOSClass
	}{
		{"no resources", podWith(container("a", nil, nil)), corev1.PodQOSBestEffort},
		{"requests = limits", podWith(container("a", cpuMem, cpuMem)), corev1.PodQOSGuaranteed},
		{"limits only count once defaulted", podWith(container("a", nil, cpuMem)), corev1.PodQOSBurstable},
		{"cpu only", podWith(container("a", list("cpu", "1"), list("cpu", "1"))), corev1.PodQOSBurstable},
		{"requests below limits", podWith(container("a", list("cpu", "50m", "memory", "100Mi"), cpuMem)), corev1.PodQOSBurstable},
		{"guaranteed and besteffort containers", podWith(container("a", cpuMem, cpuMem), container("b", nil, nil)), corev1.PodQOSBurstable},
		{"only other resources", podWith(container("a", list("ephemeral-storage", "1Gi"), nil)), corev1.PodQOSBestEffort},
		{"zero quantities", podWith(container("a", list("cpu", "0"), list("cpu", "0"))), corev1.PodQOSBestEffort},
		{"equal in other units", podWith(container("a", list("cpu", "1", "memory", "1Gi"), list("cpu", "1000m", "memory", "1024Mi"))), corev1.PodQOSGuaranteed},
		{"init container burstable", &corev1.Pod{Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{container("i", list("cpu", "1"), nil)},
			Containers:     []corev1.Container{container("a", cpuMem, cpuMem)}}}, corev1.PodQOSBurstable},
		{"pod-level resources win", &corev1.Pod{Spec: corev1.PodSpec{
			Resources:  &corev1.ResourceRequirements{Requests: cpuMem, Limits: cpuMem},
			Containers: []corev1.Container{container("a", nil, nil)}}}, corev1.PodQOSGuaranteed},
		{"status wins", &corev1.Pod{Spec: podWith(container("a", nil, nil)).Spec,
			Status: corev1.PodStatus{QOSClass: corev1.PodQOSGuaranteed}}, corev1.PodQOSGuaranteed},
	} {
		if got := QOSClass(tc.pod); got != tc.want {
			t.Errorf("%s: QOSClass = %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestResourcesFor(t *testing.T) {
	r := ResourcesFor(corev1.ResourceRequirements{Requests: list("cpu", "250m"), Limits: list("cpu", "500m", "memory", "128Mi")})
	if *r.CPU.Shares != 256 || *r.CPU.Quota != 50000 || *r.CPU.Period != QuotaPeriod || *r.Memory.Limit != 128<<20 {
		t.Errorf("got shares %d quota %d period %d memory %d", *r.CPU.Shares, *r.CPU.Quota, *r.CPU.Period, *r.Memory.Limit)
	}
	// Only a limit: shares follow the limit.
	r = ResourcesFor(corev1.ResourceRequirements{Limits: list("cpu", "2")})
	if *r.CPU.Shares != 2048 || *r.CPU.Quota != 200000 || r.Memory != nil {
		t.Errorf("limit only: shares %d quota %d memory %v", *r.CPU.Shares, *r.CPU.Quota, r.Memory)
	}
	// Nothing: minimum shares, no quota, no memory limit.
	r = ResourcesFor(corev1.ResourceRequirements{})
	if *r.CPU.Shares != MinShares || r.CPU.Quota != nil || r.Memory != nil {
		t.Errorf("empty: %+v", r)
	}
}

func TestPodResourcesFor(t *testing.T) {
	cpuMem := list("cpu", "500m", "memory", "100Mi")

	g := PodResourcesFor(podWith(container("a", cpuMem, cpuMem), container("b", cpuMem, cpuMem)), 1024)
	if *g.CPU.Shares != 1024 || *g.CPU.Quota != 100000 || *g.CPU.Period != QuotaPeriod || *g.Memory.Limit != 200<<20 || *g.Pids.Limit != 1024 {
		t.Errorf("guaranteed: shares %d quota %d memory %d pids %d", *g.CPU.Shares, *g.CPU.Quota, *g.Memory.Limit, *g.Pids.Limit)
	}

	// Burstable where one container has no limits: no quota, no memory limit.
	b := PodResourcesFor(podWith(container("a", list("cpu", "250m"), cpuMem), container("b", list("cpu", "250m"), nil)), 0)
	if *b.CPU.Shares != 512 || b.CPU.Quota != nil || b.Memory != nil || b.Pids != nil {
		t.Errorf("burstable, undeclared limits: %+v %+v", b.CPU, b.Memory)
	}
	// Burstable where every container has limits: both are set.
	b = PodResourcesFor(podWith(container("a", list("cpu", "100m"), cpuMem), container("b", list("memory", "1Mi"), cpuMem)), 0)
	if *b.CPU.Shares != 102 || *b.CPU.Quota != 100000 || *b.Memory.Limit != 200<<20 {
		t.Errorf("burstable, declared limits: shares %d quota %d memory %d", *b.CPU.Shares, *b.CPU.Quota, *b.Memory.Limit)
	}

	be := PodResourcesFor(podWith(container("a", nil, nil)), 0)
	if *be.CPU.Shares != MinShares || be.CPU.Quota != nil || be.Memory != nil {
		t.Errorf("besteffort: %+v", be)
	}

	// Init containers: the largest of (init + sidecars before it) and
	// (apps + sidecars) counts.
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{
			sidecar(container("side", list("cpu", "200m"), nil)),
			container("init", list("cpu", "2"), nil),
		},
		Containers: []corev1.Container{container("a", list("cpu", "300m"), nil)},
	}}
	if got := *PodResourcesFor(pod, 0).CPU.Shares; got != MilliCPUToShares(2200) {
		t.Errorf("init peak: shares %d, want %d", got, MilliCPUToShares(2200))
	}
	pod.Spec.InitContainers[1] = container("init", list("cpu", "100m"), nil)
	if got := *PodResourcesFor(pod, 0).CPU.Shares; got != MilliCPUToShares(500) {
		t.Errorf("sidecar sum: shares %d, want %d", got, MilliCPUToShares(500))
	}

	// Overhead adds to requests, and to limits that are set.
	pod = podWith(container("a", cpuMem, cpuMem))
	pod.Spec.Overhead = list("cpu", "100m", "memory", "10Mi")
	g = PodResourcesFor(pod, 0)
	if *g.CPU.Shares != MilliCPUToShares(600) || *g.Memory.Limit != 110<<20 {
		t.Errorf("overhead: shares %d memory %d", *g.CPU.Shares, *g.Memory.Limit)
	}

	// Hugepages requests become limits by page size.
	pod = podWith(container("a", list("cpu", "1", "memory", "1Gi", "hugepages-2Mi", "4Mi"), list("cpu", "1", "memory", "1Gi", "hugepages-2Mi", "4Mi")))
	hp := PodResourcesFor(pod, 0).HugepageLimits
	if len(hp) != 1 || hp[0].Pagesize != "2MB" || hp[0].Limit != 4<<20 {
		t.Errorf("hugepages: %+v", hp)
	}
}

func TestOOMScoreAdj(t *testing.T) {
	const capacity = 10 << 30
	cpuMem := list("cpu", "1", "memory", "1Gi")
	g := podWith(container("a", cpuMem, cpuMem))
	if got := OOMScoreAdj(g, &g.Spec.Containers[0], capacity); got != -997 {
		t.Errorf("guaranteed: %d", got)
	}
	be := podWith(container("a", nil, nil))
	if got := OOMScoreAdj(be, &be.Spec.Containers[0], capacity); got != 1000 {
		t.Errorf("besteffort: %d", got)
	}
	b := podWith(container("a", list("memory", "1Gi"), nil), container("b", list("cpu", "1"), nil), container("c", list("memory", "10Gi"), nil))
	for i, want := range []int{900, 999, 3} {
		if got := OOMScoreAdj(b, &b.Spec.Containers[i], capacity); got != want {
			t.Errorf("burstable container %d: %d, want %d", i, got, want)
		}
	}
	b.Spec.InitContainers = []corev1.Container{sidecar(container("s", list("memory", "100Mi"), nil))}
	if got := OOMScoreAdj(b, &b.Spec.InitContainers[0], capacity); got != 900 {
		t.Errorf("sidecar: %d, want 900 (that of the smallest regular container)", got)
	}
}
