/*
 * localcapctl up / down / logs: run the three daemons as an instance without
 * systemd, each with the privileges systemd would give it (they drop their
 * own; see common/sandbox.c), logging to <runtime>/logs/<daemon>.log.
 *
 * The daemons are found beside localcapctl (a build tree: build/bin/) or in
 * ../libexec/localcap/ relative to it (an installed tree).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl/ctl.h"

#define NDAEMONS	3
#define UP_TIMEOUT_MS	15000

static const char *const daemon_names[NDAEMONS] = {
	"redirectord", "netstackd", "proxyd",
};

/*
 * The unprivileged users netstackd and proxyd switch to once their sockets
 * are open: the same ones packaging/systemd/localcap.sysusers creates, so
 * an instance and the units share the state dir's owner.
 */
#define PROXYD_USER	"localcap"
#define NETSTACKD_USER	"localcap-netstack"
/* Members may use localcapctl: may capture anyone's traffic. */
#define ADMIN_GROUP	"localcap-admin"

/* Run argv (an absolute path first), quiet; its exit status or -1. */
static int
run_quiet(char *const argv[])
{
	pid_t pid;
	int status, fd;

	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		if ((fd = open("/dev/null", O_RDWR)) != -1) {
			dup2(fd, STDIN_FILENO);
			dup2(fd, STDOUT_FILENO);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/*
 * A system user for a daemon: reused if it exists (never root), created
 * with useradd otherwise (its own group, no home, no shell).  *how says
 * which, for the start-up message.
 */
static int
ensure_user(const char *name, const char *comment, uid_t *uid, const char **how)
{
	static const char *const useradd[] = { "/usr/sbin/useradd", "/sbin/useradd" };
	struct passwd *pw;
	size_t i;

	if ((pw = getpwnam(name)) == NULL) {
		char *argv[12];
		int n = 0, rc = -1;

		argv[n++] = NULL;
		argv[n++] = (char *)(uintptr_t)"--system";
		/* A group of that name already there (an older install): join it. */
		argv[n++] = (char *)(uintptr_t)(getgrnam(name) ? "--gid" : "--user-group");
		if (getgrnam(name))
			argv[n++] = (char *)(uintptr_t)name;
		argv[n++] = (char *)(uintptr_t)"--no-create-home";
		argv[n++] = (char *)(uintptr_t)"--home-dir";
		argv[n++] = (char *)(uintptr_t)"/nonexistent";
		argv[n++] = (char *)(uintptr_t)"--shell";
		argv[n++] = (char *)(uintptr_t)"/usr/sbin/nologin";
		argv[n++] = (char *)(uintptr_t)"--comment";
		argv[n++] = (char *)(uintptr_t)comment;
		argv[n++] = (char *)(uintptr_t)name;
		argv[n] = NULL;
		for (i = 0; i < 2 && rc != 0; i++)
			if (access(useradd[i], X_OK) == 0) {
				argv[0] = (char *)(uintptr_t)useradd[i];
				rc = run_quiet(argv);
			}
		/* Another `up` may have created it meanwhile: look again. */
		if ((pw = getpwnam(name)) == NULL) {
			fprintf(stderr, "localcapctl: cannot create the system user "
			    "'%s' (useradd %s); create it, or run the daemons "
			    "under systemd (sysusers)\n", name,
			    rc == -1 ? "not found" : "failed");
			return -1;
		}
		*how = "created";
	} else
		*how = "existing";
	if (pw->pw_uid == 0) {
		fprintf(stderr, "localcapctl: user '%s' is root; refusing to run "
		    "a daemon as it\n", name);
		return -1;
	}
	*uid = pw->pw_uid;
	return 0;
}

/*
 * The admin group (redirectord's ctl.sock admits its members), made empty
 * if missing so that a person can be added to it.  Best effort: root can
 * use localcapctl without it.
 */
static void
ensure_admin_group(void)
{
	static const char *const groupadd[] = { "/usr/sbin/groupadd", "/sbin/groupadd" };
	char *argv[4];
	size_t i;

	if (getgrnam(ADMIN_GROUP) != NULL)
		return;
	argv[1] = (char *)(uintptr_t)"--system";
	argv[2] = (char *)(uintptr_t)ADMIN_GROUP;
	argv[3] = NULL;
	for (i = 0; i < 2; i++)
		if (access(groupadd[i], X_OK) == 0) {
			argv[0] = (char *)(uintptr_t)groupadd[i];
			if (run_quiet(argv) == 0)
				return;
		}
	if (getgrnam(ADMIN_GROUP) == NULL)
		fprintf(stderr, "localcapctl: warning: could not create the group "
		    "%s; only root can use localcapctl\n", ADMIN_GROUP);
}

/*
 * After a stop: netstackd and proxyd, no longer root, could not remove
 * their pid files (and proxyd its flow.sock) from the root-owned runtime
 * dir.  Removed here once no process holds the pid file's lock.
 */
static void
remove_leftovers(const char *runtime_dir, const char *name, const char *sock)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s.pid", runtime_dir, name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		(void)unlink(path);
		if (sock) {
			snprintf(path, sizeof(path), "%s/%s", runtime_dir, sock);
			(void)unlink(path);
		}
	}
	close(fd);
}

