/*
 * The privilege-drop sequence every daemon goes through (see sandbox.h).
 * libcap for capabilities, raw syscalls for Landlock (no library needed),
 * libseccomp for the system-call allow-list.
 */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/landlock.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <seccomp.h>

#include "log.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZER_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZER_BUILD 1
#endif
#endif

int
sandbox_lookup_user(const char *name, unsigned *uid, unsigned *gid)
{
	struct passwd pwd, *res = NULL;
	char buf[4096];

	if (getpwnam_r(name, &pwd, buf, sizeof(buf), &res) != 0 || res == NULL)
		return -1;
	*uid = res->pw_uid;
	*gid = res->pw_gid;
	return 0;
}

static void
drop_user(const char *name)
{
	unsigned uid, gid;
	gid_t g;

	if (sandbox_lookup_user(name, &uid, &gid) == -1)
		fatalx("sandbox: unknown user '%s'", name);
	if (uid == 0)
		fatalx("sandbox: refusing to 'drop' to root ('%s')", name);
	g = (gid_t)gid;
	if (setgroups(1, &g) == -1)
		fatal("sandbox: setgroups");
	if (setresgid(gid, gid, gid) == -1)
		fatal("sandbox: setresgid %u", gid);
	if (setresuid(uid, uid, uid) == -1)
		fatal("sandbox: setresuid %u", uid);
	/* Make sure there is no way back. */
	if (setuid(0) != -1 || geteuid() == 0)
		fatalx("sandbox: could regain root after dropping to %s", name);
}

static int
kept(const int *keep, size_t nkeep, cap_value_t v)
{
	size_t i;

	for (i = 0; i < nkeep; i++)
		if (keep[i] == v)
			return 1;
	return 0;
}

/*
 * The bounding set: nothing outside the kept ones, ever again.  Done while
 * still privileged (it needs CAP_SETPCAP); capabilities already out of the
 * set (a systemd unit narrowed it) are left alone, since dropping even
 * those needs CAP_SETPCAP.
 */
static void
drop_bound(const int *keep, size_t nkeep)
{
	cap_value_t v;

	for (v = 0; v <= CAP_LAST_CAP; v++) {
		if (!CAP_IS_SUPPORTED(v) || kept(keep, nkeep, v) || cap_get_bound(v) != 1)
			continue;
		if (cap_drop_bound(v) == -1)
			fatal("sandbox: dropping capability %d from the bounding set", v);
	}
}

/* Effective and permitted: exactly the kept ones; no ambient ones. */
static void
set_caps(const int *keep, size_t nkeep)
{
	cap_t caps = cap_init();	/* everything clear */
	size_t i;

	if (caps == NULL)
		fatal("sandbox: cap_init");
	for (i = 0; i < nkeep; i++) {
		cap_value_t c = (cap_value_t)keep[i];

		if (cap_set_flag(caps, CAP_PERMITTED, 1, &c, CAP_SET) == -1 ||
		    cap_set_flag(caps, CAP_EFFECTIVE, 1, &c, CAP_SET) == -1)
			fatal("sandbox: cap_set_flag");
	}
	if (cap_set_proc(caps) == -1)
		fatal("sandbox: cap_set_proc");
	cap_free(caps);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) == -1 &&
	    errno != EINVAL)
		fatal("sandbox: clearing ambient capabilities");
}

/* --- Landlock ----------------------------------------------------------------- */

static int
ll_create_ruleset(const struct landlock_ruleset_attr *attr, size_t size, unsigned flags)
{
	return (int)syscall(__NR_landlock_create_ruleset, attr, size, flags);
}

static void
ll_allow(int ruleset, const char *dir, unsigned long long access)
{
	struct landlock_path_beneath_attr pb = { .allowed_access = access };

	if ((pb.parent_fd = open(dir, O_PATH | O_CLOEXEC)) == -1)
		fatal("sandbox: landlock: %s", dir);
	if (syscall(__NR_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) == -1)
		fatal("sandbox: landlock rule for %s", dir);
	close(pb.parent_fd);
}

