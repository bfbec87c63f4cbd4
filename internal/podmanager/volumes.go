package podmanager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ObjectGetter gives the pod manager the ConfigMaps and Secrets of the API for
// volumes and environment variables (NotFound errors as the API returns them).
type ObjectGetter interface {
	GetConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error)
	GetSecret(ctx context.Context, namespace, name string) (*corev1.Secret, error)
}

// ErrVolumeNotSupported: the volume type is not built.
var ErrVolumeNotSupported = errors.New("volume type not supported")

const (
	defaultVolumeMode = 0o644 // the API's default defaultMode (420)
	eventFailedMount  = "FailedMount"
)

// podVolume is a volume ready to be mounted into containers.
type podVolume struct {
	hostPath string
	readOnly bool // API data volumes are always read-only
}

// podDir is the pod's directory: PodsDir/<uid> (the kubelet's pods/<uid>).
func (m *Manager) podDir(pod *corev1.Pod) string {
	return filepath.Join(m.cfg.PodsDir, string(pod.UID))
}

// mountVolumes sets up every volume of the pod (idempotent; API data volumes are
// re-projected when their content changed) and returns them by name.
func (m *Manager) mountVolumes(ctx context.Context, pod *corev1.Pod, podIPs []string) (map[string]podVolume, error) {
	vols := map[string]podVolume{}
	if len(pod.Spec.Volumes) == 0 {
		return vols, nil
	}
	if m.cfg.PodsDir == "" {
		return nil, fmt.Errorf("volumes need a pods directory: %w", ErrVolumeNotSupported)
	}
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		pv, err := m.setUpVolume(ctx, pod, v, podIPs)
		if err != nil {
			msg := fmt.Sprintf("MountVolume.SetUp failed for volume %q : %v", v.Name, err)
			m.recordEvent(ctx, pod, corev1.EventTypeWarning, eventFailedMount, msg)
			return nil, errors.New(msg)
		}
		vols[v.Name] = pv
	}
	return vols, nil
}

func (m *Manager) volumeDir(pod *corev1.Pod, plugin, name string) string {
	return filepath.Join(m.podDir(pod), "volumes", "kubernetes.io~"+plugin, name)
}

func (m *Manager) setUpVolume(ctx context.Context, pod *corev1.Pod, v *corev1.Volume, podIPs []string) (podVolume, error) {
	switch {
	case v.EmptyDir != nil:
		dir := m.volumeDir(pod, "empty-dir", v.Name)
		if err := m.setUpEmptyDir(ctx, pod, v, dir); err != nil {
			return podVolume{}, err
		}
		return podVolume{hostPath: dir}, nil

	case v.HostPath != nil:
		if err := checkHostPathType(v.HostPath); err != nil {
			return podVolume{}, err
		}
		return podVolume{hostPath: v.HostPath.Path}, nil

	case v.ConfigMap != nil:
		payload, err := m.configMapPayload(ctx, pod.Namespace, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.DefaultMode, v.ConfigMap.Optional)
		if err != nil {
			return podVolume{}, err
		}
		return m.projectVolume(ctx, pod, "configmap", v.Name, payload, false)

	case v.Secret != nil:
		payload, err := m.secretPayload(ctx, pod.Namespace, v.Secret.SecretName, v.Secret.Items, v.Secret.DefaultMode, v.Secret.Optional)
		if err != nil {
			return podVolume{}, err
		}
		return m.projectVolume(ctx, pod, "secret", v.Name, payload, true)

	case v.DownwardAPI != nil:
		payload, err := m.downwardAPIPayload(pod, v.DownwardAPI.Items, v.DownwardAPI.DefaultMode, podIPs)
		if err != nil {
			return podVolume{}, err
		}
		return m.projectVolume(ctx, pod, "downward-api", v.Name, payload, false)

	case v.Projected != nil:
		payload := map[string]fileProjection{}
		for _, src := range v.Projected.Sources {
			var part map[string]fileProjection
			var err error
			switch {
			case src.ConfigMap != nil:
				part, err = m.configMapPayload(ctx, pod.Namespace, src.ConfigMap.Name, src.ConfigMap.Items, v.Projected.DefaultMode, src.ConfigMap.Optional)
			case src.Secret != nil:
				part, err = m.secretPayload(ctx, pod.Namespace, src.Secret.Name, src.Secret.Items, v.Projected.DefaultMode, src.Secret.Optional)
			case src.DownwardAPI != nil:
				part, err = m.downwardAPIPayload(pod, src.DownwardAPI.Items, v.Projected.DefaultMode, podIPs)
			default:
				err = fmt.Errorf("projected source (service account token, cluster trust bundle, pod certificate): %w", ErrVolumeNotSupported)
			}
			if err != nil {
				return podVolume{}, err
			}
			for k, p := range part {
				payload[k] = p
			}
		}
		return m.projectVolume(ctx, pod, "projected", v.Name, payload, true)
	}
	return podVolume{}, fmt.Errorf("volume %q: %w", v.Name, ErrVolumeNotSupported)
}

