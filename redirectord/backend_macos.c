/*
 * redirectord's macOS backend (backend.h): the system extension captures;
 * redirectord keeps the active spec (the same attach/detach bookkeeping as
 * on Linux, backend.c) and hands each new one to the extension through the
 * host app, `localcap-host spec TEXT`, which passes it on as a provider
 * message (the only channel NetworkExtension gives into a running
 * provider, and one only the app owning the configuration may use).  The
 * extension's core (mx_core_set_spec) applies it or refuses it whole; a
 * refused or failed hand-over leaves redirectord's spec as it was.
 *
 * Specs are checked here first with the extension's own compiler
 * (macos-extension/core/mx_spec.c), so errors name the item and offset in
 * what the caller wrote, and cgroup:/unit: are refused as the extension
 * refuses them.  `run` is Linux's (it needs a cgroup): not offered.
 *
 * Once started it confines itself with Seatbelt (macos_confine).
 *
 * The helper runs with a deadline (RD_HOST_TIMEOUT_S) and its output is
 * read into a bounded buffer; status asks it at most every
 * RD_HOST_STATUS_CACHE_S.  Portable C: compiled by make PORTABLE=1 and run
 * on Linux by test/integration/macos_redirectord.sh with a stand-in host.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "errmsg.h"
#include "log.h"
#include "redirectord/backend.h"
#include "sandbox.h"
#include "macos-extension/core/mx_spec.h"

extern char **environ;

#define RD_HOST_DEFAULT	"/Applications/localcap.app/Contents/MacOS/localcap-host"
/* How long localcap-host may take (it waits for the provider's reply). */
#define RD_HOST_TIMEOUT_S	10
#define RD_HOST_OUTPUT_MAX	512
#define RD_HOST_STATUS_CACHE_S	2

struct macos_backend {
	struct daemon	*d;
	const char	*host_opt;
	const char	*host;		/* localcap-host */
	const char	*service_user_opt;
	int		 service_uid_set;
	uid_t		 service_uid;
	char		 spec[RD_SPEC_TEXT_MAX];	/* what the extension has */
	int		 handed;	/* the last hand-over succeeded */
	/* The host's last status answer. */
	time_t		 status_at;
	int		 status_ok;
	int		 proxy_connected;
	char		 status_text[RD_HOST_OUTPUT_MAX];
	uint64_t	 handovers, handover_failures;
};

static struct macos_backend mb;

static const struct option macos_longopts[] = {
	{ "host-app",	required_argument,	NULL, 'H' },
	{ "service-user", required_argument,	NULL, 'U' },
	{ NULL, 0, NULL, 0 },
};

static int
macos_option(int c, const char *arg)
{
	if (c == 'H')
		mb.host_opt = arg;
	else if (c == 'U')
		mb.service_user_opt = arg;
	else
		return 0;
	return 1;
}

