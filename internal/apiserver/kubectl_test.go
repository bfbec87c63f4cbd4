package apiserver

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const twoContainerPod = `apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
spec:
  containers:
  - name: server
    image: busybox
    command: ["httpd", "-f", "-p", "8080"]
    ports:
    - containerPort: 8080
  - name: client
    image: busybox:1.36
`

// fields splits a table line into its columns (separated by 2+ spaces).
func fields(line string) []string {
	var out []string
	for _, f := range strings.Split(line, "  ") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func lines(s string) []string { return strings.Split(strings.TrimRight(s, "\n"), "\n") }

func TestKubectlPod(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	if out := ts.mustKubectl(t, twoContainerPod, "create", "--validate=false", "-f", "-"); out != "pod/web created\n" {
		t.Fatalf("create printed %q", out)
	}

	got := lines(ts.mustKubectl(t, "", "get", "pods"))
	if strings.Join(fields(got[0]), "|") != "NAME|READY|STATUS|RESTARTS|AGE" {
		t.Fatalf("header %q", got[0])
	}
	if row := fields(got[1]); strings.Join(row[:4], "|") != "web|0/2|Pending|0" {
		t.Fatalf("row %q", got[1])
	}
	got = lines(ts.mustKubectl(t, "", "get", "pods", "-o", "wide"))
	if strings.Join(fields(got[0]), "|") != "NAME|READY|STATUS|RESTARTS|AGE|IP|NODE|NOMINATED NODE|READINESS GATES" {
		t.Fatalf("wide header %q", got[0])
	}
	if row := fields(got[1]); strings.Join(row[5:], "|") != "<none>|testnode|<none>|<none>" {
		t.Fatalf("wide row %q", got[1])
	}

	yaml := ts.mustKubectl(t, "", "get", "pod", "web", "-o", "yaml")
	for _, want := range []string{
		"restartPolicy: Always", "dnsPolicy: ClusterFirst", "schedulerName: default-scheduler",
		"terminationGracePeriodSeconds: 30", "terminationMessagePath: /dev/termination-log",
		"imagePullPolicy: Always", "imagePullPolicy: IfNotPresent", "protocol: TCP",
		"serviceAccountName: default", "enableServiceLinks: true", "securityContext: {}",
		"key: node.kubernetes.io/not-ready", "tolerationSeconds: 300", "priority: 0",
		"preemptionPolicy: PreemptLowerPriority", "phase: Pending", "qosClass: BestEffort",
		"nodeName: testnode", "type: PodScheduled", "uid: ", "creationTimestamp: ", "generation: 1",
	} {
		if !strings.Contains(yaml, want) {
			t.Errorf("pod yaml lacks %q:\n%s", want, yaml)
		}
	}

	if out := ts.mustKubectl(t, "", "logs", "web", "-c", "client"); out != "log of web/client\n" {
		t.Errorf("logs printed %q", out)
	}
	// kubectl picks a container itself; the server's answer without one:
	err := ts.client.CoreV1().Pods("default").GetLogs("web", &corev1.PodLogOptions{}).Do(ctx).Error()
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "a container name must be specified for pod web, choose one of: [server client]") {
		t.Errorf("logs without a container: %v", err)
	}

	// Graceful deletion: the object stays, marked, until the pod manager finishes.
	if out := ts.mustKubectl(t, "", "delete", "pod", "web", "--wait=false"); out != "pod \"web\" deleted\n" {
		t.Errorf("delete printed %q", out)
	}
	pod, err := ts.client.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.DeletionTimestamp == nil || pod.DeletionGracePeriodSeconds == nil || *pod.DeletionGracePeriodSeconds != 30 {
		t.Fatalf("after delete: deletionTimestamp %v grace %v", pod.DeletionTimestamp, pod.DeletionGracePeriodSeconds)
	}
	if row := fields(lines(ts.mustKubectl(t, "", "get", "pods"))[1]); row[2] != "Terminating" {
		t.Errorf("status after delete %q", row[2])
	}
	ts.mustKubectl(t, "", "delete", "pod", "web", "--force", "--grace-period=0")
	if _, err := ts.client.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after force delete: %v", err)
	}
}

