package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/peapod-dev/peapod/internal/dirs"
)

// assertNoLeaks checks that nothing a pod had is left on the machine: processes,
// runc containers, mounts, network namespaces, veths, IP leases, iptables rules
// and cgroups. It polls briefly because teardown finishes asynchronously after
// the API object disappears.
func (d *daemon) assertNoLeaks() {
	d.t.Helper()
	var leaks []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		leaks = d.leaks()
		if len(leaks) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, l := range leaks {
		d.t.Errorf("leaked: %s", l)
	}
}

func (d *daemon) leaks() []string {
	ds, err := dirs.New(d.root)
	if err != nil {
		return []string{err.Error()}
	}
	var leaks []string
	leaks = append(leaks, leakedProcesses()...)
	if out, err := exec.Command("runc", "--root", ds.RuncRoot(), "list", "-q").Output(); err == nil && strings.TrimSpace(string(out)) != "" {
		leaks = append(leaks, "runc containers: "+strings.Join(strings.Fields(string(out)), " "))
	}
	leaks = append(leaks, mountsUnder(d.root, ds.Run)...)
	if ents, _ := os.ReadDir(ds.Netns()); len(ents) > 0 {
		for _, e := range ents {
			leaks = append(leaks, "netns "+filepath.Join(ds.Netns(), e.Name()))
		}
	}
	if out, _ := exec.Command("ip", "-o", "link", "show", "master", e2eBridge).Output(); strings.TrimSpace(string(out)) != "" {
		leaks = append(leaks, "veth on "+e2eBridge+": "+strings.TrimSpace(string(out)))
	}
	filepath.WalkDir(ds.Root+"/cni/ipam", func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() && strings.HasPrefix(e.Name(), subnetPrefix()) {
			leaks = append(leaks, "IP lease "+p)
		}
		return nil
	})
	if out, _ := exec.Command("iptables-save", "-t", "nat").Output(); strings.Contains(string(out), subnetPrefix()) {
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, subnetPrefix()) && strings.Contains(l, "/32") {
				leaks = append(leaks, "iptables: "+l)
			}
		}
	}
	leaks = append(leaks, podCgroups()...)
	return leaks
}

// leakedProcesses finds processes of our binaries or inside our cgroup root.
func leakedProcesses() []string {
	var leaks []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		exe, _ := os.Readlink(p + "/exe")
		if strings.HasPrefix(exe, binDir+"/peapod-") {
			leaks = append(leaks, "process "+filepath.Base(p)+" "+exe)
			continue
		}
		cg, _ := os.ReadFile(p + "/cgroup")
		if strings.Contains(string(cg), ":"+e2eCgroupRoot+"/") {
			cmd, _ := os.ReadFile(p + "/cmdline")
			leaks = append(leaks, "process "+filepath.Base(p)+" in pod cgroup: "+strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	return leaks
}

func mountsUnder(prefixes ...string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return []string{err.Error()}
	}
	defer f.Close()
	var leaks []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			continue
		}
		mp := fields[4]
		for _, p := range prefixes {
			if mp == p || strings.HasPrefix(mp, p+"/") {
				// The netns directory itself is made a private mount point; only its entries count.
				if filepath.Base(mp) == "netns" {
					continue
				}
				leaks = append(leaks, "mount "+mp)
			}
		}
	}
	return leaks
}

// podCgroups lists pod or container cgroups left under the e2e cgroup root on
// any hierarchy (v1 controllers and the unified one).
func podCgroups() []string {
	var leaks []string
	hier, _ := filepath.Glob("/sys/fs/cgroup/*" + e2eCgroupRoot)
	if _, err := os.Stat("/sys/fs/cgroup" + e2eCgroupRoot); err == nil {
		hier = append(hier, "/sys/fs/cgroup"+e2eCgroupRoot)
	}
	for _, h := range hier {
		filepath.WalkDir(h, func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() && strings.HasPrefix(e.Name(), "pod") {
				leaks = append(leaks, "cgroup "+p)
				return filepath.SkipDir
			}
			return nil
		})
	}
	return leaks
}

// subnetPrefix is the e2e subnet's address prefix, "10.203.N.".
func subnetPrefix() string { return strings.TrimSuffix(e2eSubnet, "0/24") }
