package openapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	openapiv2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/openapi3"
	"k8s.io/client-go/rest"
	"k8s.io/kube-openapi/pkg/handler3"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

func get(t *testing.T, h http.Handler, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func newHandler(t *testing.T) http.Handler {
	t.Helper()
	h, err := Handler()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestV2ParsesAsSwaggerAndProtobuf(t *testing.T) {
	h := newHandler(t)
	rec := get(t, h, "/openapi/v2")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi/v2: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var sw spec.Swagger
	if err := json.Unmarshal(rec.Body.Bytes(), &sw); err != nil {
		t.Fatalf("parse v2: %v", err)
	}
	pod, ok := sw.Definitions["io.k8s.api.core.v1.Pod"]
	if !ok {
		t.Fatal("no io.k8s.api.core.v1.Pod definition")
	}
	if gvks := pod.Extensions[extensionGVK]; gvks == nil {
		t.Error("Pod has no x-kubernetes-group-version-kind")
	}
	// Defaults are pruned from v2, as kube-apiserver does.
	if meta := pod.Properties["metadata"]; meta.Default != nil {
		t.Errorf("Pod.metadata keeps default %v in v2", meta.Default)
	}
	post := sw.Paths.Paths["/api/v1/namespaces/{namespace}/pods"].Post
	if post == nil || post.ID != "createCoreV1NamespacedPod" {
		t.Fatalf("POST pods operation: %+v", post)
	}
	if !hasV2Param(&sw, post.Parameters, "fieldValidation") {
		t.Error("POST pods has no fieldValidation parameter in v2")
	}
	for _, want := range []string{
		"/apis/events.k8s.io/v1/namespaces/{namespace}/events/{name}",
		"/api/v1/namespaces/{namespace}/pods/{name}/eviction",
		"/api/v1/watch/namespaces/{namespace}/pods",
	} {
		if _, ok := sw.Paths.Paths[want]; !ok {
			t.Errorf("v2 has no path %s", want)
		}
	}
	etag := rec.Header().Get("Etag")

	// kubectl and client-go ask for the deprecated protobuf name.
	rec = get(t, h, "/openapi/v2", "Accept", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/com.github.proto-openapi.spec.v2.v1.0+protobuf" {
		t.Fatalf("protobuf /openapi/v2: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var doc openapiv2.Document
	if err := proto.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatalf("parse v2 protobuf: %v", err)
	}
	if doc.GetDefinitions() == nil || len(doc.GetDefinitions().GetAdditionalProperties()) != len(sw.Definitions) {
		t.Errorf("protobuf has a different number of definitions than JSON (%d)", len(sw.Definitions))
	}
	if got := rec.Header().Get("Etag"); got != etag {
		t.Errorf("protobuf ETag %s, JSON's %s", got, etag)
	}

	if rec := get(t, h, "/openapi/v2", "If-None-Match", etag); rec.Code != http.StatusNotModified {
		t.Errorf("If-None-Match with the ETag: %d, want 304", rec.Code)
	}
	if rec := get(t, h, "/openapi/v2", "Accept", "text/html"); rec.Code != http.StatusNotAcceptable {
		t.Errorf("Accept text/html: %d, want 406", rec.Code)
	}
}

// hasV2Param resolves the builder's shared parameter references too.
func hasV2Param(sw *spec.Swagger, params []spec.Parameter, name string) bool {
	for _, p := range params {
		if ref := p.Ref.String(); ref != "" {
			p = sw.Parameters[strings.TrimPrefix(ref, "#/parameters/")]
		}
		if p.Name == name && p.In == "query" {
			return true
		}
	}
	return false
}

func TestV3DiscoveryAndCaching(t *testing.T) {
	h := newHandler(t)
	rec := get(t, h, "/openapi/v3")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /openapi/v3: %d", rec.Code)
	}
	var disc handler3.OpenAPIV3Discovery
	if err := json.Unmarshal(rec.Body.Bytes(), &disc); err != nil {
		t.Fatal(err)
	}
	if len(disc.Paths) != 3 {
		t.Errorf("discovery lists %v, want api/v1, apis/coordination.k8s.io/v1 and apis/events.k8s.io/v1", disc.Paths)
	}
	for _, gv := range []string{"api/v1", "apis/coordination.k8s.io/v1", "apis/events.k8s.io/v1"} {
		u := disc.Paths[gv].ServerRelativeURL
		if !strings.HasPrefix(u, "/openapi/v3/"+gv+"?hash=") {
			t.Fatalf("%s: serverRelativeURL %q", gv, u)
		}
		rec := get(t, h, u)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d", u, rec.Code)
		}
		if cc := rec.Header().Get("Cache-Control"); cc != "public, immutable" {
			t.Errorf("GET %s: Cache-Control %q", u, cc)
		}
		hash := strings.TrimPrefix(u, "/openapi/v3/"+gv+"?hash=")
		if etag := rec.Header().Get("Etag"); etag != `"`+hash+`"` {
			t.Errorf("GET %s: ETag %s", u, etag)
		}
		var doc spec3.OpenAPI
		if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
			t.Fatalf("parse %s: %v", gv, err)
		}
		if doc.Version != "3.0.0" || len(doc.Paths.Paths) == 0 || len(doc.Components.Schemas) == 0 {
			t.Errorf("%s: version %q, %d paths, %d schemas", gv, doc.Version, len(doc.Paths.Paths), len(doc.Components.Schemas))
		}
		// A stale hash is sent to the current document.
		rec = get(t, h, "/openapi/v3/"+gv+"?hash=0123")
		if rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != u {
			t.Errorf("stale hash: %d to %q, want 301 to %q", rec.Code, rec.Header().Get("Location"), u)
		}
	}
	if rec := get(t, h, "/openapi/v3/apis/apps/v1"); rec.Code != http.StatusNotFound {
		t.Errorf("an unserved group version: %d, want 404", rec.Code)
	}
}

