// peapod-enter: the daemon's fork server for commands run in containers.
// The daemon starts it once; for each request (a plan and descriptors, see
// internal/enter/plan) it forks a child into the container's PID namespace,
// and that child joins the container's cgroups and other namespaces, takes
// on its process's confinement and execs the command. The server reports
// each child's PID and pidfd once it has exec'd, then its wait status.
//
// Why a server in C, run from an ELF constructor before the Go runtime
// would start (as runc's nsexec is): exec probes start a process every
// period in every pod. A vfork of this small process costs a fraction of a
// fork of the daemon (whose descriptor table is copied, then closed again
// at exec) and of starting any program, let alone a Go runtime
// (docs/decisions.md).
//
// The child follows runc's setns init, so that a seccomp profile that runc
// accepts is accepted here too. Error texts are Go's and runc's, so that
// ExecSync fails the same way through either path.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

// The wire format, as in package plan (native byte order).
#define SERVER_FD 3 // the daemon's end of a SOCK_SEQPACKET pair
#define MAX_PLAN (128 << 10)
#define MAX_FDS 64
#define KEEP_OOM_SCORE_ADJ INT64_MIN

enum { REQ_JOIN_PID = 1 };

// A request is a header, then the encoded plan, with descriptors: stdin,
// stdout, stderr, status, the container's pidfd, then the file to write
// the child's PID to for each of its cgroups (cgroup.procs or tasks).
struct request {
	uint64_t id;
	uint32_t flags;
	uint32_t cgroups;
};

enum { REPLY_STARTED = 1, REPLY_EXITED = 2 };

// A reply: STARTED (id, pid or errno; the child's pidfd attached) once per
// request, EXITED (pid, wait status) once per child, always after its
// STARTED.
struct reply {
	uint32_t kind;
	int32_t err;
	uint64_t id;
	int32_t pid;
	int32_t status;
};

enum { FD_STDIN, FD_STDOUT, FD_STDERR, FD_STATUS, FD_PIDFD, FD_FIXED };

#define KEYCTL_JOIN_SESSION_KEYRING 1

struct str {
	char *s; // NUL-terminated copy
	size_t len;
};

struct strs {
	struct str *v;
	size_t n;
};

struct u32s {
	uint32_t *v;
	size_t n;
};

struct rlim {
	uint32_t type;
	uint64_t soft, hard;
};

// struct plan mirrors plan.Plan; fields are decoded in its order.
struct plan {
	struct strs args, env;
	struct str cwd;
	uint32_t uid, gid;
	struct u32s groups;
	int64_t umask;
	struct u32s bounding, effective, permitted, inheritable, ambient;
	uint32_t last_cap;
	int no_new_privs;
	struct rlim *rlimits;
	size_t n_rlimits;
	int64_t oom_score_adj;
	struct str keyring;
	struct strs cgroups;
	uint64_t namespaces;
	uint64_t seccomp_flags;
	struct str seccomp_filter;
};

// status_fd is where a child reports why it could not exec.
static int status_fd = -1;

// fail reports why on the status descriptor (or, in the server, stderr) and
// exits 126, as the daemon expects of a child.
__attribute__((noreturn, format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	char msg[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(msg))
		n = sizeof(msg) - 1;
	if (status_fd < 0 || write(status_fd, msg, n) < 0) {
		msg[n] = '\n';
		(void)!write(STDERR_FILENO, msg, n + 1);
	}
	_exit(126);
}

// errstr is Go's text for an errno: glibc's, lower-cased.
static const char *errstr(int err)
{
	static char buf[128];
	snprintf(buf, sizeof(buf), "%s", strerror(err));
	if (buf[0] >= 'A' && buf[0] <= 'Z')
		buf[0] += 'a' - 'A';
	return buf;
}

// quote is Go's strconv.Quote for the names in error texts.
static const char *quote(const char *s, size_t len)
{
	static char buf[1024];
	size_t o = 0;
	buf[o++] = '"';
	for (size_t i = 0; i < len && o < sizeof(buf) - 6; i++) {
		unsigned char c = s[i];
		const char *esc = NULL;
		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\a': esc = "\\a"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		case '\v': esc = "\\v"; break;
		}
		if (esc) {
			o += snprintf(buf + o, sizeof(buf) - o, "%s", esc);
		} else if (c < 0x20 || c == 0x7f) {
			o += snprintf(buf + o, sizeof(buf) - o, "\\x%02x", c);
		} else {
			buf[o++] = c;
		}
	}
	buf[o++] = '"';
	buf[o] = 0;
	return buf;
}

