package registry

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/peapod-dev/peapod/internal/store"
)

// ephemeralContainersStrategy is implemented by resources with the
// ephemeralcontainers subresource (pods), like registry/core/pod's
// podEphemeralContainersStrategy.
type ephemeralContainersStrategy interface {
	// prepareForEphemeralUpdate keeps everything from old but
	// spec.ephemeralContainers (and managedFields).
	prepareForEphemeralUpdate(obj, old store.Object)
	validateEphemeralUpdate(obj, old store.Object) field.ErrorList
}

func (podStrategy) prepareForEphemeralUpdate(obj, old store.Object) {
	pod, oldPod := obj.(*corev1.Pod), old.(*corev1.Pod)
	ecs, managed := pod.Spec.EphemeralContainers, pod.ManagedFields
	*pod = *oldPod.DeepCopy()
	pod.Spec.EphemeralContainers, pod.ManagedFields = ecs, managed
	for i := range pod.Spec.EphemeralContainers {
		defaultContainer((*corev1.Container)(&pod.Spec.EphemeralContainers[i].EphemeralContainerCommon), pod.Spec.HostNetwork)
	}
	if !apiequality.Semantic.DeepEqual(pod.Spec.EphemeralContainers, oldPod.Spec.EphemeralContainers) {
		pod.Generation = oldPod.Generation + 1
	}
}

// validateEphemeralUpdate is ValidatePodEphemeralContainersUpdate: the new
// ephemeral containers are valid, and existing ones are neither removed nor
// changed.
func (podStrategy) validateEphemeralUpdate(obj, old store.Object) field.ErrorList {
	pod, oldPod := obj.(*corev1.Pod), old.(*corev1.Pod)
	specPath := field.NewPath("spec")
	volumes := sets.New[string]()
	for _, v := range pod.Spec.Volumes {
		volumes.Insert(v.Name)
	}
	errs := validateEphemeralContainers(&pod.Spec, volumes, specPath.Child("ephemeralContainers"))
	byName := map[string]*corev1.EphemeralContainer{}
	for i := range pod.Spec.EphemeralContainers {
		byName[pod.Spec.EphemeralContainers[i].Name] = &pod.Spec.EphemeralContainers[i]
	}
	ecPath := specPath.Child("ephemeralContainers")
	for _, o := range oldPod.Spec.EphemeralContainers {
		n, ok := byName[o.Name]
		switch {
		case !ok:
			errs = append(errs, field.Forbidden(ecPath, fmt.Sprintf("existing ephemeral containers %q may not be removed\n", o.Name)))
		case !apiequality.Semantic.DeepEqual(o, *n):
			errs = append(errs, field.Forbidden(ecPath, fmt.Sprintf("existing ephemeral containers %q may not be changed\n", o.Name)))
		}
	}
	return errs
}

// validateEphemeralContainers is the API server's validateEphemeralContainers:
// names unique across all the pod's containers, what an ephemeral container
// may not have, a target that is one of the pod's containers, and the common
// container checks (image required, …).
func validateEphemeralContainers(spec *corev1.PodSpec, volumes sets.Set[string], fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	others := sets.New[string]()
	for _, c := range spec.InitContainers {
		others.Insert(c.Name)
	}
	for _, c := range spec.Containers {
		others.Insert(c.Name)
	}
	// Names are unique across all the pod's containers; then the common
	// container checks (image required, …).
	cs := make([]corev1.Container, len(spec.EphemeralContainers))
	for i := range spec.EphemeralContainers {
		cs[i] = corev1.Container(spec.EphemeralContainers[i].EphemeralContainerCommon)
	}
	errs = append(errs, validateContainers(cs, volumes, others.Clone(), fld, false)...)
	for i := range spec.EphemeralContainers {
		ec := &spec.EphemeralContainers[i]
		idx := fld.Index(i)
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"lifecycle", ec.Lifecycle != nil},
			{"livenessProbe", ec.LivenessProbe != nil},
			{"ports", len(ec.Ports) > 0},
			{"readinessProbe", ec.ReadinessProbe != nil},
			{"resizePolicy", len(ec.ResizePolicy) > 0},
			{"resources", !apiequality.Semantic.DeepEqual(ec.Resources, corev1.ResourceRequirements{})},
			{"restartPolicy", ec.RestartPolicy != nil},
			{"startupProbe", ec.StartupProbe != nil},
		} {
			if f.set {
				errs = append(errs, field.Forbidden(idx.Child(f.name), "cannot be set for an Ephemeral Container"))
			}
		}
		for j, m := range ec.VolumeMounts {
			if m.SubPath != "" {
				errs = append(errs, field.Forbidden(idx.Child("volumeMounts").Index(j).Child("subPath"), "cannot be set for an Ephemeral Container"))
			}
			if m.SubPathExpr != "" {
				errs = append(errs, field.Forbidden(idx.Child("volumeMounts").Index(j).Child("subPathExpr"), "cannot be set for an Ephemeral Container"))
			}
		}
		if ec.TargetContainerName != "" && !others.Has(ec.TargetContainerName) {
			errs = append(errs, field.NotFound(idx.Child("targetContainerName"), ec.TargetContainerName))
		}
	}
	return errs
}
