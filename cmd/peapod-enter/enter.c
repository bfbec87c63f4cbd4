// peapod-enter: the process that the daemon forks in a container's PID
// namespace (and, on cgroup v2, its cgroup), and that joins the container's
// other namespaces, takes on its process's confinement and execs the
// command. See internal/enter for the daemon's side and internal/enter/plan
// for the plan it reads.
//
// It is C, run from an ELF constructor before the Go runtime starts (as
// runc's nsexec is), because it starts for every exec probe: a Go runtime
// would cost more than everything else it does (docs/decisions.md).
//
// The order follows runc's setns init, so that a seccomp profile that runc
// accepts is accepted here too. Error texts are Go's and runc's, so that
// ExecSync fails the same way through either path.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

// Descriptors, as in package plan.
enum { PLAN_FD = 3, STATUS_FD = 4, PID_FD = 5 };

// Bounds on what is read, as in package plan.
#define MAX_PLAN (16 << 20)
#define KEEP_OOM_SCORE_ADJ INT64_MIN

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
	struct strs cgroups_v1;
	uint64_t namespaces;
	uint64_t seccomp_flags;
	struct str seccomp_filter;
};

// fail reports why on the status descriptor (or, run by hand, stderr) and
// exits 126, as the daemon expects.
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
	if (write(STATUS_FD, msg, n) < 0) {
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
	s.s = malloc(n + 1);
	if (!s.s)
		fail("read exec plan: out of memory");
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
	v.v = calloc(n + 1, sizeof(*v.v));
	if (!v.v)
		fail("read exec plan: out of memory");
	for (; v.n < n && !d->err; v.n++)
		v.v[v.n] = dec_str(d);
	return v;
}

static struct u32s dec_u32s(struct decoder *d)
{
	struct u32s v = {0};
	size_t n = dec_count(d);
	v.v = calloc(n + 1, sizeof(*v.v));
	if (!v.v)
		fail("read exec plan: out of memory");
	for (; v.n < n && !d->err; v.n++)
		v.v[v.n] = (uint32_t)dec_uint(d);
	return v;
}

static int read_full(int fd, void *buf, size_t n)
{
	char *p = buf;
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0) {
			errno = 0; // EOF
			return -1;
		}
		p += r;
		n -= r;
	}
	return 0;
}

static void read_failed(void)
{
	if (errno == 0)
		fail("read exec plan: unexpected EOF");
	fail("read exec plan: %s", errstr(errno));
}

// read_plan reads the length-prefixed record that plan.Encode wrote.
static void read_plan(struct plan *p)
{
	uint64_t n = 0;
	unsigned s = 0;
	for (int i = 0;; i++) {
		unsigned char c;
		if (read_full(PLAN_FD, &c, 1) < 0)
			read_failed();
		if (i == 9 && c > 1)
			fail("read exec plan: varint overflows a 64-bit integer");
		n |= (uint64_t)(c & 0x7f) << s;
		if (c < 0x80)
			break;
		s += 7;
	}
	if (n > MAX_PLAN)
		fail("read exec plan: plan too large");
	unsigned char *b = malloc(n ? n : 1);
	if (!b)
		fail("read exec plan: out of memory");
	if (read_full(PLAN_FD, b, n) < 0)
		read_failed();
	close(PLAN_FD);

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
	p->rlimits = calloc(p->n_rlimits + 1, sizeof(*p->rlimits));
	if (!p->rlimits)
		fail("read exec plan: out of memory");
	for (size_t i = 0; i < p->n_rlimits && !d.err; i++) {
		p->rlimits[i].type = (uint32_t)dec_uint(&d);
		p->rlimits[i].soft = dec_uint(&d);
		p->rlimits[i].hard = dec_uint(&d);
	}
	p->oom_score_adj = dec_int(&d);
	p->keyring = dec_str(&d);
	p->cgroups_v1 = dec_strs(&d);
	p->namespaces = dec_uint(&d);
	p->seccomp_flags = dec_uint(&d);
	p->seccomp_filter = dec_str(&d);
	if (!d.err && d.left != 0)
		d.err = "trailing bytes";
	if (d.err)
		fail("read exec plan: malformed plan: %s", d.err);
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

// user_home looks uid up in the container's /etc/passwd.
static char *user_home(uint32_t uid)
{
	FILE *f = fopen("/etc/passwd", "re");
	if (!f)
		return "/";
	char want[16];
	snprintf(want, sizeof(want), "%u", uid);
	char *line = NULL, *home = "/";
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, f)) >= 0) {
		if (n > 0 && line[n - 1] == '\n')
			line[n - 1] = 0;
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
			home = strdup(field[5]);
			if (!home)
				fail("out of memory");
			break;
		}
	}
	free(line);
	fclose(f);
	return home;
}

