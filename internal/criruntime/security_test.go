package criruntime_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Users and groups from the security context and the image's /etc/group,
// with both SupplementalGroupsPolicy values; host path mounts read-write,
// read-only and recursively read-only.
func TestUsersAndMounts(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	st, err := e.svc.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Features.GetSupplementalGroupsPolicy() || !st.RuntimeHandlers[0].GetFeatures().GetRecursiveReadOnlyMounts() {
		t.Errorf("features not advertised: %v %v", st.Features, st.RuntimeHandlers)
	}

	host := t.TempDir()
	rw, ro := filepath.Join(host, "rw"), filepath.Join(host, "ro")
	sub := filepath.Join(ro, "sub")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(rw, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(rw, 0o777)
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "mode=0777"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(sub, unix.MNT_DETACH) })

	sbc := e.sandboxConfig("sec", runtimeapi.NamespaceMode_POD)
	sb := e.runSandbox(sbc)
	mk := func(name string, policy runtimeapi.SupplementalGroupsPolicy) *runtimeapi.ContainerConfig {
		c := containerConfig(name, runtimeapi.NamespaceMode_POD, "sleep", "1000")
		sc := c.Linux.SecurityContext
		sc.RunAsUser = &runtimeapi.Int64Value{Value: 1000}
		sc.SupplementalGroups = []int64{2000}
		sc.SupplementalGroupsPolicy = policy
		c.Mounts = []*runtimeapi.Mount{
			{HostPath: rw, ContainerPath: "/rw"},
			{HostPath: ro, ContainerPath: "/ro", Readonly: true},
			{HostPath: ro, ContainerPath: "/rro", Readonly: true, RecursiveReadOnly: true, Propagation: runtimeapi.MountPropagation_PROPAGATION_PRIVATE},
		}
		return c
	}
	merge := e.runContainer(sb, sbc, mk("merge", runtimeapi.SupplementalGroupsPolicy_Merge))
	strict := e.runContainer(sb, sbc, mk("strict", runtimeapi.SupplementalGroupsPolicy_Strict))

	if out := e.execUntil(merge, "id", "-G"); !sameFields(out, "1000 100 2000") {
		t.Errorf("groups with policy Merge: %q", out)
	}
	if out := e.execUntil(strict, "id", "-G"); !sameFields(out, "1000 2000") {
		t.Errorf("groups with policy Strict: %q", out)
	}
	if u := e.status(strict).GetUser().GetLinux(); u.GetUid() != 1000 || u.GetGid() != 1000 || !slices.Equal(u.GetSupplementalGroups(), []int64{1000, 2000}) {
		t.Errorf("ContainerStatus.User: %v", u)
	}

	e.execUntil(merge, "touch", "/rw/file")
	var fst unix.Stat_t
	if err := unix.Stat(filepath.Join(rw, "file"), &fst); err != nil || fst.Uid != 1000 {
		t.Errorf("file written through the read-write mount: uid %d, %v", fst.Uid, err)
	}
	run := func(cmd ...string) int32 {
		resp, err := e.svc.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: merge, Cmd: cmd})
		if err != nil {
			t.Fatal(err)
		}
		return resp.ExitCode
	}
	if run("touch", "/ro/file") == 0 {
		t.Error("wrote to a read-only mount")
	}
	if run("touch", "/ro/sub/file") != 0 {
		t.Error("could not write to a submount of a (non-recursive) read-only mount")
	}
	if run("touch", "/rro/sub/file2") == 0 {
		t.Error("wrote to a submount of a recursive read-only mount")
	}

	// Recursive read-only needs read-only and private propagation.
	c := containerConfig("bad", runtimeapi.NamespaceMode_POD, "true")
	c.Mounts = []*runtimeapi.Mount{{HostPath: ro, ContainerPath: "/x", RecursiveReadOnly: true}}
	if _, err := e.svc.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb, Config: c, SandboxConfig: sbc}); code(err) != codes.InvalidArgument {
		t.Errorf("recursive read-only without read-only: %v", err)
	}
}