/* Its last non-empty line, without the trailing newline. */
static void
last_line(char *buf)
{
	char *end = buf + strlen(buf), *start;

	while (end > buf && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
		*--end = '\0';
	start = strrchr(buf, '\n');
	if (start)
		memmove(buf, start + 1, strlen(start + 1) + 1);
}

/*
 * Run `host verb [arg]`, stdout and stderr into out (its last line), with a
 * deadline.  Returns its exit status (0-255), or -1 with out saying why.
 */
static int
run_host(const char *verb, const char *arg, char *out, size_t outlen)
{
	char *argv[4] = { (char *)(uintptr_t)mb.host, (char *)(uintptr_t)verb,
	    (char *)(uintptr_t)arg, NULL };
	posix_spawn_file_actions_t fa;
	struct timespec t0, now;
	size_t used = 0;
	int p[2], status, rc, timed_out = 0;
	pid_t pid;

	out[0] = '\0';
	if (pipe(p) == -1) {
		seterr(out, outlen, "pipe: %s", strerror(errno));
		return -1;
	}
	(void)fcntl(p[0], F_SETFD, FD_CLOEXEC);
	(void)fcntl(p[1], F_SETFD, FD_CLOEXEC);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	rc = posix_spawn(&pid, mb.host, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (rc != 0) {
		close(p[0]);
		seterr(out, outlen, "cannot run %s: %s", mb.host, strerror(rc));
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd pfd = { .fd = p[0], .events = POLLIN };
		long left_ms;
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &now);
		left_ms = RD_HOST_TIMEOUT_S * 1000L -
		    ((now.tv_sec - t0.tv_sec) * 1000L +
		    (now.tv_nsec - t0.tv_nsec) / 1000000L);
		if (left_ms <= 0) {
			timed_out = 1;
			break;
		}
		if (poll(&pfd, 1, (int)left_ms) == -1) {
			if (errno == EINTR)
				continue;
			timed_out = 1;
			break;
		}
		/* Full: keep the later half (the last line is the answer). */
		if (used == outlen - 1) {
			size_t keep = used / 2;

			memmove(out, out + used - keep, keep);
			used = keep;
		}
		n = read(p[0], out + used, outlen - 1 - used);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		used += (size_t)n;
		out[used] = '\0';
	}
	close(p[0]);
	if (timed_out)
		(void)kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR) {
			seterr(out, outlen, "waiting for %s: %s", mb.host,
			    strerror(errno));
			return -1;
		}
	if (timed_out) {
		seterr(out, outlen, "%s %s: no answer in %d s", mb.host, verb,
		    RD_HOST_TIMEOUT_S);
		return -1;
	}
	last_line(out);
	if (!WIFEXITED(status)) {
		seterr(out, outlen, "%s %s: killed by signal %d", mb.host, verb,
		    WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		return -1;
	}
	return WEXITSTATUS(status);
}

/* The items alone, with the extension's own compiler. */
static int
check_items(void *arg, const char *items, char *err, size_t errlen,
    uint32_t *err_offset)
{
	struct ispec_error e;
	struct mx_spec *spec = calloc(1, sizeof(*spec));
	int rc;

	(void)arg;
	if (spec == NULL) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	rc = mx_spec_compile(items, spec, NULL, &e);
	free(spec);
	if (rc == -1) {
		seterr(err, errlen, "%s", e.msg);
		if (err_offset)
			*err_offset = (uint32_t)e.offset;
	}
	return rc;
}

/* Hand candidate to the extension; on success it is the active spec. */
static int
publish(void *arg, const char *candidate, size_t user_start, char *err,
    size_t errlen, uint32_t *err_offset)
{
	struct ispec_error e;
	struct mx_spec *spec;
	char out[RD_HOST_OUTPUT_MAX];
	int rc;

	(void)arg;
	if ((spec = calloc(1, sizeof(*spec))) == NULL) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	rc = mx_spec_compile(candidate, spec, NULL, &e);
	free(spec);
	if (rc == -1) {
		seterr(err, errlen, "%s", e.msg);
		if (err_offset)
			*err_offset = (uint32_t)(e.offset >= user_start ?
			    e.offset - user_start : 0);
		return -1;
	}
	mb.handovers++;
	rc = run_host("spec", candidate, out, sizeof(out));
	mb.status_at = 0;	/* ask again on the next status */
	if (rc != 0) {
		mb.handover_failures++;
		mb.handed = 0;
		if (rc == -1)
			seterr(err, errlen, "the extension did not take the spec: "
			    "%s", out);
		else
			seterr(err, errlen, "the extension did not take the spec: "
			    "%s (localcap-host exit %d)", out[0] ? out : "no reason "
			    "given", rc);
		return -1;
	}
	mb.handed = 1;
	memmove(mb.spec, candidate, strlen(candidate) + 1);
	return 0;
}

static const struct rd_speclist_ops macos_list = {
	.check = check_items,
	.publish = publish,
};

static int
macos_attach(const char *spec, char *err, size_t errlen, uint32_t *err_offset)
{
	return rd_speclist_attach(mb.spec, spec, &macos_list, NULL, err, errlen,
	    err_offset);
}

static int
macos_detach(const char *spec, bool all, char *err, size_t errlen)
{
	return rd_speclist_detach(mb.spec, spec, all, &macos_list, NULL, err,
	    errlen);
}

static void
macos_written_spec(char *buf, size_t len, uint32_t *runs)
{
	snprintf(buf, len, "%s", mb.spec);
	*runs = 0;
}

/* proxyd's user (_localcap) never reaches capture. */
static int
service_uid(uid_t uid)
{
	return mb.service_uid_set && uid == mb.service_uid && uid != 0;
}

static void
refresh_status(void)
{
	time_t now = time(NULL);
	int rc;

	if (mb.status_at != 0 && now - mb.status_at < RD_HOST_STATUS_CACHE_S)
		return;
	rc = run_host("status", NULL, mb.status_text, sizeof(mb.status_text));
	mb.status_at = now;
	mb.status_ok = rc == 0;
	mb.proxy_connected = rc == 0 &&
	    strstr(mb.status_text, "proxy connected") != NULL;
}

static void
macos_status(Lc__StatusReply *st, Lc__DaemonStatus ds[RD_STATUS_ROWS],
    Lc__DaemonStatus *dsp[RD_STATUS_ROWS])
{
	static Lc__Counter counters[2], *counter_ptrs[2];
	static char note[RD_HOST_OUTPUT_MAX + 64];
	static const char *const names[2] = {
		"spec_handovers", "spec_handover_failures",
	};
	const uint64_t vals[2] = { mb.handovers, mb.handover_failures };
	size_t i;

	refresh_status();
	for (i = 0; i < 2; i++) {
		lc__counter__init(&counters[i]);
		counters[i].name = (char *)(uintptr_t)names[i];
		counters[i].value = vals[i];
		counter_ptrs[i] = &counters[i];
	}
	ds[0].n_counters = 2;
	ds[0].counters = counter_ptrs;
	/* The extension's pid is the system's to know, not ours. */
	rd_fill_daemon(&ds[1], "extension", mb.proxy_connected, 0, NULL);
	dsp[1] = &ds[1];
	st->n_daemons = 2;
	st->spec = mb.spec;
	st->capturing = mb.proxy_connected && mb.handed && mb.spec[0] != '\0';
	st->attach_point = (char *)(uintptr_t)"system extension";
	if (!mb.status_ok)
		snprintf(note, sizeof(note), "the extension's state is unknown: %s",
		    mb.status_text);
	else if (!mb.proxy_connected)
		snprintf(note, sizeof(note), "the extension is not running (%s): "
		    "localcap-host enable", mb.status_text);
	else if (!mb.handed && mb.spec[0] != '\0')
		snprintf(note, sizeof(note), "the extension did not take the last "
		    "spec: attach again");
	else if (mb.spec[0] == '\0')
		snprintf(note, sizeof(note), "nothing attached: localcapctl attach "
		    "SPEC");
	else
		note[0] = '\0';
	st->note = note;
}

static void
macos_start(struct daemon *d)
{
	const char *user;
	char out[RD_HOST_OUTPUT_MAX];

	mb.d = d;
	mb.host = mb.host_opt ? mb.host_opt :
	    conf_get(d->conf, "redirectord", "host_app");
	if (mb.host == NULL)
		mb.host = RD_HOST_DEFAULT;
	if (access(mb.host, X_OK) == -1)
		fatal("--host-app %s", mb.host);
	user = mb.service_user_opt ? mb.service_user_opt :
	    conf_get(d->conf, "redirectord", "service_user");
	if (user) {
		struct passwd pw, *found = NULL;
		char buf[1024];

		if (getpwnam_r(user, &pw, buf, sizeof(buf), &found) != 0 ||
		    found == NULL)
			fatalx("--service-user: unknown user '%s'", user);
		mb.service_uid = pw.pw_uid;
		mb.service_uid_set = 1;
	}
	/* Start from nothing: the extension may keep a spec from our last run. */
	if (run_host("spec", "", out, sizeof(out)) == 0)
		mb.handed = 1;
	else
		log_warnx("the extension did not take the empty spec (%s); "
		    "attach once it runs", out);
}

/*
 * Everything is open (ctl.sock listens, the empty spec is handed over):
 * Seatbelt from here on, packaging/macos/sandbox/redirectord.sb.  It stays
 * root (LOCAL_PEERCRED needs nothing, the host app configures
 * NetworkExtension as root) but may only start localcap-host — unconfined,
 * as NetworkExtension's XPC services are far more than this profile would
 * give — remove its runtime files at exit and read its config.
 */
static void
macos_confine(void)
{
	const struct sandbox sb = {
		.profile = SANDBOX_REDIRECTORD,
		.remove_dir = mb.d->runtime_dir,
		.ro_file = mb.d->config_path,
		.exec_file = mb.host,
	};

	sandbox_confine(&sb);
}

static void
macos_shutdown(void)
{
	char out[RD_HOST_OUTPUT_MAX];

	if (mb.d == NULL || mb.spec[0] == '\0')
		return;
	/* Capture ends with redirectord, as on Linux. */
	if (run_host("spec", "", out, sizeof(out)) != 0)
		log_warnx("leaving the extension's spec: %s", out);
	mb.spec[0] = '\0';
}

const struct rd_backend rd_backend_macos = {
	.name = "macos",
	.summary = "The privileged part of localcap on macOS: the control socket, "
	    "and the\nintercept spec handed to the system extension.",
	.help =
	    "  -H, --host-app PATH     the host app's localcap-host (default\n"
	    "                          " RD_HOST_DEFAULT ")\n"
	    "  -U, --service-user NAME proxyd's user, refused on ctl.sock\n",
	.shortopts = "H:U:",
	.longopts = macos_longopts,
	.option = macos_option,
	.start = macos_start,
	.confine = macos_confine,
	.shutdown = macos_shutdown,
	.service_uid = service_uid,
	.attach = macos_attach,
	.detach = macos_detach,
	.written_spec = macos_written_spec,
	.run = NULL,
	.status = macos_status,
};