// prepare_env is runc's: NAME=VALUE entries, the last of duplicates kept,
// and HOME from the container's /etc/passwd (or /) when missing or empty.
static char **prepare_env(const struct plan *p)
{
	const struct strs *env = &p->env;
	char **out = calloc(env->n + 2, sizeof(char *));
	int *keep = calloc(env->n + 1, sizeof(int));
	if (!out || !keep)
		fail("out of memory");
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
		char *kv = malloc(strlen(h) + 6);
		if (!kv)
			fail("out of memory");
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
		gid_t groups[NGROUPS_MAX];
		int n = getgroups(NGROUPS_MAX, groups);
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
		char *p = malloc(dlen + file->len + 3);
		if (!p)
			fail("out of memory");
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
		free(p);
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
	gid_t *groups = calloc(p->groups.n + 1, sizeof(gid_t));
	if (!groups)
		fail("out of memory");
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

// enter applies the plan read from fd 3 and execs the command; when it
// cannot, it writes why on fd 4 and exits 126.
__attribute__((constructor)) static void enter(void)
{
	// Run from a memfd, the process would be named after its descriptor.
	(void)prctl(PR_SET_NAME, "peapod-enter", 0, 0, 0);
	// Until execve no process of the container may open our /proc entries
	// (our executable, our descriptors) or ptrace us.
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		fail("prctl(PR_SET_DUMPABLE): %s", errstr(errno));
	(void)fcntl(STATUS_FD, F_SETFD, FD_CLOEXEC);
	(void)fcntl(PID_FD, F_SETFD, FD_CLOEXEC);

	struct plan p;
	memset(&p, 0, sizeof(p));
	read_plan(&p);
	if (p.args.n == 0)
		fail("no command");

	// Host paths first. cgroup v1 moves single threads; there is only one.
	char tid[16];
	snprintf(tid, sizeof(tid), "%ld", (long)syscall(SYS_gettid));
	for (size_t i = 0; i < p.cgroups_v1.n; i++) {
		char what[PATH_MAX + 32], path[PATH_MAX + 8];
		snprintf(what, sizeof(what), "join cgroup %s", p.cgroups_v1.v[i].s);
		snprintf(path, sizeof(path), "%s/tasks", p.cgroups_v1.v[i].s);
		write_file(path, tid, what);
	}
	if (p.oom_score_adj != KEEP_OOM_SCORE_ADJ) {
		char v[24];
		snprintf(v, sizeof(v), "%lld", (long long)p.oom_score_adj);
		write_file("/proc/self/oom_score_adj", v, "set oom_score_adj");
	}
	// Entering a mount namespace needs a file system context of our own.
	if (unshare(CLONE_FS) < 0)
		fail("unshare(CLONE_FS): %s", errstr(errno));
	if (setns(PID_FD, (int)p.namespaces) < 0)
		fail("join the container's namespaces: %s", errstr(errno));
	close(PID_FD);
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
	char **argv = calloc(p.args.n + 1, sizeof(char *));
	if (!argv)
		fail("out of memory");
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
