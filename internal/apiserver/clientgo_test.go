package apiserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/peapod-dev/peapod/internal/registry"
)

func newPod(name string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
}

func TestUnauthenticatedIs401(t *testing.T) {
	ts := startServer(t)
	ca, err := os.ReadFile(filepath.Join(ts.dir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for _, path := range []string{"/api/v1/namespaces/default/pods", "/version", "/healthz", "/api", "/debug/pprof/"} {
		resp, err := client.Get("https://" + ts.srv.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s without a client certificate: %d", path, resp.StatusCode)
		}
		want := `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}`
		if string(body) != want {
			t.Fatalf("%s: body %s", path, body)
		}
	}
	info, err := os.Stat(ts.kubeconfig)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("kubeconfig mode: %v %v", info.Mode(), err)
	}
}

func TestCRUDAndConflicts(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	pods := ts.client.CoreV1().Pods("default")
	created, err := pods.Create(ctx, newPod("p", map[string]string{"app": "a"}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.UID == "" || created.ResourceVersion == "" || created.CreationTimestamp.IsZero() || created.Generation != 1 {
		t.Fatalf("created metadata: %+v", created.ObjectMeta)
	}
	if _, err := pods.Create(ctx, newPod("p", nil), metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("second create: %v", err)
	}
	gen, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "gen-"}, Spec: created.Spec}, metav1.CreateOptions{})
	if err != nil || !strings.HasPrefix(gen.Name, "gen-") || len(gen.Name) != len("gen-")+5 {
		t.Fatalf("generateName: %v %v", err, gen)
	}

	// Update an image: allowed, generation bumps.
	upd := created.DeepCopy()
	upd.Spec.Containers[0].Image = "busybox:1.36"
	updated, err := pods.Update(ctx, upd, metav1.UpdateOptions{})
	if err != nil || updated.Generation != 2 || updated.Spec.Containers[0].Image != "busybox:1.36" {
		t.Fatalf("image update: %v %+v", err, updated)
	}
	// The stale copy conflicts.
	upd.Labels = map[string]string{"app": "b"}
	if _, err := pods.Update(ctx, upd, metav1.UpdateOptions{}); !apierrors.IsConflict(err) ||
		!strings.Contains(err.Error(), `Operation cannot be fulfilled on pods "p": the object has been modified; please apply your changes to the latest version and try again`) {
		t.Fatalf("stale update: %v", err)
	}
	// Other spec fields are immutable.
	bad := updated.DeepCopy()
	bad.Spec.RestartPolicy = corev1.RestartPolicyNever
	if _, err := pods.Update(ctx, bad, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) ||
		!strings.Contains(err.Error(), "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`") {
		t.Fatalf("restartPolicy update: %v", err)
	}

	// Status goes through the status subresource only.
	st := updated.DeepCopy()
	st.Status.Phase = corev1.PodRunning
	st.Spec.Containers[0].Image = "ignored"
	afterStatus, err := pods.UpdateStatus(ctx, st, metav1.UpdateOptions{})
	if err != nil || afterStatus.Status.Phase != corev1.PodRunning || afterStatus.Spec.Containers[0].Image != "busybox:1.36" {
		t.Fatalf("status update: %v %+v", err, afterStatus)
	}
	st = afterStatus.DeepCopy()
	st.Status.Phase = corev1.PodFailed
	if got, _ := pods.Update(ctx, st, metav1.UpdateOptions{}); got.Status.Phase != corev1.PodRunning {
		t.Fatalf("main resource changed the status: %v", got.Status.Phase)
	}

	// Graceful deletion: a second delete may only shorten the grace period.
	if err := pods.Delete(ctx, "p", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](60)}); err != nil {
		t.Fatal(err)
	}
	first, _ := pods.Get(ctx, "p", metav1.GetOptions{})
	if err := pods.Delete(ctx, "p", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](120)}); err != nil {
		t.Fatal(err)
	}
	same, _ := pods.Get(ctx, "p", metav1.GetOptions{})
	if *same.DeletionGracePeriodSeconds != 60 || !same.DeletionTimestamp.Equal(first.DeletionTimestamp) {
		t.Fatalf("longer grace changed the deletion: %v %v", same.DeletionGracePeriodSeconds, same.DeletionTimestamp)
	}
	if err := pods.Delete(ctx, "p", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](10)}); err != nil {
		t.Fatal(err)
	}
	shorter, _ := pods.Get(ctx, "p", metav1.GetOptions{})
	if *shorter.DeletionGracePeriodSeconds != 10 || shorter.DeletionTimestamp.Sub(first.DeletionTimestamp.Time).Seconds() != -50 {
		t.Fatalf("shorter grace: %v %v (first %v)", shorter.DeletionGracePeriodSeconds, shorter.DeletionTimestamp, first.DeletionTimestamp)
	}
	wrongUID := types.UID("nope")
	if err := pods.Delete(ctx, "p", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: &wrongUID}}); !apierrors.IsConflict(err) {
		t.Fatalf("delete with a wrong uid: %v", err)
	}
	if err := pods.Delete(ctx, "p", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "p", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after grace 0: %v", err)
	}
}