// --- memory -------------------------------------------------------------

// The child shares the server's memory until it execs (CLONE_VM and
// CLONE_VFORK: no page tables copied or torn down). It allocates only from
// this arena, which the server resets for every request, never from malloc,
// so that a child killed half-way leaves the server's heap intact.
#define ARENA_SIZE (4 << 20)
static struct {
	char *base;
	size_t used;
} arena;

// alloc_raw leaves the memory as it was; alloc zeroes it.
static void *alloc_raw(size_t n)
{
	size_t off = (arena.used + 15) & ~(size_t)15;
	if (off > ARENA_SIZE || n > ARENA_SIZE - off)
		fail("out of memory");
	arena.used = off + n;
	return arena.base + off;
}

static void *alloc(size_t n)
{
	return memset(alloc_raw(n), 0, n);
}

// --- the plan ---------------------------------------------------------

struct decoder {
	const unsigned char *b;
	size_t left;
	const char *err;
};

// uvarint is Go's binary.Uvarint.
static uint64_t dec_uint(struct decoder *d)
{
	uint64_t x = 0;
	unsigned s = 0;
	if (d->err)
		return 0;
	for (size_t i = 0; i < d->left && i < 10; i++) {
		unsigned char c = d->b[i];
		if (c < 0x80) {
			if (i == 9 && c > 1)
				break;
			d->b += i + 1;
			d->left -= i + 1;
			return x | (uint64_t)c << s;
		}
		x |= (uint64_t)(c & 0x7f) << s;
		s += 7;
	}
	d->err = "bad number";
	return 0;
}

static int64_t dec_int(struct decoder *d)
{
	uint64_t u = dec_uint(d);
	int64_t x = (int64_t)(u >> 1);
	return (u & 1) ? ~x : x;
}

// dec_count reads a length that must fit in what is left.
static size_t dec_count(struct decoder *d)
{
	uint64_t n = dec_uint(d);
	if (!d->err && n > d->left) {
		d->err = "bad length";
		return 0;
	}
	return d->err ? 0 : (size_t)n;
}

static struct str dec_str(struct decoder *d)
{
	struct str s = {0};
	size_t n = dec_count(d);
	if (d->err)
		return s;
	s.s = alloc(n + 1);
	memcpy(s.s, d->b, n);
	s.s[n] = 0;
	s.len = n;
	d->b += n;
	d->left -= n;
	return s;
}

static struct strs dec_strs(struct decoder *d)
{
	struct strs v = {0};
	size_t n = dec_count(d);
	v.v = alloc((n + 1) * sizeof(*v.v));
	for (; v.n < n && !d->err; v.n++)
		v.v[v.n] = dec_str(d);
	return v;
}

static struct u32s dec_u32s(struct decoder *d)
{
	struct u32s v = {0};
	size_t n = dec_count(d);
	v.v = alloc((n + 1) * sizeof(*v.v));
	for (; v.n < n && !d->err; v.n++)
		v.v[v.n] = (uint32_t)dec_uint(d);
	return v;
}

// decode_plan decodes the plan that plan.Plan.Append wrote.
static void decode_plan(struct plan *p, const unsigned char *b, size_t n)
{
	struct decoder d = {.b = b, .left = n};
	p->args = dec_strs(&d);
	p->env = dec_strs(&d);
	p->cwd = dec_str(&d);
	p->uid = (uint32_t)dec_uint(&d);
	p->gid = (uint32_t)dec_uint(&d);
	p->groups = dec_u32s(&d);
	p->umask = dec_int(&d);
	p->bounding = dec_u32s(&d);
	p->effective = dec_u32s(&d);
	p->permitted = dec_u32s(&d);
	p->inheritable = dec_u32s(&d);
	p->ambient = dec_u32s(&d);
	p->last_cap = (uint32_t)dec_uint(&d);
	p->no_new_privs = dec_uint(&d) != 0;
	p->n_rlimits = dec_count(&d);
	p->rlimits = alloc((p->n_rlimits + 1) * sizeof(*p->rlimits));
	for (size_t i = 0; i < p->n_rlimits && !d.err; i++) {
		p->rlimits[i].type = (uint32_t)dec_uint(&d);
		p->rlimits[i].soft = dec_uint(&d);
		p->rlimits[i].hard = dec_uint(&d);
	}
	p->oom_score_adj = dec_int(&d);
	p->keyring = dec_str(&d);
	p->cgroups = dec_strs(&d);
	p->namespaces = dec_uint(&d);
	p->seccomp_flags = dec_uint(&d);
	p->seccomp_filter = dec_str(&d);
	if (!d.err && d.left != 0)
		d.err = "trailing bytes";
	if (d.err)
		fail("malformed exec plan: %s", d.err);
}

