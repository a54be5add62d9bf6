/*
 * netstackd — the unprivileged user-space TCP/IP stack.
 *
 * Sits between redirectord (data.sock: it hands us the capture TUN's fd)
 * and proxyd (flow.sock: one NewFlow + socket per connection).  It connects
 * to both and keeps reconnecting whenever either goes away, so each
 * neighbour can be restarted alone, and tells redirectord whether proxyd is
 * reachable (the capture side's fail-open/fail-closed decision).
 *
 * This file is the process around the protocol core (stack.c, tcp.c, ip.c):
 *
 *   TUN readable  -> ns_stack_input() per packet (a bounded batch per wakeup)
 *   stack output  -> write() into the TUN, synchronously
 *   stack events  -> per-flow actions: a new flow gets a socketpair whose
 *                    other end goes to proxyd with its NewFlow; bytes move
 *                    between the connection and the socket
 *   one ev_timer  -> armed to ns_stack_poll_at(), the earliest deadline
 *
 * Flow control is end to end: bytes the application sends are taken from
 * the connection (which opens its window) only as fast as the flow socket
 * accepts them, and bytes from proxyd are read only while the connection's
 * send ring has room.  A TCP flow's socket is SOCK_STREAM; a UDP flow's is
 * SOCK_SEQPACKET, one datagram per record, with EOF when proxyd closes.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "daemon.h"
#include "ipc.h"
#include "log.h"
#include "msg.h"
#include "msgcodec.h"
#include "owner.h"
#include "sandbox.h"
#include "data.pb-c.h"
#include "flow.pb-c.h"
#include "netstackd/impair.h"
#include "netstackd/stack.h"

#define TUN_BATCH	64		/* packets read per TUN wakeup */
#define FLOW_BUF	(256u << 10)	/* largest read from a flow socket: the send ring */
#define STATUS_EVERY	1.0		/* seconds between status reports */
#define OWNER_WAIT_MS	100		/* longest wait for an owner lookup */
#define UDP_PENDING_MAX	8		/* datagrams kept while it runs */
#define TRIM_KEEP	(8 << 20)	/* free heap kept, not returned */

#ifndef MIN
#define MIN(a, b)	((a) < (b) ? (a) : (b))
#endif

#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

struct flow {
	TAILQ_ENTRY(flow)	 entry;
	int			 udp;		/* else TCP */
	struct ns_tcp_flow	*tcp;		/* NULL once released */
	struct ns_udp_flow	*uflow;		/* NULL once gone */
	uint64_t		 id;
	int			 sock;		/* our end of the socketpair */
	ev_io			 rio;		/* sock readable: proxyd -> app */
	ev_io			 wio;		/* sock writable: app -> proxyd */
	/* proxyd -> app bytes read from sock that TCP did not take (its
	 * memory budget ran out); NULL almost always. */
	uint8_t			*in;
	size_t			 in_off, in_len;
	int			 app_fin;	/* app shut its write side */
	int			 app_fin_passed;	/* ...and proxyd was told */
	int			 sock_eof;	/* proxyd shut its write side */
	int			 sock_eof_passed;	/* ...and the app was told */

	/*
	 * Before the handover (sock == -1) the flow waits, at most
	 * OWNER_WAIT_MS, for redirectord to say which process owns it; the
	 * connection meanwhile buffers (TCP) or we keep a few datagrams.
	 */
	int			 pending;
	uint64_t		 queried_at;
	struct tcp_tuple	 tuple;
	int			 have_owner;
	struct owner		 owner;		/* common/owner.h */
	uint8_t			*udpq[UDP_PENDING_MAX];
	size_t			 udpq_len[UDP_PENDING_MAX];
	int			 nudpq;
};

struct netstackd {
	struct daemon		 d;
	struct ipc_connector	*redirector;	/* data.sock */
	struct ipc_connector	*proxy;		/* flow.sock */
	ev_timer		 report;	/* status to redirectord, soon */
	ev_timer		 status_tick;
	ev_timer		 owner_timer;	/* flows waiting for an owner */

	/* The TUN and the stack on it; both exist only between a handover
	 * and the loss of redirectord. */
	int			 tun_fd;
	unsigned		 tun_mtu;
	ev_io			 tun_io;
	struct ns_stack		*stack;
	ev_timer		 stack_timer;
	uint8_t			*pkt;		/* one packet, MTU-sized */
	TAILQ_HEAD(, flow)	 flows;

	/* --impair: test-only loss/dup/reorder/delay at the TUN boundary. */
	int			 impairing;
	struct impair		 im;
	ev_timer		 impair_timer;

	uint64_t		 packets_in;
	uint64_t		 tun_write_drops;
	uint64_t		 flows_refused;	/* proxyd away or no resources */
	uint64_t		 tun_handovers;
	int			 status_dirty;

	/* proxyd's last ProxyStatus, passed on to redirectord. */
	struct msg_proxy_status	 px_status;
};

static struct netstackd ns = { .d = { .name = "netstackd" }, .tun_fd = -1 };

static const char usage[] =
    "usage: netstackd [options]\n"
    "The localcap user-space TCP/IP stack: packets from redirectord, flows to proxyd.\n"
    "\n"
    DAEMON_COMMON_HELP
    "  -u, --user NAME         run as this unprivileged user once started\n"
    "      --impair SPEC       TESTING ONLY: impair packets at the TUN, e.g.\n"
    "                          loss=2%,dup=1%,reorder=2%,delay=5ms,seed=1\n";

static void	process_events(void);
static void	flow_free(struct flow *);

