package podmanager

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	plog "github.com/peapod-dev/peapod/internal/log"
)

// Waiting reasons of a container the kubelet could not start
// (pkg/kubelet/container/sync_result.go, images/types.go).
var (
	ErrCrashLoopBackOff        = errors.New("CrashLoopBackOff")
	ErrCreateContainerConfig   = errors.New("CreateContainerConfigError")
	ErrCreateContainer         = errors.New("CreateContainerError")
	ErrRunContainer            = errors.New("RunContainerError")
	ErrImagePull               = errors.New("ErrImagePull")
	ErrImagePullBackOff        = errors.New("ImagePullBackOff")
	ErrImageNeverPull          = errors.New("ErrImageNeverPull")
	ErrInvalidImageName        = errors.New("InvalidImageName")
	ErrImageInspect            = errors.New("ImageInspectError")
	ErrPostStartHook           = errors.New("PostStartHookError")
	errContainerConfigNotBuilt = errors.New("not supported yet")
)

// Event reasons (pkg/kubelet/events).
const (
	eventCreatedContainer = "Created"
	eventStartedContainer = "Started"
	eventFailed           = "Failed"
	eventKilling          = "Killing"
	eventBackOff          = "BackOff"
	eventInspectFailed    = "InspectFailed"
	eventPulling          = "Pulling"
	eventPulled           = "Pulled"
	eventSandboxChanged   = "SandboxChanged"
	eventFailedSandbox    = "FailedCreatePodSandBox"
	eventFailedKillPod    = "FailedKillPod"
)

// startContainer pulls the image, creates and starts one container
// (kuberuntime_container.go startContainer). On failure it returns the message
// and one of the Err* reasons above.
func (m *Manager) startContainer(ctx context.Context, sandboxID string, sandboxConfig *runtimeapi.PodSandboxConfig, spec *containerToStart, pod *corev1.Pod, podStatus *runtimePodStatus, podIPs []string, vols map[string]podVolume) (string, error) {
	c := spec.container
	// Step 1: pull the image.
	imageRef, msg, err := m.ensureImageExists(ctx, pod, c)
	if err != nil {
		m.recordContainerEvent(ctx, pod, c.Name, corev1.EventTypeWarning, eventFailed, "Error: "+msg)
		return msg, err
	}

	// Step 2: create the container.
	restartCount := 0
	if cs := podStatus.FindContainerStatusByName(c.Name); cs != nil {
		restartCount = cs.RestartCount + 1
	} else {
		restartCount = m.restartCountFromLogDir(pod, c.Name)
	}
	config, err := m.generateContainerConfig(ctx, c, pod, restartCount, podIPs, imageRef, spec.containerType, vols)
	if err == nil {
		err = m.verifyRunAsNonRoot(ctx, pod, c, imageRef)
	}
	if err == nil && spec.containerType == containerTypeEphemeral {
		err = m.setEphemeralTarget(config, pod, c.Name, podStatus)
	}
	if err != nil {
		m.recordContainerEvent(ctx, pod, c.Name, corev1.EventTypeWarning, eventFailed, "Error: "+err.Error())
		return err.Error(), ErrCreateContainerConfig
	}
	containerID, err := m.runtime.CreateContainer(ctx, sandboxID, config, sandboxConfig)
	if err != nil {
		m.recordContainerEvent(ctx, pod, c.Name, corev1.EventTypeWarning, eventFailed, "Error: "+err.Error())
		return err.Error(), ErrCreateContainer
	}
	m.recordContainerEvent(ctx, pod, c.Name, corev1.EventTypeNormal, eventCreatedContainer, "Created container: "+c.Name)

	// Step 3: start the container.
	if err := m.runtime.StartContainer(ctx, containerID); err != nil {
		m.recordContainerEvent(ctx, pod, c.Name, corev1.EventTypeWarning, eventFailed, "Error: "+err.Error())
		return err.Error(), ErrRunContainer
	}
	m.recordContainerEvent(ctx, pod, c.Name, corev1.EventTypeNormal, eventStartedContainer, "Started container "+c.Name)
	plog.FromContext(ctx).Info("started container", "container", c.Name, "id", containerID, "restartCount", restartCount)

	// Step 4: the postStart hook; the container counts as running once it is done.
	podIP := ""
	if len(podIPs) > 0 {
		podIP = podIPs[0]
	}
	cs := &containerStatus{ID: containerID, Name: c.Name, RestartCount: restartCount}
	return m.runPostStartHook(ctx, pod, c, cs, podIP)
}

