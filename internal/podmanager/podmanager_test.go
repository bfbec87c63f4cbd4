package podmanager

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
	"k8s.io/utils/ptr"
)

func writeFile(path, content string) error {
	return os.WriteFile(path, []byte(content), 0o644)
}

func createdContainerNames(env *testEnv) []string {
	env.rt.Lock()
	defer env.rt.Unlock()
	type nc struct {
		name string
		at   int64
	}
	var list []nc
	for _, c := range env.rt.Containers {
		list = append(list, nc{c.Metadata.Name, c.CreatedAt})
	}
	slices.SortFunc(list, func(a, b nc) int { return int(a.at - b.at) })
	var out []string
	for _, c := range list {
		out = append(out, c.name)
	}
	return out
}

func TestPodStartsInitContainersThenAppContainers(t *testing.T) {
	pod := testPod("web", func(p *corev1.Pod) {
		p.Spec.InitContainers = []corev1.Container{
			{Name: "init1", Image: "busybox:1.36", ImagePullPolicy: corev1.PullIfNotPresent},
			{Name: "init2", Image: "busybox:1.36", ImagePullPolicy: corev1.PullIfNotPresent},
		}
		p.Spec.Containers = []corev1.Container{
			{Name: "server", Image: "busybox:1.36", ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"httpd", "-p", "$(PORT)"}, Env: []corev1.EnvVar{{Name: "PORT", Value: "8080"}},
				Ports: []corev1.ContainerPort{{ContainerPort: 8080, HostPort: 18080, Protocol: corev1.ProtocolTCP}}},
			{Name: "client", Image: "busybox:1.36", ImagePullPolicy: corev1.PullIfNotPresent},
		}
	})
	env := newTestEnv(t, pod)

	env.sync(t, pod.UID)
	if got := createdContainerNames(env); !slices.Equal(got, []string{"init1"}) {
		t.Fatalf("after first sync created %v, want [init1]", got)
	}
	st := env.store.pod(pod.UID).Status
	if st.Phase != corev1.PodPending {
		t.Fatalf("phase %s, want Pending", st.Phase)
	}
	if c := condition(st, corev1.PodInitialized); c.Status != corev1.ConditionFalse || c.Reason != reasonContainersNotInitialized ||
		c.Message != "containers with incomplete status: [init1 init2]" {
		t.Fatalf("Initialized condition %+v", c)
	}
	if c := condition(st, corev1.PodReadyToStartContainers); c.Status != corev1.ConditionTrue {
		t.Fatalf("PodReadyToStartContainers %+v", c)
	}
	for _, cs := range st.ContainerStatuses {
		if cs.State.Waiting == nil || cs.State.Waiting.Reason != reasonPodInitializing {
			t.Fatalf("app container %s state %+v, want waiting PodInitializing", cs.Name, cs.State)
		}
	}
	if st.InitContainerStatuses[0].State.Running == nil {
		t.Fatalf("init1 %+v, want running", st.InitContainerStatuses[0].State)
	}

	// A sync while init1 runs changes nothing.
	env.sync(t, pod.UID)
	if got := createdContainerNames(env); len(got) != 1 {
		t.Fatalf("created %v while init1 runs", got)
	}

	env.exit(t, "init1", 0)
	env.sync(t, pod.UID)
	if got := createdContainerNames(env); !slices.Equal(got, []string{"init1", "init2"}) {
		t.Fatalf("created %v, want [init1 init2]", got)
	}
	env.exit(t, "init2", 0)
	env.sync(t, pod.UID)
	if got := createdContainerNames(env); !slices.Equal(got, []string{"init1", "init2", "server", "client"}) {
		t.Fatalf("created %v, want init1 init2 server client", got)
	}

	st = env.store.pod(pod.UID).Status
	if st.Phase != corev1.PodRunning {
		t.Fatalf("phase %s, want Running", st.Phase)
	}
	for _, ct := range []corev1.PodConditionType{corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady, corev1.PodScheduled, corev1.PodReadyToStartContainers} {
		if c := condition(st, ct); c.Status != corev1.ConditionTrue || c.LastTransitionTime.IsZero() {
			t.Fatalf("condition %s = %+v, want True with a transition time", ct, c)
		}
	}
	if st.PodIP != critest.FakePodSandboxIPs[0] || st.HostIP != "192.0.2.10" || st.StartTime == nil || st.QOSClass != corev1.PodQOSBestEffort {
		t.Fatalf("status addresses/start/qos: %+v", st)
	}
	if len(st.ContainerStatuses) != 2 || st.ContainerStatuses[0].Name != "client" {
		t.Fatalf("container statuses %+v", st.ContainerStatuses)
	}
	for _, cs := range st.ContainerStatuses {
		if cs.State.Running == nil || !cs.Ready || cs.Started == nil || !*cs.Started ||
			!strings.HasPrefix(cs.ContainerID, critest.FakeRuntimeName+"://") || cs.ImageID == "" || cs.Image != "busybox:1.36" {
			t.Fatalf("container status %+v", cs)
		}
	}
	for _, cs := range st.InitContainerStatuses {
		if cs.State.Terminated == nil || cs.State.Terminated.Reason != "Completed" || !cs.Ready {
			t.Fatalf("init container status %+v", cs)
		}
	}

	// The sandbox as the kubelet configures it.
	sbs := env.sandboxes()
	if len(sbs) != 1 {
		t.Fatalf("%d sandboxes", len(sbs))
	}
	sb := sbs[0]
	if sb.Labels[labelPodUID] != string(pod.UID) || sb.Labels["app"] != "web" || sb.Metadata.Name != "web" {
		t.Fatalf("sandbox labels/metadata %v %v", sb.Labels, sb.Metadata)
	}
	// The container config: command expanded, log path, labels, restart count.
	server := env.containers("server")[0]
	if server.Labels[labelContainerName] != "server" || server.Annotations[annotationRestartCount] != "0" {
		t.Fatalf("server labels %v annotations %v", server.Labels, server.Annotations)
	}
	if cg := env.cgroups.ensured["/kubepods/besteffort/pod"+string(pod.UID)]; cg == nil {
		t.Fatalf("pod cgroup not ensured: %v", env.cgroups.ensured)
	}
	events := strings.Join(env.store.eventList(), "\n")
	for _, want := range []string{"Normal Pulled Container image \"busybox:1.36\" already present on machine",
		"Normal Created Created container: server", "Normal Started Started container client"} {
		if !strings.Contains(events, want) {
			t.Errorf("missing event %q in\n%s", want, events)
		}
	}
}

