package registry

import (
	"context"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/peapod-dev/peapod/internal/store"
)

// CoordinationGroup is the API group of Leases.
const CoordinationGroup = "coordination.k8s.io"

type leaseStrategy struct{}

func (leaseStrategy) prepareForCreate(ctx context.Context, r *Registry, obj store.Object) {}

// validate is ValidateLeaseSpec's part for the fields peapod's clients set.
func (leaseStrategy) validate(obj store.Object) field.ErrorList {
	spec := obj.(*coordinationv1.Lease).Spec
	var errs field.ErrorList
	p := field.NewPath("spec")
	if spec.LeaseDurationSeconds != nil && *spec.LeaseDurationSeconds <= 0 {
		errs = append(errs, field.Invalid(p.Child("leaseDurationSeconds"), *spec.LeaseDurationSeconds, "must be greater than 0"))
	}
	if spec.LeaseTransitions != nil && *spec.LeaseTransitions < 0 {
		errs = append(errs, field.Invalid(p.Child("leaseTransitions"), *spec.LeaseTransitions, "must be greater than or equal to 0"))
	}
	return errs
}

func (leaseStrategy) prepareForUpdate(obj, old store.Object) {}

func (s leaseStrategy) validateUpdate(obj, old store.Object) field.ErrorList { return s.validate(obj) }

const (
	// NodeLeaseDuration is the kubelet's default node lease duration
	// (--node-lease-duration-seconds).
	NodeLeaseDuration = 40 * time.Second
	// NodeLeaseRenewInterval is the kubelet's renewal: a quarter of the duration.
	NodeLeaseRenewInterval = NodeLeaseDuration / 4
)

// RenewNodeLease creates or renews the node's Lease in kube-node-lease, as
// the kubelet's node lease controller does: holder the node, duration 40 s,
// renewTime now, owned by the Node.
func (r *Registry) RenewNodeLease(ctx context.Context) (*coordinationv1.Lease, error) {
	res := r.resources["leases"]
	now := metav1.NewMicroTime(r.clock.Now())
	cur, err := r.Get(ctx, res, corev1.NamespaceNodeLease, r.nodeName)
	if apierrors.IsNotFound(err) {
		lease := &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: r.nodeName, Namespace: corev1.NamespaceNodeLease},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(r.nodeName),
				LeaseDurationSeconds: ptr.To(int32(NodeLeaseDuration / time.Second)),
				RenewTime:            &now,
			},
		}
		if node, err := r.Get(ctx, r.resources["nodes"], "", r.nodeName); err == nil {
			lease.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.GetName(), UID: node.GetUID()}}
		}
		out, err := r.Create(ctx, res, corev1.NamespaceNodeLease, lease, &metav1.CreateOptions{})
		if err != nil {
			return nil, err
		}
		return out.(*coordinationv1.Lease), nil
	}
	if err != nil {
		return nil, err
	}
	lease := cur.(*coordinationv1.Lease).DeepCopy()
	lease.Spec.RenewTime = &now
	lease.Spec.HolderIdentity = ptr.To(r.nodeName)
	lease.Spec.LeaseDurationSeconds = ptr.To(int32(NodeLeaseDuration / time.Second))
	out, err := r.Update(ctx, res, corev1.NamespaceNodeLease, r.nodeName, lease, &metav1.UpdateOptions{})
	if err != nil {
		return nil, err
	}
	return out.(*coordinationv1.Lease), nil
}

// RunNodeLease renews the node's Lease every NodeLeaseRenewInterval until
// ctx ends; a failed renewal is logged and retried at the next tick.
func (r *Registry) RunNodeLease(ctx context.Context) {
	for {
		if _, err := r.RenewNodeLease(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("renewing the node lease", "err", err)
		}
		t := r.clock.NewTimer(NodeLeaseRenewInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}