/* Directory holding the daemon binaries. */
static int
find_daemons(char *dir, size_t len)
{
	char self[PATH_MAX], cand[PATH_MAX + 64], *slash;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return -1;
	self[n] = '\0';
	if ((slash = strrchr(self, '/')) != NULL)
		*slash = '\0';
	snprintf(cand, sizeof(cand), "%s/redirectord", self);
	if (access(cand, X_OK) == 0 && strlen(self) < len) {
		memcpy(dir, self, strlen(self) + 1);
		return 0;
	}
	snprintf(cand, sizeof(cand), "%s/../libexec/localcap/redirectord", self);
	if (access(cand, X_OK) == 0 && strlen(cand) < len) {
		/* cand without "/redirectord" */
		cand[strlen(cand) - strlen("/redirectord")] = '\0';
		memcpy(dir, cand, strlen(cand) + 1);
		return 0;
	}
	fprintf(stderr, "localcapctl: cannot find the daemons beside %s or in "
	    "%s/../libexec/localcap\n", self, self);
	return -1;
}

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The pid a daemon's pid file names, if that process is that daemon. */
pid_t
ctl_daemon_pid(const char *runtime_dir, const char *name)
{
	char path[PATH_MAX], comm[32] = "";
	FILE *f;
	int pid = 0;

	snprintf(path, sizeof(path), "%s/%s.pid", runtime_dir, name);
	if ((f = fopen(path, "re")) == NULL)
		return 0;
	if (fscanf(f, "%d", &pid) != 1)
		pid = 0;
	fclose(f);
	if (pid <= 0)
		return 0;
	/* A stale pid file may name a recycled pid: check what it runs. */
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	if ((f = fopen(path, "re")) == NULL)
		return 0;
	if (fgets(comm, sizeof(comm), f) == NULL)
		comm[0] = '\0';
	fclose(f);
	comm[strcspn(comm, "\n")] = '\0';
	return strcmp(comm, name) == 0 ? (pid_t)pid : 0;
}

/* The cgroup v2 mount, from /proc/self/mountinfo; -1 if none. */
static int
cgroup2_root(char *buf, size_t len)
{
	char line[4096], *sep, mnt[PATH_MAX], fstype[64];
	FILE *f = fopen("/proc/self/mountinfo", "re");
	int found = -1;

	if (f == NULL)
		return -1;
	while (found == -1 && fgets(line, sizeof(line), f)) {
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS... - FSTYPE SOURCE ... */
		if ((sep = strstr(line, " - ")) == NULL ||
		    sscanf(sep + 3, "%63s", fstype) != 1 || strcmp(fstype, "cgroup2") != 0)
			continue;
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1 &&
		    strlen(mnt) < len) {
			memcpy(buf, mnt, strlen(mnt) + 1);
			found = 0;
		}
	}
	fclose(f);
	return found;
}

/*
 * The daemons of an instance get a cgroup of their own, as systemd gives
 * each unit one: redirectord then excludes that cgroup from capture, and
 * not the session the user started `up` from (which would exclude every
 * program in it).  One per runtime dir, so instances do not share it.
 */