func TestListSelectorsAndPages(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	pods := ts.client.CoreV1().Pods("default")
	for i := range 7 {
		app := "odd"
		if i%2 == 0 {
			app = "even"
		}
		if _, err := pods.Create(ctx, newPod(fmt.Sprintf("p%d", i), map[string]string{"app": app}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	even, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "app=even"})
	if err != nil || len(even.Items) != 4 {
		t.Fatalf("label selector: %v %d", err, len(even.Items))
	}
	one, err := pods.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=p3,spec.nodeName=testnode,status.phase=Pending"})
	if err != nil || len(one.Items) != 1 || one.Items[0].Name != "p3" {
		t.Fatalf("field selector: %v %v", err, one)
	}
	if _, err := pods.List(ctx, metav1.ListOptions{FieldSelector: "spec.foo=x"}); !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "field label not supported: spec.foo") {
		t.Fatalf("unsupported field: %v", err)
	}
	var names []string
	opts := metav1.ListOptions{Limit: 3}
	pages := 0
	for {
		page, err := pods.List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, p := range page.Items {
			names = append(names, p.Name)
		}
		if page.Continue == "" {
			break
		}
		opts.Continue = page.Continue
	}
	if pages != 3 || strings.Join(names, ",") != "p0,p1,p2,p3,p4,p5,p6" {
		t.Fatalf("%d pages: %v", pages, names)
	}
	if _, err := pods.List(ctx, metav1.ListOptions{Continue: "garbage"}); !apierrors.IsBadRequest(err) {
		t.Fatalf("bad continue: %v", err)
	}
}

func TestWatch(t *testing.T) {
	ts := startServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pods := ts.client.CoreV1().Pods("default")
	p, err := pods.Create(ctx, newPod("w", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := pods.Watch(ctx, metav1.ListOptions{ResourceVersion: p.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	p.Labels = map[string]string{"x": "y"}
	if _, err := pods.Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Delete(ctx, "w", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []watch.EventType{watch.Modified, watch.Deleted} {
		ev := <-w.ResultChan()
		if ev.Type != want || ev.Object.(*corev1.Pod).Name != "w" {
			t.Fatalf("event %s %T, want %s", ev.Type, ev.Object, want)
		}
	}

	// The older form: ?watch=1 on the object's own path.
	if _, err := pods.Create(ctx, newPod("one", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods.Create(ctx, newPod("other", nil), metav1.CreateOptions{})
	one, err := ts.client.CoreV1().RESTClient().Get().Namespace("default").Resource("pods").Name("one").
		Param("watch", "1").Param("resourceVersion", "0").Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer one.Stop()
	if ev := <-one.ResultChan(); ev.Type != watch.Added || ev.Object.(*corev1.Pod).Name != "one" {
		t.Fatalf("watch on one pod: %s %v", ev.Type, ev.Object)
	}

}

// A watch from a resourceVersion the history no longer holds (here: from
// before a restart) gets 410 Expired as an ERROR event, as reflectors expect.
func TestWatchExpired(t *testing.T) {
	dir := t.TempDir()
	st, err := registry.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := registry.New(st, clock.RealClock{}, "testnode"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	ts := startServerIn(t, dir)
	w, err := ts.client.CoreV1().Namespaces().Watch(context.Background(), metav1.ListOptions{ResourceVersion: "1"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ev := <-w.ResultChan()
	status, ok := ev.Object.(*metav1.Status)
	if ev.Type != watch.Error || !ok || status.Code != http.StatusGone || status.Reason != metav1.StatusReasonExpired {
		t.Fatalf("event %s %+v", ev.Type, ev.Object)
	}
}

func TestDiscovery(t *testing.T) {
	ts := startServer(t)
	var rows []string
	for _, l := range lines(ts.mustKubectl(t, "", "api-resources")) {
		rows = append(rows, strings.Join(fields(l), "|"))
	}
	want := []string{
		"NAME|SHORTNAMES|APIVERSION|NAMESPACED|KIND",
		"configmaps|cm|v1|true|ConfigMap",
		"events|ev|v1|true|Event",
		"namespaces|ns|v1|false|Namespace",
		"nodes|no|v1|false|Node",
		"pods|po|v1|true|Pod",
		"secrets|v1|true|Secret",
		"serviceaccounts|sa|v1|true|ServiceAccount",
		"leases|coordination.k8s.io/v1|true|Lease",
		"events|events.k8s.io/v1|true|Event",
	}
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Errorf("api-resources:\n%s", strings.Join(rows, "\n"))
	}
	rl, err := ts.client.Discovery().ServerResourcesForGroupVersion("v1")
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, r := range rl.APIResources {
		found[r.Name] = true
	}
	for _, name := range []string{"pods", "pods/status", "pods/log", "namespaces", "events", "nodes"} {
		if !found[name] {
			t.Errorf("discovery lacks %s", name)
		}
	}
	v, err := ts.client.Discovery().ServerVersion()
	if err != nil || v.GitVersion != KubernetesVersion || v.Major != "1" || v.Minor != "37" {
		t.Fatalf("version: %v %v", v, err)
	}
}

// KubernetesVersion must follow the k8s.io/api module in go.mod.
func TestKubernetesVersionMatchesGoMod(t *testing.T) {
	data, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	want := "k8s.io/api v0." + strings.TrimPrefix(KubernetesVersion, "v1.")
	if !strings.Contains(string(data), want) {
		t.Fatalf("go.mod does not require %q; update KubernetesVersion", want)
	}
}
