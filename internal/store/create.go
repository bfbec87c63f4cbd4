package store

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
	"k8s.io/apimachinery/pkg/watch"
)

// Create stores obj under its namespace and name and returns it with its
// new resourceVersion. ErrAlreadyExists when the key is taken.
func (s *Store) Create(ctx context.Context, resource string, obj Object) (Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rv uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := s.bucket(tx, resource)
		if err != nil {
			return err
		}
		k := key(obj.GetNamespace(), obj.GetName())
		if b.Get(k) != nil {
			return fmt.Errorf("%w: %s %s", ErrAlreadyExists, resource, k)
		}
		if rv, err = nextRV(tx); err != nil {
			return err
		}
		data, err := encode(obj, rv)
		if err != nil {
			return err
		}
		return b.Put(k, data)
	})
	if err != nil {
		return nil, fmt.Errorf("create %s %s/%s: %w", resource, obj.GetNamespace(), obj.GetName(), err)
	}
	s.publishLocked(event{typ: watch.Added, resource: resource, rv: rv, obj: obj})
	return obj, nil
}
