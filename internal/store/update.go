package store

import (
	"bytes"
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// GuaranteedUpdate reads the current object, checks the preconditions
// (*Error wrapping ErrConflict on mismatch), and stores what
// tryUpdate returns for a copy of it. Writes are serialized, so tryUpdate
// always sees the latest object and runs once. An update that changes
// nothing is not written and keeps the resourceVersion, as in etcd3 storage.
func (s *Store) GuaranteedUpdate(ctx context.Context, resource, ns, name string, pre *metav1.Preconditions, tryUpdate func(cur Object) (Object, error)) (Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var (
		out  Object
		prev Object
		rv   uint64
	)
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := s.bucket(tx, resource)
		if err != nil {
			return err
		}
		k := key(ns, name)
		old := b.Get(k)
		if old == nil {
			return ErrNotFound
		}
		if prev, err = s.decode(resource, old); err != nil {
			return err
		}
		if err := checkPreconditions(pre, prev); err != nil {
			return err
		}
		obj, err := tryUpdate(prev.DeepCopyObject().(Object))
		if err != nil {
			return err
		}
		// Identity is the key; callers cannot move an object.
		obj.SetNamespace(ns)
		obj.SetName(name)
		same, err := encode(obj, mustRV(prev))
		if err != nil {
			return err
		}
		if bytes.Equal(same, old) {
			out = obj
			return nil
		}
		if rv, err = nextRV(tx); err != nil {
			return err
		}
		data, err := encode(obj, rv)
		if err != nil {
			return err
		}
		out = obj
		return b.Put(k, data)
	})
	if err != nil {
		return nil, fmt.Errorf("update %s %s/%s: %w", resource, ns, name, err)
	}
	if rv != 0 {
		s.publishLocked(event{typ: watch.Modified, resource: resource, rv: rv, obj: out, prev: prev})
	}
	return out, nil
}

func mustRV(o Object) uint64 {
	rv, _ := ParseResourceVersion(o.GetResourceVersion())
	return rv
}
