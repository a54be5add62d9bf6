/*
 * redirectord — the privileged part of localcap.
 *
 * Serves the admin CLI on <runtime>/ctl.sock (root and members of the
 * "localcap-admin" group, never a service user; every change logged with the
 * caller's uid and pid).  The capture machinery is a backend (backend.h):
 * on Linux eBPF cgroup programs, the TUN device, policy routes and
 * data.sock for netstackd (backend_linux.c); on macOS the system extension,
 * driven through its host app (backend_macos.c).  This file is the process,
 * the same on both: options, the control listener, the control requests
 * and the status of the whole chain.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "daemon.h"
#include "ipc.h"
#include "log.h"
#include "msg.h"
#include "msgcodec.h"
#include "control.pb-c.h"
#include "redirectord/backend.h"

/* macOS's backend on a Mac and in the portable builds (backend.h). */
#if defined(__APPLE__) || defined(LC_PORTABLE) || defined(LC_PORTABLE_CHECK)
#define BACKEND		rd_backend_macos
#else
#define BACKEND		rd_backend_linux
#endif
static const struct rd_backend *const be = &BACKEND;

/*
 * The admin group: its members may capture (and so decrypt) anyone's
 * traffic.  No service user belongs to it (packaging/systemd/localcap.sysusers).
 */
#define CTL_GROUP	"localcap-admin"
/*
 * Control connections are short (one request, one reply) but a client may
 * keep one open for a while (a viewer polling status).  Bounded in number,
 * in time to finish the handshake, and in idleness, so no caller can hold
 * redirectord's file descriptors.
 */
#define CTL_MAX_CLIENTS		64
#define CTL_HANDSHAKE_S		5.
#define CTL_IDLE_S		60.

struct client {
	TAILQ_ENTRY(client)	 entry;
	struct ipc_peer		*peer;
	ev_tstamp		 since;		/* accepted, or its last request */
};

struct redirectord {
	struct daemon		 d;
	struct ipc_listener	*ctl_listener;
	TAILQ_HEAD(, client)	 clients;
	size_t			 nclients;
	ev_timer		 ctl_sweep;	/* handshake and idle deadlines */
};

static struct redirectord rd = { .d = { .name = "redirectord" } };

static void
print_version(void)
{
	printf("redirectord %s (protobuf-c %s, libev %d.%d, protocol %d)\n",
	    LOCALCAP_VERSION, protobuf_c_version(), ev_version_major(),
	    ev_version_minor(), LC__PROTOCOL__PROTOCOL_VERSION);
}

/* --- control plane (ctl.sock) ------------------------------------------------ */

/*
 * Root, and members of the admin group by the caller's real groups as the
 * kernel holds them (SO_PEERGROUPS at connect; LOCAL_PEERCRED on macOS),
 * never by what /etc/group says of its uid.  The service users (the
 * backend's service_uid: netstackd's and proxyd's) are refused whatever
 * their groups: code running inside either must not reach capture.
 */
static int
ctl_authorize(const struct ipc_cred *cred, void *arg)
{
	struct group grp, *found = NULL;
	char gbuf[4096];

	(void)arg;
	if (cred->uid == 0)
		return 1;
	if (be->service_uid(cred->uid)) {
		log_warnx("ctl.sock: refused uid %d pid %d: a localcap service user",
		    (int)cred->uid, (int)cred->pid);
		return 0;
	}
	if (cred->ngroups < 0 ||
	    getgrnam_r(CTL_GROUP, &grp, gbuf, sizeof(gbuf), &found) != 0 || !found)
		return 0;
	return ipc_cred_in_group(cred, grp.gr_gid);
}

static void
ctl_status(Lc__StatusReply *st, Lc__DaemonStatus ds[RD_STATUS_ROWS],
    Lc__DaemonStatus *dsp[RD_STATUS_ROWS])
{
	lc__status_reply__init(st);
	rd_fill_daemon(&ds[0], "redirectord", 1, (uint32_t)getpid(),
	    LOCALCAP_VERSION);
	ds[0].uptime_s = (uint64_t)(ev_now(rd.d.loop) - rd.d.started);
	dsp[0] = &ds[0];
	st->n_daemons = 1;
	st->daemons = dsp;
	st->runtime_dir = rd.d.runtime_dir;
	be->status(st, ds, dsp);
}