// TestClientGoFindsPodSchemaAndFieldValidation reads the documents as
// kubectl does: client-go's discovery and openapi3 clients over TLS, then
// the check of cli-runtime's QueryParamVerifierV3 (the PATCH operation of
// the kind lists fieldValidation) and of the POST that kubectl create sends.
func TestClientGoFindsPodSchemaAndFieldValidation(t *testing.T) {
	srv := httptest.NewTLSServer(newHandler(t))
	defer srv.Close()
	dc, err := discovery.NewDiscoveryClientForConfig(&rest.Config{
		Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{Insecure: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	root := openapi3.NewRoot(dc.OpenAPIV3())
	gvs, err := root.GroupVersions()
	if err != nil {
		t.Fatal(err)
	}
	if len(gvs) != 3 {
		t.Errorf("group versions %v", gvs)
	}
	for _, tc := range []struct {
		gvk    schema.GroupVersionKind
		schema string
	}{
		{corev1.SchemeGroupVersion.WithKind("Pod"), "io.k8s.api.core.v1.Pod"},
		{corev1.SchemeGroupVersion.WithKind("ConfigMap"), "io.k8s.api.core.v1.ConfigMap"},
		{eventsv1.SchemeGroupVersion.WithKind("Event"), "io.k8s.api.events.v1.Event"},
	} {
		doc, err := root.GVSpec(tc.gvk.GroupVersion())
		if err != nil {
			t.Fatalf("GVSpec(%s): %v", tc.gvk.GroupVersion(), err)
		}
		s, ok := doc.Components.Schemas[tc.schema]
		if !ok {
			t.Fatalf("%s: no schema %s", tc.gvk, tc.schema)
		}
		if !hasGVK(s.Extensions, tc.gvk) {
			t.Errorf("%s: %s lacks its x-kubernetes-group-version-kind: %v", tc.gvk, tc.schema, s.Extensions[extensionGVK])
		}
		for _, method := range []string{"PATCH", "POST"} {
			if err := findQueryParam(doc, tc.gvk, method, "fieldValidation"); err != nil {
				t.Error(err)
			}
		}
	}

	doc, err := root.GVSpec(corev1.SchemeGroupVersion)
	if err != nil {
		t.Fatal(err)
	}
	spec := doc.Components.Schemas["io.k8s.api.core.v1.PodSpec"]
	containers := spec.Properties["containers"]
	if containers.Extensions["x-kubernetes-patch-merge-key"] != "name" || containers.Extensions["x-kubernetes-patch-strategy"] != "merge" {
		t.Errorf("PodSpec.containers extensions %v", containers.Extensions)
	}
	if !contains(spec.Required, "containers") {
		t.Errorf("PodSpec.required %v lacks containers", spec.Required)
	}
	port := doc.Components.Schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
	if port.Format != "int-or-string" {
		t.Errorf("IntOrString format %q", port.Format)
	}
	if q := doc.Components.Schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]; len(q.OneOf) == 0 {
		t.Errorf("Quantity schema %+v is not int or string", q)
	}
}

// findQueryParam is cli-runtime's supportsQueryParamV3 for any method: the
// operation of that method whose x-kubernetes-group-version-kind is gvk must
// list the query parameter itself (path-level parameters do not count).
func findQueryParam(doc *spec3.OpenAPI, gvk schema.GroupVersionKind, method, name string) error {
	for path, item := range doc.Paths.Paths {
		op := map[string]*spec3.Operation{"PATCH": item.Patch, "POST": item.Post}[method]
		if op == nil || !isGVK(op.Extensions[extensionGVK], gvk) {
			continue
		}
		for _, p := range op.Parameters {
			if p.Name == name && p.In == "query" {
				return nil
			}
		}
		return &paramError{gvk, method + " " + path, name}
	}
	return &paramError{gvk, method, "an operation"}
}

type paramError struct {
	gvk       schema.GroupVersionKind
	op, param string
}

func (e *paramError) Error() string { return e.gvk.String() + ": " + e.op + " lacks " + e.param }

func isGVK(ext any, gvk schema.GroupVersionKind) bool {
	m, ok := ext.(map[string]any)
	return ok && m["group"] == gvk.Group && m["version"] == gvk.Version && m["kind"] == gvk.Kind
}

func hasGVK(ext map[string]any, gvk schema.GroupVersionKind) bool {
	list, _ := ext[extensionGVK].([]any)
	for _, v := range list {
		if isGVK(v, gvk) {
			return true
		}
	}
	return false
}

// TestOperations checks operations against kube-apiserver's names and
// parameters for the served verbs.
func TestOperations(t *testing.T) {
	d, err := newDocuments()
	if err != nil {
		t.Fatal(err)
	}
	built, _, err := d.v3["/api/v1"].Get()
	if err != nil {
		t.Fatal(err)
	}
	// Read it as served.
	data, err := json.Marshal(built)
	if err != nil {
		t.Fatal(err)
	}
	var doc spec3.OpenAPI
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	type want struct {
		path, method, id, action, kind string
		params                         []string
	}
	for _, w := range []want{
		{"/api/v1/namespaces/{namespace}/pods", "get", "listCoreV1NamespacedPod", "list", "Pod",
			[]string{"allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit", "resourceVersion", "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds", "watch"}},
		{"/api/v1/namespaces/{namespace}/pods", "delete", "deleteCoreV1CollectionNamespacedPod", "deletecollection", "Pod",
			[]string{"dryRun", "gracePeriodSeconds", "labelSelector", "propagationPolicy"}},
		{"/api/v1/namespaces/{namespace}/pods/{name}", "patch", "patchCoreV1NamespacedPod", "patch", "Pod",
			[]string{"dryRun", "fieldManager", "fieldValidation", "force"}},
		{"/api/v1/namespaces/{namespace}/pods/{name}", "put", "replaceCoreV1NamespacedPod", "put", "Pod",
			[]string{"dryRun", "fieldManager", "fieldValidation"}},
		{"/api/v1/namespaces/{namespace}/pods/{name}/status", "patch", "patchCoreV1NamespacedPodStatus", "patch", "Pod",
			[]string{"fieldValidation"}},
		{"/api/v1/namespaces/{namespace}/pods/{name}/log", "get", "readCoreV1NamespacedPodLog", "get", "Pod",
			[]string{"container", "follow", "limitBytes", "previous", "sinceSeconds", "tailLines", "timestamps"}},
		{"/api/v1/namespaces/{namespace}/pods/{name}/exec", "post", "connectCoreV1PostNamespacedPodExec", "connect", "PodExecOptions", nil},
		{"/api/v1/namespaces/{namespace}/pods/{name}/portforward", "get", "connectCoreV1GetNamespacedPodPortforward", "connect", "PodPortForwardOptions", nil},
		{"/api/v1/namespaces/{namespace}/pods/{name}/eviction", "post", "createCoreV1NamespacedPodEviction", "post", "Eviction", []string{"fieldValidation"}},
		{"/api/v1/namespaces/{namespace}/pods/{name}/binding", "post", "createCoreV1NamespacedPodBinding", "post", "Binding", []string{"fieldValidation"}},
		{"/api/v1/namespaces/{namespace}/pods/{name}/ephemeralcontainers", "patch", "patchCoreV1NamespacedPodEphemeralcontainers", "patch", "Pod", nil},
		{"/api/v1/pods", "get", "listCoreV1PodForAllNamespaces", "list", "Pod", nil},
		{"/api/v1/watch/namespaces/{namespace}/pods/{name}", "get", "watchCoreV1NamespacedPod", "watch", "Pod", nil},
		{"/api/v1/watch/pods", "get", "watchCoreV1PodListForAllNamespaces", "watchlist", "Pod", nil},
		{"/api/v1/namespaces/{name}", "delete", "deleteCoreV1Namespace", "delete", "Namespace", nil},
		{"/api/v1/nodes/{name}/status", "get", "readCoreV1NodeStatus", "get", "Node", nil},
		{"/api/v1/namespaces/{namespace}/serviceaccounts", "post", "createCoreV1NamespacedServiceAccount", "post", "ServiceAccount", nil},
	} {
		item, ok := doc.Paths.Paths[w.path]
		if !ok {
			t.Errorf("no path %s", w.path)
			continue
		}
		op := map[string]*spec3.Operation{"get": item.Get, "put": item.Put, "post": item.Post, "patch": item.Patch, "delete": item.Delete}[w.method]
		if op == nil {
			t.Errorf("%s has no %s", w.path, w.method)
			continue
		}
		if op.OperationId != w.id || op.Extensions["x-kubernetes-action"] != w.action {
			t.Errorf("%s %s: id %s action %v, want %s %s", w.method, w.path, op.OperationId, op.Extensions["x-kubernetes-action"], w.id, w.action)
		}
		if gvk, _ := op.Extensions[extensionGVK].(map[string]any); gvk["kind"] != w.kind {
			t.Errorf("%s %s: kind %v, want %s", w.method, w.path, gvk, w.kind)
		}
		var names []string
		for _, p := range append(op.Parameters, item.Parameters...) {
			names = append(names, p.Name)
		}
		for _, p := range w.params {
			if !contains(names, p) {
				t.Errorf("%s %s: parameters %v lack %s", w.method, w.path, names, p)
			}
		}
	}
	// sinceTime is not a parameter in kube-apiserver's document either.
	for _, p := range doc.Paths.Paths["/api/v1/namespaces/{namespace}/pods/{name}/log"].Parameters {
		if p.Name == "sinceTime" {
			t.Error("pods/log lists sinceTime")
		}
	}
	// Namespaces have no deletecollection.
	if doc.Paths.Paths["/api/v1/namespaces"].Delete != nil {
		t.Error("namespaces have a delete collection operation")
	}
	// Deleting a pod answers with the pod, a configmap with a Status.
	for path, want := range map[string]string{
		"/api/v1/namespaces/{namespace}/pods/{name}":       "#/components/schemas/io.k8s.api.core.v1.Pod",
		"/api/v1/namespaces/{namespace}/configmaps/{name}": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Status",
	} {
		got := doc.Paths.Paths[path].Delete.Responses.StatusCodeResponses[200].Content["application/json"].Schema.Ref.String()
		if got != want {
			t.Errorf("DELETE %s answers %s, want %s", path, got, want)
		}
	}
}

// TestMemory reports what the built documents and their encodings keep in
// memory (go test -v -run Memory).
func TestMemory(t *testing.T) {
	before := heapInUse()
	h := newHandler(t)
	for _, path := range []string{"/openapi/v3", "/openapi/v3/api/v1", "/openapi/v3/apis/events.k8s.io/v1", "/openapi/v2"} {
		if rec := get(t, h, path); rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, rec.Code)
		}
	}
	afterJSON := heapInUse()
	for _, accept := range []string{"application/com.github.proto-openapi.spec.v2@v1.0+protobuf"} {
		if rec := get(t, h, "/openapi/v2", "Accept", accept); rec.Code != http.StatusOK {
			t.Fatalf("GET /openapi/v2 as protobuf: %d", rec.Code)
		}
	}
	afterProto := heapInUse()
	runtime.KeepAlive(h)
	t.Logf("documents and JSON: %.1f MiB; with v2 protobuf: %.1f MiB", mib(afterJSON-before), mib(afterProto-before))
	if afterProto-before > 64<<20 {
		t.Errorf("the documents take %.1f MiB", mib(afterProto-before))
	}
}

