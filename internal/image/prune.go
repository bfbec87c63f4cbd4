package image

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Prune removes every image for which inUse returns false, then every blob
// and unpacked layer that no image references (leftovers of failed work).
// It returns the IDs of the removed images.
func (s *Store) Prune(inUse func(*Image) bool) ([]string, error) {
	imgs, err := s.List()
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	var removed []string
	for _, img := range imgs {
		if inUse != nil && inUse(img) {
			continue
		}
		if err := s.Remove(img.ID); err != nil && !errors.Is(err, ErrNotFound) {
			return removed, fmt.Errorf("prune: %w", err)
		}
		removed = append(removed, img.ID)
	}
	if err := s.sweep(); err != nil {
		return removed, fmt.Errorf("prune: %w", err)
	}
	return removed, nil
}

// sweep deletes blobs and layers no record references and no work in this
// process holds.
func (s *Store) sweep() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	recs, err := s.records()
	if err != nil {
		return err
	}
	used := map[string]bool{}
	for _, r := range recs {
		for _, d := range r.digests() {
			used[d] = true
		}
		for _, l := range r.Layers {
			used["layer:"+l.DiffID] = true
		}
	}
	var errs []error
	blobs, err := os.ReadDir(filepath.Dir(s.blobPath("x")))
	if err != nil {
		return err
	}
	for _, e := range blobs {
		d := "sha256:" + e.Name()
		if !used[d] && s.inUse[d] == 0 {
			if err := os.Remove(s.blobPath(d)); err != nil && !os.IsNotExist(err) {
				errs = append(errs, err)
			}
		}
	}
	layers, err := os.ReadDir(filepath.Dir(s.layerPath("x")))
	if err != nil {
		return err
	}
	mounted, err := mountedLayers()
	if err != nil {
		return err
	}
	for _, e := range layers {
		d := "sha256:" + e.Name()
		if !used["layer:"+d] && s.inUse["layer:"+d] == 0 && !mounted[s.layerPath(d)] {
			if err := s.removeLayerDir(d); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