func sameFields(got, want string) bool {
	g, w := strings.Fields(got), strings.Fields(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

// Seccomp: none by default and for Unconfined, the runtime's default
// profile for RuntimeDefault, a file for Localhost; a privileged container
// ignores the profile.
func TestSeccomp(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	profile := filepath.Join(t.TempDir(), "block.json")
	if err := os.WriteFile(profile, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod","fchmodat","sethostname"],"action":"SCMP_ACT_ERRNO"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	sbc := e.sandboxConfig("seccomp", runtimeapi.NamespaceMode_POD)
	sbc.Linux.SecurityContext.Privileged = true
	sb := e.runSandbox(sbc)
	run := func(name string, p *runtimeapi.SecurityProfile, privileged bool) string {
		c := containerConfig(name, runtimeapi.NamespaceMode_POD, "sleep", "1000")
		c.Linux.SecurityContext.Seccomp = p
		c.Linux.SecurityContext.Privileged = privileged
		return e.runContainer(sb, sbc, c)
	}
	seccompMode := func(id string) string {
		out := e.execUntil(id, "grep", "Seccomp:", "/proc/self/status")
		return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(out), "Seccomp:"))
	}
	if m := seccompMode(run("nil", nil, false)); m != "0" {
		t.Errorf("no profile: Seccomp %s, want 0", m)
	}
	if m := seccompMode(run("unconfined", &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}, false)); m != "0" {
		t.Errorf("Unconfined: Seccomp %s, want 0", m)
	}
	def := run("default", &runtimeapi.SecurityProfile{}, false)
	if m := seccompMode(def); m != "2" {
		t.Errorf("RuntimeDefault: Seccomp %s, want 2", m)
	}
	local := run("local", &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: profile}, false)
	resp, err := e.svc.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: local, Cmd: []string{"chmod", "400", "/"}})
	if err != nil || resp.ExitCode == 0 || !strings.Contains(string(resp.Stderr), "Operation not permitted") {
		t.Errorf("chmod under a profile blocking it: %v %v", resp, err)
	}
	priv := run("privileged", &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: profile}, true)
	if m := seccompMode(priv); m != "0" {
		t.Errorf("privileged container: Seccomp %s, want 0", m)
	}
	e.execUntil(priv, "hostname", "renamed")

	c := containerConfig("group", runtimeapi.NamespaceMode_POD, "true")
	c.Linux.SecurityContext.RunAsGroup = &runtimeapi.Int64Value{Value: 5}
	if _, err := e.svc.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb, Config: c, SandboxConfig: sbc}); code(err) != codes.InvalidArgument {
		t.Errorf("run_as_group without a user: %v, want InvalidArgument", err)
	}
}

// Mount propagation as critest checks it: a mount made on the host below a
// shared host path appears in rslave and rshared mounts, not in rprivate
// ones; a mount made in the container appears on the host only with rshared.
func TestMountPropagation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sbc := e.sandboxConfig("propagation", runtimeapi.NamespaceMode_POD)
	sbc.Linux.SecurityContext.Privileged = true
	sb := e.runSandbox(sbc)
	for _, prop := range []runtimeapi.MountPropagation{
		runtimeapi.MountPropagation_PROPAGATION_PRIVATE,
		runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER,
		runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL,
	} {
		host := t.TempDir()
		src := filepath.Join(host, "mnt")
		hostMnt := filepath.Join(src, "fromhost")
		flagDir := filepath.Join(host, "flag")
		for _, d := range []string{hostMnt, flagDir} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		os.WriteFile(filepath.Join(flagDir, "flag"), nil, 0o644)
		if err := unix.Mount(src, src, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			t.Fatal(err)
		}
		flag := uintptr(unix.MS_SHARED)
		if prop == runtimeapi.MountPropagation_PROPAGATION_PRIVATE {
			flag = unix.MS_PRIVATE
		}
		if err := unix.Mount("", src, "", flag|unix.MS_REC, ""); err != nil {
			t.Fatal(err)
		}
		c := containerConfig("prop-"+strings.ToLower(prop.String()), runtimeapi.NamespaceMode_POD, "sleep", "1000")
		c.Linux.SecurityContext.Privileged = true
		c.Mounts = []*runtimeapi.Mount{{HostPath: src, ContainerPath: src, Propagation: prop}}
		id := e.runContainer(sb, sbc, c)
		if m := e.status(id).GetMounts(); len(m) != 1 || m[0].GetPropagation() != prop {
			t.Errorf("%v: mounts in status %v", prop, m)
		}

		if err := unix.Mount(flagDir, hostMnt, "", unix.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		seen := strings.TrimSpace(e.execUntil(id, "ls", "-A", hostMnt)) != ""
		if want := prop != runtimeapi.MountPropagation_PROPAGATION_PRIVATE; seen != want {
			t.Errorf("%v: host mount seen in the container: %v, want %v", prop, seen, want)
		}
		ctrMnt := filepath.Join(src, "fromcontainer")
		e.execUntil(id, "sh", "-c", "mkdir -p "+ctrMnt+" && mount --bind /etc "+ctrMnt)
		entries, _ := os.ReadDir(ctrMnt)
		if want := prop == runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL; (len(entries) > 0) != want {
			t.Errorf("%v: container mount seen on the host: %v, want %v", prop, len(entries) > 0, want)
		}
		if _, err := e.svc.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
			t.Fatal(err)
		}
		unix.Unmount(ctrMnt, unix.MNT_DETACH)
		unix.Unmount(hostMnt, unix.MNT_DETACH)
		unix.Unmount(src, unix.MNT_DETACH)
	}

	// rshared on a private host mount is refused.
	c := containerConfig("refused", runtimeapi.NamespaceMode_POD, "true")
	c.Mounts = []*runtimeapi.Mount{{HostPath: t.TempDir(), ContainerPath: "/x", Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL}}
	if _, err := e.svc.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb, Config: c, SandboxConfig: sbc}); code(err) != codes.InvalidArgument {
		t.Errorf("rshared on a private mount: %v, want InvalidArgument", err)
	}
}
