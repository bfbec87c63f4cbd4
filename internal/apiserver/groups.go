package apiserver

import (
	"context"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/peapod-dev/peapod/internal/registry"
	"github.com/peapod-dev/peapod/internal/store"
)

// coreV1 is the legacy group version of /api/v1.
var coreV1 = schema.GroupVersion{Version: "v1"}

// apiGroup is a named API group served under /apis/GROUP/VERSION. Its
// resources are the registry's resources of that group (leases) or views of
// core/v1 ones, stored as core/v1 objects and converted at the edge, as
// kube-apiserver stores events.k8s.io/v1 Events as core Events.
type apiGroup struct {
	gv schema.GroupVersion
	// resources are the registry resources the group serves; core/v1 ones
	// are served without short names (kube-apiserver gives events.k8s.io
	// Events none, only core's "ev").
	resources []string
}

var apiGroups = []apiGroup{{
	gv:        coordinationv1.SchemeGroupVersion,
	resources: []string{"leases"},
}, {
	gv:        eventsv1.SchemeGroupVersion,
	resources: []string{"events"},
}}

func findGroup(name, version string) (*apiGroup, bool) {
	for i := range apiGroups {
		if apiGroups[i].gv.Group == name && (version == "" || apiGroups[i].gv.Version == version) {
			return &apiGroups[i], true
		}
	}
	return nil, false
}

// reqGV is the group version the request speaks.
func reqGV(req *request) schema.GroupVersion {
	if req.group == nil {
		return coreV1
	}
	return req.group.gv
}

// newObject is an empty object of the request's group version.
func newObject(req *request) store.Object {
	if req.group != nil && req.group.gv == eventsv1.SchemeGroupVersion {
		return &eventsv1.Event{}
	}
	return req.res.New()
}

// toStored converts an object of the request's version to the stored core/v1 one.
func toStored(req *request, obj store.Object) store.Object {
	if ev, ok := obj.(*eventsv1.Event); ok {
		return eventToCore(ev)
	}
	return obj
}

// toExternal converts a stored object to the request's version.
func toExternal(req *request, obj runtime.Object) runtime.Object {
	if req.group == nil {
		return obj
	}
	switch v := obj.(type) {
	case *corev1.Event:
		return eventFromCore(v)
	case *corev1.EventList:
		out := &eventsv1.EventList{ListMeta: v.ListMeta, Items: make([]eventsv1.Event, len(v.Items))}
		for i := range v.Items {
			out.Items[i] = *eventFromCore(&v.Items[i])
		}
		return out
	}
	return obj
}

func toExternalObj(req *request, obj store.Object) store.Object {
	if obj == nil {
		return nil
	}
	return toExternal(req, obj).(store.Object)
}

// The registry calls of the handlers, converting at the group's edge.

func (s *Server) regGet(ctx context.Context, req *request, ns, name string) (store.Object, error) {
	obj, err := s.reg.Get(ctx, req.res, ns, name)
	return toExternalObj(req, obj), err
}

func (s *Server) regCreate(ctx context.Context, req *request, ns string, obj store.Object, o *metav1.CreateOptions) (store.Object, error) {
	stored := toStored(req, obj)
	if ev, ok := stored.(*corev1.Event); ok && req.group != nil {
		if errs := registry.ValidateEventsV1Create(ev); len(errs) > 0 {
			return nil, apierrors.NewInvalid(reqGV(req).WithKind(req.res.Kind).GroupKind(), ev.Name, errs)
		}
	}
	out, err := s.reg.Create(ctx, req.res, ns, stored, o)
	return toExternalObj(req, out), err
}

func (s *Server) regUpdate(ctx context.Context, req *request, ns, name string, obj store.Object, o *metav1.UpdateOptions) (store.Object, error) {
	out, err := s.reg.Update(ctx, req.res, ns, name, toStored(req, obj), o)
	return toExternalObj(req, out), err
}

func (s *Server) regDelete(ctx context.Context, req *request, ns, name string, o *metav1.DeleteOptions) (store.Object, bool, error) {
	obj, deleted, err := s.reg.Delete(ctx, req.res, ns, name, o)
	return toExternalObj(req, obj), deleted, err
}

func (s *Server) regList(ctx context.Context, req *request, ns string, o *metav1.ListOptions) (runtime.Object, error) {
	list, err := s.reg.List(ctx, req.res, ns, o)
	if err != nil {
		return nil, err
	}
	return toExternal(req, list), nil
}

func (s *Server) regWatch(ctx context.Context, req *request, ns string, o *metav1.ListOptions) (watch.Interface, error) {
	wi, err := s.reg.Watch(ctx, req.res, ns, o)
	if err != nil || req.group == nil {
		return wi, err
	}
	return watch.Filter(wi, func(ev watch.Event) (watch.Event, bool) {
		if ev.Type == watch.Bookmark {
			// A bookmark carries only the resourceVersion, in the watched kind.
			if m, err := meta.Accessor(ev.Object); err == nil {
				b := &eventsv1.Event{}
				b.ResourceVersion = m.GetResourceVersion()
				b.Annotations = m.GetAnnotations()
				ev.Object = b
			}
			return ev, true
		}
		ev.Object = toExternal(req, ev.Object)
		return ev, true
	}), nil
}

// eventToCore and eventFromCore are kube-apiserver's conversions between
// events.k8s.io/v1 and core Events (pkg/apis/events/v1/conversion.go):
// regarding is involvedObject, note is message, deprecatedSource is source,
// deprecatedCount/FirstTimestamp/LastTimestamp are count/firstTimestamp/
// lastTimestamp; the rest keep their names (reportingController is core's
// reportingComponent).
func eventToCore(in *eventsv1.Event) *corev1.Event {
	out := &corev1.Event{
		ObjectMeta:          in.ObjectMeta,
		InvolvedObject:      in.Regarding,
		Reason:              in.Reason,
		Message:             in.Note,
		Source:              in.DeprecatedSource,
		FirstTimestamp:      in.DeprecatedFirstTimestamp,
		LastTimestamp:       in.DeprecatedLastTimestamp,
		Count:               in.DeprecatedCount,
		Type:                in.Type,
		EventTime:           in.EventTime,
		Action:              in.Action,
		Related:             in.Related,
		ReportingController: in.ReportingController,
		ReportingInstance:   in.ReportingInstance,
	}
	if in.Series != nil {
		out.Series = &corev1.EventSeries{Count: in.Series.Count, LastObservedTime: in.Series.LastObservedTime}
	}
	return out
}

func eventFromCore(in *corev1.Event) *eventsv1.Event {
	out := &eventsv1.Event{
		ObjectMeta:               in.ObjectMeta,
		EventTime:                in.EventTime,
		ReportingController:      in.ReportingController,
		ReportingInstance:        in.ReportingInstance,
		Action:                   in.Action,
		Reason:                   in.Reason,
		Regarding:                in.InvolvedObject,
		Related:                  in.Related,
		Note:                     in.Message,
		Type:                     in.Type,
		DeprecatedSource:         in.Source,
		DeprecatedFirstTimestamp: in.FirstTimestamp,
		DeprecatedLastTimestamp:  in.LastTimestamp,
		DeprecatedCount:          in.Count,
	}
	if in.Series != nil {
		out.Series = &eventsv1.EventSeries{Count: in.Series.Count, LastObservedTime: in.Series.LastObservedTime}
	}
	return out
}
