package apiserver

import (
	"context"
	"strings"
	"testing"

	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
)

const plainPod = `apiVersion: v1
kind: Pod
metadata:
  name: plain
spec:
  containers:
  - name: a
    image: busybox
`

// With the OpenAPI documents (internal/openapi) mounted, kubectl validates without flags: it
// finds fieldValidation on the PATCH operations and lets the server refuse
// unknown fields.
func TestKubectlValidatesWithOpenAPI(t *testing.T) {
	ts := startServer(t)
	if out := ts.mustKubectl(t, plainPod, "create", "-f", "-"); out != "pod/plain created\n" {
		t.Fatalf("create: %q", out)
	}
	unknown := strings.Replace(plainPod, "image: busybox", "image: busybox\n    foo: bar", 1)
	_, errOut, err := ts.kubectl(t, unknown, "create", "-f", "-")
	if err == nil || !strings.Contains(errOut, `Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field "spec.containers[0].foo"`) {
		t.Fatalf("unknown field: %v %s", err, errOut)
	}
	applied := strings.Replace(plainPod, "name: plain", "name: plain\n  labels:\n    tier: web", 1)
	if out := ts.mustKubectl(t, applied, "apply", "-f", "-"); out != "pod/plain configured\n" {
		t.Fatalf("apply: %q", out)
	}
	if out := ts.mustKubectl(t, "", "get", "pod", "plain", "-o", "jsonpath={.metadata.labels.tier}"); out != "web" {
		t.Fatalf("label after apply: %q", out)
	}
	out := ts.mustKubectl(t, "", "explain", "pod.spec.restartPolicy")
	if !strings.Contains(out, "FIELD: restartPolicy <string>") || !strings.Contains(out, "OnFailure") {
		t.Fatalf("explain: %s", out)
	}
}

func TestOpenAPIV2(t *testing.T) {
	ts := startServer(t)
	data, err := ts.client.Discovery().RESTClient().Get().AbsPath("/openapi/v2").
		SetHeader("Accept", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf").Do(context.Background()).Raw()
	if err != nil {
		t.Fatal(err)
	}
	doc := &openapi_v2.Document{}
	if err := proto.Unmarshal(data, doc); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range doc.GetPaths().GetPath() {
		if p.Name == "/api/v1/namespaces/{namespace}/pods/{name}" && p.GetValue().GetPatch() != nil {
			found = true
		}
	}
	if !found {
		t.Fatal("no PATCH on pods in the v2 document")
	}
	for _, d := range doc.GetDefinitions().GetAdditionalProperties() {
		if d.Name == "io.k8s.api.core.v1.Pod" {
			return
		}
	}
	t.Fatal("no Pod definition in the v2 document")
}
