// Package child is peapod-enter: the process that the daemon forks in a
// container's PID namespace and cgroups, and that joins the container's
// other namespaces, takes on its process's confinement and execs the
// command. It links only what it needs (no fmt, no encoding/json, no
// os/exec) because it starts for every exec probe.
package child

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/peapod-dev/peapod/internal/enter/plan"
)

// Main applies the plan read from fd 3 and execs the command; when it
// cannot, it writes why on fd 4 and exits 126.
//
// What differs per thread (the file system context after
// unshare(CLONE_FS), namespaces, credentials set by raw system calls,
// capabilities, no-new-privileges, the seccomp filter) is applied to the one
// locked thread that calls execve: the kernel keeps only that thread's state
// across execve. The order follows runc's setns init, so that a seccomp
// profile that runc accepts is accepted here too.
func Main() {
	runtime.LockOSThread()
	unix.CloseOnExec(plan.StatusFD)
	err := enter()
	unix.Write(plan.StatusFD, []byte(err.Error()))
	os.Exit(126)
}

func enter() error {
	// Run from a memfd, the process would be named after its descriptor.
	comm := []byte("peapod-enter\x00")
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&comm[0])), 0, 0, 0)
	// Until execve no process of the container may open our /proc entries
	// (our executable, our descriptors) or ptrace us.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return wrap("prctl(PR_SET_DUMPABLE)", err)
	}
	unix.CloseOnExec(plan.PidFD)
	f := os.NewFile(plan.PlanFD, "plan")
	p, err := plan.Decode(f)
	f.Close()
	if err != nil {
		return wrap("read exec plan", err)
	}
	if len(p.Args) == 0 {
		return errors.New("no command")
	}
	// Host paths first. cgroup v1 moves single threads: this one, which
	// execs, is all that has to be in the container's cgroups.
	tid := []byte(strconv.Itoa(unix.Gettid()))
	for _, dir := range p.CgroupsV1 {
		if err := os.WriteFile(dir+"/tasks", tid, 0); err != nil {
			return wrap("join cgroup "+dir, err)
		}
	}
	// The score is the process's, not the thread's.
	if p.OOMScoreAdj != plan.KeepOOMScoreAdj {
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.FormatInt(p.OOMScoreAdj, 10)), 0); err != nil {
			return wrap("set oom_score_adj", err)
		}
	}
	// Entering a mount namespace needs a file system context of our own.
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return wrap("unshare(CLONE_FS)", err)
	}
	if err := unix.Setns(plan.PidFD, int(p.Namespaces)); err != nil {
		return wrap("join the container's namespaces", err)
	}
	unix.Close(plan.PidFD)
	if p.SessionKeyring != "" {
		// Not the daemon's keyring; kernels without keyrings are tolerated,
		// as runc does.
		if _, err := unix.KeyctlJoinSessionKeyring(p.SessionKeyring); err != nil && !errors.Is(err, unix.ENOSYS) {
			return wrap("join session keyring", err)
		}
	}
	if err := fixStdio(int(p.UID)); err != nil {
		return err
	}
	for _, rl := range p.Rlimits {
		if err := unix.Prlimit(0, int(rl.Type), &unix.Rlimit{Cur: rl.Soft, Max: rl.Hard}, nil); err != nil {
			return wrap("set rlimit "+strconv.Itoa(int(rl.Type)), err)
		}
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return wrap("prctl(PR_SET_NO_NEW_PRIVS)", err)
		}
	}
	if p.Umask >= 0 {
		unix.Umask(int(p.Umask))
	}
	// Without no-new-privileges, loading a filter needs CAP_SYS_ADMIN: load
	// it before the capabilities go.
	if len(p.SeccompFilter) > 0 && !p.NoNewPrivileges {
		if err := loadSeccomp(p); err != nil {
			return err
		}
	}
	env, err := finalize(p)
	if err != nil {
		return err
	}
	name, err := lookPath(p.Args[0], env)
	if err != nil {
		return err
	}
	// As close to execve as possible: few system calls after it.
	if len(p.SeccompFilter) > 0 && p.NoNewPrivileges {
		if err := loadSeccomp(p); err != nil {
			return err
		}
	}
	return wrap("exec "+name, syscall.Exec(name, p.Args, env))
}

// finalize is runc's finalizeNamespace: working directory, environment,
// bounding set, user and groups, then the capability sets.
func finalize(p *plan.Plan) ([]string, error) {
	chdirLater := false
	if err := unix.Chdir(p.Cwd); err != nil {
		if !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EPERM) {
			return nil, wrap("chdir to cwd ("+strconv.Quote(p.Cwd)+") set in config.json failed", err)
		}
		// Maybe only the container's user may enter it.
		chdirLater = true
	}
	env, err := prepareEnv(p.Env, p.UID)
	if err != nil {
		return nil, err
	}
	for c := 0; c <= int(p.LastCap); c++ {
		if !slices.Contains(p.Caps.Bounding, uint32(c)) {
			if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
				return nil, wrap("drop capability "+strconv.Itoa(c)+" from the bounding set", err)
			}
		}
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return nil, wrap("prctl(PR_SET_KEEPCAPS)", err)
	}
	if err := setUser(p); err != nil {
		return nil, err
	}
	if chdirLater {
		if err := unix.Chdir(p.Cwd); err != nil {
			return nil, wrap("chdir to cwd ("+strconv.Quote(p.Cwd)+") set in config.json failed", err)
		}
	}
	// getcwd fails (ENOENT) for a directory outside the mount namespace's
	// root: never exec there (CVE-2024-21626).
	buf := make([]byte, unix.PathMax)
	if n, err := unix.Getcwd(buf); err != nil || n == 0 || buf[0] != '/' {
		return nil, errors.New("current working directory is outside of container mount namespace root -- possible container breakout detected")
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return nil, wrap("prctl(PR_SET_KEEPCAPS)", err)
	}
	if err := setCaps(p.Caps); err != nil {
		return nil, err
	}
	return env, nil
}

