// Package registry gives API objects the kube-apiserver's semantics on top
// of internal/store: per-resource defaulting, validation, metadata, graceful
// deletion and namespaces. Errors are the API's own (k8s.io/apimachinery
// api/errors), built here because they are the registry's vocabulary; the
// HTTP edge only serializes them.
package registry

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/clock"

	"github.com/peapod-dev/peapod/internal/store"
)

// Registry serves the resources of the core/v1 API group.
type Registry struct {
	store     *store.Store
	clock     clock.Clock
	nodeName  string
	log       *slog.Logger
	resources map[string]*Resource
	events    *eventCorrelator
	// scheduling serializes binding pods left Pending (pod_schedule.go).
	scheduling sync.Mutex
}

// OpenStore opens DIR/store.db with every resource the registry serves.
func OpenStore(dir string) (*store.Store, error) {
	return store.Open(filepath.Join(dir, "store.db"), store.Options{Resources: StoreResources()})
}

// StoreResources maps each resource to its Go type, for store.Open.
func StoreResources() map[string]func() store.Object {
	m := map[string]func() store.Object{}
	for _, r := range resourceTable() {
		m[r.Name] = r.New
	}
	return m
}

// New returns a registry over s for the node nodeName and creates the
// namespaces every cluster has.
func New(s *store.Store, clk clock.Clock, nodeName string) (*Registry, error) {
	r := &Registry{
		store:     s,
		clock:     clk,
		nodeName:  nodeName,
		log:       slog.Default().With("component", "registry"),
		resources: map[string]*Resource{},
		events:    newEventCorrelator(),
	}
	for _, res := range resourceTable() {
		r.resources[res.Name] = res
	}
	if err := r.ensureSystemNamespaces(context.Background()); err != nil {
		return nil, err
	}
	return r, nil
}

// Resource returns the resource named by its plural, e.g. "pods".
func (r *Registry) Resource(name string) (*Resource, bool) {
	res, ok := r.resources[name]
	return res, ok
}

// Resources lists the served resources sorted by name.
func (r *Registry) Resources() []*Resource {
	out := make([]*Resource, 0, len(r.resources))
	for _, res := range r.resources {
		out = append(out, res)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// NodeName is the one node's name.
func (r *Registry) NodeName() string { return r.nodeName }

// Clock is the registry's clock (for ages in tables).
func (r *Registry) Clock() clock.Clock { return r.clock }

// SendBookmarks emits watch bookmarks to the watchers that asked for them.
func (r *Registry) SendBookmarks() { r.store.SendBookmarks() }

// toAPIError turns a store error into the API server's error for res/name.
func toAPIError(err error, res *Resource, name string) error {
	if err == nil {
		return nil
	}
	// An API error from a strategy inside a store update comes back
	// wrapped; the API error itself is the answer.
	var status *apierrors.StatusError
	if errors.As(err, &status) {
		return status
	}
	gr := schema.GroupResource{Group: res.Group, Resource: res.Name}
	msg := err.Error()
	var se *store.Error
	if errors.As(err, &se) {
		msg = se.Msg
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return apierrors.NewNotFound(gr, name)
	case errors.Is(err, store.ErrAlreadyExists):
		return apierrors.NewAlreadyExists(gr, name)
	case errors.Is(err, store.ErrConflict):
		return apierrors.NewConflict(gr, name, errors.New(msg))
	case errors.Is(err, store.ErrExpired):
		return apierrors.NewResourceExpired(msg)
	case errors.Is(err, store.ErrTooLarge):
		return apierrors.NewTimeoutError(msg, 1)
	}
	return apierrors.NewInternalError(err)
}

func isAlreadyExists(err error) bool { return apierrors.IsAlreadyExists(err) }

func invalid(res *Resource, name string, errs field.ErrorList) error {
	return apierrors.NewInvalid(schema.GroupKind{Group: res.Group, Kind: res.Kind}, name, errs)
}

// copyObject deep-copies a store object.
func copyObject(o store.Object) store.Object {
	return o.DeepCopyObject().(store.Object)
}
