// Package enter runs a process inside a running container without runc:
// the lean exec path of ExecSync and exec probes.
//
// `runc exec` costs about 25 ms of CPU (a large Go binary started twice, the
// bundle parsed, the seccomp profile compiled); a probe every second in 50
// pods would need more than a core. Here a container's process is prepared
// once (NewProcess: a plan, the seccomp profile compiled) and its init
// process opened once (OpenTarget: a pidfd, its cgroup files). Commands are
// started by peapod-enter (cmd/peapod-enter), a small fork server in C that
// the daemon starts once: for each command it forks a child into the
// container's PID namespace, which joins the container's cgroups and other
// namespaces, applies the process's rlimits, oom_score_adj, umask, working
// directory, user and groups, capabilities, no-new-privileges and seccomp
// filter in runc's order, and execs the command. What this cannot
// reproduce exactly is refused with ErrUnsupported, and the caller uses
// runc exec.
package enter

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/peapod-dev/peapod/internal/enter/plan"
	"github.com/peapod-dev/peapod/internal/seccomp"
)

// ErrUnsupported marks a container or process that this path cannot confine
// exactly as runc would; the caller falls back to runc exec.
var ErrUnsupported = errors.New("not supported by the lean exec path")

// waitDelay bounds how long output is drained after the process exits, when
// a child it left behind still holds the pipes (as runc exec's caller does).
const waitDelay = 2 * time.Second

// Target is a running container's init process, opened once for all the
// commands run in it: a pidfd (which never reaches another process, however
// PIDs are reused) and its cgroups, opened for joining.
type Target struct {
	pidf *os.File
	// cgroups are the files that join the process's cgroups, and join
	// them open for writing.
	cgroups []string
	join    []*os.File
}

// OpenTarget opens the container's init process pid, after checking that it
// is in the container's cgroup cgroupsPath (runc's cgroupsPath form).
func OpenTarget(pid int, cgroupsPath string) (_ *Target, retErr error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ENOSYS) {
			return nil, fmt.Errorf("pidfd_open: %w", ErrUnsupported)
		}
		return nil, fmt.Errorf("open container process %d: %w", pid, err)
	}
	t := &Target{pidf: os.NewFile(uintptr(pidfd), "pidfd")}
	defer func() {
		if retErr != nil {
			t.Close()
		}
	}()
	if t.cgroups, err = containerCgroups(pid, cgroupsPath); err != nil {
		return nil, err
	}
	for _, file := range t.cgroups {
		f, err := os.OpenFile(file, os.O_WRONLY, 0)
		if err != nil {
			return nil, fmt.Errorf("open cgroup: %w", err)
		}
		t.join = append(t.join, f)
	}
	// The process was alive after its cgroups were read through its PID, so
	// that PID was not reused by then: the pidfd is the container's process.
	if err := t.alive(); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Target) alive() error {
	if err := unix.PidfdSendSignal(int(t.pidf.Fd()), 0, nil, 0); err != nil {
		return fmt.Errorf("container process: %w", err)
	}
	return nil
}

// Close releases the pidfd and the cgroups.
func (t *Target) Close() error {
	for _, f := range t.join {
		f.Close()
	}
	return t.pidf.Close()
}

// Request is one command to run in a running container.
type Request struct {
	// Helper is peapod-enter; Target the container's init process and
	// Process its process, which is run with Args instead.
	Helper  *Helper
	Target  *Target
	Process *Process
	Args    []string
	Stdout  io.Writer
	Stderr  io.Writer
}

// Run runs the command and returns its exit code (128+signal when a signal
// ended it). When ctx ends first the process is killed and the error wraps
// ctx.Err().
func Run(ctx context.Context, r Request) (int, error) {
	if err := r.Target.alive(); err != nil {
		return -1, err
	}
	p := r.Process.plan
	p.Args = r.Args
	p.Cgroups = r.Target.cgroups
	req := plan.Request{Cgroups: uint32(len(r.Target.join))}
	if r.Process.joinPID {
		req.Flags |= plan.FlagJoinPID
	}
	fds := []int{plan.FDPidfd: int(r.Target.pidf.Fd())}
	for _, f := range r.Target.join {
		fds = append(fds, int(f.Fd()))
	}
	code, err := run(ctx, r, req, &p, fds)
	runtime.KeepAlive(r.Target)
	return code, err
}