static void
ctl_request(struct ipc_peer *peer, const Lc__CtlRequest *pb)
{
	const struct ipc_cred *cred = ipc_cred(peer);
	struct msg_ctl_request req;
	struct msg_ctl_reply reply = { .answer = MSG_CTL_ERROR };
	struct msg_ctl_reply_pb out;
	Lc__StatusReply st;
	Lc__DaemonStatus ds[RD_STATUS_ROWS], *dsp[RD_STATUS_ROWS];
	char text[600], cgroup[512], written[RD_SPEC_TEXT_MAX];
	const char *what = "status", *why;

	if (msg_ctl_request_from_pb(&req, pb, &why) == -1) {
		reply.id = pb->request_id;
		reply.code = LC__ERROR_CODE__ERR_BAD_REQUEST;
		reply.message = why;
		what = "unknown";
		goto send;
	}
	reply.id = req.id;
	switch (req.op) {
	case MSG_CTL_STATUS:
		ctl_status(&st, ds, dsp);
		reply.answer = MSG_CTL_STATUS_REPLY;
		reply.status = &st;
		break;
	case MSG_CTL_ATTACH:
	case MSG_CTL_DETACH: {
		int attach = req.op == MSG_CTL_ATTACH;
		uint32_t offset = 0;
		int rc;

		what = attach ? "attach" : "detach";
		rc = attach ? be->attach(req.spec, text, sizeof(text), &offset) :
		    be->detach(req.spec, req.all, text, sizeof(text));
		/* Every change request is logged with who asked. */
		log_info("%s '%s' by uid %d pid %d: %s", what,
		    !attach && req.all ? "all" : req.spec,
		    (int)cred->uid, (int)cred->pid, rc == 0 ? "done" : text);
		if (rc == 0) {
			be->written_spec(written, sizeof(written), &reply.runs);
			reply.answer = MSG_CTL_SPEC;
			reply.spec = written;
		} else {
			reply.code = attach ? LC__ERROR_CODE__ERR_BAD_SPEC :
			    strstr(text, "is not attached") ? LC__ERROR_CODE__ERR_NOT_FOUND :
			    LC__ERROR_CODE__ERR_BAD_SPEC;
			reply.message = text;
			reply.offset = offset;
		}
		break;
	}
	case MSG_CTL_RUN: {
		pid_t pid = req.pid ? (pid_t)req.pid : cred->pid;

		what = "run";
		if (cred->uid != 0 && pid != cred->pid) {
			snprintf(text, sizeof(text), "only root may capture another "
			    "process (pid %d); you may run your own (pid %d)",
			    (int)pid, (int)cred->pid);
			reply.code = LC__ERROR_CODE__ERR_PERMISSION_DENIED;
		} else if (be->run == NULL) {
			snprintf(text, sizeof(text), "run is not supported on "
			    "%s: attach the program by name", be->name);
			reply.code = LC__ERROR_CODE__ERR_BAD_REQUEST;
		} else if (be->run(pid, cgroup, sizeof(cgroup), text,
		    sizeof(text)) == -1)
			reply.code = LC__ERROR_CODE__ERR_BAD_REQUEST;
		log_info("run pid %d by uid %d pid %d: %s", (int)pid, (int)cred->uid,
		    (int)cred->pid, reply.code ? text : cgroup);
		if (reply.code)
			reply.message = text;
		else {
			reply.answer = MSG_CTL_RUN_REPLY;
			reply.cgroup = cgroup;
		}
		break;
	}
	}
send:
	log_debug("ctl %s from uid %d pid %d", what, (int)cred->uid, (int)cred->pid);
	msg_ctl_reply_to_pb(&reply, &out);
	if (ipc_send(peer, LC__MSG_TYPE__MSG_CTL_REPLY, &out.m.base, NULL, 0) == -1)
		ipc_close(peer, "cannot queue the reply");
}

static void
client_message(struct ipc_peer *peer, Lc__MsgType type,
    const ProtobufCMessage *msg, int *fds, size_t nfds)
{
	struct client *cl = ipc_user(peer);

	(void)fds;
	(void)nfds;
	if (cl)
		cl->since = ev_now(rd.d.loop);
	if (type == LC__MSG_TYPE__MSG_CTL_REQUEST)
		ctl_request(peer, (const Lc__CtlRequest *)(const void *)msg);
	else
		ipc_refuse(peer, LC__ERROR_CODE__ERR_BAD_REQUEST,
		    "ctl.sock takes CtlRequest, not %s", ipc_type_name(type));
}

static void
client_close(struct ipc_peer *peer, const char *reason)
{
	struct client *cl = ipc_user(peer);

	(void)reason;
	if (cl) {
		TAILQ_REMOVE(&rd.clients, cl, entry);
		rd.nclients--;
		free(cl);
	}
}

/* Close control connections past their handshake or idle deadline. */
static void
ctl_sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct client *cl, *next;
	ev_tstamp now = ev_now(loop);

	(void)w;
	(void)revents;
	for (cl = TAILQ_FIRST(&rd.clients); cl; cl = next) {
		next = TAILQ_NEXT(cl, entry);
		if (!ipc_is_ready(cl->peer) && now - cl->since > CTL_HANDSHAKE_S)
			ipc_close(cl->peer, "no handshake in time");
		else if (now - cl->since > CTL_IDLE_S)
			ipc_close(cl->peer, "idle");
	}
}

