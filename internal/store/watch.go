package store

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	bolt "go.etcd.io/bbolt"
	"k8s.io/apimachinery/pkg/watch"
)

// WatchOptions select what a watch sees and where it starts.
type WatchOptions struct {
	// Namespace limits events to one namespace; "" watches all.
	Namespace string
	// ResourceVersion: deliver the events after it. ErrExpired (wrapped in
	// *Error) when history no longer reaches back that far.
	ResourceVersion uint64
	// SendInitial starts the watch with an ADDED event for every current
	// object and ignores ResourceVersion (a watch from "" or "0").
	SendInitial bool
	// Filter keeps the objects it returns true for. An update that moves an
	// object into the filter is ADDED, one that moves it out is DELETED.
	Filter func(Object) bool
	// InitialEventsEnd follows the initial events with a BOOKMARK annotated
	// "k8s.io/initial-events-end" (the watch-list protocol).
	InitialEventsEnd bool
	// Bookmarks asks for the BOOKMARK events SendBookmarks emits.
	Bookmarks bool
}

// InitialEventsEndAnnotation marks the bookmark that ends the initial events.
const InitialEventsEndAnnotation = "k8s.io/initial-events-end"

type watcher struct {
	s        *Store
	resource string
	o        WatchOptions
	initial  []event
	in       chan event // closed by the store when it drops the watcher
	out      chan watch.Event
	stop     chan struct{}
	stopOnce sync.Once
}

// Watch streams the changes to a resource. The watch ends (its result channel
// closes) when ctx ends, on Stop, or when the watcher falls more than the
// watch buffer behind; the consumer then resumes from the last
// resourceVersion it saw.
func (s *Store) Watch(ctx context.Context, resource string, o WatchOptions) (watch.Interface, error) {
	if _, ok := s.resources[resource]; !ok {
		return nil, fmt.Errorf("watch %s: %w", resource, ErrUnknownResource)
	}
	w := &watcher{
		s:        s,
		resource: resource,
		o:        o,
		in:       make(chan event, s.bufSize),
		out:      make(chan watch.Event),
		stop:     make(chan struct{}),
	}
	s.mu.Lock()
	if o.SendInitial {
		err := s.db.View(func(tx *bolt.Tx) error {
			b, err := s.bucket(tx, resource)
			if err != nil {
				return err
			}
			rv := currentRV(tx)
			defer func() {
				if o.InitialEventsEnd {
					obj := s.resources[resource]()
					obj.SetResourceVersion(strconv.FormatUint(rv, 10))
					obj.SetAnnotations(map[string]string{InitialEventsEndAnnotation: "true"})
					w.initial = append(w.initial, event{typ: watch.Bookmark, resource: resource, rv: rv, obj: obj})
				}
			}()
			return b.ForEach(func(k, v []byte) error {
				obj, err := s.decode(resource, v)
				if err != nil {
					return err
				}
				w.initial = append(w.initial, event{typ: watch.Added, resource: resource, obj: obj})
				return nil
			})
		})
		if err != nil {
			s.mu.Unlock()
			return nil, fmt.Errorf("watch %s: %w", resource, err)
		}
	} else {
		switch {
		case o.ResourceVersion < s.evictedRV:
			s.mu.Unlock()
			return nil, &Error{Err: ErrExpired, Msg: fmt.Sprintf("too old resource version: %d (%d)", o.ResourceVersion, s.evictedRV+1)}
		case o.ResourceVersion > s.lastRV:
			s.mu.Unlock()
			return nil, &Error{Err: ErrTooLarge, Msg: fmt.Sprintf("Too large resource version: %d, current: %d", o.ResourceVersion, s.lastRV)}
		}
		s.eachHistoryLocked(func(ev event) {
			if ev.rv > o.ResourceVersion && ev.resource == resource {
				w.initial = append(w.initial, ev)
			}
		})
	}
	s.watchers[w] = struct{}{}
	s.mu.Unlock()
	go w.run(ctx)
	return w, nil
}

