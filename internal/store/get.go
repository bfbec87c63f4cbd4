package store

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Get returns the object stored under namespace/name, or ErrNotFound.
func (s *Store) Get(ctx context.Context, resource, ns, name string) (Object, error) {
	var obj Object
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := s.bucket(tx, resource)
		if err != nil {
			return err
		}
		data := b.Get(key(ns, name))
		if data == nil {
			return ErrNotFound
		}
		obj, err = s.decode(resource, data)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get %s %s/%s: %w", resource, ns, name, err)
	}
	return obj, nil
}