// setUpEmptyDir is the emptyDir plugin's SetUpAt: a directory of mode 0777,
// on a tmpfs of the size limit for medium Memory, owned by the pod's fsGroup.
// As in the kubelet, a ready file records that it was set up, so that the
// ownership walk runs once and later modes chosen by the pod are kept.
func (m *Manager) setUpEmptyDir(ctx context.Context, pod *corev1.Pod, v *corev1.Volume, dir string) error {
	memory := v.EmptyDir.Medium == corev1.StorageMediumMemory
	ready := filepath.Join(m.podDir(pod), "plugins", "kubernetes.io~empty-dir", v.Name, "ready")
	if _, err := os.Stat(ready); err == nil {
		mounted, err := mountinfo.Mounted(dir)
		if err != nil {
			return err
		}
		if mounted || !memory {
			return nil
		}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	if memory {
		size := int64(0)
		if v.EmptyDir.SizeLimit != nil {
			size = v.EmptyDir.SizeLimit.Value()
		}
		if err := mountTmpfs(dir, size, 0o777); err != nil {
			return err
		}
	} else if err := os.Chmod(dir, 0o777); err != nil {
		return err
	}
	if err := setVolumeOwnership(ctx, dir, podFSGroup(pod), false); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(ready), 0o750); err != nil {
		return err
	}
	return os.WriteFile(ready, nil, 0o600)
}

// checkHostPathType applies a hostPath volume's type check, creating what
// DirectoryOrCreate and FileOrCreate ask for.
func checkHostPathType(h *corev1.HostPathVolumeSource) error {
	t := corev1.HostPathUnset
	if h.Type != nil {
		t = *h.Type
	}
	fi, err := os.Stat(h.Path)
	exists := err == nil
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	switch t {
	case corev1.HostPathUnset:
		return nil
	case corev1.HostPathDirectoryOrCreate:
		if !exists {
			return os.MkdirAll(h.Path, 0o755)
		}
		if !fi.IsDir() {
			return fmt.Errorf("hostPath type check failed: %s is not a directory", h.Path)
		}
	case corev1.HostPathDirectory:
		if !exists || !fi.IsDir() {
			return fmt.Errorf("hostPath type check failed: %s is not a directory", h.Path)
		}
	case corev1.HostPathFileOrCreate:
		if !exists {
			f, err := os.OpenFile(h.Path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			return f.Close()
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("hostPath type check failed: %s is not a file", h.Path)
		}
	case corev1.HostPathFile:
		if !exists || !fi.Mode().IsRegular() {
			return fmt.Errorf("hostPath type check failed: %s is not a file", h.Path)
		}
	case corev1.HostPathSocket:
		if !exists || fi.Mode()&os.ModeSocket == 0 {
			return fmt.Errorf("hostPath type check failed: %s is not a socket file", h.Path)
		}
	case corev1.HostPathCharDev:
		if !exists || fi.Mode()&os.ModeCharDevice == 0 {
			return fmt.Errorf("hostPath type check failed: %s is not a character device", h.Path)
		}
	case corev1.HostPathBlockDev:
		if !exists || fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
			return fmt.Errorf("hostPath type check failed: %s is not a block device", h.Path)
		}
	default:
		return fmt.Errorf("invalid HostPathType %q", t)
	}
	return nil
}