// --- confinement ------------------------------------------------------

static int contains(const struct u32s *set, uint32_t v)
{
	for (size_t i = 0; i < set->n; i++)
		if (set->v[i] == v)
			return 1;
	return 0;
}

static void write_file(const char *path, const char *data, const char *what)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		fail("%s: open %s: %s", what, path, errstr(errno));
	if (write(fd, data, strlen(data)) < 0)
		fail("%s: write %s: %s", what, path, errstr(errno));
	close(fd);
}

static void load_seccomp(const struct plan *p)
{
	const struct str *f = &p->seccomp_filter;
	if (f->len % sizeof(struct sock_filter) != 0 || f->len / sizeof(struct sock_filter) > 0xffff)
		fail("malformed seccomp filter");
	struct sock_fprog prog = {
		.len = (unsigned short)(f->len / sizeof(struct sock_filter)),
		.filter = (struct sock_filter *)f->s,
	};
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, (unsigned long)p->seccomp_flags, &prog) < 0)
		fail("load seccomp filter: %s", errstr(errno));
}

// fix_stdio gives the container's user its stdout and stderr, as runc does,
// so that it can reopen them (/dev/stdout) when it is not root.
static void fix_stdio(uint32_t uid)
{
	for (int fd = 0; fd <= 2; fd++) {
		struct stat st;
		if (fstat(fd, &st) < 0)
			fail("stat fd %d: %s", fd, errstr(errno));
		if (st.st_uid == uid || S_ISCHR(st.st_mode))
			continue;
		if (fchown(fd, uid, -1) < 0 && errno != EPERM && errno != EROFS)
			fail("chown fd %d: %s", fd, errstr(errno));
	}
}

// read_passwd reads the container's /etc/passwd (as much as the arena
// holds); NULL when it cannot.
static char *read_passwd(void)
{
	if (arena.used + 4096 > ARENA_SIZE)
		return NULL;
	int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t room = ARENA_SIZE - arena.used - 32, n = 0;
	char *b = alloc_raw(room);
	ssize_t r;
	while (n < room - 1 && ((r = read(fd, b + n, room - 1 - n)) > 0 || (r < 0 && errno == EINTR)))
		if (r > 0)
			n += r;
	close(fd);
	b[n] = 0;
	arena.used -= room - (n + 1); // give back what was not read
	return b;
}

// user_home looks uid up in the container's /etc/passwd.
static char *user_home(uint32_t uid)
{
	char *line = read_passwd(), *home = "/";
	if (!line)
		return home;
	char want[16];
	snprintf(want, sizeof(want), "%u", uid);
	for (char *next; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		// name:password:uid:gid:gecos:home:shell
		char *field[6];
		int nf = 0;
		char *s = line;
		while (nf < 6) {
			field[nf++] = s;
			s = strchr(s, ':');
			if (!s)
				break;
			*s++ = 0;
		}
		if (nf == 6 && strcmp(field[2], want) == 0 && field[5][0]) {
			home = field[5];
			break;
		}
	}
	return home;
}

