package registry

import (
	"context"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/peapod-dev/peapod/internal/store"
)

// Resource describes one served resource: its names for discovery, its Go
// types, and the strategy that gives it the API server's semantics.
type Resource struct {
	Name string // plural: "pods"
	// Group is the API group; "" for core/v1.
	Group        string
	SingularName string
	Kind         string
	ShortNames   []string
	Namespaced   bool
	Verbs        []string
	// Subresources served besides the object, e.g. "status", "log".
	Subresources []string
	// ReturnDeletedObject: DELETE answers with the object rather than a Status.
	ReturnDeletedObject bool
	New                 func() store.Object
	NewList             func() runtime.Object

	strategy strategy
	// fields returns the object's selectable fields beyond metadata.name and
	// metadata.namespace.
	fields func(store.Object) fields.Set
}

// strategy is the per-resource part of create and update, like the API
// server's RESTCreateStrategy and RESTUpdateStrategy.
type strategy interface {
	// prepareForCreate defaults the object and resets what clients may not set.
	prepareForCreate(ctx context.Context, r *Registry, obj store.Object)
	validate(obj store.Object) field.ErrorList
	// prepareForUpdate carries over from old what the main resource may not change.
	prepareForUpdate(obj, old store.Object)
	validateUpdate(obj, old store.Object) field.ErrorList
}

// statusStrategy is implemented by resources with a status subresource.
type statusStrategy interface {
	// prepareForStatusUpdate keeps everything but the status from old.
	prepareForStatusUpdate(obj, old store.Object)
	validateStatusUpdate(obj, old store.Object) field.ErrorList
}

var (
	readVerbs   = []string{"get", "list", "watch"}
	objectVerbs = []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
)

func resourceTable() []*Resource {
	return []*Resource{
		{
			Name: "namespaces", SingularName: "namespace", Kind: "Namespace", ShortNames: []string{"ns"},
			Verbs:               []string{"create", "delete", "get", "list", "patch", "update", "watch"},
			Subresources:        []string{"status"},
			ReturnDeletedObject: true,
			New:                 func() store.Object { return &corev1.Namespace{} },
			NewList:             func() runtime.Object { return &corev1.NamespaceList{} },
			strategy:            namespaceStrategy{},
			fields: func(o store.Object) fields.Set {
				return fields.Set{"status.phase": string(o.(*corev1.Namespace).Status.Phase)}
			},
		},
		{
			Name: "pods", SingularName: "pod", Kind: "Pod", ShortNames: []string{"po"}, Namespaced: true,
			Verbs:               objectVerbs,
			Subresources:        []string{"status", "log", "exec", "attach", "portforward", "ephemeralcontainers", "eviction", "binding"},
			ReturnDeletedObject: true,
			New:                 func() store.Object { return &corev1.Pod{} },
			NewList:             func() runtime.Object { return &corev1.PodList{} },
			strategy:            podStrategy{},
			fields:              podFields,
		},
		{
			Name: "events", SingularName: "event", Kind: "Event", ShortNames: []string{"ev"}, Namespaced: true,
			Verbs:    objectVerbs,
			New:      func() store.Object { return &corev1.Event{} },
			NewList:  func() runtime.Object { return &corev1.EventList{} },
			strategy: eventStrategy{},
			fields:   eventFields,
		},
		{
			Name: "configmaps", SingularName: "configmap", Kind: "ConfigMap", ShortNames: []string{"cm"}, Namespaced: true,
			Verbs:    objectVerbs,
			New:      func() store.Object { return &corev1.ConfigMap{} },
			NewList:  func() runtime.Object { return &corev1.ConfigMapList{} },
			strategy: configMapStrategy{},
		},
		{
			Name: "secrets", SingularName: "secret", Kind: "Secret", Namespaced: true,
			Verbs:    objectVerbs,
			New:      func() store.Object { return &corev1.Secret{} },
			NewList:  func() runtime.Object { return &corev1.SecretList{} },
			strategy: secretStrategy{},
			fields:   secretFields,
		},
		{
			Name: "serviceaccounts", SingularName: "serviceaccount", Kind: "ServiceAccount", ShortNames: []string{"sa"}, Namespaced: true,
			Verbs:    objectVerbs,
			New:      func() store.Object { return &corev1.ServiceAccount{} },
			NewList:  func() runtime.Object { return &corev1.ServiceAccountList{} },
			strategy: serviceAccountStrategy{},
		},
		{
			Name: "leases", Group: CoordinationGroup, SingularName: "lease", Kind: "Lease", Namespaced: true,
			Verbs:    objectVerbs,
			New:      func() store.Object { return &coordinationv1.Lease{} },
			NewList:  func() runtime.Object { return &coordinationv1.LeaseList{} },
			strategy: leaseStrategy{},
		},
		{
			Name: "nodes", SingularName: "node", Kind: "Node", ShortNames: []string{"no"},
			Verbs:        readVerbs,
			Subresources: []string{"status"},
			New:          func() store.Object { return &corev1.Node{} },
			NewList:      func() runtime.Object { return &corev1.NodeList{} },
			strategy:     nodeStrategy{},
			fields: func(o store.Object) fields.Set {
				return fields.Set{"spec.unschedulable": boolString(o.(*corev1.Node).Spec.Unschedulable)}
			},
		},
	}
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
