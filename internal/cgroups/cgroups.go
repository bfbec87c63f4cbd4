// Package cgroups lays out pod cgroups as the kubelet does (a QoS parent per
// class under one root, a pod cgroup under its parent, containers below the
// pod) over github.com/opencontainers/cgroups, on cgroup v1 or v2, and reads
// their usage and OOM kills.
package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/fs"
	"github.com/opencontainers/cgroups/fs2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
)

// DefaultRoot is the cgroup under which peapod puts pods, as the kubelet uses
// /kubepods.
const DefaultRoot = "/peapod"

const unifiedMount = "/sys/fs/cgroup"

var (
	// ErrNotFound means the cgroup does not exist.
	ErrNotFound = errors.New("cgroup not found")
	// ErrInvalidPath means a path is not a pod cgroup under the manager's root.
	ErrInvalidPath = errors.New("invalid cgroup path")
	// ErrBusy means processes stayed in a cgroup after they were killed.
	ErrBusy = errors.New("cgroup still has processes")
)

// drainTimeout bounds how long RemovePod waits for killed processes to leave;
// a process in uninterruptible sleep can take a while.
const drainTimeout = 10 * time.Second

// Manager creates and removes pod cgroups under one root.
type Manager struct {
	root string
	v2   bool
}

// New returns a manager for pods under root (a cgroup path such as
// DefaultRoot, the same on every v1 controller), detecting v1 or v2.
func New(root string) (*Manager, error) {
	if root == "" {
		root = DefaultRoot
	}
	root = filepath.Clean(root)
	if !filepath.IsAbs(root) || root == "/" {
		return nil, fmt.Errorf("cgroups root %q: %w: must be an absolute path below /", root, ErrInvalidPath)
	}
	v2 := cgroups.IsCgroup2UnifiedMode()
	if !v2 {
		if _, err := cgroups.GetCgroupMounts(false); err != nil {
			return nil, fmt.Errorf("cgroups: find v1 controllers: %w", err)
		}
	}
	return &Manager{root: root, v2: v2}, nil
}

// Root is the cgroup path all pods live under.
func (m *Manager) Root() string { return m.root }

// V2 reports whether the host uses the unified (v2) hierarchy.
func (m *Manager) V2() bool { return m.v2 }

// QOSParent returns the cgroup of a QoS class: the root itself for
// Guaranteed, ROOT/burstable or ROOT/besteffort otherwise (any class other
// than Guaranteed and BestEffort counts as Burstable).
func (m *Manager) QOSParent(qos string) string {
	switch corev1.PodQOSClass(qos) {
	case corev1.PodQOSGuaranteed:
		return m.root
	case corev1.PodQOSBestEffort:
		return m.root + "/besteffort"
	default:
		return m.root + "/burstable"
	}
}

// PodPath returns the cgroup path of a pod of the given QoS class (a
// corev1.PodQOSClass value): QOSParent(qos)/pod<uid>.
func (m *Manager) PodPath(qos string, uid string) string {
	return m.QOSParent(qos) + "/pod" + uid
}

// checkPath makes sure path is a cgroup strictly below the root, so that a
// crafted UID cannot make EnsurePod or RemovePod touch other cgroups.
func (m *Manager) checkPath(path string) error {
	if path == "" || filepath.Clean(path) != path || !strings.HasPrefix(path, m.root+"/") {
		return fmt.Errorf("%q: %w: not below %s", path, ErrInvalidPath, m.root)
	}
	return nil
}

// controllers returns a cgroup manager for path on every controller.
func (m *Manager) controllers(path string, r *cgroups.Resources) (cgroups.Manager, error) {
	if r == nil {
		r = &cgroups.Resources{}
	}
	// No device rules: the pod's devices cgroup inherits its parent's, and
	// runc sets each container's.
	cg := &cgroups.Cgroup{Path: path, Resources: r}
	if m.v2 {
		return fs2.NewManager(cg, filepath.Join(unifiedMount, path))
	}
	return fs.NewManager(cg, nil)
}

