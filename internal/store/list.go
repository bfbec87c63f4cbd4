package store

import (
	"bytes"
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// ListOptions narrow a List.
type ListOptions struct {
	// Namespace limits the list to one namespace; "" lists all.
	Namespace string
	// After starts the list after this key ("namespace/name"), for pagination.
	After string
	// Limit stops after this many matching objects (0: no limit).
	Limit int
	// Filter keeps only the objects it returns true for.
	Filter func(Object) bool
}

// ListResult is one page of a list.
type ListResult struct {
	Items []Object
	// ResourceVersion is the store's resourceVersion when the list was read.
	ResourceVersion uint64
	// Next is the key of the last item returned when more matching items
	// remain after it, else "".
	Next string
}

// List returns the objects of a resource in key order.
func (s *Store) List(ctx context.Context, resource string, o ListOptions) (*ListResult, error) {
	res := &ListResult{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := s.bucket(tx, resource)
		if err != nil {
			return err
		}
		res.ResourceVersion = currentRV(tx)
		c := b.Cursor()
		var prefix []byte
		if o.Namespace != "" {
			prefix = []byte(o.Namespace + "/")
		}
		k, v := c.Seek(prefix)
		if o.After != "" {
			k, v = c.Seek([]byte(o.After))
			if k != nil && string(k) == o.After {
				k, v = c.Next()
			}
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			obj, err := s.decode(resource, v)
			if err != nil {
				return err
			}
			if o.Filter != nil && !o.Filter(obj) {
				continue
			}
			if o.Limit > 0 && len(res.Items) == o.Limit {
				res.Next = string(key(res.Items[len(res.Items)-1].GetNamespace(), res.Items[len(res.Items)-1].GetName()))
				return nil
			}
			res.Items = append(res.Items, obj)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", resource, err)
	}
	return res, nil
}
