package podmanager

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
	testingclock "k8s.io/utils/clock/testing"
)

// fakeStore is a PodStore in memory.
type fakeStore struct {
	mu       sync.Mutex
	pods     map[types.UID]*corev1.Pod
	updates  int
	events   []string
	deleted  []types.UID
	watchers []*watch.RaceFreeFakeWatcher
}

func newFakeStore(pods ...*corev1.Pod) *fakeStore {
	s := &fakeStore{pods: map[types.UID]*corev1.Pod{}}
	for _, p := range pods {
		s.pods[p.UID] = p.DeepCopy()
	}
	return s
}

func (s *fakeStore) ListPods(context.Context) ([]*corev1.Pod, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*corev1.Pod
	for _, p := range s.pods {
		out = append(out, p.DeepCopy())
	}
	return out, "1", nil
}

func (s *fakeStore) WatchPods(context.Context, string) (watch.Interface, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := watch.NewRaceFreeFake()
	s.watchers = append(s.watchers, w)
	return w, nil
}

func (s *fakeStore) notify(t watch.EventType, pod *corev1.Pod) {
	for _, w := range s.watchers {
		w.Action(t, pod.DeepCopy())
	}
}

// put creates or replaces a pod's object (spec and metadata).
func (s *fakeStore) put(pod *corev1.Pod) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := watch.Modified
	if _, ok := s.pods[pod.UID]; !ok {
		t = watch.Added
	}
	s.pods[pod.UID] = pod.DeepCopy()
	s.notify(t, pod)
}

func (s *fakeStore) remove(uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.pods[uid]; ok {
		delete(s.pods, uid)
		s.notify(watch.Deleted, p)
	}
}

func (s *fakeStore) UpdatePodStatus(_ context.Context, pod *corev1.Pod) (*corev1.Pod, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.pods[pod.UID]
	if !ok {
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, pod.Name)
	}
	cur.Status = *pod.Status.DeepCopy()
	s.updates++
	s.notify(watch.Modified, cur)
	return cur.DeepCopy(), nil
}

func (s *fakeStore) DeletePodFinal(_ context.Context, ns, name string, uid types.UID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleted = append(s.deleted, uid)
	if p, ok := s.pods[uid]; ok {
		delete(s.pods, uid)
		s.notify(watch.Deleted, p)
	}
	return nil
}

func (s *fakeStore) RecordEvent(_ context.Context, pod *corev1.Pod, eventType, reason, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, fmt.Sprintf("%s %s %s", eventType, reason, message))
}

func (s *fakeStore) pod(uid types.UID) *corev1.Pod {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.pods[uid]; ok {
		return p.DeepCopy()
	}
	return nil
}

func (s *fakeStore) eventList() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.events...)
}

func (s *fakeStore) deletedList() []types.UID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]types.UID(nil), s.deleted...)
}

// fakeCgroups records pod cgroups.
type fakeCgroups struct {
	mu      sync.Mutex
	ensured map[string]*specs.LinuxResources
	removed []string
}

func (c *fakeCgroups) PodPath(qos, uid string) string {
	switch corev1.PodQOSClass(qos) {
	case corev1.PodQOSGuaranteed:
		return "/kubepods/pod" + uid
	case corev1.PodQOSBurstable:
		return "/kubepods/burstable/pod" + uid
	}
	return "/kubepods/besteffort/pod" + uid
}

func (c *fakeCgroups) EnsurePod(path string, r *specs.LinuxResources) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ensured == nil {
		c.ensured = map[string]*specs.LinuxResources{}
	}
	c.ensured[path] = r
	return nil
}

func (c *fakeCgroups) RemovePod(path string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.ensured, path)
	c.removed = append(c.removed, path)
	return nil
}

// recordingRuntime remembers StopContainer timeouts.
type recordingRuntime struct {
	*critest.FakeRuntimeService
	mu      sync.Mutex
	stops   map[string]int64                       // container name → timeout
	order   []string                               // container names in the order they were stopped
	configs map[string]*runtimeapi.ContainerConfig // last config per container name
}

func (r *recordingRuntime) CreateContainer(ctx context.Context, sandboxID string, config *runtimeapi.ContainerConfig, sc *runtimeapi.PodSandboxConfig) (string, error) {
	r.mu.Lock()
	r.configs[config.GetMetadata().GetName()] = config
	r.mu.Unlock()
	return r.FakeRuntimeService.CreateContainer(ctx, sandboxID, config, sc)
}

func (r *recordingRuntime) config(name string) *runtimeapi.ContainerConfig {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.configs[name]
}

// fakeObjects serves ConfigMaps and Secrets.
type fakeObjects struct {
	mu         sync.Mutex
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
}

