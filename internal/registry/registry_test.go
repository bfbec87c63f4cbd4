package registry

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

var start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newRegistry(t *testing.T) (*Registry, *clocktesting.FakeClock) {
	t.Helper()
	st, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := clocktesting.NewFakeClock(start)
	r, err := New(st, clk, "node1")
	if err != nil {
		t.Fatal(err)
	}
	return r, clk
}

func createPod(t *testing.T, r *Registry, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	obj, err := r.Create(context.Background(), r.resources["pods"], "default", pod, nil)
	if err != nil {
		t.Fatal(err)
	}
	return obj.(*corev1.Pod)
}

func pod(name string, containers ...corev1.Container) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{Containers: containers}}
}

func TestPullPolicyDefaults(t *testing.T) {
	for image, want := range map[string]corev1.PullPolicy{
		"busybox":                       corev1.PullAlways,
		"busybox:latest":                corev1.PullAlways,
		"busybox:1.36":                  corev1.PullIfNotPresent,
		"localhost:5000/busybox":        corev1.PullAlways,
		"localhost:5000/busybox:1":      corev1.PullIfNotPresent,
		"busybox@sha256:0123456789abcd": corev1.PullIfNotPresent,
	} {
		if got := defaultPullPolicy(image); got != want {
			t.Errorf("%s: %s, want %s", image, got, want)
		}
	}
}

func TestQOSClass(t *testing.T) {
	q := resource.MustParse
	for _, tc := range []struct {
		req, lim corev1.ResourceList
		want     corev1.PodQOSClass
	}{
		{nil, nil, corev1.PodQOSBestEffort},
		{corev1.ResourceList{"cpu": q("1")}, nil, corev1.PodQOSBurstable},
		{nil, corev1.ResourceList{"cpu": q("1"), "memory": q("1Gi")}, corev1.PodQOSGuaranteed},
		{corev1.ResourceList{"cpu": q("500m")}, corev1.ResourceList{"cpu": q("1"), "memory": q("1Gi")}, corev1.PodQOSBurstable},
	} {
		r, _ := newRegistry(t)
		p := createPod(t, r, pod("p", corev1.Container{Name: "c", Image: "i", Resources: corev1.ResourceRequirements{Requests: tc.req, Limits: tc.lim}}))
		if p.Status.QOSClass != tc.want {
			t.Errorf("requests %v limits %v: %s, want %s", tc.req, tc.lim, p.Status.QOSClass, tc.want)
		}
	}
}

func TestGracefulDeletion(t *testing.T) {
	ctx := context.Background()
	r, clk := newRegistry(t)
	res := r.resources["pods"]
	createPod(t, r, pod("p", corev1.Container{Name: "c", Image: "i"}))
	clk.Step(10 * time.Second)
	obj, deleted, err := r.Delete(ctx, res, "default", "p", nil)
	if err != nil || deleted {
		t.Fatalf("delete: %v deleted=%v", err, deleted)
	}
	p := obj.(*corev1.Pod)
	if !p.DeletionTimestamp.Time.Equal(start.Add(40*time.Second)) || *p.DeletionGracePeriodSeconds != 30 || p.Generation != 2 {
		t.Fatalf("deletion fields: %v %v gen %d", p.DeletionTimestamp, *p.DeletionGracePeriodSeconds, p.Generation)
	}

	// The pod manager sees it in its watch and removes it when done.
	pods := r.Pods()
	list, rv, err := pods.ListPods(ctx)
	if err != nil || len(list) != 1 || list[0].DeletionTimestamp == nil {
		t.Fatalf("ListPods: %v %v", err, list)
	}
	w, err := pods.WatchPods(ctx, rv)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if err := pods.DeletePodFinal(ctx, "default", "p", types.UID("other")); !apierrors.IsConflict(err) {
		t.Fatalf("DeletePodFinal with another uid: %v", err)
	}
	if err := pods.DeletePodFinal(ctx, "default", "p", p.UID); err != nil {
		t.Fatal(err)
	}
	if ev := <-w.ResultChan(); ev.Type != watch.Deleted || ev.Object.(*corev1.Pod).Name != "p" {
		t.Fatalf("watch: %v", ev)
	}
	if err := pods.DeletePodFinal(ctx, "default", "p", p.UID); err != nil {
		t.Fatalf("DeletePodFinal again: %v", err)
	}
}