func TestGenerateConfigs(t *testing.T) {
	pod := testPod("cfg", func(p *corev1.Pod) {
		p.Spec.ShareProcessNamespace = ptr.To(true)
		p.Spec.Hostname = "custom"
		p.Spec.SecurityContext = &corev1.PodSecurityContext{
			RunAsUser: ptr.To(int64(1000)),
			Sysctls:   []corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "0"}},
		}
		p.Spec.DNSConfig = &corev1.PodDNSConfig{Searches: []string{"svc.local"}, Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("5")}}}
		p.Spec.Containers[0].Command = []string{"sh", "-c", "echo $(MSG) $$(MSG) $(NOPE)"}
		p.Spec.Containers[0].Args = []string{"$(POD)"}
		p.Spec.Containers[0].WorkingDir = "/srv"
		p.Spec.Containers[0].Env = []corev1.EnvVar{
			{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "MSG", Value: "hello-$(POD)"},
			{Name: "IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "APP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
			{Name: "MEM", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
		}
		p.Spec.Containers[0].Resources = corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
		}
		p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false),
			Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}}}
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080, Protocol: corev1.ProtocolUDP}}
	})
	env := newTestEnv(t, pod)
	sc, err := env.m.generatePodSandboxConfig(pod, 0, "/kubepods/burstable/podcfg-uid")
	if err != nil {
		t.Fatal(err)
	}
	if sc.Hostname != "custom" || sc.LogDirectory != filepath.Join(env.logRoot, "default_cfg_cfg-uid") {
		t.Fatalf("hostname %q logdir %q", sc.Hostname, sc.LogDirectory)
	}
	if !slices.Equal(sc.DnsConfig.Servers, []string{"10.0.0.2", "10.0.0.3"}) || !slices.Equal(sc.DnsConfig.Searches, []string{"example.org", "svc.local"}) ||
		!slices.Equal(sc.DnsConfig.Options, []string{"ndots:5", "edns0"}) {
		t.Fatalf("dns %+v", sc.DnsConfig)
	}
	if len(sc.PortMappings) != 1 || sc.PortMappings[0].HostPort != 8080 || sc.PortMappings[0].Protocol != runtimeapi.Protocol_UDP {
		t.Fatalf("port mappings %v", sc.PortMappings)
	}
	ns := sc.Linux.SecurityContext.NamespaceOptions
	if ns.Pid != runtimeapi.NamespaceMode_POD || ns.Network != runtimeapi.NamespaceMode_POD || ns.Ipc != runtimeapi.NamespaceMode_POD {
		t.Fatalf("namespaces %v", ns)
	}
	if sc.Linux.CgroupParent != "/kubepods/burstable/podcfg-uid" || sc.Linux.Sysctls["net.ipv4.ip_unprivileged_port_start"] != "0" ||
		sc.Linux.SecurityContext.RunAsUser.GetValue() != 1000 {
		t.Fatalf("linux %+v", sc.Linux)
	}

	cc, err := env.m.generateContainerConfig(context.Background(), &pod.Spec.Containers[0], pod, 3, []string{"10.88.0.5"}, "sha256:abc", containerTypeRegular, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cc.Command, []string{"sh", "-c", "echo hello-cfg $(MSG) $(NOPE)"}) || !slices.Equal(cc.Args, []string{"cfg"}) {
		t.Fatalf("command %q args %q", cc.Command, cc.Args)
	}
	env2 := map[string]string{}
	for _, kv := range cc.Envs {
		env2[kv.Key] = string(kv.Value)
	}
	if env2["MSG"] != "hello-cfg" || env2["IP"] != "10.88.0.5" || env2["APP"] != "cfg" || env2["MEM"] != "128" {
		t.Fatalf("env %v", env2)
	}
	if cc.LogPath != "app/3.log" || cc.Metadata.Attempt != 3 || cc.Annotations[annotationRestartCount] != "3" || cc.WorkingDir != "/srv" ||
		cc.Image.Image != "sha256:abc" || cc.Image.UserSpecifiedImage != "busybox:1.36" {
		t.Fatalf("container config %+v", cc)
	}
	r := cc.Linux.Resources
	if r.CpuShares != 256 || r.CpuQuota != 50000 || r.CpuPeriod != 100000 || r.MemoryLimitInBytes != 128<<20 {
		t.Fatalf("resources %+v", r)
	}
	// Burstable: 1000 - 1000*64Mi/8Gi = 993.
	if r.OomScoreAdj != 993 {
		t.Fatalf("oom_score_adj %d", r.OomScoreAdj)
	}
	csc := cc.Linux.SecurityContext
	if !csc.NoNewPrivs || csc.RunAsUser.GetValue() != 1000 || !slices.Equal(csc.Capabilities.AddCapabilities, []string{"NET_ADMIN"}) ||
		csc.Seccomp.ProfileType != runtimeapi.SecurityProfile_Unconfined || len(csc.MaskedPaths) == 0 {
		t.Fatalf("security context %+v", csc)
	}

	// Pod cgroup of a Burstable pod with every limit set: shares from requests, quota and memory from limits.
	pr := podCgroupResources(pod, 0)
	if *pr.CPU.Shares != 256 || *pr.CPU.Quota != 50000 || *pr.Memory.Limit != 128<<20 {
		t.Fatalf("pod cgroup %+v %+v", pr.CPU, pr.Memory)
	}
}