// run has peapod-enter fork the child for req with the descriptors fds,
// whose first FDFixed are filled in here, and waits for it.
func run(ctx context.Context, r Request, req plan.Request, p *plan.Plan, fds []int) (int, error) {
	srv, err := r.Helper.server()
	if err != nil {
		return -1, err
	}
	var closers []*os.File
	defer func() {
		for _, f := range closers {
			f.Close()
		}
	}()
	pipe := func() (rd, wr *os.File, err error) {
		if rd, wr, err = os.Pipe(); err == nil {
			closers = append(closers, rd, wr)
		}
		return rd, wr, err
	}
	outR, outW, err := pipe()
	if err != nil {
		return -1, fmt.Errorf("stdout pipe: %w", err)
	}
	errR, errW, err := pipe()
	if err != nil {
		return -1, fmt.Errorf("stderr pipe: %w", err)
	}
	// The status pipe is read once the child is reaped: its message, if
	// any, is in the pipe by then, and nobody else holds the write end.
	var status [2]int
	if err := unix.Pipe2(status[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return -1, fmt.Errorf("status pipe: %w", err)
	}
	statusR, statusW := os.NewFile(uintptr(status[0]), "status"), os.NewFile(uintptr(status[1]), "status")
	closers = append(closers, statusR, statusW)
	fds[plan.FDStdin] = int(r.Helper.devNull.Fd())
	fds[plan.FDStdout] = int(outW.Fd())
	fds[plan.FDStderr] = int(errW.Fd())
	fds[plan.FDStatus] = status[1]

	c, st := srv.start(ctx, req, p, fds)
	for _, f := range []*os.File{outW, errW, statusW} {
		f.Close()
	}
	if st.err != nil {
		if errors.Is(st.err, plan.ErrTooLarge) {
			return -1, fmt.Errorf("%w: %w", st.err, ErrUnsupported)
		}
		return -1, fmt.Errorf("start command through peapod-enter: %w", st.err)
	}
	defer st.pidfd.Close()

	var copies sync.WaitGroup
	for _, c := range []struct {
		dst io.Writer
		src *os.File
	}{{r.Stdout, outR}, {r.Stderr, errR}} {
		copies.Add(1)
		go func() {
			defer copies.Done()
			_, _ = io.Copy(c.dst, c.src)
		}()
	}
	kill := func() { _ = unix.PidfdSendSignal(int(st.pidfd.Fd()), unix.SIGKILL, nil, 0) }
	var exit exitResult
	killed := false
	select {
	case exit = <-c.exited:
	case <-ctx.Done():
		// A pidfd never reaches a reused PID.
		kill()
		killed = true
		exit = <-c.exited
	}
	if exit.err != nil {
		// Nobody can reap it now: it must not run on unseen.
		kill()
		return -1, fmt.Errorf("wait for the command: %w", exit.err)
	}
	msg := make([]byte, 4096)
	n, _ := unix.Read(status[0], msg)
	msg = msg[:max(n, 0)]
	// Output is drained until EOF, or for waitDelay when a process the
	// command left behind still holds the pipes (as with runc exec).
	drained := make(chan struct{})
	go func() { copies.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(waitDelay):
		outR.Close()
		errR.Close()
		<-drained
	}
	switch {
	case killed:
		return -1, fmt.Errorf("exec in container: %w", ctx.Err())
	case len(msg) > 0:
		return -1, fmt.Errorf("exec failed: %s", bytes.TrimSpace(msg))
	case exit.status.Signaled():
		return 128 + int(exit.status.Signal()), nil
	default:
		return exit.status.ExitStatus(), nil
	}
}

// Process is a container's process turned into a plan once, for every
// command run in the container (a probe execs every period).
type Process struct {
	plan    plan.Plan // without Args and Cgroups
	joinPID bool      // the daemon forks into the container's PID namespace
}

// NewProcess prepares the process of container id's bundle, its seccomp
// profile compiled. It fails with ErrUnsupported when this path cannot
// confine the process exactly as runc would.
func NewProcess(id string, s *specs.Spec) (*Process, error) {
	if s == nil || s.Process == nil || s.Linux == nil {
		return nil, errors.New("container bundle has no process or linux section")
	}
	p := s.Process
	switch {
	case p.Terminal:
		return nil, fmt.Errorf("terminal: %w", ErrUnsupported)
	case p.ApparmorProfile != "":
		return nil, fmt.Errorf("AppArmor profile: %w", ErrUnsupported)
	case p.SelinuxLabel != "":
		return nil, fmt.Errorf("SELinux label: %w", ErrUnsupported)
	case p.Capabilities == nil:
		return nil, fmt.Errorf("no capabilities section: %w", ErrUnsupported)
	case p.IOPriority != nil || p.Scheduler != nil || p.ExecCPUAffinity != nil:
		return nil, fmt.Errorf("I/O priority, scheduler or CPU affinity: %w", ErrUnsupported)
	case s.Linux.Personality != nil:
		return nil, fmt.Errorf("personality: %w", ErrUnsupported)
	}
	filter, flags, err := compileSeccomp(s.Linux.Seccomp)
	if err != nil {
		return nil, err
	}
	last, err := lastCap()
	if err != nil {
		return nil, err
	}
	pl := plan.Plan{
		Env:    p.Env,
		Cwd:    p.Cwd,
		UID:    p.User.UID,
		GID:    p.User.GID,
		Groups: p.User.AdditionalGids,
		Umask:  -1,
		Caps: plan.Caps{
			Bounding:    capNumbers(p.Capabilities.Bounding, last),
			Effective:   capNumbers(p.Capabilities.Effective, last),
			Permitted:   capNumbers(p.Capabilities.Permitted, last),
			Inheritable: capNumbers(p.Capabilities.Inheritable, last),
			Ambient:     capNumbers(p.Capabilities.Ambient, last),
		},
		LastCap:         uint32(last),
		NoNewPrivileges: p.NoNewPrivileges,
		OOMScoreAdj:     plan.KeepOOMScoreAdj,
		// runc gives every process of a container created without
		// --no-new-keyring (peapod never passes it) the container's keyring.
		SessionKeyring: "_ses." + id,
		SeccompFlags:   flags,
		SeccompFilter:  filter,
	}
	if p.User.Umask != nil {
		pl.Umask = int64(*p.User.Umask)
	}
	if p.OOMScoreAdj != nil {
		pl.OOMScoreAdj = int64(*p.OOMScoreAdj)
	}
	if pl.Cwd == "" {
		pl.Cwd = "/"
	}
	for _, rl := range p.Rlimits {
		t, ok := rlimitTypes[rl.Type]
		if !ok {
			return nil, fmt.Errorf("unknown rlimit %q", rl.Type)
		}
		pl.Rlimits = append(pl.Rlimits, plan.Rlimit{Type: uint32(t), Soft: rl.Soft, Hard: rl.Hard})
	}
	joinPID := false
	for _, ns := range s.Linux.Namespaces {
		switch ns.Type {
		case specs.PIDNamespace:
			joinPID = true
		case specs.NetworkNamespace:
			pl.Namespaces |= unix.CLONE_NEWNET
		case specs.IPCNamespace:
			pl.Namespaces |= unix.CLONE_NEWIPC
		case specs.UTSNamespace:
			pl.Namespaces |= unix.CLONE_NEWUTS
		case specs.MountNamespace:
			pl.Namespaces |= unix.CLONE_NEWNS
		case specs.CgroupNamespace:
			pl.Namespaces |= unix.CLONE_NEWCGROUP
		case specs.TimeNamespace:
			// setns(CLONE_NEWTIME) needs a process that shares its
			// memory with none, and peapod-enter's children share the
			// server's until they exec.
			return nil, fmt.Errorf("time namespace: %w", ErrUnsupported)
		default:
			return nil, fmt.Errorf("%s namespace: %w", ns.Type, ErrUnsupported)
		}
	}
	if pl.Namespaces&unix.CLONE_NEWNS == 0 {
		return nil, fmt.Errorf("container without its own mount namespace: %w", ErrUnsupported)
	}
	return &Process{plan: pl, joinPID: joinPID}, nil
}

// compileSeccomp compiles the container's profile into a filter as the
// kernel reads it; none when there is no profile or it turns seccomp off,
// as runc reads it.
func compileSeccomp(cfg *specs.LinuxSeccomp) ([]byte, uint64, error) {
	prog, err := seccomp.Compile(cfg)
	if err != nil {
		return nil, 0, fmt.Errorf("seccomp profile: %v: %w", err, ErrUnsupported)
	}
	if prog == nil {
		return nil, 0, nil
	}
	out := make([]byte, 0, 8*len(prog.Filter))
	for _, i := range prog.Filter {
		out = binary.NativeEndian.AppendUint16(out, i.Code)
		out = append(out, i.Jt, i.Jf)
		out = binary.NativeEndian.AppendUint32(out, i.K)
	}
	return out, uint64(prog.Flags), nil
}

var rlimitTypes = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE,
	"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_RTTIME": unix.RLIMIT_RTTIME, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK": unix.RLIMIT_STACK,
}

