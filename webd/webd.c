/*
 * webd — localcap's flow viewer: a small HTTP/1.1 server on loopback that
 * serves one page and a JSON API over the flow store (read-only, through
 * storeread/ as localcapctl reads it), the process list, and attach/detach
 * through redirectord's ctl.sock with the authority of whoever started it.
 *
 * Start-up, in the order the design asks for: listen, open the store,
 * connect ctl.sock, write the URL (with its random access token) → drop to
 * an unprivileged user → Landlock (read only: the store, /proc, the user
 * names)
 * → seccomp (no IP socket can be created: it never connects out).
 *
 * Two ways to run: as a daemon beside the others (`localcapctl up --web`,
 * the systemd unit: a pid file and <runtime>/webd.url), or --standalone
 * (`localcapctl web`: in the foreground, no files, the URL on stdout).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>

#include "daemon.h"
#include "log.h"
#include "sandbox.h"
#include "storeread/storeread.h"
#include "webd/api.h"
#include "webd/server.h"

#define WEBD_DEFAULT_LISTEN	"127.0.0.1:8081"
#define WEBD_DEFAULT_USER	"nobody"	/* when started as root */
#define WEBD_STATE_DIR		"/var/lib/localcap"

static const char usage[] =
    "usage: webd [options]\n"
    "localcap's flow viewer: the flow store, the processes, attach/detach,\n"
    "in a browser.  Prints the URL to open, with its access token.\n"
    "\n"
    "  -l, --listen ADDR:PORT  where to listen (default " WEBD_DEFAULT_LISTEN
    ");\n"
    "                          repeatable; numeric addresses only\n"
    "  -s, --state-dir DIR     proxyd's state dir, holding the store (default\n"
    "                          $LOCALCAP_STATE_DIR, else " WEBD_STATE_DIR ")\n"
    "  -u, --user USER         the user to run as once set up (started as\n"
    "                          root: default " WEBD_DEFAULT_USER ")\n"
    "      --standalone        no pid or URL file (localcapctl web)\n"
    "      --url-file FILE     write the URL there (default, as a daemon:\n"
    "                          <runtime dir>/webd.url, mode 0600)\n"
    DAEMON_COMMON_HELP;

static struct {
	struct daemon		 d;
	struct web_server	 srv;
	struct api		 api;
	struct ev_loop		*loop;
	int			 standalone;
	ev_signal		 sigterm, sigint;
	int			 waiting;	/* for the store, in wait_for_store() */
	int			 stop;		/* a signal came while waiting */
	char			 url_file[512];
	char			 url[256];
} w;

static void
print_version(void)
{
	printf("webd %s\n", LOCALCAP_VERSION);
}

static void
shutdown_cb(void *arg)
{
	(void)arg;
	if (w.waiting) {	/* nothing started yet: wait_for_store() ends */
		w.stop = 1;
		return;
	}
	web_server_stop(&w.srv);
	ctlc_free(&w.api.ctl);
	api_stop(&w.api);
}

static void
standalone_signal_cb(struct ev_loop *loop, ev_signal *sig, int revents)
{
	(void)revents;
	log_info("%s received, shutting down", strsignal(sig->signum));
	shutdown_cb(NULL);
	ev_break(loop, EVBREAK_ALL);
}

/* The URL a person opens: the first listener, loopback for a wildcard. */
static void
make_url(const char *listen)
{
	char host[80];
	const char *colon;
	size_t n;

	if (listen[0] == '[') {
		colon = strstr(listen, "]:");
		n = colon ? (size_t)(colon - listen - 1) : 0;
		snprintf(host, sizeof(host), "%.*s", (int)n, listen + 1);
		if (strcmp(host, "::") == 0)
			snprintf(host, sizeof(host), "::1");
		snprintf(w.url, sizeof(w.url), "http://[%s]:%u/?token=%s", host,
		    w.srv.port, w.srv.token);
	} else {
		colon = strrchr(listen, ':');
		n = colon ? (size_t)(colon - listen) : 0;
		snprintf(host, sizeof(host), "%.*s", (int)n, listen);
		if (strcmp(host, "0.0.0.0") == 0)
			snprintf(host, sizeof(host), "127.0.0.1");
		snprintf(w.url, sizeof(w.url), "http://%s:%u/?token=%s", host,
		    w.srv.port, w.srv.token);
	}
}