// restartCountFromLogDir: when the runtime lost the pod's containers, the log
// directory still tells the last attempt (calcRestartCountByLogDir).
func (m *Manager) restartCountFromLogDir(pod *corev1.Pod, name string) int {
	entries, err := os.ReadDir(filepath.Join(m.podLogsDirectory(pod), name))
	if err != nil {
		return 0
	}
	count := 0
	for _, e := range entries {
		n, err := strconv.Atoi(strings.TrimSuffix(e.Name(), ".log"))
		if err == nil && strings.HasSuffix(e.Name(), ".log") && n+1 > count {
			count = n + 1
		}
	}
	return count
}

// generateContainerConfig builds the ContainerConfig as the kubelet does. The
// command and args are passed through (the runtime merges them with the image's
// entrypoint and cmd) after $(VAR) expansion.
func (m *Manager) generateContainerConfig(ctx context.Context, c *corev1.Container, pod *corev1.Pod, restartCount int, podIPs []string, imageRef, containerType string, vols map[string]podVolume) (*runtimeapi.ContainerConfig, error) {
	envs, err := m.makeEnvironmentVariables(ctx, pod, c, podIPs)
	if err != nil {
		return nil, err
	}
	if len(c.VolumeDevices) > 0 {
		return nil, fmt.Errorf("volumeDevices are %w", errContainerConfigNotBuilt)
	}
	mounts, err := m.makeMounts(pod, c, vols, envs, restartCount, podIPs)
	if err != nil {
		return nil, err
	}
	command, args := expandContainerCommandAndArgs(c, envs)
	config := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{
			Name:    c.Name,
			Attempt: uint32(restartCount),
		},
		Image:       &runtimeapi.ImageSpec{Image: imageRef, UserSpecifiedImage: c.Image},
		Command:     command,
		Args:        args,
		WorkingDir:  c.WorkingDir,
		Labels:      newContainerLabels(c, pod, containerType),
		Annotations: newContainerAnnotations(c, pod, restartCount),
		LogPath:     filepath.Join(c.Name, fmt.Sprintf("%d.log", restartCount)),
		Stdin:       c.Stdin,
		StdinOnce:   c.StdinOnce,
		Tty:         c.TTY,
		Envs:        envs,
		Linux:       m.generateLinuxContainerConfig(c, pod),
	}
	config.Mounts = mounts
	return config, nil
}

// generateLinuxContainerConfig: resources and the effective security context.
func (m *Manager) generateLinuxContainerConfig(c *corev1.Container, pod *corev1.Pod) *runtimeapi.LinuxContainerConfig {
	return &runtimeapi.LinuxContainerConfig{
		Resources:       containerResources(pod, c, m.cfg.MemoryCapacity),
		SecurityContext: determineEffectiveSecurityContext(pod, c),
	}
}

