package openapi

import (
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The REST verbs a storage implements; together they decide which actions
// (routes) kube-apiserver's endpoint installer registers for it.
const (
	verbGet = 1 << iota
	verbList
	verbWatch
	verbCreate
	verbUpdate
	verbPatch
	verbDelete
	verbDeleteCollection
	verbConnect

	allVerbs = verbGet | verbList | verbWatch | verbCreate | verbUpdate | verbPatch | verbDelete | verbDeleteCollection
	// statusVerbs are those of a status-like subresource (status, ephemeralcontainers).
	statusVerbs = verbGet | verbUpdate | verbPatch
)

// storage is one path a group version serves ("pods", "pods/status"), described
// by what kube-apiserver's storage for it implements (k8s.io/apiserver
// pkg/endpoints/installer.go reads the same facts from the rest.Storage
// interfaces).
type storage struct {
	path       string                  // "pods" or "pods/status"
	kind       schema.GroupVersionKind // the kind its New() returns: the operations' x-kubernetes-group-version-kind
	object     runtime.Object          // New(): request body and default response
	list       runtime.Object          // NewList(), for listers
	namespaced bool                    // for subresources, the parent's scope
	verbs      int

	// deleteReturnsObject: a DELETE answers with the object, not a Status
	// (rest.MayReturnFullObjectDeleter).
	deleteReturnsObject bool
	// getOptions are the query parameters of a rest.GetterWithOptions (pods/log).
	getOptions runtime.Object
	// connectOptions and connectMethods describe a rest.Connecter (pods/exec).
	connectOptions runtime.Object
	connectMethods []string
	// producesObject and producesMIMETypes are rest.StorageMetadata: what a
	// GET returns instead of the object (pods/log returns text).
	producesObject    any
	producesMIMETypes []string
}

// group is one API group version as kube-apiserver installs it under prefix.
type group struct {
	gv      schema.GroupVersion
	prefix  string // "/api/v1", "/apis/events.k8s.io/v1"
	storage []storage
}

var (
	coreV1   = corev1.SchemeGroupVersion
	eventsV1 = eventsv1.SchemeGroupVersion

	coordinationV1 = coordinationv1.SchemeGroupVersion
)

// groups returns the group versions peapod serves, with the resources and
// subresources of kube-apiserver for them (pkg/registry/core/... in
// kubernetes): core/v1 namespaces, pods, events, nodes, configmaps, secrets,
// serviceaccounts, coordination.k8s.io/v1 leases and events.k8s.io/v1 events.
func groups() []group {
	connectMethods := []string{"GET", "POST"}
	return []group{{
		gv:     coreV1,
		prefix: "/api/v1",
		storage: []storage{
			{path: "configmaps", kind: coreV1.WithKind("ConfigMap"), object: &corev1.ConfigMap{}, list: &corev1.ConfigMapList{},
				namespaced: true, verbs: allVerbs},
			{path: "events", kind: coreV1.WithKind("Event"), object: &corev1.Event{}, list: &corev1.EventList{},
				namespaced: true, verbs: allVerbs},
			// The namespace storage deletes through finalization and does not
			// declare that it returns the object, so its DELETE documents a Status.
			{path: "namespaces", kind: coreV1.WithKind("Namespace"), object: &corev1.Namespace{}, list: &corev1.NamespaceList{},
				verbs: allVerbs &^ verbDeleteCollection},
			{path: "namespaces/status", kind: coreV1.WithKind("Namespace"), object: &corev1.Namespace{},
				verbs: statusVerbs},
			{path: "nodes", kind: coreV1.WithKind("Node"), object: &corev1.Node{}, list: &corev1.NodeList{},
				verbs: allVerbs},
			{path: "nodes/status", kind: coreV1.WithKind("Node"), object: &corev1.Node{},
				verbs: statusVerbs},
			{path: "pods", kind: coreV1.WithKind("Pod"), object: &corev1.Pod{}, list: &corev1.PodList{},
				namespaced: true, verbs: allVerbs, deleteReturnsObject: true},
			{path: "pods/attach", kind: coreV1.WithKind("PodAttachOptions"), object: &corev1.PodAttachOptions{},
				namespaced: true, verbs: verbConnect, connectOptions: &corev1.PodAttachOptions{}, connectMethods: connectMethods},
			{path: "pods/binding", kind: coreV1.WithKind("Binding"), object: &corev1.Binding{},
				namespaced: true, verbs: verbCreate},
			{path: "pods/ephemeralcontainers", kind: coreV1.WithKind("Pod"), object: &corev1.Pod{},
				namespaced: true, verbs: statusVerbs},
			{path: "pods/eviction", kind: policyv1.SchemeGroupVersion.WithKind("Eviction"), object: &policyv1.Eviction{},
				namespaced: true, verbs: verbCreate},
			{path: "pods/exec", kind: coreV1.WithKind("PodExecOptions"), object: &corev1.PodExecOptions{},
				namespaced: true, verbs: verbConnect, connectOptions: &corev1.PodExecOptions{}, connectMethods: connectMethods},
			{path: "pods/log", kind: coreV1.WithKind("Pod"), object: &corev1.Pod{},
				namespaced: true, verbs: verbGet, getOptions: &corev1.PodLogOptions{},
				producesObject: "", producesMIMETypes: []string{"text/plain", "application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}},
			{path: "pods/portforward", kind: coreV1.WithKind("PodPortForwardOptions"), object: &corev1.PodPortForwardOptions{},
				namespaced: true, verbs: verbConnect, connectOptions: &corev1.PodPortForwardOptions{}, connectMethods: connectMethods},
			{path: "pods/status", kind: coreV1.WithKind("Pod"), object: &corev1.Pod{},
				namespaced: true, verbs: statusVerbs},
			{path: "secrets", kind: coreV1.WithKind("Secret"), object: &corev1.Secret{}, list: &corev1.SecretList{},
				namespaced: true, verbs: allVerbs},
			{path: "serviceaccounts", kind: coreV1.WithKind("ServiceAccount"), object: &corev1.ServiceAccount{}, list: &corev1.ServiceAccountList{},
				namespaced: true, verbs: allVerbs, deleteReturnsObject: true},
		},
	}, {
		gv:     coordinationV1,
		prefix: "/apis/coordination.k8s.io/v1",
		storage: []storage{
			{path: "leases", kind: coordinationV1.WithKind("Lease"), object: &coordinationv1.Lease{}, list: &coordinationv1.LeaseList{},
				namespaced: true, verbs: allVerbs},
		},
	}, {
		gv:     eventsV1,
		prefix: "/apis/events.k8s.io/v1",
		storage: []storage{
			{path: "events", kind: eventsV1.WithKind("Event"), object: &eventsv1.Event{}, list: &eventsv1.EventList{},
				namespaced: true, verbs: allVerbs},
		},
	}}
}
