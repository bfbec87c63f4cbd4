package apiserver

import (
	"context"
	"net/http"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	policyv1beta1 "k8s.io/api/policy/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestEviction(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	pods := ts.client.CoreV1().Pods("default")
	for _, name := range []string{"a", "b"} {
		if _, err := pods.Create(ctx, newPod(name, nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// kubectl drain finds the eviction subresource as policy/v1 Eviction.
	rl, err := ts.client.Discovery().ServerResourcesForGroupVersion("v1")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range rl.APIResources {
		if r.Name == "pods/eviction" {
			found = r.Group == "policy" && r.Version == "v1" && r.Kind == "Eviction"
		}
	}
	if !found {
		t.Fatalf("pods/eviction in discovery: %+v", rl.APIResources)
	}

	// policy/v1: a graceful deletion with the eviction's options.
	err = ts.client.PolicyV1().Evictions("default").Evict(ctx, &policyv1.Eviction{
		ObjectMeta:    metav1.ObjectMeta{Name: "a", Namespace: "default"},
		DeleteOptions: &metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](7)},
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := pods.Get(ctx, "a", metav1.GetOptions{})
	if err != nil || p.DeletionTimestamp == nil || p.DeletionGracePeriodSeconds == nil || *p.DeletionGracePeriodSeconds != 7 {
		t.Fatalf("evicted pod: %v %+v", err, p.ObjectMeta)
	}
	// policy/v1beta1 still works; no options means the pod's own grace period.
	if err := ts.client.PolicyV1beta1().Evictions("default").Evict(ctx, &policyv1beta1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "default"}}); err != nil {
		t.Fatal(err)
	}
	if p, err := pods.Get(ctx, "b", metav1.GetOptions{}); err != nil || p.DeletionTimestamp == nil || *p.DeletionGracePeriodSeconds != 30 {
		t.Fatalf("evicted pod b: %v %+v", err, p.ObjectMeta)
	}
	// The answer is a Success Status, 201.
	res := ts.client.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Name("b").SubResource("eviction").
		Body([]byte(`{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"b"}}`)).SetHeader("Content-Type", "application/json").Do(ctx)
	var code int
	res.StatusCode(&code)
	if raw, err := res.Raw(); err != nil || code != http.StatusCreated ||
		string(raw) != `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","code":201}` {
		t.Fatalf("eviction answer: %d %s %v", code, raw, err)
	}
	// A missing pod is 404; a name differing from the URL's is 400.
	err = ts.client.PolicyV1().Evictions("default").Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "missing", Namespace: "default"}})
	if !apierrors.IsNotFound(err) || err.Error() != `pods "missing" not found` {
		t.Fatalf("evict a missing pod: %v", err)
	}
	res = ts.client.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Name("a").SubResource("eviction").
		Body([]byte(`{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"b"}}`)).SetHeader("Content-Type", "application/json").Do(ctx)
	if err := res.Error(); !apierrors.IsBadRequest(err) || err.Error() != "name in URL does not match name in Eviction object" {
		t.Fatalf("mismatched eviction: %v", err)
	}
}

func TestBindingRefusedForBoundPod(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	pods := ts.client.CoreV1().Pods("default")
	bound, err := pods.Create(ctx, newPod("bound", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node := bound.Spec.NodeName
	err = pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "bound"}, Target: corev1.ObjectReference{Kind: "Node", Name: "elsewhere"}}, metav1.CreateOptions{})
	if !apierrors.IsConflict(err) || err.Error() != `Operation cannot be fulfilled on pods/binding "bound": pod bound is already assigned to node "`+node+`"` {
		t.Fatalf("bind a bound pod: %v", err)
	}
	if p, _ := pods.Get(ctx, "bound", metav1.GetOptions{}); p.Spec.NodeName != node || p.ResourceVersion != bound.ResourceVersion {
		t.Fatalf("refused binding changed the pod: %+v", p)
	}

	// A pod the scheduler left unbound (its nodeSelector matches no node)
	// is assigned by a binding.
	unbound := newPod("unbound", nil)
	unbound.Spec.NodeSelector = map[string]string{"no-such": "label"}
	if p, err := pods.Create(ctx, unbound, metav1.CreateOptions{}); err != nil || p.Spec.NodeName != "" {
		t.Fatalf("unschedulable pod: %v %+v", err, p)
	}
	if err := pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "unbound"}, Target: corev1.ObjectReference{Kind: "Node", Name: node}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := pods.Get(ctx, "unbound", metav1.GetOptions{})
	if err != nil || p.Spec.NodeName != node || len(p.Status.Conditions) != 1 || p.Status.Conditions[0].Status != corev1.ConditionTrue {
		t.Fatalf("bound by binding: %v %+v %+v", err, p.Spec.NodeName, p.Status.Conditions)
	}
	err = pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "missing"}, Target: corev1.ObjectReference{Name: node}}, metav1.CreateOptions{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("bind a missing pod: %v", err)
	}
}
