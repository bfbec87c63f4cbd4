package store

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// Delete removes namespace/name after checking the preconditions and returns
// the last state of the object, stamped with the deletion's resourceVersion
// (as watchers see it).
func (s *Store) Delete(ctx context.Context, resource, ns, name string, pre *metav1.Preconditions) (Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var (
		obj Object
		rv  uint64
	)
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := s.bucket(tx, resource)
		if err != nil {
			return err
		}
		k := key(ns, name)
		data := b.Get(k)
		if data == nil {
			return ErrNotFound
		}
		if obj, err = s.decode(resource, data); err != nil {
			return err
		}
		if err := checkPreconditions(pre, obj); err != nil {
			return err
		}
		if rv, err = nextRV(tx); err != nil {
			return err
		}
		if _, err := encode(obj, rv); err != nil {
			return err
		}
		return b.Delete(k)
	})
	if err != nil {
		return nil, fmt.Errorf("delete %s %s/%s: %w", resource, ns, name, err)
	}
	s.publishLocked(event{typ: watch.Deleted, resource: resource, rv: rv, obj: obj})
	return obj, nil
}
