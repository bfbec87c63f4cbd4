package apiserver

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestEphemeralContainers(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	pods := ts.client.CoreV1().Pods("default")
	if _, err := pods.Create(ctx, newPod("p", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Not on create: only through the subresource.
	withEC := newPod("q", nil)
	withEC.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "d", Image: "busybox"}}}
	if _, err := pods.Create(ctx, withEC, metav1.CreateOptions{}); !apierrors.IsInvalid(err) ||
		!strings.Contains(err.Error(), "spec.ephemeralContainers: Forbidden: cannot be set on create") {
		t.Fatalf("create with ephemeral containers: %v", err)
	}

	// GET on the subresource answers the pod.
	var got corev1.Pod
	if err := ts.client.CoreV1().RESTClient().Get().Namespace("default").Resource("pods").Name("p").SubResource("ephemeralcontainers").Do(ctx).Into(&got); err != nil || got.Name != "p" {
		t.Fatalf("get ephemeralcontainers: %v %+v", err, got.ObjectMeta)
	}

	// PUT adds one; other changes in the body are ignored.
	pod := got.DeepCopy()
	pod.Labels = map[string]string{"ignored": "yes"}
	pod.Spec.Containers[0].Image = "other"
	pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{{
		EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox:1.36", Command: []string{"sh"}},
		TargetContainerName:      "c",
	}}
	updated, err := pods.UpdateEphemeralContainers(ctx, "p", pod, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ec := updated.Spec.EphemeralContainers
	if len(ec) != 1 || ec[0].ImagePullPolicy != corev1.PullIfNotPresent || ec[0].TerminationMessagePolicy != corev1.TerminationMessageReadFile ||
		ec[0].TerminationMessagePath != corev1.TerminationMessagePathDefault {
		t.Fatalf("ephemeral containers (defaulted): %+v", ec)
	}
	if updated.Labels["ignored"] != "" || updated.Spec.Containers[0].Image != "busybox" || updated.Generation != 2 {
		t.Fatalf("only ephemeralContainers may change: labels %v image %s generation %d", updated.Labels, updated.Spec.Containers[0].Image, updated.Generation)
	}

	// A strategic merge patch (what kubectl debug sends) adds another.
	patch := `{"spec":{"ephemeralContainers":[{"name":"debug2","image":"busybox:1.36","imagePullPolicy":"IfNotPresent"}]}}`
	patched, err := pods.Patch(ctx, "p", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}, "ephemeralcontainers")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(patched.Spec.EphemeralContainers); n != 2 {
		t.Fatalf("after patch: %d ephemeral containers", n)
	}

	// What the API server refuses, with its messages.
	for _, tc := range []struct {
		name string
		ec   corev1.EphemeralContainer
		want []string
	}{
		{"duplicate name", corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "c", Image: "busybox"}},
			[]string{`spec.ephemeralContainers[2].name: Duplicate value: "c"`}},
		{"no image", corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "x"}},
			[]string{`spec.ephemeralContainers[2].image: Required value`}},
		{"ports and probes", corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			Name: "x", Image: "busybox",
			Ports:          []corev1.ContainerPort{{ContainerPort: 80}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}},
			Lifecycle:      &corev1.Lifecycle{},
			Resources:      corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}},
		}}, []string{
			`spec.ephemeralContainers[2].ports: Forbidden: cannot be set for an Ephemeral Container`,
			`spec.ephemeralContainers[2].readinessProbe: Forbidden: cannot be set for an Ephemeral Container`,
			`spec.ephemeralContainers[2].lifecycle: Forbidden: cannot be set for an Ephemeral Container`,
			`spec.ephemeralContainers[2].resources: Forbidden: cannot be set for an Ephemeral Container`,
		}},
		{"unknown target", corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "x", Image: "busybox"}, TargetContainerName: "nope"},
			[]string{`spec.ephemeralContainers[2].targetContainerName: Not found: "nope"`}},
	} {
		pod := patched.DeepCopy()
		pod.Spec.EphemeralContainers = append(pod.Spec.EphemeralContainers, tc.ec)
		_, err := pods.UpdateEphemeralContainers(ctx, "p", pod, metav1.UpdateOptions{})
		if !apierrors.IsInvalid(err) {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v lacks %q", tc.name, err, w)
			}
		}
	}
	// Existing ones may be neither removed nor changed.
	pod = patched.DeepCopy()
	removed := pod.Spec.EphemeralContainers[0].Name
	pod.Spec.EphemeralContainers = pod.Spec.EphemeralContainers[1:]
	if _, err := pods.UpdateEphemeralContainers(ctx, "p", pod, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) ||
		!strings.Contains(err.Error(), `existing ephemeral containers "`+removed+`" may not be removed`) {
		t.Fatalf("remove: %v", err)
	}
	pod = patched.DeepCopy()
	pod.Spec.EphemeralContainers[0].Image = "busybox:other"
	if _, err := pods.UpdateEphemeralContainers(ctx, "p", pod, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) ||
		!strings.Contains(err.Error(), `existing ephemeral containers "`+removed+`" may not be changed`) {
		t.Fatalf("change: %v", err)
	}
	// Nothing was written by the refusals.
	final, err := pods.Get(ctx, "p", metav1.GetOptions{})
	if err != nil || final.ResourceVersion != patched.ResourceVersion {
		t.Fatalf("after refusals: %v rv %s want %s", err, final.ResourceVersion, patched.ResourceVersion)
	}
}

// TestKubectlDebug: kubectl debug adds an ephemeral container through the
// subresource (without -i it returns once the pod is patched).
func TestKubectlDebug(t *testing.T) {
	ts := startServer(t)
	ts.mustKubectl(t, "", "run", "p", "--image=busybox:1.36", "--restart=Never", "--", "sleep", "3600")
	ts.mustKubectl(t, "", "debug", "p", "--image=busybox", "--image-pull-policy=IfNotPresent", "--target=p", "--container=dbg", "--", "sh", "-c", "echo hi")
	out := ts.mustKubectl(t, "", "get", "pod", "p", "-o", "json")
	var pod corev1.Pod
	if err := json.Unmarshal([]byte(out), &pod); err != nil {
		t.Fatal(err)
	}
	ec := pod.Spec.EphemeralContainers
	if len(ec) != 1 || ec[0].Name != "dbg" || ec[0].TargetContainerName != "p" || ec[0].Image != "busybox" ||
		strings.Join(ec[0].Command, " ") != "sh -c echo hi" {
		t.Fatalf("ephemeral containers: %+v", ec)
	}
	// The name of one of the pod's containers is refused by the server.
	if _, stderr, err := ts.kubectl(t, "", "debug", "p", "--image=busybox", "--container=p"); err == nil ||
		!strings.Contains(stderr, `spec.ephemeralContainers[1].name: Duplicate value: "p"`) {
		t.Fatalf("debug container named after the app container: %v %s", err, stderr)
	}
}
