/*
 * proxyd — the unprivileged flow consumer.
 *
 * Listens on <runtime>/flow.sock for flow sources (netstackd on Linux,
 * redirectord's macOS backend), each of which hands over flows as NewFlow +
 * one socket fd.  What proxyd does with a flow — TLS interception, HTTP, DNS,
 * raw relay and the flow store — is built in proxyd/'s other modules; this
 * file is the process: options, the flow.sock listener, the sources' life
 * cycle and shutdown.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>
#include <mbedtls/version.h>

#include "daemon.h"
#include "ipc.h"
#include "log.h"
#include "flow.pb-c.h"

#define PROXYD_DEFAULT_STATE_DIR	"/var/lib/localcap"

struct source {
	TAILQ_ENTRY(source)	 entry;
	struct ipc_peer		*peer;
};

struct proxyd {
	struct daemon		 d;
	const char		*state_dir_opt;
	char			 state_dir[256];
	struct ipc_listener	*flow_listener;
	TAILQ_HEAD(, source)	 sources;
	uint64_t		 flows_received;
	uint64_t		 flows_refused;
};

static struct proxyd proxyd = { .d = { .name = "proxyd" } };

static const char usage[] =
    "usage: proxyd [options]\n"
    "The localcap flow consumer: TLS interception, HTTP, DNS and the flow store.\n"
    "\n"
    DAEMON_COMMON_HELP
    "  -s, --state-dir DIR     CA and flow store (default "
    PROXYD_DEFAULT_STATE_DIR ")\n";

static void
print_version(void)
{
	char mbed[64];

	mbedtls_version_get_string_full(mbed);
	printf("proxyd %s (%s, protobuf-c %s, libev %d.%d, protocol %d)\n",
	    LOCALCAP_VERSION, mbed, protobuf_c_version(), ev_version_major(),
	    ev_version_minor(), LC__PROTOCOL__PROTOCOL_VERSION);
}

static void
send_status(struct ipc_peer *peer)
{
	Lc__ProxyStatus st;

	lc__proxy_status__init(&st);
	st.flows_active = 0;
	if (ipc_send(peer, LC__MSG_TYPE__MSG_PROXY_STATUS, &st.base, NULL, 0) == -1)
		log_warn("sending ProxyStatus");
}

static void
source_ready(struct ipc_peer *peer)
{
	const struct ipc_cred *cred = ipc_cred(peer);

	log_info("flow source connected: %s (pid %d, uid %d, version %s)",
	    ipc_peer_role(peer) == LC__ROLE__ROLE_NETSTACKD ? "netstackd" :
	    "redirectord", (int)cred->pid, (int)cred->uid, ipc_peer_version(peer));
	send_status(peer);
}

/* A NewFlow's fd must be a socket of the transport it claims. */
static int
check_flow_fd(const Lc__NewFlow *nf, int fd)
{
	int type;
	socklen_t len = sizeof(type);
	struct stat st;

	if (fstat(fd, &st) == -1 || !S_ISSOCK(st.st_mode))
		return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == -1)
		return -1;
	if (nf->transport == LC__TRANSPORT__TRANSPORT_TCP)
		return type == SOCK_STREAM ? 0 : -1;
	if (nf->transport == LC__TRANSPORT__TRANSPORT_UDP)
		return type == SOCK_DGRAM || type == SOCK_SEQPACKET ? 0 : -1;
	return -1;
}

static void
source_message(struct ipc_peer *peer, Lc__MsgType type,
    const ProtobufCMessage *msg, int *fds, size_t nfds)
{
	(void)nfds;
	switch (type) {
	case LC__MSG_TYPE__MSG_NEW_FLOW: {
		const Lc__NewFlow *nf = (const Lc__NewFlow *)(const void *)msg;

		if (check_flow_fd(nf, fds[0]) == -1) {
			proxyd.flows_refused++;
			ipc_refuse(peer, LC__ERROR_CODE__ERR_BAD_REQUEST,
			    "NewFlow %llu: fd is not a socket of its transport",
			    (unsigned long long)nf->flow_id);
			return;
		}
		proxyd.flows_received++;
		/*
		 * Flow handling (TLS, HTTP, DNS, relay, store) lands with the
		 * proxyd issue; until then the flow is refused by closing its
		 * socket, which the source sees as a reset.
		 */
		log_debug("flow %llu from %s: no flow handler yet, closing",
		    (unsigned long long)nf->flow_id,
		    nf->owner && nf->owner->name ? nf->owner->name : "?");
		break;
	}
	case LC__MSG_TYPE__MSG_FLOW_CLOSED:
		break;
	default:
		ipc_refuse(peer, LC__ERROR_CODE__ERR_BAD_REQUEST,
		    "proxyd does not take %s", ipc_type_name(type));
	}
}

