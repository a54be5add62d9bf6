/*
 * proxyd's relay, its transport layer (see relay.h, relay_int.h for the
 * relay's other files, and docs/proxyd-relay.md).
 *
 * One struct rflow per flow: the application side (the flow socket from the
 * source) and the upstream side (our socket to the original destination),
 * each with a read and a write watcher.  TCP bytes move through one bounded
 * ring buffer per direction; after every event rflow_settle() recomputes which
 * watchers should run from the flow's state, so flow control, half-close and
 * the end of the flow are decided in one place:
 *
 *	read app     while a2u has room        write upstream  while a2u has data
 *	read upstream while u2a has room       write app       while u2a has data
 *	EOF from a side + its buffer drained  =>  shutdown(SHUT_WR) the other
 *	both sides shut for writing           =>  the flow is done
 *
 * Timeouts: one deadline list per kind (connect, TCP idle, UDP idle, DNS
 * idle), dlist.c.  What the bytes are (detect, TLS, protocol layer, the
 * recorder) is decided in the other relay_*.c files (relay_int.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "proxyd/hostmatch.h"
#include "proxyd/layer.h"
#include "proxyd/membudget.h"
#include "proxyd/mitm.h"
#include "proxyd/passmap.h"
#include "proxyd/relay.h"
#include "proxyd/relay_int.h"
#include "proxyd/store.h"

/* --- small things ------------------------------------------------------------ */

uint64_t
relay_realtime_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

void
relay_changed(struct relay *r)
{
	if (r->on_change)
		r->on_change(r->on_change_arg);
}

void
relay_watch(struct ev_loop *loop, ev_io *w, int on)
{
	if (on && !ev_is_active(w))
		ev_io_start(loop, w);
	else if (!on && ev_is_active(w))
		ev_io_stop(loop, w);
}

size_t
relay_hash_slot(const void *source, uint64_t id)
{
	uint64_t h = (uint64_t)(uintptr_t)source * 0x9e3779b97f4a7c15ULL ^ id;

	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 32;
	return (size_t)(h & (RELAY_HASH_BUCKETS - 1));
}

/*
 * A refused flow is one log line, but at most one a second: refusals come
 * from application traffic (or from running out of descriptors) and must
 * not flood the log.  The next line says how many were not logged.
 */
