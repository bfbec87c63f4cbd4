package apiserver

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

const appliedConfigMap = `apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
data:
  a: "1"
`

func TestServerSideApply(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	if out := ts.mustKubectl(t, appliedConfigMap, "apply", "--server-side", "-f", "-"); out != "configmap/cfg serverside-applied\n" {
		t.Fatalf("first apply: %q", out)
	}
	cm, err := ts.client.CoreV1().ConfigMaps("default").Get(ctx, "cfg", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cm.ManagedFields) != 1 || cm.ManagedFields[0].Manager != "kubectl" || cm.ManagedFields[0].Operation != metav1.ManagedFieldsOperationApply {
		t.Fatalf("managedFields after apply: %+v", cm.ManagedFields)
	}

	// Another manager takes a field with an update; applying the old value
	// then conflicts, and --force-conflicts takes it back.
	if _, err := ts.client.CoreV1().ConfigMaps("default").Patch(ctx, "cfg", types.MergePatchType,
		[]byte(`{"data":{"a":"2"}}`), metav1.PatchOptions{FieldManager: "editor"}); err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(appliedConfigMap, `a: "1"`, `a: "3"`, 1)
	_, errOut, err := ts.kubectl(t, changed, "apply", "--server-side", "-f", "-")
	if err == nil || !strings.Contains(errOut, `conflict with "editor"`) {
		t.Fatalf("conflicting apply: %v %s", err, errOut)
	}
	ts.mustKubectl(t, changed, "apply", "--server-side", "--force-conflicts", "-f", "-")
	cm, _ = ts.client.CoreV1().ConfigMaps("default").Get(ctx, "cfg", metav1.GetOptions{})
	if cm.Data["a"] != "3" {
		t.Fatalf("after forced apply: %v", cm.Data)
	}

	// Dropping a field from the applied configuration removes it.
	ts.mustKubectl(t, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  b: \"1\"\n", "apply", "--server-side", "-f", "-")
	cm, _ = ts.client.CoreV1().ConfigMaps("default").Get(ctx, "cfg", metav1.GetOptions{})
	if _, ok := cm.Data["a"]; ok || cm.Data["b"] != "1" {
		t.Fatalf("after applying without a: %v", cm.Data)
	}

	// Every write records its manager.
	created, err := ts.client.CoreV1().Pods("default").Create(ctx, newPod("m", nil), metav1.CreateOptions{FieldManager: "tester"})
	if err != nil || len(created.ManagedFields) != 1 || created.ManagedFields[0].Manager != "tester" || created.ManagedFields[0].Operation != metav1.ManagedFieldsOperationUpdate {
		t.Fatalf("managedFields on create: %v %+v", err, created.ManagedFields)
	}
}