static void
print_version(void)
{
	printf("netstackd %s (protobuf-c %s, libev %d.%d, protocol %d)\n",
	    LOCALCAP_VERSION, protobuf_c_version(), ev_version_major(),
	    ev_version_minor(), LC__PROTOCOL__PROTOCOL_VERSION);
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* --- status to redirectord --------------------------------------------------- */

static void
report_status(void)
{
	struct ipc_peer *rd = ns.redirector ? ipc_connector_peer(ns.redirector) : NULL;
	struct ipc_peer *px = ns.proxy ? ipc_connector_peer(ns.proxy) : NULL;
	const struct ns_stack_stats *st = ns.stack ? ns_stack_stats(ns.stack) : NULL;
	static struct msg_netstack_status msg;
	static struct msg_netstack_status_pb pb;
	struct msg_counters *c = &msg.counters;
	int full = 0;

	if (rd == NULL)
		return;
	memset(&msg, 0, sizeof(msg));
	full |= msg_counters_add(c, "packets_in", ns.packets_in);
	full |= msg_counters_add(c, "flows_refused", ns.flows_refused);
	full |= msg_counters_add(c, "tun_write_drops", ns.tun_write_drops);
	if (ns.impairing) {
		full |= msg_counters_add(c, "impair_dropped", ns.im.dropped);
		full |= msg_counters_add(c, "impair_duplicated", ns.im.duplicated);
		full |= msg_counters_add(c, "impair_reordered", ns.im.reordered);
	}
	if (st) {
		full |= msg_counters_add(c, "packets_out", st->packets_out);
		full |= msg_counters_add(c, "tcp_flows_active", st->tcp_flows_active);
		full |= msg_counters_add(c, "tcp_flows_created", st->tcp_flows_created);
		full |= msg_counters_add(c, "udp_flows_active", st->udp_flows_active);
		full |= msg_counters_add(c, "udp_flows_created", st->udp_flows_created);
		full |= msg_counters_add(c, "tcp_retransmits", st->tcp_retransmits);
		full |= msg_counters_add(c, "tcp_timeouts", st->tcp_timeouts);
	}
	if (full)	/* a name or one counter too many, added here: a bug */
		log_warnx("netstackd's counters do not all fit a NetstackStatus");
	if (px) {
		msg.proxyd_connected = 1;
		msg.proxyd_pid = (uint32_t)ipc_cred(px)->pid;
		snprintf(msg.proxyd_version, sizeof(msg.proxyd_version), "%s",
		    ipc_peer_version(px));
		msg.proxyd_counters = ns.px_status.counters;
		msg.proxyd_flows_active = ns.px_status.flows_active;
	}
	msg_netstack_status_to_pb(&msg, &pb);
	if (ipc_send(rd, LC__MSG_TYPE__MSG_NETSTACK_STATUS, &pb.m.base, NULL, 0) == -1)
		log_warn("sending NetstackStatus");
	ns.status_dirty = 0;
}

static void
report_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	report_status();
}

static void
status_tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	if (ns.status_dirty)
		report_status();
}

/* --- the stack's output ------------------------------------------------------- */

enum { DIR_IN, DIR_OUT };	/* impairment: from / to the TUN */

static void	impair_kick(void);

static void
tun_write(const uint8_t *pkt, size_t len)
{
	if (ns.tun_fd < 0)
		return;
	/* The kernel takes TUN writes at once; if not, TCP retransmits. */
	if (write(ns.tun_fd, pkt, len) != (ssize_t)len) {
		if (ns.tun_write_drops++ == 0)
			log_warn("write to TUN (further drops only counted)");
	}
}

static void
tun_output(void *ctx, const uint8_t *pkt, size_t len)
{
	(void)ctx;
	if (ns.impairing) {
		/* Released from the loop, never from inside the stack. */
		impair_offer(&ns.im, DIR_OUT, pkt, len, now_ms());
		impair_kick();
	} else
		tun_write(pkt, len);
}

/*
 * A TCP segment with data, its payload still in the connection's send
 * ring: one writev, no copy of ours.  Impairment keeps packets for later,
 * so there the segment is put together first.
 */
static void
tun_outputv(void *ctx, const uint8_t *hdr, size_t hdrlen,
    const struct iovec *payload, int npayload)
{
	static uint8_t whole[65536];
	struct iovec iov[3];
	size_t len = hdrlen;
	ssize_t n;
	int i;

	iov[0].iov_base = (void *)(uintptr_t)hdr;
	iov[0].iov_len = hdrlen;
	for (i = 0; i < npayload && i < 2; i++) {
		iov[i + 1] = payload[i];
		len += payload[i].iov_len;
	}
	if (ns.impairing) {
		if (len > sizeof(whole))
			return;		/* cannot be: the MTU bounds it */
		for (i = 0, len = 0; i <= npayload && i < 3; i++) {
			memcpy(whole + len, iov[i].iov_base, iov[i].iov_len);
			len += iov[i].iov_len;
		}
		tun_output(ctx, whole, len);
		return;
	}
	if (ns.tun_fd < 0)
		return;
	n = writev(ns.tun_fd, iov, i + 1);
	if (n != (ssize_t)len && ns.tun_write_drops++ == 0)
		log_warn("write to TUN (further drops only counted)");
}

static void
rearm_stack_timer(void)
{
	uint64_t at, now;

	ev_timer_stop(ns.d.loop, &ns.stack_timer);
	if (ns.stack == NULL || (at = ns_stack_poll_at(ns.stack)) == TCP_NEVER)
		return;
	now = now_ms();
	ev_timer_set(&ns.stack_timer, at > now ? (double)(at - now) / 1000. : 0., 0.);
	ev_timer_start(ns.d.loop, &ns.stack_timer);
}

