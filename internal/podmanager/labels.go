package podmanager

import (
	"encoding/json"
	"hash/fnv"
	"strconv"

	corev1 "k8s.io/api/core/v1"
)

// Labels and annotations the kubelet puts on sandboxes and containers
// (kuberuntime/labels.go); the runtime and crictl know them.
const (
	labelPodName        = "io.kubernetes.pod.name"
	labelPodNamespace   = "io.kubernetes.pod.namespace"
	labelPodUID         = "io.kubernetes.pod.uid"
	labelContainerName  = "io.kubernetes.container.name"
	labelContainerType  = "io.kubernetes.container.type"
	annotationPodDelete = "io.kubernetes.pod.deletionGracePeriod"

	annotationContainerHash             = "io.kubernetes.container.hash"
	annotationRestartCount              = "io.kubernetes.container.restartCount"
	annotationTerminationMessagePath    = "io.kubernetes.container.terminationMessagePath"
	annotationTerminationMessagePolicy  = "io.kubernetes.container.terminationMessagePolicy"
	annotationPodTerminationGracePeriod = "io.kubernetes.pod.terminationGracePeriod"
	annotationContainerPorts            = "io.kubernetes.container.ports"
	annotationContainerPreStopHandler   = "io.kubernetes.container.preStopHandler"
	containerTypeInit                   = "INIT"
	containerTypeRegular                = "REGULAR"
	containerTypeEphemeral              = "EPHEMERAL"
)

// newPodLabels: the pod's labels plus the pod's identity (newPodLabels).
func newPodLabels(pod *corev1.Pod) map[string]string {
	labels := make(map[string]string, len(pod.Labels)+3)
	for k, v := range pod.Labels {
		labels[k] = v
	}
	labels[labelPodName] = pod.Name
	labels[labelPodNamespace] = pod.Namespace
	labels[labelPodUID] = string(pod.UID)
	return labels
}

// newPodAnnotations: the pod's annotations.
func newPodAnnotations(pod *corev1.Pod) map[string]string {
	a := make(map[string]string, len(pod.Annotations))
	for k, v := range pod.Annotations {
		a[k] = v
	}
	return a
}

// newContainerLabels: the pod's identity and the container's name.
func newContainerLabels(c *corev1.Container, pod *corev1.Pod, containerType string) map[string]string {
	return map[string]string{
		labelPodName:       pod.Name,
		labelPodNamespace:  pod.Namespace,
		labelPodUID:        string(pod.UID),
		labelContainerName: c.Name,
		labelContainerType: containerType,
	}
}

// newContainerAnnotations: what the kubelet needs back from the runtime after a
// restart (restart count, hash, termination message, grace period, ports, preStop).
func newContainerAnnotations(c *corev1.Container, pod *corev1.Pod, restartCount int) map[string]string {
	a := map[string]string{
		annotationContainerHash:            containerHash(c),
		annotationRestartCount:             strconv.Itoa(restartCount),
		annotationTerminationMessagePath:   c.TerminationMessagePath,
		annotationTerminationMessagePolicy: string(c.TerminationMessagePolicy),
	}
	if pod.DeletionGracePeriodSeconds != nil {
		a[annotationPodDelete] = strconv.FormatInt(*pod.DeletionGracePeriodSeconds, 10)
	}
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		a[annotationPodTerminationGracePeriod] = strconv.FormatInt(*pod.Spec.TerminationGracePeriodSeconds, 10)
	}
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		if b, err := json.Marshal(c.Lifecycle.PreStop); err == nil {
			a[annotationContainerPreStopHandler] = string(b)
		}
	}
	if len(c.Ports) > 0 {
		if b, err := json.Marshal(c.Ports); err == nil {
			a[annotationContainerPorts] = string(b)
		}
	}
	return a
}

// containerHash is HashContainer: a hash of the fields of a running
// container's spec that may change (its image), so that an image change
// restarts it and nothing else (defaulting, a new API version) does.
func containerHash(c *corev1.Container) string {
	b, _ := json.Marshal(struct {
		Name  string `json:"name"`
		Image string `json:"image"`
	}{c.Name, c.Image})
	h := fnv.New32a()
	h.Write(b)
	return strconv.FormatUint(uint64(h.Sum32()), 16)
}