// setUser sets the groups, gid and uid of this thread only: raw system
// calls, as Go's wrappers would change every thread, and only this one
// survives execve.
func setUser(p *plan.Plan) error {
	groups := p.Groups
	var ptr unsafe.Pointer
	if len(groups) > 0 {
		ptr = unsafe.Pointer(&groups[0])
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(groups)), uintptr(ptr), 0); e != 0 {
		return wrap("setgroups", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGID, uintptr(p.GID), 0, 0); e != 0 {
		return wrap("setgid "+strconv.Itoa(int(p.GID)), e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETUID, uintptr(p.UID), 0, 0); e != 0 {
		return wrap("setuid "+strconv.Itoa(int(p.UID)), e)
	}
	return nil
}

// setCaps sets this thread's effective, permitted and inheritable sets, then
// its ambient set; like runc, a capability that cannot be raised in the
// ambient set is skipped.
func setCaps(c plan.Caps) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	for _, n := range c.Effective {
		data[n/32].Effective |= 1 << (n % 32)
	}
	for _, n := range c.Permitted {
		data[n/32].Permitted |= 1 << (n % 32)
	}
	for _, n := range c.Inheritable {
		data[n/32].Inheritable |= 1 << (n % 32)
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return wrap("set capabilities", err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return wrap("clear ambient capabilities", err)
	}
	for _, n := range c.Ambient {
		_ = unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(n), 0, 0)
	}
	return nil
}

// loadSeccomp installs the filter on this thread.
func loadSeccomp(p *plan.Plan) error {
	f := p.SeccompFilter
	if len(f)%8 != 0 || len(f)/8 > 0xffff {
		return errors.New("malformed seccomp filter")
	}
	prog := unix.SockFprog{Len: uint16(len(f) / 8), Filter: (*unix.SockFilter)(unsafe.Pointer(&f[0]))}
	if _, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(p.SeccompFlags), uintptr(unsafe.Pointer(&prog))); e != 0 {
		return wrap("load seccomp filter", e)
	}
	runtime.KeepAlive(f)
	return nil
}

// fixStdio gives the container's user its stdout and stderr, as runc does,
// so that it can reopen them (/dev/stdout) when it is not root.
func fixStdio(uid int) error {
	for fd := 0; fd <= 2; fd++ {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return wrap("stat fd "+strconv.Itoa(fd), err)
		}
		if int(st.Uid) == uid || st.Mode&unix.S_IFMT == unix.S_IFCHR {
			continue
		}
		if err := unix.Fchown(fd, uid, -1); err != nil && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EROFS) {
			return wrap("chown fd "+strconv.Itoa(fd), err)
		}
	}
	return nil
}

// prepareEnv is runc's: NAME=VALUE entries, the last of duplicates kept,
// and HOME from the container's /etc/passwd (or /) when missing or empty.
func prepareEnv(env []string, uid uint32) ([]string, error) {
	out := make([]string, 0, len(env)+1)
	saw := make(map[string]bool, len(env))
	home := false
	for i := len(env) - 1; i >= 0; i-- {
		kv := env[i]
		k, v, ok := strings.Cut(kv, "=")
		switch {
		case !ok:
			return nil, errors.New("invalid environment variable: missing '='")
		case k == "":
			return nil, errors.New("invalid environment variable: name cannot be empty")
		case strings.IndexByte(kv, 0) >= 0:
			return nil, errors.New("invalid environment variable " + strconv.Quote(k) + ": contains nul byte (\\x00)")
		case saw[k]:
			continue
		}
		saw[k] = true
		if k == "HOME" {
			if v == "" {
				continue
			}
			home = true
		}
		out = append(out, kv)
	}
	slices.Reverse(out)
	if !home {
		out = append(out, "HOME="+userHome(uid))
	}
	return out, nil
}

// userHome looks uid up in the container's /etc/passwd.
func userHome(uid uint32) string {
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return "/"
	}
	want := strconv.FormatUint(uint64(uid), 10)
	for _, line := range strings.Split(string(b), "\n") {
		// name:password:uid:gid:gecos:home:shell
		f := strings.Split(line, ":")
		if len(f) >= 6 && f[2] == want && f[5] != "" {
			return f[5]
		}
	}
	return "/"
}

// lookPath is os/exec's LookPath (which runc uses) over the command's PATH,
// with the same errors.
func lookPath(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		if err := executable(file); err != nil {
			return "", errors.New("exec: " + strconv.Quote(file) + ": " + err.Error())
		}
		return file, nil
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if executable(p) == nil {
			if !filepath.IsAbs(p) {
				return "", errors.New("exec: " + strconv.Quote(file) + ": cannot run executable found relative to current directory")
			}
			return p, nil
		}
	}
	return "", errors.New("exec: " + strconv.Quote(file) + ": executable file not found in $PATH")
}

func executable(path string) error {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return unix.EISDIR
	}
	return unix.Faccessat(unix.AT_FDCWD, path, unix.X_OK, unix.AT_EACCESS)
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return errors.New(what + ": " + err.Error())
}