// fileProjection is one file of an API data volume.
type fileProjection struct {
	data []byte
	mode int32
}

func (m *Manager) objects() (ObjectGetter, error) {
	if m.cfg.Objects == nil {
		return nil, fmt.Errorf("configmaps and secrets: %w", ErrVolumeNotSupported)
	}
	return m.cfg.Objects, nil
}

// configMapPayload is the configmap volume's MakePayload.
func (m *Manager) configMapPayload(ctx context.Context, ns, name string, items []corev1.KeyToPath, defaultMode *int32, optional *bool) (map[string]fileProjection, error) {
	og, err := m.objects()
	if err != nil {
		return nil, err
	}
	opt := optional != nil && *optional
	cm, err := og.GetConfigMap(ctx, ns, name)
	if err != nil {
		if apierrors.IsNotFound(err) && opt {
			return map[string]fileProjection{}, nil
		}
		return nil, err
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return makePayload(items, data, defaultMode, opt, "configmap references non-existent config key: %s")
}

// secretPayload is the secret volume's MakePayload.
func (m *Manager) secretPayload(ctx context.Context, ns, name string, items []corev1.KeyToPath, defaultMode *int32, optional *bool) (map[string]fileProjection, error) {
	og, err := m.objects()
	if err != nil {
		return nil, err
	}
	opt := optional != nil && *optional
	s, err := og.GetSecret(ctx, ns, name)
	if err != nil {
		if apierrors.IsNotFound(err) && opt {
			return map[string]fileProjection{}, nil
		}
		return nil, err
	}
	data := map[string][]byte{}
	for k, v := range s.Data {
		data[k] = v
	}
	for k, v := range s.StringData {
		data[k] = []byte(v)
	}
	return makePayload(items, data, defaultMode, opt, "references non-existent secret key: %s")
}

func makePayload(items []corev1.KeyToPath, data map[string][]byte, defaultMode *int32, optional bool, missing string) (map[string]fileProjection, error) {
	mode := int32(defaultVolumeMode)
	if defaultMode != nil {
		mode = *defaultMode
	}
	payload := map[string]fileProjection{}
	if len(items) == 0 {
		for k, v := range data {
			payload[k] = fileProjection{data: v, mode: mode}
		}
		return payload, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, fmt.Errorf(missing, it.Key)
		}
		p := fileProjection{data: v, mode: mode}
		if it.Mode != nil {
			p.mode = *it.Mode
		}
		payload[it.Path] = p
	}
	return payload, nil
}

// downwardAPIPayload is the downwardAPI volume's CollectData.
func (m *Manager) downwardAPIPayload(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, defaultMode *int32, podIPs []string) (map[string]fileProjection, error) {
	mode := int32(defaultVolumeMode)
	if defaultMode != nil {
		mode = *defaultMode
	}
	payload := map[string]fileProjection{}
	for _, it := range items {
		var val string
		var err error
		switch {
		case it.FieldRef != nil:
			val, err = m.podFieldSelectorRuntimeValue(it.FieldRef, pod, podIPs)
		case it.ResourceFieldRef != nil:
			c := containerSpec(pod, it.ResourceFieldRef.ContainerName)
			if c == nil {
				err = fmt.Errorf("resourceFieldRef: no container %q", it.ResourceFieldRef.ContainerName)
				break
			}
			val, err = m.containerResourceRuntimeValue(it.ResourceFieldRef, pod, c)
		}
		if err != nil {
			return nil, err
		}
		p := fileProjection{data: []byte(val), mode: mode}
		if it.Mode != nil {
			p.mode = *it.Mode
		}
		payload[it.Path] = p
	}
	return payload, nil
}