static bool
is_loopback(const char *listen)
{
	return strncmp(listen, "127.", 4) == 0 || strncmp(listen, "[::1]:", 6) == 0;
}

/*
 * The store lives in proxyd's state dir, which only proxyd's user may
 * enter: a viewer that switches to another user can open it only before
 * the switch.  If proxyd has not made it yet (the viewer started first:
 * `localcapctl web` before `up`, or its unit beside proxyd's), or has it
 * closed and this root may not make its -shm file (the unit grants
 * CAP_DAC_READ_SEARCH, not CAP_DAC_OVERRIDE), wait here,
 * still privileged but reading nothing from the network (the listeners
 * are not started), instead of serving "Permission denied" until
 * restarted.  Signals are handled (ev_run NOWAIT): 0 once the store is
 * open, -1 if told to stop first.
 */
static bool
store_not_there_yet(void)
{
	return w.api.store_why == SR_OPEN_EMPTY ||
	    w.api.store_why == SR_OPEN_NOT_LIVE;
}

static int
wait_for_store(void)
{
	if (api_store_open(&w.api) == 0 || !store_not_there_yet() ||
	    geteuid() != 0)
		return 0;	/* open, or an error waiting cannot mend */
	log_info("waiting for proxyd to %s the flow store (start the daemons: "
	    "localcapctl up)", w.api.store_why == SR_OPEN_EMPTY ? "make" :
	    "open");
	w.waiting = 1;
	while (!w.stop && api_store_open(&w.api) == -1 && store_not_there_yet()) {
		ev_run(w.loop, EVRUN_NOWAIT);
		if (!w.stop)
			usleep(250 * 1000);
	}
	w.waiting = 0;
	return w.stop ? -1 : 0;
}

/* The URL file: written whole (rename), 0600, before the privilege drop. */
static void
write_url_file(void)
{
	char tmp[600];
	int fd;
	size_t n = strlen(w.url);

	snprintf(tmp, sizeof(tmp), "%s.tmp", w.url_file);
	(void)unlink(tmp);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	    0600)) == -1)
		fatal("%s", tmp);
	if (write(fd, w.url, n) != (ssize_t)n || write(fd, "\n", 1) != 1 ||
	    close(fd) == -1)
		fatal("writing %s", tmp);
	if (rename(tmp, w.url_file) == -1)
		fatal("rename %s", w.url_file);
}