func TestHostNamespaces(t *testing.T) {
	pod := testPod("host", func(p *corev1.Pod) {
		p.Spec.HostNetwork, p.Spec.HostPID, p.Spec.HostIPC = true, true, true
	})
	ns := namespacesForPod(pod)
	if ns.Network != runtimeapi.NamespaceMode_NODE || ns.Pid != runtimeapi.NamespaceMode_NODE || ns.Ipc != runtimeapi.NamespaceMode_NODE {
		t.Fatalf("namespaces %v", ns)
	}
	if ns := namespacesForPod(testPod("plain")); ns.Pid != runtimeapi.NamespaceMode_CONTAINER {
		t.Fatalf("pid %v, want CONTAINER", ns.Pid)
	}
}

func TestRestartNeverFailedExitMakesPodFailed(t *testing.T) {
	pod := testPod("job", func(p *corev1.Pod) { p.Spec.RestartPolicy = corev1.RestartPolicyNever })
	env := newTestEnv(t, pod)
	env.sync(t, pod.UID)
	if st := env.store.pod(pod.UID).Status; st.Phase != corev1.PodRunning {
		t.Fatalf("phase %s, want Running", st.Phase)
	}
	env.exit(t, "app", 1)
	env.sync(t, pod.UID)
	st := env.store.pod(pod.UID).Status
	if st.Phase != corev1.PodFailed {
		t.Fatalf("phase %s, want Failed", st.Phase)
	}
	term := st.ContainerStatuses[0].State.Terminated
	if term == nil || term.ExitCode != 1 || term.Reason != "Error" || term.FinishedAt.IsZero() {
		t.Fatalf("terminated %+v", term)
	}
	if c := condition(st, corev1.PodReady); c.Status != corev1.ConditionFalse || c.Reason != reasonPodFailed {
		t.Fatalf("Ready %+v", c)
	}
	// Not restarted, sandbox stopped.
	if n := len(env.containers("app")); n != 1 {
		t.Fatalf("%d app containers, want 1", n)
	}
	for _, sb := range env.sandboxes() {
		if sb.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
			t.Fatalf("sandbox %s still ready", sb.Id)
		}
	}
	// Later syncs leave it alone.
	calls := len(env.rt.GetCalls())
	env.sync(t, pod.UID)
	env.sync(t, pod.UID)
	if env.called("RunPodSandbox") != 1 || env.called("CreateContainer") != 1 {
		t.Fatalf("terminal pod restarted: %v", env.rt.GetCalls()[calls:])
	}
}