// prepare_env is runc's: NAME=VALUE entries, the last of duplicates kept,
// and HOME from the container's /etc/passwd (or /) when missing or empty.
static char **prepare_env(const struct plan *p)
{
	const struct strs *env = &p->env;
	char **out = alloc((env->n + 2) * sizeof(char *));
	int *keep = alloc((env->n + 1) * sizeof(int));
	int home = 0;
	for (size_t i = env->n; i-- > 0;) {
		const struct str *kv = &env->v[i];
		const char *eq = memchr(kv->s, '=', kv->len);
		if (!eq)
			fail("invalid environment variable: missing '='");
		size_t klen = eq - kv->s;
		if (klen == 0)
			fail("invalid environment variable: name cannot be empty");
		if (memchr(kv->s, 0, kv->len))
			fail("invalid environment variable %s: contains nul byte (\\x00)", quote(kv->s, klen));
		int saw = 0;
		for (size_t j = i + 1; j < env->n && !saw; j++)
			saw = strncmp(env->v[j].s, kv->s, klen + 1) == 0;
		if (saw)
			continue;
		// An empty HOME is dropped, and hides earlier ones.
		if (klen == 4 && strncmp(kv->s, "HOME", 4) == 0) {
			if (kv->len == 5) {
				continue;
			}
			home = 1;
		}
		keep[i] = 1;
	}
	size_t n = 0;
	for (size_t i = 0; i < env->n; i++)
		if (keep[i])
			out[n++] = env->v[i].s;
	if (!home) {
		const char *h = user_home(p->uid);
		char *kv = alloc(strlen(h) + 6);
		strcpy(kv, "HOME=");
		strcat(kv, h);
		out[n++] = kv;
	}
	out[n] = NULL;
	return out;
}

// executable is os/exec's check: a file, not a directory, that the
// effective user may execute.
static int executable(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return errno;
	if (S_ISDIR(st.st_mode))
		return EISDIR;
	if (syscall(SYS_faccessat2, AT_FDCWD, path, X_OK, AT_EACCESS) == 0)
		return 0;
	if (errno != ENOSYS && errno != EPERM)
		return errno;
	// Without faccessat2 (or where a seccomp profile refuses it), Go
	// checks the mode bits against the effective ids.
	uid_t uid = geteuid();
	mode_t bits = S_IXOTH;
	if (uid == 0)
		bits = S_IXUSR | S_IXGRP | S_IXOTH;
	else if (uid == st.st_uid)
		bits = S_IXUSR;
	else {
		int n = getgroups(0, NULL);
		gid_t *groups = alloc((n > 0 ? n : 1) * sizeof(gid_t));
		n = getgroups(n, groups);
		int in = getegid() == st.st_gid;
		for (int i = 0; i < n && !in; i++)
			in = groups[i] == st.st_gid;
		if (in)
			bits = S_IXGRP;
	}
	return (st.st_mode & bits) ? 0 : EACCES;
}

// look_path is os/exec's LookPath (which runc uses) over the command's
// PATH, with the same errors.
static const char *look_path(const struct str *file, char **env)
{
	if (memchr(file->s, 0, file->len))
		fail("exec: %s: %s", quote(file->s, file->len), errstr(EINVAL));
	if (strchr(file->s, '/')) {
		int err = executable(file->s);
		if (err)
			fail("exec: %s: %s", quote(file->s, file->len), errstr(err));
		return file->s;
	}
	const char *path = "";
	for (char **kv = env; *kv; kv++)
		if (strncmp(*kv, "PATH=", 5) == 0)
			path = *kv + 5;
	// An empty PATH has no directories; an empty entry is ".".
	for (const char *dir = path; *path;) {
		const char *end = strchrnul(dir, ':');
		size_t dlen = end - dir;
		char *p = alloc(dlen + file->len + 3);
		if (dlen == 0)
			strcpy(p, ".");
		else
			memcpy(p, dir, dlen), p[dlen] = 0;
		strcat(p, "/");
		strcat(p, file->s);
		if (executable(p) == 0) {
			if (p[0] != '/')
				fail("exec: %s: cannot run executable found relative to current directory", quote(file->s, file->len));
			return p;
		}
		if (!*end)
			break;
		dir = end + 1;
	}
	fail("exec: %s: executable file not found in $PATH", quote(file->s, file->len));
}

// set_user sets the groups, gid and uid by raw system calls: glibc's
// wrappers would signal every thread, and there is only this one.
static void set_user(const struct plan *p)
{
	gid_t *groups = alloc((p->groups.n + 1) * sizeof(gid_t));
	for (size_t i = 0; i < p->groups.n; i++)
		groups[i] = p->groups.v[i];
	if (syscall(SYS_setgroups, p->groups.n, groups) < 0)
		fail("setgroups: %s", errstr(errno));
	if (syscall(SYS_setgid, p->gid) < 0)
		fail("setgid %u: %s", p->gid, errstr(errno));
	if (syscall(SYS_setuid, p->uid) < 0)
		fail("setuid %u: %s", p->uid, errstr(errno));
}