static void
source_close(struct ipc_peer *peer, const char *reason)
{
	struct source *s = ipc_user(peer);

	if (s == NULL)
		return;
	if (ipc_peer_role(peer) != LC__ROLE__ROLE_UNSPECIFIED)
		log_warnx("flow source (pid %d) gone: %s", (int)ipc_cred(peer)->pid,
		    reason);
	TAILQ_REMOVE(&proxyd.sources, s, entry);
	free(s);
}

static const struct ipc_callbacks source_cb = {
	.on_ready = source_ready,
	.on_message = source_message,
	.on_close = source_close,
};

static void
source_accept(struct ipc_listener *l, struct ipc_peer *peer)
{
	struct source *s;

	(void)l;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		ipc_close(peer, "out of memory");
		return;
	}
	s->peer = peer;
	ipc_set_user(peer, s);
	TAILQ_INSERT_TAIL(&proxyd.sources, s, entry);
}

/* Root, or our own uid: the flow sources run as root or as a sibling user. */
static int
source_authorize(const struct ipc_cred *cred, void *arg)
{
	(void)arg;
	return cred->uid == 0 || cred->uid == geteuid();
}

static void
proxyd_shutdown(void *arg)
{
	struct source *s;

	(void)arg;
	ipc_listener_free(proxyd.flow_listener);
	proxyd.flow_listener = NULL;
	while ((s = TAILQ_FIRST(&proxyd.sources)) != NULL)
		ipc_close(s->peer, "proxyd shutting down");
}

static void
prepare_state_dir(void)
{
	const char *sd = proxyd.state_dir_opt ? proxyd.state_dir_opt :
	    conf_get(proxyd.d.conf, "proxyd", "state_dir");
	struct stat st;

	if (sd == NULL)
		sd = PROXYD_DEFAULT_STATE_DIR;
	daemon_abspath(sd, proxyd.state_dir, sizeof(proxyd.state_dir));
	/* The state dir will hold the CA key: proxyd's alone. */
	if (mkdir(proxyd.state_dir, 0700) == -1 && errno != EEXIST)
		fatal("cannot create state dir %s", proxyd.state_dir);
	if (stat(proxyd.state_dir, &st) == -1)
		fatal("state dir %s", proxyd.state_dir);
	if (!S_ISDIR(st.st_mode))
		fatalx("state dir %s is not a directory", proxyd.state_dir);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		fatalx("state dir %s is writable by group or others", proxyd.state_dir);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		DAEMON_LONGOPTS,
		{ "state-dir", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	const struct ipc_peer_config cfg = {
		.channel = IPC_CHAN_FLOW,
		.self_role = LC__ROLE__ROLE_PROXYD,
		.accept_roles = 1u << LC__ROLE__ROLE_NETSTACKD |
		    1u << LC__ROLE__ROLE_REDIRECTORD,
		.cb = &source_cb,
		.name = "flow.sock",
	};
	const struct daemon_hooks hooks = { .shutdown = proxyd_shutdown };
	struct ev_loop *loop;
	char path[300];
	int c;

	while ((c = getopt_long(argc, argv, DAEMON_SHORTOPTS "s:", longopts,
	    NULL)) != -1) {
		if (daemon_common_opt(&proxyd.d, c, optarg, usage, print_version))
			continue;
		if (c == 's')
			proxyd.state_dir_opt = optarg;
	}
	if (optind != argc) {
		fprintf(stderr, "proxyd: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (proxyd.state_dir_opt) {
		/* Resolved before daemon_start, which moves us to /. */
		static char abs_state[256];

		daemon_abspath(proxyd.state_dir_opt, abs_state, sizeof(abs_state));
		proxyd.state_dir_opt = abs_state;
	}
	TAILQ_INIT(&proxyd.sources);
	if ((loop = ev_default_loop(EVFLAG_AUTO)) == NULL)
		fatalx("cannot initialise libev");
	daemon_start(&proxyd.d, loop, &hooks);
	prepare_state_dir();

	daemon_path(&proxyd.d, "flow.sock", path, sizeof(path));
	if ((proxyd.flow_listener = ipc_listen(loop, path, 0660, &cfg,
	    source_authorize, source_accept)) == NULL)
		fatal("cannot listen on %s", path);
	log_info("listening for flow sources on %s; state dir %s", path,
	    proxyd.state_dir);

	ev_run(loop, 0);
	daemon_finish(&proxyd.d);
	return 0;
}
