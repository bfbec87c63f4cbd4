package criruntime_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// describeSelf returns a script that prints what confines a process of
// container id: credentials, capabilities, no-new-privileges and seccomp,
// cgroups, namespaces, working directory, environment, umask, limits, OOM
// score, the container's session keyring, hostname. Only that keyring is
// listed: a privileged container sees every container's in /proc/keys, and
// those come and go with whatever else runs on the host.
func describeSelf(id string) string {
	return `grep -E '^(Uid|Gid|Groups|Cap|NoNewPrivs|Seccomp)' /proc/self/status
cat /proc/self/cgroup
for n in cgroup ipc mnt net pid uts; do readlink /proc/self/ns/$n; done
pwd; env | sort; umask; ulimit -a; cat /proc/self/oom_score_adj
grep '_ses\.` + id + `: ' /proc/keys | sed 's/ .* _ses/ _ses/'
hostname`
}

// A process run through peapod-enter is confined exactly like one run by
// runc exec, for root and non-root users, dropped and added capabilities,
// no-new-privileges, a container PID namespace, a host PID namespace and a
// privileged container.
func TestExecLeanMatchesRunc(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sbc := e.sandboxConfig("lean", runtimeapi.NamespaceMode_POD)
	sbc.Linux.SecurityContext.Privileged = true
	sb := e.runSandbox(sbc)
	hostPID := e.sandboxConfig("leanhost", runtimeapi.NamespaceMode_NODE)
	hsb := e.runSandbox(hostPID)

	plain := containerConfig("plain", runtimeapi.NamespaceMode_POD, "sleep", "1000")
	user := containerConfig("user", runtimeapi.NamespaceMode_CONTAINER, "sleep", "1000")
	user.WorkingDir = "/tmp"
	user.Envs = []*runtimeapi.KeyValue{{Key: "HOME", Value: nil}, {Key: "A", Value: []byte("1")}, {Key: "A", Value: []byte("2")}}
	sc := user.Linux.SecurityContext
	sc.RunAsUser = &runtimeapi.Int64Value{Value: 1000}
	sc.RunAsGroup = &runtimeapi.Int64Value{Value: 3000}
	sc.SupplementalGroups = []int64{2000}
	sc.NoNewPrivs = true
	sc.ReadonlyRootfs = true
	sc.Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"ALL"}, AddCapabilities: []string{"NET_BIND_SERVICE", "CHOWN"}}
	priv := containerConfig("priv", runtimeapi.NamespaceMode_POD, "sleep", "1000")
	priv.Linux.SecurityContext.Privileged = true
	hostp := containerConfig("hostp", runtimeapi.NamespaceMode_NODE, "sleep", "1000")

	ids := map[string]string{
		"plain": e.runContainer(sb, sbc, plain),
		"user":  e.runContainer(sb, sbc, user),
		"priv":  e.runContainer(sb, sbc, priv),
		"hostp": e.runContainer(hsb, hostPID, hostp),
	}
	for name, id := range ids {
		cmd := []string{"sh", "-c", describeSelf(id)}
		lean, stderr, code, err := e.svc.ExecLean(ctx, id, cmd)
		if err != nil || code != 0 {
			t.Errorf("%s: lean exec: exit %d, %v, stderr %q", name, code, err, stderr)
			continue
		}
		var runc, rerr bytes.Buffer
		if code, err := e.svc.ExecRunc(ctx, id, cmd, &runc, &rerr); err != nil || code != 0 {
			t.Errorf("%s: runc exec: exit %d, %v, stderr %q", name, code, err, rerr.String())
			continue
		}
		if lean != runc.String() {
			t.Errorf("%s: lean exec differs from runc exec:\n%s", name, lineDiff(runc.String(), lean))
		}
		// /proc/keys is masked but in the privileged container.
		if name == "priv" && !strings.Contains(lean, " _ses."+id+": ") {
			t.Errorf("priv: the container's session keyring is not listed:\n%s", lean)
		}
	}

	// The threads that forked into containers' PID namespaces went back to
	// the daemon's: what the daemon starts now is in its own namespace.
	own, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := exec.Command("readlink", "/proc/self/ns/pid").Output()
			if got := strings.TrimSpace(string(out)); err != nil || got != own {
				t.Errorf("a process the daemon started is in PID namespace %q, not %q (%v)", got, own, err)
			}
		}()
	}
	wg.Wait()

	// Failures read as runc's do; exit codes and signals come through.
	id := ids["plain"]
	if _, _, _, err := e.svc.ExecLean(ctx, id, []string{"no-such-command"}); err == nil || !strings.Contains(err.Error(), `exec: "no-such-command": executable file not found in $PATH`) {
		t.Errorf("missing command: %v", err)
	}
	if _, _, code, err := e.svc.ExecLean(ctx, id, []string{"sh", "-c", "exit 7"}); err != nil || code != 7 {
		t.Errorf("exit 7: got %d, %v", code, err)
	}
	if _, _, code, err := e.svc.ExecLean(ctx, id, []string{"sh", "-c", "kill -9 $$"}); err != nil || code != 137 {
		t.Errorf("killed by SIGKILL: got %d, %v", code, err)
	}
	// A process left behind holding the output does not hold the call.
	if out, _, code, err := e.svc.ExecLean(ctx, id, []string{"sh", "-c", "sleep 600 & echo started"}); err != nil || code != 0 || out != "started\n" {
		t.Errorf("a command leaving a child behind: %q, exit %d, %v", out, code, err)
	}
	if out, _, _, err := e.svc.ExecLean(ctx, ids["user"], []string{"sh", "-c", "echo hi > /dev/stdout"}); err != nil || out != "hi\n" {
		t.Errorf("a non-root user reopening its stdout: %q, %v", out, err)
	}
}