// set_caps sets the effective, permitted and inheritable sets, then the
// ambient set; like runc, a capability that cannot be raised in the ambient
// set is skipped.
static void set_caps(const struct plan *p)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2] = {0};
	const struct u32s *sets[3] = {&p->effective, &p->permitted, &p->inheritable};
	for (int s = 0; s < 3; s++) {
		for (size_t i = 0; i < sets[s]->n; i++) {
			uint32_t c = sets[s]->v[i];
			if (c >= 64)
				continue;
			uint32_t bit = 1u << (c % 32);
			if (s == 0)
				data[c / 32].effective |= bit;
			else if (s == 1)
				data[c / 32].permitted |= bit;
			else
				data[c / 32].inheritable |= bit;
		}
	}
	if (syscall(SYS_capset, &hdr, data) < 0)
		fail("set capabilities: %s", errstr(errno));
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		fail("clear ambient capabilities: %s", errstr(errno));
	for (size_t i = 0; i < p->ambient.n; i++)
		(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, p->ambient.v[i], 0, 0);
}

// finalize is runc's finalizeNamespace: working directory, environment,
// bounding set, user and groups, then the capability sets.
static char **finalize(const struct plan *p)
{
	int chdir_later = 0;
	if (chdir(p->cwd.s) < 0) {
		if (errno != EACCES && errno != EPERM)
			fail("chdir to cwd (%s) set in config.json failed: %s", quote(p->cwd.s, p->cwd.len), errstr(errno));
		// Maybe only the container's user may enter it.
		chdir_later = 1;
	}
	char **env = prepare_env(p);
	for (uint32_t c = 0; c <= p->last_cap; c++) {
		if (!contains(&p->bounding, c) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0)
			fail("drop capability %u from the bounding set: %s", c, errstr(errno));
	}
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		fail("prctl(PR_SET_KEEPCAPS): %s", errstr(errno));
	set_user(p);
	if (chdir_later && chdir(p->cwd.s) < 0)
		fail("chdir to cwd (%s) set in config.json failed: %s", quote(p->cwd.s, p->cwd.len), errstr(errno));
	// getcwd gives no absolute path for a directory outside the mount
	// namespace's root: never exec there (CVE-2024-21626).
	char cwd[PATH_MAX];
	long n = syscall(SYS_getcwd, cwd, sizeof(cwd));
	if (n <= 0 || cwd[0] != '/')
		fail("current working directory is outside of container mount namespace root -- possible container breakout detected");
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		fail("prctl(PR_SET_KEEPCAPS): %s", errstr(errno));
	set_caps(p);
	return env;
}