// The kubelet's default masked and read-only paths (securitycontext, Default procMount).
var (
	defaultMaskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
	defaultReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// determineEffectiveSecurityContext merges the pod's and the container's
// security contexts (the container's wins) into the CRI's.
func determineEffectiveSecurityContext(pod *corev1.Pod, c *corev1.Container) *runtimeapi.LinuxContainerSecurityContext {
	out := &runtimeapi.LinuxContainerSecurityContext{
		NamespaceOptions: namespacesForPod(pod),
		MaskedPaths:      defaultMaskedPaths,
		ReadonlyPaths:    defaultReadonlyPaths,
	}
	psc := pod.Spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	csc := c.SecurityContext
	if csc == nil {
		csc = &corev1.SecurityContext{}
	}
	runAsUser, runAsGroup := psc.RunAsUser, psc.RunAsGroup
	if csc.RunAsUser != nil {
		runAsUser = csc.RunAsUser
	}
	if csc.RunAsGroup != nil {
		runAsGroup = csc.RunAsGroup
	}
	if runAsUser != nil {
		out.RunAsUser = &runtimeapi.Int64Value{Value: *runAsUser}
	}
	if runAsGroup != nil {
		out.RunAsGroup = &runtimeapi.Int64Value{Value: *runAsGroup}
	}
	if psc.FSGroup != nil {
		out.SupplementalGroups = append(out.SupplementalGroups, *psc.FSGroup)
	}
	out.SupplementalGroups = append(out.SupplementalGroups, psc.SupplementalGroups...)
	se := psc.SELinuxOptions
	if csc.SELinuxOptions != nil {
		se = csc.SELinuxOptions
	}
	if se != nil {
		out.SelinuxOptions = &runtimeapi.SELinuxOption{User: se.User, Role: se.Role, Type: se.Type, Level: se.Level}
	}
	if csc.Privileged != nil && *csc.Privileged {
		out.Privileged = true
		out.MaskedPaths, out.ReadonlyPaths = nil, nil
	}
	if csc.ProcMount != nil && *csc.ProcMount == corev1.UnmaskedProcMount {
		out.MaskedPaths, out.ReadonlyPaths = nil, nil
	}
	if csc.ReadOnlyRootFilesystem != nil {
		out.ReadonlyRootfs = *csc.ReadOnlyRootFilesystem
	}
	if csc.AllowPrivilegeEscalation != nil {
		out.NoNewPrivs = !*csc.AllowPrivilegeEscalation
	}
	if csc.Capabilities != nil {
		out.Capabilities = &runtimeapi.Capability{}
		for _, a := range csc.Capabilities.Add {
			out.Capabilities.AddCapabilities = append(out.Capabilities.AddCapabilities, string(a))
		}
		for _, d := range csc.Capabilities.Drop {
			out.Capabilities.DropCapabilities = append(out.Capabilities.DropCapabilities, string(d))
		}
	}
	out.Seccomp = seccompProfile(psc.SeccompProfile, csc.SeccompProfile)
	return out
}

// seccompProfile: the container's profile, else the pod's, else Unconfined
// (the kubelet's default without SeccompDefault).
func seccompProfile(podProfile, containerProfile *corev1.SeccompProfile) *runtimeapi.SecurityProfile {
	p := podProfile
	if containerProfile != nil {
		p = containerProfile
	}
	if p == nil {
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
	}
	switch p.Type {
	case corev1.SeccompProfileTypeRuntimeDefault:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	case corev1.SeccompProfileTypeLocalhost:
		ref := ""
		if p.LocalhostProfile != nil {
			ref = *p.LocalhostProfile
		}
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: ref}
	}
	return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
}

