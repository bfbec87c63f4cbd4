package registry

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/peapod-dev/peapod/internal/nodefit"
	"github.com/peapod-dev/peapod/internal/store"
)

// unschedulable returns the scheduler's message when the pod cannot be bound
// to the node ("0/1 nodes are available: 1 node(s) didn't match Pod's node
// affinity/selector."), or "" when it fits. It runs the scheduler's filters
// that matter on one node (internal/nodefit): NodeAffinity (nodeSelector and
// required node affinity) and NodeResourcesFit (requests against allocatable
// minus the requests of the pods already bound and not finished).
func (r *Registry) unschedulable(ctx context.Context, pod *corev1.Pod) string {
	obj, err := r.store.Get(ctx, "nodes", "", r.nodeName)
	if err != nil {
		// No Node object yet (start-up): bind as before.
		return ""
	}
	node := obj.(*corev1.Node)
	var reasons []string
	if !nodefit.MatchesNode(pod, node) {
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

// scheduleUnbound retries the pods left Pending, oldest first, as the
// scheduler does when a pod leaves the node: each that now fits is bound
// (spec.nodeName, PodScheduled=True, event Scheduled); the pod manager sees
// the binding through its watch.
func (r *Registry) scheduleUnbound(ctx context.Context) {
	r.scheduling.Lock()
	defer r.scheduling.Unlock()
	list, err := r.store.List(ctx, "pods", store.ListOptions{Filter: func(o store.Object) bool {
		p := o.(*corev1.Pod)
		return p.Spec.NodeName == "" && p.DeletionTimestamp == nil
	}})
	if err != nil {
		r.log.Warn("listing pods to schedule", "err", err)
		return
	}
	pods := make([]*corev1.Pod, 0, len(list.Items))
	for _, o := range list.Items {
		pods = append(pods, o.(*corev1.Pod))
	}
	sort.SliceStable(pods, func(i, j int) bool { return pods[i].CreationTimestamp.Before(&pods[j].CreationTimestamp) })
	for _, pod := range pods {
		if r.unschedulable(ctx, pod) != "" {
			continue
		}
		uid := pod.UID
		obj, err := r.store.GuaranteedUpdate(ctx, "pods", pod.Namespace, pod.Name, &metav1.Preconditions{UID: &uid}, func(cur store.Object) (store.Object, error) {
			p := cur.(*corev1.Pod)
			if p.Spec.NodeName != "" {
				return nil, errAlreadyBound
			}
			p.Spec.NodeName = r.nodeName
			conds := []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: r.now()}}
			for _, c := range p.Status.Conditions {
				if c.Type != corev1.PodScheduled {
					conds = append(conds, c)
				}
			}
			p.Status.Conditions = conds
			return p, nil
		})
		if err != nil {
			if !errors.Is(err, errAlreadyBound) && !errors.Is(err, store.ErrNotFound) {
				r.log.Warn("binding a pending pod", "pod", pod.Namespace+"/"+pod.Name, "err", err)
			}
			continue
		}
		r.recordSchedulingEvent(ctx, obj.(*corev1.Pod))
	}
}

var errAlreadyBound = errors.New("pod is already bound")

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

// insufficient is NodeResourcesFit: "1 Insufficient cpu", "1 Too many pods".
func (r *Registry) insufficient(ctx context.Context, pod *corev1.Pod, node *corev1.Node) []string {
	list, err := r.store.List(ctx, "pods", store.ListOptions{Filter: func(o store.Object) bool {
		p := o.(*corev1.Pod)
		return p.Spec.NodeName == r.nodeName && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
	}})
	if err != nil {
		return nil
	}
	others := make([]*corev1.Pod, 0, len(list.Items))
	for _, o := range list.Items {
		others = append(others, o.(*corev1.Pod))
	}
	var reasons []string
	for _, s := range nodefit.Insufficient(pod, node, others) {
		if s.Name == corev1.ResourcePods {
			reasons = append(reasons, "1 Too many pods")
		} else {
			reasons = append(reasons, "1 Insufficient "+string(s.Name))
		}
	}
	return reasons
}
