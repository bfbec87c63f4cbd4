package apiserver

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
)

// events.k8s.io/v1 Events are views of the stored core/v1 Events.
func TestEventsV1ClientGo(t *testing.T) {
	ts := startServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs := ts.client.EventsV1().Events("default")
	w, err := evs.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	now := metav1.NewMicroTime(time.Now().Truncate(time.Microsecond))
	created, err := evs.Create(ctx, &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: "e1"},
		EventTime:           now,
		ReportingController: "example.com/ctl",
		ReportingInstance:   "ctl-1",
		Action:              "Scale",
		Reason:              "Scaled",
		Regarding:           corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web", APIVersion: "v1"},
		Note:                "scaled up",
		Type:                corev1.EventTypeNormal,
		Series:              &eventsv1.EventSeries{Count: 2, LastObservedTime: now},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.Note != "scaled up" || created.Regarding.Name != "web" || created.UID == "" || created.Series == nil || created.Series.Count != 2 {
		t.Fatalf("created %+v", created)
	}
	if len(created.ManagedFields) != 1 || created.ManagedFields[0].APIVersion != "events.k8s.io/v1" {
		t.Fatalf("managedFields %+v", created.ManagedFields)
	}

	// The same object through core/v1, converted as kube-apiserver does.
	core, err := ts.client.CoreV1().Events("default").Get(ctx, "e1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if core.Message != "scaled up" || core.InvolvedObject.Name != "web" || core.ReportingController != "example.com/ctl" ||
		core.ReportingInstance != "ctl-1" || core.Action != "Scale" || !core.EventTime.Equal(&now) ||
		core.Series == nil || core.Series.Count != 2 || core.ResourceVersion != created.ResourceVersion {
		t.Fatalf("core event %+v", core)
	}

	// A core Event with the deprecated fields reads back through events.k8s.io.
	first := metav1.NewTime(time.Now().Add(-time.Minute).Truncate(time.Second))
	if _, err := ts.client.CoreV1().Events("default").Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "e2"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "db"},
		Reason:         "Pulled", Message: "pulled image", Type: corev1.EventTypeWarning,
		Source: corev1.EventSource{Component: "kubelet", Host: "node1"},
		Count:  3, FirstTimestamp: first, LastTimestamp: first,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e2, err := evs.Get(ctx, "e2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if e2.Note != "pulled image" || e2.DeprecatedSource.Component != "kubelet" || e2.DeprecatedSource.Host != "node1" ||
		e2.DeprecatedCount != 3 || !e2.DeprecatedFirstTimestamp.Equal(&first) || !e2.DeprecatedLastTimestamp.Equal(&first) || e2.Regarding.Name != "db" {
		t.Fatalf("events.k8s.io view %+v", e2)
	}

	list, err := evs.List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 2 || list.Items[0].Name != "e1" || list.ResourceVersion == "" {
		t.Fatalf("list %+v %v", list, err)
	}
	all, err := ts.client.EventsV1().Events("").List(ctx, metav1.ListOptions{})
	if err != nil || len(all.Items) < 2 {
		t.Fatalf("list in all namespaces: %v %v", all, err)
	}

	// Update and patch speak events.k8s.io fields.
	e2.Note = "pulled again"
	if _, err := evs.Update(ctx, e2, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	patched, err := evs.Patch(ctx, "e2", types.MergePatchType, []byte(`{"note":"merged"}`), metav1.PatchOptions{})
	if err != nil || patched.Note != "merged" {
		t.Fatalf("merge patch: %v %v", patched, err)
	}
	patched, err = evs.Patch(ctx, "e2", types.StrategicMergePatchType, []byte(`{"regarding":{"fieldPath":"spec.containers{db}"}}`), metav1.PatchOptions{})
	if err != nil || patched.Regarding.FieldPath != "spec.containers{db}" || patched.Regarding.Name != "db" {
		t.Fatalf("strategic patch: %v %v", patched, err)
	}
	if core, _ := ts.client.CoreV1().Events("default").Get(ctx, "e2", metav1.GetOptions{}); core.Message != "merged" {
		t.Fatalf("core message after patch %q", core.Message)
	}
	applied, err := evs.Patch(ctx, "e3", types.ApplyPatchType,
		[]byte(`{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":"e3"},"eventTime":"2024-01-01T00:00:00.000000Z","note":"applied","reason":"R","reportingController":"c","reportingInstance":"i","action":"A","type":"Normal","regarding":{"kind":"Pod","name":"x","namespace":"default"}}`),
		metav1.PatchOptions{FieldManager: "test"})
	if err != nil || applied.Note != "applied" {
		t.Fatalf("apply: %v %v", applied, err)
	}

	// Creating through events.k8s.io/v1 validates as kube-apiserver does.
	_, err = evs.Create(ctx, &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Name: "bad"}, DeprecatedCount: 1, Type: "Odd"}, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("invalid event: %v", err)
	}
	for _, want := range []string{"eventTime: Required value", "reportingController: Required value", "reportingInstance: Required value",
		"action: Required value", "reason: Required value", "type: Invalid value", "deprecatedCount: Invalid value: \"\": needs to be unset"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if !strings.HasPrefix(err.Error(), `Event.events.k8s.io "bad" is invalid`) {
		t.Errorf("error %q", err)
	}

	// A body of the other group version is refused.
	body, err := ts.client.CoreV1().RESTClient().Post().AbsPath("/apis/events.k8s.io/v1/namespaces/default/events").
		Body([]byte(`{"apiVersion":"v1","kind":"Event","metadata":{"name":"x"}}`)).SetHeader("Content-Type", "application/json").DoRaw(ctx)
	if err == nil || !strings.Contains(string(body), "does not match the expected API version (events.k8s.io/v1)") {
		t.Fatalf("core body on events.k8s.io: %v %s", err, body)
	}

	for _, want := range []string{"e1", "e2"} {
		ev := <-w.ResultChan()
		e, ok := ev.Object.(*eventsv1.Event)
		if ev.Type != watch.Added || !ok || e.Name != want {
			t.Fatalf("watch event %s %#v", ev.Type, ev.Object)
		}
	}
	if err := evs.Delete(ctx, "e1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.client.CoreV1().Events("default").Get(ctx, "e1", metav1.GetOptions{}); err == nil {
		t.Fatal("e1 still stored after delete through events.k8s.io")
	}
}

func TestEventsV1Discovery(t *testing.T) {
	ts := startServer(t)
	groups, err := ts.client.Discovery().ServerGroups()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range groups.Groups {
		names = append(names, g.Name+"="+g.PreferredVersion.GroupVersion)
	}
	if strings.Join(names, ",") != "=v1,coordination.k8s.io=coordination.k8s.io/v1,events.k8s.io=events.k8s.io/v1" {
		t.Fatalf("groups %v", names)
	}
	rl, err := ts.client.Discovery().ServerResourcesForGroupVersion("events.k8s.io/v1")
	if err != nil || len(rl.APIResources) != 1 || rl.APIResources[0].Name != "events" || rl.APIResources[0].Kind != "Event" ||
		!rl.APIResources[0].Namespaced || len(rl.APIResources[0].ShortNames) != 0 {
		t.Fatalf("events.k8s.io/v1 resources %+v %v", rl, err)
	}
	raw := ts.mustKubectl(t, "", "get", "--raw", "/apis/events.k8s.io/v1")
	var got metav1.APIResourceList
	if err := json.Unmarshal([]byte(raw), &got); err != nil || got.Kind != "APIResourceList" || got.GroupVersion != "events.k8s.io/v1" {
		t.Fatalf("kubectl get --raw: %s %v", raw, err)
	}
	raw = ts.mustKubectl(t, "", "get", "--raw", "/apis/events.k8s.io")
	var g metav1.APIGroup
	if err := json.Unmarshal([]byte(raw), &g); err != nil || g.Kind != "APIGroup" || g.PreferredVersion.Version != "v1" {
		t.Fatalf("/apis/events.k8s.io: %s %v", raw, err)
	}
	// The OpenAPI v3 index lists the group version once, and kubectl
	// explain finds its schema.
	raw = ts.mustKubectl(t, "", "get", "--raw", "/openapi/v3")
	if n := strings.Count(raw, `"apis/events.k8s.io/v1"`); n != 1 {
		t.Fatalf("/openapi/v3 lists events.k8s.io/v1 %d times: %s", n, raw)
	}
	if out := ts.mustKubectl(t, "", "explain", "events.regarding", "--api-version=events.k8s.io/v1"); !strings.Contains(out, "GROUP:      events.k8s.io") {
		t.Fatalf("explain: %s", out)
	}
	for _, path := range []string{"/apis/events.k8s.io/v2", "/apis/events.k8s.io/v1/namespaces/default/pods", "/apis/nope.k8s.io"} {
		if _, stderr, err := ts.kubectl(t, "", "get", "--raw", path); err == nil || !strings.Contains(stderr, "NotFound") {
			t.Errorf("%s: %v %s", path, err, stderr)
		}
	}
}

func TestKubectlEventsV1(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	if _, err := ts.client.CoreV1().Events("default").Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "web.1"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web"},
		Reason:         "Started", Message: "Started container server", Type: corev1.EventTypeNormal,
		Source: corev1.EventSource{Component: "kubelet"},
		Count:  1, FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now(),
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	core := lines(ts.mustKubectl(t, "", "get", "events"))
	got := lines(ts.mustKubectl(t, "", "get", "events.v1.events.k8s.io"))
	if strings.Join(fields(got[0]), "|") != "LAST SEEN|TYPE|REASON|OBJECT|MESSAGE" {
		t.Fatalf("header %q", got[0])
	}
	if len(got) != 2 || strings.Join(fields(got[1])[1:], "|") != "Normal|Started|pod/web|Started container server" {
		t.Fatalf("rows %q", got)
	}
	// Both print the same rows (LAST SEEN may tick between the two runs).
	if len(core) != len(got) || strings.Join(fields(core[1])[1:], "|") != strings.Join(fields(got[1])[1:], "|") {
		t.Fatalf("core and events.k8s.io tables differ:\n%s\n%s", strings.Join(core, "\n"), strings.Join(got, "\n"))
	}
	out := ts.mustKubectl(t, "", "get", "events.events.k8s.io", "web.1", "-o", "jsonpath={.apiVersion} {.note} {.regarding.name}")
	if out != "events.k8s.io/v1 Started container server web" {
		t.Fatalf("jsonpath %q", out)
	}
	const manifest = `apiVersion: events.k8s.io/v1
kind: Event
metadata:
  name: manual
eventTime: "2024-01-01T00:00:00.000000Z"
reportingController: example.com/ctl
reportingInstance: ctl-1
action: Test
reason: Testing
note: from a manifest
type: Warning
regarding:
  kind: Pod
  name: web
  namespace: default
`
	if out := ts.mustKubectl(t, manifest, "create", "-f", "-"); out != "event.events.k8s.io/manual created\n" {
		t.Fatalf("create printed %q", out)
	}
	if out := ts.mustKubectl(t, "", "get", "ev", "manual", "-o", "jsonpath={.message}"); out != "from a manifest" {
		t.Fatalf("core view %q", out)
	}
}