static void
stack_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	if (ns.stack == NULL)
		return;
	ns_stack_on_timer(ns.stack, now_ms());
	process_events();
}

/* --- flows --------------------------------------------------------------------- */

static void	flow_sock_read_cb(struct ev_loop *, ev_io *, int);
static void	flow_sock_write_cb(struct ev_loop *, ev_io *, int);

/* One side of a tuple as the messages carry it. */
static struct endpoint
tuple_endpoint(uint8_t version, const uint8_t *addr, uint16_t port)
{
	struct endpoint e = { .family = version == 4 ? AF_INET : AF_INET6,
	    .port = port };

	memcpy(e.addr, addr, version == 4 ? 4 : 16);
	return e;
}

/*
 * Give a flow to proxyd: a socketpair, NewFlow (with the owner, when known)
 * + one end.  -1 if that fails (proxyd away, no fds): the caller drops the
 * flow and the application sees a reset / port unreachable.
 */
static int
flow_handover(struct flow *f)
{
	struct ipc_peer *px = ns.proxy ? ipc_connector_peer(ns.proxy) : NULL;
	const struct tcp_tuple *t = &f->tuple;
	struct msg_new_flow nf;
	struct msg_new_flow_pb pb;
	struct timespec ts;
	int sv[2], i;

	f->pending = 0;
	if (px == NULL)
		return -1;
	if (socketpair(AF_UNIX, (f->udp ? SOCK_SEQPACKET : SOCK_STREAM) |
	    SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == -1) {
		log_warn("socketpair for flow %llu", (unsigned long long)f->id);
		return -1;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	nf = (struct msg_new_flow){
		.flow_id = f->id,
		.ipproto = f->udp ? IPPROTO_UDP : IPPROTO_TCP,
		/* "remote" is the application, "local" the destination it wanted. */
		.src = tuple_endpoint(t->version, t->raddr, t->rport),
		.dst = tuple_endpoint(t->version, t->laddr, t->lport),
		.owner = f->owner,	/* zeros until an owner is known */
		.start_us = (uint64_t)ts.tv_sec * 1000000 +
		    (uint64_t)ts.tv_nsec / 1000,
	};
	msg_new_flow_to_pb(&nf, &pb);
	if (ipc_send(px, LC__MSG_TYPE__MSG_NEW_FLOW, &pb.m.base, &sv[1], 1) == -1) {
		log_debug("flow %llu not handed to proxyd: %s",
		    (unsigned long long)f->id, strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	close(sv[1]);	/* the framing layer sent its own duplicate */
	f->sock = sv[0];
	ev_io_init(&f->rio, flow_sock_read_cb, f->sock, EV_READ);
	ev_io_init(&f->wio, flow_sock_write_cb, f->sock, EV_WRITE);
	ev_io_start(ns.d.loop, &f->rio);
	/* Datagrams that came while we waited go first. */
	for (i = 0; i < f->nudpq; i++) {
		(void)send(f->sock, f->udpq[i], f->udpq_len[i],
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		free(f->udpq[i]);
	}
	f->nudpq = 0;
	return 0;
}

static void	tcp_to_sock(struct flow *);

/* The owner is known (or will not be): hand over, catch up, or drop. */
static void
flow_release_pending(struct flow *f)
{
	if (flow_handover(f) == -1) {
		ns.flows_refused++;
		if (f->uflow) {
			ns_udp_refuse(ns.stack, f->uflow);
			f->uflow = NULL;
		}
		flow_free(f);
		return;
	}
	if (!f->udp)
		tcp_to_sock(f);	/* what the application sent meanwhile */
}

static void
owner_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct flow *f, *next;
	uint64_t now = now_ms();
	int waiting = 0;

	(void)loop;
	(void)w;
	(void)revents;
	for (f = TAILQ_FIRST(&ns.flows); f; f = next) {
		next = TAILQ_NEXT(f, entry);
		if (!f->pending)
			continue;
		if (f->queried_at + OWNER_WAIT_MS <= now)
			flow_release_pending(f);
		else
			waiting = 1;
	}
	if (waiting) {
		ev_timer_set(&ns.owner_timer, OWNER_WAIT_MS / 1000., 0.);
		ev_timer_start(ns.d.loop, &ns.owner_timer);
	}
	process_events();
}

/*
 * A new flow.  If redirectord is there, ask it who owns the flow and hand
 * the flow over when it answers (or after OWNER_WAIT_MS); else at once.
 * NULL: refused (proxyd away, no memory).
 */
static struct flow *
flow_new(int udp, uint64_t id, const struct tcp_tuple *t)
{
	struct ipc_peer *rd = ns.redirector ? ipc_connector_peer(ns.redirector) : NULL;
	struct flow *f;

	if (ns.proxy == NULL || ipc_connector_peer(ns.proxy) == NULL)
		return NULL;
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	f->udp = udp;
	f->id = id;
	f->sock = -1;
	f->tuple = *t;
	TAILQ_INSERT_TAIL(&ns.flows, f, entry);
	ns.status_dirty = 1;
	if (rd != NULL) {
		struct msg_owner_query q = {
			.id = id,
			.ipproto = udp ? IPPROTO_UDP : IPPROTO_TCP,
			.src = tuple_endpoint(t->version, t->raddr, t->rport),
			.dst = tuple_endpoint(t->version, t->laddr, t->lport),
		};
		struct msg_owner_query_pb pb;

		msg_owner_query_to_pb(&q, &pb);
		if (ipc_send(rd, LC__MSG_TYPE__MSG_OWNER_QUERY, &pb.m.base, NULL,
		    0) == 0) {
			f->pending = 1;
			f->queried_at = now_ms();
			if (!ev_is_active(&ns.owner_timer)) {
				ev_timer_set(&ns.owner_timer, OWNER_WAIT_MS / 1000., 0.);
				ev_timer_start(ns.d.loop, &ns.owner_timer);
			}
			return f;
		}
	}
	if (flow_handover(f) == -1) {
		TAILQ_REMOVE(&ns.flows, f, entry);
		free(f);
		return NULL;
	}
	return f;
}

/* redirectord's answer: the owner, for a flow that may still be waiting. */
static void
owner_reply(struct ipc_peer *peer, const Lc__OwnerReply *pb)
{
	struct msg_owner_reply r;
	struct flow *f;
	const char *why;

	/*
	 * One bad answer costs that flow its owner, not the data channel
	 * (closing it would stop the TUN): said, never cut silently.
	 */
	if (msg_owner_reply_from_pb(&r, pb, &why) == -1) {
		log_warnx("OwnerReply for flow %llu from pid %d: %s; recorded "
		    "without an owner", (unsigned long long)pb->query_id,
		    (int)ipc_cred(peer)->pid, why);
		r.id = pb->query_id;
	}
	TAILQ_FOREACH(f, &ns.flows, entry)
		if (f->pending && f->id == r.id)
			break;
	if (f == NULL)
		return;		/* answered too late, or the flow is gone */
	if (r.found) {
		f->have_owner = 1;
		f->owner = r.owner;
	}
	flow_release_pending(f);
	process_events();
}

static void
flow_free(struct flow *f)
{
	ev_io_stop(ns.d.loop, &f->rio);
	ev_io_stop(ns.d.loop, &f->wio);
	if (f->sock >= 0)
		close(f->sock);
	if (f->tcp) {
		f->tcp->user = NULL;
		ns_tcp_release(ns.stack, f->tcp, now_ms());
	}
	if (f->uflow) {
		f->uflow->user = NULL;
		ns_udp_close(ns.stack, f->uflow);
	}
	TAILQ_REMOVE(&ns.flows, f, entry);
	while (f->nudpq > 0)
		free(f->udpq[--f->nudpq]);
	free(f->in);
	free(f);
	ns.status_dirty = 1;
}

/*
 * Move app -> proxyd bytes: straight from the connection's receive ring
 * into the flow socket (peek, send, consume what the socket took), so no
 * staging copy and no allocation per read.  A short send means the socket
 * is full: wait for it to drain instead of asking again for an EAGAIN.
 */
static void
tcp_to_sock(struct flow *f)
{
	uint64_t now = now_ms();

	if (f->sock < 0)
		return;		/* not handed over yet: the connection buffers */
	while (f->tcp) {
		const uint8_t *p;
		size_t avail = ns_tcp_recv_peek(f->tcp, &p);
		ssize_t n;

		if (avail == 0)
			break;
		n = send(f->sock, p, avail, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				/* proxyd is slower: the window closes behind us. */
				ev_io_start(ns.d.loop, &f->wio);
				return;
			}
			/* proxyd dropped the flow: reset the application. */
			ns_tcp_abort(ns.stack, f->tcp, now);
			return;
		}
		ns_tcp_recv_consume(ns.stack, f->tcp, (size_t)n, now);
		if ((size_t)n < avail) {
			ev_io_start(ns.d.loop, &f->wio);
			return;
		}
	}
	ev_io_stop(ns.d.loop, &f->wio);
	if (f->app_fin && !f->app_fin_passed) {
		f->app_fin_passed = 1;
		shutdown(f->sock, SHUT_WR);
	}
}

/* proxyd -> app bytes the stack could not take yet, kept by the flow. */
static int
stash_keep(struct flow *f, const uint8_t *p, size_t len)
{
	if ((f->in = malloc(len)) == NULL)
		return -1;
	memcpy(f->in, p, len);
	f->in_off = 0;
	f->in_len = len;
	return 0;
}

static void
stash_drop(struct flow *f)
{
	free(f->in);
	f->in = NULL;
	f->in_off = f->in_len = 0;
}

/*
 * A Unix stream socket cannot carry a reset, so proxyd sends one
 * out-of-band byte 'R' before closing (docs/proxyd-relay.md).  A plain
 * recv() would silently drop it on the way to EOF, so look for it before
 * every read.  Like a TCP RST, it overtakes data not yet read.
 */
static int
reset_marker(struct flow *f)
{
	char c;

	return recv(f->sock, &c, 1, MSG_OOB | MSG_DONTWAIT) == 1 && c == 'R';
}

/*
 * Move proxyd -> app bytes: from the flow socket into the connection.  We
 * read at most what the send ring has room for, straight into the ring
 * (ns_tcp_send_room: a copy fewer per byte than reading into a buffer and
 * handing that to ns_tcp_send, which perf showed as a good part of
 * netstackd's time in a bulk download).  Only when the ring cannot be
 * allocated (the stack's memory budget ran out) do we read into one
 * buffer shared by every flow, and keep what the stack does not take in
 * a buffer of the flow's own until TCP_EV_WRITABLE.  A read shorter
 * than asked means the socket is empty: back to the event loop, which
 * (level-triggered) comes back at once if more arrived meanwhile, instead
 * of a reset-marker check and a recv() that would only say EAGAIN.
 */
static void
sock_to_tcp(struct flow *f)
{
	static uint8_t shared[FLOW_BUF];
	uint64_t now = now_ms();
	struct iovec room[2];
	int niov;

	if (f->sock < 0)
		return;		/* not handed over yet */
	while (f->tcp) {
		const uint8_t *src;
		size_t want, len;
		ssize_t n;

		if (f->in_len > 0) {
			src = f->in + f->in_off;
			len = f->in_len;
			want = 0;
		} else {
			if (f->sock_eof)
				break;
			want = MIN(ns_tcp_send_space(f->tcp), sizeof(shared));
			if (want == 0) {
				/* Send ring full (or closed): wait for TCP_EV_WRITABLE. */
				ev_io_stop(ns.d.loop, &f->rio);
				return;
			}
			if (reset_marker(f)) {
				/* proxyd's side was reset: so is the application's. */
				ns_tcp_abort(ns.stack, f->tcp, now);
				return;
			}
			if ((niov = ns_tcp_send_room(f->tcp, room)) > 0) {
				/* Straight into the send ring: no copy of ours. */
				want = room[0].iov_len +
				    (niov > 1 ? room[1].iov_len : 0);
				n = readv(f->sock, room, niov);
				if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
					ns_tcp_send_commit(ns.stack, f->tcp, 0, now);
					ev_io_start(ns.d.loop, &f->rio);
					return;
				}
				if (n < 0) {
					ns_tcp_send_commit(ns.stack, f->tcp, 0, now);
					ns_tcp_abort(ns.stack, f->tcp, now);
					return;
				}
				ns_tcp_send_commit(ns.stack, f->tcp, (size_t)n, now);
				if (n == 0) {
					f->sock_eof = 1;
					break;
				}
				if ((size_t)n < want) {
					/* The socket is empty for now. */
					ev_io_start(ns.d.loop, &f->rio);
					return;
				}
				continue;
			}
			n = recv(f->sock, shared, want, 0);
			if (n < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK) {
					ev_io_start(ns.d.loop, &f->rio);
					return;
				}
				/* proxyd reset the flow: so do we. */
				ns_tcp_abort(ns.stack, f->tcp, now);
				return;
			}
			if (n == 0) {
				f->sock_eof = 1;
				break;
			}
			src = shared;
			len = (size_t)n;
		}
		n = ns_tcp_send(ns.stack, f->tcp, src, len, now);
		if (n < 0) {
			/* Our side of the connection cannot send any more. */
			stash_drop(f);
			ev_io_stop(ns.d.loop, &f->rio);
			return;
		}
		if (src != shared) {
			f->in_off += (size_t)n;
			f->in_len -= (size_t)n;
			if (f->in_len == 0)
				stash_drop(f);
		} else if ((size_t)n < len && stash_keep(f, src + n, len - (size_t)n) == -1) {
			/* No memory to keep them: the flow cannot go on intact. */
			ns_tcp_abort(ns.stack, f->tcp, now);
			return;
		}
		if (f->in_len > 0) {
			/* Send ring full: wait for TCP_EV_WRITABLE. */
			ev_io_stop(ns.d.loop, &f->rio);
			return;
		}
		if (want > 0 && len < want) {
			/* The socket is empty for now. */
			ev_io_start(ns.d.loop, &f->rio);
			return;
		}
	}
	ev_io_stop(ns.d.loop, &f->rio);
	if (f->tcp && f->sock_eof && !f->sock_eof_passed) {
		f->sock_eof_passed = 1;
		ns_tcp_shutdown(ns.stack, f->tcp, now);
	}
}

/* proxyd -> app datagrams. */
static void
sock_to_udp(struct flow *f)
{
	int budget = TUN_BATCH;

	while (f->uflow && budget-- > 0) {
		ssize_t n = recv(f->sock, ns.pkt, ns.tun_mtu, MSG_TRUNC);

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			flow_free(f);
			return;
		}
		if (n == 0) {
			/* proxyd is done with this flow. */
			flow_free(f);
			return;
		}
		if ((size_t)n > ns.tun_mtu ||
		    ns_udp_send(ns.stack, f->uflow, ns.pkt, (size_t)n, now_ms()) == -1)
			log_debug("flow %llu: %zd-byte datagram does not fit the "
			    "MTU, dropped", (unsigned long long)f->id, n);
	}
}

