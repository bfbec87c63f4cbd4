// Package e2e drives a live peapod daemon with the real kubectl, as a user would.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

var (
	binDir     string // peapod, peapod-pause, peapod-monitor built from this tree
	busyboxTar string // a busybox root filesystem for `peapod image import`
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if err := prerequisites(); err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "e2e: missing prerequisite:", err)
			return 1
		}
		fmt.Fprintln(os.Stderr, "e2e: skipping, missing prerequisite:", err)
		return 0
	}
	tmp, err := os.MkdirTemp("", "peapod-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	// Readable by everyone: one test runs peapod as an unprivileged user.
	if err := os.Chmod(tmp, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	binDir = filepath.Join(tmp, "bin")
	if out, err := exec.Command("bash", "../../scripts/build.sh", binDir).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: build: %v\n%s", err, out)
		return 1
	}
	busyboxTar = filepath.Join(tmp, "busybox.tar")
	if out, err := exec.Command("bash", "../../scripts/busybox-rootfs.sh", busyboxTar).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: busybox rootfs: %v\n%s", err, out)
		return 1
	}
	code := m.Run()
	// The daemons leave the bridge of this run and the network's node-wide
	// masquerade chain for its subnet, as they would on a real node.
	_ = exec.Command("ip", "link", "del", e2eBridge).Run()
	chain := "PEAPOD-MASQ-" + e2eBridge
	_ = exec.Command("iptables", "-w", "-t", "nat", "-D", "POSTROUTING", "-s", e2eSubnet, "-m", "comment",
		"--comment", "peapod: masquerade the pods of "+e2eBridge, "-j", chain).Run()
	_ = exec.Command("iptables", "-w", "-t", "nat", "-F", chain).Run()
	_ = exec.Command("iptables", "-w", "-t", "nat", "-X", chain).Run()
	// And the run's cgroup root with its QoS parents, empty once every pod
	// is gone (the leak checks fail a test that leaves a pod's cgroup).
	removeCgroupRoot(e2eCgroupRoot)
	return code
}

// removeCgroupRoot removes the empty cgroup directories of root in every
// hierarchy, deepest first.
func removeCgroupRoot(root string) {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + root)
	dirs = append(dirs, "/sys/fs/cgroup"+root)
	for _, dir := range dirs {
		var all []string
		filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				all = append(all, path)
			}
			return nil
		})
		for i := len(all) - 1; i >= 0; i-- {
			_ = os.Remove(all[i])
		}
	}
}

func prerequisites() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("the end-to-end tests run as root")
	}
	for _, b := range []struct{ name, pkg string }{
		{"kubectl", "kubectl v1.32"},
		{"runc", "apt-get install runc"},
		{"ip", "apt-get install iproute2"},
		{"iptables", "apt-get install iptables"},
	} {
		if _, err := exec.LookPath(b.name); err != nil {
			return fmt.Errorf("%s not on PATH (%s)", b.name, b.pkg)
		}
	}
	for _, f := range []struct{ path, pkg string }{
		{"/usr/lib/cni/bridge", "apt-get install containernetworking-plugins"},
		{"/bin/busybox", "apt-get install busybox-static"},
	} {
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("%s missing (%s)", f.path, f.pkg)
		}
	}
	return nil
}
