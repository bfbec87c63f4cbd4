package podmanager

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	cri "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// runtimePodStatus is the kubelet's kubecontainer.PodStatus: what the runtime has
// of one pod.
type runtimePodStatus struct {
	UID       types.UID
	Name      string
	Namespace string
	// IPs of the newest sandbox, primary first.
	IPs []string
	// SandboxStatuses, newest first.
	SandboxStatuses []*runtimeapi.PodSandboxStatus
	// ContainerStatuses of every container of the pod (all sandboxes), newest first.
	ContainerStatuses []*containerStatus
}

// containerStatus is kubecontainer.Status: one container as the runtime reports it.
type containerStatus struct {
	ID           string
	SandboxID    string
	Name         string
	State        runtimeapi.ContainerState
	CreatedAt    time.Time
	StartedAt    time.Time
	FinishedAt   time.Time
	ExitCode     int32
	Reason       string
	Message      string
	Image        string
	ImageRef     string
	RestartCount int
	Hash         string
	LogPath      string
}

// FindContainerStatusByName returns the newest container of that name, or nil.
func (s *runtimePodStatus) FindContainerStatusByName(name string) *containerStatus {
	for _, c := range s.ContainerStatuses {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// containersByName returns every container of that name, newest first.
func (s *runtimePodStatus) containersByName(name string) []*containerStatus {
	var out []*containerStatus
	for _, c := range s.ContainerStatuses {
		if c.Name == name {
			out = append(out, c)
		}
	}
	return out
}

func (s *runtimePodStatus) runningContainers() []*containerStatus {
	var out []*containerStatus
	for _, c := range s.ContainerStatuses {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			out = append(out, c)
		}
	}
	return out
}

// getPodStatus asks the runtime for the pod's sandboxes and containers
// (kuberuntime_manager.go GetPodStatus).
func getPodStatus(ctx context.Context, rs cri.RuntimeService, uid types.UID, name, namespace string) (*runtimePodStatus, error) {
	sel := map[string]string{labelPodUID: string(uid)}
	sandboxes, err := rs.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("list sandboxes of pod %s: %w", uid, err)
	}
	sort.Slice(sandboxes, func(i, j int) bool { return sandboxes[i].CreatedAt > sandboxes[j].CreatedAt })
	st := &runtimePodStatus{UID: uid, Name: name, Namespace: namespace}
	for i, s := range sandboxes {
		resp, err := rs.PodSandboxStatus(ctx, s.Id, false)
		if err != nil {
			return nil, fmt.Errorf("status of sandbox %s: %w", s.Id, err)
		}
		if resp.GetStatus() == nil {
			continue
		}
		st.SandboxStatuses = append(st.SandboxStatuses, resp.Status)
		if i == 0 && resp.Status.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			st.IPs = sandboxIPs(resp.Status)
		}
	}
	containers, err := rs.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("list containers of pod %s: %w", uid, err)
	}
	for _, c := range containers {
		resp, err := rs.ContainerStatus(ctx, c.Id, false)
		if err != nil {
			return nil, fmt.Errorf("status of container %s: %w", c.Id, err)
		}
		if resp.GetStatus() == nil {
			continue
		}
		cs := toContainerStatus(resp.Status)
		cs.SandboxID = c.PodSandboxId
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	sort.SliceStable(st.ContainerStatuses, func(i, j int) bool {
		a, b := st.ContainerStatuses[i], st.ContainerStatuses[j]
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.After(b.CreatedAt)
		}
		return a.RestartCount > b.RestartCount
	})
	return st, nil
}

func sandboxIPs(s *runtimeapi.PodSandboxStatus) []string {
	n := s.GetNetwork()
	if n == nil || n.Ip == "" {
		return nil
	}
	ips := []string{n.Ip}
	for _, ip := range n.AdditionalIps {
		if ip.GetIp() != "" {
			ips = append(ips, ip.Ip)
		}
	}
	return ips
}

