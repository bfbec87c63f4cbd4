package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/peapod-dev/peapod/internal/store"
)

// errDryRun stops a store update after validation when nothing may be written.
var errDryRun = errors.New("dry run")

const maxGeneratedNameLength = 63 - 5

func isDryRun(dryRun []string) bool { return len(dryRun) > 0 }

// Create stores a new object in namespace ns (ignored for cluster-scoped
// resources) after defaulting and validating it as the API server does.
func (r *Registry) Create(ctx context.Context, res *Resource, ns string, obj store.Object, o *metav1.CreateOptions) (store.Object, error) {
	if res.Namespaced {
		if obj.GetNamespace() != "" && obj.GetNamespace() != ns {
			return nil, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
		}
		obj.SetNamespace(ns)
		if err := r.checkNamespaceForCreate(ctx, res, ns, obj.GetName()); err != nil {
			return nil, err
		}
	} else {
		obj.SetNamespace("")
	}
	if obj.GetResourceVersion() != "" {
		return nil, apierrors.NewBadRequest("resourceVersion should not be set on objects to be created")
	}
	if obj.GetName() == "" && obj.GetGenerateName() != "" {
		base := obj.GetGenerateName()
		if len(base) > maxGeneratedNameLength {
			base = base[:maxGeneratedNameLength]
		}
		obj.SetName(base + utilrand.String(5))
	}
	obj.SetUID(uuid.NewUUID())
	obj.SetCreationTimestamp(r.now())
	obj.SetDeletionTimestamp(nil)
	obj.SetDeletionGracePeriodSeconds(nil)
	obj.SetGeneration(0)
	obj.SetSelfLink("")
	res.strategy.prepareForCreate(ctx, r, obj)
	errs := apimachineryvalidation.ValidateObjectMetaAccessor(obj, res.Namespaced, res.nameFunc(), field.NewPath("metadata"))
	errs = append(errs, res.strategy.validate(obj)...)
	// Ephemeral containers are added only through the ephemeralcontainers
	// subresource (ValidatePodCreate).
	if pod, ok := obj.(*corev1.Pod); ok && len(pod.Spec.EphemeralContainers) > 0 {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "ephemeralContainers"), "cannot be set on create"))
	}
	if len(errs) > 0 {
		return nil, invalid(res, obj.GetName(), errs)
	}
	if err := r.admitCreate(ctx, res, obj); err != nil {
		return nil, err
	}
	if o != nil && isDryRun(o.DryRun) {
		return obj, nil
	}
	created, err := r.store.Create(ctx, res.Name, obj)
	if err != nil {
		return nil, toAPIError(err, res, obj.GetName())
	}
	if pod, ok := created.(*corev1.Pod); ok {
		r.recordSchedulingEvent(ctx, pod)
	}
	if res.Name == "namespaces" {
		if err := r.ensureDefaultServiceAccount(ctx, created.GetName()); err != nil {
			return nil, apierrors.NewInternalError(err)
		}
	}
	return created, nil
}

// admitCreate is the validating admission that needs other objects: a pod's
// service account must exist (the ServiceAccount plugin).
func (r *Registry) admitCreate(ctx context.Context, res *Resource, obj store.Object) error {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil
	}
	sa := pod.Spec.ServiceAccountName
	if _, err := r.store.Get(ctx, "serviceaccounts", pod.Namespace, sa); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return apierrors.NewForbidden(schema.GroupResource{Group: res.Group, Resource: res.Name}, pod.Name,
				fmt.Errorf("error looking up service account %s/%s: serviceaccount %q not found", pod.Namespace, sa, sa))
		}
		return toAPIError(err, res, pod.Name)
	}
	return nil
}

// Get returns one object.
func (r *Registry) Get(ctx context.Context, res *Resource, ns, name string) (store.Object, error) {
	obj, err := r.store.Get(ctx, res.Name, ns, name)
	return obj, toAPIError(err, res, name)
}

// continueToken is the list position a client passes back as ?continue=.
type continueToken struct {
	APIVersion      string `json:"v"`
	ResourceVersion uint64 `json:"rv"`
	Start           string `json:"start"`
}

// List returns the typed list (e.g. *corev1.PodList) of the objects of res
// in ns ("" for all) matching the options' selectors, one page at a time
// when a limit is given.
func (r *Registry) List(ctx context.Context, res *Resource, ns string, o *metav1.ListOptions) (runtime.Object, error) {
	if o == nil {
		o = &metav1.ListOptions{}
	}
	filter, err := r.selector(res, o.LabelSelector, o.FieldSelector)
	if err != nil {
		return nil, err
	}
	so := store.ListOptions{Namespace: ns, Limit: int(o.Limit), Filter: filter}
	var tokenRV uint64
	if o.Continue != "" {
		tok, err := decodeContinue(o.Continue)
		if err != nil {
			return nil, err
		}
		so.After, tokenRV = tok.Start, tok.ResourceVersion
	}
	result, err := r.store.List(ctx, res.Name, so)
	if err != nil {
		return nil, toAPIError(err, res, "")
	}
	if tokenRV != 0 {
		// Pages are read from the current state; they report the first
		// page's resourceVersion as the API server does.
		result.ResourceVersion = tokenRV
	}
	items := make([]runtime.Object, len(result.Items))
	for i, it := range result.Items {
		items[i] = it
	}
	list := res.NewList()
	if err := meta.SetList(list, items); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	la, err := meta.ListAccessor(list)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	la.SetResourceVersion(strconv.FormatUint(result.ResourceVersion, 10))
	if result.Next != "" {
		tok, _ := json.Marshal(continueToken{APIVersion: "meta.k8s.io/v1", ResourceVersion: result.ResourceVersion, Start: result.Next})
		la.SetContinue(base64.RawURLEncoding.EncodeToString(tok))
	}
	return list, nil
}