/*
 * The ruleset, with a rule per path: -1 when the kernel has no Landlock.
 * Made before the user is dropped when it can be (sandbox_enter), so that
 * a path the new user cannot reach (a 0700 store dir of root's that the
 * viewer opened before it dropped) still gets its rule; the rule grants
 * nothing the user's own permissions refuse.
 */
static int
landlock_ruleset(const struct sandbox *sb)
{
	/* Everything ABI 1 knows how to refuse (ABI 2/3 add refer/truncate). */
	unsigned long long fs_all = LANDLOCK_ACCESS_FS_EXECUTE |
	    LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |
	    LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_REMOVE_DIR |
	    LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR |
	    LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |
	    LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO |
	    LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM;
	struct landlock_ruleset_attr attr = { .handled_access_fs = fs_all };
	int abi, rs;

	abi = ll_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 1) {
		log_warnx("sandbox: this kernel has no Landlock (%s): filesystem "
		    "access is NOT restricted", strerror(errno));
		return -1;
	}
	if ((rs = ll_create_ruleset(&attr, sizeof(attr), 0)) == -1)
		fatal("sandbox: landlock_create_ruleset");
	if (sb->rw_dir)
		ll_allow(rs, sb->rw_dir, fs_all & ~LANDLOCK_ACCESS_FS_EXECUTE);
	if (sb->remove_dir)
		ll_allow(rs, sb->remove_dir, LANDLOCK_ACCESS_FS_REMOVE_FILE);
	if (sb->ro_file)
		ll_allow(rs, sb->ro_file, LANDLOCK_ACCESS_FS_READ_FILE);
	for (size_t i = 0; sb->ro_paths && sb->ro_paths[i]; i++) {
		struct stat st;

		if (stat(sb->ro_paths[i], &st) == -1)
			continue;	/* nothing there to read */
		ll_allow(rs, sb->ro_paths[i], S_ISDIR(st.st_mode) ?
		    LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR :
		    LANDLOCK_ACCESS_FS_READ_FILE);
	}
#ifdef SANITIZER_BUILD
	/* LeakSanitizer reads /proc/self at exit. */
	ll_allow(rs, "/proc", LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR);
#endif
	return rs;
}

/* A ruleset made by sandbox_enter before the drop; -2: none made. */
static int prepared_ruleset = -2;

static void
landlock(const struct sandbox *sb)
{
	int rs = prepared_ruleset != -2 ? prepared_ruleset : landlock_ruleset(sb);

	prepared_ruleset = -2;
	if (rs == -1)
		return;
	if (syscall(__NR_landlock_restrict_self, rs, 0) == -1)
		fatal("sandbox: landlock_restrict_self");
	close(rs);
}

/* --- seccomp ------------------------------------------------------------------ */

static void
sigsys_handler(int sig, siginfo_t *si, void *ctx)
{
	char msg[96];
	int n;

	(void)sig;
	(void)ctx;
	n = snprintf(msg, sizeof(msg), "sandbox: forbidden system call %d; exiting\n",
	    si->si_syscall);
	if (n > 0)
		(void)!write(STDERR_FILENO, msg, (size_t)n);
	_exit(159);
}

#define ALLOW(ctx, name) do {						\
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(name), 0) < 0) \
			fatalx("sandbox: seccomp rule for " #name);	\
	} while (0)

