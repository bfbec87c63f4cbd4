// Package store keeps API objects in bbolt: one bucket per resource, keys
// "namespace/name" (cluster-scoped objects use an empty namespace), JSON
// bodies, and one resourceVersion counter for the whole database that every
// write increments and stamps into metadata.resourceVersion. Writes are
// serialized; each write is fanned out to watchers from the same critical
// section so watchers see writes in resourceVersion order.
package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// Object is what the store holds: a Kubernetes object with metadata.
type Object interface {
	runtime.Object
	metav1.Object
}

// Sentinel errors; callers turn them into API errors.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	ErrConflict      = errors.New("conflict")
	// ErrExpired: the requested resourceVersion is older than the watch history.
	ErrExpired = errors.New("resource version expired")
	// ErrTooLarge: the requested resourceVersion is newer than the store.
	ErrTooLarge        = errors.New("resource version too large")
	ErrUnknownResource = errors.New("unknown resource")
)

// Error carries one of the sentinel errors with the API server's wording of
// the problem (e.g. which precondition failed), for the caller to show.
type Error struct {
	Err error
	Msg string
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// Options configure a Store.
type Options struct {
	// Resources maps every resource name (bucket) to a constructor of its type.
	Resources map[string]func() Object
	// History is how many recent events are kept for watches that resume
	// from a resourceVersion (default 10000).
	History int
	// WatchBuffer is how many events may wait for one watcher before it is
	// closed as too slow (default 1000).
	WatchBuffer int
}

// Store is safe for concurrent use.
type Store struct {
	db        *bolt.DB
	resources map[string]func() Object
	bufSize   int

	mu       sync.Mutex // serializes writes, history and the watcher set
	history  []event    // ring, oldest first once full
	histSize int
	histNext int
	// evictedRV is the newest resourceVersion no longer in history; watches
	// must start at or after it.
	evictedRV uint64
	watchers  map[*watcher]struct{}
	// lastRV is the newest resourceVersion written.
	lastRV uint64
}

type event struct {
	typ      watch.EventType
	resource string
	rv       uint64
	obj      Object
	prev     Object // the object before a MODIFIED event
}

var metaBucket = []byte("meta")
var rvKey = []byte("resourceVersion")

// Open opens or creates the database at path.
func Open(path string, o Options) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &Store{
		db:        db,
		resources: o.Resources,
		bufSize:   o.WatchBuffer,
		histSize:  o.History,
		watchers:  map[*watcher]struct{}{},
	}
	if s.bufSize <= 0 {
		s.bufSize = 1000
	}
	if s.histSize <= 0 {
		s.histSize = 10000
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(metaBucket); err != nil {
			return err
		}
		for r := range o.Resources {
			if _, err := tx.CreateBucketIfNotExists([]byte(r)); err != nil {
				return err
			}
		}
		s.evictedRV = currentRV(tx)
		s.lastRV = s.evictedRV
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialize store %s: %w", path, err)
	}
	return s, nil
}

// Close stops every watcher and closes the database.
func (s *Store) Close() error {
	s.mu.Lock()
	for w := range s.watchers {
		s.dropLocked(w)
	}
	s.mu.Unlock()
	return s.db.Close()
}

// CurrentResourceVersion returns the newest resourceVersion written.
func (s *Store) CurrentResourceVersion() (uint64, error) {
	var rv uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		rv = currentRV(tx)
		return nil
	})
	return rv, err
}

// ParseResourceVersion parses a metadata.resourceVersion ("" is 0).
func ParseResourceVersion(v string) (uint64, error) {
	if v == "" {
		return 0, nil
	}
	rv, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid resource version %q: %w", v, err)
	}
	return rv, nil
}

func currentRV(tx *bolt.Tx) uint64 {
	b := tx.Bucket(metaBucket).Get(rvKey)
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func nextRV(tx *bolt.Tx) (uint64, error) {
	rv := currentRV(tx) + 1
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], rv)
	if err := tx.Bucket(metaBucket).Put(rvKey, b[:]); err != nil {
		return 0, fmt.Errorf("store resourceVersion: %w", err)
	}
	return rv, nil
}

func key(ns, name string) []byte { return []byte(ns + "/" + name) }

func (s *Store) bucket(tx *bolt.Tx, resource string) (*bolt.Bucket, error) {
	b := tx.Bucket([]byte(resource))
	if b == nil {
		return nil, fmt.Errorf("%w: %s", ErrUnknownResource, resource)
	}
	return b, nil
}

func (s *Store) decode(resource string, data []byte) (Object, error) {
	newFn, ok := s.resources[resource]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownResource, resource)
	}
	obj := newFn()
	if err := json.Unmarshal(data, obj); err != nil {
		return nil, fmt.Errorf("decode %s: %w", resource, err)
	}
	return obj, nil
}

func encode(obj Object, rv uint64) ([]byte, error) {
	obj.SetResourceVersion(strconv.FormatUint(rv, 10))
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	return data, nil
}

func checkPreconditions(p *metav1.Preconditions, cur Object) error {
	if p == nil {
		return nil
	}
	if p.UID != nil && *p.UID != cur.GetUID() {
		return &Error{Err: ErrConflict, Msg: fmt.Sprintf("Precondition failed: UID in precondition: %v, UID in object meta: %v", *p.UID, cur.GetUID())}
	}
	if p.ResourceVersion != nil && *p.ResourceVersion != cur.GetResourceVersion() {
		return &Error{Err: ErrConflict, Msg: "the object has been modified; please apply your changes to the latest version and try again"}
	}
	return nil
}