// projectVolume writes an API data volume, on tmpfs for secrets and projected
// volumes (which may hold secrets), owned by the pod's fsGroup.
func (m *Manager) projectVolume(ctx context.Context, pod *corev1.Pod, plugin, name string, payload map[string]fileProjection, memory bool) (podVolume, error) {
	dir := m.volumeDir(pod, plugin, name)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return podVolume{}, err
	}
	if memory {
		if err := mountTmpfs(dir, 0, 0o755); err != nil {
			return podVolume{}, err
		}
	}
	if err := writeAtomic(ctx, dir, payload, podFSGroup(pod)); err != nil {
		return podVolume{}, fmt.Errorf("write volume %s: %w", name, err)
	}
	return podVolume{hostPath: dir, readOnly: true}, nil
}

// mountTmpfs mounts a tmpfs on dir unless one is there (size 0: the default).
func mountTmpfs(dir string, size int64, mode os.FileMode) error {
	mounted, err := mountinfo.Mounted(dir)
	if err != nil {
		return err
	}
	if mounted {
		return nil
	}
	opts := "mode=" + strconv.FormatUint(uint64(mode), 8)
	if size > 0 {
		opts += ",size=" + strconv.FormatInt(size, 10)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return nil
}

const dataDirName = "..data"

// writeAtomic is the kubelet's AtomicWriter: the files live in a timestamped
// directory that "..data" links to; each top-level name links into "..data".
// A new payload replaces the link atomically, so readers never see a mix.
// With an fsGroup the whole volume is given to that group (read-only masks)
// before the switch, as the kubelet's setPerms hook does.
func writeAtomic(ctx context.Context, dir string, payload map[string]fileProjection, fsGroup *int64) error {
	for p := range payload {
		if err := validatePath(p); err != nil {
			return err
		}
	}
	if same, err := payloadUnchanged(dir, payload, fsGroup != nil); err != nil {
		return err
	} else if same {
		return nil
	}
	oldTs, _ := os.Readlink(filepath.Join(dir, dataDirName))
	tsDir, err := os.MkdirTemp(dir, "..data_")
	if err != nil {
		return err
	}
	if err := os.Chmod(tsDir, 0o755); err != nil {
		return err
	}
	for p, f := range payload {
		full := filepath.Join(tsDir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, f.data, os.FileMode(f.mode)&os.ModePerm); err != nil {
			return err
		}
		if err := os.Chmod(full, os.FileMode(f.mode)&os.ModePerm); err != nil {
			return err
		}
	}
	if err := setVolumeOwnership(ctx, dir, fsGroup, true); err != nil {
		return err
	}
	tmpLink := filepath.Join(dir, "..data_tmp")
	os.Remove(tmpLink)
	if err := os.Symlink(filepath.Base(tsDir), tmpLink); err != nil {
		return err
	}
	if err := os.Rename(tmpLink, filepath.Join(dir, dataDirName)); err != nil {
		return err
	}
	// User-visible links for the top-level names; stale ones go.
	want := map[string]bool{}
	for p := range payload {
		want[strings.SplitN(p, "/", 2)[0]] = true
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "..") && !want[e.Name()] {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	for top := range want {
		link := filepath.Join(dir, top)
		if target, err := os.Readlink(link); err == nil && target == filepath.Join(dataDirName, top) {
			continue
		}
		os.Remove(link)
		if err := os.Symlink(filepath.Join(dataDirName, top), link); err != nil {
			return err
		}
	}
	if oldTs != "" && oldTs != filepath.Base(tsDir) {
		os.RemoveAll(filepath.Join(dir, oldTs))
	}
	return nil
}

// payloadUnchanged: the volume holds exactly the payload, with the modes it
// asks for (plus group read when an fsGroup owns the volume).
func payloadUnchanged(dir string, payload map[string]fileProjection, fsGroup bool) (bool, error) {
	data := filepath.Join(dir, dataDirName)
	if _, err := os.Lstat(data); os.IsNotExist(err) {
		return false, nil
	}
	n := 0
	err := filepath.WalkDir(data+"/", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		return nil
	})
	if err != nil || n != len(payload) {
		return false, err
	}
	for p, f := range payload {
		full := filepath.Join(data, p)
		b, err := os.ReadFile(full)
		if err != nil {
			return false, nil
		}
		fi, err := os.Stat(full)
		want := os.FileMode(f.mode) & os.ModePerm
		if fsGroup {
			want |= fsGroupROMask
		}
		if err != nil || !bytes.Equal(b, f.data) || fi.Mode().Perm() != want {
			return false, nil
		}
	}
	return true, nil
}

func validatePath(p string) error {
	if p == "" || filepath.IsAbs(p) || strings.HasPrefix(p, "..") {
		return fmt.Errorf("invalid path %q", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return fmt.Errorf("invalid path %q: contains '..'", p)
		}
	}
	return nil
}

// makeMounts turns the container's volumeMounts into CRI mounts (makeMounts):
// subPath and subPathExpr resolved safely inside the volume, read-only API data
// volumes, mount propagation; plus /etc/hosts and the termination message file.
func (m *Manager) makeMounts(pod *corev1.Pod, c *corev1.Container, vols map[string]podVolume, envs []*runtimeapi.KeyValue, restartCount int, podIPs []string) ([]*runtimeapi.Mount, error) {
	var mounts []*runtimeapi.Mount
	mountsEtcHosts := false
	for _, vm := range c.VolumeMounts {
		v, ok := vols[vm.Name]
		if !ok {
			return nil, fmt.Errorf("cannot find volume %q to mount into container %q", vm.Name, c.Name)
		}
		if vm.MountPath == "/etc/hosts" {
			mountsEtcHosts = true
		}
		hostPath := v.hostPath
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			vars := map[string]string{}
			for _, e := range envs {
				vars[e.Key] = string(e.Value)
			}
			sub = expand(vm.SubPathExpr, mappingFuncFor(vars))
			if strings.Contains(sub, "$(") {
				return nil, fmt.Errorf("subPathExpr %q of volume %q: unresolved variable", vm.SubPathExpr, vm.Name)
			}
		}
		if sub != "" {
			if filepath.IsAbs(sub) || validatePath(sub) != nil {
				return nil, fmt.Errorf("invalid subPath %q of volume %q", sub, vm.Name)
			}
			p, err := securejoin.SecureJoin(hostPath, sub)
			if err != nil {
				return nil, fmt.Errorf("subPath %q of volume %q: %w", sub, vm.Name, err)
			}
			if _, err := os.Lstat(p); os.IsNotExist(err) {
				perm := os.FileMode(0o755)
				if fi, err := os.Stat(hostPath); err == nil {
					perm = fi.Mode().Perm()
				}
				if err := os.MkdirAll(p, perm); err != nil {
					return nil, fmt.Errorf("create subPath %q of volume %q: %w", sub, vm.Name, err)
				}
			}
			hostPath = p
		}
		propagation := runtimeapi.MountPropagation_PROPAGATION_PRIVATE
		if vm.MountPropagation != nil {
			switch *vm.MountPropagation {
			case corev1.MountPropagationHostToContainer:
				propagation = runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
			case corev1.MountPropagationBidirectional:
				propagation = runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
			}
		}
		mounts = append(mounts, &runtimeapi.Mount{
			ContainerPath: vm.MountPath,
			HostPath:      hostPath,
			Readonly:      vm.ReadOnly || v.readOnly,
			Propagation:   propagation,
		})
	}
	if m.cfg.PodsDir == "" {
		return mounts, nil
	}
	if !mountsEtcHosts {
		p, err := m.ensureEtcHosts(pod, podIPs)
		if err != nil {
			return nil, err
		}
		mounts = append(mounts, &runtimeapi.Mount{ContainerPath: "/etc/hosts", HostPath: p})
	}
	if c.TerminationMessagePath != "" {
		p := m.terminationMessageFile(pod, c.Name, restartCount)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o666)
		if err != nil {
			return nil, err
		}
		f.Close()
		if err := os.Chmod(p, 0o666); err != nil {
			return nil, err
		}
		mounts = append(mounts, &runtimeapi.Mount{ContainerPath: c.TerminationMessagePath, HostPath: p})
	}
	return mounts, nil
}