static void
flow_sock_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct flow *f = container_of(w, struct flow, rio);

	(void)loop;
	(void)revents;
	if (f->udp)
		sock_to_udp(f);
	else
		sock_to_tcp(f);
	process_events();
}

static void
flow_sock_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct flow *f = container_of(w, struct flow, wio);

	(void)loop;
	(void)revents;
	tcp_to_sock(f);
	process_events();
}

/* Final counters of a flow, so proxyd can record them (and why it ended). */
static void
send_flow_closed(uint64_t id, uint64_t bytes_from_app, uint64_t bytes_to_app,
    uint64_t packets_from_app, uint64_t packets_to_app, uint64_t retransmits,
    uint32_t rtt_us, const char *reason)
{
	struct ipc_peer *px = ns.proxy ? ipc_connector_peer(ns.proxy) : NULL;
	struct msg_flow_closed fc = {
		.flow_id = id,
		.bytes_from_app = bytes_from_app,
		.bytes_to_app = bytes_to_app,
		.packets_from_app = packets_from_app,
		.packets_to_app = packets_to_app,
		.retransmits = retransmits,
		.rtt_us = rtt_us,
	};
	Lc__FlowClosed pb;

	if (px == NULL)
		return;
	snprintf(fc.reason, sizeof(fc.reason), "%s", reason);
	msg_flow_closed_to_pb(&fc, &pb);
	/* Best effort: under back-pressure the record is only less complete. */
	(void)ipc_send(px, LC__MSG_TYPE__MSG_FLOW_CLOSED, &pb.base, NULL, 0);
}

