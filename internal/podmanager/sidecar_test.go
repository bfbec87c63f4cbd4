package podmanager

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func sidecarPod(name string) *corev1.Pod {
	always := ptr.To(corev1.ContainerRestartPolicyAlways)
	return testPod(name, func(p *corev1.Pod) {
		p.Spec.InitContainers = []corev1.Container{
			{Name: "proxy", Image: "busybox:1.36", ImagePullPolicy: corev1.PullIfNotPresent, RestartPolicy: always},
			{Name: "setup", Image: "busybox:1.36", ImagePullPolicy: corev1.PullIfNotPresent},
			{Name: "logger", Image: "busybox:1.36", ImagePullPolicy: corev1.PullIfNotPresent, RestartPolicy: always},
		}
	})
}

func TestSidecarsStartInOrderAndKeepRunning(t *testing.T) {
	pod := sidecarPod("side")
	env := newTestEnv(t, pod)
	env.sync(t, pod.UID)
	if got := createdContainerNames(env); !slices.Equal(got, []string{"proxy"}) {
		t.Fatalf("created %v, want [proxy]", got)
	}
	env.sync(t, pod.UID)
	if got := createdContainerNames(env); !slices.Equal(got, []string{"proxy", "setup"}) {
		t.Fatalf("created %v, want proxy then setup", got)
	}
	env.sync(t, pod.UID) // setup still runs: nothing new
	if got := createdContainerNames(env); len(got) != 2 {
		t.Fatalf("created %v while setup runs", got)
	}
	env.exit(t, "setup", 0)
	env.sync(t, pod.UID)
	if got := createdContainerNames(env); !slices.Equal(got, []string{"proxy", "setup", "logger"}) {
		t.Fatalf("created %v, want logger next", got)
	}
	env.sync(t, pod.UID)
	if got := createdContainerNames(env); !slices.Equal(got, []string{"proxy", "setup", "logger", "app"}) {
		t.Fatalf("created %v, want app last", got)
	}
	st := env.store.pod(pod.UID).Status
	if st.Phase != corev1.PodRunning || condition(st, corev1.PodInitialized).Status != corev1.ConditionTrue ||
		condition(st, corev1.PodReady).Status != corev1.ConditionTrue {
		t.Fatalf("status %+v", st)
	}
	for _, cs := range st.InitContainerStatuses {
		if cs.Name != "setup" && (cs.State.Running == nil || !cs.Ready) {
			t.Fatalf("sidecar %s %+v", cs.Name, cs)
		}
	}

	// A sidecar that exits is restarted; the app keeps running.
	env.exit(t, "proxy", 1)
	env.sync(t, pod.UID)
	st = env.store.pod(pod.UID).Status
	if cs := st.InitContainerStatuses[0]; cs.Name != "proxy" || cs.RestartCount != 1 || cs.State.Running == nil {
		t.Fatalf("proxy after exit %+v", cs)
	}
	if n := len(env.containers("app")); n != 1 {
		t.Fatalf("%d app containers", n)
	}

	// Deletion stops the app first, then the sidecars in reverse order.
	p := env.store.pod(pod.UID)
	now := metav1.NewTime(env.clock.Now())
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, ptr.To(int64(20))
	env.store.put(p)
	env.sync(t, pod.UID)
	if !slices.Equal(env.rt.order, []string{"app", "logger", "proxy"}) {
		t.Fatalf("stop order %v, want app, logger, proxy", env.rt.order)
	}
}

func TestSidecarsStopWhenAppCompletes(t *testing.T) {
	pod := sidecarPod("done")
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	env := newTestEnv(t, pod)
	env.sync(t, pod.UID)
	env.sync(t, pod.UID)
	env.exit(t, "setup", 0)
	env.sync(t, pod.UID)
	env.sync(t, pod.UID)
	env.exit(t, "app", 0)
	env.sync(t, pod.UID)
	if !slices.Equal(env.rt.order, []string{"logger", "proxy"}) {
		t.Fatalf("stop order %v, want logger then proxy", env.rt.order)
	}
	env.sync(t, pod.UID)
	if st := env.store.pod(pod.UID).Status; st.Phase != corev1.PodSucceeded {
		t.Fatalf("phase %s, want Succeeded", st.Phase)
	}
}
