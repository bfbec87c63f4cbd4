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