/*
 * The smoothed RTT in µs (0: no sample).  The stack keeps it in ms * 8, so
 * scale before dividing: an RTT under a millisecond (loopback, a local
 * namespace) settles at 7/8 ms and must not read as 0.
 */
static uint32_t
srtt_us(const struct tcp_conn *c)
{
	uint64_t us = (uint64_t)c->srtt_x8 * 1000 / 8;

	return us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static void
handle_tcp_event(const struct ns_event *ev)
{
	struct ns_tcp_flow *tf = ev->tcp;
	struct flow *f = tf->user;

	if (ev->tcp_events & NS_TCP_EV_NEW) {
		if ((f = flow_new(0, tf->id, &tf->c.tuple)) == NULL) {
			/* Released before CLOSED: the application gets a RST. */
			ns.flows_refused++;
			ns.status_dirty = 1;
			ns_tcp_release(ns.stack, tf, now_ms());
			return;
		}
		f->tcp = tf;
		tf->user = f;
	}
	if (f == NULL)
		return;
	if (ev->tcp_events & TCP_EV_PEER_FIN)
		f->app_fin = 1;
	if (ev->tcp_events & (TCP_EV_READABLE | TCP_EV_PEER_FIN))
		tcp_to_sock(f);
	/*
	 * Room in the send ring matters only to a flow that stopped reading
	 * its socket for want of it; one still watching the socket is told by
	 * the event loop when proxyd writes (an ACK of every response would
	 * otherwise cost a reset-marker check and a recv() that says EAGAIN).
	 */
	if ((ev->tcp_events & (TCP_EV_WRITABLE | TCP_EV_ESTABLISHED)) &&
	    f->sock >= 0 && !ev_is_active(&f->rio))
		sock_to_tcp(f);
	if (ev->tcp_events & TCP_EV_CLOSED) {
		const struct tcp_conn *c = &tf->c;

		/* A flow that ended while we waited still reaches proxyd. */
		if (f->pending && flow_handover(f) == -1) {
			flow_free(f);
			return;
		}
		/* Hand proxyd what was already taken, then let go. */
		tcp_to_sock(f);
		send_flow_closed(f->id, c->stats.bytes_in, c->stats.bytes_out,
		    c->stats.segs_in, c->stats.segs_out, c->stats.retransmits,
		    srtt_us(c),
		    c->error == ECONNRESET ? "reset by the application" :
		    c->error == ETIMEDOUT ? "application timed out" :
		    c->error == ECONNABORTED ? "aborted" : "closed");
		flow_free(f);
	}
}

static void
handle_udp_datagram(const struct ns_input *in)
{
	struct ns_udp_flow *u = in->udp;
	struct flow *f = u->user;

	if (in->udp_new || f == NULL) {
		if ((f = flow_new(1, u->id, &u->tuple)) == NULL) {
			ns.flows_refused++;
			ns.status_dirty = 1;
			ns_udp_refuse(ns.stack, u);	/* ICMP port unreachable */
			return;
		}
		f->uflow = u;
		u->user = f;
	}
	if (f->sock < 0) {
		/* Waiting for the owner: keep a few, as a socket buffer would. */
		if (f->nudpq < UDP_PENDING_MAX &&
		    (f->udpq[f->nudpq] = malloc(in->len)) != NULL) {
			memcpy(f->udpq[f->nudpq], in->data, in->len);
			f->udpq_len[f->nudpq++] = in->len;
		}
		return;
	}
	/* One datagram per record; if proxyd is behind, UDP may drop. */
	if (send(f->sock, in->data, in->len, MSG_NOSIGNAL | MSG_DONTWAIT) == -1 &&
	    errno != EAGAIN && errno != EWOULDBLOCK)
		flow_free(f);
}

static void
process_events(void)
{
	struct ns_event ev;

	if (ns.stack == NULL)
		return;
	while (ns_stack_next_event(ns.stack, &ev)) {
		if (ev.type == NS_EV_TCP)
			handle_tcp_event(&ev);
		else if (ev.type == NS_EV_UDP_EXPIRED && ev.user) {
			struct flow *f = ev.user;

			f->uflow = NULL;	/* already freed by the stack */
			send_flow_closed(f->id, 0, 0, 0, 0, 0, 0, "idle");
			flow_free(f);
		}
	}
	rearm_stack_timer();
}

/* --- the TUN ------------------------------------------------------------------- */

/*
 * One packet from the application's side into the stack.  Events are
 * handled by the caller once per batch: passing a whole batch of segments
 * to a flow socket in one send() instead of one per segment saves a
 * wake-up of proxyd per packet (it was a tenth of netstackd's time).
 */
static void
deliver_in(const uint8_t *pkt, size_t len, uint64_t now)
{
	struct ns_input in;

	ns.packets_in++;
	ns_stack_input(ns.stack, pkt, len, now, &in);
	if (in.kind == NS_IN_UDP)
		handle_udp_datagram(&in);
}

static void
impair_run(void)
{
	struct impair_pkt *p;

	while ((p = impair_due(&ns.im, now_ms())) != NULL) {
		if (p->dir == DIR_OUT)
			tun_write(p->data, p->len);
		else if (ns.stack) {
			deliver_in(p->data, p->len, now_ms());
			process_events();
		}
		free(p);
	}
	impair_kick();
}

static void
impair_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	impair_run();
}