// Under a seccomp profile, a process run through peapod-enter gets exactly
// runc's filter: system calls that the profile allows, denies with an errno,
// denies by condition on their arguments, or does not know (runc's ENOSYS
// stub), and a foreign architecture, give the same results both ways; for
// root and for a non-root user with no-new-privileges (the filter is then
// loaded after the capabilities are dropped), and with every capability
// dropped.
func TestExecLeanSeccompMatchesRunc(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sbc := e.sandboxConfig("leansec", runtimeapi.NamespaceMode_POD)
	sb := e.runSandbox(sbc)
	// The probe must be reachable without CAP_DAC_OVERRIDE.
	if err := os.Chmod(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	probe := func(name string) *runtimeapi.ContainerConfig {
		c := containerConfig(name, runtimeapi.NamespaceMode_POD, "sleep", "1000")
		c.Linux.SecurityContext.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
		c.Mounts = []*runtimeapi.Mount{{HostPath: binDir, ContainerPath: "/probe", Readonly: true}}
		return c
	}
	nonRoot := probe("nonroot")
	nonRoot.Linux.SecurityContext.RunAsUser = &runtimeapi.Int64Value{Value: 1000}
	nonRoot.Linux.SecurityContext.NoNewPrivs = true
	// The restricted Pod Security Standard: no capabilities at all (the
	// profile's socket rules then differ by argument).
	restricted := probe("restricted")
	restricted.Linux.SecurityContext.RunAsUser = &runtimeapi.Int64Value{Value: 1000}
	restricted.Linux.SecurityContext.NoNewPrivs = true
	restricted.Linux.SecurityContext.Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"ALL"}}
	ids := map[string]string{
		"root":       e.runContainer(sb, sbc, probe("root")),
		"nonroot":    e.runContainer(sb, sbc, nonRoot),
		"restricted": e.runContainer(sb, sbc, restricted),
	}
	for name, id := range ids {
		for _, cmd := range [][]string{{"/probe/sysprobe"}, {"sh", "-c", describeSelf(id)}} {
			lean, stderr, code, err := e.svc.ExecLean(ctx, id, cmd)
			if err != nil || code != 0 {
				t.Errorf("%s: lean exec %q: exit %d, %v, stderr %q", name, cmd, code, err, stderr)
				continue
			}
			var runc, rerr bytes.Buffer
			if code, err := e.svc.ExecRunc(ctx, id, cmd, &runc, &rerr); err != nil || code != 0 {
				t.Errorf("%s: runc exec %q: exit %d, %v, stderr %q", name, cmd, code, err, rerr.String())
				continue
			}
			if lean != runc.String() {
				t.Errorf("%s: %q through peapod-enter differs from runc exec:\n%s", name, cmd, lineDiff(runc.String(), lean))
			}
			if !strings.Contains(lean, "Seccomp:\t2") && cmd[0] == "sh" {
				t.Errorf("%s: no seccomp filter:\n%s", name, lean)
			}
		}
	}
}

// lineDiff lists the lines only in want (-) or only in got (+).
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var a, c string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			c = g[i]
		}
		if a != c {
			b.WriteString("- " + a + "\n+ " + c + "\n")
		}
	}
	return b.String()
}
