package enter

import (
	"os"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
)

func TestCgroupMounts(t *testing.T) {
	info := `24 31 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
25 24 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
26 24 0:24 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
29 24 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:14 - cgroup cgroup rw,cpu,cpuacct
30 24 0:28 /sub /mnt/my\040memory rw shared:15 - cgroup cgroup rw,memory
`
	infos, err := mountinfo.GetMountsFromReader(strings.NewReader(info), mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		t.Fatal(err)
	}
	m := cgroupMountsFrom(infos)
	want := map[string]cgroupMount{
		"":             {dir: "/sys/fs/cgroup/unified"},
		"name=systemd": {dir: "/sys/fs/cgroup/systemd"},
		"cpu,cpuacct":  {dir: "/sys/fs/cgroup/cpu,cpuacct"},
		"memory":       {dir: "/mnt/my memory", root: "/sub"},
	}
	if len(m) != len(want) {
		t.Errorf("mounts %v, want %v", m, want)
	}
	for k, w := range want {
		if m[k] != w {
			t.Errorf("hierarchy %q: %+v, want %+v", k, m[k], w)
		}
	}
	// /proc/PID/cgroup lists controllers in its own order.
	if hierarchyKey([]string{"cpuacct", "cpu"}) != "cpu,cpuacct" {
		t.Error("hierarchy key depends on the order of controllers")
	}
}

// The daemon's own process is in no container cgroup: Run must refuse it
// rather than enter whatever process now has a reused PID.
func TestContainerCgroupsRefusesOtherProcess(t *testing.T) {
	if _, err := containerCgroups(os.Getpid(), "/peapod/no-such-container"); err == nil {
		t.Error("a process outside the container's cgroup was accepted")
	}
}