int
main(int argc, char *argv[])
{
	enum { OPT_STANDALONE = 256, OPT_URL_FILE };
	static const struct option longopts[] = {
		DAEMON_LONGOPTS,
		{ "listen",	required_argument,	NULL, 'l' },
		{ "state-dir",	required_argument,	NULL, 's' },
		{ "user",	required_argument,	NULL, 'u' },
		{ "standalone",	no_argument,		NULL, OPT_STANDALONE },
		{ "url-file",	required_argument,	NULL, OPT_URL_FILE },
		{ NULL, 0, NULL, 0 },
	};
	const char *listens[WEB_MAX_LISTEN], *user = NULL, *url_file = NULL;
	const char *state_dir = getenv("LOCALCAP_STATE_DIR");
	char err[512], store_dir[600], ctl_sock[300];
	const char *ro_paths[6];
	size_t nlisten = 0, i;
	int c;

	w.d.name = "webd";
	while ((c = getopt_long(argc, argv, DAEMON_SHORTOPTS "l:s:u:", longopts,
	    NULL)) != -1) {
		if (daemon_common_opt(&w.d, c, optarg, usage, print_version))
			continue;
		switch (c) {
		case 'l':
			if (nlisten == WEB_MAX_LISTEN) {
				fprintf(stderr, "webd: at most %d --listen\n",
				    WEB_MAX_LISTEN);
				return 2;
			}
			listens[nlisten++] = optarg;
			break;
		case 's': state_dir = optarg; break;
		case 'u': user = optarg; break;
		case OPT_STANDALONE: w.standalone = 1; break;
		case OPT_URL_FILE: url_file = optarg; break;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "webd: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (nlisten == 0)
		listens[nlisten++] = WEBD_DEFAULT_LISTEN;
	if (state_dir == NULL || state_dir[0] == '\0')
		state_dir = WEBD_STATE_DIR;

	w.loop = ev_default_loop(EVFLAG_AUTO);
	if (w.standalone) {
		w.d.foreground = 1;
		log_init("webd", 1, LOG_LEVEL_INFO + w.d.verbose);
		signal(SIGPIPE, SIG_IGN);
		ev_signal_init(&w.sigterm, standalone_signal_cb, SIGTERM);
		ev_signal_init(&w.sigint, standalone_signal_cb, SIGINT);
		ev_signal_start(w.loop, &w.sigterm);
		ev_signal_start(w.loop, &w.sigint);
		ev_unref(w.loop);
		ev_unref(w.loop);
		snprintf(w.d.runtime_dir, sizeof(w.d.runtime_dir), "%s",
		    w.d.runtime_dir_opt ? w.d.runtime_dir_opt :
		    getenv("LOCALCAP_RUNTIME_DIR") && getenv("LOCALCAP_RUNTIME_DIR")[0] ?
		    getenv("LOCALCAP_RUNTIME_DIR") : DAEMON_DEFAULT_RUNTIME_DIR);
	} else {
		const struct daemon_hooks hooks = { .shutdown = shutdown_cb };

		daemon_start(&w.d, w.loop, &hooks);
	}

	if (web_token_new(w.srv.token) == -1)
		fatal("getrandom");
	for (i = 0; i < nlisten; i++) {
		if (web_server_listen(&w.srv, listens[i], err, sizeof(err)) == -1)
			fatalx("listen: %s", err);
		if (!is_loopback(listens[i]))
			log_warnx("listening on %s, beyond loopback: anyone who "
			    "reaches it and has the token sees every flow",
			    listens[i]);
	}

	/* What needs the starter's identity: the store, ctl.sock, the URL file. */
	w.api.state_dir = state_dir;
	if (wait_for_store() == -1) {
		if (!w.standalone)
			daemon_finish(&w.d);
		log_info("webd stopped while waiting for the flow store");
		return 0;
	}
	snprintf(ctl_sock, sizeof(ctl_sock), "%s/ctl.sock", w.d.runtime_dir);
	ctlc_init(&w.api.ctl, w.loop, ctl_sock);
	make_url(listens[0]);
	if (!w.standalone) {
		if (url_file)
			daemon_abspath(url_file, w.url_file, sizeof(w.url_file));
		else
			daemon_path(&w.d, "webd.url", w.url_file, sizeof(w.url_file));
		write_url_file();
	}

	if (user == NULL && geteuid() == 0)
		user = WEBD_DEFAULT_USER;
	snprintf(store_dir, sizeof(store_dir), "%s/%s", state_dir, STORE_DIR_NAME);
	/* The store; /proc and user names for the processes tab. */
	i = 0;
	ro_paths[i++] = store_dir;
	ro_paths[i++] = "/proc";
	ro_paths[i++] = "/etc/passwd";
	ro_paths[i++] = "/etc/nsswitch.conf";
	ro_paths[i] = NULL;
	{
		const struct sandbox sb = {
			.profile = SANDBOX_WEBD,
			.user = user,
			.ro_paths = ro_paths,
			.remove_dir = w.standalone ? NULL : w.d.runtime_dir,
		};

		sandbox_enter(&sb);
	}

	web_server_start(&w.srv, w.loop, api_handle, &w.api);
	api_init(&w.api, &w.srv, w.loop);
	/* The token goes to stdout (and the URL file), never to the log. */
	log_info("listening on port %u (%zu address%s)", w.srv.port,
	    w.srv.nlisten, w.srv.nlisten == 1 ? "" : "es");
	/* As a daemon stdout is a log file: the URL file is where it goes. */
	if (w.standalone) {
		printf("localcap viewer: %s\n", w.url);
		fflush(stdout);
	}

	ev_run(w.loop, 0);

	if (!w.standalone) {
		if (unlink(w.url_file) == -1 && errno != ENOENT)
			log_debug("unlink %s: %s", w.url_file, strerror(errno));
		daemon_finish(&w.d);
	}
	log_info("webd stopped: %llu requests, %llu refused without the token, "
	    "%llu for a foreign Host, %llu malformed; %llu store polls",
	    (unsigned long long)w.srv.requests,
	    (unsigned long long)w.srv.refused_401,
	    (unsigned long long)w.srv.refused_403,
	    (unsigned long long)w.srv.bad_requests,
	    (unsigned long long)w.api.polls);
	return 0;
}
