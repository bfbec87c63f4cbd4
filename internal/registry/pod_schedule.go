package registry

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/peapod-dev/peapod/internal/store"
)

// unschedulable returns the scheduler's message when the pod cannot be bound
// to the node ("0/1 nodes are available: 1 node(s) didn't match Pod's node
// affinity/selector."), or "" when it fits. It runs the scheduler's filters
// that matter on one node: NodeName, NodeAffinity (nodeSelector and required
// node affinity) and NodeResourcesFit (requests against allocatable minus the
// requests of the pods already bound and not finished).
func (r *Registry) unschedulable(ctx context.Context, pod *corev1.Pod) string {
	obj, err := r.store.Get(ctx, "nodes", "", r.nodeName)
	if err != nil {
		// No Node object yet (start-up): bind as before.
		return ""
	}
	node := obj.(*corev1.Node)
	var reasons []string
	if !matchesNodeSelector(pod, node) {
		reasons = append(reasons, "1 node(s) didn't match Pod's node affinity/selector")
	}
	if len(reasons) == 0 {
		reasons = r.insufficient(ctx, pod, node)
	}
	if len(reasons) == 0 {
		return ""
	}
	sort.Strings(reasons)
	return fmt.Sprintf("0/1 nodes are available: %s. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.", strings.Join(reasons, ", "))
}

// recordSchedulingEvent records the scheduler's event about a created pod:
// Scheduled when it was bound, FailedScheduling when it stays Pending.
func (r *Registry) recordSchedulingEvent(ctx context.Context, pod *corev1.Pod) {
	for _, c := range pod.Status.Conditions {
		if c.Type != corev1.PodScheduled {
			continue
		}
		if c.Status == corev1.ConditionTrue {
			r.recordEventFrom(ctx, "default-scheduler", pod, "", corev1.EventTypeNormal, "Scheduled",
				fmt.Sprintf("Successfully assigned %s/%s to %s", pod.Namespace, pod.Name, pod.Spec.NodeName))
		} else {
			r.recordEventFrom(ctx, "default-scheduler", pod, "", corev1.EventTypeWarning, "FailedScheduling", c.Message)
		}
	}
}

func matchesNodeSelector(pod *corev1.Pod, node *corev1.Node) bool {
	if !labels.SelectorFromSet(pod.Spec.NodeSelector).Matches(labels.Set(node.Labels)) {
		return false
	}
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return true
	}
	// Terms are ORed, the expressions of a term ANDed.
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

// insufficient is NodeResourcesFit: "Insufficient cpu", "Too many pods".
func (r *Registry) insufficient(ctx context.Context, pod *corev1.Pod, node *corev1.Node) []string {
	list, err := r.store.List(ctx, "pods", store.ListOptions{Filter: func(o store.Object) bool {
		p := o.(*corev1.Pod)
		return p.Spec.NodeName == r.nodeName && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
	}})
	if err != nil {
		return nil
	}
	used := corev1.ResourceList{}
	for _, o := range list.Items {
		addList(used, podRequests(o.(*corev1.Pod)))
	}
	var reasons []string
	if max, ok := node.Status.Allocatable[corev1.ResourcePods]; ok && int64(len(list.Items))+1 > max.Value() {
		reasons = append(reasons, "1 Too many pods")
	}
	for name, want := range podRequests(pod) {
		if want.IsZero() {
			continue
		}
		alloc, ok := node.Status.Allocatable[name]
		if !ok {
			continue
		}
		total := used[name].DeepCopy()
		total.Add(want)
		if total.Cmp(alloc) > 0 {
			reasons = append(reasons, "1 Insufficient "+string(name))
		}
	}
	return reasons
}

// podRequests is the scheduler's effective request: the larger of the sum of
// the app containers' (and sidecars') requests and each init container's.
func podRequests(pod *corev1.Pod) corev1.ResourceList {
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
		// A regular init container runs beside the sidecars started before it.
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
		cur, ok := dst[name]
		if !ok {
			cur = resource.Quantity{}
		}
		cur.Add(q)
		dst[name] = cur
	}
}