func TestRestartNeverSuccessMakesPodSucceeded(t *testing.T) {
	pod := testPod("ok", func(p *corev1.Pod) { p.Spec.RestartPolicy = corev1.RestartPolicyOnFailure })
	env := newTestEnv(t, pod)
	env.sync(t, pod.UID)
	env.exit(t, "app", 0)
	env.sync(t, pod.UID)
	st := env.store.pod(pod.UID).Status
	if st.Phase != corev1.PodSucceeded {
		t.Fatalf("phase %s, want Succeeded", st.Phase)
	}
	if c := condition(st, corev1.ContainersReady); c.Reason != reasonPodCompleted {
		t.Fatalf("ContainersReady %+v", c)
	}
}

func TestInitContainerFailureWithNeverFailsPod(t *testing.T) {
	pod := testPod("initfail", func(p *corev1.Pod) {
		p.Spec.RestartPolicy = corev1.RestartPolicyNever
		p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox:1.36", ImagePullPolicy: corev1.PullIfNotPresent}}
	})
	env := newTestEnv(t, pod)
	env.sync(t, pod.UID)
	env.exit(t, "init", 2)
	env.sync(t, pod.UID)
	st := env.store.pod(pod.UID).Status
	if st.Phase != corev1.PodFailed {
		t.Fatalf("phase %s, want Failed", st.Phase)
	}
	if len(env.containers("app")) != 0 {
		t.Fatal("app container started after a failed init container")
	}
}