// terminationMessageFile is where a container attempt writes its termination message.
func (m *Manager) terminationMessageFile(pod *corev1.Pod, name string, restartCount int) string {
	return filepath.Join(m.podDir(pod), "containers", name, strconv.Itoa(restartCount)+"-termination-log")
}

const managedHostsHeader = "# Kubernetes-managed hosts file.\n"

// ensureEtcHosts writes the pod's /etc/hosts (makeHostsMount): localhost
// entries and the pod's own name for a pod network, the host's file for
// hostNetwork, then the spec's hostAliases.
func (m *Manager) ensureEtcHosts(pod *corev1.Pod, podIPs []string) (string, error) {
	var b bytes.Buffer
	if pod.Spec.HostNetwork {
		hosts, err := os.ReadFile(m.cfg.HostsFile)
		if err != nil && !os.IsNotExist(err) {
			return "", err
		}
		b.Write(hosts)
		if len(hosts) > 0 && !bytes.HasSuffix(hosts, []byte("\n")) {
			b.WriteByte('\n')
		}
	} else {
		b.WriteString(managedHostsHeader)
		b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
		for _, ip := range podIPs {
			fmt.Fprintf(&b, "%s\t%s\n", ip, podHostname(pod))
		}
	}
	if len(pod.Spec.HostAliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, a := range pod.Spec.HostAliases {
			fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
		}
	}
	p := filepath.Join(m.podDir(pod), "etc-hosts")
	if cur, err := os.ReadFile(p); err == nil && bytes.Equal(cur, b.Bytes()) {
		return p, nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return "", err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return "", err
	}
	return p, os.Rename(tmp, p)
}