func toContainerStatus(s *runtimeapi.ContainerStatus) *containerStatus {
	cs := &containerStatus{
		ID:       s.Id,
		Name:     s.GetMetadata().GetName(),
		State:    s.State,
		ExitCode: s.ExitCode,
		Reason:   s.Reason,
		Message:  s.Message,
		Image:    s.GetImage().GetImage(),
		ImageRef: s.ImageRef,
		LogPath:  s.LogPath,
		Hash:     s.Annotations[annotationContainerHash],
	}
	if u := s.GetImage().GetUserSpecifiedImage(); u != "" {
		cs.Image = u
	}
	if s.CreatedAt > 0 {
		cs.CreatedAt = time.Unix(0, s.CreatedAt)
	}
	if s.StartedAt > 0 {
		cs.StartedAt = time.Unix(0, s.StartedAt)
	}
	if s.FinishedAt > 0 {
		cs.FinishedAt = time.Unix(0, s.FinishedAt)
	}
	if v, ok := s.Annotations[annotationRestartCount]; ok {
		cs.RestartCount, _ = strconv.Atoi(v)
	} else {
		cs.RestartCount = int(s.GetMetadata().GetAttempt())
	}
	return cs
}

// pleg is the kubelet's generic PLEG: it relists the runtime and reports which
// pods changed since the last relist.
type pleg struct {
	runtime cri.RuntimeService
	// last state of each sandbox ("s/<id>") and container ("c/<id>") and the pod
	// each belongs to.
	last   map[string]string
	owners map[string]types.UID
}

// runtimePodMeta is what the runtime's labels and metadata say about a pod.
type runtimePodMeta struct {
	Name, Namespace string
}

func newPLEG(rs cri.RuntimeService) *pleg {
	return &pleg{runtime: rs, last: map[string]string{}}
}

// relist returns the pods whose sandboxes or containers changed state (or
// appeared or disappeared) and every pod the runtime has.
func (p *pleg) relist(ctx context.Context) (map[types.UID]bool, map[types.UID]runtimePodMeta, error) {
	sandboxes, err := p.runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("list sandboxes: %w", err)
	}
	containers, err := p.runtime.ListContainers(ctx, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("list containers: %w", err)
	}
	changed := map[types.UID]bool{}
	present := map[types.UID]runtimePodMeta{}
	owner := map[string]types.UID{}
	cur := map[string]string{}
	for _, s := range sandboxes {
		uid := types.UID(s.Labels[labelPodUID])
		if uid == "" {
			continue
		}
		present[uid] = runtimePodMeta{Name: s.GetMetadata().GetName(), Namespace: s.GetMetadata().GetNamespace()}
		key := "s/" + s.Id
		cur[key] = s.State.String()
		owner[key] = uid
	}
	for _, c := range containers {
		uid := types.UID(c.Labels[labelPodUID])
		if uid == "" {
			continue
		}
		if _, ok := present[uid]; !ok {
			present[uid] = runtimePodMeta{Name: c.Labels[labelPodName], Namespace: c.Labels[labelPodNamespace]}
		}
		key := "c/" + c.Id
		cur[key] = c.State.String()
		owner[key] = uid
	}
	for key, state := range cur {
		if p.last[key] != state {
			changed[owner[key]] = true
		}
	}
	for key := range p.last {
		if _, ok := cur[key]; !ok {
			if uid, ok := p.lastOwner(key); ok {
				changed[uid] = true
			}
		}
	}
	p.last = cur
	p.owners = owner
	return changed, present, nil
}

func (p *pleg) lastOwner(key string) (types.UID, bool) {
	uid, ok := p.owners[key]
	return uid, ok
}

// orphanPod synthesises a pod object for runtime state that has no pod.
func orphanPod(uid types.UID, meta runtimePodMeta) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: uid, Name: meta.Name, Namespace: meta.Namespace}}
}