// makeEnvironmentVariables evaluates the container's envFrom, then its env in
// order: values with $(VAR) expansion of earlier variables, fieldRef,
// resourceFieldRef, configMapKeyRef and secretKeyRef (optional ones may be missing).
func (m *Manager) makeEnvironmentVariables(ctx context.Context, pod *corev1.Pod, c *corev1.Container, podIPs []string) ([]*runtimeapi.KeyValue, error) {
	tmp := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, seen := tmp[k]; !seen {
			order = append(order, k)
		}
		tmp[k] = v
	}
	configMaps := map[string]*corev1.ConfigMap{}
	secrets := map[string]*corev1.Secret{}
	getConfigMap := func(name string) (*corev1.ConfigMap, error) {
		if cm, ok := configMaps[name]; ok {
			return cm, nil
		}
		og, err := m.objects()
		if err != nil {
			return nil, err
		}
		cm, err := og.GetConfigMap(ctx, pod.Namespace, name)
		if err != nil {
			return nil, err
		}
		configMaps[name] = cm
		return cm, nil
	}
	getSecret := func(name string) (*corev1.Secret, error) {
		if s, ok := secrets[name]; ok {
			return s, nil
		}
		og, err := m.objects()
		if err != nil {
			return nil, err
		}
		s, err := og.GetSecret(ctx, pod.Namespace, name)
		if err != nil {
			return nil, err
		}
		secrets[name] = s
		return s, nil
	}

	for _, ef := range c.EnvFrom {
		var data map[string]string
		var kind, name string
		switch {
		case ef.ConfigMapRef != nil:
			kind, name = "configMap", ef.ConfigMapRef.Name
			cm, err := getConfigMap(name)
			if err != nil {
				if apierrors.IsNotFound(err) && ef.ConfigMapRef.Optional != nil && *ef.ConfigMapRef.Optional {
					continue
				}
				return nil, err
			}
			data = cm.Data
		case ef.SecretRef != nil:
			kind, name = "secret", ef.SecretRef.Name
			s, err := getSecret(name)
			if err != nil {
				if apierrors.IsNotFound(err) && ef.SecretRef.Optional != nil && *ef.SecretRef.Optional {
					continue
				}
				return nil, err
			}
			data = map[string]string{}
			for k, v := range s.Data {
				data[k] = string(v)
			}
		default:
			continue
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var invalid []string
		for _, k := range keys {
			name := ef.Prefix + k
			if errs := validation.IsRelaxedEnvVarName(name); len(errs) != 0 {
				invalid = append(invalid, name)
				continue
			}
			set(name, data[k])
		}
		if len(invalid) > 0 {
			m.recordEvent(ctx, pod, corev1.EventTypeWarning, "InvalidEnvironmentVariableNames",
				fmt.Sprintf("Keys [%s] from the EnvFrom %s %s/%s were skipped since they are considered invalid environment variable names.",
					strings.Join(invalid, ", "), kind, pod.Namespace, name))
		}
	}

	mapping := mappingFuncFor(tmp)
	for _, ev := range c.Env {
		val := ev.Value
		from := ev.ValueFrom
		switch {
		case val != "":
			val = expand(val, mapping)
		case from != nil && from.FieldRef != nil:
			v, err := m.podFieldSelectorRuntimeValue(from.FieldRef, pod, podIPs)
			if err != nil {
				return nil, err
			}
			val = v
		case from != nil && from.ResourceFieldRef != nil:
			v, err := m.containerResourceRuntimeValue(from.ResourceFieldRef, pod, c)
			if err != nil {
				return nil, err
			}
			val = v
		case from != nil && from.ConfigMapKeyRef != nil:
			ref := from.ConfigMapKeyRef
			optional := ref.Optional != nil && *ref.Optional
			cm, err := getConfigMap(ref.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && optional {
					continue
				}
				return nil, err
			}
			v, ok := cm.Data[ref.Key]
			if !ok {
				if optional {
					continue
				}
				return nil, fmt.Errorf("couldn't find key %v in ConfigMap %v/%v", ref.Key, pod.Namespace, ref.Name)
			}
			val = v
		case from != nil && from.SecretKeyRef != nil:
			ref := from.SecretKeyRef
			optional := ref.Optional != nil && *ref.Optional
			s, err := getSecret(ref.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && optional {
					continue
				}
				return nil, err
			}
			v, ok := s.Data[ref.Key]
			if !ok {
				if optional {
					continue
				}
				return nil, fmt.Errorf("couldn't find key %v in Secret %v/%v", ref.Key, pod.Namespace, ref.Name)
			}
			val = string(v)
		}
		set(ev.Name, val)
	}
	out := make([]*runtimeapi.KeyValue, 0, len(order))
	for _, k := range order {
		out = append(out, &runtimeapi.KeyValue{Key: k, Value: []byte(tmp[k])})
	}
	return out, nil
}

