package registry

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/peapod-dev/peapod/internal/store"
)

// EvictPod is pods/eviction: peapod serves no PodDisruptionBudgets, so an
// eviction deletes the pod gracefully with the eviction's DeleteOptions, as
// the kube-apiserver does for a pod no budget covers. A missing pod is 404.
func (r *Registry) EvictPod(ctx context.Context, ns, name string, o *metav1.DeleteOptions) error {
	res := r.resources["pods"]
	if _, err := r.Get(ctx, res, ns, name); err != nil {
		return err
	}
	_, _, err := r.Delete(ctx, res, ns, name, o)
	return err
}

// BindPod is pods/binding (BindingREST): it assigns an unbound pod to
// binding.Target.Name; a pod already assigned, or being deleted, is a 409
// Conflict with the kube-apiserver's message.
func (r *Registry) BindPod(ctx context.Context, ns, name string, b *corev1.Binding, o *metav1.CreateOptions) error {
	res := r.resources["pods"]
	gr := schema.GroupResource{Resource: "pods/binding"}
	if b.Name != name {
		return apierrors.NewBadRequest("name in URL does not match name in Binding object")
	}
	if b.Target.Kind != "" && b.Target.Kind != "Node" {
		return apierrors.NewInvalid(schema.GroupKind{Kind: "Binding"}, name, field.ErrorList{
			field.NotSupported(field.NewPath("target", "kind"), b.Target.Kind, []string{"Node", "<empty>"})})
	}
	if b.Target.Name == "" {
		return apierrors.NewInvalid(schema.GroupKind{Kind: "Binding"}, name, field.ErrorList{
			field.Required(field.NewPath("target", "name"), "")})
	}
	pre := &metav1.Preconditions{}
	if b.UID != "" {
		pre.UID = &b.UID
	}
	if b.ResourceVersion != "" {
		pre.ResourceVersion = &b.ResourceVersion
	}
	var refusal error
	_, err := r.store.GuaranteedUpdate(ctx, res.Name, ns, name, pre, func(cur store.Object) (store.Object, error) {
		pod := copyObject(cur).(*corev1.Pod)
		switch {
		case pod.DeletionTimestamp != nil:
			refusal = fmt.Errorf("pod %s is being deleted, cannot be assigned to a host", pod.Name)
		case pod.Spec.NodeName != "":
			refusal = fmt.Errorf("pod %v is already assigned to node %q", pod.Name, pod.Spec.NodeName)
		}
		if refusal != nil {
			return nil, refusal
		}
		pod.Spec.NodeName = b.Target.Name
		if pod.Annotations == nil && len(b.Annotations) > 0 {
			pod.Annotations = map[string]string{}
		}
		for k, v := range b.Annotations {
			pod.Annotations[k] = v
		}
		cond := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: r.now()}
		replaced := false
		for i := range pod.Status.Conditions {
			if pod.Status.Conditions[i].Type == corev1.PodScheduled {
				pod.Status.Conditions[i], replaced = cond, true
			}
		}
		if !replaced {
			pod.Status.Conditions = append(pod.Status.Conditions, cond)
		}
		if o != nil && isDryRun(o.DryRun) {
			return nil, errDryRun
		}
		return pod, nil
	})
	switch {
	case errors.Is(err, errDryRun):
		return nil
	case refusal != nil:
		return apierrors.NewConflict(gr, name, refusal)
	}
	return toAPIError(err, res, name)
}