func heapInUse() int64 {
	// The second collection also empties the sync.Pools of the encoders.
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func BenchmarkBuild(b *testing.B) {
	for b.Loop() {
		h, err := Handler()
		if err != nil {
			b.Fatal(err)
		}
		for _, path := range []string{"/openapi/v3", "/openapi/v2"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			if _, err := io.Copy(io.Discard, rec.Body); err != nil || rec.Code != http.StatusOK {
				b.Fatal(rec.Code, err)
			}
		}
	}
}

func TestTypeConverter(t *testing.T) {
	tc, err := TypeConverter()
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "server", Image: "busybox"}}},
	}
	typed, err := tc.ObjectToTyped(pod)
	if err != nil {
		t.Fatalf("Pod to typed: %v", err)
	}
	// containers merge by name: changing one image is one field.
	changed := pod.DeepCopy()
	changed.Spec.Containers[0].Image = "busybox:1.36"
	typed2, err := tc.ObjectToTyped(changed)
	if err != nil {
		t.Fatal(err)
	}
	cmp, err := typed.Compare(typed2)
	if err != nil {
		t.Fatal(err)
	}
	if got := cmp.Modified.String(); !strings.Contains(got, `.spec.containers[name="server"].image`) {
		t.Errorf("modified fields %s", got)
	}
	event := &eventsv1.Event{TypeMeta: metav1.TypeMeta{APIVersion: "events.k8s.io/v1", Kind: "Event"}, ObjectMeta: metav1.ObjectMeta{Name: "e"}}
	if _, err := tc.ObjectToTyped(event); err != nil {
		t.Errorf("events.k8s.io Event to typed: %v", err)
	}
}
