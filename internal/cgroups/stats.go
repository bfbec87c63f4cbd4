package cgroups

import (
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/fs"
	"github.com/opencontainers/cgroups/fs2"
)

// Stats is a cgroup's usage as CRI ContainerStats and PodSandboxStats report it.
type Stats struct {
	CPUUsageNanos         uint64 // cumulative CPU time
	MemoryUsageBytes      uint64
	MemoryWorkingSetBytes uint64 // usage minus inactive file pages, as cadvisor computes it
	MemoryRSSBytes        uint64
	MemoryLimitBytes      uint64 // 0 when unlimited
	PageFaults            uint64
	MajorPageFaults       uint64
	Pids                  uint64
}

// Stats reads the usage of the cgroup at path (a pod's, or a container's
// below it). It returns ErrNotFound when the cgroup does not exist.
func (m *Manager) Stats(path string) (*Stats, error) {
	cm, err := m.existing(path)
	if err != nil {
		return nil, err
	}
	st, err := cm.Stats(&cgroups.StatsOptions{Controllers: cgroups.CPU | cgroups.Memory | cgroups.Pids})
	if err != nil {
		return nil, fmt.Errorf("read stats of cgroup %s: %w", path, err)
	}
	// Keys of memory.stat: hierarchical totals on v1, plain names on v2.
	prefix := "total_"
	rss := "total_rss"
	if m.v2 {
		prefix, rss = "", "anon"
	}
	mem := st.MemoryStats
	s := &Stats{
		CPUUsageNanos:    st.CpuStats.CpuUsage.TotalUsage,
		MemoryUsageBytes: mem.Usage.Usage,
		MemoryRSSBytes:   mem.Stats[rss],
		PageFaults:       mem.Stats[prefix+"pgfault"],
		MajorPageFaults:  mem.Stats[prefix+"pgmajfault"],
		Pids:             st.PidsStats.Current,
	}
	if inactive := mem.Stats[prefix+"inactive_file"]; inactive < s.MemoryUsageBytes {
		s.MemoryWorkingSetBytes = s.MemoryUsageBytes - inactive
	}
	// The library reports "no limit" as the largest value the kernel accepts.
	if l := mem.Usage.Limit; l != 0 && l < 1<<62 {
		s.MemoryLimitBytes = l
	}
	return s, nil
}

// OOMKilled reports whether the kernel's OOM killer killed a process of the
// cgroup at path (or of one below it): the oom_kill counter of
// memory.oom_control (v1) or memory.events (v2).
func (m *Manager) OOMKilled(path string) (bool, error) {
	cm, err := m.existing(path)
	if err != nil {
		return false, err
	}
	var n uint64
	if m.v2 {
		// memory.events counts the cgroups below too.
		n, err = fs2.OOMKillCount(cm.Path(""))
	} else {
		// v1 counts a kill only in the victim's own cgroup.
		err = filepath.WalkDir(cm.Path("memory"), func(p string, d iofs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return err
			}
			c, err := fs.OOMKillCount(p)
			n += c
			return err
		})
	}
	if err != nil {
		return false, fmt.Errorf("read OOM kills of cgroup %s: %w", path, err)
	}
	return n > 0, nil
}

// existing returns a manager for the cgroup at path (anything below the
// root, so containers' cgroups too) if it exists.
func (m *Manager) existing(path string) (cgroups.Manager, error) {
	if err := m.checkPath(path); err != nil {
		return nil, err
	}
	cm, err := m.controllers(path, nil)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", path, err)
	}
	probe := cm.Path("")
	if !m.v2 {
		probe = cm.Path("memory")
	}
	if _, err := os.Stat(filepath.Clean(probe)); probe == "" || errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("cgroup %s: %w", path, ErrNotFound)
	}
	return cm, nil
}