/* Arm the impairment timer to the next release. */
static void
impair_kick(void)
{
	uint64_t next = impair_next(&ns.im), now = now_ms();

	ev_timer_stop(ns.d.loop, &ns.impair_timer);
	if (next == UINT64_MAX)
		return;
	ev_timer_set(&ns.impair_timer, next > now ? (double)(next - now) / 1000. : 0., 0.);
	ev_timer_start(ns.d.loop, &ns.impair_timer);
}

static void
tun_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	int i;

	(void)loop;
	(void)w;
	(void)revents;
	uint64_t now = now_ms();

	for (i = 0; i < TUN_BATCH && ns.stack; i++) {
		ssize_t n = read(ns.tun_fd, ns.pkt, ns.tun_mtu);

		if (n <= 0) {
			if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR)
				log_warn("read from TUN");
			break;
		}
		if (ns.impairing) {
			impair_offer(&ns.im, DIR_IN, ns.pkt, (size_t)n, now);
			impair_run();
		} else
			deliver_in(ns.pkt, (size_t)n, now);
	}
	process_events();
	ns.status_dirty = 1;
}

static void
tun_stop(const char *why)
{
	struct flow *f;

	if (ns.tun_fd < 0)
		return;
	log_info("dropping the TUN and %s: %s",
	    TAILQ_EMPTY(&ns.flows) ? "no flows" : "every flow on it", why);
	while ((f = TAILQ_FIRST(&ns.flows)) != NULL)
		flow_free(f);
	ev_io_stop(ns.d.loop, &ns.tun_io);
	ev_timer_stop(ns.d.loop, &ns.stack_timer);
	ev_timer_stop(ns.d.loop, &ns.impair_timer);
	impair_free(&ns.im);
	ns_stack_free(ns.stack);
	ns.stack = NULL;
	close(ns.tun_fd);
	ns.tun_fd = -1;
	free(ns.pkt);
	ns.pkt = NULL;
}

