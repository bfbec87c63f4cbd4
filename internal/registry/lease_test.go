package registry

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
)

// RunNodeLease creates the node's Lease and renews it every 10 s.
func TestRunNodeLease(t *testing.T) {
	r, clk := newRegistry(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.RunNodeLease(ctx) }()
	defer func() { cancel(); <-done }()

	renewTime := func() time.Time {
		obj, err := r.Get(ctx, r.resources["leases"], corev1.NamespaceNodeLease, "node1")
		if err != nil {
			return time.Time{}
		}
		return obj.(*coordinationv1.Lease).Spec.RenewTime.Time
	}
	waitFor := func(want time.Time) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !renewTime().Equal(want) {
			if time.Now().After(deadline) {
				t.Fatalf("renewTime %v, want %v", renewTime(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	start := clk.Now().Truncate(time.Microsecond)
	waitFor(start)
	for !clk.HasWaiters() {
		time.Sleep(time.Millisecond)
	}
	clk.Step(NodeLeaseRenewInterval)
	waitFor(start.Add(10 * time.Second))
}
