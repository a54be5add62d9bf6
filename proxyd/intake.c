/*
 * proxyd's flow intake (see intake.h): one struct source per connection on
 * flow.sock, NewFlow/FlowClosed handed to the relay, and ProxyStatus sent
 * back, coalesced by one timer so a burst of flows costs one message.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "log.h"
#include "msg.h"
#include "msgcodec.h"
#include "proxyd/aead.h"
#include "proxyd/intake.h"
#include "proxyd/listen.h"
#include "flow.pb-c.h"

struct source {
	TAILQ_ENTRY(source)	 entry;
	struct intake		*in;
	struct ipc_peer		*peer;
};

struct intake {
	struct ev_loop		*loop;
	struct relay		*relay;
	const struct plisten	*listener;	/* NULL: no explicit proxy */
	TAILQ_HEAD(, source)	 sources;
	size_t			 nsources;
	uint64_t		 bad_fds;
	uint64_t		 resets_sent;	/* FlowClosed "reset" to sources */
	ev_timer		 status_timer;
	ev_tstamp		 status_sent;	/* loop time of the last round */
};

/* Counters of ProxyStatus, by name, so the set can grow without a proto change. */
/* --- NewFlow: a source's description of a flow, into proxyd's own ------------ */

/* Decoded and checked where every message is (common/msgcodec.c). */
int
flow_meta_from_newflow(struct flow_meta *m, const Lc__NewFlow *pb, char *err,
    size_t errlen)
{
	struct msg_new_flow nf;

	memset(m, 0, sizeof(*m));
	if (msg_new_flow_from_pb(&nf, pb, err, errlen) == -1)
		return -1;
	m->source_flow_id = nf.flow_id;
	m->transport = nf.ipproto == IPPROTO_UDP ? FLOW_UDP : FLOW_TCP;
	m->src = nf.src;
	m->dst = nf.dst;
	m->owner = nf.owner;
	m->start_us = nf.start_us;
	if (nf.exe[0] != '\0' && (m->exe = strdup(nf.exe)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/*
 * A NewFlow straight from a source: validated (a bad one is refused: one log
 * line, fd closed, 0 returned) and started in the relay.
 */
uint64_t
intake_new_flow(struct relay *r, const void *source, const Lc__NewFlow *nf,
    int fd)
{
	struct flow_meta meta;
	char err[128];

	if (flow_meta_from_newflow(&meta, nf, err, sizeof(err)) == -1) {
		relay_refuse(r, fd, "NewFlow %llu refused: %s",
		    (unsigned long long)nf->flow_id, err);
		return 0;
	}
	return relay_start(r, source, &meta, fd);
}

static void
send_status(struct intake *in, struct ipc_peer *peer)
{
	const struct relay_stats *st = relay_stats(in->relay);
	static const struct plisten_stats nolisten;
	const struct plisten_stats *ps = in->listener ?
	    plisten_stats(in->listener) : &nolisten;
	const struct { const char *name; uint64_t value; } vals[] = {
		{ "flows_total",		st->flows_total },
		{ "flows_refused",		st->flows_refused + in->bad_fds },
		{ "bytes_from_app",		st->bytes_from_app },
		{ "bytes_to_app",		st->bytes_to_app },
		{ "connect_failed",		st->connect_failed },
		{ "connect_timeouts",		st->connect_timeouts },
		{ "resets_from_app",		st->resets_from_app },
		{ "resets_from_upstream",	st->resets_from_upstream },
		{ "idle_expired",		st->idle_expired },
		{ "dgrams_dropped",		st->dgrams_dropped },
		/* With what the TLS engines hold in their own buffers. */
		{ "buffered_bytes",		st->buffered +
						relay_tls_held_bytes(in->relay) },
		{ "tls_intercepted",		st->tls_intercepted },
		{ "tls_passthrough",		st->tls_passthrough },
		{ "tls_client_rejected",	st->tls_client_rejected },
		{ "tls_upstream_failed",	st->tls_upstream_failed },
		{ "splice_dirs",		st->splice_dirs },
		{ "splice_fallbacks",		st->splice_fallbacks },
		{ "bytes_spliced",		st->bytes_spliced },
		{ "quic_refused",		st->quic_refused },
		{ "quic_passed",		st->quic_passed },
		{ "proxy_clients",		ps->accepted },
		{ "proxy_tunnels",		ps->tunnels },
		{ "proxy_requests",		ps->requests },
		{ "proxy_refused",		ps->refused + ps->overloaded },
		{ "proxy_resolve_failed",	ps->resolve_failed },
		/* Reset markers sent on flow.sock (no MSG_OOB: macOS). */
		{ "reset_messages",		in->resets_sent },
		/* 1: AES-GCM records through ipsec-mb; 0: mbedTLS's code. */
		{ "aes_gcm_ipsec_mb",		(uint64_t)aead_aes_gcm_accelerated() },
	};
	enum { N = sizeof(vals) / sizeof(vals[0]) };
	/* The permit table refuses a ProxyStatus with more (common/msg.h). */
	_Static_assert(N <= LC_STATUS_COUNTERS_MAX, "too many proxyd counters");
	static struct msg_proxy_status msg;
	static struct msg_proxy_status_pb pb;
	size_t i;

	memset(&msg, 0, sizeof(msg));
	msg.flows_active = st->flows_active;
	for (i = 0; i < N; i++)
		(void)msg_counters_add(&msg.counters, vals[i].name, vals[i].value);
	msg_proxy_status_to_pb(&msg, &pb);
	/* EAGAIN (a source not reading) just skips this round. */
	if (ipc_send(peer, LC__MSG_TYPE__MSG_PROXY_STATUS, &pb.m.base, NULL, 0) ==
	    -1 && errno != EAGAIN)
		log_warn("sending ProxyStatus");
}

static void
status_round(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct intake *in = w->data;
	struct source *s;

	(void)revents;
	in->status_sent = ev_now(loop);
	TAILQ_FOREACH(s, &in->sources, entry)
		if (ipc_is_ready(s->peer))
			send_status(in, s->peer);
}

/* The relay's figures changed: a status round now, or when the interval allows. */
static void
relay_changed(void *arg)
{
	struct intake *in = arg;
	ev_tstamp wait;

	if (ev_is_active(&in->status_timer))
		return;
	wait = in->status_sent + INTAKE_STATUS_INTERVAL - ev_now(in->loop);
	ev_timer_set(&in->status_timer, wait > 0 ? wait : 0, 0);
	ev_timer_start(in->loop, &in->status_timer);
}

static void
source_ready(struct ipc_peer *peer)
{
	struct source *s = ipc_user(peer);
	const struct ipc_cred *cred = ipc_cred(peer);

	log_info("flow source connected: %s (pid %d, uid %d, version %s)",
	    ipc_peer_role(peer) == LC__ROLE__ROLE_NETSTACKD ? "netstackd" :
	    "redirectord", (int)cred->pid, (int)cred->uid, ipc_peer_version(peer));
	send_status(s->in, peer);
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
	struct source *s = ipc_user(peer);

	switch (type) {
	case LC__MSG_TYPE__MSG_NEW_FLOW: {
		const Lc__NewFlow *nf = (const Lc__NewFlow *)(const void *)msg;
		int fd;

		/*
		 * The fd is the source's own doing, not the application's: a
		 * wrong kind is a bug there, and the source is dropped.  Bad
		 * addresses come from the application's packets: only that
		 * flow is refused (intake_new_flow).
		 */
		if (nfds != 1 || check_flow_fd(nf, fds[0]) == -1) {
			s->in->bad_fds++;
			ipc_refuse(peer, LC__ERROR_CODE__ERR_BAD_REQUEST,
			    "NewFlow %llu: fd is not a socket of its transport",
			    (unsigned long long)nf->flow_id);
			return;
		}
		fd = fds[0];
		fds[0] = -1;
		(void)intake_new_flow(s->in->relay, s, nf, fd);
		break;
	}
	case LC__MSG_TYPE__MSG_FLOW_CLOSED: {
		struct msg_flow_closed fc;
		struct flow_tcp_stats ts;
		const char *why;

		if (msg_flow_closed_from_pb(&fc,
		    (const Lc__FlowClosed *)(const void *)msg, &why) == -1) {
			ipc_refuse(peer, LC__ERROR_CODE__ERR_BAD_REQUEST,
			    "FlowClosed: %s", why);
			return;
		}
		ts = (struct flow_tcp_stats){
			.packets_from_app = fc.packets_from_app,
			.packets_to_app = fc.packets_to_app,
			.retransmits = fc.retransmits,
			.rtt_us = fc.rtt_us,
		};

		/*
		 * proto3 cannot say "not counted": a source that does not
		 * count sends zeros, while a TCP flow it carried had at least
		 * its handshake.
		 */
		relay_source_flow_closed(s->in->relay, s, fc.flow_id,
		    fc.reason,
		    fc.packets_from_app || fc.packets_to_app ? &ts : NULL);
		break;
	}
	default:
		ipc_refuse(peer, LC__ERROR_CODE__ERR_BAD_REQUEST,
		    "proxyd does not take %s", ipc_type_name(type));
	}
}

/*
 * The relay cuts a flow towards its application (relay_set_on_source_reset).
 * A source the permit table lets take FlowClosed from proxyd — the macOS
 * extension, whose AF_UNIX has no MSG_OOB — is told on flow.sock:
 * FlowClosed{reason "reset"}, queued before the relay closes the flow
 * socket, and the extension turns the EOF it holds into a reset.  netstackd
 * may not take it and gets the out-of-band marker instead (0).
 */
static int
source_reset(void *arg, const void *source, uint64_t source_flow_id)
{
	struct intake *in = arg;
	const struct msg_spec *spec =
	    msg_lookup(LC__MSG_TYPE__MSG_FLOW_CLOSED);
	struct source *s;
	Lc__FlowClosed fc;

	TAILQ_FOREACH(s, &in->sources, entry)
		if (s == source)
			break;
	if (s == NULL || spec == NULL ||
	    !msg_may_travel(spec, LC__ROLE__ROLE_PROXYD, ipc_peer_role(s->peer)))
		return 0;
	lc__flow_closed__init(&fc);
	fc.flow_id = source_flow_id;
	fc.reason = (char *)(uintptr_t)"reset";
	/* Past the queue's limit the source is far behind: it will see an
	 * orderly close, as with a lost out-of-band byte. */
	if (ipc_send(s->peer, LC__MSG_TYPE__MSG_FLOW_CLOSED, &fc.base, NULL, 0)
	    == 0)
		in->resets_sent++;
	return 1;
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
	/* Its flows keep their sockets; only FlowClosed can no longer reach them. */
	relay_source_gone(s->in->relay, s);
	TAILQ_REMOVE(&s->in->sources, s, entry);
	s->in->nsources--;
	free(s);
}

const struct ipc_callbacks intake_callbacks = {
	.on_ready = source_ready,
	.on_message = source_message,
	.on_close = source_close,
};

void
intake_accept(struct ipc_listener *l, struct ipc_peer *peer)
{
	struct intake *in = ipc_listener_user(l);
	struct source *s;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		ipc_set_user(peer, NULL);
		ipc_close(peer, "out of memory");
		return;
	}
	s->in = in;
	s->peer = peer;
	ipc_set_user(peer, s);
	TAILQ_INSERT_TAIL(&in->sources, s, entry);
	in->nsources++;
}

struct intake *
intake_new(struct ev_loop *loop, struct relay *relay)
{
	struct intake *in;

	if ((in = calloc(1, sizeof(*in))) == NULL)
		return NULL;
	in->loop = loop;
	in->relay = relay;
	TAILQ_INIT(&in->sources);
	ev_init(&in->status_timer, status_round);
	in->status_timer.data = in;
	in->status_sent = ev_now(loop) - INTAKE_STATUS_INTERVAL;
	relay_set_on_change(relay, relay_changed, in);
	relay_set_on_source_reset(relay, source_reset, in);
	return in;
}

void
intake_close_sources(struct intake *in, const char *reason)
{
	struct source *s;

	while ((s = TAILQ_FIRST(&in->sources)) != NULL)
		ipc_close(s->peer, reason);
	ev_timer_stop(in->loop, &in->status_timer);
}

void
intake_free(struct intake *in)
{
	if (in == NULL)
		return;
	intake_close_sources(in, "proxyd shutting down");
	relay_set_on_change(in->relay, NULL, NULL);
	relay_set_on_source_reset(in->relay, NULL, NULL);
	free(in);
}

void
intake_set_listener(struct intake *in, const struct plisten *l)
{
	in->listener = l;
}

size_t
intake_nsources(const struct intake *in)
{
	return in->nsources;
}

uint64_t
intake_bad_fds(const struct intake *in)
{
	return in->bad_fds;
}
