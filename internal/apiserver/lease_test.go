package apiserver

import (
	"context"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// coordination.k8s.io/v1 Leases, and the node's one the registry renews.
func TestLeases(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	leases := ts.client.CoordinationV1().Leases("default")
	l, err := leases.Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "lock"},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To("me"), LeaseDurationSeconds: ptr.To[int32](15)},
	}, metav1.CreateOptions{})
	if err != nil || *l.Spec.HolderIdentity != "me" || l.ManagedFields[0].APIVersion != "coordination.k8s.io/v1" {
		t.Fatalf("create: %+v %v", l, err)
	}
	l.Spec.HolderIdentity = ptr.To("you")
	if _, err := leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := leases.Update(ctx, l, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("stale update: %v", err)
	}
	_, err = leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "bad"},
		Spec: coordinationv1.LeaseSpec{LeaseDurationSeconds: ptr.To[int32](0)}}, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), `Lease.coordination.k8s.io "bad" is invalid: spec.leaseDurationSeconds`) {
		t.Fatalf("invalid lease: %v", err)
	}
	if _, err := leases.Get(ctx, "nope", metav1.GetOptions{}); !apierrors.IsNotFound(err) || err.Error() != `leases.coordination.k8s.io "nope" not found` {
		t.Fatalf("get missing: %v", err)
	}

	// kubectl validates against the OpenAPI schema and applies server-side.
	const manifest = `apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: applied
spec:
  holderIdentity: kubectl
  leaseDurationSeconds: 30
`
	if out := ts.mustKubectl(t, manifest, "apply", "--server-side", "-f", "-"); out != "lease.coordination.k8s.io/applied serverside-applied\n" {
		t.Fatalf("apply printed %q", out)
	}
	if _, stderr, err := ts.kubectl(t, strings.Replace(manifest, "holderIdentity", "holder", 1), "create", "-f", "-"); err == nil ||
		!strings.Contains(stderr, `unknown field "spec.holder"`) {
		t.Fatalf("unknown field: %v %s", err, stderr)
	}
	if out := ts.mustKubectl(t, "", "explain", "leases.spec.holderIdentity"); !strings.Contains(out, "GROUP:      coordination.k8s.io") {
		t.Fatalf("explain: %s", out)
	}

	// Leases are not core/v1 resources.
	if _, stderr, err := ts.kubectl(t, "", "get", "--raw", "/api/v1/namespaces/default/leases"); err == nil || !strings.Contains(stderr, "NotFound") {
		t.Fatalf("leases under /api/v1: %v %s", err, stderr)
	}

	// The node's lease, as the kubelet keeps it.
	before := time.Now().Add(-time.Second)
	if _, err := ts.reg.RenewNodeLease(ctx); err != nil {
		t.Fatal(err)
	}
	first, err := ts.client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, ts.reg.NodeName(), metav1.GetOptions{})
	if err != nil || *first.Spec.HolderIdentity != ts.reg.NodeName() || *first.Spec.LeaseDurationSeconds != 40 || first.Spec.RenewTime.Time.Before(before) {
		t.Fatalf("node lease %+v %v", first, err)
	}
	if len(first.OwnerReferences) != 1 || first.OwnerReferences[0].Kind != "Node" || first.OwnerReferences[0].UID == "" {
		t.Fatalf("owner %+v", first.OwnerReferences)
	}
	renewed, err := ts.reg.RenewNodeLease(ctx)
	if err != nil || renewed.ResourceVersion == first.ResourceVersion || renewed.Spec.RenewTime.Before(first.Spec.RenewTime) {
		t.Fatalf("renewed %+v %v", renewed, err)
	}

	got := lines(ts.mustKubectl(t, "", "get", "leases", "-n", corev1.NamespaceNodeLease))
	if strings.Join(fields(got[0]), "|") != "NAME|HOLDER|AGE" || len(got) != 2 || strings.Join(fields(got[1])[:2], "|") != ts.reg.NodeName()+"|"+ts.reg.NodeName() {
		t.Fatalf("kubectl get leases: %q", got)
	}
	out, stderr, err := ts.kubectl(t, "", "describe", "node", ts.reg.NodeName())
	if err != nil || strings.Contains(out+stderr, "Failed to get lease") || !strings.Contains(out, "HolderIdentity:  "+ts.reg.NodeName()) {
		t.Fatalf("describe node: %v\n%s\n%s", err, out, stderr)
	}
}