// podFieldSelectorRuntimeValue is the downward API for env (fieldRef).
func (m *Manager) podFieldSelectorRuntimeValue(fs *corev1.ObjectFieldSelector, pod *corev1.Pod, podIPs []string) (string, error) {
	path := fs.FieldPath
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		return m.cfg.HostIP, nil
	case "status.podIP":
		if len(podIPs) > 0 {
			return podIPs[0], nil
		}
		return "", nil
	case "status.podIPs":
		return strings.Join(podIPs, ","), nil
	}
	if key, ok := subscript(path, "metadata.labels"); ok {
		return pod.Labels[key], nil
	}
	if key, ok := subscript(path, "metadata.annotations"); ok {
		return pod.Annotations[key], nil
	}
	switch path {
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	}
	return "", fmt.Errorf("unsupported fieldPath %q", path)
}

// formatMap is fieldpath.FormatMap: sorted `key="value"` lines.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%v=%q\n", k, m[k])
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// subscript parses `prefix['key']`.
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok {
		return "", false
	}
	key, ok := strings.CutSuffix(rest, "']")
	return key, ok
}

// containerResourceRuntimeValue is the downward API's resourceFieldRef: the
// container's limit (node capacity when unset) or request, divided by the
// divisor and rounded up.
func (m *Manager) containerResourceRuntimeValue(fs *corev1.ResourceFieldSelector, pod *corev1.Pod, c *corev1.Container) (string, error) {
	if fs.ContainerName != "" {
		found := false
		for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
			for i := range cs {
				if cs[i].Name == fs.ContainerName {
					c, found = &cs[i], true
				}
			}
		}
		if !found {
			return "", fmt.Errorf("resourceFieldRef: no container %q", fs.ContainerName)
		}
	}
	divisor := fs.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	req := containerRequests(c)
	var q resource.Quantity
	switch fs.Resource {
	case "limits.cpu":
		q = *c.Resources.Limits.Cpu()
		if q.IsZero() {
			q = *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI)
		}
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	case "requests.cpu":
		q = *req.Cpu()
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	case "limits.memory":
		q = *c.Resources.Limits.Memory()
		if q.IsZero() {
			q = *resource.NewQuantity(m.cfg.MemoryCapacity, resource.BinarySI)
		}
	case "requests.memory":
		q = *req.Memory()
	case "limits.ephemeral-storage", "requests.ephemeral-storage":
		if fs.Resource == "limits.ephemeral-storage" {
			q = *c.Resources.Limits.StorageEphemeral()
		} else {
			q = *req.StorageEphemeral()
		}
	default:
		return "", fmt.Errorf("unsupported resourceFieldRef %q", fs.Resource)
	}
	return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
}

// expandContainerCommandAndArgs expands $(VAR) in command and args with the
// container's environment.
func expandContainerCommandAndArgs(c *corev1.Container, envs []*runtimeapi.KeyValue) (command, args []string) {
	vars := make(map[string]string, len(envs))
	for _, e := range envs {
		vars[e.Key] = string(e.Value)
	}
	mapping := mappingFuncFor(vars)
	for _, s := range c.Command {
		command = append(command, expand(s, mapping))
	}
	for _, s := range c.Args {
		args = append(args, expand(s, mapping))
	}
	return command, args
}

// mappingFuncFor resolves a variable from the maps in order; an unknown one stays
// as written, $(NAME).
func mappingFuncFor(context ...map[string]string) func(string) string {
	return func(name string) string {
		for _, vars := range context {
			if v, ok := vars[name]; ok {
				return v
			}
		}
		return "$(" + name + ")"
	}
}

