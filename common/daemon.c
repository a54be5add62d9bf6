/*
 * The shared skeleton of redirectord, netstackd and proxyd (see daemon.h).
 */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

int
daemon_common_opt(struct daemon *d, int c, const char *arg, const char *usage,
    void (*print_version)(void))
{
	switch (c) {
	case 'c':
		d->config_path = arg;
		return 1;
	case 'r':
		d->runtime_dir_opt = arg;
		return 1;
	case 'f':
		d->foreground = 1;
		return 1;
	case 'v':
		d->verbose++;
		return 1;
	case 'h':
		fputs(usage, stdout);
		exit(0);
	case 'V':
		print_version();
		exit(0);
	case '?':
		fprintf(stderr, "Try '%s --help'.\n", d->name);
		exit(2);
	}
	return 0;
}

void
daemon_abspath(const char *in, char *out, size_t len)
{
	char cwd[4096];
	int n;

	if (in[0] == '/')
		n = snprintf(out, len, "%s", in);
	else if (getcwd(cwd, sizeof(cwd)) == NULL)
		fatal("getcwd");
	else
		n = snprintf(out, len, "%s/%s", cwd, in);
	if (n < 0 || (size_t)n >= len)
		fatalx("path %s is too long", in);
}

void
daemon_path(const struct daemon *d, const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", d->runtime_dir, name);

	if (n < 0 || (size_t)n >= len)
		fatalx("path %s/%s is too long", d->runtime_dir, name);
}

static int
level_from(const struct daemon *d, const struct conf *conf)
{
	const char *v = conf_get(conf, d->name, "log_level");
	int level = v ? conf_parse_log_level(v) : LOG_LEVEL_INFO;

	level += d->verbose;
	return level > LOG_LEVEL_TRACE ? LOG_LEVEL_TRACE : level;
}

/*
 * The runtime dir holds our sockets: anyone able to write in it could put
 * their own socket in place of ours.  Create it 0755 if missing; refuse one
 * that others may write to.
 */
static void
prepare_runtime_dir(const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0755) == -1 && errno != EEXIST)
		fatal("cannot create runtime dir %s", dir);
	if (stat(dir, &st) == -1)
		fatal("runtime dir %s", dir);
	if (!S_ISDIR(st.st_mode))
		fatalx("runtime dir %s is not a directory", dir);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		fatalx("runtime dir %s is writable by group or others; "
		    "refusing to put sockets there", dir);
	if (st.st_uid != geteuid() && st.st_uid != 0)
		fatalx("runtime dir %s belongs to uid %d, neither us nor root",
		    dir, (int)st.st_uid);
}

/*
 * One instance per runtime dir: the pid file is locked for our lifetime, so
 * a second instance stops here instead of stealing the first one's sockets.
 */
static void
lock_pidfile(struct daemon *d)
{
	char buf[32];
	int n;

	daemon_path(d, d->name, d->pidfile, sizeof(d->pidfile) - 4);
	strcat(d->pidfile, ".pid");
	d->pidfd = open(d->pidfile, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (d->pidfd == -1)
		fatal("pid file %s", d->pidfile);
	if (flock(d->pidfd, LOCK_EX | LOCK_NB) == -1) {
		ssize_t r = read(d->pidfd, buf, sizeof(buf) - 1);

		buf[r > 0 ? r : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		d->pidfile[0] = '\0';	/* not ours to remove */
		fatalx("another %s is running in %s (pid %s)", d->name,
		    d->runtime_dir, buf[0] ? buf : "unknown");
	}
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (ftruncate(d->pidfd, 0) == -1 || pwrite(d->pidfd, buf, (size_t)n, 0) != n)
		fatal("write %s", d->pidfile);
}

static void
daemonize(void)
{
	pid_t pid;
	int fd;

	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid > 0)
		_exit(0);
	if (setsid() == -1)
		fatal("setsid");
	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid > 0)
		_exit(0);
	if (chdir("/") == -1)
		fatal("chdir /");
	if ((fd = open("/dev/null", O_RDWR)) == -1)
		fatal("/dev/null");
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
}

static void
sig_shutdown_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;

	(void)revents;
	log_info("%s received, shutting down", strsignal(w->signum));
	if (d->hooks.shutdown)
		d->hooks.shutdown(d->hooks.arg);
	ev_break(loop, EVBREAK_ALL);
}

static void
sig_hup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;
	struct conf *conf;
	char err[512];

	(void)loop;
	(void)revents;
	if (d->config_path == NULL) {
		log_info("SIGHUP: no config file to reload");
		return;
	}
	if ((conf = conf_load(d->config_path, err, sizeof(err))) == NULL) {
		log_warnx("SIGHUP: keeping the running configuration: %s", err);
		return;
	}
	conf_free(d->conf);
	d->conf = conf;
	log_setlevel(level_from(d, conf));
	{
		const char *rd = conf_get(conf, d->name, "runtime_dir");

		if (d->runtime_dir_opt == NULL && rd && strcmp(rd, d->runtime_dir) != 0)
			log_warnx("SIGHUP: runtime_dir changes take effect "
			    "at the next start");
	}
	log_info("configuration reloaded from %s", d->config_path);
	if (d->hooks.reload)
		d->hooks.reload(d->hooks.arg, conf);
}

