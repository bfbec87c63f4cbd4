package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
)

func open(t *testing.T, o Options) *Store {
	t.Helper()
	if o.Resources == nil {
		o.Resources = map[string]func() Object{"configmaps": func() Object { return &corev1.ConfigMap{} }}
	}
	s, err := Open(filepath.Join(t.TempDir(), "store.db"), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func cm(ns, name, v string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name)},
		Data:       map[string]string{"v": v},
	}
}

func setV(v string) func(Object) (Object, error) {
	return func(cur Object) (Object, error) {
		cur.(*corev1.ConfigMap).Data["v"] = v
		return cur, nil
	}
}

func TestCRUD(t *testing.T) {
	ctx := context.Background()
	s := open(t, Options{})
	created, err := s.Create(ctx, "configmaps", cm("a", "x", "1"))
	if err != nil {
		t.Fatal(err)
	}
	if created.GetResourceVersion() != "1" {
		t.Fatalf("rv = %q, want 1", created.GetResourceVersion())
	}
	if _, err := s.Create(ctx, "configmaps", cm("a", "x", "1")); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("second create: %v, want ErrAlreadyExists", err)
	}
	if _, err := s.Get(ctx, "configmaps", "a", "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}
	s.Create(ctx, "configmaps", cm("b", "y", "1"))

	res, err := s.List(ctx, "configmaps", ListOptions{Namespace: "a"})
	if err != nil || len(res.Items) != 1 || res.ResourceVersion != 2 {
		t.Fatalf("list a: %v %+v", err, res)
	}
	res, _ = s.List(ctx, "configmaps", ListOptions{})
	if len(res.Items) != 2 {
		t.Fatalf("list all: %d items", len(res.Items))
	}

	stale := "1"
	up, err := s.GuaranteedUpdate(ctx, "configmaps", "a", "x", &metav1.Preconditions{ResourceVersion: &stale}, setV("2"))
	if err != nil || up.GetResourceVersion() != "3" {
		t.Fatalf("update: %v rv=%v", err, up)
	}
	_, err = s.GuaranteedUpdate(ctx, "configmaps", "a", "x", &metav1.Preconditions{ResourceVersion: &stale}, setV("3"))
	var se *Error
	if !errors.Is(err, ErrConflict) || !errors.As(err, &se) {
		t.Fatalf("stale update: %v, want conflict", err)
	}
	// An update that changes nothing keeps the resourceVersion.
	same, err := s.GuaranteedUpdate(ctx, "configmaps", "a", "x", nil, setV("2"))
	if err != nil || same.GetResourceVersion() != "3" {
		t.Fatalf("no-op update: %v %v", err, same)
	}

	wrong := types.UID("other")
	if _, err := s.Delete(ctx, "configmaps", "a", "x", &metav1.Preconditions{UID: &wrong}); !errors.Is(err, ErrConflict) {
		t.Fatalf("delete with wrong uid: %v", err)
	}
	del, err := s.Delete(ctx, "configmaps", "a", "x", nil)
	if err != nil || del.GetResourceVersion() != "4" {
		t.Fatalf("delete: %v %v", err, del)
	}
	if _, err := s.Get(ctx, "configmaps", "a", "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
}

func TestResourceVersionSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "store.db")
	o := Options{Resources: map[string]func() Object{"configmaps": func() Object { return &corev1.ConfigMap{} }}}
	s, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	s.Create(ctx, "configmaps", cm("a", "x", "1"))
	s.Close()
	s, err = Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	obj, err := s.Create(ctx, "configmaps", cm("a", "y", "1"))
	if err != nil || obj.GetResourceVersion() != "2" {
		t.Fatalf("create after reopen: %v %v", err, obj)
	}
	// History does not survive a restart: resuming before it is expired.
	if _, err := s.Watch(ctx, "configmaps", WatchOptions{ResourceVersion: 0}); !errors.Is(err, ErrExpired) {
		t.Fatalf("watch from before restart: %v, want ErrExpired", err)
	}
}

