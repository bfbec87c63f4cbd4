package podmanager

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
)

func mountFor(cfg *runtimeapi.ContainerConfig, containerPath string) *runtimeapi.Mount {
	for _, m := range cfg.GetMounts() {
		if m.ContainerPath == containerPath {
			return m
		}
	}
	return nil
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestVolumes(t *testing.T) {
	hostDir := filepath.Join(t.TempDir(), "made")
	pod := testPod("vol", func(p *corev1.Pod) {
		p.Labels["tier"] = "web"
		p.Spec.Volumes = []corev1.Volume{
			{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: ptr.To(resource.MustParse("1Mi"))}}},
			{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hostDir, Type: ptr.To(corev1.HostPathDirectoryOrCreate)}}},
			{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "settings"},
				Items:                []corev1.KeyToPath{{Key: "a", Path: "dir/a.conf", Mode: ptr.To(int32(0o600))}}}}},
			{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds"}}},
			{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
				{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
				{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}}},
			{Name: "all", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}}},
			}}}},
		}
		p.Spec.HostAliases = []corev1.HostAlias{{IP: "10.1.2.3", Hostnames: []string{"db", "db.local"}}}
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "SUB", Value: "logs"}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{
			{Name: "scratch", MountPath: "/scratch"},
			{Name: "scratch", MountPath: "/sub", SubPathExpr: "$(SUB)/x"},
			{Name: "mem", MountPath: "/mem"},
			{Name: "host", MountPath: "/host", ReadOnly: true, MountPropagation: ptr.To(corev1.MountPropagationHostToContainer)},
			{Name: "cfg", MountPath: "/etc/app"},
			{Name: "sec", MountPath: "/secret"},
			{Name: "info", MountPath: "/info"},
			{Name: "all", MountPath: "/all"},
		}
		p.Spec.Containers[0].TerminationMessagePath = "/dev/termination-log"
	})
	env := newTestEnv(t, pod)
	env.objects.configMaps["default/settings"] = &corev1.ConfigMap{Data: map[string]string{"a": "alpha", "b": "beta"}}
	env.objects.secrets["default/creds"] = &corev1.Secret{Data: map[string][]byte{"token": []byte("s3cret")}}
	env.sync(t, pod.UID)
	cfg := env.rt.config("app")
	if cfg == nil {
		t.Fatalf("container not created; events %v", env.store.eventList())
	}

	scratch := mountFor(cfg, "/scratch")
	if scratch == nil || scratch.Readonly || !strings.HasPrefix(scratch.HostPath, env.podsDir) {
		t.Fatalf("emptyDir mount %+v", scratch)
	}
	if sub := mountFor(cfg, "/sub"); sub == nil || sub.HostPath != filepath.Join(scratch.HostPath, "logs/x") {
		t.Fatalf("subPathExpr mount %+v", sub)
	} else if fi, err := os.Stat(sub.HostPath); err != nil || !fi.IsDir() {
		t.Fatalf("subPath not created: %v", err)
	}
	mem := mountFor(cfg, "/mem")
	if infos, _ := mountinfo.GetMounts(mountinfo.SingleEntryFilter(mem.HostPath)); len(infos) != 1 || infos[0].FSType != "tmpfs" || !strings.Contains(infos[0].VFSOptions, "size=1024k") {
		t.Fatalf("memory emptyDir not a 1Mi tmpfs: %+v", infos)
	}
	if h := mountFor(cfg, "/host"); h == nil || h.HostPath != hostDir || !h.Readonly || h.Propagation != runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER {
		t.Fatalf("hostPath mount %+v", h)
	}
	if _, err := os.Stat(hostDir); err != nil {
		t.Fatalf("DirectoryOrCreate did not create: %v", err)
	}
	c := mountFor(cfg, "/etc/app")
	if !c.Readonly || readFile(t, filepath.Join(c.HostPath, "dir/a.conf")) != "alpha" {
		t.Fatalf("configMap mount %+v", c)
	}
	if fi, _ := os.Stat(filepath.Join(c.HostPath, "dir/a.conf")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("item mode %v", fi.Mode())
	}
	if _, err := os.Stat(filepath.Join(c.HostPath, "b")); !os.IsNotExist(err) {
		t.Fatal("a key not in items was projected")
	}
	s := mountFor(cfg, "/secret")
	if readFile(t, filepath.Join(s.HostPath, "token")) != "s3cret" {
		t.Fatal("secret not projected")
	}
	if infos, _ := mountinfo.GetMounts(mountinfo.SingleEntryFilter(s.HostPath)); len(infos) != 1 || infos[0].FSType != "tmpfs" {
		t.Fatal("secret volume not on tmpfs")
	}
	info := mountFor(cfg, "/info")
	if got := readFile(t, filepath.Join(info.HostPath, "labels")); got != "app=\"vol\"\ntier=\"web\"" {
		t.Fatalf("downward labels %q", got)
	}
	all := mountFor(cfg, "/all")
	if readFile(t, filepath.Join(all.HostPath, "b")) != "beta" || readFile(t, filepath.Join(all.HostPath, "token")) != "s3cret" {
		t.Fatal("projected volume content")
	}
	hosts := mountFor(cfg, "/etc/hosts")
	if h := readFile(t, hosts.HostPath); !strings.Contains(h, "192.168.192.168\tvol\n") || !strings.Contains(h, "10.1.2.3\tdb\tdb.local\n") {
		t.Fatalf("/etc/hosts:\n%s", h)
	}
	if mountFor(cfg, "/dev/termination-log") == nil {
		t.Fatal("no termination message file")
	}

	// A changed ConfigMap is projected again, atomically.
	env.objects.mu.Lock()
	env.objects.configMaps["default/settings"] = &corev1.ConfigMap{Data: map[string]string{"a": "ALPHA"}}
	env.objects.mu.Unlock()
	env.sync(t, pod.UID)
	if got := readFile(t, filepath.Join(c.HostPath, "dir/a.conf")); got != "ALPHA" {
		t.Fatalf("configMap update not projected: %q", got)
	}
	if _, err := os.Stat(filepath.Join(all.HostPath, "b")); !os.IsNotExist(err) {
		t.Fatal("a removed key is still projected")
	}

	// Deletion unmounts and removes the pod's directory.
	p := env.store.pod(pod.UID)
	now := metav1.NewTime(env.clock.Now())
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, ptr.To(int64(1))
	env.store.put(p)
	env.sync(t, pod.UID)
	if _, err := os.Stat(filepath.Join(env.podsDir, string(pod.UID))); !os.IsNotExist(err) {
		t.Fatalf("pod directory left: %v", err)
	}
	if infos, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(env.podsDir)); len(infos) != 0 {
		t.Fatalf("mounts left: %v", infos)
	}
}

