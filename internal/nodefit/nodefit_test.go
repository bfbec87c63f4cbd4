package nodefit

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func requests(cpu, mem string) corev1.ResourceRequirements {
	r := corev1.ResourceList{}
	if cpu != "" {
		r[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		r[corev1.ResourceMemory] = resource.MustParse(mem)
	}
	return corev1.ResourceRequirements{Requests: r}
}

func TestPodRequests(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{
			{Name: "big-init", Resources: requests("2", "100Mi")},
			{Name: "sidecar", RestartPolicy: &always, Resources: requests("500m", "10Mi")},
			{Name: "init-after-sidecar", Resources: requests("1", "300Mi")},
		},
		Containers: []corev1.Container{
			{Name: "a", Resources: requests("250m", "50Mi")},
			{Name: "b", Resources: requests("250m", "")},
		},
		Overhead: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m")},
	}}
	got := PodRequests(pod)
	// cpu: max(app 500m + sidecar 500m, init 2, sidecar + init 1.5) = 2, + 10m overhead.
	// memory: max(50Mi + 10Mi, 100Mi, 10Mi + 300Mi) = 310Mi.
	if cpu := got[corev1.ResourceCPU]; cpu.MilliValue() != 2010 {
		t.Errorf("cpu %s, want 2010m", cpu.String())
	}
	if mem := got[corev1.ResourceMemory]; mem.Value() != 310<<20 {
		t.Errorf("memory %s, want 310Mi", mem.String())
	}
}

func TestInsufficient(t *testing.T) {
	node := &corev1.Node{Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("1Gi"), corev1.ResourcePods: resource.MustParse("3"),
	}}}
	pod := func(cpu, mem string) *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: requests(cpu, mem)}}}}
	}
	running := []*corev1.Pod{pod("1500m", "100Mi"), pod("", "")}
	if s := Insufficient(pod("500m", "924Mi"), node, running); len(s) != 0 {
		t.Errorf("a pod that just fits: %+v", s)
	}
	s := Insufficient(pod("501m", "2Gi"), node, running)
	if len(s) != 2 || s[0] != (Shortage{Name: corev1.ResourceCPU, Requested: 501, Used: 1500, Capacity: 2000}) || s[1].Name != corev1.ResourceMemory {
		t.Errorf("shortages %+v", s)
	}
	if s := Insufficient(pod("", ""), node, append(running, pod("", ""))); len(s) != 1 || s[0].Name != corev1.ResourcePods {
		t.Errorf("a fourth pod on a node for three: %+v", s)
	}
}

func TestMatchesNode(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"zone": "a", "cores": "8"}}}
	affinity := func(terms ...corev1.NodeSelectorTerm) *corev1.Affinity {
		return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms}}}
	}
	expr := func(key string, op corev1.NodeSelectorOperator, values ...string) corev1.NodeSelectorTerm {
		return corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: key, Operator: op, Values: values}}}
	}
	for _, tc := range []struct {
		name     string
		selector map[string]string
		affinity *corev1.Affinity
		want     bool
	}{
		{"none", nil, nil, true},
		{"selector", map[string]string{"zone": "a"}, nil, true},
		{"selector mismatch", map[string]string{"zone": "b"}, nil, false},
		{"in", nil, affinity(expr("zone", corev1.NodeSelectorOpIn, "a", "b")), true},
		{"notin", nil, affinity(expr("zone", corev1.NodeSelectorOpNotIn, "a")), false},
		{"exists", nil, affinity(expr("zone", corev1.NodeSelectorOpExists)), true},
		{"does not exist", nil, affinity(expr("gpu", corev1.NodeSelectorOpDoesNotExist)), true},
		{"gt", nil, affinity(expr("cores", corev1.NodeSelectorOpGt, "4")), true},
		{"lt", nil, affinity(expr("cores", corev1.NodeSelectorOpLt, "4")), false},
		{"terms are ORed", nil, affinity(expr("zone", corev1.NodeSelectorOpIn, "b"), expr("cores", corev1.NodeSelectorOpIn, "8")), true},
		{"empty term matches nothing", nil, affinity(corev1.NodeSelectorTerm{}), false},
		{"field", nil, affinity(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"n1"}}}}), true},
		{"field not in", nil, affinity(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"n1"}}}}), false},
		{"selector and affinity both apply", map[string]string{"zone": "b"}, affinity(expr("zone", corev1.NodeSelectorOpExists)), false},
	} {
		pod := &corev1.Pod{Spec: corev1.PodSpec{NodeSelector: tc.selector, Affinity: tc.affinity}}
		if got := MatchesNode(pod, node); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
