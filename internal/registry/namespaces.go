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
	"k8s.io/utils/ptr"

	"github.com/peapod-dev/peapod/internal/store"
)

// systemNamespaces exist in every cluster; the first three may not be deleted.
var (
	systemNamespaces   = []string{metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic, corev1.NamespaceNodeLease}
	immortalNamespaces = map[string]bool{metav1.NamespaceDefault: true, metav1.NamespaceSystem: true, metav1.NamespacePublic: true}
)

type namespaceStrategy struct{}

func (namespaceStrategy) prepareForCreate(ctx context.Context, r *Registry, obj store.Object) {
	ns := obj.(*corev1.Namespace)
	ns.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
	ns.Spec.Finalizers = []corev1.FinalizerName{corev1.FinalizerKubernetes}
	setNamespaceNameLabel(ns)
}

// setNamespaceNameLabel is the namespace defaulting every server applies.
func setNamespaceNameLabel(ns *corev1.Namespace) {
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	ns.Labels[corev1.LabelMetadataName] = ns.Name
}

func (namespaceStrategy) validate(obj store.Object) field.ErrorList { return nil }

func (namespaceStrategy) prepareForUpdate(obj, old store.Object) {
	ns, oldNS := obj.(*corev1.Namespace), old.(*corev1.Namespace)
	ns.Spec.Finalizers = oldNS.Spec.Finalizers
	ns.Status = oldNS.Status
	setNamespaceNameLabel(ns)
}

func (namespaceStrategy) validateUpdate(obj, old store.Object) field.ErrorList { return nil }

func (namespaceStrategy) prepareForStatusUpdate(obj, old store.Object) {
	ns, oldNS := obj.(*corev1.Namespace), old.(*corev1.Namespace)
	status, managed := ns.Status, ns.ManagedFields
	*ns = *oldNS.DeepCopy()
	ns.Status, ns.ManagedFields = status, managed
}

func (namespaceStrategy) validateStatusUpdate(obj, old store.Object) field.ErrorList {
	ns, oldNS := obj.(*corev1.Namespace), old.(*corev1.Namespace)
	if oldNS.DeletionTimestamp != nil && ns.Status.Phase != corev1.NamespaceTerminating {
		return field.ErrorList{field.Invalid(field.NewPath("status", "Phase"), ns.Status.Phase,
			fmt.Sprintf("A namespace may not be set to %s when it has a deletion timestamp", ns.Status.Phase))}
	}
	return nil
}

func (r *Registry) ensureSystemNamespaces(ctx context.Context) error {
	res := r.resources["namespaces"]
	for _, name := range systemNamespaces {
		_, err := r.Create(ctx, res, "", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, nil)
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create namespace %s: %w", name, err)
		}
	}
	list, err := r.store.List(ctx, "namespaces", store.ListOptions{})
	if err != nil {
		return fmt.Errorf("list namespaces: %w", err)
	}
	for _, ns := range list.Items {
		if ns.GetDeletionTimestamp() == nil {
			if err := r.ensureDefaultServiceAccount(ctx, ns.GetName()); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkNamespaceForCreate is the NamespaceLifecycle admission plugin: new
// objects need an existing namespace that is not being deleted.
func (r *Registry) checkNamespaceForCreate(ctx context.Context, res *Resource, ns, name string) error {
	obj, err := r.store.Get(ctx, "namespaces", "", ns)
	if err != nil {
		return toAPIError(err, r.resources["namespaces"], ns)
	}
	if obj.(*corev1.Namespace).Status.Phase == corev1.NamespaceTerminating {
		return apierrors.NewForbidden(schema.GroupResource{Group: res.Group, Resource: res.Name}, name,
			fmt.Errorf("unable to create new content in namespace %s because it is being terminated", ns))
	}
	return nil
}

// deleteNamespace marks the namespace Terminating and deletes its content
// (pods gracefully) as the namespace controller does; the namespace itself
// goes once its last pod is gone.
func (r *Registry) deleteNamespace(ctx context.Context, res *Resource, name string, o *metav1.DeleteOptions) (store.Object, bool, error) {
	if immortalNamespaces[name] {
		return nil, false, apierrors.NewForbidden(schema.GroupResource{Group: res.Group, Resource: res.Name}, name, errors.New("this namespace may not be deleted"))
	}
	cur, err := r.Get(ctx, res, "", name)
	if err != nil {
		return nil, false, err
	}
	if err := checkDeletePreconditions(res, cur, o.Preconditions); err != nil {
		return nil, false, err
	}
	if isDryRun(o.DryRun) {
		return cur, false, nil
	}
	updated, err := r.store.GuaranteedUpdate(ctx, res.Name, "", name, nil, func(obj store.Object) (store.Object, error) {
		ns := obj.(*corev1.Namespace)
		if ns.DeletionTimestamp == nil {
			now := r.now()
			ns.DeletionTimestamp = &now
			ns.DeletionGracePeriodSeconds = ptr.To[int64](0)
		}
		ns.Status.Phase = corev1.NamespaceTerminating
		return ns, nil
	})
	if err != nil {
		return nil, false, toAPIError(err, res, name)
	}
	if err := r.deleteNamespaceContent(ctx, name); err != nil {
		return nil, false, err
	}
	if gone := r.maybeFinalizeNamespace(ctx, name); gone {
		return updated, true, nil
	}
	return updated, false, nil
}

func (r *Registry) deleteNamespaceContent(ctx context.Context, ns string) error {
	for _, res := range r.resources {
		if !res.Namespaced {
			continue
		}
		list, err := r.store.List(ctx, res.Name, store.ListOptions{Namespace: ns})
		if err != nil {
			return toAPIError(err, res, "")
		}
		for _, obj := range list.Items {
			if res.Name == "pods" {
				_, _, err = r.deletePod(ctx, res, ns, obj.GetName(), &metav1.DeleteOptions{})
			} else {
				_, err = r.store.Delete(ctx, res.Name, ns, obj.GetName(), nil)
			}
			if err != nil && !errors.Is(err, store.ErrNotFound) && !apierrors.IsNotFound(err) {
				return toAPIError(err, res, obj.GetName())
			}
		}
	}
	return nil
}

// maybeFinalizeNamespace removes a Terminating namespace once no pods are
// left in it, and what was created in it meanwhile; true when it is gone.
func (r *Registry) maybeFinalizeNamespace(ctx context.Context, ns string) bool {
	obj, err := r.store.Get(ctx, "namespaces", "", ns)
	if err != nil || obj.GetDeletionTimestamp() == nil {
		return false
	}
	pods, err := r.store.List(ctx, "pods", store.ListOptions{Namespace: ns, Limit: 1})
	if err != nil || len(pods.Items) > 0 {
		return false
	}
	if err := r.deleteNamespaceContent(ctx, ns); err != nil {
		r.log.Error("finalizing namespace", "namespace", ns, "err", err)
		return false
	}
	if _, err := r.store.Delete(ctx, "namespaces", "", ns, &metav1.Preconditions{UID: ptrUID(obj)}); err != nil && !errors.Is(err, store.ErrNotFound) {
		r.log.Error("removing namespace", "namespace", ns, "err", err)
		return false
	}
	return true
}
