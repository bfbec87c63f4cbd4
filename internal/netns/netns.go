// Package netns creates network namespaces that outlive every process in them,
// pinned by a bind mount of the namespace file as `ip netns add` and containerd
// do, so that CNI can set a pod's network up before its pause process starts.
package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// ErrNotNetns is returned by Do when the path is not a network namespace.
var ErrNotNetns = errors.New("not a network namespace")

// New creates a network namespace pinned at dir/name and returns that path.
// It fails if dir/name already exists.
func New(dir, name string) (path string, retErr error) {
	path, err := createPin(dir, name, "create netns")
	if err != nil {
		return "", err
	}
	defer func() {
		if retErr != nil {
			os.Remove(path)
		}
	}()

	// unshare moves the calling thread into the new namespace, so it runs on
	// a locked thread that is moved back afterwards. Leaving it locked would
	// make Go discard the thread, but not the main thread, which Go keeps: the
	// process would then show the pod's namespace as its own and keep it
	// alive. Only if moving back fails does the thread stay locked.
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(threadNetns())
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("create netns: open current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("create netns: unshare: %w", err)
			return
		}
		merr := unix.Mount(threadNetns(), path, "none", unix.MS_BIND, "")
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
		if merr != nil {
			merr = fmt.Errorf("create netns: bind mount on %s: %w", path, merr)
		}
		errc <- merr
	}()
	if err := <-errc; err != nil {
		return "", err
	}
	return path, nil
}

// createPin creates the empty file dir/name that New and Pin bind a network
// namespace on, in the shared directory dir; it fails if dir/name exists.
// op names the caller in errors.
func createPin(dir, name, op string) (string, error) {
	if name == "" || name != filepath.Base(name) || name == "." || name == ".." {
		return "", fmt.Errorf("%s: invalid name %q", op, name)
	}
	if err := makeSharedDir(dir); err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return "", fmt.Errorf("create netns pin %s: %w", path, err)
	}
	f.Close()
	return path, nil
}

// makeSharedDir makes dir a mount point with shared propagation, as iproute2
// does for /run/netns: unmounting a pin then also drops the copies of it in
// mount namespaces created meanwhile, so those cannot keep the netns alive.
func makeSharedDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create netns dir: %w", err)
	}
	err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("make %s a shared mount: %w", dir, err)
	}
	// EINVAL: dir is not a mount point yet.
	if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind mount %s on itself: %w", dir, err)
	}
	if err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make %s a shared mount: %w", dir, err)
	}
	return nil
}

// ReleaseDir undoes what New did to dir once it holds no pin: it unmounts the
// shared bind mount of dir on itself and removes dir. It reports whether dir
// was released; a dir that still holds pins is left as it is.
func ReleaseDir(dir string) (bool, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("release netns dir: %w", err)
	}
	if len(ents) > 0 {
		return false, nil
	}
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return false, fmt.Errorf("release netns dir: unmount %s: %w", dir, err)
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("release netns dir: %w", err)
	}
	return true, nil
}

// Remove unpins the namespace at path and removes the pin file. The namespace
// itself disappears once no process is left in it. Removing a path that is
// not pinned or does not exist is not an error.
func Remove(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil &&
		!errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove netns: unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns: %w", err)
	}
	return nil
}

// Do runs fn on an OS thread that has entered the network namespace at path;
// sockets fn opens belong to that namespace. The thread returns to the
// caller's namespace afterwards, or is discarded if it cannot.
func Do(path string, fn func() error) error {
	target, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open netns: %w", err)
	}
	defer target.Close()
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(target.Fd()), &st); err != nil {
		return fmt.Errorf("stat netns %s: %w", path, err)
	}
	if st.Type != unix.NSFS_MAGIC {
		return fmt.Errorf("%s: %w", path, ErrNotNetns)
	}

	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(threadNetns())
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns %s: %w", path, err)
			return
		}
		ferr := fn()
		// Leaving the thread locked on failure makes Go discard it.
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}

// threadNetns is the calling thread's network namespace file; /proc/self
// would name the main thread's.
func threadNetns() string {
	return "/proc/self/task/" + strconv.Itoa(unix.Gettid()) + "/ns/net"
}

// Pin pins the existing network namespace src (such as /proc/PID/ns/net of a
// process that made it) at dir/name, as New pins the one it creates, and
// returns that path. It fails if dir/name already exists.
func Pin(dir, name, src string) (string, error) {
	path, err := createPin(dir, name, "pin netns")
	if err != nil {
		return "", err
	}
	if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("pin netns %s on %s: %w", src, path, err)
	}
	return path, nil
}
