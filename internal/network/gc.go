package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/peapod-dev/peapod/internal/log"
)

// GC tears down the network of every sandbox the plugins still hold state
// for (libcni's cache, host-local leases in IPAMDir) that known does not
// claim. It finds what a crash or reboot left without a netns pin to
// recover from: /run is gone after a reboot, leases and cache under the
// root are not, and the address range would run out. Call it at start-up,
// before any Setup: a sandbox being set up is not known yet.
func (m *Manager) GC(ctx context.Context, known func(id string) bool) error {
	ids, err := m.attachedIDs()
	if err != nil {
		return fmt.Errorf("network GC: %w", err)
	}
	var errs []error
	for _, id := range ids {
		if known(id) {
			continue
		}
		log.FromContext(ctx).Info("releasing the network of a sandbox that no longer exists", "sandbox", id)
		if err := m.Teardown(ctx, id, "", PodNetwork{}); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("network GC: %w", err)
	}
	return nil
}

// attachedIDs lists the sandbox ids in libcni's cache for this network and
// its loopback, and the owners of the leases in the default IPAM directory.
func (m *Manager) attachedIDs() ([]string, error) {
	atts, err := m.cni.GetCachedAttachments("")
	if err != nil {
		return nil, fmt.Errorf("read libcni cache: %w", err)
	}
	var ids []string
	for _, a := range atts {
		if a.Network == m.list.Name || a.Network == m.lo.Name {
			ids = append(ids, a.ContainerID)
		}
	}
	leased, err := leaseOwners(filepath.Join(m.ipamDir, m.list.Name))
	if err != nil {
		return nil, err
	}
	ids = append(ids, leased...)
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// leaseOwners reads host-local's lease files (named by address, holding the
// container id and, since plugins v1.0, the interface name on a second line).
func leaseOwners(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read leases: %w", err)
	}
	var ids []string
	for _, e := range ents {
		if e.IsDir() || net.ParseIP(e.Name()) == nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // released meanwhile
			}
			return nil, fmt.Errorf("read lease: %w", err)
		}
		if id, _, _ := strings.Cut(string(b), "\n"); strings.TrimSpace(id) != "" {
			ids = append(ids, strings.TrimSpace(id))
		}
	}
	return ids, nil
}