func (o *fakeObjects) GetConfigMap(_ context.Context, ns, name string) (*corev1.ConfigMap, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if cm, ok := o.configMaps[ns+"/"+name]; ok {
		return cm.DeepCopy(), nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
}

func (o *fakeObjects) GetSecret(_ context.Context, ns, name string) (*corev1.Secret, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if s, ok := o.secrets[ns+"/"+name]; ok {
		return s.DeepCopy(), nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
}

func (r *recordingRuntime) StopContainer(ctx context.Context, id string, timeout int64) error {
	r.FakeRuntimeService.Lock()
	name := ""
	if c, ok := r.FakeRuntimeService.Containers[id]; ok {
		name = c.Metadata.Name
	}
	r.FakeRuntimeService.Unlock()
	r.mu.Lock()
	r.stops[name] = timeout
	r.order = append(r.order, name)
	r.mu.Unlock()
	return r.FakeRuntimeService.StopContainer(ctx, id, timeout)
}

type testEnv struct {
	m       *Manager
	rt      *recordingRuntime
	images  *critest.FakeImageService
	store   *fakeStore
	cgroups *fakeCgroups
	clock   *testingclock.FakeClock
	logRoot string
	podsDir string
	objects *fakeObjects
}

func newTestEnv(t *testing.T, pods ...*corev1.Pod) *testEnv {
	t.Helper()
	env := &testEnv{
		rt: &recordingRuntime{FakeRuntimeService: critest.NewFakeRuntimeService(), stops: map[string]int64{},
			configs: map[string]*runtimeapi.ContainerConfig{}},
		objects: &fakeObjects{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}},
		podsDir: t.TempDir(),
		images:  critest.NewFakeImageService(),
		store:   newFakeStore(pods...),
		cgroups: &fakeCgroups{},
		clock:   testingclock.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
		logRoot: t.TempDir(),
	}
	env.images.SetFakeImages([]string{"busybox:1.36"})
	resolv := t.TempDir() + "/resolv.conf"
	if err := writeFile(resolv, "# generated\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nsearch example.org\noptions ndots:2 edns0\n"); err != nil {
		t.Fatal(err)
	}
	env.m = New(Config{
		NodeName:       "node1",
		HostIP:         "192.0.2.10",
		Runtime:        env.rt,
		Images:         env.images,
		Pods:           env.store,
		Cgroups:        env.cgroups,
		LogRoot:        env.logRoot,
		PodsDir:        env.podsDir,
		Objects:        env.objects,
		HostsFile:      "/nonexistent/hosts",
		ResolvConf:     resolv,
		MemoryCapacity: 8 << 30,
		Clock:          env.clock,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err := env.m.init(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unmountAll(t, env.podsDir) })
	for _, p := range pods {
		env.m.pods[p.UID] = &podRecord{pod: env.store.pod(p.UID)}
	}
	return env
}

// sync runs one worker pass of the pod with its current object.
func (e *testEnv) sync(t *testing.T, uid types.UID) {
	t.Helper()
	if p := e.store.pod(uid); p != nil {
		e.m.mu.Lock()
		if rec := e.m.pods[uid]; rec != nil {
			rec.pod = p
		}
		e.m.mu.Unlock()
	}
	e.m.syncOnce(context.Background(), uid)
}

// containers returns the runtime's containers of that name, newest first.
func (e *testEnv) containers(name string) []*critest.FakeContainer {
	e.rt.Lock()
	defer e.rt.Unlock()
	var out []*critest.FakeContainer
	for _, c := range e.rt.Containers {
		if c.Metadata.Name == name {
			out = append(out, c)
		}
	}
	for i := 0; i < len(out); i++ {
		for j := i + 1; j < len(out); j++ {
			if out[j].Metadata.Attempt > out[i].Metadata.Attempt {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// exit makes the newest running container of that name exit now (fake clock).
func (e *testEnv) exit(t *testing.T, name string, code int32) {
	t.Helper()
	e.rt.Lock()
	defer e.rt.Unlock()
	var newest *critest.FakeContainer
	for _, c := range e.rt.Containers {
		if c.Metadata.Name == name && c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			if newest == nil || c.Metadata.Attempt > newest.Metadata.Attempt {
				newest = c
			}
		}
	}
	if newest == nil {
		t.Fatalf("no running container %q", name)
	}
	newest.State = runtimeapi.ContainerState_CONTAINER_EXITED
	newest.ExitCode = code
	newest.FinishedAt = e.clock.Now().UnixNano()
}

func (e *testEnv) sandboxes() []*critest.FakePodSandbox {
	e.rt.Lock()
	defer e.rt.Unlock()
	var out []*critest.FakePodSandbox
	for _, s := range e.rt.Sandboxes {
		out = append(out, s)
	}
	return out
}

func (e *testEnv) called(name string) int {
	n := 0
	for _, c := range e.rt.GetCalls() {
		if c == name {
			n++
		}
	}
	return n
}

func testPod(name string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name + "-uid"),
			Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			NodeName:      "node1",
			RestartPolicy: corev1.RestartPolicyAlways,
			DNSPolicy:     corev1.DNSClusterFirst,
			Containers: []corev1.Container{
				{Name: "app", Image: "busybox:1.36", ImagePullPolicy: corev1.PullIfNotPresent},
			},
		},
	}
	for _, f := range mutate {
		f(pod)
	}
	return pod
}

func condition(s corev1.PodStatus, t corev1.PodConditionType) corev1.PodCondition {
	for _, c := range s.Conditions {
		if c.Type == t {
			return c
		}
	}
	return corev1.PodCondition{}
}

// unmountAll unmounts what tests mounted (tmpfs volumes) below dir.
func unmountAll(t *testing.T, dir string) {
	infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		t.Error(err)
		return
	}
	for _, mi := range infos {
		if err := unix.Unmount(mi.Mountpoint, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mi.Mountpoint, err)
		}
	}
}
