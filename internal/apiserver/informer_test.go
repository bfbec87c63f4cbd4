package apiserver

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// A client-go informer (list+watch or watch-list, whichever this client-go
// uses) syncs and then sees changes.
func TestInformer(t *testing.T) {
	ts := startServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pods := ts.client.CoreV1().Pods("default")
	if _, err := pods.Create(ctx, newPod("before", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	factory := informers.NewSharedInformerFactory(ts.client, 0)
	inf := factory.Core().V1().Pods().Informer()
	added := make(chan string, 10)
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) { added <- obj.(*corev1.Pod).Name }})
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("informer did not sync")
	}
	if name := <-added; name != "before" {
		t.Fatalf("first add %q", name)
	}
	if _, err := pods.Create(ctx, newPod("after", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if name := <-added; name != "after" {
		t.Fatalf("second add %q", name)
	}
}