func TestCrashLoopBackOff(t *testing.T) {
	pod := testPod("crash")
	env := newTestEnv(t, pod)
	env.sync(t, pod.UID)

	// First exit: restarted at once (the back-off starts at 10 s).
	env.exit(t, "app", 1)
	env.sync(t, pod.UID)
	if n := len(env.containers("app")); n != 2 {
		t.Fatalf("%d containers after the first crash, want 2", n)
	}
	st := env.store.pod(pod.UID).Status
	cs := st.ContainerStatuses[0]
	if cs.RestartCount != 1 || cs.State.Running == nil || cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 1 {
		t.Fatalf("after the first restart: %+v", cs)
	}

	for i, want := range []time.Duration{10, 20, 40, 80, 160, 300, 300} {
		want *= time.Second
		env.exit(t, "app", 1)
		env.sync(t, pod.UID)
		st := env.store.pod(pod.UID).Status
		cs := st.ContainerStatuses[0]
		if cs.State.Waiting == nil || cs.State.Waiting.Reason != "CrashLoopBackOff" ||
			!strings.HasPrefix(cs.State.Waiting.Message, "back-off "+want.String()+" restarting failed container=app") {
			t.Fatalf("crash %d: state %+v, want CrashLoopBackOff with back-off %s", i+2, cs.State, want)
		}
		if st.Phase != corev1.PodRunning {
			t.Fatalf("phase %s during back-off, want Running", st.Phase)
		}
		if cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 1 {
			t.Fatalf("lastState %+v", cs.LastTerminationState)
		}
		// The pod wants a sync when the back-off ends.
		rec, _ := env.m.record(pod.UID)
		if rec.requeueAt.IsZero() || rec.requeueAt.Sub(env.clock.Now()) != want {
			t.Fatalf("requeue at %v, want now+%s", rec.requeueAt, want)
		}
		// Still backing off just before the end.
		env.clock.Step(want - time.Second)
		env.sync(t, pod.UID)
		if got := env.store.pod(pod.UID).Status.ContainerStatuses[0].State.Waiting; got == nil {
			t.Fatalf("restarted before the back-off ended")
		}
		env.clock.Step(time.Second)
		env.sync(t, pod.UID)
		cs = env.store.pod(pod.UID).Status.ContainerStatuses[0]
		if cs.State.Running == nil || cs.RestartCount != int32(i+2) {
			t.Fatalf("crash %d: after back-off %+v, want running with restartCount %d", i+2, cs, i+2)
		}
		// At most the current and one previous attempt are kept.
		if n := len(env.containers("app")); n > 2 {
			t.Fatalf("%d app containers kept", n)
		}
	}
	if !slices.ContainsFunc(env.store.eventList(), func(e string) bool {
		return strings.HasPrefix(e, "Warning BackOff Back-off restarting failed container app in pod crash_default(crash-uid)")
	}) {
		t.Fatalf("no BackOff event in %v", env.store.eventList())
	}

	// Running for more than 10 minutes resets the back-off.
	env.clock.Step(11 * time.Minute)
	env.exit(t, "app", 1)
	env.sync(t, pod.UID)
	if cs := env.store.pod(pod.UID).Status.ContainerStatuses[0]; cs.State.Running == nil {
		t.Fatalf("after a long run the crash restarts at once, got %+v", cs.State)
	}
	env.exit(t, "app", 1)
	env.sync(t, pod.UID)
	if cs := env.store.pod(pod.UID).Status.ContainerStatuses[0]; cs.State.Waiting == nil ||
		!strings.HasPrefix(cs.State.Waiting.Message, "back-off 10s ") {
		t.Fatalf("back-off not reset: %+v", cs.State)
	}
}