void __attribute__((format(printf, 2, 3)))
relay_refusal_warn(struct relay *r, const char *fmt, ...)
{
	ev_tstamp now = ev_now(r->loop);
	char line[256];
	va_list ap;

	if (r->refusal_logged > 0 && now - r->refusal_logged < 1.0) {
		r->refusals_unlogged++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (r->refusals_unlogged)
		log_warnx("%s (and %u more refusals not logged)", line,
		    r->refusals_unlogged);
	else
		log_warnx("%s", line);
	r->refusal_logged = now;
	r->refusals_unlogged = 0;
}

void
relay_refuse(struct relay *r, int fd, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	relay_refusal_warn(r, "%s", line);
	r->stats.flows_refused++;
	close(fd);
	relay_changed(r);
}

/* --- ring buffers under the memory budget ------------------------------------- */

/*
 * Room in b.  A buffer without memory gets it now: bufsize when the budget
 * has room, else RING_SMALL (at least need) charged anyway, so that a flow
 * under memory pressure slows down rather than stops.  -1 out of memory.
 */
int
rflow_ring_space(struct relay *r, struct rbuf *b, struct iovec iov[2],
    size_t need)
{
	size_t cap;

	if (b->data == NULL) {
		cap = r->cfg.bufsize;
		if (!membudget_take(r->cfg.budget, cap)) {
			cap = RING_SMALL < cap ? RING_SMALL : cap;
			if (cap < need)
				cap = need;
			membudget_force(r->cfg.budget, cap);
			r->stats.small_rings++;
		}
		if (rbuf_alloc(b, cap) == -1) {
			membudget_give(r->cfg.budget, cap);
			return -1;
		}
	}
	return rbuf_space(b, iov);
}

/* Drop what b holds and give its memory back. */
void
rflow_ring_release(struct relay *r, struct rbuf *b)
{
	membudget_give(r->cfg.budget, b->cap);
	r->stats.buffered -= rbuf_release(b);
}

/* --- flow caps ------------------------------------------------------------------ */

static size_t
addr_slot(const struct endpoint *a)
{
	uint64_t h = 1469598103934665603ULL;
	size_t i, n = a->family == AF_INET ? 4 : 16;

	for (i = 0; i < n; i++)
		h = (h ^ a->addr[i]) * 1099511628211ULL;
	return (size_t)(h ^ h >> 32) & (ADDR_BUCKETS - 1);
}

static struct addr_count **
addr_find(struct relay *r, const struct endpoint *a)
{
	struct addr_count **pp;

	for (pp = &r->addrs[addr_slot(a)]; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->addr.family == a->family &&
		    memcmp((*pp)->addr.addr, a->addr, 16) == 0)
			break;
	return pp;
}

/*
 * Whether a new flow from src fits under the caps; if not, why (into
 * why).  If it fits it is counted (rflow_addr_uncount undoes that).
 */
static bool
caps_admit(struct rflow *f, char *why, size_t whylen)
{
	struct relay *r = f->relay;
	struct endpoint a = f->rec.meta.src;
	struct addr_count **pp, *c;
	char src[64];

	a.port = 0;
	if (r->cfg.max_flows > 0 && r->stats.flows_active >= r->cfg.max_flows) {
		snprintf(why, whylen, "%zu flows running (max_flows)",
		    (size_t)r->stats.flows_active);
		return false;
	}
	pp = addr_find(r, &a);
	if ((c = *pp) != NULL && r->cfg.max_flows_per_addr > 0 &&
	    c->n >= r->cfg.max_flows_per_addr) {
		flow_addr_str(&a, src, sizeof(src));
		if (strrchr(src, ':') != NULL)
			*strrchr(src, ':') = '\0';
		snprintf(why, whylen, "%zu flows running from %s "
		    "(max_flows_per_addr)", c->n, src);
		return false;
	}
	if (c == NULL) {
		if ((c = calloc(1, sizeof(*c))) == NULL)
			return true;	/* admitted, not counted */
		memset(&c->addr, 0, sizeof(c->addr));
		c->addr.family = a.family;
		memcpy(c->addr.addr, a.addr, sizeof(a.addr));
		*pp = c;
	}
	c->n++;
	f->addr_counted = 1;
	return true;
}

void
rflow_addr_uncount(struct rflow *f)
{
	struct endpoint a = f->rec.meta.src;
	struct addr_count **pp, *c;

	if (!f->addr_counted)
		return;
	f->addr_counted = 0;
	a.port = 0;
	pp = addr_find(f->relay, &a);
	if ((c = *pp) != NULL && --c->n == 0) {
		*pp = c->next;
		free(c);
	}
}

/* --- deadlines ---------------------------------------------------------------- */

/* A flow's time in one deadline list is up: l->why says what that means. */
static void
deadline_expired(struct dlist *l, struct dl_entry *d)
{
	struct rflow *f = d->owner;

	/* An intercepted client still gets told why (a 502). */
	if (l->why == FLOW_END_CONNECT_TIMEOUT && f->m != NULL) {
		(void)rflow_tls_connect_failed(f, ETIMEDOUT);
		return;
	}
	rflow_end(f, (enum flow_end)l->why, l->why == FLOW_END_CONNECT_TIMEOUT ?
	    ETIMEDOUT : 0);
}


/* --- TCP ---------------------------------------------------------------------- */

/*
 * got bytes from one side landed in b, through iov (what rbuf_space gave):
 * count them, keep the first ones and show them to the protocol layer.
 */
void
rflow_took(struct rflow *f, struct rbuf *b, int from_app, const struct iovec *iov,
    size_t got)
{
	struct relay *r = f->relay;
	uint8_t *first = from_app ? f->rec.first_from_app : f->rec.first_to_app;
	uint16_t *first_len = from_app ? &f->rec.first_from_app_len :
	    &f->rec.first_to_app_len;
	size_t in0 = got < iov[0].iov_len ? got : iov[0].iov_len;

	if (from_app) {
		f->rec.bytes_from_app += got;
		r->stats.bytes_from_app += got;
	} else {
		f->rec.bytes_to_app += got;
		r->stats.bytes_to_app += got;
	}
	if (*first_len < FLOW_FIRST_BYTES) {
		flow_keep_first(first, first_len, iov[0].iov_base, in0);
		if (got > in0)
			flow_keep_first(first, first_len, iov[1].iov_base,
			    got - in0);
	}
	if (f->proto != NULL) {
		rflow_proto_observe(f, from_app, iov[0].iov_base, in0);
		if (got > in0)
			rflow_proto_observe(f, from_app, iov[1].iov_base, got - in0);
	}
	b->len += got;
	r->stats.buffered += got;
	if (b->len > r->stats.buffer_high_water)
		r->stats.buffer_high_water = b->len;
}

struct dlist *
rflow_idle_list(struct rflow *f)
{
	struct relay *r = f->relay;

	if (f->rec.meta.transport == FLOW_TCP)
		return &r->tcp_idle;
	return f->rec.meta.dst.port == 53 ? &r->dns_idle : &r->udp_idle;
}

/*
 * Read what s has into b (or its pipe, once the direction splices).  0 to
 * go on, -1 if the flow ended (f is freed).
 */
static int
tcp_read(struct rflow *f, struct side *s, struct rbuf *b, int from_app)
{
	struct relay *r = f->relay;
	struct spipe *p = from_app ? &f->pa2u : &f->pu2a;
	struct iovec iov[2];
	ssize_t n;
	int niov;

	if (p->rd != -1)
		return rflow_splice_in(f, s, p, from_app);

	if ((niov = rflow_ring_space(r, b, iov, 0)) <= 0) {
		if (niov == -1) {
			log_warnx("flow %llu: out of memory for its buffer",
			    (unsigned long long)f->rec.id);
			rflow_end(f, FLOW_END_INTERNAL, ENOMEM);
			return -1;
		}
		return 0;
	}
	n = readv(s->fd, iov, niov);
	if (n > 0) {
		rflow_took(f, b, from_app, iov, (size_t)n);
		dlist_touch(&r->tcp_idle, &f->idle_dl);
		return 0;
	}
	if (n == 0) {
		s->eof = 1;
		rflow_proto_observe_eof(f, from_app);
		return 0;
	}
	if (errno == EAGAIN || errno == EINTR) {
		/* Nothing pending and nothing held: give the memory back. */
		if (b->len == 0)
			rflow_ring_release(r, b);
		return 0;
	}
	rflow_end(f, from_app ? FLOW_END_APP_RESET : FLOW_END_UPSTREAM_RESET,
	    errno);
	return -1;
}

/* Write what b holds to s.  0 to go on, -1 if the flow ended. */
static int
tcp_write(struct rflow *f, struct side *s, struct rbuf *b, int to_app)
{
	struct relay *r = f->relay;
	struct spipe *p = to_app ? &f->pu2a : &f->pa2u;
	struct iovec iov[2];
	struct msghdr mh;
	ssize_t n;
	int niov;

	if (p->rd != -1)
		return rflow_splice_out(f, s, p, to_app);
	if ((niov = rbuf_data(b, iov)) == 0)
		return 0;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = (size_t)niov;
	n = sendmsg(s->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n >= 0) {
		rbuf_consume(b, (size_t)n);
		r->stats.buffered -= (size_t)n;
		dlist_touch(&r->tcp_idle, &f->idle_dl);
		return 0;
	}
	if (errno == EAGAIN || errno == EINTR || errno == ENOBUFS)
		return 0;
	rflow_end(f, to_app ? FLOW_END_APP_RESET : FLOW_END_UPSTREAM_RESET, errno);
	return -1;
}

static void
tcp_connected(struct rflow *f)
{
	struct relay *r = f->relay;

	f->connecting = 0;
	f->rec.connect_us = (uint64_t)((ev_now(r->loop) - f->started) * 1e6);
	dlist_remove(&f->connect_dl);
	dlist_touch(&r->tcp_idle, &f->idle_dl);
}

void
rflow_settle(struct rflow *f)
{
	struct relay *r = f->relay;
	size_t a2u, u2a;
	int drain_a2u = 0, drain_u2a = 0;

	if (f->m != NULL) {
		(void)rflow_tls_run(f);
		return;
	}
	if (f->layer_pump) {
		(void)rflow_layer_run(f);
		return;
	}
	/* Bytes held each way: a direction uses its buffer or its pipe. */
	a2u = f->a2u.len + f->pa2u.len;
	u2a = f->u2a.len + f->pu2a.len;
	if (!f->connecting && !f->detecting) {
		if (f->app.eof && a2u == 0 && !f->up.shut_wr) {
			(void)shutdown(f->up.fd, SHUT_WR);
			f->up.shut_wr = 1;
			rflow_ring_release(r, &f->a2u);
			spipe_close(r, &f->pa2u);
		}
		if (f->up.eof && u2a == 0 && !f->app.shut_wr) {
			(void)shutdown(f->app.fd, SHUT_WR);
			f->app.shut_wr = 1;
			rflow_ring_release(r, &f->u2a);
			spipe_close(r, &f->pu2a);
		}
		if (f->app.shut_wr && f->up.shut_wr) {
			rflow_end(f, FLOW_END_CLOSED, 0);
			return;
		}
		drain_a2u = rflow_splice_maybe(f, 1);
		drain_u2a = rflow_splice_maybe(f, 0);
	}
	relay_watch(r->loop, &f->app.rd, !f->app.eof && !drain_a2u &&
	    spipe_room(r, &f->a2u, &f->pa2u));
	/* While detecting, the up socket may be gone (connect_err). */
	relay_watch(r->loop, &f->up.wr, f->up.fd != -1 && (f->connecting ||
	    (!f->detecting && a2u > 0)));
	/* Held server bytes (rflow_server_hold): a frame header is enough. */
	relay_watch(r->loop, &f->up.rd, f->up.fd != -1 && !f->connecting &&
	    !f->up.eof && !drain_u2a && spipe_room(r, &f->u2a, &f->pu2a) &&
	    !(f->server_held && f->u2a.len >= 9));
	relay_watch(r->loop, &f->app.wr, u2a > 0 && !f->server_held);
}

static void
tcp_app_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct rflow *f = w->data;

	(void)loop;
	(void)revents;
	if (f->m != NULL) {
		(void)rflow_tls_run_woken(f, MITM_CLIENT);
		return;
	}
	if (f->layer_pump) {
		(void)rflow_layer_run(f);
		return;
	}
	if (tcp_read(f, &f->app, &f->a2u, 1) == -1)
		return;
	rflow_server_hold_client(f);
	if (f->detecting && rflow_detect(f) == -1)
		return;
	if (f->m != NULL)
		return;		/* rflow_tls_run has run */
	rflow_http_sniff(f);
	/* Looked at, and not h2c after all: the held bytes go on. */
	if (f->server_held && f->sniffed && !f->layer_pump)
		rflow_server_release(f);
	if (f->layer_pump) {		/* h2c: the layer takes the bytes */
		(void)rflow_layer_run(f);
		return;
	}
	/* Pass it on at once rather than a loop iteration later. */
	if (!f->connecting && !f->detecting &&
	    tcp_write(f, &f->up, &f->a2u, 0) == -1)
		return;
	rflow_settle(f);
}