// expand is Kubernetes' $(VAR) expansion (third_party/forked/golang/expansion):
// $(VAR) is replaced, $$ is an escaped $, anything else is kept.
func expand(input string, mapping func(string) string) string {
	var buf strings.Builder
	checkpoint := 0
	for cursor := 0; cursor < len(input); cursor++ {
		if input[cursor] == '$' && cursor+1 < len(input) {
			buf.WriteString(input[checkpoint:cursor])
			read, isVar, advance := tryReadVariableName(input[cursor+1:])
			if isVar {
				buf.WriteString(mapping(read))
			} else {
				buf.WriteString(read)
			}
			cursor += advance
			checkpoint = cursor + 1
		}
	}
	return buf.String() + input[checkpoint:]
}

func tryReadVariableName(input string) (string, bool, int) {
	switch input[0] {
	case '$':
		return "$", false, 1
	case '(':
		for i := 1; i < len(input); i++ {
			if input[i] == ')' {
				return input[1:i], true, i + 1
			}
		}
		return "$(", false, 1
	default:
		return "$" + input[:1], false, 1
	}
}

// killContainer stops one container (killContainer): the Killing event, the
// preStop hook within the grace period, then StopContainer with what is left
// of it, at least minimumGracePeriodInSeconds: the runtime sends the stop signal
// and SIGKILLs when the timeout runs out.
func (m *Manager) killContainer(ctx context.Context, pod *corev1.Pod, cs *containerStatus, gracePeriod int64, message string) error {
	if message == "" {
		message = "Stopping container " + cs.Name
	}
	m.recordContainerEvent(ctx, pod, cs.Name, corev1.EventTypeNormal, eventKilling, message)
	if spec := containerSpec(pod, cs.Name); spec != nil && spec.Lifecycle != nil && spec.Lifecycle.PreStop != nil && gracePeriod > 0 {
		gracePeriod -= m.executePreStopHook(ctx, pod, spec, cs, gracePeriod)
	}
	if gracePeriod < minimumGracePeriodInSeconds {
		gracePeriod = minimumGracePeriodInSeconds
	}
	plog.FromContext(ctx).Info("killing container", "container", cs.Name, "id", cs.ID, "gracePeriod", gracePeriod)
	if err := m.runtime.StopContainer(ctx, cs.ID, gracePeriod); err != nil && !isNotFound(err) {
		return fmt.Errorf("stop container %s (%s): %w", cs.Name, cs.ID, err)
	}
	return nil
}

// killContainers stops the given containers (killContainersWithSyncResult):
// the app containers (and any regular init container) in parallel, then the
// sidecars one by one in reverse order, each with what is left of the grace period.
func (m *Manager) killContainers(ctx context.Context, pod *corev1.Pod, containers []*containerStatus, gracePeriod int64) error {
	var regular, sidecars []*containerStatus
	for _, cs := range containers {
		if isRestartableInitContainer(initContainerByName(pod, cs.Name)) {
			sidecars = append(sidecars, cs)
		} else {
			regular = append(regular, cs)
		}
	}
	start := m.clock.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(regular))
	for i, cs := range regular {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = m.killContainer(ctx, pod, cs, gracePeriod, "")
		}()
	}
	wg.Wait()
	sort.SliceStable(sidecars, func(i, j int) bool {
		return initContainerIndex(pod, sidecars[i].Name) > initContainerIndex(pod, sidecars[j].Name)
	})
	for _, cs := range sidecars {
		left := gracePeriod - int64(m.clock.Since(start).Seconds())
		errs = append(errs, m.killContainer(ctx, pod, cs, left, ""))
	}
	return errors.Join(errs...)
}

func initContainerIndex(pod *corev1.Pod, name string) int {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return i
		}
	}
	return -1
}

