package registry

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/peapod-dev/peapod/internal/store"
)

// podStrategy is registry/core/pod's strategy plus the scheduler's binding:
// peapod has one node, so a pod is bound to it when it is created if it fits
// (pod_schedule.go); else it stays Pending with PodScheduled=False.
type podStrategy struct{}

func (podStrategy) prepareForCreate(ctx context.Context, r *Registry, obj store.Object) {
	pod := obj.(*corev1.Pod)
	defaultPod(pod)
	admitPod(pod)
	pod.Generation = 1
	pod.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: podQOSClass(pod)}
	if pod.Spec.NodeName == "" {
		if msg := r.unschedulable(ctx, pod); msg != "" {
			pod.Status.Conditions = []corev1.PodCondition{{
				Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
				Message: msg, LastTransitionTime: r.now(),
			}}
			return
		}
		pod.Spec.NodeName = r.nodeName
		pod.Status.Conditions = []corev1.PodCondition{{
			Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: r.now(),
		}}
	}
}

func (podStrategy) validate(obj store.Object) field.ErrorList {
	return validatePodSpec(&obj.(*corev1.Pod).Spec, field.NewPath("spec"))
}

func (podStrategy) prepareForUpdate(obj, old store.Object) {
	pod, oldPod := obj.(*corev1.Pod), old.(*corev1.Pod)
	defaultPod(pod)
	pod.Status = oldPod.Status
	if !apiequality.Semantic.DeepEqual(pod.Spec, oldPod.Spec) {
		pod.Generation = oldPod.Generation + 1
	}
}

// updatablePodSpecFields is the API server's list, quoted in its error.
var updatablePodSpecFields = []string{
	"`spec.containers[*].image`",
	"`spec.initContainers[*].image`",
	"`spec.activeDeadlineSeconds`",
	"`spec.tolerations` (only additions to existing tolerations)",
	"`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
}

// validateUpdate is ValidatePodUpdate: a pod's spec is immutable except for
// images, activeDeadlineSeconds and added tolerations.
func (podStrategy) validateUpdate(obj, old store.Object) field.ErrorList {
	pod, oldPod := obj.(*corev1.Pod), old.(*corev1.Pod)
	specPath := field.NewPath("spec")
	var errs field.ErrorList

	if oldPod.Spec.ActiveDeadlineSeconds != nil {
		p := specPath.Child("activeDeadlineSeconds")
		switch n := pod.Spec.ActiveDeadlineSeconds; {
		case n == nil:
			errs = append(errs, field.Invalid(p, n, "must not update from a positive integer to nil value"))
		case *n > *oldPod.Spec.ActiveDeadlineSeconds:
			errs = append(errs, field.Invalid(p, *n, "must be less than or equal to previous value"))
		}
	}
	for _, t := range oldPod.Spec.Tolerations {
		if !hasToleration(pod.Spec.Tolerations, t) {
			errs = append(errs, field.Forbidden(specPath.Child("tolerations"), "existing toleration can not be modified except its tolerationSeconds"))
			break
		}
	}

	munged := pod.Spec.DeepCopy()
	if len(munged.Containers) == len(oldPod.Spec.Containers) {
		for i := range munged.Containers {
			munged.Containers[i].Image = oldPod.Spec.Containers[i].Image
		}
	}
	if len(munged.InitContainers) == len(oldPod.Spec.InitContainers) {
		for i := range munged.InitContainers {
			munged.InitContainers[i].Image = oldPod.Spec.InitContainers[i].Image
		}
	}
	munged.ActiveDeadlineSeconds = oldPod.Spec.ActiveDeadlineSeconds
	munged.Tolerations = oldPod.Spec.Tolerations
	if g := oldPod.Spec.TerminationGracePeriodSeconds; g != nil && *g < 0 && munged.TerminationGracePeriodSeconds != nil && *munged.TerminationGracePeriodSeconds == 1 {
		munged.TerminationGracePeriodSeconds = g
	}
	if !apiequality.Semantic.DeepEqual(*munged, oldPod.Spec) {
		errs = append(errs, field.Forbidden(specPath, "pod updates may not change fields other than "+strings.Join(updatablePodSpecFields, ",")))
	}
	return errs
}

// hasToleration: t is in ts, ignoring tolerationSeconds (which may change).
func hasToleration(ts []corev1.Toleration, t corev1.Toleration) bool {
	for _, c := range ts {
		if c.Key == t.Key && c.Operator == t.Operator && c.Value == t.Value && c.Effect == t.Effect {
			return true
		}
	}
	return false
}

func (podStrategy) prepareForStatusUpdate(obj, old store.Object) {
	pod, oldPod := obj.(*corev1.Pod), old.(*corev1.Pod)
	status, managed := pod.Status, pod.ManagedFields
	*pod = *oldPod.DeepCopy()
	pod.Status, pod.ManagedFields = status, managed
}

func (podStrategy) validateStatusUpdate(obj, old store.Object) field.ErrorList {
	pod := obj.(*corev1.Pod)
	var errs field.ErrorList
	if pod.Status.Phase == "" {
		errs = append(errs, field.Required(field.NewPath("status", "phase"), ""))
	}
	return errs
}

// podFields are the pod field selectors the API server supports.
func podFields(o store.Object) fields.Set {
	pod := o.(*corev1.Pod)
	podIP := ""
	if len(pod.Status.PodIPs) > 0 {
		podIP = pod.Status.PodIPs[0].IP
	}
	return fields.Set{
		"spec.nodeName":            pod.Spec.NodeName,
		"spec.restartPolicy":       string(pod.Spec.RestartPolicy),
		"spec.schedulerName":       pod.Spec.SchedulerName,
		"spec.serviceAccountName":  pod.Spec.ServiceAccountName,
		"spec.hostNetwork":         boolString(pod.Spec.HostNetwork),
		"status.phase":             string(pod.Status.Phase),
		"status.podIP":             podIP,
		"status.nominatedNodeName": pod.Status.NominatedNodeName,
	}
}