static void
tcp_up_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct rflow *f = w->data;

	(void)loop;
	(void)revents;
	if (f->m != NULL) {
		(void)rflow_tls_run_woken(f, MITM_UPSTREAM);
		return;
	}
	if (f->layer_pump) {
		(void)rflow_layer_run(f);
		return;
	}
	if (tcp_read(f, &f->up, &f->u2a, 0) == -1)
		return;
	/* What may be an h2c origin's SETTINGS waits for the client. */
	if (rflow_server_hold(f)) {
		rflow_settle(f);
		return;
	}
	/* A server that speaks first is not answering a ClientHello. */
	if (f->detecting && f->u2a.len > 0)
		f->detecting = 0;
	if (tcp_write(f, &f->app, &f->u2a, 1) == -1)
		return;
	rflow_settle(f);
}

static void
tcp_app_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct rflow *f = w->data;

	(void)loop;
	(void)revents;
	if (f->m != NULL) {
		(void)rflow_tls_run(f);
		return;
	}
	if (f->layer_pump) {
		(void)rflow_layer_run(f);
		return;
	}
	if (!f->server_held && tcp_write(f, &f->app, &f->u2a, 1) == -1)
		return;
	rflow_settle(f);
}

static void
tcp_up_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct rflow *f = w->data;
	socklen_t len;
	int err;

	(void)loop;
	(void)revents;
	if (f->connecting) {
		len = sizeof(err);
		if (getsockopt(f->up.fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
			err = errno;
		if (err == EINPROGRESS || err == EALREADY)
			return;
		if (err != 0) {
			if (f->m != NULL) {
				(void)rflow_tls_connect_failed(f, err);
				return;
			}
			if (f->detecting) {
				/*
				 * A ClientHello still gets a 502; decide first.
				 * A client that has sent nothing yet gets a
				 * moment to do so, then the reset it would get
				 * without interception.
				 */
				f->connect_err = err;
				f->connecting = 0;
				dlist_remove(&f->connect_dl);
				rflow_side_close(f->relay, &f->up);
				if (f->a2u.len == 0)
					ev_timer_start(f->relay->loop, &f->grace);
				rflow_settle(f);
				return;
			}
			rflow_end(f, FLOW_END_CONNECT_FAILED, err);
			return;
		}
		tcp_connected(f);
	}
	if (f->m != NULL) {
		(void)rflow_tls_run(f);
		return;
	}
	if (f->layer_pump) {
		(void)rflow_layer_run(f);
		return;
	}
	if (!f->detecting && tcp_write(f, &f->up, &f->a2u, 0) == -1)
		return;
	rflow_settle(f);
}

/* --- starting flows ------------------------------------------------------------ */

static int
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		return -1;
	return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/*
 * Bytes already read from the app (relay_start_prefixed) into a2u, as if
 * they had just arrived.  0, or -1 if the flow ended.
 */
static int
seed(struct rflow *f, const void *prefix, size_t len)
{
	struct iovec iov[2];
	int niov;

	if ((niov = rflow_ring_space(f->relay, &f->a2u, iov, len)) <= 0 ||
	    iov[0].iov_len < len) {
		rflow_end(f, FLOW_END_INTERNAL, ENOMEM);
		return -1;
	}
	memcpy(iov[0].iov_base, prefix, len);
	rflow_took(f, &f->a2u, 1, iov, len);
	if (f->detecting && rflow_detect(f) == -1)
		return -1;
	if (f->m == NULL)
		rflow_http_sniff(f);
	return 0;
}

uint64_t
relay_start(struct relay *r, const void *source, struct flow_meta *meta, int fd)
{
	return relay_start_prefixed(r, source, meta, fd, NULL, 0);
}

uint64_t
relay_start_prefixed(struct relay *r, const void *source,
    struct flow_meta *meta, int fd, const void *prefix, size_t prefix_len)
{
	struct sockaddr_storage ss;
	struct rflow *f;
	socklen_t len, sslen;
	int tcp = meta->transport == FLOW_TCP, one = 1, rc;
	const char *pat;
	uint64_t id;
	char dst[64];

	if (prefix_len > r->cfg.bufsize || (prefix_len > 0 && !tcp)) {
		relay_refusal_warn(r, "flow to %s: %zu bytes already read do not fit",
		    flow_addr_str(&meta->dst, dst, sizeof(dst)), prefix_len);
		f = NULL;
		goto refuse;
	}

	if ((f = calloc(1, sizeof(*f))) == NULL) {
		relay_refusal_warn(r, "flow to %s: out of memory",
		    flow_addr_str(&meta->dst, dst, sizeof(dst)));
		goto refuse;
	}
	f->relay = r;
	f->app.fd = fd;
	f->up.fd = -1;
	spipe_init(&f->pa2u);
	spipe_init(&f->pu2a);
	len = sizeof(f->app.domain);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &f->app.domain, &len) == -1)
		f->app.domain = -1;
	len = sizeof(f->app.type);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &f->app.type, &len) == -1 ||
	    set_nonblock(fd) == -1) {
		relay_refusal_warn(r, "flow to %s: its socket: %s",
		    flow_addr_str(&meta->dst, dst, sizeof(dst)), strerror(errno));
		goto refuse;
	}
	f->up.domain = meta->dst.family;
	f->up.type = tcp ? SOCK_STREAM : SOCK_DGRAM;
	f->rec.meta.src = meta->src;	/* for caps_admit */
	if (!caps_admit(f, f->refused, sizeof(f->refused))) {
		/* Recorded below, then refused: no upstream socket. */
		relay_refusal_warn(r, "flow to %s refused: %s",
		    flow_addr_str(&meta->dst, dst, sizeof(dst)), f->refused);
	} else if ((f->up.fd = plat_socket(meta->dst.family, f->up.type,
	    1)) == -1) {
		rflow_addr_uncount(f);
		relay_refusal_warn(r, "flow to %s: upstream socket: %s",
		    flow_addr_str(&meta->dst, dst, sizeof(dst)), strerror(errno));
		goto refuse;
	}
	if (tcp && f->up.fd != -1) {
		/* The app chose when to send; do not add Nagle delays of ours. */
		(void)setsockopt(f->up.fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
	}

	/* From here on the flow exists and is recorded however it ends. */
	f->rec.id = r->next_id++;
	f->rec.meta = *meta;
	/* Deadlines start now, not at the loop's last wake-up. */
	ev_now_update(r->loop);
	if (f->rec.meta.start_us == 0)
		f->rec.meta.start_us = relay_realtime_us();
	f->started = ev_now(r->loop);
	f->source = source;
	/* With interception on, a TCP flow's first bytes are looked at. */
	f->detecting = tcp && r->cfg.mitm != NULL;
	if (tcp && (pat = rflow_ignore_match(f)) != NULL) {
		/* Not looked into at all: no TLS, no HTTP observation. */
		f->ignored = 1;
		f->detecting = 0;
		f->sniffed = 1;
		snprintf(f->pass_reason, sizeof(f->pass_reason),
		    "matches --ignore-hosts '%s'", pat);
	}
	f->connect_dl.owner = f->idle_dl.owner = f;
	TAILQ_INSERT_TAIL(&r->flows, f, all);
	/* UDP to port 53 is DNS from its first datagram (udp_pump). */
	if (!tcp && f->rec.meta.dst.port == 53)
		f->rec.protocol = "dns";
	/* In the store from its start, so `localcapctl flows` can see it. */
	recorder_flow_begin(f);
	if (source) {
		size_t h = relay_hash_slot(source, f->rec.meta.source_flow_id);

		f->hnext = r->hash[h];
		r->hash[h] = f;
		f->hashed = 1;
	}
	r->stats.flows_active++;
	r->stats.flows_total++;

	ev_io_init(&f->app.rd, tcp ? tcp_app_readable : rflow_udp_app_readable, fd,
	    EV_READ);
	ev_io_init(&f->up.rd, tcp ? tcp_up_readable : rflow_udp_up_readable, f->up.fd,
	    EV_READ);
	ev_io_init(&f->app.wr, tcp_app_writable, fd, EV_WRITE);
	ev_io_init(&f->up.wr, tcp_up_writable, f->up.fd, EV_WRITE);
	f->app.rd.data = f->up.rd.data = f->app.wr.data = f->up.wr.data = f;
	ev_timer_init(&f->grace, rflow_grace_expired, CONNECT_GRACE, 0);
	f->grace.data = f;
	if (f->refused[0] != '\0') {
		r->stats.flows_over_cap++;
		r->stats.flows_refused++;
		rflow_end(f, FLOW_END_REFUSED, 0);
		return 0;
	}
	f->charged = FLOW_STATE_COST;
	membudget_force(r->cfg.budget, f->charged);

	sslen = flow_addr_sockaddr(&f->rec.meta.dst, &ss);
	rc = connect(f->up.fd, (struct sockaddr *)&ss, sslen);
	if (rc == -1 && !(tcp && errno == EINPROGRESS)) {
		rflow_end(f, FLOW_END_CONNECT_FAILED, errno);
		return 0;
	}
	relay_changed(r);
	id = f->rec.id;
	if (tcp) {
		if (rc == 0)
			tcp_connected(f);
		else {
			f->connecting = 1;
			dlist_touch(&r->connect_list, &f->connect_dl);
		}
		if (prefix_len > 0 && seed(f, prefix, prefix_len) == -1)
			return id;	/* it ended, recorded */
		rflow_settle(f);
	} else {
		dlist_touch(rflow_idle_list(f), &f->idle_dl);
		ev_io_start(r->loop, &f->app.rd);
		ev_io_start(r->loop, &f->up.rd);
	}
	return id;

refuse:
	r->stats.flows_refused++;
	if (f && f->up.fd != -1)
		close(f->up.fd);
	if (f)
		rflow_addr_uncount(f);
	free(f);
	close(fd);
	flow_meta_clear(meta);
	relay_changed(r);
	return 0;
}