static void
tun_start(int fd, const Lc__TunHandover *pb)
{
	struct msg_tun_handover tun, *th = &tun;
	struct ns_stack_config cfg;
	const char *why;

	tun_stop("redirectord handed over a new TUN");
	if (msg_tun_handover_from_pb(th, pb, &why) == -1) {
		log_warnx("TUN handover with %s: refused", why);
		close(fd);
		return;
	}
	ns_stack_config_defaults(&cfg);
	cfg.tcp.mtu = th->mtu;
	cfg.output = tun_output;
	cfg.outputv = tun_outputv;
	if (getrandom(&cfg.secret, sizeof(cfg.secret), 0) != sizeof(cfg.secret))
		fatal("getrandom");
	if ((ns.pkt = malloc(th->mtu)) == NULL || (ns.stack = ns_stack_new(&cfg)) == NULL) {
		log_warnx("out of memory for the stack");
		free(ns.pkt);
		ns.pkt = NULL;
		close(fd);
		return;
	}
	ns.tun_fd = fd;
	ns.tun_mtu = th->mtu;
	ev_io_init(&ns.tun_io, tun_read_cb, fd, EV_READ);
	ev_io_start(ns.d.loop, &ns.tun_io);
	log_info("TUN %s (ifindex %u, MTU %u) received: stack running",
	    th->ifname[0] ? th->ifname : "?", th->ifindex, th->mtu);
}

/* --- redirectord (data.sock) ---------------------------------------------------- */

static void
redirector_ready(struct ipc_peer *peer)
{
	(void)peer;
	report_status();
}

static void
redirector_message(struct ipc_peer *peer, Lc__MsgType type,
    const ProtobufCMessage *msg, int *fds, size_t nfds)
{
	(void)nfds;
	switch (type) {
	case LC__MSG_TYPE__MSG_TUN_HANDOVER: {
		const Lc__TunHandover *th = (const Lc__TunHandover *)(const void *)msg;
		int fd = fds[0];

		fds[0] = -1;	/* ours now */
		ns.tun_handovers++;
		tun_start(fd, th);
		break;
	}
	case LC__MSG_TYPE__MSG_OWNER_REPLY:
		owner_reply(peer, (const Lc__OwnerReply *)(const void *)msg);
		break;
	case LC__MSG_TYPE__MSG_ERROR:
		break;
	default:
		ipc_refuse(peer, LC__ERROR_CODE__ERR_BAD_REQUEST,
		    "netstackd does not take %s", ipc_type_name(type));
	}
}

static void
redirector_close(struct ipc_peer *peer, const char *reason)
{
	(void)peer;
	/*
	 * Our fd would keep redirectord's TUN alive, and a restarted
	 * redirectord could not create it again: let it go.
	 */
	tun_stop(reason);
}

static const struct ipc_callbacks redirector_cb = {
	.on_ready = redirector_ready,
	.on_message = redirector_message,
	.on_close = redirector_close,
};

/* --- proxyd (flow.sock) ------------------------------------------------------------ */

static void
proxy_ready(struct ipc_peer *peer)
{
	(void)peer;
	report_status();
}

static void
proxy_message(struct ipc_peer *peer, Lc__MsgType type,
    const ProtobufCMessage *msg, int *fds, size_t nfds)
{
	(void)msg;
	(void)fds;
	(void)nfds;
	switch (type) {
	case LC__MSG_TYPE__MSG_PROXY_STATUS: {
		const char *why;

		/* Kept for status only. */
		if (msg_proxy_status_from_pb(&ns.px_status,
		    (const Lc__ProxyStatus *)(const void *)msg, &why) == -1) {
			ipc_refuse(peer, LC__ERROR_CODE__ERR_BAD_REQUEST,
			    "ProxyStatus: %s", why);
			return;
		}
		ns.status_dirty = 1;
		break;
	}
	case LC__MSG_TYPE__MSG_ERROR:
		break;
	default:
		ipc_refuse(peer, LC__ERROR_CODE__ERR_BAD_REQUEST,
		    "netstackd does not take %s from proxyd", ipc_type_name(type));
	}
}