func decodeContinue(s string) (*continueToken, error) {
	bad := func(err error) error {
		return apierrors.NewBadRequest(fmt.Sprintf("continue key is not valid: %v", err))
	}
	data, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, bad(err)
	}
	tok := &continueToken{}
	if err := json.Unmarshal(data, tok); err != nil {
		return nil, bad(err)
	}
	if tok.APIVersion != "meta.k8s.io/v1" || tok.Start == "" {
		return nil, bad(errors.New("incorrect encoded start resourceVersion (version meta.k8s.io/v1)"))
	}
	return tok, nil
}

// Watch streams the changes to the objects of res in ns ("" for all) that
// match the selectors. A resourceVersion of "" or "0" starts with the
// current objects as ADDED events.
func (r *Registry) Watch(ctx context.Context, res *Resource, ns string, o *metav1.ListOptions) (watch.Interface, error) {
	if o == nil {
		o = &metav1.ListOptions{}
	}
	filter, err := r.selector(res, o.LabelSelector, o.FieldSelector)
	if err != nil {
		return nil, err
	}
	wo := store.WatchOptions{Namespace: ns, Filter: filter, Bookmarks: o.AllowWatchBookmarks}
	switch {
	case o.SendInitialEvents != nil && *o.SendInitialEvents:
		wo.SendInitial, wo.InitialEventsEnd = true, o.AllowWatchBookmarks
	case o.ResourceVersion == "" || o.ResourceVersion == "0":
		wo.SendInitial = true
	default:
		rv, err := store.ParseResourceVersion(o.ResourceVersion)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		wo.ResourceVersion = rv
	}
	w, err := r.store.Watch(ctx, res.Name, wo)
	return w, toAPIError(err, res, "")
}

// Update replaces an object's spec and metadata (not its status) as PUT does.
func (r *Registry) Update(ctx context.Context, res *Resource, ns, name string, obj store.Object, o *metav1.UpdateOptions) (store.Object, error) {
	return r.update(ctx, res, ns, name, obj, o, "")
}

// UpdateStatus replaces an object's status as PUT on the status subresource does.
func (r *Registry) UpdateStatus(ctx context.Context, res *Resource, ns, name string, obj store.Object, o *metav1.UpdateOptions) (store.Object, error) {
	if _, ok := res.strategy.(statusStrategy); !ok {
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: res.Name + "/status"}, name)
	}
	return r.update(ctx, res, ns, name, obj, o, "status")
}

// UpdateEphemeralContainers replaces a pod's spec.ephemeralContainers (and
// nothing else) as PUT on the ephemeralcontainers subresource does.
func (r *Registry) UpdateEphemeralContainers(ctx context.Context, res *Resource, ns, name string, obj store.Object, o *metav1.UpdateOptions) (store.Object, error) {
	if _, ok := res.strategy.(ephemeralContainersStrategy); !ok {
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: res.Name + "/ephemeralcontainers"}, name)
	}
	return r.update(ctx, res, ns, name, obj, o, "ephemeralcontainers")
}