// removeContainer removes the container and its log file (removeContainerLog).
func (m *Manager) removeContainer(ctx context.Context, pod *corev1.Pod, cs *containerStatus) error {
	if p := m.containerLogPath(pod, cs); p != "" {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			plog.FromContext(ctx).Warn("removing container log", "path", p, "err", err)
		}
	}
	if err := m.runtime.RemoveContainer(ctx, cs.ID); err != nil && !isNotFound(err) {
		return fmt.Errorf("remove container %s (%s): %w", cs.Name, cs.ID, err)
	}
	return nil
}

// containerLogPath is the container's log file: the runtime's LogPath when
// absolute, else relative to the pod's log directory.
func (m *Manager) containerLogPath(pod *corev1.Pod, cs *containerStatus) string {
	if filepath.IsAbs(cs.LogPath) {
		return cs.LogPath
	}
	if m.cfg.LogRoot == "" {
		return ""
	}
	rel := cs.LogPath
	if rel == "" {
		rel = filepath.Join(cs.Name, fmt.Sprintf("%d.log", cs.RestartCount))
	}
	return filepath.Join(m.podLogsDirectory(pod), rel)
}

// isNotFound: the runtime no longer has it (gRPC NotFound); stopping or removing
// it again is done.
func isNotFound(err error) bool {
	return grpcstatus.Code(err) == codes.NotFound
}

// setEphemeralTarget puts an ephemeral container with a targetContainerName in
// the target's PID namespace (when the pod does not share one already).
func (m *Manager) setEphemeralTarget(config *runtimeapi.ContainerConfig, pod *corev1.Pod, name string, podStatus *runtimePodStatus) error {
	var target string
	for i := range pod.Spec.EphemeralContainers {
		if pod.Spec.EphemeralContainers[i].Name == name {
			target = pod.Spec.EphemeralContainers[i].TargetContainerName
		}
	}
	ns := config.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if target == "" || ns == nil || ns.Pid != runtimeapi.NamespaceMode_CONTAINER {
		return nil
	}
	cs := podStatus.FindContainerStatusByName(target)
	if cs == nil || cs.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return fmt.Errorf("target container %q is not running", target)
	}
	ns.Pid = runtimeapi.NamespaceMode_TARGET
	ns.TargetId = cs.ID
	return nil
}

// verifyRunAsNonRoot is the kubelet's: with runAsNonRoot, the effective user
// must not be root — by runAsUser, else by the image's numeric user.
func (m *Manager) verifyRunAsNonRoot(ctx context.Context, pod *corev1.Pod, c *corev1.Container, imageRef string) error {
	var nonRoot *bool
	var runAsUser *int64
	if psc := pod.Spec.SecurityContext; psc != nil {
		nonRoot, runAsUser = psc.RunAsNonRoot, psc.RunAsUser
	}
	if csc := c.SecurityContext; csc != nil {
		if csc.RunAsNonRoot != nil {
			nonRoot = csc.RunAsNonRoot
		}
		if csc.RunAsUser != nil {
			runAsUser = csc.RunAsUser
		}
	}
	if nonRoot == nil || !*nonRoot {
		return nil
	}
	if runAsUser != nil {
		if *runAsUser == 0 {
			return fmt.Errorf("container's runAsUser breaks non-root policy (pod: %q, container: %s)", podDesc(pod), c.Name)
		}
		return nil
	}
	resp, err := m.images.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: imageRef}, false)
	if err != nil {
		return fmt.Errorf("inspect image %q for runAsNonRoot: %w", imageRef, err)
	}
	img := resp.GetImage()
	switch {
	case img.GetUid() != nil && img.GetUid().GetValue() == 0:
		return fmt.Errorf("container has runAsNonRoot and image will run as root (pod: %q, container: %s)", podDesc(pod), c.Name)
	case img.GetUid() == nil && img.GetUsername() != "":
		return fmt.Errorf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root (pod: %q, container: %s)", img.GetUsername(), podDesc(pod), c.Name)
	}
	return nil
}