// containerCgroups reads the cgroups of process pid (/proc/PID/cgroup),
// after checking that the process is in cgroupsPath, and returns the files
// that join them: cgroup.procs of the cgroup v2 one first, then tasks of
// each cgroup v1 one.
func containerCgroups(pid int, cgroupsPath string) ([]string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil, fmt.Errorf("read cgroups of container process %d: %w", pid, err)
	}
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	var v2, v1 []string
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		// hierarchy-ID:controllers:path
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		key := hierarchyKey(strings.Split(parts[1], ","))
		m, ok := mounts[key]
		if !ok {
			// A hierarchy that is not mounted cannot be joined, nor
			// would runc join it.
			continue
		}
		rel, ok := strings.CutPrefix(parts[2], m.root)
		if !ok {
			return nil, fmt.Errorf("cgroup %s of process %d is outside the mount at %s", parts[2], pid, m.dir)
		}
		if parts[2] == cgroupsPath {
			in = true
		}
		dir := filepath.Join(m.dir, rel)
		if parts[0] == "0" && parts[1] == "" {
			v2 = append(v2, filepath.Join(dir, "cgroup.procs"))
		} else {
			v1 = append(v1, filepath.Join(dir, "tasks"))
		}
	}
	if !in {
		return nil, fmt.Errorf("process %d is not in the container's cgroup %s (the container has exited)", pid, cgroupsPath)
	}
	return append(v2, v1...), nil
}