func TestFinishedPodIsDeletedAtOnce(t *testing.T) {
	ctx := context.Background()
	r, _ := newRegistry(t)
	p := createPod(t, r, pod("p", corev1.Container{Name: "c", Image: "i"}))
	p.Status.Phase = corev1.PodSucceeded
	if _, err := r.Pods().UpdatePodStatus(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, deleted, err := r.Delete(ctx, r.resources["pods"], "default", "p", &metav1.DeleteOptions{}); err != nil || !deleted {
		t.Fatalf("delete of a succeeded pod: %v deleted=%v", err, deleted)
	}
}

func TestUpdatePodStatus(t *testing.T) {
	ctx := context.Background()
	r, _ := newRegistry(t)
	p := createPod(t, r, pod("p", corev1.Container{Name: "c", Image: "i"}))
	mine := p.DeepCopy()
	mine.Labels = map[string]string{"ignored": "yes"}
	mine.Status.Phase = corev1.PodRunning
	mine.Status.PodIP = "10.0.0.2"
	got, err := r.Pods().UpdatePodStatus(ctx, mine)
	if err != nil || got.Status.Phase != corev1.PodRunning || got.Labels != nil {
		t.Fatalf("UpdatePodStatus: %v %+v", err, got)
	}
	mine.UID = "replaced"
	if _, err := r.Pods().UpdatePodStatus(ctx, mine); !apierrors.IsConflict(err) {
		t.Fatalf("status for another uid: %v", err)
	}
	mine.Name = "gone"
	if _, err := r.Pods().UpdatePodStatus(ctx, mine); !apierrors.IsNotFound(err) {
		t.Fatalf("status for a missing pod: %v", err)
	}
}

func TestEventsAggregate(t *testing.T) {
	ctx := context.Background()
	r, clk := newRegistry(t)
	p := createPod(t, r, pod("p", corev1.Container{Name: "c", Image: "i"}))
	pods := r.Pods()
	pods.RecordEvent(ctx, p, corev1.EventTypeNormal, "Scheduled", "assigned")
	clk.Step(5 * time.Second)
	pods.RecordEvent(ctx, p, corev1.EventTypeNormal, "Scheduled", "assigned")
	pods.RecordContainerEvent(ctx, p, "spec.containers{c}", corev1.EventTypeNormal, "Pulling", "pulling image")
	list, err := r.List(ctx, r.resources["events"], "default", nil)
	if err != nil {
		t.Fatal(err)
	}
	var evs []corev1.Event
	for _, ev := range list.(*corev1.EventList).Items {
		if ev.Source.Component != "default-scheduler" { // the pod's binding: Scheduled
			evs = append(evs, ev)
		}
	}
	if len(evs) != 2 {
		t.Fatalf("%d events", len(evs))
	}
	for _, ev := range evs {
		switch ev.Reason {
		case "Scheduled":
			if ev.Count != 2 || !ev.FirstTimestamp.Time.Equal(start) || !ev.LastTimestamp.Time.Equal(start.Add(5*time.Second)) {
				t.Errorf("aggregated event: count %d first %v last %v", ev.Count, ev.FirstTimestamp, ev.LastTimestamp)
			}
			if ev.Source.Component != "kubelet" || ev.Source.Host != "node1" || ev.InvolvedObject.UID != p.UID {
				t.Errorf("event source/object: %+v %+v", ev.Source, ev.InvolvedObject)
			}
		case "Pulling":
			if ev.InvolvedObject.FieldPath != "spec.containers{c}" || ev.Count != 1 {
				t.Errorf("container event: %+v", ev)
			}
		}
	}
}

func TestEnsureNode(t *testing.T) {
	ctx := context.Background()
	r, clk := newRegistry(t)
	n, err := r.EnsureNode(ctx, NodeOptions{KubeletVersion: "v1.37.2", ContainerRuntimeVersion: "peapod://1", RootDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if n.Name != "node1" || n.Status.Capacity.Cpu().IsZero() || n.Status.Capacity.Memory().IsZero() || n.Status.Capacity.Pods().Value() != 110 {
		t.Fatalf("node capacity: %v", n.Status.Capacity)
	}
	ready := n.Status.Conditions[len(n.Status.Conditions)-1]
	if ready.Type != corev1.NodeReady || ready.Status != corev1.ConditionTrue {
		t.Fatalf("ready condition: %+v", ready)
	}
	clk.Step(time.Minute)
	again, err := r.EnsureNode(ctx, NodeOptions{KubeletVersion: "v1.37.2"})
	if err != nil {
		t.Fatal(err)
	}
	c := again.Status.Conditions[len(again.Status.Conditions)-1]
	if !c.LastTransitionTime.Time.Equal(start) || !c.LastHeartbeatTime.Time.Equal(start.Add(time.Minute)) {
		t.Fatalf("refresh: transition %v heartbeat %v", c.LastTransitionTime, c.LastHeartbeatTime)
	}
}

func TestPodUpdateLimits(t *testing.T) {
	ctx := context.Background()
	r, _ := newRegistry(t)
	res := r.resources["pods"]
	p := createPod(t, r, pod("p", corev1.Container{Name: "c", Image: "i"}))
	p.Spec.ActiveDeadlineSeconds = ptr.To[int64](100)
	p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists})
	up, err := r.Update(ctx, res, "default", "p", p, nil)
	if err != nil {
		t.Fatalf("allowed update: %v", err)
	}
	p = up.(*corev1.Pod)
	p.Spec.ActiveDeadlineSeconds = ptr.To[int64](200)
	if _, err := r.Update(ctx, res, "default", "p", p.DeepCopy(), nil); !apierrors.IsInvalid(err) {
		t.Fatalf("raising activeDeadlineSeconds: %v", err)
	}
	p.Spec.ActiveDeadlineSeconds = ptr.To[int64](100)
	p.Spec.Tolerations = p.Spec.Tolerations[:1]
	if _, err := r.Update(ctx, res, "default", "p", p, nil); !apierrors.IsInvalid(err) {
		t.Fatalf("removing tolerations: %v", err)
	}
}

func TestExpireEvents(t *testing.T) {
	ctx := context.Background()
	r, clk := newRegistry(t)
	p := createPod(t, r, pod("p", corev1.Container{Name: "c", Image: "i"}))
	r.Pods().RecordEvent(ctx, p, corev1.EventTypeNormal, "Old", "old")
	clk.Step(30 * time.Minute)
	r.Pods().RecordEvent(ctx, p, corev1.EventTypeNormal, "New", "new")
	clk.Step(31 * time.Minute)
	if err := r.ExpireEvents(ctx); err != nil {
		t.Fatal(err)
	}
	list, _ := r.List(ctx, r.resources["events"], "default", nil)
	if evs := list.(*corev1.EventList).Items; len(evs) != 1 || evs[0].Reason != "New" {
		t.Fatalf("left: %v", evs)
	}
}

func TestImmutableConfigMapsAndSecrets(t *testing.T) {
	ctx := context.Background()
	r, _ := newRegistry(t)
	cms := r.resources["configmaps"]
	obj, err := r.Create(ctx, cms, "default", &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Data: map[string]string{"a": "1"}, Immutable: ptr.To(true)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cm := obj.(*corev1.ConfigMap)
	cm.Data["a"] = "2"
	if _, err := r.Update(ctx, cms, "default", "c", cm, nil); !apierrors.IsInvalid(err) || err.Error() != "ConfigMap \"c\" is invalid: data: Forbidden: field is immutable when `immutable` is set" {
		t.Fatalf("changing immutable data: %v", err)
	}
	if _, err := r.Create(ctx, cms, "default", &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "bad"}, Data: map[string]string{"no/slash": "1"}}, nil); !apierrors.IsInvalid(err) {
		t.Fatalf("invalid key: %v", err)
	}

	secrets := r.resources["secrets"]
	obj, err = r.Create(ctx, secrets, "default", &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}, StringData: map[string]string{"pw": "x"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := obj.(*corev1.Secret)
	if s.Type != corev1.SecretTypeOpaque || string(s.Data["pw"]) != "x" || s.StringData != nil {
		t.Fatalf("secret defaults: %+v", s)
	}
	s.Type = corev1.SecretTypeTLS
	if _, err := r.Update(ctx, secrets, "default", "s", s, nil); !apierrors.IsInvalid(err) {
		t.Fatalf("changing the type: %v", err)
	}
}