/* What every daemon does on a libev loop with glibc's malloc. */
static void
allow_common(scmp_filter_ctx ctx)
{
	static const char *names[] = {
		"read", "write", "readv", "writev", "close", "fcntl", "dup",
		"recvfrom", "recvmsg", "sendto", "sendmsg", "shutdown",
		"getsockopt", "setsockopt", "getsockname", "getpeername",
		"socketpair", "connect",
		"epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl", "poll",
		"ppoll", "select", "pselect6",
		"clock_gettime", "clock_getres", "gettimeofday", "time",
		"nanosleep", "clock_nanosleep", "getrandom",
		"brk", "mmap", "munmap", "mremap", "madvise", "mprotect",
		"rt_sigreturn", "rt_sigprocmask", "rt_sigaction", "sigaltstack",
		"exit", "exit_group", "getpid", "gettid", "getuid", "geteuid",
		"getgid", "getegid", "getppid", "wait4", "futex", "sched_yield",
		"unlink", "unlinkat", "newfstatat", "fstat", "lseek",
		"eventfd2", "signalfd4", "pipe2", "restart_syscall",
		"uname",
		/* Only what Landlock lets through: the config file on SIGHUP. */
		"openat", "open",
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int nr = seccomp_syscall_resolve_name(names[i]);

		if (nr == __NR_SCMP_ERROR)
			continue;	/* not on this architecture */
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0) < 0)
			fatalx("sandbox: seccomp rule for %s", names[i]);
	}
}

/*
 * proxyd's CA signer (proxyd/signer.c) holds the CA key and does nothing but
 * recv a request on its socket, sign, send the answer: no socket(), no
 * open(), no poll, no signals beyond returning from one, and no executable
 * memory.  fstat/newfstatat: stdio's first write to stderr; getpid: the log
 * prefix.  Not allow_common: that list is for event-loop daemons.
 */
static void
allow_signer(scmp_filter_ctx ctx)
{
	static const char *names[] = {
		"read", "write", "recvfrom", "recvmsg", "sendto", "sendmsg",
		"close", "exit", "exit_group", "rt_sigreturn", "restart_syscall",
		"brk", "munmap", "mremap", "madvise",
		"getrandom", "clock_gettime", "gettimeofday", "time", "getpid",
		"fstat", "newfstatat",
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int nr = seccomp_syscall_resolve_name(names[i]);

		if (nr == __NR_SCMP_ERROR)
			continue;	/* not on this architecture */
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0) < 0)
			fatalx("sandbox: seccomp rule for %s", names[i]);
	}
	/* malloc's large blocks, never executable. */
	if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
	    SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)) < 0)
		fatalx("sandbox: seccomp rule for mmap");
}

