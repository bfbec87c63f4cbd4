package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// preflight stops the daemon at once, naming what is missing and how to
// install it, instead of failing later on the first pod.
func preflight(o *Options) error {
	var errs []error
	if os.Geteuid() != 0 {
		errs = append(errs, errors.New("peapod serve must run as root: it creates namespaces, mounts, cgroups and network devices"))
	}
	runc, err := exec.LookPath(o.Runc)
	if err != nil {
		errs = append(errs, fmt.Errorf("runc not found (--runc %q): install it with `apt-get install runc`", o.Runc))
	} else {
		o.Runc = runc
	}
	if fs, err := os.ReadFile("/proc/filesystems"); err != nil || !bytes.Contains(fs, []byte("\toverlay\n")) {
		errs = append(errs, errors.New("the kernel has no overlayfs: load it with `modprobe overlay`"))
	}
	for _, b := range []*string{&o.PauseBinary, &o.MonitorBinary, &o.EnterBinary} {
		p, err := besideExecutable(*b)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		*b = p
	}
	return errors.Join(errs...)
}

// besideExecutable resolves a helper binary: an absolute path as given, a bare
// name next to the running peapod binary (go build -o DIR/ ./cmd/... puts all
// three there).
func besideExecutable(name string) (string, error) {
	p := name
	if !filepath.IsAbs(name) {
		exe, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("locate the peapod executable: %w", err)
		}
		p = filepath.Join(filepath.Dir(exe), name)
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not found at %s: build it with `go build -o DIR/ ./cmd/...` (all the binaries in one directory)", filepath.Base(name), p)
	}
	return p, nil
}
