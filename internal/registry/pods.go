package registry

import (
	"context"
	"errors"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/peapod-dev/peapod/internal/store"
)

// Pods is the registry as the pod manager uses it, in-process.
type Pods struct{ r *Registry }

// Pods returns the pod manager's view of the registry.
func (r *Registry) Pods() *Pods { return &Pods{r: r} }

func (p *Pods) res() *Resource { return p.r.resources["pods"] }

// ListPods returns every pod and the resourceVersion to watch from.
func (p *Pods) ListPods(ctx context.Context) ([]*corev1.Pod, string, error) {
	list, err := p.r.List(ctx, p.res(), "", nil)
	if err != nil {
		return nil, "", err
	}
	pl := list.(*corev1.PodList)
	pods := make([]*corev1.Pod, len(pl.Items))
	for i := range pl.Items {
		pods[i] = &pl.Items[i]
	}
	return pods, pl.ResourceVersion, nil
}

// WatchPods streams pod changes after resourceVersion rv (all current pods
// as ADDED first when rv is "" or "0"). Event objects are *corev1.Pod.
func (p *Pods) WatchPods(ctx context.Context, rv string) (watch.Interface, error) {
	return p.r.Watch(ctx, p.res(), "", &metav1.ListOptions{ResourceVersion: rv})
}

// GetPod returns one pod.
func (p *Pods) GetPod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	obj, err := p.r.Get(ctx, p.res(), namespace, name)
	if err != nil {
		return nil, err
	}
	return obj.(*corev1.Pod), nil
}

// UpdatePodStatus writes pod.Status as the kubelet's status manager does:
// only the status changes, and only on the pod with pod.UID (Conflict if
// the pod was replaced, NotFound if it is gone).
func (p *Pods) UpdatePodStatus(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error) {
	uid := pod.UID
	obj, err := p.r.store.GuaranteedUpdate(ctx, "pods", pod.Namespace, pod.Name, &metav1.Preconditions{UID: &uid}, func(cur store.Object) (store.Object, error) {
		c := cur.(*corev1.Pod)
		c.Status = *pod.Status.DeepCopy()
		return c, nil
	})
	if err != nil {
		return nil, toAPIError(err, p.res(), pod.Name)
	}
	if ph := pod.Status.Phase; ph == corev1.PodSucceeded || ph == corev1.PodFailed {
		// Its requests no longer count: pods left Pending may fit now.
		p.r.scheduleUnbound(ctx)
	}
	return obj.(*corev1.Pod), nil
}

// DeletePodFinal removes a pod the pod manager has stopped: the kubelet's
// delete with grace 0 and a UID precondition. A pod already gone is not an
// error.
func (p *Pods) DeletePodFinal(ctx context.Context, namespace, name string, uid types.UID) error {
	_, err := p.r.store.Delete(ctx, "pods", namespace, name, &metav1.Preconditions{UID: &uid})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return toAPIError(err, p.res(), name)
	}
	p.r.maybeFinalizeNamespace(ctx, namespace)
	p.r.scheduleUnbound(ctx)
	return nil
}

// RecordEvent records an event about the pod from the kubelet.
func (p *Pods) RecordEvent(ctx context.Context, pod *corev1.Pod, eventType, reason, message string) {
	p.r.recordEvent(ctx, pod, "", eventType, reason, message)
}

// RecordContainerEvent records an event about one container of the pod;
// fieldPath names it as the kubelet does ("spec.containers{name}").
func (p *Pods) RecordContainerEvent(ctx context.Context, pod *corev1.Pod, fieldPath, eventType, reason, message string) {
	p.r.recordEvent(ctx, pod, fieldPath, eventType, reason, message)
}