// EnsurePod creates the pod cgroup at path (and its QoS parent) on every
// controller if needed, and applies r to it. A cgroup it created is removed
// again if applying r fails.
func (m *Manager) EnsurePod(path string, r *specs.LinuxResources) (retErr error) {
	if err := m.checkPath(path); err != nil {
		return err
	}
	if err := m.ensureParents(filepath.Dir(path)); err != nil {
		return err
	}
	res, err := m.toResources(r)
	if err != nil {
		return fmt.Errorf("pod cgroup %s: %w", path, err)
	}
	cm, err := m.controllers(path, res)
	if err != nil {
		return fmt.Errorf("pod cgroup %s: %w", path, err)
	}
	existed := cm.Exists()
	if err := cm.Apply(-1); err != nil {
		return fmt.Errorf("create pod cgroup %s: %w", path, err)
	}
	defer func() {
		if retErr != nil && !existed {
			cm.Destroy()
		}
	}()
	if err := cm.Set(res); err != nil {
		return fmt.Errorf("set resources of pod cgroup %s: %w", path, err)
	}
	return nil
}

// ensureParents creates the root and the QoS parent. BestEffort pods share
// the minimum cpu weight, as the kubelet's QoS container sets it.
func (m *Manager) ensureParents(parent string) error {
	for _, p := range []string{m.root, parent} {
		r := &cgroups.Resources{}
		if p == m.QOSParent(string(corev1.PodQOSBestEffort)) {
			r.CpuShares = MinShares
			if m.v2 {
				r.CpuWeight = cgroups.ConvertCPUSharesToCgroupV2Value(MinShares)
			}
		}
		cm, err := m.controllers(p, r)
		if err != nil {
			return fmt.Errorf("cgroup %s: %w", p, err)
		}
		if err := cm.Apply(-1); err != nil {
			return fmt.Errorf("create cgroup %s: %w", p, err)
		}
		if err := cm.Set(r); err != nil {
			return fmt.Errorf("set resources of cgroup %s: %w", p, err)
		}
		if p == parent {
			break
		}
	}
	return nil
}

// toResources converts runtime-spec resources to the cgroup library's,
// translating cpu shares to weight on v2 as runc does.
func (m *Manager) toResources(r *specs.LinuxResources) (*cgroups.Resources, error) {
	res := &cgroups.Resources{}
	if r == nil {
		return res, nil
	}
	if c := r.CPU; c != nil {
		if c.Shares != nil {
			res.CpuShares = *c.Shares
			if m.v2 {
				res.CpuWeight = cgroups.ConvertCPUSharesToCgroupV2Value(*c.Shares)
			}
		}
		if c.Quota != nil {
			res.CpuQuota = *c.Quota
		}
		if c.Period != nil {
			res.CpuPeriod = *c.Period
		}
		res.CpusetCpus, res.CpusetMems = c.Cpus, c.Mems
	}
	if mem := r.Memory; mem != nil {
		if mem.Limit != nil {
			res.Memory = *mem.Limit
		}
		if mem.Reservation != nil {
			res.MemoryReservation = *mem.Reservation
		}
		if mem.Swap != nil {
			res.MemorySwap = *mem.Swap
			if m.v2 {
				swap, err := cgroups.ConvertMemorySwapToCgroupV2Value(res.MemorySwap, res.Memory)
				if err != nil {
					return nil, err
				}
				res.MemorySwap = swap
			}
		}
	}
	if r.Pids != nil && r.Pids.Limit != nil {
		limit := *r.Pids.Limit
		res.PidsLimit = &limit
	}
	for _, h := range r.HugepageLimits {
		res.HugetlbLimit = append(res.HugetlbLimit, &cgroups.HugepageLimit{Pagesize: h.Pagesize, Limit: h.Limit})
	}
	if len(r.Unified) > 0 {
		if !m.v2 {
			return nil, cgroups.ErrV1NoUnified
		}
		res.Unified = r.Unified
	}
	return res, nil
}

