package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/peapod-dev/peapod/internal/store"
)

type eventStrategy struct{}

func (eventStrategy) prepareForCreate(ctx context.Context, r *Registry, obj store.Object) {}

func (eventStrategy) validate(obj store.Object) field.ErrorList {
	ev := obj.(*corev1.Event)
	var errs field.ErrorList
	if ns := ev.InvolvedObject.Namespace; ns != "" && ns != ev.Namespace {
		errs = append(errs, field.Invalid(field.NewPath("involvedObject", "namespace"), ns, "does not match event.namespace"))
	}
	return errs
}

func (eventStrategy) prepareForUpdate(obj, old store.Object) {}

func (eventStrategy) validateUpdate(obj, old store.Object) field.ErrorList { return nil }

// eventFields are the event field selectors the API server supports.
func eventFields(o store.Object) fields.Set {
	ev := o.(*corev1.Event)
	source := ev.Source.Component
	if source == "" {
		source = ev.ReportingController
	}
	return fields.Set{
		"involvedObject.kind":            ev.InvolvedObject.Kind,
		"involvedObject.namespace":       ev.InvolvedObject.Namespace,
		"involvedObject.name":            ev.InvolvedObject.Name,
		"involvedObject.uid":             string(ev.InvolvedObject.UID),
		"involvedObject.apiVersion":      ev.InvolvedObject.APIVersion,
		"involvedObject.resourceVersion": ev.InvolvedObject.ResourceVersion,
		"involvedObject.fieldPath":       ev.InvolvedObject.FieldPath,
		"reason":                         ev.Reason,
		"reportingComponent":             ev.ReportingController,
		"source":                         source,
		"type":                           ev.Type,
	}
}

// eventCorrelator remembers the event written for each distinct
// (object, source, type, reason, message) so repeats bump its count, as
// client-go's EventCorrelator does for the kubelet.
type eventCorrelator struct {
	mu    sync.Mutex
	names map[string]string // key -> event name
	// last is the suffix of the last event name: names are unique and
	// increasing even when the clock stands still.
	last uint64
}

// maxCorrelatedEvents bounds the memory the correlator keeps.
const maxCorrelatedEvents = 4096

func newEventCorrelator() *eventCorrelator {
	return &eventCorrelator{names: map[string]string{}}
}

func (r *Registry) recordEvent(ctx context.Context, pod *corev1.Pod, fieldPath, eventType, reason, message string) {
	r.recordEventFrom(ctx, "kubelet", pod, fieldPath, eventType, reason, message)
}

// recordEventFrom records an event from a component ("kubelet", "default-scheduler").
func (r *Registry) recordEventFrom(ctx context.Context, component string, pod *corev1.Pod, fieldPath, eventType, reason, message string) {
	ref := corev1.ObjectReference{
		Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name,
		UID: pod.UID, ResourceVersion: pod.ResourceVersion, FieldPath: fieldPath,
	}
	source := corev1.EventSource{Component: component, Host: r.nodeName}
	if component != "kubelet" {
		source.Host = ""
	}
	key := strings.Join([]string{source.Component, source.Host, ref.Kind, ref.Namespace, ref.Name, string(ref.UID), ref.FieldPath, eventType, reason, message}, "\x00")
	now := r.now()
	res := r.resources["events"]

	r.events.mu.Lock()
	defer r.events.mu.Unlock()
	if name, ok := r.events.names[key]; ok {
		_, err := r.store.GuaranteedUpdate(ctx, "events", pod.Namespace, name, nil, func(cur store.Object) (store.Object, error) {
			ev := cur.(*corev1.Event)
			ev.Count++
			ev.LastTimestamp = now
			return ev, nil
		})
		if err == nil {
			return
		}
		delete(r.events.names, key)
	}
	seq := uint64(r.clock.Now().UnixNano())
	if seq <= r.events.last {
		seq = r.events.last + 1
	}
	r.events.last = seq
	ev := &corev1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", pod.Name, seq), Namespace: pod.Namespace},
		InvolvedObject:      ref,
		Reason:              reason,
		Message:             message,
		Source:              source,
		FirstTimestamp:      now,
		LastTimestamp:       now,
		Count:               1,
		Type:                eventType,
		ReportingController: source.Component,
		ReportingInstance:   source.Host,
	}
	if _, err := r.Create(ctx, res, pod.Namespace, ev, nil); err != nil {
		r.log.Warn("recording event", "pod", pod.Namespace+"/"+pod.Name, "reason", reason, "err", err)
		return
	}
	if len(r.events.names) >= maxCorrelatedEvents {
		clear(r.events.names)
	}
	r.events.names[key] = ev.Name
}