func TestKubectlNamespaces(t *testing.T) {
	ts := startServer(t)
	if out := ts.mustKubectl(t, "", "create", "namespace", "team"); out != "namespace/team created\n" {
		t.Fatalf("create namespace printed %q", out)
	}
	got := lines(ts.mustKubectl(t, "", "get", "namespaces"))
	if strings.Join(fields(got[0]), "|") != "NAME|STATUS|AGE" {
		t.Fatalf("header %q", got[0])
	}
	var names []string
	for _, l := range got[1:] {
		f := fields(l)
		names = append(names, f[0]+"="+f[1])
	}
	if strings.Join(names, ",") != "default=Active,kube-node-lease=Active,kube-public=Active,kube-system=Active,team=Active" {
		t.Fatalf("namespaces %v", names)
	}
	ts.mustKubectl(t, twoContainerPod, "create", "--validate=false", "-n", "team", "-f", "-")
	if got := lines(ts.mustKubectl(t, "", "get", "pods", "-n", "team", "-o", "name")); strings.Join(got, ",") != "pod/web" {
		t.Fatalf("pods in team: %v", got)
	}
	if _, errOut, _ := ts.kubectl(t, "", "get", "pods"); !strings.Contains(errOut, "No resources found in default namespace.") {
		t.Fatalf("default namespace not empty: %s", errOut)
	}
	_, errOut, err := ts.kubectl(t, twoContainerPod, "create", "--validate=false", "-n", "nope", "-f", "-")
	if err == nil || !strings.Contains(errOut, `namespaces "nope" not found`) {
		t.Fatalf("create in a missing namespace: %v %s", err, errOut)
	}
	if _, errOut, err := ts.kubectl(t, "", "delete", "namespace", "default"); err == nil || !strings.Contains(errOut, `namespaces "default" is forbidden: this namespace may not be deleted`) {
		t.Fatalf("delete default: %v %s", err, errOut)
	}

	// Deleting a namespace terminates its pods; it goes with the last one.
	ts.mustKubectl(t, "", "delete", "namespace", "team", "--wait=false")
	if row := fields(lines(ts.mustKubectl(t, "", "get", "namespace", "team"))[1]); row[1] != "Terminating" {
		t.Fatalf("namespace after delete: %v", row)
	}
	if _, errOut, err := ts.kubectl(t, twoContainerPod, "create", "--validate=false", "-n", "team", "-f", "-"); err == nil || !strings.Contains(errOut, "unable to create new content in namespace team because it is being terminated") {
		t.Fatalf("create in a terminating namespace: %v %s", err, errOut)
	}
	ts.mustKubectl(t, "", "delete", "pod", "web", "-n", "team", "--force", "--grace-period=0")
	if _, errOut, err := ts.kubectl(t, "", "get", "namespace", "team"); err == nil || !strings.Contains(errOut, `namespaces "team" not found`) {
		t.Fatalf("namespace after its last pod: %v %s", err, errOut)
	}
}

func TestKubectlInvalidPods(t *testing.T) {
	ts := startServer(t)
	for _, tc := range []struct{ manifest, want string }{
		{`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"a"}]}}`,
			`The Pod "p" is invalid: spec.containers[0].image: Required value`},
		{`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"x"},{"name":"a","image":"x"}]}}`,
			`spec.containers[1].name: Duplicate value: "a"`},
		{`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"Bad_Name"},"spec":{"containers":[{"name":"a","image":"x"}]}}`,
			`metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain`},
		{`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{}}`,
			`spec.containers: Required value`},
		{`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"restartPolicy":"Sometimes","containers":[{"name":"a","image":"x"}]}}`,
			`spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"`},
		{`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"x","ports":[{"containerPort":70000}]}]}}`,
			`spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive`},
		{`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"x","resources":{"limits":{"cpu":"1"},"requests":{"cpu":"2"}}}]}}`,
			`spec.containers[0].resources.requests[cpu]: Invalid value: "2": must be less than or equal to cpu limit of 1`},
	} {
		_, errOut, err := ts.kubectl(t, tc.manifest, "create", "--validate=false", "-f", "-")
		if err == nil || !strings.Contains(errOut, tc.want) {
			t.Errorf("create %s: %v\n got: %s\nwant: %s", tc.manifest, err, errOut, tc.want)
		}
	}
	// Unknown fields are refused when the client asks for strict validation.
	_, err := ts.client.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").
		Param("fieldValidation", "Strict").SetHeader("Content-Type", "application/json").
		Body([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"x","foo":1}]}}`)).
		Do(context.Background()).Get()
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), `strict decoding error: unknown field "spec.containers[0].foo"`) {
		t.Errorf("unknown field with Strict: %v", err)
	}
	if out, _, _ := ts.kubectl(t, "", "get", "pods", "-o", "name"); out != "" {
		t.Errorf("invalid pods created: %q", out)
	}
}