func TestMissingConfigMap(t *testing.T) {
	pod := testPod("nocm", func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "cfg", MountPath: "/cfg"}}
	})
	env := newTestEnv(t, pod)
	env.sync(t, pod.UID)
	if env.called("CreateContainer") != 0 {
		t.Fatal("container created without its volume")
	}
	if !containsEvent(env, `Warning FailedMount MountVolume.SetUp failed for volume "cfg" : configmaps "absent" not found`) {
		t.Fatalf("events %v", env.store.eventList())
	}
	if w := env.store.pod(pod.UID).Status.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != "ContainerCreating" {
		t.Fatalf("waiting %+v", w)
	}
	// Optional: an empty volume.
	p := env.store.pod(pod.UID)
	p.Spec.Volumes[0].ConfigMap.Optional = ptr.To(true)
	env.store.put(p)
	env.sync(t, pod.UID)
	if env.called("CreateContainer") != 1 {
		t.Fatalf("optional missing configmap blocked the container: %v", env.store.eventList())
	}
}

func TestHostPathTypes(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	for _, tc := range []struct {
		path string
		t    corev1.HostPathType
		ok   bool
	}{
		{dir, corev1.HostPathDirectory, true},
		{file, corev1.HostPathDirectory, false},
		{file, corev1.HostPathFile, true},
		{dir, corev1.HostPathFile, false},
		{filepath.Join(dir, "new"), corev1.HostPathFileOrCreate, true},
		{filepath.Join(dir, "missing"), corev1.HostPathDirectory, false},
		{dir, corev1.HostPathSocket, false},
		{"/dev/null", corev1.HostPathCharDev, true},
		{dir, corev1.HostPathBlockDev, false},
		{filepath.Join(dir, "any"), corev1.HostPathUnset, true},
	} {
		err := checkHostPathType(&corev1.HostPathVolumeSource{Path: tc.path, Type: ptr.To(tc.t)})
		if (err == nil) != tc.ok {
			t.Errorf("%s %q: %v", tc.path, tc.t, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "new")); err != nil || !fi.Mode().IsRegular() {
		t.Fatal("FileOrCreate did not create a file")
	}
}

func TestEnvFromConfigMapsAndSecrets(t *testing.T) {
	pod := testPod("envs", func(p *corev1.Pod) {
		c := &p.Spec.Containers[0]
		c.EnvFrom = []corev1.EnvFromSource{
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}, Prefix: "CFG_"},
			{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}, Optional: ptr.To(true)}},
		}
		c.Env = []corev1.EnvVar{
			{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "token"}}},
			{Name: "MAYBE", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}, Key: "nokey", Optional: ptr.To(true)}}},
			{Name: "BOTH", Value: "$(CFG_a)-$(TOKEN)"},
		}
	})
	env := newTestEnv(t, pod)
	env.objects.configMaps["default/settings"] = &corev1.ConfigMap{Data: map[string]string{"a": "1", "bad-key": "x"}}
	env.objects.secrets["default/creds"] = &corev1.Secret{Data: map[string][]byte{"token": []byte("t0k")}}
	envs, err := env.m.makeEnvironmentVariables(context.Background(), pod, &pod.Spec.Containers[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, kv := range envs {
		got = append(got, kv.Key+"="+string(kv.Value))
	}
	if !slices.Equal(got, []string{"CFG_a=1", "CFG_bad-key=x", "TOKEN=t0k", "BOTH=1-t0k"}) {
		t.Fatalf("env %v", got)
	}

	// A missing required key: CreateContainerConfigError with the kubelet's message.
	pod.Spec.Containers[0].Env = append(pod.Spec.Containers[0].Env, corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{
		ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}, Key: "nokey"}}})
	env.store.put(pod)
	env.sync(t, pod.UID)
	w := env.store.pod(pod.UID).Status.ContainerStatuses[0].State.Waiting
	if w == nil || w.Reason != "CreateContainerConfigError" || w.Message != "couldn't find key nokey in ConfigMap default/settings" {
		t.Fatalf("waiting %+v", w)
	}
}

