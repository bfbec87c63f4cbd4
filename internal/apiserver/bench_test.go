package apiserver

import (
	"context"
	"fmt"
	"os/exec"
	"runtime"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// createPods makes n pods in namespace ns through the API.
func createPods(tb testing.TB, ts *testServer, ns string, n int) {
	tb.Helper()
	ctx := context.Background()
	if _, err := ts.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		if _, err := ts.client.CoreV1().Pods(ns).Create(ctx, newPod(fmt.Sprintf("p%03d", i), nil), metav1.CreateOptions{}); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkListPodsTable is the request behind `kubectl get pods` with 500
// pods in the namespace: a server-side Table.
func BenchmarkListPodsTable(b *testing.B) {
	ts := startServer(b)
	createPods(b, ts, "bench", 500)
	ctx := context.Background()
	req := ts.client.CoreV1().RESTClient().Get().Namespace("bench").Resource("pods").Param("limit", "500").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
	b.ResetTimer()
	for range b.N {
		if _, err := req.DoRaw(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKubectlGetPods runs the real kubectl (process start included).
func BenchmarkKubectlGetPods(b *testing.B) {
	ts := startServer(b)
	createPods(b, ts, "bench", 500)
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		b.Fatalf("kubectl not on PATH: %v", err)
	}
	b.ResetTimer()
	for range b.N {
		if out, err := exec.Command(kubectl, "--kubeconfig", ts.kubeconfig, "get", "pods", "-n", "bench").CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
}

// BenchmarkWatchFanout: 100 watchers each receive every one of 1,000 pod
// updates, in order (a drop or reordering fails it); one iteration is the
// whole fan-out. The server's heap after it is reported.
func BenchmarkWatchFanout(b *testing.B) {
	for range b.N {
		watchFanout(b)
	}
}

func watchFanout(b *testing.B) {
	ts := startServer(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pods := ts.client.CoreV1().Pods("default")
	p, err := pods.Create(ctx, newPod("fan", nil), metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	const watchers, updates = 100, 1000
	var wg sync.WaitGroup
	counts := make([]int, watchers)
	errs := make(chan error, watchers)
	for i := range watchers {
		w, err := pods.Watch(ctx, metav1.ListOptions{ResourceVersion: p.ResourceVersion})
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.Stop()
			last := 0
			for ev := range w.ResultChan() {
				if ev.Type != watch.Modified {
					errs <- fmt.Errorf("watcher %d: %s event", i, ev.Type)
					return
				}
				n := 0
				fmt.Sscanf(ev.Object.(*corev1.Pod).Status.Message, "%d", &n)
				if n != last+1 {
					errs <- fmt.Errorf("watcher %d: update %d after %d", i, n, last)
					return
				}
				last = n
				counts[i]++
				if counts[i] == updates {
					return
				}
			}
			errs <- fmt.Errorf("watcher %d: closed after %d updates", i, counts[i])
		}()
	}
	start := time.Now()
	for n := 1; n <= updates; n++ {
		p.Status.Message = fmt.Sprint(n)
		if p, err = pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Error(err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/fanout")
	b.ReportMetric(float64(ms.HeapInuse>>20), "MiB-heap(client+server)")
}