func (r *Registry) update(ctx context.Context, res *Resource, ns, name string, obj store.Object, o *metav1.UpdateOptions, subresource string) (store.Object, error) {
	if obj.GetName() != name {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", obj.GetName(), name))
	}
	if res.Namespaced {
		if obj.GetNamespace() != "" && obj.GetNamespace() != ns {
			return nil, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
		}
		obj.SetNamespace(ns)
	} else {
		obj.SetNamespace("")
	}
	pre := &metav1.Preconditions{}
	if rv := obj.GetResourceVersion(); rv != "" {
		pre.ResourceVersion = &rv
	}
	if uid := obj.GetUID(); uid != "" {
		pre.UID = &uid
	}
	dryRun := o != nil && isDryRun(o.DryRun)
	var result store.Object
	updated, err := r.store.GuaranteedUpdate(ctx, res.Name, ns, name, pre, func(cur store.Object) (store.Object, error) {
		next := copyObject(obj)
		next.SetResourceVersion(cur.GetResourceVersion())
		if next.GetUID() == "" {
			next.SetUID(cur.GetUID())
		}
		var errs field.ErrorList
		switch subresource {
		case "status":
			st := res.strategy.(statusStrategy)
			st.prepareForStatusUpdate(next, cur)
			errs = st.validateStatusUpdate(next, cur)
		case "ephemeralcontainers":
			st := res.strategy.(ephemeralContainersStrategy)
			st.prepareForEphemeralUpdate(next, cur)
			errs = st.validateEphemeralUpdate(next, cur)
		default:
			// What no update may change, as rest.BeforeUpdate keeps it.
			next.SetCreationTimestamp(cur.GetCreationTimestamp())
			next.SetDeletionTimestamp(cur.GetDeletionTimestamp())
			next.SetDeletionGracePeriodSeconds(cur.GetDeletionGracePeriodSeconds())
			next.SetGeneration(cur.GetGeneration())
			res.strategy.prepareForUpdate(next, cur)
			errs = apimachineryvalidation.ValidateObjectMetaAccessorUpdate(next, cur, field.NewPath("metadata"))
			errs = append(errs, apimachineryvalidation.ValidateObjectMetaAccessor(next, res.Namespaced, res.nameFunc(), field.NewPath("metadata"))...)
			errs = append(errs, res.strategy.validate(next)...)
			errs = append(errs, res.strategy.validateUpdate(next, cur)...)
		}
		if len(errs) > 0 {
			return nil, invalid(res, name, errs)
		}
		if dryRun {
			result = next
			return nil, errDryRun
		}
		return next, nil
	})
	if errors.Is(err, errDryRun) {
		return result, nil
	}
	return updated, toAPIError(err, res, name)
}

// Delete deletes an object as DELETE does. Pods are deleted gracefully: the
// first answer may be the object with deletionTimestamp set (deleted is
// false); it is removed once the pod manager has stopped it.
func (r *Registry) Delete(ctx context.Context, res *Resource, ns, name string, o *metav1.DeleteOptions) (obj store.Object, deleted bool, err error) {
	if o == nil {
		o = &metav1.DeleteOptions{}
	}
	switch res.Name {
	case "pods":
		return r.deletePod(ctx, res, ns, name, o)
	case "namespaces":
		return r.deleteNamespace(ctx, res, name, o)
	}
	cur, err := r.Get(ctx, res, ns, name)
	if err != nil {
		return nil, false, err
	}
	if err := checkDeletePreconditions(res, cur, o.Preconditions); err != nil {
		return nil, false, err
	}
	if isDryRun(o.DryRun) {
		return cur, true, nil
	}
	gone, err := r.store.Delete(ctx, res.Name, ns, name, &metav1.Preconditions{UID: ptrUID(cur)})
	return gone, err == nil, toAPIError(err, res, name)
}

// checkDeletePreconditions answers as rest.BeforeDelete does.
func checkDeletePreconditions(res *Resource, cur store.Object, p *metav1.Preconditions) error {
	if p == nil {
		return nil
	}
	gr := schema.GroupResource{Group: res.Group, Resource: res.Name}
	if p.UID != nil && *p.UID != cur.GetUID() {
		return apierrors.NewConflict(gr, cur.GetName(), fmt.Errorf("the UID in the precondition (%s) does not match the UID in record (%s). The object might have been deleted and then recreated", *p.UID, cur.GetUID()))
	}
	if p.ResourceVersion != nil && *p.ResourceVersion != cur.GetResourceVersion() {
		return apierrors.NewConflict(gr, cur.GetName(), fmt.Errorf("the ResourceVersion in the precondition (%s) does not match the ResourceVersion in record (%s). The object might have been modified", *p.ResourceVersion, cur.GetResourceVersion()))
	}
	return nil
}

func ptrUID(o store.Object) *types.UID {
	u := o.GetUID()
	return &u
}

// selector builds the filter for label and field selectors, refusing field
// labels the resource does not support as the API server does.
func (r *Registry) selector(res *Resource, labelSelector, fieldSelector string) (func(store.Object) bool, error) {
	ls, err := labels.Parse(labelSelector)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	fs, err := fields.ParseSelector(fieldSelector)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	supported := res.selectableFields(res.New())
	for _, req := range fs.Requirements() {
		if _, ok := supported[req.Field]; !ok {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("field label not supported: %s", req.Field))
		}
	}
	if ls.Empty() && fs.Empty() {
		return nil, nil
	}
	return func(o store.Object) bool {
		return ls.Matches(labels.Set(o.GetLabels())) && fs.Matches(res.selectableFields(o))
	}, nil
}

func (res *Resource) selectableFields(o store.Object) fields.Set {
	set := fields.Set{"metadata.name": o.GetName()}
	if res.Namespaced {
		set["metadata.namespace"] = o.GetNamespace()
	}
	if res.fields != nil {
		for k, v := range res.fields(o) {
			set[k] = v
		}
	}
	return set
}

func (res *Resource) nameFunc() apimachineryvalidation.ValidateNameFunc {
	if res.Name == "namespaces" {
		return apimachineryvalidation.ValidateNamespaceName
	}
	return apimachineryvalidation.NameIsDNSSubdomain
}

// now is the registry's time at the precision the API serializes.
func (r *Registry) now() metav1.Time {
	return metav1.NewTime(r.clock.Now().Truncate(time.Second))
}