func TestGracefulDeletion(t *testing.T) {
	pod := testPod("del", func(p *corev1.Pod) {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "side", Image: "busybox:1.36", ImagePullPolicy: corev1.PullIfNotPresent})
	})
	env := newTestEnv(t, pod)
	env.sync(t, pod.UID)
	writeLog(t, filepath.Join(env.logRoot, "default_del_del-uid", "app", "0.log"), "x")

	p := env.store.pod(pod.UID)
	now := metav1.NewTime(env.clock.Now())
	p.DeletionTimestamp = &now
	p.DeletionGracePeriodSeconds = ptr.To(int64(7))
	env.store.put(p)
	env.sync(t, pod.UID)

	if env.rt.stops["app"] != 7 || env.rt.stops["side"] != 7 {
		t.Fatalf("stop timeouts %v, want 7 s each", env.rt.stops)
	}
	if !slices.Equal(env.store.deletedList(), []types.UID{pod.UID}) {
		t.Fatalf("deleted %v", env.store.deletedList())
	}
	if len(env.sandboxes()) != 0 || len(env.containers("app")) != 0 {
		t.Fatal("sandbox or containers left behind")
	}
	if _, err := os.Stat(filepath.Join(env.logRoot, "default_del_del-uid")); !os.IsNotExist(err) {
		t.Fatalf("pod log directory left: %v", err)
	}
	if !slices.Contains(env.cgroups.removed, "/kubepods/besteffort/pod"+string(pod.UID)) {
		t.Fatalf("cgroup not removed: %v", env.cgroups.removed)
	}
	if _, ok := env.m.record(pod.UID); ok {
		t.Fatal("pod still tracked")
	}
	if !slices.ContainsFunc(env.store.eventList(), func(e string) bool { return e == "Normal Killing Stopping container app" }) {
		t.Fatalf("no Killing event: %v", env.store.eventList())
	}
}

func TestForceDeletionKillsWithMinimumGrace(t *testing.T) {
	pod := testPod("force")
	env := newTestEnv(t, pod)
	env.sync(t, pod.UID)
	p := env.store.pod(pod.UID)
	now := metav1.NewTime(env.clock.Now())
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, ptr.To(int64(0))
	env.store.remove(pod.UID)
	env.m.pods[pod.UID] = &podRecord{pod: p, removed: true}
	if done := env.m.syncOnce(context.Background(), pod.UID); !done {
		t.Fatal("cleanup of the removed pod not done")
	}
	if env.rt.stops["app"] != minimumGracePeriodInSeconds {
		t.Fatalf("stop timeout %d, want %d", env.rt.stops["app"], minimumGracePeriodInSeconds)
	}
	if len(env.sandboxes()) != 0 {
		t.Fatal("sandbox left behind")
	}
}

func TestDefaultGracePeriod(t *testing.T) {
	if g := gracePeriodForDeletion(testPod("a")); g != 30 {
		t.Fatalf("default grace %d", g)
	}
	if g := gracePeriodForDeletion(testPod("a", func(p *corev1.Pod) { p.Spec.TerminationGracePeriodSeconds = ptr.To(int64(5)) })); g != 5 {
		t.Fatalf("spec grace %d", g)
	}
}

func TestAdoptsRunningContainersAndRemovesOrphans(t *testing.T) {
	pod := testPod("adopt")
	env := newTestEnv(t, pod)
	env.sync(t, pod.UID)
	orphan := testPod("orphan")
	oenv := env // same runtime: start the orphan's containers through a second manager
	_ = oenv
	env.m.pods[orphan.UID] = &podRecord{pod: orphan}
	env.sync(t, orphan.UID)
	creates := env.called("CreateContainer")

	// A new manager over the same runtime: the daemon restarted, the orphan's pod is gone.
	env.store.remove(orphan.UID)
	m2 := New(Config{NodeName: "node1", Runtime: env.rt, Images: env.images, Pods: env.store, Cgroups: env.cgroups,
		LogRoot: env.logRoot, ResolvConf: "/nonexistent", Clock: env.clock, Logger: env.m.log})
	if err := m2.init(context.Background()); err != nil {
		t.Fatal(err)
	}
	pods, _, _ := env.store.ListPods(context.Background())
	m2.mu.Lock()
	for _, p := range pods {
		m2.pods[p.UID] = &podRecord{pod: p}
	}
	m2.synced = true
	m2.mu.Unlock()
	changed, present, err := m2.pleg.relist(context.Background())
	if err != nil || !changed[pod.UID] || !changed[orphan.UID] || present[orphan.UID].Name != "orphan" {
		t.Fatalf("relist: changed %v present %v err %v", changed, present, err)
	}
	m2.syncOnce(context.Background(), pod.UID)
	if env.called("CreateContainer") != creates || env.called("StopContainer") != 0 {
		t.Fatalf("adoption restarted containers: %v", env.rt.GetCalls())
	}
	if st := env.store.pod(pod.UID).Status; st.Phase != corev1.PodRunning {
		t.Fatalf("adopted pod phase %s", st.Phase)
	}
	// The orphan is killed and removed.
	m2.mu.Lock()
	m2.pods[orphan.UID] = &podRecord{pod: orphanPod(orphan.UID, present[orphan.UID]), orphan: true}
	m2.mu.Unlock()
	if done := m2.syncOnce(context.Background(), orphan.UID); !done {
		t.Fatal("orphan cleanup not done")
	}
	for _, sb := range env.sandboxes() {
		if sb.Labels[labelPodUID] == string(orphan.UID) {
			t.Fatal("orphan sandbox left")
		}
	}
	if env.rt.stops["app"] != minimumGracePeriodInSeconds {
		t.Fatalf("orphan stop timeout %d", env.rt.stops["app"])
	}
}