static int
daemon_cgroup(const char *runtime_dir, char *path, size_t len)
{
	char root[PATH_MAX];
	uint32_t h = 2166136261u;
	const char *p;

	if (cgroup2_root(root, sizeof(root)) == -1)
		return -1;
	for (p = runtime_dir; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	if ((size_t)snprintf(path, len, "%s/localcap-daemons.%08x", root, h) >= len)
		return -1;
	return 0;
}

/* Remove the daemons' cgroup once they are gone (the kernel may take a moment). */
static void
remove_daemon_cgroup(const char *cg)
{
	int i;

	if (cg[0] == '\0')
		return;
	for (i = 0; i < 20 && rmdir(cg) == -1 && errno == EBUSY; i++)
		usleep(50000);
}

static pid_t
spawn(const char *bindir, const char *name, char *const extra[], const char *logdir,
    int foreground, const char *cgroup)
{
	char prog[PATH_MAX], log[PATH_MAX];
	char *argv[24];
	int i = 0, j, fd;
	pid_t pid;

	snprintf(prog, sizeof(prog), "%s/%s", bindir, name);
	snprintf(log, sizeof(log), "%s/%s.log", logdir, name);
	argv[i++] = (char *)(uintptr_t)name;
	argv[i++] = (char *)(uintptr_t)"-f";
	for (j = 0; extra[j] && i < 23; j++)
		argv[i++] = extra[j];
	argv[i] = NULL;
	if ((pid = fork()) == -1) {
		perror("localcapctl: fork");
		return -1;
	}
	if (pid > 0)
		return pid;
	if (!foreground)
		(void)setsid();
	if (cgroup) {
		char procs[PATH_MAX + 16], me[16];
		int n = snprintf(me, sizeof(me), "%d\n", (int)getpid());

		snprintf(procs, sizeof(procs), "%s/cgroup.procs", cgroup);
		if ((fd = open(procs, O_WRONLY | O_CLOEXEC)) == -1 ||
		    write(fd, me, (size_t)n) != n)
			fprintf(stderr, "localcapctl: %s: cannot join %s: %s\n", name,
			    cgroup, strerror(errno));
		if (fd != -1)
			close(fd);
	}
	if ((fd = open("/dev/null", O_RDONLY)) != -1) {
		dup2(fd, STDIN_FILENO);
		close(fd);
	}
	if (!foreground &&
	    (fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640)) != -1) {
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
	}
	execv(prog, argv);
	fprintf(stderr, "localcapctl: cannot run %s: %s\n", prog, strerror(errno));
	_exit(127);
}

static void
stop_all(pid_t pids[NDAEMONS])
{
	int i;

	for (i = 0; i < NDAEMONS; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGTERM);
	for (i = 0; i < NDAEMONS; i++)
		if (pids[i] > 0)
			waitpid(pids[i], NULL, 0);
}

/*
 * The last fatal or warning line of a daemon's log, without its time and
 * function prefix ("" if none): why it stopped, for the one-line error.
 */
