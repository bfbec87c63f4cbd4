package podmanager

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	plog "github.com/peapod-dev/peapod/internal/log"
	"github.com/peapod-dev/peapod/internal/nodefit"
)

// NodeGetter gives the pod manager its Node object (labels, allocatable) for
// admission.
type NodeGetter interface {
	GetNode(ctx context.Context, name string) (*corev1.Node, error)
}

// admitPod is the kubelet's canAdmitPod with its predicate admit handler,
// run once for a pod new to this node (a pod that has started before, or has
// a sandbox, was admitted earlier): a pod bound here by hand (spec.nodeName)
// whose node selector or required affinity does not match the node, or whose
// requests do not fit beside the admitted pods, is rejected. It returns the
// reason and message ("NodeAffinity", "OutOfcpu", …) or "" to admit.
func (m *Manager) admitPod(ctx context.Context, pod *corev1.Pod) (reason, message string) {
	if m.cfg.Node == nil {
		return "", ""
	}
	node, err := m.cfg.Node.GetNode(ctx, m.cfg.NodeName)
	if err != nil {
		// Without the Node there is nothing to check against; the kubelet
		// admits too when its node lister has no node yet.
		plog.FromContext(ctx).Warn("admitting without the node object", "err", err)
		return "", ""
	}
	if !nodefit.MatchesNode(pod, node) {
		return "NodeAffinity", "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"
	}
	if s := nodefit.Insufficient(pod, node, m.admittedPods(pod.UID)); len(s) > 0 {
		return "OutOf" + string(s[0].Name), fmt.Sprintf("Node didn't have enough resource: %s, requested: %d, used: %d, capacity: %d",
			s[0].Name, s[0].Requested, s[0].Used, s[0].Capacity)
	}
	return "", ""
}

// admittedPods are the active pods the node runs besides uid: admitted, not
// terminal, not being removed.
func (m *Manager) admittedPods(uid types.UID) []*corev1.Pod {
	m.mu.Lock()
	defer m.mu.Unlock()
	var pods []*corev1.Pod
	for id, rec := range m.pods {
		if id == uid || rec.pod == nil || rec.orphan || rec.removed || rec.terminated || !rec.admitted ||
			isTerminalPhase(rec.pod.Status.Phase) {
			continue
		}
		pods = append(pods, rec.pod)
	}
	return pods
}

// admit runs admission for a pod the node has not admitted yet and records the
// outcome; it returns false when the pod was rejected (and its status written).
func (m *Manager) admit(ctx context.Context, pod *corev1.Pod, podStatus *runtimePodStatus) (bool, error) {
	m.mu.Lock()
	rec := m.pods[pod.UID]
	done := rec == nil || rec.admitted
	m.mu.Unlock()
	if done {
		return true, nil
	}
	// Pods that ran before (a daemon restart) were admitted then.
	if pod.Status.StartTime == nil && len(podStatus.SandboxStatuses) == 0 {
		if reason, msg := m.admitPod(ctx, pod); reason != "" {
			msg = "Pod was rejected: " + msg
			plog.FromContext(ctx).Info("pod rejected", "reason", reason, "message", msg)
			m.recordEvent(ctx, pod, corev1.EventTypeWarning, reason, msg)
			s := m.generateAPIPodStatus(pod, podStatus, false)
			s.Phase, s.Reason, s.Message = corev1.PodFailed, reason, msg
			return false, m.status.setPodStatus(ctx, pod, s)
		}
	}
	m.mu.Lock()
	if rec := m.pods[pod.UID]; rec != nil {
		rec.admitted = true
	}
	m.mu.Unlock()
	return true, nil
}
