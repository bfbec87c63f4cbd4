package podmanager

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/peapod-dev/peapod/internal/testimage"
)

// ownership returns a file's group and mode (not following symlinks).
func ownership(t *testing.T, path string) (uint32, os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Gid, fi.Mode() & (os.ModePerm | os.ModeSetgid | os.ModeSetuid | os.ModeSticky)
}

func mkTree(t *testing.T) (root, outside string) {
	t.Helper()
	root = filepath.Join(t.TempDir(), "vol")
	for _, d := range []string{root, filepath.Join(root, "sub")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, mode := range map[string]os.FileMode{"rw": 0o644, "private": 0o600, "sub/exec": 0o700, "sub/ro": 0o400} {
		p := filepath.Join(root, name)
		if err := os.WriteFile(p, []byte(name), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	outside = filepath.Join(t.TempDir(), "target")
	if err := os.WriteFile(outside, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	return root, outside
}

func TestSetVolumeOwnership(t *testing.T) {
	testimage.RequireRoot(t)
	const gid = 2000
	ctx := context.Background()

	t.Run("read-write", func(t *testing.T) {
		root, outside := mkTree(t)
		if err := setVolumeOwnership(ctx, root, ptr.To(int64(gid)), false); err != nil {
			t.Fatal(err)
		}
		want := map[string]os.FileMode{
			"":         0o775 | os.ModeSetgid,
			"sub":      0o775 | os.ModeSetgid,
			"rw":       0o664,
			"private":  0o660,
			"sub/exec": 0o760,
			"sub/ro":   0o660,
		}
		for name, mode := range want {
			g, m := ownership(t, filepath.Join(root, name))
			if g != gid || m != mode {
				t.Errorf("%q: group %d mode %v, want %d %v", name, g, m, gid, mode)
			}
		}
		// The symlink's target outside the volume is not touched.
		if g, m := ownership(t, outside); g == gid || m != 0o600 {
			t.Errorf("symlink target changed: group %d mode %v", g, m)
		}
	})

	t.Run("read-only", func(t *testing.T) {
		root, _ := mkTree(t)
		if err := setVolumeOwnership(ctx, root, ptr.To(int64(gid)), true); err != nil {
			t.Fatal(err)
		}
		for name, mode := range map[string]os.FileMode{"": 0o755 | os.ModeSetgid, "rw": 0o644, "private": 0o640, "sub/ro": 0o440} {
			if g, m := ownership(t, filepath.Join(root, name)); g != gid || m != mode {
				t.Errorf("%q: group %d mode %v, want %d %v", name, g, m, gid, mode)
			}
		}
	})

	t.Run("no fsGroup", func(t *testing.T) {
		root, _ := mkTree(t)
		if err := setVolumeOwnership(ctx, root, nil, false); err != nil {
			t.Fatal(err)
		}
		if g, m := ownership(t, filepath.Join(root, "private")); g != 0 || m != 0o600 {
			t.Errorf("changed without fsGroup: group %d mode %v", g, m)
		}
	})
}

// TestFSGroupVolumes: the pod's fsGroup owns its emptyDir and API data
// volumes (not hostPath), secret files keep defaultMode plus group read, and
// the container's processes get the group.
func TestFSGroupVolumes(t *testing.T) {
	testimage.RequireRoot(t)
	hostDir := t.TempDir()
	pod := testPod("fsg", func(p *corev1.Pod) {
		p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: ptr.To(int64(1000)), FSGroup: ptr.To(int64(2000)), SupplementalGroups: []int64{3000}}
		p.Spec.Volumes = []corev1.Volume{
			{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
			{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds", DefaultMode: ptr.To(int32(0o400))}}},
			{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}},
			{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hostDir}}},
		}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{
			{Name: "scratch", MountPath: "/scratch"}, {Name: "mem", MountPath: "/mem"},
			{Name: "sec", MountPath: "/secret"}, {Name: "cfg", MountPath: "/cfg"}, {Name: "host", MountPath: "/host"},
		}
	})
	env := newTestEnv(t, pod)
	env.objects.configMaps["default/settings"] = &corev1.ConfigMap{Data: map[string]string{"a": "alpha"}}
	env.objects.secrets["default/creds"] = &corev1.Secret{Data: map[string][]byte{"token": []byte("s3cret")}}
	env.sync(t, pod.UID)
	cfg := env.rt.config("app")
	if cfg == nil {
		t.Fatalf("container not created; events %v", env.store.eventList())
	}
	if got := cfg.GetLinux().GetSecurityContext().GetSupplementalGroups(); !slices.Contains(got, 2000) || !slices.Contains(got, 3000) {
		t.Errorf("supplemental groups %v, want fsGroup 2000 and 3000", got)
	}

	scratch := mountFor(cfg, "/scratch").HostPath
	for _, dir := range []string{scratch, mountFor(cfg, "/mem").HostPath} {
		if g, m := ownership(t, dir); g != 2000 || m != 0o777|os.ModeSetgid {
			t.Errorf("emptyDir %s: group %d mode %v, want 2000 %v", dir, g, m, 0o777|os.ModeSetgid)
		}
	}
	sec := mountFor(cfg, "/secret").HostPath
	if g, m := ownership(t, filepath.Join(sec, "..data", "token")); g != 2000 || m != 0o440 {
		t.Errorf("secret file: group %d mode %v, want 2000 0440", g, m)
	}
	if g, m := ownership(t, filepath.Join(mountFor(cfg, "/cfg").HostPath, "..data", "a")); g != 2000 || m != 0o644 {
		t.Errorf("configMap file: group %d mode %v, want 2000 0644", g, m)
	}
	if g, _ := ownership(t, hostDir); g == 2000 {
		t.Error("hostPath volume given to the fsGroup")
	}

	// Later syncs neither rewrite the unchanged secret nor walk the emptyDir
	// again: the pod's own changes stay.
	data, _ := os.Readlink(filepath.Join(sec, "..data"))
	if err := os.Chmod(scratch, 0o700); err != nil {
		t.Fatal(err)
	}
	env.sync(t, pod.UID)
	if again, _ := os.Readlink(filepath.Join(sec, "..data")); again != data {
		t.Errorf("unchanged secret rewritten: %s → %s", data, again)
	}
	if _, m := ownership(t, scratch); m != 0o700 {
		t.Errorf("emptyDir walked again: mode %v", m)
	}
}