/* 1 if the filter was installed. */
static int
seccomp_filter(enum sandbox_profile profile)
{
	struct sigaction sa;
	scmp_filter_ctx ctx;

	if (profile == SANDBOX_REDIRECTORD)
		return 0;	/* capabilities are its fence; see docs/architecture.md */
#ifdef SANITIZER_BUILD
	log_warnx("sandbox: sanitizer build: seccomp filter NOT installed");
	return 0;
#endif
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sigsys_handler;
	sa.sa_flags = SA_SIGINFO;
	if (sigaction(SIGSYS, &sa, NULL) == -1)
		fatal("sandbox: sigaction SIGSYS");
	if ((ctx = seccomp_init(SCMP_ACT_TRAP)) == NULL)
		fatalx("sandbox: seccomp_init");
	if (profile == SANDBOX_SIGNER) {
		allow_signer(ctx);
		goto load;
	}
	allow_common(ctx);
	/*
	 * Signals to ourselves only (raise(), abort()): code running in a
	 * parser must not signal another process of the same uid — or, were
	 * the daemon ever left root, any process.  Our pid, taken now: these
	 * profiles are for processes that do not fork after confining.
	 */
	{
		scmp_datum_t self = (scmp_datum_t)getpid();

		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1,
		    SCMP_A0(SCMP_CMP_EQ, self)) < 0 ||
		    seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
		    SCMP_A0(SCMP_CMP_EQ, self)) < 0)
			fatalx("sandbox: seccomp rule for kill/tgkill");
	}
	/* Sockets: Unix only for netstackd (its flow sockets, its peers, syslog). */
	if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
	    SCMP_A0(SCMP_CMP_EQ, AF_UNIX)) < 0)
		fatalx("sandbox: seccomp rule for socket");
	if (profile == SANDBOX_PROXYD) {
		/* Upstream connections, and its own listeners. */
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
		    SCMP_A0(SCMP_CMP_EQ, AF_INET)) < 0 ||
		    seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
		    SCMP_A0(SCMP_CMP_EQ, AF_INET6)) < 0)
			fatalx("sandbox: seccomp rule for socket");
		ALLOW(ctx, accept4);
		ALLOW(ctx, bind);
		ALLOW(ctx, listen);
		ALLOW(ctx, fsync);
		ALLOW(ctx, fdatasync);
		ALLOW(ctx, ftruncate);
		ALLOW(ctx, pread64);
		ALLOW(ctx, pwrite64);
		ALLOW(ctx, rename);
		ALLOW(ctx, renameat);
		ALLOW(ctx, linkat);
		ALLOW(ctx, mkdir);
		ALLOW(ctx, mkdirat);
		ALLOW(ctx, fchmod);
		ALLOW(ctx, fchown);	/* SQLite, run as root, hands -wal to the db's owner */
		ALLOW(ctx, splice);
		ALLOW(ctx, pipe2);
		ALLOW(ctx, statx);
		ALLOW(ctx, getdents64);
		ALLOW(ctx, flock);
		ALLOW(ctx, fstatfs);
		ALLOW(ctx, access);
		ALLOW(ctx, faccessat);
		ALLOW(ctx, faccessat2);
		ALLOW(ctx, readlink);
		ALLOW(ctx, getcwd);
	}
	if (profile == SANDBOX_WEBD) {
		/*
		 * Its listeners exist before it confines itself: it accepts,
		 * and creates no IP socket (socket() is Unix only, above), so
		 * it can never connect out.  SQLite reads the store (pread,
		 * fcntl locks, the -shm mapping); the process list reads /proc.
		 */
		ALLOW(ctx, accept4);
		ALLOW(ctx, accept);
		ALLOW(ctx, pread64);
		ALLOW(ctx, statx);
		ALLOW(ctx, getdents64);
		ALLOW(ctx, readlink);
		ALLOW(ctx, readlinkat);
		ALLOW(ctx, access);
		ALLOW(ctx, faccessat);
		ALLOW(ctx, faccessat2);
		ALLOW(ctx, fstatfs);
		ALLOW(ctx, getcwd);
		ALLOW(ctx, sysinfo);
		/* The processes tab resolves cgroup: spec items (spec.c). */
		ALLOW(ctx, statfs);
		ALLOW(ctx, name_to_handle_at);
	}
	/* No ioctl at all: a TUN fd holder could otherwise TUNSETPERSIST. */
load:
	if (seccomp_load(ctx) < 0)
		fatalx("sandbox: seccomp_load");
	seccomp_release(ctx);
	return 1;
}

void
sandbox_drop(const struct sandbox *sb)
{
	/* The bounding set first, while we may still change it. */
	drop_bound(sb->keep_caps, sb->nkeep_caps);
	if (sb->user)
		drop_user(sb->user);
	set_caps(sb->keep_caps, sb->nkeep_caps);
}

void
sandbox_confine(const struct sandbox *sb)
{
	int filtered, uid = (int)geteuid();	/* the signer may not ask later */

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		fatal("sandbox: PR_SET_NO_NEW_PRIVS");
	/*
	 * redirectord reads users, /proc and the whole cgroup tree and writes
	 * cgroups at run time: its fence is the capability set.
	 */
	if (sb->profile != SANDBOX_REDIRECTORD)
		landlock(sb);
	filtered = seccomp_filter(sb->profile);
	log_info("sandboxed: uid %d, %zu capabilities kept, no_new_privs%s%s",
	    uid, sb->nkeep_caps,
	    sb->profile == SANDBOX_REDIRECTORD ? "" : ", landlock",
	    filtered ? ", seccomp" : "");
}

void
sandbox_enter(const struct sandbox *sb)
{
	if (sb->profile != SANDBOX_REDIRECTORD)
		prepared_ruleset = landlock_ruleset(sb);
	sandbox_drop(sb);
	sandbox_confine(sb);
}
