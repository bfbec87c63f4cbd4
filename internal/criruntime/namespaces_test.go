package criruntime_test

import (
	"os"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Namespace modes: the host's network, IPC and PID namespaces when asked
// (NODE), another container's PID namespace (TARGET); a privileged
// container sees the host's devices.
func TestNamespaceModes(t *testing.T) {
	e := newEnv(t)
	hostNS := func(t string) string {
		l, err := os.Readlink("/proc/self/ns/" + t)
		if err != nil {
			e.t.Fatal(err)
		}
		return l
	}
	sbc := e.sandboxConfig("hostns", runtimeapi.NamespaceMode_NODE)
	sbc.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	sbc.Linux.SecurityContext.NamespaceOptions.Ipc = runtimeapi.NamespaceMode_NODE
	sbc.Linux.SecurityContext.Privileged = true
	sb := e.runSandbox(sbc)
	c := containerConfig("c", runtimeapi.NamespaceMode_NODE, "sleep", "1000")
	c.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	c.Linux.SecurityContext.NamespaceOptions.Ipc = runtimeapi.NamespaceMode_NODE
	c.Linux.SecurityContext.Privileged = true
	id := e.runContainer(sb, sbc, c)
	for _, ns := range []string{"net", "ipc", "pid", "uts"} {
		if got := strings.TrimSpace(e.execUntil(id, "readlink", "/proc/self/ns/"+ns)); got != hostNS(ns) {
			t.Errorf("%s namespace of a host-%s container: %s, host %s", ns, ns, got, hostNS(ns))
		}
	}
	if got := strings.TrimSpace(e.execUntil(id, "readlink", "/proc/self/ns/mnt")); got == hostNS("mnt") {
		t.Error("container shares the host's mount namespace")
	}
	if out := e.execUntil(id, "ls", "/dev"); !strings.Contains(out, "loop") && !strings.Contains(out, "vda") && !strings.Contains(out, "kmsg") {
		t.Errorf("privileged container does not see host devices: %s", out)
	}

	sbc2 := e.sandboxConfig("target", runtimeapi.NamespaceMode_CONTAINER)
	sb2 := e.runSandbox(sbc2)
	a := e.runContainer(sb2, sbc2, containerConfig("a", runtimeapi.NamespaceMode_CONTAINER, "sleep", "1000"))
	bc := containerConfig("b", runtimeapi.NamespaceMode_TARGET, "sleep", "1000")
	bc.Linux.SecurityContext.NamespaceOptions.TargetId = a
	b := e.runContainer(sb2, sbc2, bc)
	pa := strings.TrimSpace(e.execUntil(a, "readlink", "/proc/self/ns/pid"))
	pb := strings.TrimSpace(e.execUntil(b, "readlink", "/proc/self/ns/pid"))
	if pa != pb || pa == hostNS("pid") {
		t.Errorf("TARGET PID namespace: a %s, b %s", pa, pb)
	}
	// Containers of a pod share its network, IPC and UTS namespaces.
	for _, ns := range []string{"net", "ipc", "uts"} {
		if x, y := e.execUntil(a, "readlink", "/proc/self/ns/"+ns), e.execUntil(b, "readlink", "/proc/self/ns/"+ns); x != y || strings.TrimSpace(x) == hostNS(ns) {
			t.Errorf("%s namespace of two containers of a pod: %s %s", ns, x, y)
		}
	}
}

// Pod sysctls are set in the pod's namespaces, which its containers share.
func TestSysctls(t *testing.T) {
	e := newEnv(t)
	sbc := e.sandboxConfig("sysctl", runtimeapi.NamespaceMode_POD)
	sbc.Linux.Sysctls = map[string]string{"kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "100", "net.ipv4.ip_unprivileged_port_start": "80"}
	sb := e.runSandbox(sbc)
	id := e.runContainer(sb, sbc, containerConfig("c", runtimeapi.NamespaceMode_POD, "sleep", "1000"))
	for path, want := range map[string]string{
		"/proc/sys/kernel/shm_rmid_forced":              "1",
		"/proc/sys/fs/mqueue/msg_max":                   "100",
		"/proc/sys/net/ipv4/ip_unprivileged_port_start": "80",
	} {
		if got := strings.TrimSpace(e.execUntil(id, "cat", path)); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
}