/* --- the engine ------------------------------------------------------------------ */

void
relay_config_default(struct relay_config *c)
{
	memset(c, 0, sizeof(*c));
	c->connect_timeout = 10;
	c->tcp_idle_timeout = RELAY_DEFAULT_TCP_IDLE;
	c->max_flows = RELAY_DEFAULT_MAX_FLOWS;
	c->max_flows_per_addr = RELAY_DEFAULT_MAX_PER_ADDR;
	c->udp_idle_timeout = 60;
	c->dns_idle_timeout = 30;
	c->bufsize = 128 * 1024;
	c->passthrough_max = PASSMAP_DEFAULT_CAP;
	c->passthrough_ttl = PASSMAP_DEFAULT_TTL;
	c->source_wait = 2;
	c->splice = RELAY_SPLICE_AUTO;
	c->splice_after = 64 * 1024;
}

struct relay *
relay_new(struct ev_loop *loop, const struct relay_config *cfg)
{
	struct relay *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->loop = loop;
	r->cfg = *cfg;
	if (r->cfg.bufsize < 4096)
		r->cfg.bufsize = 4096;
	if (r->cfg.bufsize > (1u << 30))
		r->cfg.bufsize = 1u << 30;	/* F_SETPIPE_SZ takes an int */
	if (r->cfg.splice != RELAY_SPLICE_OFF) {
		struct sigaction sa;

		/* splice(2) has no MSG_NOSIGNAL: EPIPE must not kill us. */
		if (sigaction(SIGPIPE, NULL, &sa) == 0 &&
		    !(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_DFL)
			(void)signal(SIGPIPE, SIG_IGN);
	}
	if ((r->dgram = malloc(UDP_MAX_DGRAM)) == NULL ||
	    passmap_init(&r->pass, r->cfg.passthrough_max) == -1 ||
	    flow_ring_init(&r->ring, r->cfg.ring_size) == -1) {
		passmap_free(&r->pass);
		free(r->dgram);
		free(r);
		return NULL;
	}
	r->next_id = 1;
	TAILQ_INIT(&r->flows);
	dlist_init(&r->connect_list, loop, r->cfg.connect_timeout,
	    FLOW_END_CONNECT_TIMEOUT, deadline_expired);
	dlist_init(&r->tcp_idle, loop, r->cfg.tcp_idle_timeout, FLOW_END_IDLE,
	    deadline_expired);
	dlist_init(&r->udp_idle, loop, r->cfg.udp_idle_timeout, FLOW_END_IDLE,
	    deadline_expired);
	dlist_init(&r->dns_idle, loop, r->cfg.dns_idle_timeout, FLOW_END_IDLE,
	    deadline_expired);
	ev_timer_init(&r->hold_timer, relay_hold_expired, 0, 0);
	return r;
}

void
relay_set_store(struct relay *r, struct store *store)
{
	/* The rows waiting for figures belong to the store going away. */
	if (store != r->cfg.store)
		relay_ended_drop(r, NULL);
	r->cfg.store = store;
}

void
relay_set_mitm(struct relay *r, struct mitm_ctx *ctx)
{
	r->cfg.mitm = ctx;
}

void
relay_free(struct relay *r)
{
	struct rflow *f;

	if (r == NULL)
		return;
	r->on_change = NULL;
	while ((f = TAILQ_FIRST(&r->flows)) != NULL)
		rflow_end(f, FLOW_END_SHUTDOWN, 0);
	relay_ended_drop(r, NULL);	/* no FlowClosed will be read any more */
	ev_timer_stop(r->loop, &r->hold_timer);
	dlist_stop(&r->connect_list);
	dlist_stop(&r->tcp_idle);
	dlist_stop(&r->udp_idle);
	dlist_stop(&r->dns_idle);
	for (size_t i = 0; i < ADDR_BUCKETS; i++)
		while (r->addrs[i] != NULL) {
			struct addr_count *c = r->addrs[i];

			r->addrs[i] = c->next;
			free(c);
		}
	flow_ring_free(&r->ring);
	passmap_free(&r->pass);
	free(r->dgram);
	free(r);
}

void
relay_set_on_change(struct relay *r, void (*cb)(void *), void *arg)
{
	r->on_change = cb;
	r->on_change_arg = arg;
}

void
relay_set_on_source_reset(struct relay *r,
    int (*cb)(void *, const void *, uint64_t), void *arg)
{
	r->on_source_reset = cb;
	r->on_source_reset_arg = arg;
}

const struct relay_stats *
relay_stats(const struct relay *r)
{
	return &r->stats;
}

size_t
relay_tls_held_bytes(const struct relay *r)
{
	const struct rflow *f;
	size_t n = 0;

	/* A walk over the flows: called once per status round, not per byte. */
	TAILQ_FOREACH(f, &r->flows, all)
		if (f->m != NULL)
			n += mitm_held_bytes(f->m) + (f->proto != NULL ?
			    f->proto->ops->held(f->proto) : 0);
		else if (f->layer_pump && f->proto != NULL)
			n += f->proto->ops->held(f->proto);
	return n;
}

const struct flow_ring *
relay_ring(const struct relay *r)
{
	return &r->ring;
}

const struct flow_record *
relay_flow_record(const struct relay *r, uint64_t id)
{
	const struct rflow *f;

	TAILQ_FOREACH(f, &r->flows, all)
		if (f->rec.id == id)
			return &f->rec;
	return NULL;
}