type cgroupMount struct{ dir, root string }

var (
	mountsOnce sync.Once
	mountsMap  map[string]cgroupMount
	mountsErr  error
)

// cgroupMounts returns the host's cgroup mounts by hierarchy key, read once:
// cgroup hierarchies are mounted at boot.
func cgroupMounts() (map[string]cgroupMount, error) {
	mountsOnce.Do(func() {
		var infos []*mountinfo.Info
		if infos, mountsErr = mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2")); mountsErr == nil {
			mountsMap = cgroupMountsFrom(infos)
		} else {
			mountsErr = fmt.Errorf("read cgroup mounts: %w", mountsErr)
		}
	})
	return mountsMap, mountsErr
}

// cgroupMountsFrom keys cgroup mounts by hierarchy: "" for cgroup v2, the
// sorted controllers (or name=) of a v1 hierarchy; the first mount wins.
func cgroupMountsFrom(infos []*mountinfo.Info) map[string]cgroupMount {
	out := map[string]cgroupMount{}
	for _, m := range infos {
		var key string
		if m.FSType == "cgroup" {
			var subs []string
			for _, o := range strings.Split(m.VFSOptions, ",") {
				if strings.HasPrefix(o, "name=") || v1Controllers[o] {
					subs = append(subs, o)
				}
			}
			key = hierarchyKey(subs)
		}
		if _, seen := out[key]; !seen {
			out[key] = cgroupMount{dir: m.Mountpoint, root: strings.TrimSuffix(m.Root, "/")}
		}
	}
	return out
}

// hierarchyKey identifies a hierarchy by its sorted controllers (or name=).
func hierarchyKey(subs []string) string {
	var keep []string
	for _, s := range subs {
		if s != "" {
			keep = append(keep, s)
		}
	}
	slices.Sort(keep)
	return strings.Join(keep, ",")
}

var v1Controllers = map[string]bool{
	"cpu": true, "cpuacct": true, "cpuset": true, "memory": true, "devices": true, "freezer": true,
	"net_cls": true, "net_prio": true, "blkio": true, "perf_event": true, "hugetlb": true, "pids": true,
	"rdma": true, "misc": true,
}