// RemovePod kills every process left in the pod cgroup at path (containers'
// cgroups below it included) and removes it on every controller. A cgroup
// that does not exist is not an error.
func (m *Manager) RemovePod(path string) error {
	if err := m.checkPath(path); err != nil {
		return err
	}
	cm, err := m.controllers(path, nil)
	if err != nil {
		return fmt.Errorf("remove pod cgroup %s: %w", path, err)
	}
	if err := m.killAll(cm); err != nil {
		return fmt.Errorf("remove pod cgroup %s: %w", path, err)
	}
	if err := cm.Destroy(); err != nil {
		return fmt.Errorf("remove pod cgroup %s: %w", path, err)
	}
	return nil
}

// pids returns the processes in the cgroups at every controller path and
// below; on v1 a process may have been moved out of some hierarchies.
func pids(cm cgroups.Manager) ([]int, error) {
	var all []int
	for _, p := range cm.GetPaths() {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			continue
		}
		ps, err := cgroups.GetAllPids(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("list processes: %w", err)
		}
		all = append(all, ps...)
	}
	slices.Sort(all)
	return slices.Compact(all), nil
}

// killAll freezes the cgroup so nothing forks while it is being emptied,
// SIGKILLs every process, thaws, and waits until all have left, killing
// again whatever appeared meanwhile (there is no freezer on some hosts).
func (m *Manager) killAll(cm cgroups.Manager) error {
	ps, err := pids(cm)
	if err != nil || len(ps) == 0 {
		return err
	}
	frozen := m.freeze(cm)
	if ps, err = pids(cm); err != nil {
		return err
	}
	killErr := kill(ps)
	if frozen {
		if err := cm.Freeze(cgroups.Thawed); err != nil {
			return fmt.Errorf("thaw: %w", err)
		}
	}
	if killErr != nil {
		return killErr
	}
	deadline := time.Now().Add(drainTimeout)
	for {
		ps, err := pids(cm)
		if err != nil {
			return err
		}
		if len(ps) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %v", ErrBusy, ps)
		}
		if err := kill(ps); err != nil {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func kill(ps []int) error {
	for _, pid := range ps {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill %d: %w", pid, err)
		}
	}
	return nil
}

// freeze freezes the cgroup when the host can, reporting whether it did.
func (m *Manager) freeze(cm cgroups.Manager) bool {
	if !m.v2 {
		if p := cm.Path("freezer"); p == "" || !cgroups.PathExists(p) {
			return false
		}
	}
	return cm.Freeze(cgroups.Frozen) == nil
}

// UpdateQOS sets the QoS parents' cpu weight from the active pods as the
// kubelet's QoS container manager does: Burstable gets the shares of the sum
// of its pods' cpu requests (so that, as a group, they compete with the
// Guaranteed pods beside it by what they asked for), BestEffort the minimum.
func (m *Manager) UpdateQOS(pods []*corev1.Pod) error {
	var milli int64
	for _, pod := range pods {
		if QOSClass(pod) == corev1.PodQOSBurstable {
			reqs := podRequests(pod)
			milli += reqs.Cpu().MilliValue()
		}
	}
	for qos, shares := range map[corev1.PodQOSClass]uint64{
		corev1.PodQOSBurstable:  MilliCPUToShares(milli),
		corev1.PodQOSBestEffort: MinShares,
	} {
		parent := m.QOSParent(string(qos))
		r := &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: &shares}}
		res, err := m.toResources(r)
		if err != nil {
			return fmt.Errorf("QoS cgroup %s: %w", parent, err)
		}
		if err := m.ensureParents(parent); err != nil {
			return err
		}
		cm, err := m.controllers(parent, res)
		if err != nil {
			return fmt.Errorf("QoS cgroup %s: %w", parent, err)
		}
		if err := cm.Set(res); err != nil {
			return fmt.Errorf("set cpu shares of QoS cgroup %s: %w", parent, err)
		}
	}
	return nil
}