// cleanupPodDir unmounts what the pod manager mounted under the pod's
// directory (tmpfs volumes) and removes it.
func (m *Manager) cleanupPodDir(pod *corev1.Pod) error {
	if m.cfg.PodsDir == "" || pod.UID == "" {
		return nil
	}
	dir, err := filepath.EvalSymlinks(m.podDir(pod))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return err
	}
	sort.Slice(infos, func(i, j int) bool { return len(infos[i].Mountpoint) > len(infos[j].Mountpoint) })
	for _, mi := range infos {
		if err := unix.Unmount(mi.Mountpoint, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount %s: %w", mi.Mountpoint, err)
		}
	}
	if infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir)); err != nil || len(infos) > 0 {
		return fmt.Errorf("pod directory %s still has mounts", dir)
	}
	return os.RemoveAll(dir)
}

// terminationMessage reads a terminated container's message (getTerminationMessage):
// the file it wrote, else with FallbackToLogsOnError and a failure the end of its log.
func (m *Manager) terminationMessage(pod *corev1.Pod, cs *containerStatus) string {
	if m.cfg.PodsDir == "" {
		return ""
	}
	spec := containerSpec(pod, cs.Name)
	if spec == nil || spec.TerminationMessagePath == "" {
		return ""
	}
	b, _ := readAtMost(m.terminationMessageFile(pod, cs.Name, cs.RestartCount), maxTerminationMessage)
	if len(b) > 0 {
		return string(b)
	}
	if spec.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError && cs.ExitCode != 0 {
		return m.lastLogLines(pod, cs, 80, 2048)
	}
	return ""
}

const maxTerminationMessage = 4096

func readAtMost(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	k, err := f.Read(b)
	if k == 0 {
		return nil, err
	}
	return b[:k], nil
}