void
ctl_last_error(const char *logdir, const char *name, char *out, size_t len)
{
	static const char *const marks[] = { "] fatal: ", "] warn: " };
	char path[PATH_MAX], line[1024];
	const char *msg, *q;
	int found = 0;		/* 2: a fatal line, 1: a warning */
	size_t k;
	FILE *f;

	out[0] = '\0';
	if ((size_t)snprintf(path, sizeof(path), "%s/%s.log", logdir, name) >=
	    sizeof(path) || (f = fopen(path, "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		for (k = 0; k < 2; k++)
			if ((msg = strstr(line, marks[k])) != NULL)
				break;
		if (k == 2 || (int)(2 - k) < found)
			continue;
		found = (int)(2 - k);
		msg += strlen(marks[k]);
		/* Past the "function: " prefix. */
		if ((q = strstr(msg, ": ")) != NULL && memchr(msg, ' ',
		    (size_t)(q - msg)) == NULL)
			msg = q + 2;
		snprintf(out, len, "%s", msg);
	}
	fclose(f);
	/* No terminal escapes from a log file. */
	for (char *c = out; *c != '\0'; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
}

/*
 * up --web ADDR:PORT: the viewer beside the daemons, once they are up;
 * it writes <runtime>/webd.url (its address and access token) when it
 * listens.  Its pid, or 0 after an error line.
 */
static pid_t
up_web(const char *bindir, const char *runtime_dir, const char *state,
    const char *listen, const char *logdir, const char *cgroup)
{
	char *args[10], url_file[PATH_MAX], why[512];
	long deadline = now_ms() + 5000;
	int n = 0, status;
	pid_t pid;

	args[n++] = (char *)(uintptr_t)"-r";
	args[n++] = (char *)(uintptr_t)runtime_dir;
	args[n++] = (char *)(uintptr_t)"--listen";
	args[n++] = (char *)(uintptr_t)listen;
	if (state) {
		args[n++] = (char *)(uintptr_t)"-s";
		args[n++] = (char *)(uintptr_t)state;
	}
	args[n] = NULL;
	snprintf(url_file, sizeof(url_file), "%s/webd.url", runtime_dir);
	(void)unlink(url_file);
	if ((pid = spawn(bindir, "webd", args, logdir, 0, cgroup)) <= 0)
		return 0;
	while (access(url_file, F_OK) == -1) {
		if (waitpid(pid, &status, WNOHANG) == pid || now_ms() > deadline) {
			if (now_ms() > deadline)
				kill(pid, SIGTERM);
			ctl_last_error(logdir, "webd", why, sizeof(why));
			fprintf(stderr, "localcapctl: webd did not start%s%s; see "
			    "%s/webd.log\n", why[0] ? ": " : "", why, logdir);
			return 0;
		}
		usleep(50000);
	}
	return pid;
}

static volatile sig_atomic_t got_signal;

static void
on_signal(int sig)
{
	got_signal = sig;
}

/*
 * up --memory-budget: a size as proxyd takes it (digits, then K, M or G),
 * 0 or at least 32M; checked here so that a bad one starts nothing.
 */
static int
up_size_ok(const char *s)
{
	unsigned long long v, mul = 1;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		return 0;
	if (*end != '\0') {
		if (end[1] != '\0')
			return 0;
		switch (*end) {
		case 'k': case 'K': mul = 1ULL << 10; break;
		case 'm': case 'M': mul = 1ULL << 20; break;
		case 'g': case 'G': mul = 1ULL << 30; break;
		default: return 0;
		}
	}
	if (v > (1ULL << 40) / mul)
		return 0;
	return v == 0 || v * mul >= 32ULL << 20;
}

/* up --max-flows, --max-flows-per-addr: 0 (no cap) to 2^24. */
static int
up_count_ok(const char *s)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	return !errno && end != s && *end == '\0' && s[0] != '-' &&
	    v <= 1u << 24;
}

int
ctl_up(const char *runtime_dir, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "state-dir",	required_argument,	NULL, 's' },
		{ "cgroup",	required_argument,	NULL, 'g' },
		{ "config",	required_argument,	NULL, 'c' },
		{ "tun-name",	required_argument,	NULL, 't' },
		{ "fail-closed", no_argument,		NULL, 'F' },
		{ "foreground",	no_argument,		NULL, 'f' },
		{ "upstream-ca", required_argument,	NULL, 'U' },
		{ "ignore-hosts", required_argument,	NULL, 'G' },
		{ "listen",	required_argument,	NULL, 'L' },
		{ "web",	required_argument,	NULL, 'W' },
		{ "quic",	required_argument,	NULL, 'Q' },
		{ "memory-budget", required_argument,	NULL, 'M' },
		{ "max-flows",	required_argument,	NULL, 'N' },
		{ "max-flows-per-addr", required_argument, NULL, 'A' },
		{ NULL, 0, NULL, 0 },
	};
	const char *web = NULL;
	pid_t web_pid = 0;
	const char *state = NULL, *cgroup = NULL, *config = NULL, *tun = NULL;
	const char *upstream_ca = NULL, *ignore = NULL, *listen = NULL;
	const char *quic = NULL, *budget = NULL, *max_flows = NULL;
	const char *max_per_addr = NULL;
	static char ignore_buf[4096];

	ignore_buf[0] = '\0';
	char bindir[PATH_MAX], logdir[PATH_MAX], sock[PATH_MAX], cg[PATH_MAX];
	char *rd_args[16], *ns_args[12], *px_args[32];
	char users[256] = "as started (not root: no users of their own)";
	pid_t pids[NDAEMONS] = { 0 };
	int fail_closed = 0, foreground = 0, c, i, n, running;
	long deadline;

	optind = 0;	/* 0, not 1: GNU getopt starts afresh */
	while ((c = getopt_long(argc, argv, "s:g:c:t:Ff", longopts, NULL)) != -1) {
		switch (c) {
		case 's': state = optarg; break;
		case 'g': cgroup = optarg; break;
		case 'c': config = optarg; break;
		case 't': tun = optarg; break;
		case 'F': fail_closed = 1; break;
		case 'f': foreground = 1; break;
		case 'U': upstream_ca = optarg; break;
		case 'G': {
			/* Repeatable, as proxyd's: the lists join. */
			size_t have = strlen(ignore_buf);

			if (have + (have > 0) + strlen(optarg) >= sizeof(ignore_buf)) {
				fprintf(stderr, "localcapctl: up --ignore-hosts: "
				    "the patterns are too long together\n");
				return 2;
			}
			if (have > 0)
				ignore_buf[have++] = ',';
			memcpy(ignore_buf + have, optarg, strlen(optarg) + 1);
			ignore = ignore_buf;
			break;
		}
		case 'L': listen = optarg; break;
		case 'W': web = optarg; break;
		case 'Q':
			if (strcmp(optarg, "fallback") != 0 &&
			    strcmp(optarg, "pass") != 0) {
				fprintf(stderr, "localcapctl: up --quic: '%s' is "
				    "neither fallback nor pass\n", optarg);
				return 2;
			}
			quic = optarg;
			break;
		case 'M':
			if (!up_size_ok(optarg)) {
				fprintf(stderr, "localcapctl: up --memory-budget: "
				    "'%s' is not 0 nor a size of at least 32M "
				    "(K, M, G allowed)\n", optarg);
				return 2;
			}
			budget = optarg;
			break;
		case 'N':
		case 'A':
			if (!up_count_ok(optarg)) {
				fprintf(stderr, "localcapctl: up --%s: '%s' is not "
				    "a number from 0 to %u\n", c == 'N' ?
				    "max-flows" : "max-flows-per-addr", optarg,
				    1u << 24);
				return 2;
			}
			if (c == 'N')
				max_flows = optarg;
			else
				max_per_addr = optarg;
			break;
		default:
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "localcapctl: up takes options only ('%s'?)\n",
		    argv[optind]);
		return 2;
	}
	if (find_daemons(bindir, sizeof(bindir)) == -1)
		return 1;
	snprintf(sock, sizeof(sock), "%s/ctl.sock", runtime_dir);
	if ((running = ctl_daemons_running(sock)) == NDAEMONS) {
		printf("localcap is already up in %s\n", runtime_dir);
		return 0;
	}
	for (i = 0; i < NDAEMONS; i++)
		if (ctl_daemon_pid(runtime_dir, daemon_names[i]) > 0) {
			fprintf(stderr, "localcapctl: %s is already running in %s "
			    "without the others: localcapctl down first\n",
			    daemon_names[i], runtime_dir);
			return 1;
		}
	if (mkdir(runtime_dir, 0755) == -1 && errno != EEXIST) {
		fprintf(stderr, "localcapctl: %s: %s\n", runtime_dir, strerror(errno));
		return 1;
	}
	snprintf(logdir, sizeof(logdir), "%s/logs", runtime_dir);
	if (mkdir(logdir, 0750) == -1 && errno != EEXIST) {
		fprintf(stderr, "localcapctl: %s: %s\n", logdir, strerror(errno));
		return 1;
	}

	n = 0;
	rd_args[n++] = (char *)(uintptr_t)"-r";
	rd_args[n++] = (char *)(uintptr_t)runtime_dir;
	if (cgroup) {
		rd_args[n++] = (char *)(uintptr_t)"-g";
		rd_args[n++] = (char *)(uintptr_t)cgroup;
	}
	if (tun) {
		rd_args[n++] = (char *)(uintptr_t)"-t";
		rd_args[n++] = (char *)(uintptr_t)tun;
	}
	if (fail_closed)
		rd_args[n++] = (char *)(uintptr_t)"--fail-closed";
	if (config) {
		rd_args[n++] = (char *)(uintptr_t)"-c";
		rd_args[n++] = (char *)(uintptr_t)config;
	}
	rd_args[n] = NULL;
	n = 0;
	ns_args[n++] = (char *)(uintptr_t)"-r";
	ns_args[n++] = (char *)(uintptr_t)runtime_dir;
	if (config) {
		ns_args[n++] = (char *)(uintptr_t)"-c";
		ns_args[n++] = (char *)(uintptr_t)config;
	}
	ns_args[n] = NULL;
	n = 0;
	px_args[n++] = (char *)(uintptr_t)"-r";
	px_args[n++] = (char *)(uintptr_t)runtime_dir;
	if (state) {
		px_args[n++] = (char *)(uintptr_t)"-s";
		px_args[n++] = (char *)(uintptr_t)state;
	}
	if (config) {
		px_args[n++] = (char *)(uintptr_t)"-c";
		px_args[n++] = (char *)(uintptr_t)config;
	}
	if (upstream_ca) {
		px_args[n++] = (char *)(uintptr_t)"--upstream-ca";
		px_args[n++] = (char *)(uintptr_t)upstream_ca;
	}
	if (ignore) {
		px_args[n++] = (char *)(uintptr_t)"--ignore-hosts";
		px_args[n++] = (char *)(uintptr_t)ignore;
	}
	if (listen) {
		px_args[n++] = (char *)(uintptr_t)"--listen";
		px_args[n++] = (char *)(uintptr_t)listen;
	}
	if (quic) {
		px_args[n++] = (char *)(uintptr_t)"--quic";
		px_args[n++] = (char *)(uintptr_t)quic;
	}
	if (budget) {
		px_args[n++] = (char *)(uintptr_t)"--memory-budget";
		px_args[n++] = (char *)(uintptr_t)budget;
	}
	if (max_flows) {
		px_args[n++] = (char *)(uintptr_t)"--max-flows";
		px_args[n++] = (char *)(uintptr_t)max_flows;
	}
	if (max_per_addr) {
		px_args[n++] = (char *)(uintptr_t)"--max-flows-per-addr";
		px_args[n++] = (char *)(uintptr_t)max_per_addr;
	}
	px_args[n] = NULL;

	/* The two daemons that parse untrusted bytes: users of their own. */
	if (geteuid() == 0) {
		uid_t px_uid, ns_uid;
		const char *px_how, *ns_how;

		if (ensure_user(PROXYD_USER, "localcap proxyd", &px_uid, &px_how) == -1 ||
		    ensure_user(NETSTACKD_USER, "localcap netstackd", &ns_uid,
		    &ns_how) == -1)
			return 1;
		ensure_admin_group();
		if (px_uid == ns_uid) {
			fprintf(stderr, "localcapctl: users %s and %s have the same "
			    "uid %u; each daemon needs its own\n", PROXYD_USER,
			    NETSTACKD_USER, (unsigned)px_uid);
			return 1;
		}
		snprintf(users, sizeof(users), "proxyd as %s (uid %u, %s), "
		    "netstackd as %s (uid %u, %s)", PROXYD_USER, (unsigned)px_uid,
		    px_how, NETSTACKD_USER, (unsigned)ns_uid, ns_how);
		px_args[n++] = (char *)(uintptr_t)"--user";
		px_args[n++] = (char *)(uintptr_t)PROXYD_USER;
		px_args[n++] = (char *)(uintptr_t)"--netstack-user";
		px_args[n++] = (char *)(uintptr_t)NETSTACKD_USER;
		px_args[n] = NULL;
		for (n = 0; ns_args[n]; n++)
			;
		ns_args[n++] = (char *)(uintptr_t)"--user";
		ns_args[n++] = (char *)(uintptr_t)NETSTACKD_USER;
		ns_args[n] = NULL;
		for (n = 0; rd_args[n]; n++)
			;
		rd_args[n++] = (char *)(uintptr_t)"--netstack-user";
		rd_args[n++] = (char *)(uintptr_t)NETSTACKD_USER;
		rd_args[n] = NULL;
	}

	if (daemon_cgroup(runtime_dir, cg, sizeof(cg)) == -1 ||
	    (mkdir(cg, 0755) == -1 && errno != EEXIST)) {
		fprintf(stderr, "localcapctl: warning: no cgroup of their own for "
		    "the daemons (%s); capture may exclude the session you started "
		    "them from\n", strerror(errno));
		cg[0] = '\0';
	}

	/* proxyd and netstackd first: redirectord then finds its chain. */
	pids[2] = spawn(bindir, "proxyd", px_args, logdir, foreground, cg[0] ? cg : NULL);
	pids[1] = spawn(bindir, "netstackd", ns_args, logdir, foreground, cg[0] ? cg : NULL);
	pids[0] = spawn(bindir, "redirectord", rd_args, logdir, foreground,
	    cg[0] ? cg : NULL);

	deadline = now_ms() + UP_TIMEOUT_MS;
	while ((running = ctl_daemons_running(sock)) != NDAEMONS) {
		for (i = 0; i < NDAEMONS; i++) {
			int status;

			if (pids[i] > 0 && waitpid(pids[i], &status, WNOHANG) == pids[i]) {
				pids[i] = 0;
				char why[512];

				ctl_last_error(logdir, daemon_names[i], why, sizeof(why));
				fprintf(stderr, "localcapctl: %s exited during start-up%s%s; "
				    "see %s/%s.log\n", daemon_names[i], why[0] ? ": " : "",
				    why, logdir, daemon_names[i]);
				stop_all(pids);
				remove_daemon_cgroup(cg);
				return 1;
			}
		}
		if (now_ms() > deadline) {
			fprintf(stderr, "localcapctl: the daemons did not all come up "
			    "within %d s; logs in %s\n", UP_TIMEOUT_MS / 1000, logdir);
			stop_all(pids);
			remove_daemon_cgroup(cg);
			return 1;
		}
		usleep(50000);
	}
	if (web && (web_pid = up_web(bindir, runtime_dir, state, web, logdir,
	    cg[0] ? cg : NULL)) <= 0) {
		stop_all(pids);
		remove_daemon_cgroup(cg);
		return 1;
	}
	printf("localcap is up\n"
	    "  runtime dir  %s (ctl.sock, data.sock, flow.sock, pid files)\n"
	    "  logs         %s/*.log (localcapctl logs)\n"
	    "  state dir    %s\n"
	    "  users        %s\n"
	    "  capture at   %s\n"
	    "next: localcapctl run -- CMD, or localcapctl attach NAME; "
	    "localcapctl down to stop\n", runtime_dir, logdir,
	    state ? state : "/var/lib/localcap", users,
	    cgroup ? cgroup : "the cgroup v2 root");
	if (web_pid > 0) {
		char url[512];

		if (ctl_web_url(runtime_dir, url, sizeof(url)) == 0)
			printf("  viewer       %s\n", url);
	}
	fflush(stdout);
	if (!foreground)
		return 0;

	/* --foreground: stay with the daemons, stop them on a signal or a death. */
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	while (!got_signal) {
		pid_t dead = waitpid(-1, NULL, 0);

		if (dead > 0) {
			for (i = 0; i < NDAEMONS; i++)
				if (pids[i] == dead) {
					fprintf(stderr, "localcapctl: %s exited; stopping "
					    "the others\n", daemon_names[i]);
					pids[i] = 0;
				}
			break;
		}
		if (dead == -1 && errno != EINTR)
			break;
	}
	if (web_pid > 0) {
		kill(web_pid, SIGTERM);
		waitpid(web_pid, NULL, 0);
	}
	stop_all(pids);
	remove_daemon_cgroup(cg);
	return got_signal ? 0 : 1;
}