func next(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	ev, ok := <-w.ResultChan()
	if !ok {
		t.Fatal("watch closed")
	}
	return ev
}

func TestWatch(t *testing.T) {
	ctx := context.Background()
	s := open(t, Options{})
	s.Create(ctx, "configmaps", cm("a", "x", "1"))

	initial, err := s.Watch(ctx, "configmaps", WatchOptions{SendInitial: true})
	if err != nil {
		t.Fatal(err)
	}
	defer initial.Stop()
	filtered, err := s.Watch(ctx, "configmaps", WatchOptions{
		ResourceVersion: 1,
		Filter:          func(o Object) bool { return o.(*corev1.ConfigMap).Data["v"] == "hit" },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer filtered.Stop()

	if ev := next(t, initial); ev.Type != watch.Added || ev.Object.(*corev1.ConfigMap).Name != "x" {
		t.Fatalf("initial event %v", ev)
	}
	s.GuaranteedUpdate(ctx, "configmaps", "a", "x", nil, setV("hit"))
	s.GuaranteedUpdate(ctx, "configmaps", "a", "x", nil, setV("miss"))
	s.Delete(ctx, "configmaps", "a", "x", nil)

	for _, want := range []watch.EventType{watch.Modified, watch.Modified, watch.Deleted} {
		if ev := next(t, initial); ev.Type != want {
			t.Fatalf("got %s, want %s", ev.Type, want)
		}
	}
	// Moving into the filter is ADDED, out of it DELETED; the delete of an
	// object outside the filter is not seen.
	for _, want := range []watch.EventType{watch.Added, watch.Deleted} {
		if ev := next(t, filtered); ev.Type != want {
			t.Fatalf("filtered: got %s, want %s", ev.Type, want)
		}
	}
	s.Create(ctx, "configmaps", cm("a", "z", "hit"))
	if ev := next(t, filtered); ev.Type != watch.Added || ev.Object.(*corev1.ConfigMap).Name != "z" {
		t.Fatalf("filtered: %v", ev)
	}

	// Resuming from a resourceVersion replays what came after it.
	resumed, err := s.Watch(ctx, "configmaps", WatchOptions{ResourceVersion: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer resumed.Stop()
	for _, want := range []string{"4", "5"} {
		if ev := next(t, resumed); ev.Object.(Object).GetResourceVersion() != want {
			t.Fatalf("resumed: rv %s, want %s", ev.Object.(Object).GetResourceVersion(), want)
		}
	}
	if _, err := s.Watch(ctx, "configmaps", WatchOptions{ResourceVersion: 99}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("watch from the future: %v", err)
	}
}

func TestWatchExpired(t *testing.T) {
	ctx := context.Background()
	s := open(t, Options{History: 3})
	for i := range 5 {
		s.Create(ctx, "configmaps", cm("a", fmt.Sprint(i), "1"))
	}
	_, err := s.Watch(ctx, "configmaps", WatchOptions{ResourceVersion: 1})
	var se *Error
	if !errors.Is(err, ErrExpired) || !errors.As(err, &se) || se.Msg != "too old resource version: 1 (3)" {
		t.Fatalf("watch from 1: %v", err)
	}
	w, err := s.Watch(ctx, "configmaps", WatchOptions{ResourceVersion: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if ev := next(t, w); ev.Object.(Object).GetResourceVersion() != "3" {
		t.Fatalf("first event rv %s", ev.Object.(Object).GetResourceVersion())
	}
}

// A watcher that does not read is closed after its buffer, writers go on,
// and it got every event up to the point it was dropped, in order.
func TestSlowWatcherIsClosed(t *testing.T) {
	ctx := context.Background()
	s := open(t, Options{WatchBuffer: 2})
	w, err := s.Watch(ctx, "configmaps", WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := s.Create(ctx, "configmaps", cm("a", fmt.Sprint(i), "1")); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for ev := range w.ResultChan() {
		got = append(got, ev.Object.(Object).GetResourceVersion())
	}
	if len(got) == 0 || len(got) >= 10 {
		t.Fatalf("slow watcher got %v, want a prefix then close", got)
	}
	for i, rv := range got {
		if rv != fmt.Sprint(i+1) {
			t.Fatalf("slow watcher got %v, want consecutive versions", got)
		}
	}
}

func TestInitialEventsEnd(t *testing.T) {
	ctx := context.Background()
	s := open(t, Options{})
	s.Create(ctx, "configmaps", cm("a", "x", "1"))
	w, _ := s.Watch(ctx, "configmaps", WatchOptions{SendInitial: true, InitialEventsEnd: true})
	defer w.Stop()
	next(t, w)
	ev := next(t, w)
	if ev.Type != watch.Bookmark || ev.Object.(Object).GetAnnotations()[InitialEventsEndAnnotation] != "true" || ev.Object.(Object).GetResourceVersion() != "1" {
		t.Fatalf("end of initial events: %v", ev)
	}
}

func TestBookmarks(t *testing.T) {
	ctx := context.Background()
	s := open(t, Options{})
	w, _ := s.Watch(ctx, "configmaps", WatchOptions{Bookmarks: true})
	defer w.Stop()
	s.Create(ctx, "configmaps", cm("a", "x", "1"))
	s.SendBookmarks()
	next(t, w)
	if ev := next(t, w); ev.Type != watch.Bookmark || ev.Object.(Object).GetResourceVersion() != "1" {
		t.Fatalf("bookmark %v", ev)
	}
}

// Concurrent writers and watchers: every watcher sees every version exactly
// once and in order, and the counter ends at the number of writes.
func TestConcurrency(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := open(t, Options{WatchBuffer: 10000})
	const writers, per, watchers = 8, 50, 10
	results := make([][]uint64, watchers)
	var wg sync.WaitGroup
	for i := range watchers {
		w, err := s.Watch(ctx, "configmaps", WatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ev := range w.ResultChan() {
				rv, _ := ParseResourceVersion(ev.Object.(Object).GetResourceVersion())
				results[i] = append(results[i], rv)
				if len(results[i]) == writers*per*2 {
					w.Stop()
				}
			}
		}()
	}
	var ww sync.WaitGroup
	for i := range writers {
		ww.Add(1)
		go func() {
			defer ww.Done()
			for j := range per {
				name := fmt.Sprintf("w%d-%d", i, j)
				if _, err := s.Create(ctx, "configmaps", cm("a", name, "1")); err != nil {
					t.Error(err)
				}
				if _, err := s.GuaranteedUpdate(ctx, "configmaps", "a", name, nil, setV("2")); err != nil {
					t.Error(err)
				}
				if _, err := s.List(ctx, "configmaps", ListOptions{Namespace: "a", Limit: 5}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	ww.Wait()
	wg.Wait()
	rv, _ := s.CurrentResourceVersion()
	if rv != writers*per*2 {
		t.Fatalf("resourceVersion %d, want %d", rv, writers*per*2)
	}
	for i, r := range results {
		for j, v := range r {
			if v != uint64(j+1) {
				t.Fatalf("watcher %d: event %d has rv %d", i, j, v)
			}
		}
	}
}

func TestListPagination(t *testing.T) {
	ctx := context.Background()
	s := open(t, Options{})
	for i := range 5 {
		s.Create(ctx, "configmaps", cm("a", fmt.Sprint(i), "1"))
	}
	s.Create(ctx, "configmaps", cm("b", "9", "1"))
	var names []string
	after := ""
	for {
		res, err := s.List(ctx, "configmaps", ListOptions{Namespace: "a", Limit: 2, After: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range res.Items {
			names = append(names, o.GetName())
		}
		if res.Next == "" {
			break
		}
		after = res.Next
	}
	if fmt.Sprint(names) != "[0 1 2 3 4]" {
		t.Fatalf("pages gave %v", names)
	}
}