func TestImageNeverPullAndPullErrors(t *testing.T) {
	pod := testPod("img", func(p *corev1.Pod) {
		p.Spec.Containers[0].Image = "missing:1"
		p.Spec.Containers[0].ImagePullPolicy = corev1.PullNever
	})
	env := newTestEnv(t, pod)
	env.sync(t, pod.UID)
	st := env.store.pod(pod.UID).Status
	w := st.ContainerStatuses[0].State.Waiting
	if st.Phase != corev1.PodPending || w == nil || w.Reason != "ErrImageNeverPull" ||
		w.Message != `Container image "missing:1" is not present with pull policy of Never` {
		t.Fatalf("phase %s waiting %+v", st.Phase, w)
	}

	pod2 := testPod("pull", func(p *corev1.Pod) {
		p.Spec.Containers[0].Image = "remote:2"
		p.Spec.Containers[0].ImagePullPolicy = corev1.PullIfNotPresent
	})
	env.store.put(pod2)
	env.m.pods[pod2.UID] = &podRecord{pod: pod2}
	env.images.InjectError("PullImage", errString("registry unreachable"))
	env.sync(t, pod2.UID)
	w = env.store.pod(pod2.UID).Status.ContainerStatuses[0].State.Waiting
	if w == nil || w.Reason != "ErrImagePull" || !strings.Contains(w.Message, "registry unreachable") {
		t.Fatalf("waiting %+v, want ErrImagePull", w)
	}
	env.sync(t, pod2.UID)
	w = env.store.pod(pod2.UID).Status.ContainerStatuses[0].State.Waiting
	if w == nil || w.Reason != "ImagePullBackOff" {
		t.Fatalf("waiting %+v, want ImagePullBackOff", w)
	}
	env.clock.Step(10 * time.Second)
	env.sync(t, pod2.UID)
	if cs := env.store.pod(pod2.UID).Status.ContainerStatuses[0]; cs.State.Running == nil {
		t.Fatalf("after back-off the pull succeeds and the container runs: %+v", cs.State)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestPullPolicy(t *testing.T) {
	for _, tc := range []struct {
		image    string
		policy   corev1.PullPolicy
		present  bool
		wantPull bool
		wantErr  error
	}{
		{"busybox:1.36", corev1.PullAlways, true, true, nil},
		{"busybox:1.36", corev1.PullAlways, false, true, nil},
		{"busybox:1.36", corev1.PullIfNotPresent, true, false, nil},
		{"busybox:1.36", corev1.PullIfNotPresent, false, true, nil},
		{"busybox:1.36", corev1.PullNever, true, false, nil},
		{"busybox:1.36", corev1.PullNever, false, false, ErrImageNeverPull},
		{"busybox", "", true, true, nil},                               // no tag: Always
		{"busybox:latest", "", true, true, nil},                        // latest: Always
		{"busybox:1.36", "", true, false, nil},                         // tag: IfNotPresent
		{"localhost:5000/x", "", true, true, nil},                      // a port is not a tag
		{"x@sha256:" + strings.Repeat("ab", 32), "", true, false, nil}, // digest: IfNotPresent
		{"localhost:5000/x:2", "", false, true, nil},                   // IfNotPresent, absent
	} {
		env := newTestEnv(t)
		if tc.present {
			env.images.SetFakeImages([]string{tc.image})
		} else {
			env.images.SetFakeImages(nil)
		}
		pod := testPod("p", func(p *corev1.Pod) {
			p.Spec.Containers[0].Image, p.Spec.Containers[0].ImagePullPolicy = tc.image, tc.policy
		})
		ref, _, err := env.m.ensureImageExists(context.Background(), pod, &pod.Spec.Containers[0])
		pulled := slices.Contains(env.images.Called, "PullImage")
		if pulled != tc.wantPull || err != tc.wantErr {
			t.Errorf("%s %q present=%v: pulled=%v err=%v, want pulled=%v err=%v", tc.image, tc.policy, tc.present, pulled, err, tc.wantPull, tc.wantErr)
		}
		if err == nil && ref == "" {
			t.Errorf("%s: empty image ref", tc.image)
		}
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "two"}
	for in, want := range map[string]string{
		"$(A)":          "1",
		"x$(A)y$(B)z":   "x1ytwoz",
		"$$(A)":         "$(A)",
		"$(C)":          "$(C)",
		"$(A":           "$(A",
		"$A":            "$A",
		"a$":            "a$",
		"$$$$":          "$$",
		"$(A)$(B)$(A)":  "1two1",
		"no vars":       "no vars",
		"$(A)-$$-$(B)$": "1-$-two$",
	} {
		if got := expand(in, mappingFuncFor(vars)); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestQOS(t *testing.T) {
	res := func(req, lim corev1.ResourceList) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: req, Limits: lim}
		}
	}
	rl := func(cpu, mem string) corev1.ResourceList {
		l := corev1.ResourceList{}
		if cpu != "" {
			l[corev1.ResourceCPU] = resource.MustParse(cpu)
		}
		if mem != "" {
			l[corev1.ResourceMemory] = resource.MustParse(mem)
		}
		return l
	}
	for _, tc := range []struct {
		pod  *corev1.Pod
		want corev1.PodQOSClass
	}{
		{testPod("a"), corev1.PodQOSBestEffort},
		{testPod("b", res(rl("1", "1Gi"), rl("1", "1Gi"))), corev1.PodQOSGuaranteed},
		{testPod("c", res(rl("1", "1Gi"), rl("1", "1Gi"))), corev1.PodQOSGuaranteed},
		{testPod("d", res(rl("500m", ""), nil)), corev1.PodQOSBurstable},
		{testPod("e", res(rl("500m", "1Gi"), rl("1", "1Gi"))), corev1.PodQOSBurstable},
	} {
		if got := computePodQOS(tc.pod); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.pod.Name, got, tc.want)
		}
	}
	g := testPod("g", res(rl("2", "1Gi"), rl("2", "1Gi"))) // requests defaulted from limits by the registry
	r := podCgroupResources(g, 0)
	if *r.CPU.Shares != 2048 || *r.CPU.Quota != 200000 || *r.CPU.Period != 100000 || *r.Memory.Limit != 1<<30 {
		t.Fatalf("guaranteed pod cgroup %+v %+v", r.CPU, r.Memory)
	}
	if r := podCgroupResources(testPod("be"), 0); *r.CPU.Shares != 2 || r.Memory != nil || r.CPU.Quota != nil {
		t.Fatalf("besteffort pod cgroup %+v", r)
	}
	if adj := containerOOMScoreAdjust(g, &g.Spec.Containers[0], 8<<30); adj != -997 {
		t.Fatalf("guaranteed oom adj %d", adj)
	}
}
