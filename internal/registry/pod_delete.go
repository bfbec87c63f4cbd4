package registry

import (
	"context"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/peapod-dev/peapod/internal/store"
)

// errDeleteNow and errDeletePending end the graceful-deletion update early.
var (
	errDeleteNow     = errors.New("delete immediately")
	errDeletePending = errors.New("graceful deletion pending")
)

// deletePod is the generic registry's graceful deletion with the pod
// strategy: the first DELETE sets deletionTimestamp = now + grace and
// deletionGracePeriodSeconds; a later one may only shorten it; a grace of 0
// (or a pod that already finished) removes the object at once.
func (r *Registry) deletePod(ctx context.Context, res *Resource, ns, name string, o *metav1.DeleteOptions) (store.Object, bool, error) {
	var current store.Object
	updated, err := r.store.GuaranteedUpdate(ctx, res.Name, ns, name, nil, func(cur store.Object) (store.Object, error) {
		current = cur
		if err := checkDeletePreconditions(res, cur, o.Preconditions); err != nil {
			return nil, err
		}
		pod := copyObject(cur).(*corev1.Pod)
		graceful, pending := r.beforeDelete(pod, o)
		switch {
		case pending:
			return nil, errDeletePending
		case !graceful || *o.GracePeriodSeconds == 0:
			return nil, errDeleteNow
		case isDryRun(o.DryRun):
			current = pod
			return nil, errDeletePending
		}
		return pod, nil
	})
	switch {
	case errors.Is(err, errDeletePending):
		return current, false, nil
	case errors.Is(err, errDeleteNow):
		if isDryRun(o.DryRun) {
			return current, true, nil
		}
		gone, err := r.store.Delete(ctx, res.Name, ns, name, &metav1.Preconditions{UID: ptrUID(current)})
		if err != nil {
			return nil, false, toAPIError(err, res, name)
		}
		r.maybeFinalizeNamespace(ctx, ns)
		return gone, true, nil
	case err != nil:
		return nil, false, toAPIError(err, res, name)
	}
	return updated, false, nil
}

// beforeDelete is rest.BeforeDelete with the pod strategy's
// CheckGracefulDelete. It sets o.GracePeriodSeconds and, when graceful,
// the pod's deletion fields.
func (r *Registry) beforeDelete(pod *corev1.Pod, o *metav1.DeleteOptions) (graceful, pending bool) {
	// Negative grace periods are likely mistakes; 1s is the safe reading.
	if o.GracePeriodSeconds != nil && *o.GracePeriodSeconds < 0 {
		o.GracePeriodSeconds = ptr.To[int64](1)
	}
	if pod.DeletionTimestamp != nil {
		// Already being deleted: a grace of 0 recorded earlier means the
		// delete itself failed, so finish it.
		if pod.DeletionGracePeriodSeconds == nil || *pod.DeletionGracePeriodSeconds == 0 {
			return false, false
		}
		if o.GracePeriodSeconds == nil || *o.GracePeriodSeconds >= *pod.DeletionGracePeriodSeconds {
			o.GracePeriodSeconds = pod.DeletionGracePeriodSeconds
			return false, true
		}
		// Only a shorter grace period may replace the pending one.
		ts := metav1.NewTime(pod.DeletionTimestamp.
			Add(-time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second).
			Add(time.Duration(*o.GracePeriodSeconds) * time.Second))
		pod.DeletionTimestamp = &ts
		pod.DeletionGracePeriodSeconds = ptr.To(*o.GracePeriodSeconds)
		return true, false
	}

	period := int64(0)
	if o.GracePeriodSeconds != nil {
		period = *o.GracePeriodSeconds
	} else if pod.Spec.TerminationGracePeriodSeconds != nil {
		period = *pod.Spec.TerminationGracePeriodSeconds
	}
	if pod.Spec.NodeName == "" || pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded {
		period = 0
	}
	if period < 0 {
		period = 1
	}
	o.GracePeriodSeconds = ptr.To(period)
	ts := metav1.NewTime(r.clock.Now().Add(time.Duration(period) * time.Second).Truncate(time.Second))
	pod.DeletionTimestamp = &ts
	pod.DeletionGracePeriodSeconds = ptr.To(period)
	if pod.Generation > 0 {
		pod.Generation++
	}
	return true, false
}