static void
proxy_close(struct ipc_peer *peer, const char *reason)
{
	(void)peer;
	(void)reason;
	/*
	 * Flows already handed over keep their sockets (proxyd's ends died
	 * with it, so they end by themselves).  Report from the loop: the
	 * connector forgets the peer after this returns.
	 */
	ev_timer_start(ns.d.loop, &ns.report);
}

static const struct ipc_callbacks proxy_cb = {
	.on_ready = proxy_ready,
	.on_message = proxy_message,
	.on_close = proxy_close,
};

static void
netstackd_shutdown(void *arg)
{
	(void)arg;
	ipc_connector_free(ns.proxy);
	ns.proxy = NULL;
	ipc_connector_free(ns.redirector);
	ns.redirector = NULL;
	tun_stop("shutting down");
	ev_timer_stop(ns.d.loop, &ns.report);
	ev_timer_stop(ns.d.loop, &ns.status_tick);
	ev_timer_stop(ns.d.loop, &ns.owner_timer);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		DAEMON_LONGOPTS,
		{ "impair", required_argument, NULL, 'I' },
		{ "user", required_argument, NULL, 'u' },
		{ NULL, 0, NULL, 0 },
	};
	const struct ipc_peer_config rd_cfg = {
		.channel = IPC_CHAN_DATA,
		.self_role = LC__ROLE__ROLE_NETSTACKD,
		.accept_roles = 1u << LC__ROLE__ROLE_REDIRECTORD,
		.cb = &redirector_cb,
		.name = "redirectord",
	};
	const struct ipc_peer_config px_cfg = {
		.channel = IPC_CHAN_FLOW,
		.self_role = LC__ROLE__ROLE_NETSTACKD,
		.accept_roles = 1u << LC__ROLE__ROLE_PROXYD,
		.cb = &proxy_cb,
		.name = "proxyd",
	};
	const struct daemon_hooks hooks = { .shutdown = netstackd_shutdown };
	struct sandbox sb = { .profile = SANDBOX_NETSTACKD };
	const char *user = NULL;
	struct ev_loop *loop;
	char path[300];
	int c;

	/*
	 * The stack allocates a connection's rings (256 KiB) when bytes
	 * arrive and frees them when they are empty, i.e. for every request
	 * of a keep-alive flow.  glibc would give each freed ring at the top
	 * of the heap back to the kernel and take it again for the next one:
	 * two brk() per request (measured, strace -c).  Rings come from the
	 * heap and up to TRIM_KEEP of free heap stays ours.
	 */
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
	mallopt(M_TRIM_THRESHOLD, TRIM_KEEP);

	while ((c = getopt_long(argc, argv, DAEMON_SHORTOPTS "u:", longopts,
	    NULL)) != -1) {
		char err[256];

		if (daemon_common_opt(&ns.d, c, optarg, usage, print_version))
			continue;
		if (c == 'u') {
			user = optarg;
			continue;
		}
		if (c == 'I') {
			if (impair_parse(&ns.im, optarg, err, sizeof(err)) == -1) {
				fprintf(stderr, "netstackd: %s\n", err);
				return 2;
			}
			ns.impairing = 1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "netstackd: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	TAILQ_INIT(&ns.flows);
	if ((loop = ev_default_loop(EVFLAG_AUTO)) == NULL)
		fatalx("cannot initialise libev");
	daemon_start(&ns.d, loop, &hooks);
	ev_timer_init(&ns.report, report_cb, 0., 0.);
	ev_timer_init(&ns.stack_timer, stack_timer_cb, 0., 0.);
	ev_timer_init(&ns.impair_timer, impair_timer_cb, 0., 0.);
	ev_timer_init(&ns.owner_timer, owner_timer_cb, 0., 0.);
	if (ns.impairing)
		log_warnx("TESTING: impairing packets at the TUN (loss %u, dup %u, "
		    "reorder %u ppm, delay %u ms)", ns.im.loss_ppm, ns.im.dup_ppm,
		    ns.im.reorder_ppm, ns.im.delay_ms);
	ev_timer_init(&ns.status_tick, status_tick_cb, STATUS_EVERY, STATUS_EVERY);
	ev_timer_start(loop, &ns.status_tick);
	ev_unref(loop);		/* the tick alone does not keep us running */

	daemon_path(&ns.d, "data.sock", path, sizeof(path));
	if ((ns.redirector = ipc_connector_new(loop, path, &rd_cfg)) == NULL)
		fatal("%s", path);
	daemon_path(&ns.d, "flow.sock", path, sizeof(path));
	if ((ns.proxy = ipc_connector_new(loop, path, &px_cfg)) == NULL)
		fatal("%s", path);

	/*
	 * From here on netstackd parses packets from untrusted programs: no
	 * capabilities, no files (but its config, for SIGHUP), Unix sockets
	 * only, no ioctl on the TUN it will be handed.
	 */
	if (user == NULL)
		user = conf_get(ns.d.conf, "netstackd", "user");
	sb.user = user;
	sb.remove_dir = ns.d.runtime_dir;
	sb.ro_file = ns.d.config_path;
	daemon_note_text();	/* before the sandbox hides /proc */
	sandbox_enter(&sb);
	daemon_drop_text();	/* start-up code out of the resident set */

	ev_run(loop, 0);
	daemon_finish(&ns.d);
	return 0;
}