static void
sig_chld_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;
	pid_t pid;
	int status;

	(void)loop;
	(void)revents;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		log_debug("child %d exited (status %d)", (int)pid, status);
		if (d->hooks.child_exited)
			d->hooks.child_exited(d->hooks.arg, pid, status);
	}
}

void
daemon_start(struct daemon *d, struct ev_loop *loop, const struct daemon_hooks *hooks)
{
	const char *rd;
	char err[512];
	int n;

	d->loop = loop;
	d->hooks = *hooks;
	/* Until told otherwise, errors go to the terminal that started us. */
	log_init(d->name, 1, LOG_LEVEL_INFO + d->verbose);
	if (d->config_path) {
		/* SIGHUP rereads it after we moved to /. */
		daemon_abspath(d->config_path, d->config_abs, sizeof(d->config_abs));
		d->config_path = d->config_abs;
	}
	if (d->config_path &&
	    (d->conf = conf_load(d->config_path, err, sizeof(err))) == NULL)
		fatalx("%s", err);

	rd = d->runtime_dir_opt ? d->runtime_dir_opt :
	    conf_get(d->conf, d->name, "runtime_dir");
	if (rd == NULL)
		rd = DAEMON_DEFAULT_RUNTIME_DIR;
	/* Absolute, because a daemon works from / (and relative may be long). */
	daemon_abspath(rd, d->runtime_dir, sizeof(d->runtime_dir));
	n = (int)strlen(d->runtime_dir);
	/* Socket paths must fit sun_path (108 bytes) with a file name. */
	if (n > 90)
		fatalx("runtime dir %s is too long (at most 90 bytes)",
		    d->runtime_dir);
	prepare_runtime_dir(d->runtime_dir);

	if (!d->foreground)
		daemonize();
	log_init(d->name, d->foreground, level_from(d, d->conf));
	lock_pidfile(d);
	signal(SIGPIPE, SIG_IGN);

	ev_signal_init(&d->sigterm, sig_shutdown_cb, SIGTERM);
	ev_signal_init(&d->sigint, sig_shutdown_cb, SIGINT);
	ev_signal_init(&d->sighup, sig_hup_cb, SIGHUP);
	ev_signal_init(&d->sigchld, sig_chld_cb, SIGCHLD);
	d->sigterm.data = d->sigint.data = d->sighup.data = d->sigchld.data = d;
	ev_signal_start(loop, &d->sigterm);
	ev_signal_start(loop, &d->sigint);
	ev_signal_start(loop, &d->sighup);
	ev_signal_start(loop, &d->sigchld);
	/* Signals must not keep the loop alive on their own. */
	ev_unref(loop);
	ev_unref(loop);
	ev_unref(loop);
	ev_unref(loop);
	d->started = ev_now(loop);
	log_info("%s %s started (pid %d, runtime dir %s)", d->name,
	    LOCALCAP_VERSION, (int)getpid(), d->runtime_dir);
}

void
daemon_finish(struct daemon *d)
{
	if (d->pidfile[0] && unlink(d->pidfile) == -1 && errno != ENOENT)
		log_warn("unlink %s", d->pidfile);
	if (d->pidfd > 0)
		close(d->pidfd);
	conf_free(d->conf);
	d->conf = NULL;
	log_info("%s stopped", d->name);
}

/* --- start-up text ---------------------------------------------------------- */

#define TEXT_MAPS_MAX	64
static struct {
	uintptr_t	lo, hi;
} text_maps[TEXT_MAPS_MAX];
static size_t ntext_maps;

void
daemon_note_text(void)
{
#ifdef __linux__
	char line[512], perms[8];
	unsigned long lo, hi, off, ino;
	FILE *f;

	ntext_maps = 0;
	if ((f = fopen("/proc/self/maps", "re")) == NULL)
		return;
	while (ntext_maps < TEXT_MAPS_MAX && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx %7s %lx %*s %lu", &lo, &hi, perms, &off,
		    &ino) != 5)
			continue;
		/* Executable, read-only, from a file ([vdso] has no inode). */
		if (strlen(perms) < 3 || perms[2] != 'x' || perms[1] == 'w' ||
		    ino == 0 || hi <= lo)
			continue;
		text_maps[ntext_maps].lo = lo;
		text_maps[ntext_maps].hi = hi;
		ntext_maps++;
	}
	fclose(f);
#endif
}

void
daemon_drop_text(void)
{
#ifdef __linux__
	for (size_t i = 0; i < ntext_maps; i++)
		if (madvise((void *)text_maps[i].lo, text_maps[i].hi -
		    text_maps[i].lo, MADV_DONTNEED) == -1)
			log_debug("madvise: %s", strerror(errno));
#endif
}