static const struct ipc_callbacks client_cb = {
	.on_message = client_message,
	.on_close = client_close,
};

static void
client_accept(struct ipc_listener *l, struct ipc_peer *peer)
{
	struct client *cl;

	(void)l;
	/* root is never locked out by other callers' connections. */
	if (rd.nclients >= CTL_MAX_CLIENTS && ipc_cred(peer)->uid != 0) {
		log_warnx("ctl.sock: %d control connections open; refused uid %d "
		    "pid %d", CTL_MAX_CLIENTS, (int)ipc_cred(peer)->uid,
		    (int)ipc_cred(peer)->pid);
		ipc_refuse(peer, LC__ERROR_CODE__ERR_BUSY, "too many control "
		    "connections (%d); try again", CTL_MAX_CLIENTS);
		return;
	}
	if ((cl = calloc(1, sizeof(*cl))) == NULL) {
		ipc_close(peer, "out of memory");
		return;
	}
	cl->peer = peer;
	cl->since = ev_now(rd.d.loop);
	rd.nclients++;
	ipc_set_user(peer, cl);
	TAILQ_INSERT_TAIL(&rd.clients, cl, entry);
}

static void
redirectord_shutdown(void *arg)
{
	struct client *cl;

	(void)arg;
	ipc_listener_free(rd.ctl_listener);
	rd.ctl_listener = NULL;
	while ((cl = TAILQ_FIRST(&rd.clients)) != NULL)
		ipc_close(cl->peer, "redirectord shutting down");
	be->shutdown();
}

int
main(int argc, char *argv[])
{
	static const struct option common_longopts[] = { DAEMON_LONGOPTS };
	const size_t ncommon = sizeof(common_longopts) / sizeof(common_longopts[0]);
	struct option longopts[32];
	char shortopts[64];
	const struct ipc_peer_config ctl_cfg = {
		.channel = IPC_CHAN_CTL,
		.self_role = LC__ROLE__ROLE_REDIRECTORD,
		.accept_roles = 1u << LC__ROLE__ROLE_CTL,
		.cb = &client_cb,
		.name = "ctl.sock",
	};
	const struct daemon_hooks hooks = { .shutdown = redirectord_shutdown };
	struct ev_loop *loop;
	char path[300], usage[4096];
	size_t n;
	int c;

	/* The daemon's options, then the backend's. */
	memcpy(longopts, common_longopts, sizeof(common_longopts));
	for (n = 0; be->longopts[n].name != NULL; n++) {
		if (ncommon + n + 1 >= sizeof(longopts) / sizeof(longopts[0]))
			fatalx("too many backend options");
		longopts[ncommon + n] = be->longopts[n];
	}
	memset(&longopts[ncommon + n], 0, sizeof(longopts[0]));
	snprintf(shortopts, sizeof(shortopts), "%s%s", DAEMON_SHORTOPTS,
	    be->shortopts);
	snprintf(usage, sizeof(usage), "usage: redirectord [options]\n%s\n\n%s%s",
	    be->summary, DAEMON_COMMON_HELP, be->help);
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		if (daemon_common_opt(&rd.d, c, optarg, usage, print_version))
			continue;
		(void)be->option(c, optarg);
	}
	if (optind != argc) {
		fprintf(stderr, "redirectord: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	TAILQ_INIT(&rd.clients);
	if ((loop = ev_default_loop(EVFLAG_AUTO)) == NULL)
		fatalx("cannot initialise libev");
	daemon_start(&rd.d, loop, &hooks);
	be->start(&rd.d);

	daemon_path(&rd.d, "ctl.sock", path, sizeof(path));
	/* 0666: who may use it is decided by the peer's credentials, with a
	 * clear refusal. */
	if ((rd.ctl_listener = ipc_listen(loop, path, 0666, &ctl_cfg,
	    ctl_authorize, client_accept)) == NULL)
		fatal("cannot listen on %s", path);
	log_info("control socket %s ready", path);
	ev_timer_init(&rd.ctl_sweep, ctl_sweep_cb, 1., 1.);
	ev_timer_start(loop, &rd.ctl_sweep);
	ev_unref(loop);		/* the sweep alone does not keep us running */

	/* Everything is open: keep only what capture needs from here on. */
	daemon_note_text();
	if (be->confine)
		be->confine();
	daemon_drop_text();	/* start-up code out of the resident set */

	ev_run(loop, 0);
	daemon_finish(&rd.d);
	return 0;
}
