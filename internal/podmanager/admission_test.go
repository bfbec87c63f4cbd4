package podmanager

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type fakeNode struct{ node *corev1.Node }

func (f fakeNode) GetNode(_ context.Context, name string) (*corev1.Node, error) {
	return f.node, nil
}

func requestingCPU(cpu string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}
	}
}

func TestAdmission(t *testing.T) {
	mismatch := testPod("mismatch", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"disktype": "ssd"} })
	first := testPod("first", requestingCPU("1500m"))
	second := testPod("second", requestingCPU("1500m"))
	// A pod that started before a daemon restart was admitted then: it is not
	// checked again, even if the node's labels changed meanwhile.
	adopted := testPod("adopted", func(p *corev1.Pod) {
		p.Spec.NodeSelector = map[string]string{"disktype": "ssd"}
		p.Status.StartTime = &metav1.Time{Time: p.CreationTimestamp.Time}
	})
	env := newTestEnv(t, mismatch, first, second, adopted)
	env.m.cfg.Node = fakeNode{&corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node1", Labels: map[string]string{corev1.LabelHostname: "node1"}},
		Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("4Gi"), corev1.ResourcePods: resource.MustParse("110"),
		}},
	}}
	for _, p := range []*corev1.Pod{mismatch, first, second, adopted} {
		env.sync(t, p.UID)
	}
	for _, c := range []struct {
		pod             *corev1.Pod
		reason, message string
	}{
		{mismatch, "NodeAffinity", "Pod was rejected: Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"},
		{second, "OutOfcpu", "Pod was rejected: Node didn't have enough resource: cpu, requested: 1500, used: 1500, capacity: 2000"},
	} {
		got := env.store.pod(c.pod.UID).Status
		if got.Phase != corev1.PodFailed || got.Reason != c.reason || got.Message != c.message {
			t.Errorf("%s: phase %s reason %q message %q; want Failed %q %q", c.pod.Name, got.Phase, got.Reason, got.Message, c.reason, c.message)
		}
		if want := "Warning " + c.reason + " " + c.message; !slices.Contains(env.store.eventList(), want) {
			t.Errorf("%s: no event %q in %q", c.pod.Name, want, env.store.eventList())
		}
	}
	for _, p := range []*corev1.Pod{first, adopted} {
		if got := env.store.pod(p.UID).Status; got.Phase == corev1.PodFailed {
			t.Errorf("%s: rejected: %s %s", p.Name, got.Reason, got.Message)
		}
	}
	// Only the admitted pods got sandboxes; the rejected ones stay without.
	if n := len(env.sandboxes()); n != 2 {
		t.Errorf("%d sandboxes, want 2 (first and adopted)", n)
	}
	// A rejected pod stays rejected on later syncs.
	env.sync(t, second.UID)
	if got := env.store.pod(second.UID).Status; got.Phase != corev1.PodFailed || len(env.sandboxes()) != 2 {
		t.Errorf("after another sync: %s, %d sandboxes", got.Phase, len(env.sandboxes()))
	}
}
