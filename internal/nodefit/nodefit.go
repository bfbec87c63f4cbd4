// Package nodefit holds the scheduler's and the kubelet's checks of whether a
// pod fits a node: node selector and required node affinity against the
// node's labels (NodeAffinity), and the pod's requests against the node's
// allocatable resources minus those of the pods already there
// (NodeResourcesFit). The registry uses it to bind pods; the pod manager to
// admit pods bound to its node by hand.
package nodefit

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// MatchesNode reports whether the pod's nodeSelector and required node
// affinity accept the node.
func MatchesNode(pod *corev1.Pod, node *corev1.Node) bool {
	if !labels.SelectorFromSet(pod.Spec.NodeSelector).Matches(labels.Set(node.Labels)) {
		return false
	}
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return true
	}
	// Terms are ORed, the requirements of a term ANDed.
	for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		if termMatches(term, node) {
			return true
		}
	}
	return false
}

var nodeSelectorOps = map[corev1.NodeSelectorOperator]selection.Operator{
	corev1.NodeSelectorOpIn:           selection.In,
	corev1.NodeSelectorOpNotIn:        selection.NotIn,
	corev1.NodeSelectorOpExists:       selection.Exists,
	corev1.NodeSelectorOpDoesNotExist: selection.DoesNotExist,
	corev1.NodeSelectorOpGt:           selection.GreaterThan,
	corev1.NodeSelectorOpLt:           selection.LessThan,
}

func termMatches(term corev1.NodeSelectorTerm, node *corev1.Node) bool {
	if len(term.MatchExpressions) == 0 && len(term.MatchFields) == 0 {
		return false
	}
	for _, e := range term.MatchExpressions {
		op, ok := nodeSelectorOps[e.Operator]
		if !ok {
			return false
		}
		values := e.Values
		if op == selection.Exists || op == selection.DoesNotExist {
			values = nil
		}
		req, err := labels.NewRequirement(e.Key, op, values)
		if err != nil || !req.Matches(labels.Set(node.Labels)) {
			return false
		}
	}
	for _, f := range term.MatchFields {
		if f.Key != "metadata.name" {
			return false
		}
		in := false
		for _, v := range f.Values {
			in = in || v == node.Name
		}
		if (f.Operator == corev1.NodeSelectorOpIn) != in {
			return false
		}
	}
	return true
}

// Shortage is one resource the node lacks for the pod, in the kubelet's
// units (milli-CPU for cpu, else the value).
type Shortage struct {
	Name                      corev1.ResourceName
	Requested, Used, Capacity int64
}

// Insufficient lists the resources the node lacks for the pod given the pods
// already on it (which must not include pod), sorted by name; "pods" when the
// node's pod count is reached.
func Insufficient(pod *corev1.Pod, node *corev1.Node, others []*corev1.Pod) []Shortage {
	used := corev1.ResourceList{}
	for _, o := range others {
		addList(used, PodRequests(o))
	}
	var out []Shortage
	if max, ok := node.Status.Allocatable[corev1.ResourcePods]; ok && int64(len(others))+1 > max.Value() {
		out = append(out, Shortage{Name: corev1.ResourcePods, Requested: 1, Used: int64(len(others)), Capacity: max.Value()})
	}
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceEphemeralStorage, corev1.ResourceMemory} {
		want := PodRequests(pod)[name]
		alloc, ok := node.Status.Allocatable[name]
		if want.IsZero() || !ok {
			continue
		}
		u := used[name]
		value := func(q resource.Quantity) int64 {
			if name == corev1.ResourceCPU {
				return q.MilliValue()
			}
			return q.Value()
		}
		if value(want)+value(u) > value(alloc) {
			out = append(out, Shortage{Name: name, Requested: value(want), Used: value(u), Capacity: value(alloc)})
		}
	}
	return out
}

// PodRequests is the scheduler's effective request of a pod: the larger of
// the sum of the app containers' and sidecars' requests and each regular init
// container's (beside the sidecars started before it), plus the overhead.
func PodRequests(pod *corev1.Pod) corev1.ResourceList {
	reqs := corev1.ResourceList{}
	sidecars := corev1.ResourceList{}
	for _, c := range pod.Spec.Containers {
		addList(reqs, c.Resources.Requests)
	}
	initMax := corev1.ResourceList{}
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			addList(sidecars, c.Resources.Requests)
			continue
		}
		cur := sidecars.DeepCopy()
		addList(cur, c.Resources.Requests)
		for name, q := range cur {
			if m, ok := initMax[name]; !ok || q.Cmp(m) > 0 {
				initMax[name] = q.DeepCopy()
			}
		}
	}
	addList(reqs, sidecars)
	for name, q := range initMax {
		if m, ok := reqs[name]; !ok || q.Cmp(m) > 0 {
			reqs[name] = q.DeepCopy()
		}
	}
	addList(reqs, pod.Spec.Overhead)
	return reqs
}

func addList(dst, src corev1.ResourceList) {
	for name, q := range src {
		cur := dst[name]
		cur.Add(q)
		dst[name] = cur
	}
}