int
ctl_down(const char *runtime_dir)
{
	pid_t pids[NDAEMONS], web = ctl_daemon_pid(runtime_dir, "webd");
	int i, any = 0, left;
	long deadline;

	/* The viewer (up --web) first: it is a client of the others. */
	if (web > 0 && kill(web, SIGTERM) == 0) {
		char f[PATH_MAX];

		for (i = 0; i < 100 && kill(web, 0) == 0; i++)
			usleep(50000);
		printf("stopped webd (pid %d)\n", (int)web);
		/* Its files: it runs as nobody by then and cannot remove them. */
		snprintf(f, sizeof(f), "%s/webd.url", runtime_dir);
		(void)unlink(f);
		snprintf(f, sizeof(f), "%s/webd.pid", runtime_dir);
		(void)unlink(f);
	}
	for (i = 0; i < NDAEMONS; i++) {
		pids[i] = ctl_daemon_pid(runtime_dir, daemon_names[i]);
		if (pids[i] > 0) {
			any = 1;
			if (kill(pids[i], SIGTERM) == -1) {
				fprintf(stderr, "localcapctl: stopping %s (pid %d): %s\n",
				    daemon_names[i], (int)pids[i], strerror(errno));
				return 1;
			}
		}
	}
	if (!any) {
		printf("localcap is not running in %s\n", runtime_dir);
		return 0;
	}
	deadline = now_ms() + 5000;
	do {
		left = 0;
		for (i = 0; i < NDAEMONS; i++)
			if (pids[i] > 0 && kill(pids[i], 0) == 0)
				left++;
		if (left)
			usleep(50000);
	} while (left && now_ms() < deadline);
	for (i = 0; i < NDAEMONS; i++) {
		if (pids[i] <= 0)
			continue;
		if (kill(pids[i], 0) == 0)
			fprintf(stderr, "localcapctl: %s (pid %d) did not stop within "
			    "5 s\n", daemon_names[i], (int)pids[i]);
		else
			printf("stopped %s (pid %d)\n", daemon_names[i], (int)pids[i]);
	}
	if (!left) {
		char cg[PATH_MAX];

		remove_leftovers(runtime_dir, "netstackd", NULL);
		remove_leftovers(runtime_dir, "proxyd", "flow.sock");

		if (daemon_cgroup(runtime_dir, cg, sizeof(cg)) == 0)
			remove_daemon_cgroup(cg);
	}
	return left ? 1 : 0;
}

