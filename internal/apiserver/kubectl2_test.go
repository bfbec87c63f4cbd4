package apiserver

import (
	"bufio"
	"context"
	"os/exec"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestKubectlGetWatch(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	cmd := exec.Command(kubectlPath(t), "--kubeconfig", ts.kubeconfig, "get", "pods", "-w")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	pods := ts.client.CoreV1().Pods("default")
	if _, err := pods.Create(ctx, newPod("w1", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	next := func() []string {
		if !sc.Scan() {
			t.Fatalf("kubectl get -w ended: %v", sc.Err())
		}
		return fields(sc.Text())
	}
	// The first line is the header, then rows as pods change.
	for row := next(); row[0] != "w1"; row = next() {
		if row[0] != "NAME" {
			t.Fatalf("unexpected line %v", row)
		}
	}
	p, _ := pods.Get(ctx, "w1", metav1.GetOptions{})
	p.Status.Phase = corev1.PodRunning
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
	if _, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if row := next(); strings.Join(row[:3], "|") != "w1|1/1|Running" {
		t.Fatalf("after status update: %v", row)
	}
	if err := pods.Delete(ctx, "w1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if row := next(); strings.Join(row[:3], "|") != "w1|1/1|Terminating" {
		t.Fatalf("after delete: %v", row)
	}
}

func TestKubectlPatchAndLabel(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	ts.mustKubectl(t, twoContainerPod, "create", "--validate=false", "-f", "-")
	ts.mustKubectl(t, "", "label", "pod", "web", "tier=front")
	ts.mustKubectl(t, "", "annotate", "pod", "web", "note=hi")
	ts.mustKubectl(t, "", "patch", "pod", "web", "--type=merge", "-p", `{"metadata":{"labels":{"merge":"yes"}}}`)
	ts.mustKubectl(t, "", "patch", "pod", "web", "--type=json", "-p", `[{"op":"add","path":"/metadata/labels/json","value":"yes"}]`)
	// Strategic merge keys containers by name.
	ts.mustKubectl(t, "", "patch", "pod", "web", "-p", `{"spec":{"containers":[{"name":"client","image":"busybox:1.37"}]}}`)
	p, err := ts.client.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Labels["tier"] != "front" || p.Annotations["note"] != "hi" || p.Labels["merge"] != "yes" || p.Labels["json"] != "yes" {
		t.Fatalf("labels %v annotations %v", p.Labels, p.Annotations)
	}
	if len(p.Spec.Containers) != 2 || p.Spec.Containers[1].Image != "busybox:1.37" || p.Spec.Containers[0].Image != "busybox" {
		t.Fatalf("containers after strategic patch: %+v", p.Spec.Containers)
	}
	_, errOut, err := ts.kubectl(t, "", "patch", "pod", "web", "-p", `{"spec":{"restartPolicy":"Never"}}`)
	if err == nil || !strings.Contains(errOut, "pod updates may not change fields other than") {
		t.Fatalf("forbidden patch: %v %s", err, errOut)
	}
	// A patch naming a stale resourceVersion conflicts.
	_, err = ts.client.CoreV1().Pods("default").Patch(ctx, "web", types.MergePatchType,
		[]byte(`{"metadata":{"resourceVersion":"1","labels":{"x":"y"}}}`), metav1.PatchOptions{})
	if err == nil || !strings.Contains(err.Error(), "the object has been modified") {
		t.Fatalf("stale patch: %v", err)
	}
}

func TestKubectlConfigMapsSecretsServiceAccounts(t *testing.T) {
	ts := startServer(t)
	ts.mustKubectl(t, "", "create", "configmap", "cfg", "--from-literal=a=1", "--from-literal=b=2")
	ts.mustKubectl(t, "", "create", "secret", "generic", "sec", "--from-literal=pw=s3cret")
	got := lines(ts.mustKubectl(t, "", "get", "configmaps"))
	if strings.Join(fields(got[0]), "|") != "NAME|DATA|AGE" || strings.Join(fields(got[1])[:2], "|") != "cfg|2" {
		t.Fatalf("configmaps: %q", got)
	}
	got = lines(ts.mustKubectl(t, "", "get", "secrets"))
	if strings.Join(fields(got[0]), "|") != "NAME|TYPE|DATA|AGE" || strings.Join(fields(got[1])[:3], "|") != "sec|Opaque|1" {
		t.Fatalf("secrets: %q", got)
	}
	if out := ts.mustKubectl(t, "", "get", "secret", "sec", "-o", "jsonpath={.data.pw}"); out != "czNjcmV0" {
		t.Fatalf("secret data %q", out)
	}
	ts.mustKubectl(t, "", "create", "namespace", "team")
	got = lines(ts.mustKubectl(t, "", "get", "serviceaccounts", "-n", "team"))
	if strings.Join(fields(got[0]), "|") != "NAME|SECRETS|AGE" || strings.Join(fields(got[1])[:2], "|") != "default|0" {
		t.Fatalf("service accounts: %q", got)
	}
	_, errOut, err := ts.kubectl(t, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"serviceAccountName":"robot","containers":[{"name":"a","image":"x"}]}}`,
		"create", "--validate=false", "-f", "-")
	if err == nil || !strings.Contains(errOut, `pods "p" is forbidden: error looking up service account default/robot: serviceaccount "robot" not found`) {
		t.Fatalf("pod with a missing service account: %v %s", err, errOut)
	}
	ts.mustKubectl(t, "", "delete", "configmap", "cfg")
	if _, errOut, err := ts.kubectl(t, "", "get", "configmap", "cfg"); err == nil || !strings.Contains(errOut, `configmaps "cfg" not found`) {
		t.Fatalf("after delete: %v %s", err, errOut)
	}
}

func TestDeleteCollection(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	cms := ts.client.CoreV1().ConfigMaps("default")
	for _, n := range []string{"a", "b", "c"} {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{"del": boolLabel(n != "c")}}}
		if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cms.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "del=true"}); err != nil {
		t.Fatal(err)
	}
	list, _ := cms.List(ctx, metav1.ListOptions{})
	if len(list.Items) != 1 || list.Items[0].Name != "c" {
		t.Fatalf("left: %v", list.Items)
	}
}

func boolLabel(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func TestRequestLimitsAndFieldValidation(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	rest := ts.client.CoreV1().RESTClient()
	big := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"x":"` + strings.Repeat("a", DefaultMaxRequestBodyBytes) + `"}}`
	res := rest.Post().Namespace("default").Resource("configmaps").SetHeader("Content-Type", "application/json").Body([]byte(big)).Do(ctx)
	var code int
	res.StatusCode(&code)
	if code != 413 {
		t.Fatalf("oversized body: %d %v", code, res.Error())
	}
	// Warn (the default) creates the object and warns about the field.
	res = rest.Post().Namespace("default").Resource("configmaps").SetHeader("Content-Type", "application/json").
		Body([]byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"w"},"foo":1}`)).Do(ctx)
	if res.Error() != nil || len(res.Warnings()) != 1 || res.Warnings()[0].Text != `unknown field "foo"` {
		t.Fatalf("warn: %v %v", res.Error(), res.Warnings())
	}
	res = rest.Post().Namespace("default").Resource("configmaps").SetHeader("Content-Type", "application/json").
		Body([]byte(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}}`)).Do(ctx)
	if res.Error() == nil || !strings.Contains(res.Error().Error(), "must be of type ConfigMap") {
		t.Fatalf("wrong kind: %v", res.Error())
	}
	res = rest.Post().Namespace("default").Resource("configmaps").SetHeader("Content-Type", "application/json").
		Body([]byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"m"`)).Do(ctx)
	res.StatusCode(&code)
	if code != 400 {
		t.Fatalf("malformed JSON: %d %v", code, res.Error())
	}
}