func TestTerminationMessage(t *testing.T) {
	pod := testPod("msg", func(p *corev1.Pod) {
		p.Spec.RestartPolicy = corev1.RestartPolicyNever
		p.Spec.Containers[0].TerminationMessagePath = "/dev/termination-log"
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "logs", Image: "busybox:1.36", ImagePullPolicy: corev1.PullIfNotPresent,
			TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError})
	})
	env := newTestEnv(t, pod)
	env.sync(t, pod.UID)
	f := mountFor(env.rt.config("app"), "/dev/termination-log").HostPath
	os.WriteFile(f, []byte("all done"), 0o644)
	writeLog(t, filepath.Join(env.logRoot, "default_msg_msg-uid", "logs", "0.log"), "line 1", "panic: boom")
	env.exit(t, "app", 0)
	env.exit(t, "logs", 2)
	env.sync(t, pod.UID)
	st := env.store.pod(pod.UID).Status
	for _, cs := range st.ContainerStatuses {
		want := map[string]string{"app": "all done", "logs": "line 1\npanic: boom\n"}[cs.Name]
		if cs.State.Terminated == nil || cs.State.Terminated.Message != want {
			t.Errorf("%s: terminated %+v, want message %q", cs.Name, cs.State.Terminated, want)
		}
	}
}