// child applies the request's plan and execs the command; when it cannot,
// it writes why on the status descriptor and exits 126.
__attribute__((noreturn)) static void child(const unsigned char *msg, size_t len, const struct request *req, const int *fds, const sigset_t *mask)
{
	// The server's descriptors are close-on-exec; the signal mask is not
	// reset by execve.
	sigprocmask(SIG_SETMASK, mask, NULL);
	status_fd = fds[FD_STATUS];
	for (int fd = 0; fd <= 2; fd++)
		if (dup2(fds[FD_STDIN + fd], fd) < 0)
			fail("set up stdio: %s", errstr(errno));
	// Its own session: the daemon's terminal and signals stay its own.
	setsid();

	struct plan p;
	memset(&p, 0, sizeof(p));
	decode_plan(&p, msg, len);
	if (p.args.n == 0)
		fail("no command");
	const int *cgroups = fds + FD_FIXED;
	if (p.cgroups.n != req->cgroups)
		fail("malformed exec plan: %zu cgroup paths for %u descriptors", p.cgroups.n, req->cgroups);

	// Host side first: the cgroups, by writing our PID (which is also our
	// only thread's ID) to each cgroup.procs (v2) or tasks (v1) file.
	char pid[16];
	int n = snprintf(pid, sizeof(pid), "%ld", (long)syscall(SYS_gettid));
	for (size_t i = 0; i < req->cgroups; i++)
		if (write(cgroups[i], pid, n) < 0)
			fail("join cgroup %s: %s", p.cgroups.v[i].s, errstr(errno));
	if (p.oom_score_adj != KEEP_OOM_SCORE_ADJ) {
		char v[24];
		snprintf(v, sizeof(v), "%lld", (long long)p.oom_score_adj);
		write_file("/proc/self/oom_score_adj", v, "set oom_score_adj");
	}
	// Entering a mount namespace needs a file system context of our own.
	if (unshare(CLONE_FS) < 0)
		fail("unshare(CLONE_FS): %s", errstr(errno));
	if (setns(fds[FD_PIDFD], (int)p.namespaces) < 0)
		fail("join the container's namespaces: %s", errstr(errno));
	// Not the daemon's keyring; kernels without keyrings are tolerated, as
	// runc does.
	if (p.keyring.len > 0 && syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, p.keyring.s) < 0 && errno != ENOSYS)
		fail("join session keyring: %s", errstr(errno));
	fix_stdio(p.uid);
	for (size_t i = 0; i < p.n_rlimits; i++) {
		uint64_t rl[2] = {p.rlimits[i].soft, p.rlimits[i].hard}; // struct rlimit64
		if (syscall(SYS_prlimit64, 0, p.rlimits[i].type, rl, NULL) < 0)
			fail("set rlimit %u: %s", p.rlimits[i].type, errstr(errno));
	}
	if (p.no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fail("prctl(PR_SET_NO_NEW_PRIVS): %s", errstr(errno));
	if (p.umask >= 0)
		umask((mode_t)p.umask);
	// Without no-new-privileges, loading a filter needs CAP_SYS_ADMIN: load
	// it before the capabilities go.
	if (p.seccomp_filter.len > 0 && !p.no_new_privs)
		load_seccomp(&p);
	char **env = finalize(&p);
	const char *name = look_path(&p.args.v[0], env);
	char **argv = alloc((p.args.n + 1) * sizeof(char *));
	for (size_t i = 0; i < p.args.n; i++) {
		if (memchr(p.args.v[i].s, 0, p.args.v[i].len))
			fail("exec %s: %s", name, errstr(EINVAL));
		argv[i] = p.args.v[i].s;
	}
	// As close to execve as possible: no system call after it but execve.
	if (p.seccomp_filter.len > 0 && p.no_new_privs)
		load_seccomp(&p);
	execve(name, argv, env);
	fail("exec %s: %s", name, errstr(errno));
}

// --- the server -------------------------------------------------------

__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dprintf(STDERR_FILENO, "peapod-enter: %s\n", msg);
	_exit(1);
}

static void send_reply(const struct reply *r, int fd)
{
	struct iovec iov = {.iov_base = (void *)r, .iov_len = sizeof(*r)};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} c;
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	if (fd >= 0) {
		memset(&c, 0, sizeof(c));
		m.msg_control = c.buf;
		m.msg_controllen = sizeof(c.buf);
		struct cmsghdr *h = CMSG_FIRSTHDR(&m);
		h->cmsg_level = SOL_SOCKET;
		h->cmsg_type = SCM_RIGHTS;
		h->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(h), &fd, sizeof(int));
	}
	while (sendmsg(SERVER_FD, &m, MSG_NOSIGNAL) < 0) {
		if (errno == EINTR)
			continue;
		// The daemon is gone: so is the reason to run.
		_exit(0);
	}
}

// The child's stack: it runs on its own while the server waits.
#define CHILD_STACK (256 << 10)

struct child_args {
	unsigned char *msg;
	size_t len;
	const struct request *req;
	const int *fds;
	const sigset_t *mask;
};

static int child_main(void *arg)
{
	struct child_args *a = arg;
	child(a->msg, a->len, a->req, a->fds, a->mask);
}

// start forks the child for one request; it returns the child's PID, or
// -errno. The server waits until the child has exec'd or exited.
static long start(unsigned char *buf, size_t len, int *fds, int nfds, int own_pidns, const sigset_t *mask, char *stack, int *pidfd)
{
	struct request req;
	if (len < sizeof(req))
		return -EBADMSG;
	memcpy(&req, buf, sizeof(req));
	if (nfds != FD_FIXED + (int)req.cgroups)
		return -EBADMSG;
	// setns(CLONE_NEWPID) places our next child, not us.
	int join_pid = (req.flags & REQ_JOIN_PID) != 0;
	if (join_pid && setns(fds[FD_PIDFD], CLONE_NEWPID) < 0)
		return -errno;
	arena.used = 0;
	struct child_args a = {.msg = buf + sizeof(req), .len = len - sizeof(req), .req = &req, .fds = fds, .mask = mask};
	long pid = clone(child_main, stack + CHILD_STACK, CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &a, pidfd);
	int err = errno;
	if (join_pid && setns(own_pidns, CLONE_NEWPID) < 0)
		die("return to the daemon's PID namespace: %s", errstr(errno));
	return pid < 0 ? -err : pid;
}

