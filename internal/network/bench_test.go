package network

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/peapod-dev/peapod/internal/netns"
)

// BenchmarkSetupTeardown measures the network part of starting and stopping
// a sandbox: pinning a netns, CNI ADD (loopback, bridge with host-local,
// no portmap for a pod without ports), and DEL with the netns removal.
func BenchmarkSetupTeardown(b *testing.B) {
	e := newEnv(b, "ppnetb0", "10.200.36.0/24")
	m, err := New(e.cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var setup, teardown time.Duration
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("pptest-bench-%d", i)
		start := time.Now()
		p, err := netns.New(e.nsDir, id)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.Setup(ctx, id, p, PodNetwork{Name: id, Namespace: "default", UID: id}); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if err := m.Teardown(ctx, id, p, PodNetwork{}); err != nil {
			b.Fatal(err)
		}
		if err := netns.Remove(p); err != nil {
			b.Fatal(err)
		}
		setup += mid.Sub(start)
		teardown += time.Since(mid)
	}
	b.ReportMetric(float64(setup.Milliseconds())/float64(b.N), "setup-ms/op")
	b.ReportMetric(float64(teardown.Milliseconds())/float64(b.N), "teardown-ms/op")
	checkClean(b, e)
}
