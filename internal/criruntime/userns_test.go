package criruntime_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// searchableRoot makes the test's root and its parent searchable by all:
// runc reaches the rootfs from inside a pod's user namespace.
func searchableRoot(e *env) {
	for _, d := range []string{filepath.Dir(e.dirs.Root), e.dirs.Root} {
		if err := os.Chmod(d, 0o711); err != nil {
			e.t.Fatal(err)
		}
	}
}

// A pod with a user namespace of its own: its containers share it (root in
// the pod is an unprivileged host ID), see the pod's mapping, mount sysfs
// and have their sandbox files even when the image lacks the mount points;
// bad options are refused before anything is made.
func TestUserNamespace(t *testing.T) {
	e := newEnv(t, searchableRoot)
	mapping := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 200000, Length: 65536}}
	sbc := e.sandboxConfig("userns", runtimeapi.NamespaceMode_POD)
	sbc.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtimeapi.UserNamespace{
		Mode: runtimeapi.NamespaceMode_POD, Uids: mapping, Gids: mapping,
	}
	sb := e.runSandbox(sbc)
	a := e.runContainer(sb, sbc, containerConfig("a", runtimeapi.NamespaceMode_POD, "sleep", "1000"))
	b := e.runContainer(sb, sbc, containerConfig("b", runtimeapi.NamespaceMode_POD, "sleep", "1000"))
	if got := strings.Fields(e.execUntil(a, "cat", "/proc/self/uid_map")); strings.Join(got, " ") != "0 200000 65536" {
		t.Errorf("uid_map in the pod: %q", got)
	}
	if got := strings.TrimSpace(e.execUntil(a, "id", "-u")); got != "0" {
		t.Errorf("id -u in the pod: %q", got)
	}
	if ua, ub := e.execUntil(a, "readlink", "/proc/self/ns/user"), e.execUntil(b, "readlink", "/proc/self/ns/user"); ua != ub {
		t.Errorf("containers of the pod in different user namespaces: %s, %s", ua, ub)
	}
	if got := e.execUntil(a, "grep", "-c", " /sys sysfs ", "/proc/self/mounts"); strings.TrimSpace(got) == "0" {
		t.Errorf("no sysfs on /sys in the pod")
	}
	if got := e.execUntil(a, "cat", "/etc/hostname"); strings.TrimSpace(got) != "userns" {
		t.Errorf("/etc/hostname: %q", got)
	}

	for name, o := range map[string]*runtimeapi.UserNamespace{
		"two mappings": {Mode: runtimeapi.NamespaceMode_POD, Uids: append(mapping, mapping...), Gids: mapping},
		"no root":      {Mode: runtimeapi.NamespaceMode_POD, Uids: []*runtimeapi.IDMapping{{ContainerId: 1, HostId: 200000, Length: 10}}, Gids: mapping},
		"container":    {Mode: runtimeapi.NamespaceMode_CONTAINER},
		"target":       {Mode: runtimeapi.NamespaceMode_TARGET},
	} {
		bad := e.sandboxConfig("userns-bad", runtimeapi.NamespaceMode_POD)
		bad.Linux.SecurityContext.NamespaceOptions.UsernsOptions = o
		if _, err := e.svc.RunPodSandbox(context.Background(), &runtimeapi.RunPodSandboxRequest{Config: bad}); code(err) != 3 {
			t.Errorf("%s: RunPodSandbox = %v, want InvalidArgument", name, err)
		}
	}
}