// serve answers one request; it returns 0 when the daemon has gone.
static int serve(unsigned char *buf, int own_pidns, const sigset_t *mask, char *stack)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(MAX_FDS * sizeof(int))];
	} c;
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(struct request) + MAX_PLAN};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf, .msg_controllen = sizeof(c.buf)};
	ssize_t n = recvmsg(SERVER_FD, &m, MSG_CMSG_CLOEXEC);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 1;
	if (n < 0)
		die("read request: %s", errstr(errno));
	if (n == 0)
		return 0;
	int fds[MAX_FDS], nfds = 0;
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (int i = 0; i < k && nfds < MAX_FDS; i++)
			memcpy(&fds[nfds++], CMSG_DATA(h) + i * sizeof(int), sizeof(int));
	}
	struct reply r = {.kind = REPLY_STARTED};
	if (n >= (ssize_t)sizeof(struct request))
		memcpy(&r.id, buf, sizeof(r.id));
	int pidfd = -1;
	long pid = -EBADMSG;
	if (!(m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
		pid = start(buf, n, fds, nfds, own_pidns, mask, stack, &pidfd);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	if (pid < 0)
		r.err = -pid;
	else
		r.pid = pid;
	send_reply(&r, pidfd);
	if (pidfd >= 0)
		close(pidfd);
	return 1;
}

// reap reports every child that has exited.
static void reap(void)
{
	int st;
	pid_t pid;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		struct reply r = {.kind = REPLY_EXITED, .pid = pid, .status = st};
		send_reply(&r, -1);
	}
}

// main_server runs before main would: it serves until the daemon closes its
// end, and the Go runtime never starts.
__attribute__((constructor)) static void main_server(void)
{
	// Run from a memfd, the process would be named after its descriptor.
	(void)prctl(PR_SET_NAME, "peapod-enter", 0, 0, 0);
	// No process of a container may open our /proc entries (our
	// executable, our descriptors) or ptrace us or our children before
	// they exec.
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		die("prctl(PR_SET_DUMPABLE): %s", errstr(errno));
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		die("prctl(PR_SET_PDEATHSIG): %s", errstr(errno));
	int type;
	socklen_t tl = sizeof(type);
	if (getsockopt(SERVER_FD, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_SEQPACKET)
		die("fd %d is not the daemon's SOCK_SEQPACKET socket: it runs peapod-enter itself", SERVER_FD);
	if (fcntl(SERVER_FD, F_SETFD, FD_CLOEXEC) < 0)
		die("fcntl: %s", errstr(errno));
	int own_pidns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	if (own_pidns < 0)
		die("open /proc/self/ns/pid: %s", errstr(errno));
	sigset_t chld, mask;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &chld, &mask) < 0)
		die("sigprocmask: %s", errstr(errno));
	int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		die("signalfd: %s", errstr(errno));
	unsigned char *buf = malloc(sizeof(struct request) + MAX_PLAN);
	// Below the child's stack, a guard page: it shares our memory.
	char *stack = mmap(NULL, 4096 + CHILD_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack != MAP_FAILED && mprotect(stack, 4096, PROT_NONE) == 0)
		stack += 4096;
	arena.base = mmap(NULL, ARENA_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!buf || stack == MAP_FAILED || arena.base == MAP_FAILED)
		die("out of memory");
	for (;;) {
		struct pollfd pfd[2] = {{.fd = SERVER_FD, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll: %s", errstr(errno));
		}
		if (pfd[1].revents) {
			struct signalfd_siginfo si[16];
			while (read(sfd, si, sizeof(si)) > 0)
				;
			reap();
		}
		if (pfd[0].revents && !serve(buf, own_pidns, &mask, stack))
			_exit(0);
	}
}