int
ctl_logs(const char *runtime_dir, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "follow",	no_argument,		NULL, 'f' },
		{ "daemon",	required_argument,	NULL, 'd' },
		{ "lines",	required_argument,	NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	const char *only = NULL, *lines = "50";
	char *targv[16], files[NDAEMONS][PATH_MAX], units[NDAEMONS][64];
	int follow = 0, c, i, n = 0, found = 0;

	optind = 0;	/* 0, not 1: GNU getopt starts afresh */
	while ((c = getopt_long(argc, argv, "fd:n:", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': follow = 1; break;
		case 'd': only = optarg; break;
		case 'n': lines = optarg; break;
		default: return 2;
		}
	}
	if (only) {
		for (i = 0; i < NDAEMONS; i++)
			if (strcmp(only, daemon_names[i]) == 0)
				break;
		if (i == NDAEMONS) {
			fprintf(stderr, "localcapctl: no daemon called '%s' "
			    "(redirectord, netstackd, proxyd)\n", only);
			return 2;
		}
	}
	targv[n++] = (char *)(uintptr_t)"tail";
	targv[n++] = (char *)(uintptr_t)"-n";
	targv[n++] = (char *)(uintptr_t)lines;
	if (follow)
		targv[n++] = (char *)(uintptr_t)"-F";
	for (i = 0; i < NDAEMONS; i++) {
		if (only && strcmp(only, daemon_names[i]) != 0)
			continue;
		snprintf(files[i], sizeof(files[i]), "%s/logs/%s.log", runtime_dir,
		    daemon_names[i]);
		if (access(files[i], R_OK) == 0) {
			targv[n++] = files[i];
			found++;
		}
	}
	targv[n] = NULL;
	if (found) {
		execvp("tail", targv);
		fprintf(stderr, "localcapctl: tail: %s\n", strerror(errno));
		return 1;
	}
	/* No log files: the daemons run under systemd, so their logs are in the journal. */
	n = 0;
	targv[n++] = (char *)(uintptr_t)"journalctl";
	targv[n++] = (char *)(uintptr_t)"-n";
	targv[n++] = (char *)(uintptr_t)lines;
	if (follow)
		targv[n++] = (char *)(uintptr_t)"-f";
	for (i = 0; i < NDAEMONS; i++) {
		if (only && strcmp(only, daemon_names[i]) != 0)
			continue;
		snprintf(units[i], sizeof(units[i]), "--unit=localcap-%s.service",
		    daemon_names[i]);
		targv[n++] = units[i];
	}
	targv[n] = NULL;
	execvp("journalctl", targv);
	fprintf(stderr, "localcapctl: no log files in %s/logs and no journalctl: "
	    "%s\n", runtime_dir, strerror(errno));
	return 1;
}
