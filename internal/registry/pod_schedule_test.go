package registry

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestScheduling(t *testing.T) {
	ctx := context.Background()
	r, _ := newRegistry(t)
	if _, err := r.EnsureNode(ctx, NodeOptions{KubeletVersion: "v1", ContainerRuntimeVersion: "peapod://1"}); err != nil {
		t.Fatal(err)
	}
	c := corev1.Container{Name: "c", Image: "i"}
	const noMatch = "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
	selector := pod("selector", c)
	selector.Spec.NodeSelector = map[string]string{"disktype": "ssd"}
	affinity := pod("affinity", c)
	affinity.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{
			{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelOSStable, Operator: corev1.NodeSelectorOpIn, Values: []string{"windows"}}}},
			{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"other"}}}},
		},
	}}}
	big := c
	big.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100000")}
	fits := pod("fits", c)
	fits.Spec.NodeSelector = map[string]string{corev1.LabelHostname: "node1"}
	fits.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{
			{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "missing", Operator: corev1.NodeSelectorOpExists}}},
			{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"node1"}}}},
		},
	}}}
	for _, tc := range []struct {
		pod     *corev1.Pod
		message string
	}{
		{selector, noMatch},
		{affinity, noMatch},
		{pod("big", big), "0/1 nodes are available: 1 Insufficient cpu."},
		{fits, ""},
	} {
		p := createPod(t, r, tc.pod)
		var cond *corev1.PodCondition
		for i := range p.Status.Conditions {
			if p.Status.Conditions[i].Type == corev1.PodScheduled {
				cond = &p.Status.Conditions[i]
			}
		}
		if tc.message == "" {
			if p.Spec.NodeName != "node1" || cond == nil || cond.Status != corev1.ConditionTrue {
				t.Errorf("%s: nodeName %q PodScheduled %+v, want bound", p.Name, p.Spec.NodeName, cond)
			}
			continue
		}
		if p.Spec.NodeName != "" || cond == nil || cond.Status != corev1.ConditionFalse || cond.Reason != corev1.PodReasonUnschedulable || !strings.HasPrefix(cond.Message, tc.message) {
			t.Errorf("%s: nodeName %q PodScheduled %+v, want unbound, Unschedulable %q", p.Name, p.Spec.NodeName, cond, tc.message)
		}
	}
}

// A pod left Pending for want of CPU is bound once a pod on the node finishes
// or is removed, oldest first.
func TestSchedulingRetry(t *testing.T) {
	ctx := context.Background()
	r, _ := newRegistry(t)
	node, err := r.EnsureNode(ctx, NodeOptions{KubeletVersion: "v1", ContainerRuntimeVersion: "peapod://1"})
	if err != nil {
		t.Fatal(err)
	}
	cpu := node.Status.Allocatable[corev1.ResourceCPU]
	requesting := func(name string, q resource.Quantity) *corev1.Pod {
		c := corev1.Container{Name: "c", Image: "i"}
		c.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: q}
		return pod(name, c)
	}
	all := createPod(t, r, requesting("all", cpu))
	// Each waiting pod wants the whole node too: only one fits at a time.
	waiting1 := createPod(t, r, requesting("waiting1", cpu))
	waiting2 := createPod(t, r, requesting("waiting2", cpu))
	bound := func(p *corev1.Pod) string {
		got, err := r.Pods().GetPod(ctx, p.Namespace, p.Name)
		if err != nil {
			t.Fatal(err)
		}
		return got.Spec.NodeName
	}
	if bound(all) != "node1" || bound(waiting1) != "" || bound(waiting2) != "" {
		t.Fatalf("bindings: %q %q %q", bound(all), bound(waiting1), bound(waiting2))
	}
	// The first pod finishes: the older waiting pod takes its place.
	done := all.DeepCopy()
	done.Status.Phase = corev1.PodSucceeded
	if _, err := r.Pods().UpdatePodStatus(ctx, done); err != nil {
		t.Fatal(err)
	}
	if bound(waiting1) != "node1" || bound(waiting2) != "" {
		t.Fatalf("after the first pod finished: %q %q", bound(waiting1), bound(waiting2))
	}
	got, _ := r.Pods().GetPod(ctx, "default", "waiting1")
	for _, c := range got.Status.Conditions {
		if c.Type == corev1.PodScheduled && (c.Status != corev1.ConditionTrue || c.Reason != "") {
			t.Errorf("PodScheduled after binding: %+v", c)
		}
	}
	// waiting1 is removed by the pod manager: waiting2 is bound.
	if err := r.Pods().DeletePodFinal(ctx, "default", "waiting1", waiting1.UID); err != nil {
		t.Fatal(err)
	}
	if bound(waiting2) != "node1" {
		t.Fatalf("after waiting1 was removed: waiting2 on %q", bound(waiting2))
	}
}