// SendBookmarks queues a BOOKMARK carrying the current resourceVersion to
// every watcher that asked for bookmarks. Queued behind every event before
// it, a bookmark promises the watcher has seen everything up to that version.
func (s *Store) SendBookmarks() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for w := range s.watchers {
		if !w.o.Bookmarks {
			continue
		}
		obj := s.resources[w.resource]()
		obj.SetResourceVersion(strconv.FormatUint(s.lastRV, 10))
		s.sendLocked(w, event{typ: watch.Bookmark, resource: w.resource, rv: s.lastRV, obj: obj})
	}
}

func (w *watcher) ResultChan() <-chan watch.Event { return w.out }

func (w *watcher) Stop() { w.stopOnce.Do(func() { close(w.stop) }) }

func (w *watcher) run(ctx context.Context) {
	defer func() {
		w.s.mu.Lock()
		w.s.dropLocked(w)
		w.s.mu.Unlock()
		close(w.out)
	}()
	for _, ev := range w.initial {
		if !w.deliver(ctx, ev) {
			return
		}
	}
	w.initial = nil
	for {
		select {
		case ev, ok := <-w.in:
			if !ok || !w.deliver(ctx, ev) {
				return
			}
		case <-w.stop:
			return
		case <-ctx.Done():
			return
		}
	}
}

// deliver sends ev if it passes the watcher's filters; false when the
// watcher is stopping.
func (w *watcher) deliver(ctx context.Context, ev event) bool {
	typ, ok := w.translate(ev)
	if !ok {
		return true
	}
	select {
	case w.out <- watch.Event{Type: typ, Object: ev.obj.DeepCopyObject()}:
		return true
	case <-w.stop:
		return false
	case <-ctx.Done():
		return false
	}
}

func (w *watcher) translate(ev event) (watch.EventType, bool) {
	if ev.typ == watch.Bookmark {
		return ev.typ, true
	}
	match := func(o Object) bool {
		if o == nil {
			return false
		}
		if w.o.Namespace != "" && o.GetNamespace() != w.o.Namespace {
			return false
		}
		return w.o.Filter == nil || w.o.Filter(o)
	}
	cur := match(ev.obj)
	if ev.typ != watch.Modified {
		return ev.typ, cur
	}
	old := match(ev.prev)
	switch {
	case cur && old:
		return watch.Modified, true
	case cur:
		return watch.Added, true
	case old:
		return watch.Deleted, true
	}
	return "", false
}

// publishLocked records a write in history and queues it for watchers.
func (s *Store) publishLocked(ev event) {
	ev.obj = ev.obj.DeepCopyObject().(Object)
	s.lastRV = ev.rv
	if len(s.history) < s.histSize {
		s.history = append(s.history, ev)
	} else {
		s.evictedRV = s.history[s.histNext].rv
		s.history[s.histNext] = ev
		s.histNext = (s.histNext + 1) % s.histSize
	}
	for w := range s.watchers {
		if w.resource == ev.resource {
			s.sendLocked(w, ev)
		}
	}
}

// sendLocked never blocks a writer: a watcher whose buffer is full is
// dropped, which ends its watch after the events already queued.
func (s *Store) sendLocked(w *watcher, ev event) {
	select {
	case w.in <- ev:
	default:
		s.dropLocked(w)
	}
}

func (s *Store) dropLocked(w *watcher) {
	if _, ok := s.watchers[w]; ok {
		delete(s.watchers, w)
		close(w.in)
	}
}

func (s *Store) eachHistoryLocked(fn func(event)) {
	if len(s.history) < s.histSize {
		for _, ev := range s.history {
			fn(ev)
		}
		return
	}
	for i := 0; i < s.histSize; i++ {
		fn(s.history[(s.histNext+i)%s.histSize])
	}
}