// EventTTL is how long an event is kept after it last happened (the
// kube-apiserver's --event-ttl default).
const EventTTL = time.Hour

// ExpireEvents deletes the events that last happened more than EventTTL
// ago, as etcd's lease on each event does for the kube-apiserver.
func (r *Registry) ExpireEvents(ctx context.Context) error {
	cutoff := r.clock.Now().Add(-EventTTL)
	list, err := r.store.List(ctx, "events", store.ListOptions{Filter: func(o store.Object) bool {
		ev := o.(*corev1.Event)
		last := ev.LastTimestamp.Time
		if last.IsZero() {
			last = ev.CreationTimestamp.Time
		}
		return last.Before(cutoff)
	}})
	if err != nil {
		return fmt.Errorf("list events: %w", err)
	}
	for _, ev := range list.Items {
		_, err := r.store.Delete(ctx, "events", ev.GetNamespace(), ev.GetName(), &metav1.Preconditions{UID: ptrUID(ev)})
		if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("delete event %s/%s: %w", ev.GetNamespace(), ev.GetName(), err)
		}
	}
	return nil
}

// Limits of kube-apiserver's events.k8s.io validation.
const (
	eventReportingInstanceLengthLimit = 128
	eventActionLengthLimit            = 128
	eventReasonLengthLimit            = 128
	eventNoteLengthLimit              = 1024
)

// ValidateEventsV1Create is the stricter validation kube-apiserver applies
// to Events created through events.k8s.io/v1 (ValidateEventCreate): the
// new-style fields are required and the deprecated ones must be unset. ev
// is the converted core Event; paths name the events.k8s.io fields.
func ValidateEventsV1Create(ev *corev1.Event) field.ErrorList {
	var errs field.ErrorList
	if ev.EventTime.IsZero() {
		errs = append(errs, field.Required(field.NewPath("eventTime"), ""))
	}
	if ev.ReportingController == "" {
		errs = append(errs, field.Required(field.NewPath("reportingController"), ""))
	}
	if ev.ReportingInstance == "" {
		errs = append(errs, field.Required(field.NewPath("reportingInstance"), ""))
	} else if len(ev.ReportingInstance) > eventReportingInstanceLengthLimit {
		errs = append(errs, field.Invalid(field.NewPath("reportingInstance"), "", fmt.Sprintf("can have at most %v characters", eventReportingInstanceLengthLimit)))
	}
	if ev.Action == "" {
		errs = append(errs, field.Required(field.NewPath("action"), ""))
	} else if len(ev.Action) > eventActionLengthLimit {
		errs = append(errs, field.Invalid(field.NewPath("action"), "", fmt.Sprintf("can have at most %v characters", eventActionLengthLimit)))
	}
	if ev.Reason == "" {
		errs = append(errs, field.Required(field.NewPath("reason"), ""))
	} else if len(ev.Reason) > eventReasonLengthLimit {
		errs = append(errs, field.Invalid(field.NewPath("reason"), "", fmt.Sprintf("can have at most %v characters", eventReasonLengthLimit)))
	}
	if len(ev.Message) > eventNoteLengthLimit {
		errs = append(errs, field.Invalid(field.NewPath("note"), "", fmt.Sprintf("can have at most %v characters", eventNoteLengthLimit)))
	}
	if s := ev.Series; s != nil {
		if s.Count < 2 {
			errs = append(errs, field.Invalid(field.NewPath("series", "count"), "", "should be at least 2"))
		}
		if s.LastObservedTime.IsZero() {
			errs = append(errs, field.Required(field.NewPath("series", "lastObservedTime"), ""))
		}
	}
	if ev.Type != corev1.EventTypeNormal && ev.Type != corev1.EventTypeWarning {
		errs = append(errs, field.Invalid(field.NewPath("type"), "", fmt.Sprintf("has invalid value: %v", ev.Type)))
	}
	if !ev.FirstTimestamp.IsZero() {
		errs = append(errs, field.Invalid(field.NewPath("deprecatedFirstTimestamp"), "", "needs to be unset"))
	}
	if !ev.LastTimestamp.IsZero() {
		errs = append(errs, field.Invalid(field.NewPath("deprecatedLastTimestamp"), "", "needs to be unset"))
	}
	if ev.Count != 0 {
		errs = append(errs, field.Invalid(field.NewPath("deprecatedCount"), "", "needs to be unset"))
	}
	if ev.Source.Component != "" || ev.Source.Host != "" {
		errs = append(errs, field.Invalid(field.NewPath("deprecatedSource"), "", "needs to be unset"))
	}
	return errs
}
