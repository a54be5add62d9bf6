/*
 * proxyd's raw relay (see relay.h and docs/proxyd-relay.md).
 *
 * One struct rflow per flow: the application side (the flow socket from the
 * source) and the upstream side (our socket to the original destination),
 * each with a read and a write watcher.  TCP bytes move through one bounded
 * ring buffer per direction; after every event tcp_settle() recomputes which
 * watchers should run from the flow's state, so flow control, half-close and
 * the end of the flow are decided in one place:
 *
 *	read app     while a2u has room        write upstream  while a2u has data
 *	read upstream while u2a has room       write app       while u2a has data
 *	EOF from a side + its buffer drained  =>  shutdown(SHUT_WR) the other
 *	both sides shut for writing           =>  the flow is done
 *
 * Timeouts follow libev's advice for many equal timeouts: one ev_timer per
 * kind (connect, TCP idle, UDP idle, DNS idle) over a list kept in deadline
 * order, since every entry of a list has the same duration and is only ever
 * moved to the tail.
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
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "proxyd/detect.h"
#include "proxyd/hostmatch.h"
#include "proxyd/httpobs.h"
#include "proxyd/mitm.h"
#include "proxyd/passmap.h"
#include "proxyd/relay.h"
#include "proxyd/store.h"
#include "proxyd/tlshello.h"

#define RELAY_HASH_BUCKETS	1024	/* (source, flow id) -> flow */
#define UDP_MAX_DGRAM		65536
#define UDP_BATCH		64	/* datagrams per readiness event */
/*
 * Upstream connect failed before the app sent anything: how long (s) to
 * wait for a ClientHello that would get a 502 rather than a reset.
 */
#define CONNECT_GRACE		0.25
/* Plaintext of an observed TLS flow read from one leg, not yet written to
 * the other: one record at most. */
#define PLAIN_CHUNK		16384
/* TCP flows ended on our side whose FlowClosed may still come (see ended). */
#define ENDED_MAX		1024
/*
 * A pipe smaller than this (the user's pipe-user-pages-soft is used up, and
 * new pipes get two pages) would splice slower than copying: not used.
 */
#define SPLICE_MIN_PIPE		(64 * 1024)

/* A flow's place in one deadline list. */
struct dl_entry {
	TAILQ_ENTRY(dl_entry)	 e;
	struct dlist		*list;		/* NULL: in none */
	struct rflow		*flow;
	ev_tstamp		 stamp;		/* when the clock started */
};

/* Entries of equal duration, oldest stamp first, one timer for all. */
struct dlist {
	TAILQ_HEAD(, dl_entry)	 head;
	struct relay		*relay;
	ev_tstamp		 timeout;	/* 0: list unused */
	enum flow_end		 why;		/* what expiry means */
	ev_timer		 timer;
};

/*
 * A TCP flow that ended on proxyd's side while its source had not sent its
 * FlowClosed yet (the usual order: the flow socket's EOF overtakes the
 * message, and the source's stack still waits for the app's last ACK).  Its
 * row is written at once but left incomplete ("held") for up to
 * cfg.source_wait seconds, so a follower sees it with the source's figures;
 * after that it is completed as it is, and the entry still lets a later
 * FlowClosed put its figures in, until ENDED_MAX newer ones push it out.
 */
struct ended {
	const void	*source;	/* NULL: nothing more to expect */
	uint64_t	 source_flow_id;
	uint64_t	 id;		/* proxyd's: the ring's record */
	int64_t		 store_row;
	ev_tstamp	 until;		/* loop time the hold ends */
	unsigned	 held:1;	/* row not marked complete yet */
};

/* Decrypted bytes on their way across; memory only while it holds data. */
struct pbuf {
	uint8_t		*data;
	size_t		 off;			/* first byte not yet written */
	size_t		 len;			/* bytes left to write */
};

/* Ring buffer of one direction; memory only while it holds data. */
struct rbuf {
	uint8_t		*data;
	size_t		 head;			/* offset of the oldest byte */
	size_t		 len;			/* bytes held */
};

/*
 * The pipe one direction is spliced through, once nothing looks at its
 * bytes any more.  The kernel does not say how much a pipe holds, so len is
 * counted here: never more than cap (<= bufsize) goes in.
 */
struct spipe {
	int		 rd;			/* -1: the direction copies */
	int		 wr;
	size_t		 len;			/* bytes in the pipe */
	size_t		 cap;
	unsigned	 stalled:1;		/* out of slots before cap: read
						 * again once some went out */
};

struct side {
	int		 fd;
	ev_io		 rd;
	ev_io		 wr;
	int		 domain;		/* AF_UNIX, AF_INET, AF_INET6 */
	int		 type;			/* SOCK_STREAM, SOCK_DGRAM... */
	unsigned	 eof:1;			/* read returned 0 */
	unsigned	 shut_wr:1;		/* we sent it our EOF */
};

struct rflow {
	struct relay		*relay;
	const void		*source;	/* NULL once the source is gone */
	struct flow_record	 rec;
	struct side		 app;
	struct side		 up;
	struct rbuf		 a2u;		/* app -> upstream */
	struct rbuf		 u2a;		/* upstream -> app */
	struct spipe		 pa2u;		/* splice(2) instead of a2u */
	struct spipe		 pu2a;		/* ... of u2a */
	unsigned		 splice_failed:1;	/* no pipe: copy on */
	unsigned		 connecting:1;
	unsigned		 hashed:1;
	unsigned		 closed_seen:1;	/* the source's FlowClosed came */
	ev_tstamp		 started;	/* loop time */
	struct dl_entry		 connect_dl;
	struct dl_entry		 idle_dl;
	TAILQ_ENTRY(rflow)	 all;
	struct rflow		*hnext;
	int64_t			 store_row;	/* its row in the flow store, or 0 */
	/*
	 * TLS.  While detecting, the app's first bytes wait in a2u (nothing
	 * goes upstream) until they are known to be a ClientHello or not;
	 * then either m takes the flow or it goes on raw.
	 */
	unsigned		 detecting:1;
	unsigned		 answered:1;	/* upstream failed: client answered */
	unsigned		 client_done:1;	/* ... or its stream ended first */
	unsigned		 tls_shut[2];	/* close_notify sent towards side */
	int			 connect_err;	/* connect failed while detecting */
	ev_timer		 grace;		/* ... how long to wait for a hello */
	struct mitm		*m;
	char			 host[PASSMAP_KEY_MAX];	/* passthrough key */
	char			 pass_reason[PASSMAP_KEY_MAX + 64];
						/* why it was not looked into */
	unsigned		 ignored:1;	/* --ignore-hosts: raw from the start */
	uint8_t			 probe[256];	/* client plaintext after an
						 * upstream failure: HTTP? */
	size_t			 probe_len;
	/*
	 * HTTP observation (httpobs.c): plain HTTP, or the plaintext of a
	 * TLS flow whose ALPN is http/1.1 or none.  The observer sees the
	 * bytes as they pass and changes none of them.  An observed TLS flow
	 * moves its plaintext through plain[] (indexed by the side it came
	 * from) instead of mitm_relay(), which does not show it.
	 */
	struct httpobs		*obs;
	unsigned		 sniffed:1;	/* plain flow looked at */
	unsigned		 http_seen:1;	/* observed as HTTP at all */
	unsigned		 tls_checked:1;	/* ALPN looked at */
	unsigned		 tls_plain:1;	/* plaintext through plain[] */
	unsigned		 plain_eof:2;	/* (1 << side): its stream ended */
	struct pbuf		 plain[2];
};

struct relay {
	struct ev_loop		*loop;
	struct relay_config	 cfg;
	struct relay_stats	 stats;
	struct flow_ring	 ring;
	uint64_t		 next_id;
	TAILQ_HEAD(, rflow)	 flows;
	struct rflow		*hash[RELAY_HASH_BUCKETS];
	struct dlist		 connect_list;
	struct dlist		 tcp_idle;
	struct dlist		 udp_idle;
	struct dlist		 dns_idle;
	uint8_t			*dgram;		/* UDP scratch, UDP_MAX_DGRAM */
	void			(*on_change)(void *);
	void			*on_change_arg;
	ev_tstamp		 refusal_logged;	/* loop time */
	unsigned		 refusals_unlogged;
	struct passmap		 pass;		/* hosts passed through for now */
	struct ended		 ended[ENDED_MAX];	/* FIFO, oldest first */
	size_t			 ended_head;	/* next slot written */
	size_t			 ended_count;
	size_t			 nheld;
	ev_timer		 hold_timer;
};

static void	flow_end(struct rflow *, enum flow_end, int error);
static void	tcp_settle(struct rflow *);
static int	tls_run(struct rflow *);
static int	tls_connect_failed(struct rflow *, int err);

/* --- small things ------------------------------------------------------------ */

static uint64_t
realtime_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void
changed(struct relay *r)
{
	if (r->on_change)
		r->on_change(r->on_change_arg);
}

static void
watch(struct ev_loop *loop, ev_io *w, int on)
{
	if (on && !ev_is_active(w))
		ev_io_start(loop, w);
	else if (!on && ev_is_active(w))
		ev_io_stop(loop, w);
}

static size_t
hash_slot(const void *source, uint64_t id)
{
	uint64_t h = (uint64_t)(uintptr_t)source * 0x9e3779b97f4a7c15ULL ^ id;

	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 32;
	return (size_t)(h & (RELAY_HASH_BUCKETS - 1));
}

static void
hash_remove(struct relay *r, struct rflow *f)
{
	struct rflow **pp;

	if (!f->hashed)
		return;
	for (pp = &r->hash[hash_slot(f->source, f->rec.meta.source_flow_id)];
	    *pp; pp = &(*pp)->hnext) {
		if (*pp == f) {
			*pp = f->hnext;
			break;
		}
	}
	f->hashed = 0;
	f->hnext = NULL;
}

/*
 * A refused flow is one log line, but at most one a second: refusals come
 * from application traffic (or from running out of descriptors) and must
 * not flood the log.  The next line says how many were not logged.
 */
static void __attribute__((format(printf, 2, 3)))
refusal_warn(struct relay *r, const char *fmt, ...)
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

/* --- deadline lists ---------------------------------------------------------- */

static void
dlist_arm(struct dlist *l)
{
	struct ev_loop *loop = l->relay->loop;
	struct dl_entry *first = TAILQ_FIRST(&l->head);
	ev_tstamp after;

	ev_timer_stop(loop, &l->timer);
	if (first == NULL)
		return;
	after = first->stamp + l->timeout - ev_now(loop);
	ev_timer_set(&l->timer, after > 0 ? after : 0, 0);
	ev_timer_start(loop, &l->timer);
}

static void
dlist_remove(struct dl_entry *d)
{
	struct dlist *l = d->list;
	int was_first;

	if (l == NULL)
		return;
	was_first = TAILQ_FIRST(&l->head) == d;
	TAILQ_REMOVE(&l->head, d, e);
	d->list = NULL;
	if (was_first)
		dlist_arm(l);
}

/* (Re)start d's clock in l; l unused (timeout 0) leaves d in no list. */
static void
dlist_touch(struct dlist *l, struct dl_entry *d)
{
	ev_tstamp now = ev_now(l->relay->loop);

	if (l->timeout <= 0)
		return;
	if (d->list == l) {
		/* The common case on a busy flow: cheap unless it was first. */
		if (d->stamp == now)
			return;
		if (TAILQ_NEXT(d, e) == NULL) {
			d->stamp = now;
			return;
		}
	}
	dlist_remove(d);
	d->stamp = now;
	d->list = l;
	TAILQ_INSERT_TAIL(&l->head, d, e);
	if (!ev_is_active(&l->timer))
		dlist_arm(l);
}

static void
dlist_expired(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dlist *l = (struct dlist *)(void *)((char *)w -
	    offsetof(struct dlist, timer));
	struct dl_entry *d;
	ev_tstamp now = ev_now(loop);

	(void)revents;
	while ((d = TAILQ_FIRST(&l->head)) != NULL &&
	    d->stamp + l->timeout <= now + 0.0005) {
		TAILQ_REMOVE(&l->head, d, e);
		d->list = NULL;
		/* An intercepted client still gets told why (a 502). */
		if (l->why == FLOW_END_CONNECT_TIMEOUT && d->flow->m != NULL) {
			(void)tls_connect_failed(d->flow, ETIMEDOUT);
			continue;
		}
		flow_end(d->flow, l->why, l->why == FLOW_END_CONNECT_TIMEOUT ?
		    ETIMEDOUT : 0);
	}
	dlist_arm(l);
}

static void
dlist_init(struct dlist *l, struct relay *r, double timeout, enum flow_end why)
{
	TAILQ_INIT(&l->head);
	l->relay = r;
	l->timeout = timeout;
	l->why = why;
	ev_init(&l->timer, dlist_expired);
}

/* --- buffers ------------------------------------------------------------------ */

/* Free segments of b as up to two iovecs; 0 if full.  Allocates on demand. */
static int
rbuf_space(struct relay *r, struct rbuf *b, struct iovec iov[2])
{
	size_t cap = r->cfg.bufsize, end;

	if (b->len == cap)
		return 0;
	if (b->data == NULL && (b->data = malloc(cap)) == NULL)
		return -1;
	if (b->len == 0)
		b->head = 0;
	end = b->head + b->len;
	if (end < cap) {
		/* Data does not wrap: free space after it, then before it. */
		iov[0].iov_base = b->data + end;
		iov[0].iov_len = cap - end;
		iov[1].iov_base = b->data;
		iov[1].iov_len = b->head;
		return b->head ? 2 : 1;
	}
	/* Data wraps (or ends at cap): free space is between its end and head. */
	iov[0].iov_base = b->data + (end - cap);
	iov[0].iov_len = b->head - (end - cap);
	return 1;
}

/* Held segments of b as up to two iovecs; 0 if empty. */
static int
rbuf_data(struct relay *r, const struct rbuf *b, struct iovec iov[2])
{
	size_t cap = r->cfg.bufsize, first;

	if (b->len == 0)
		return 0;
	first = cap - b->head < b->len ? cap - b->head : b->len;
	iov[0].iov_base = b->data + b->head;
	iov[0].iov_len = first;
	if (first == b->len)
		return 1;
	iov[1].iov_base = b->data;
	iov[1].iov_len = b->len - first;
	return 2;
}

static void
rbuf_release(struct relay *r, struct rbuf *b)
{
	r->stats.buffered -= b->len;
	free(b->data);
	b->data = NULL;
	b->head = b->len = 0;
}

/* --- splice(2) --------------------------------------------------------------------- */

static void
spipe_init(struct spipe *p)
{
	memset(p, 0, sizeof(*p));
	p->rd = p->wr = -1;
}

/* Bytes it held are dropped (the flow ends, or the direction is done). */
static void
spipe_close(struct relay *r, struct spipe *p)
{
	if (p->rd == -1)
		return;
	r->stats.buffered -= p->len;
	close(p->rd);
	close(p->wr);
	spipe_init(p);
}

/*
 * A pipe for one direction, sized like its ring buffer.  -1 (counted; the
 * direction copies on) if there is none to have: out of descriptors, or of
 * the user's pipe pages, which leave new pipes too small to be worth it.
 */
static int
spipe_open(struct relay *r, struct spipe *p)
{
	int fds[2], sz;

	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1) {
		if (r->stats.splice_fallbacks++ == 0)
			log_info("no pipe for splice(2) (%s): those flows copy",
			    strerror(errno));
		return -1;
	}
	if ((sz = fcntl(fds[1], F_SETPIPE_SZ, (int)r->cfg.bufsize)) == -1)
		sz = fcntl(fds[1], F_GETPIPE_SZ);
	if (sz < (int)(r->cfg.bufsize < SPLICE_MIN_PIPE ? r->cfg.bufsize :
	    SPLICE_MIN_PIPE)) {
		if (r->stats.splice_fallbacks++ == 0)
			log_info("pipes for splice(2) only %d bytes: those flows "
			    "copy", sz);
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	p->rd = fds[0];
	p->wr = fds[1];
	p->len = 0;
	p->cap = (size_t)sz < r->cfg.bufsize ? (size_t)sz : r->cfg.bufsize;
	p->stalled = 0;
	r->stats.splice_dirs++;
	return 0;
}

/* Room for reading into a direction: its pipe's, or else its buffer's. */
static int
dir_room(const struct relay *r, const struct rbuf *b, const struct spipe *p)
{
	if (p->rd != -1)
		return p->len < p->cap && !p->stalled;
	return b->len < r->cfg.bufsize;
}

/* --- ending a flow -------------------------------------------------------------- */

/*
 * Close a side so that its peer sees a reset rather than an orderly end.  A
 * TCP socket sends RST when closed with a zero linger.  A Unix stream socket
 * (netstackd's flow sockets) has no reset: it gets one out-of-band byte, the
 * reset marker (docs/proxyd-relay.md), which a reader unaware of it never
 * sees inline; the close that follows reads as EOF.
 */
static void
side_abort(struct side *s)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (s->fd == -1)
		return;
	if (s->domain == AF_INET || s->domain == AF_INET6)
		(void)setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	else if (s->domain == AF_UNIX && s->type == SOCK_STREAM)
		(void)send(s->fd, "R", 1, MSG_OOB | MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void
side_close(struct relay *r, struct side *s)
{
	ev_io_stop(r->loop, &s->rd);
	ev_io_stop(r->loop, &s->wr);
	if (s->fd != -1)
		close(s->fd);
	s->fd = -1;
}

static void
log_end(const struct rflow *f)
{
	const struct flow_record *rec = &f->rec;
	char src[64], dst[64];

	log_debug("flow %llu %s %s -> %s (%s pid %u): %s%s%s%s, %llu bytes out, "
	    "%llu in, %.3f s", (unsigned long long)rec->id,
	    flow_transport_str(rec->meta.transport),
	    flow_addr_str(&rec->meta.src, src, sizeof(src)),
	    flow_addr_str(&rec->meta.dst, dst, sizeof(dst)),
	    rec->meta.owner.name && rec->meta.owner.name[0] ?
	    rec->meta.owner.name : "?",
	    rec->meta.owner.pid, flow_end_str(rec->end),
	    rec->error ? " (" : "", rec->error ? strerror(rec->error) : "",
	    rec->error ? ")" : "", (unsigned long long)rec->bytes_from_app,
	    (unsigned long long)rec->bytes_to_app,
	    (double)(rec->end_us - rec->meta.start_us) / 1e6);
}

/*
 * The TLS facts of a flow for the store, also copied into its record for
 * the ring; NULL when the flow was not TLS.
 */
/* --- HTTP observation ------------------------------------------------------- */

static void
obs_emit(void *arg, const struct store_http *h)
{
	struct rflow *f = arg;

	(void)store_http_add(f->relay->cfg.store, f->store_row, h);
}

/*
 * Observe the flow's HTTP from now on; host is what a request without a
 * Host field is recorded with.  Only when there is a store to record into.
 */
static void
obs_start(struct rflow *f, const char *scheme, const char *host)
{
	struct httpobs_config c;

	if (f->relay->cfg.store == NULL || f->store_row <= 0)
		return;
	memset(&c, 0, sizeof(c));
	c.scheme = scheme;
	c.default_host = host;
	/* What the store keeps (httpobs takes 0 for its default: 1 byte is
	 * as good as none when the store keeps none). */
	c.body_cap = store_body_cap(f->relay->cfg.store);
	if (c.body_cap == 0)
		c.body_cap = 1;
	c.flow_id = f->rec.id;
	c.emit = obs_emit;
	c.arg = f;
	f->obs = httpobs_new(&c);
	f->http_seen = f->obs != NULL;
}

/* Observation is over for this flow (it stopped, or the flow ends). */
static void
obs_stop(struct rflow *f)
{
	httpobs_free(f->obs, realtime_us(), NULL);
	f->obs = NULL;
}

static void
obs_feed(struct rflow *f, int from_app, const void *p, size_t n)
{
	if (f->obs != NULL && httpobs_feed(f->obs, from_app ? HTTPOBS_CLIENT :
	    HTTPOBS_SERVER, p, n, realtime_us()) == -1)
		obs_stop(f);
}

static void
obs_eof(struct rflow *f, int from_app)
{
	if (f->obs != NULL && httpobs_eof(f->obs, from_app ? HTTPOBS_CLIENT :
	    HTTPOBS_SERVER, realtime_us()) == -1)
		obs_stop(f);
}

/*
 * A plain (not TLS) flow's first bytes from the app are in a2u, nothing of
 * them sent yet: if they start like an HTTP/1.x request, observe the flow.
 * Looked at once; a server that spoke first is not answering HTTP.
 */
static void
http_sniff(struct rflow *f)
{
	const uint8_t *p = f->a2u.data + f->a2u.head;
	size_t n = f->a2u.len;
	enum detect_proto d;
	char host[64];

	if (f->sniffed || f->detecting || f->m != NULL || n == 0)
		return;
	f->sniffed = 1;
	if (f->rec.protocol != NULL || f->rec.bytes_to_app > 0 ||
	    f->rec.bytes_from_app != n ||
	    f->a2u.head + n > f->relay->cfg.bufsize)
		return;
	d = detect_tcp(p, n);
	if (d != DETECT_HTTP1 && d != DETECT_NEED_MORE)
		return;
	obs_start(f, "http", f->rec.meta.host[0] != '\0' ? f->rec.meta.host :
	    flow_addr_str(&f->rec.meta.dst, host, sizeof(host)));
	obs_feed(f, 1, p, n);
}

/*
 * What the store learns about a flow as it ends: its protocol, and for TLS
 * the handshakes' facts.  UDP to port 53 is DNS: its messages were
 * recorded as such (udp_pump).
 */
static const struct store_flow_facts *
flow_facts(struct rflow *f, struct store_flow_facts *fa)
{
	const struct mitm_info *in;

	if (f->ignored) {
		memset(fa, 0, sizeof(*fa));
		fa->protocol = "raw";
		fa->passthrough_reason = f->pass_reason;
		return fa;
	}
	if (f->rec.meta.transport == FLOW_UDP) {
		if (f->rec.meta.dst.port != 53)
			return NULL;
		memset(fa, 0, sizeof(*fa));
		fa->protocol = "dns";
		return fa;
	}
	if (f->m == NULL && !f->rec.tls_passthrough) {
		if (!f->http_seen)
			return NULL;
		memset(fa, 0, sizeof(*fa));
		fa->protocol = "http";
		return fa;
	}
	memset(fa, 0, sizeof(*fa));
	fa->protocol = "tls";
	if (f->m == NULL) {
		fa->sni = f->rec.tls_sni[0] ? f->rec.tls_sni : NULL;
		fa->passthrough_reason = f->pass_reason;
		return fa;
	}
	in = mitm_get_info(f->m);
	snprintf(f->rec.tls_sni, sizeof(f->rec.tls_sni), "%s", in->sni);
	f->rec.tls_version = in->client_version;
	f->rec.upstream_tls_version = in->upstream_version;
	f->rec.tls_upstream_verified = in->upstream_verified;
	f->rec.tls_error = (int)in->error;
	fa->tls_version = in->client_version;
	fa->tls_cipher = in->client_cipher;
	fa->tls_resumed = in->client_resumed;
	fa->upstream_tls_version = in->upstream_version;
	fa->upstream_tls_cipher = in->upstream_cipher;
	fa->upstream_resumed = in->upstream_resumed;
	fa->sni = in->sni[0] ? in->sni : NULL;
	fa->alpn = in->alpn[0] ? in->alpn : NULL;
	fa->client_alpn_offer = in->client_alpn_offer[0] ?
	    in->client_alpn_offer : NULL;
	if (in->upstream_der != NULL) {
		fa->server_cert_subject = in->upstream_subject;
		fa->server_cert_issuer = in->upstream_issuer;
		fa->server_cert_sha256 = in->upstream_sha256;
		fa->server_cert_der = in->upstream_der;
		fa->server_cert_der_len = in->upstream_der_len;
		fa->server_cert_verified = in->upstream_verified ? 1 : -1;
	}
	fa->error = in->error != MITM_ERR_NONE ? in->reason : NULL;
	fa->tls_handshake_us = in->handshake_us;
	return fa;
}

/* --- flows ended before their FlowClosed ---------------------------------------- */

static struct ended *
ended_at(struct relay *r, size_t age)	/* 0: the oldest */
{
	return &r->ended[(r->ended_head + ENDED_MAX - r->ended_count + age) %
	    ENDED_MAX];
}

/* Complete e's row, with the source's figures if they came. */
static void
ended_finish(struct relay *r, struct ended *e, const struct flow_tcp_stats *tcp)
{
	struct flow_record *rec;

	if (e->held || tcp)
		(void)store_flow_finish(r->cfg.store, e->store_row, tcp, e->held);
	if (e->held)
		r->nheld--;
	e->held = 0;
	if (tcp && (rec = flow_ring_find(&r->ring, e->id)) != NULL) {
		rec->has_tcp_stats = 1;
		rec->tcp_stats = *tcp;
	}
}

static void
hold_rearm(struct relay *r)
{
	size_t i;

	ev_timer_stop(r->loop, &r->hold_timer);
	for (i = 0; i < r->ended_count && r->nheld > 0; i++) {
		struct ended *e = ended_at(r, i);
		ev_tstamp wait;

		if (!e->held)
			continue;
		wait = e->until - ev_now(r->loop);
		ev_timer_set(&r->hold_timer, wait > 0.001 ? wait : 0.001, 0);
		ev_timer_start(r->loop, &r->hold_timer);
		return;
	}
}

/* The oldest holds are over: their rows are complete without figures. */
static void
hold_expired(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct relay *r = (struct relay *)(void *)((char *)w -
	    offsetof(struct relay, hold_timer));
	size_t i;

	(void)revents;
	for (i = 0; i < r->ended_count && r->nheld > 0; i++) {
		struct ended *e = ended_at(r, i);

		if (!e->held)
			continue;
		if (e->until > ev_now(loop))
			break;
		ended_finish(r, e, NULL);
	}
	hold_rearm(r);
}

static void
ended_add(struct relay *r, const struct rflow *f, bool held)
{
	struct ended *e;

	if (r->ended_count == ENDED_MAX) {
		/* The oldest entry goes: whatever it waited for, it is over. */
		ended_finish(r, ended_at(r, 0), NULL);
		r->ended_count--;
	}
	e = &r->ended[r->ended_head];
	r->ended_head = (r->ended_head + 1) % ENDED_MAX;
	r->ended_count++;
	e->source = f->source;
	e->source_flow_id = f->rec.meta.source_flow_id;
	e->id = f->rec.id;
	e->store_row = f->store_row;
	e->until = ev_now(r->loop) + r->cfg.source_wait;
	e->held = held;
	if (held && r->nheld++ == 0)
		hold_rearm(r);
}

/* Newest first: a FlowClosed comes soon after the flow ended, if at all. */
static struct ended *
ended_find(struct relay *r, const void *source, uint64_t source_flow_id)
{
	size_t i;

	for (i = r->ended_count; i-- > 0; ) {
		struct ended *e = ended_at(r, i);

		if (e->source == source && e->source_flow_id == source_flow_id)
			return e;
	}
	return NULL;
}

/* Nothing more will come for these (a source gone, the store replaced). */
static void
ended_drop(struct relay *r, const void *source)
{
	size_t i;

	for (i = 0; i < r->ended_count; i++) {
		struct ended *e = ended_at(r, i);

		if (source == NULL || e->source == source) {
			ended_finish(r, e, NULL);
			e->source = NULL;
		}
	}
	hold_rearm(r);
}

static void
flow_end(struct rflow *f, enum flow_end end, int error)
{
	struct relay *r = f->relay;
	int tcp = f->rec.meta.transport == FLOW_TCP;
	struct store_flow_facts facts;
	const struct store_flow_facts *fp;

	f->rec.end = end;
	if (error)
		f->rec.error = error;
	f->rec.end_us = realtime_us();
	if (f->rec.end_us < f->rec.meta.start_us)
		f->rec.end_us = f->rec.meta.start_us;
	switch (end) {
	case FLOW_END_APP_RESET:
		r->stats.resets_from_app++;
		if (tcp)
			side_abort(&f->up);
		break;
	case FLOW_END_CONNECT_TIMEOUT:
	case FLOW_END_CONNECT_FAILED:
		r->stats.connect_failed++;
		if (end == FLOW_END_CONNECT_TIMEOUT)
			r->stats.connect_timeouts++;
		if (tcp)
			side_abort(&f->app);
		break;
	case FLOW_END_UPSTREAM_RESET:
		r->stats.resets_from_upstream++;
		if (tcp)
			side_abort(&f->app);
		break;
	case FLOW_END_IDLE:
	case FLOW_END_SHUTDOWN:
	case FLOW_END_INTERNAL:
		if (end == FLOW_END_IDLE)
			r->stats.idle_expired++;
		/* Neither side may take a cut-off stream for a complete one. */
		if (tcp) {
			side_abort(&f->app);
			side_abort(&f->up);
		}
		break;
	case FLOW_END_NONE:
	case FLOW_END_CLOSED:
	case FLOW_END_SOURCE_CLOSED:
		break;
	}
	ev_timer_stop(r->loop, &f->grace);
	side_close(r, &f->app);
	side_close(r, &f->up);
	rbuf_release(r, &f->a2u);
	rbuf_release(r, &f->u2a);
	spipe_close(r, &f->pa2u);
	spipe_close(r, &f->pu2a);
	dlist_remove(&f->connect_dl);
	dlist_remove(&f->idle_dl);
	hash_remove(r, f);
	TAILQ_REMOVE(&r->flows, f, all);
	r->stats.flows_active--;
	/* Exchanges first: the flow's row is complete once it ends. */
	httpobs_free(f->obs, f->rec.end_us, end == FLOW_END_CLOSED ||
	    end == FLOW_END_SOURCE_CLOSED ? NULL : flow_end_str(end));
	f->obs = NULL;
	free(f->plain[0].data);
	free(f->plain[1].data);
	fp = flow_facts(f, &facts);
	log_end(f);
	if (tcp && f->source != NULL && !f->closed_seen) {
		/* Its FlowClosed, with the source's figures, is yet to come. */
		if (f->store_row > 0 && r->cfg.source_wait > 0)
			(void)store_flow_end_held(r->cfg.store, f->store_row,
			    &f->rec, fp);
		else
			(void)store_flow_end(r->cfg.store, f->store_row,
			    &f->rec, fp);
		ended_add(r, f, f->store_row > 0 && r->cfg.source_wait > 0);
	} else
		(void)store_flow_end(r->cfg.store, f->store_row, &f->rec, fp);
	mitm_free(f->m);
	f->m = NULL;
	flow_ring_push(&r->ring, &f->rec);
	flow_meta_clear(&f->rec.meta);
	free(f);
	changed(r);
}

/* --- TCP ---------------------------------------------------------------------- */

/*
 * got bytes from one side landed in b, through iov (what rbuf_space gave):
 * count them, keep the first ones and show them to the HTTP observer.
 */
static void
took(struct rflow *f, struct rbuf *b, int from_app, const struct iovec *iov,
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
	if (f->obs != NULL) {
		obs_feed(f, from_app, iov[0].iov_base, in0);
		if (got > in0)
			obs_feed(f, from_app, iov[1].iov_base, got - in0);
	}
	b->len += got;
	r->stats.buffered += got;
	if (b->len > r->stats.buffer_high_water)
		r->stats.buffer_high_water = b->len;
}

static struct dlist *
idle_list(struct rflow *f)
{
	struct relay *r = f->relay;

	if (f->rec.meta.transport == FLOW_TCP)
		return &r->tcp_idle;
	return f->rec.meta.dst.port == 53 ? &r->dns_idle : &r->udp_idle;
}

/*
 * Splice what s has into p, as much as p has room for: counted as a read
 * into the ring buffer is (its first bytes were kept before the direction
 * moved to the pipe).  0 to go on, -1 if the flow ended (f is freed).
 */
static int
splice_in(struct rflow *f, struct side *s, struct spipe *p, int from_app)
{
	struct relay *r = f->relay;
	ssize_t n;

	if (p->len >= p->cap || p->stalled)
		return 0;
	n = splice(s->fd, NULL, p->wr, NULL, p->cap - p->len,
	    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n > 0) {
		if (from_app) {
			f->rec.bytes_from_app += (size_t)n;
			r->stats.bytes_from_app += (size_t)n;
		} else {
			f->rec.bytes_to_app += (size_t)n;
			r->stats.bytes_to_app += (size_t)n;
		}
		r->stats.bytes_spliced += (size_t)n;
		p->len += (size_t)n;
		r->stats.buffered += (size_t)n;
		if (p->len > r->stats.buffer_high_water)
			r->stats.buffer_high_water = p->len;
		dlist_touch(&r->tcp_idle, &f->idle_dl);
		return 0;
	}
	if (n == 0) {
		s->eof = 1;
		return 0;
	}
	if (errno == EAGAIN) {
		/*
		 * Called on readiness, so the socket has something: a pipe
		 * that holds bytes ran out of slots (one per page or
		 * fragment) before it ran out of room.  Read again once some
		 * went out, rather than spin on a readable socket.
		 */
		if (p->len > 0)
			p->stalled = 1;
		return 0;
	}
	if (errno == EINTR)
		return 0;
	flow_end(f, from_app ? FLOW_END_APP_RESET : FLOW_END_UPSTREAM_RESET,
	    errno);
	return -1;
}

/* Splice what p holds to s.  0 to go on, -1 if the flow ended. */
static int
splice_out(struct rflow *f, struct side *s, struct spipe *p, int to_app)
{
	struct relay *r = f->relay;
	ssize_t n;

	if (p->len == 0)
		return 0;
	n = splice(p->rd, NULL, s->fd, NULL, p->len,
	    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n > 0) {
		if ((size_t)n > p->len)		/* cannot be: we put it there */
			n = (ssize_t)p->len;
		p->len -= (size_t)n;
		r->stats.buffered -= (size_t)n;
		p->stalled = 0;
		dlist_touch(&r->tcp_idle, &f->idle_dl);
		return 0;
	}
	if (n == 0 || errno == EAGAIN || errno == EINTR || errno == ENOBUFS)
		return 0;
	flow_end(f, to_app ? FLOW_END_APP_RESET : FLOW_END_UPSTREAM_RESET, errno);
	return -1;
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
		return splice_in(f, s, p, from_app);

	if ((niov = rbuf_space(r, b, iov)) <= 0) {
		if (niov == -1) {
			log_warnx("flow %llu: out of memory for its buffer",
			    (unsigned long long)f->rec.id);
			flow_end(f, FLOW_END_INTERNAL, ENOMEM);
			return -1;
		}
		return 0;
	}
	n = readv(s->fd, iov, niov);
	if (n > 0) {
		took(f, b, from_app, iov, (size_t)n);
		dlist_touch(&r->tcp_idle, &f->idle_dl);
		return 0;
	}
	if (n == 0) {
		s->eof = 1;
		obs_eof(f, from_app);
		return 0;
	}
	if (errno == EAGAIN || errno == EINTR) {
		/* Nothing pending and nothing held: give the memory back. */
		if (b->len == 0)
			rbuf_release(r, b);
		return 0;
	}
	flow_end(f, from_app ? FLOW_END_APP_RESET : FLOW_END_UPSTREAM_RESET,
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
		return splice_out(f, s, p, to_app);
	if ((niov = rbuf_data(r, b, iov)) == 0)
		return 0;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = (size_t)niov;
	n = sendmsg(s->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n >= 0) {
		b->head = (b->head + (size_t)n) % r->cfg.bufsize;
		b->len -= (size_t)n;
		r->stats.buffered -= (size_t)n;
		if (b->len == 0)
			b->head = 0;
		dlist_touch(&r->tcp_idle, &f->idle_dl);
		return 0;
	}
	if (errno == EAGAIN || errno == EINTR || errno == ENOBUFS)
		return 0;
	flow_end(f, to_app ? FLOW_END_APP_RESET : FLOW_END_UPSTREAM_RESET, errno);
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

/*
 * Whether one direction of a flow should move to a pipe: the mode says it
 * pays for this pair of sockets (relay.h), nothing looks at its bytes any
 * more or will (not TLS-intercepted, not observed as HTTP, detection and
 * sniffing over: a raw flow, a TLS passthrough, an --ignore-hosts one),
 * its first bytes are in the record, and enough went that way to be worth
 * a pipe.
 */
static int
splice_wanted(const struct rflow *f, int from_app)
{
	const struct relay *r = f->relay;
	const struct side *in = from_app ? &f->app : &f->up;
	const struct side *out = from_app ? &f->up : &f->app;
	uint64_t moved = from_app ? f->rec.bytes_from_app : f->rec.bytes_to_app;
	uint16_t first = from_app ? f->rec.first_from_app_len :
	    f->rec.first_to_app_len;

	if (r->cfg.splice == RELAY_SPLICE_OFF || (r->cfg.splice ==
	    RELAY_SPLICE_AUTO && (in->domain == AF_UNIX ||
	    out->domain != AF_UNIX)))
		return 0;
	/*
	 * Sniffing is over, or will decline: a flow whose server spoke
	 * first is never observed as HTTP (http_sniff).
	 */
	return !f->splice_failed && f->m == NULL && f->obs == NULL &&
	    (f->sniffed || f->rec.bytes_to_app > 0) && !f->detecting &&
	    !f->connecting && first >= FLOW_FIRST_BYTES &&
	    moved >= r->cfg.splice_after && in->fd != -1 && !in->eof &&
	    out->fd != -1 && !out->shut_wr;
}

/*
 * Move a direction to its pipe if it should.  The switch waits for its ring
 * buffer to be empty, so the stream's order holds: until then its side is
 * not read (1 is returned), and the buffer drains.
 */
static int
splice_maybe(struct rflow *f, int from_app)
{
	struct relay *r = f->relay;
	struct spipe *p = from_app ? &f->pa2u : &f->pu2a;
	struct rbuf *b = from_app ? &f->a2u : &f->u2a;

	if (p->rd != -1 || !splice_wanted(f, from_app))
		return 0;
	if (b->len > 0)
		return 1;
	if (spipe_open(r, p) == -1) {
		f->splice_failed = 1;
		return 0;
	}
	rbuf_release(r, b);
	return 0;
}

static void
tcp_settle(struct rflow *f)
{
	struct relay *r = f->relay;
	size_t a2u, u2a;
	int drain_a2u = 0, drain_u2a = 0;

	if (f->m != NULL) {
		(void)tls_run(f);
		return;
	}
	/* Bytes held each way: a direction uses its buffer or its pipe. */
	a2u = f->a2u.len + f->pa2u.len;
	u2a = f->u2a.len + f->pu2a.len;
	if (!f->connecting && !f->detecting) {
		if (f->app.eof && a2u == 0 && !f->up.shut_wr) {
			(void)shutdown(f->up.fd, SHUT_WR);
			f->up.shut_wr = 1;
			rbuf_release(r, &f->a2u);
			spipe_close(r, &f->pa2u);
		}
		if (f->up.eof && u2a == 0 && !f->app.shut_wr) {
			(void)shutdown(f->app.fd, SHUT_WR);
			f->app.shut_wr = 1;
			rbuf_release(r, &f->u2a);
			spipe_close(r, &f->pu2a);
		}
		if (f->app.shut_wr && f->up.shut_wr) {
			flow_end(f, FLOW_END_CLOSED, 0);
			return;
		}
		drain_a2u = splice_maybe(f, 1);
		drain_u2a = splice_maybe(f, 0);
	}
	watch(r->loop, &f->app.rd, !f->app.eof && !drain_a2u &&
	    dir_room(r, &f->a2u, &f->pa2u));
	/* While detecting, the up socket may be gone (connect_err). */
	watch(r->loop, &f->up.wr, f->up.fd != -1 && (f->connecting ||
	    (!f->detecting && a2u > 0)));
	watch(r->loop, &f->up.rd, f->up.fd != -1 && !f->connecting &&
	    !f->up.eof && !drain_u2a && dir_room(r, &f->u2a, &f->pu2a));
	watch(r->loop, &f->app.wr, u2a > 0);
}

/* --- TLS interception ------------------------------------------------------------ */

static struct side *
tls_side(struct rflow *f, int s)
{
	return s == MITM_CLIENT ? &f->app : &f->up;
}

/* The end a broken leg gives: which side failed decides who is reset. */
static enum flow_end
tls_failure_end(const struct mitm_info *in)
{
	switch (in->error) {
	case MITM_ERR_UPSTREAM_CONNECT:
	case MITM_ERR_UPSTREAM_HANDSHAKE:
	case MITM_ERR_UPSTREAM_CERT:
		return FLOW_END_UPSTREAM_RESET;
	case MITM_ERR_FORGE:
	case MITM_ERR_INTERNAL:
		return FLOW_END_INTERNAL;
	case MITM_ERR_PROTOCOL:
		return strncmp(in->reason, "upstream", 8) == 0 ?
		    FLOW_END_UPSTREAM_RESET : FLOW_END_APP_RESET;
	default:
		return FLOW_END_APP_RESET;
	}
}

/*
 * The client leg failed (or the established flow broke).  A client that
 * refused our certificate makes its host pass through from now on.
 */
static void
tls_fail(struct rflow *f)
{
	struct relay *r = f->relay;
	const struct mitm_info *in = mitm_get_info(f->m);

	if (in->error == MITM_ERR_CLIENT_REJECTED) {
		r->stats.tls_client_rejected++;
		if (r->pass.cap > 0 && !passmap_has(&r->pass, f->host,
		    ev_now(r->loop))) {
			log_info("flow %llu: %s; passing %s through for %.0f s",
			    (unsigned long long)f->rec.id, in->reason, f->host,
			    r->cfg.passthrough_ttl);
			passmap_add(&r->pass, f->host, ev_now(r->loop) +
			    r->cfg.passthrough_ttl);
		}
	}
	flow_end(f, tls_failure_end(in), 0);
}

/*
 * A socket of the flow failed (reset, EPIPE).  The engine is told it is
 * over, so that a client that left right after our certificate still
 * counts as a rejection; the other side is reset as in the raw relay.
 */
static void
tls_side_broken(struct rflow *f, int s, int err)
{
	struct side *sd = tls_side(f, s);

	if (!sd->eof) {
		mitm_in_eof(f->m, (enum mitm_side)s);
		sd->eof = 1;
	}
	(void)mitm_step(f->m);
	f->rec.error = err;
	if (mitm_get_info(f->m)->error != MITM_ERR_NONE) {
		tls_fail(f);
		return;
	}
	flow_end(f, s == MITM_CLIENT ? FLOW_END_APP_RESET :
	    FLOW_END_UPSTREAM_RESET, err);
}

/*
 * The upstream failed but the client's handshake with us completed
 * (MITM_UPSTREAM_FAILED).  Look at the client's first plaintext: an HTTP
 * request gets a 502 whose body is the reason, then close_notify; anything
 * else just the close_notify.  Returns whether anything moved.
 */
static int
tls_answer(struct rflow *f)
{
	const struct mitm_info *in = mitm_get_info(f->m);
	char page[768], body[300];
	uint8_t sink[4096];
	enum detect_proto d;
	int progress = 0;
	ssize_t n;

	if (f->answered) {
		/* What the client still sends is for no one. */
		while ((n = mitm_read(f->m, MITM_CLIENT, sink, sizeof(sink))) > 0)
			progress = 1;
		return progress;
	}
	while (!f->client_done && f->probe_len < sizeof(f->probe)) {
		n = mitm_read(f->m, MITM_CLIENT, f->probe + f->probe_len,
		    sizeof(f->probe) - f->probe_len);
		if (n == MITM_AGAIN)
			break;
		progress = 1;
		if (n <= 0)
			f->client_done = 1;
		else
			f->probe_len += (size_t)n;
	}
	d = f->probe_len > 0 ? detect_tcp(f->probe, f->probe_len) :
	    DETECT_NEED_MORE;
	if (d == DETECT_NEED_MORE && !f->client_done &&
	    f->probe_len < sizeof(f->probe))
		return progress;
	/* A request line longer than the probe is still HTTP-shaped. */
	if (d == DETECT_HTTP1 || (d == DETECT_NEED_MORE && !f->client_done)) {
		snprintf(body, sizeof(body), "localcap: %s\n", in->reason);
		snprintf(page, sizeof(page), "HTTP/1.1 502 Bad Gateway\r\n"
		    "Content-Type: text/plain; charset=utf-8\r\n"
		    "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
		    strlen(body), body);
		if (mitm_write(f->m, MITM_CLIENT, page, strlen(page)) <= 0)
			return progress;	/* no room yet: next time */
	}
	f->answered = 1;
	f->tls_shut[MITM_CLIENT] = 1;
	(void)mitm_shutdown(f->m, MITM_CLIENT);
	return 1;
}

/*
 * The handshakes are done: a flow whose ALPN is http/1.1, or none (an
 * HTTP/1 client that offered nothing), is observed as HTTPS.  Other ALPN
 * protocols (h2 later) stay with mitm_relay(), decrypted but raw.
 */
static void
tls_observe_start(struct rflow *f)
{
	const struct mitm_info *in = mitm_get_info(f->m);
	char addr[64];

	f->tls_checked = 1;
	if (in->alpn[0] != '\0' && strcmp(in->alpn, "http/1.1") != 0)
		return;
	obs_start(f, "https", in->sni[0] != '\0' ? in->sni :
	    flow_addr_str(&f->rec.meta.dst, addr, sizeof(addr)));
	f->tls_plain = f->obs != NULL;
}

/*
 * mitm_relay() for an observed flow: the same moves, with the plaintext in
 * the caller's hands so the observer sees it.  A leg's plaintext is read
 * only once what was read before has been taken by the other leg, so at
 * most one record per direction waits here and flow control stays end to
 * end.  A stream's end is reported once its last bytes are across.
 */
static ssize_t
tls_plain_relay(struct rflow *f, unsigned *eof_from)
{
	unsigned char tmp[PLAIN_CHUNK];
	struct mitm *m = f->m;
	ssize_t total = 0, n, w;
	size_t off;
	int from;

	*eof_from = 0;
	for (from = 0; from < 2; from++) {
		struct pbuf *pb = &f->plain[from];
		enum mitm_side to = (enum mitm_side)!from;

		/* What the other leg could not take last time goes first. */
		while (pb->len > 0) {
			if ((w = mitm_write(m, to, pb->data + pb->off,
			    pb->len)) == MITM_AGAIN)
				break;
			if (w < 0)
				return MITM_ERROR;
			pb->off += (size_t)w;
			pb->len -= (size_t)w;
			total += w;
		}
		if (pb->len > 0)
			continue;
		free(pb->data);
		pb->data = NULL;
		pb->off = 0;
		for (;;) {
			if (f->plain_eof & (1u << from)) {
				*eof_from |= 1u << from;
				break;
			}
			n = mitm_read(m, (enum mitm_side)from, tmp, sizeof(tmp));
			if (n == MITM_AGAIN)
				break;
			if (n == MITM_ERROR)
				return MITM_ERROR;
			if (n == 0) {
				f->plain_eof |= 1u << from;
				obs_eof(f, from == MITM_CLIENT);
				continue;
			}
			obs_feed(f, from == MITM_CLIENT, tmp, (size_t)n);
			for (off = 0; off < (size_t)n; off += (size_t)w) {
				if ((w = mitm_write(m, to, tmp + off,
				    (size_t)n - off)) == MITM_AGAIN)
					break;
				if (w < 0)
					return MITM_ERROR;
				total += w;
			}
			if (off < (size_t)n) {
				/* The other leg is full: hold the rest, read no more. */
				if ((pb->data = malloc((size_t)n - off)) == NULL)
					return MITM_ERROR;
				memcpy(pb->data, tmp + off, (size_t)n - off);
				pb->len = (size_t)n - off;
				break;
			}
		}
	}
	return total;
}

/*
 * Move ciphertext between the sockets and the engine, and plaintext across
 * (mitm_relay: bounded by the engine's buffers, so a slow reader stops the
 * writer end to end, as in the raw relay), until nothing moves; then set
 * the watchers from what the engine wants.  -1 if the flow ended (freed).
 */
static int
tls_run(struct rflow *f)
{
	struct relay *r = f->relay;
	struct mitm *m = f->m;
	enum mitm_status st = MITM_HANDSHAKING;
	size_t lc, lu;
	unsigned w;
	int round, s;

	for (round = 0; round < 64; round++) {
		int progress = 0;

		w = mitm_wants(m);
		for (s = 0; s < 2; s++) {
			struct side *sd = tls_side(f, s);
			unsigned char *p;
			size_t space;
			ssize_t n;

			if (sd->fd == -1 || sd->eof || !(w & MITM_WANT_READ(s)) ||
			    (s == MITM_UPSTREAM && f->connecting))
				continue;
			if (s == MITM_CLIENT && f->a2u.len > 0) {
				/* The bytes detection held back go first. */
				size_t k = mitm_feed(m, MITM_CLIENT, f->a2u.data +
				    f->a2u.head, f->a2u.len);

				f->a2u.head += k;
				f->a2u.len -= k;
				r->stats.buffered -= k;
				if (f->a2u.len == 0)
					rbuf_release(r, &f->a2u);
				progress |= k > 0;
				continue;
			}
			if ((space = mitm_in_space(m, (enum mitm_side)s, &p)) == 0)
				continue;
			n = recv(sd->fd, p, space, MSG_DONTWAIT);
			if (n > 0) {
				mitm_in_commit(m, (enum mitm_side)s, (size_t)n);
				if (s == MITM_CLIENT) {
					f->rec.bytes_from_app += (size_t)n;
					r->stats.bytes_from_app += (size_t)n;
					flow_keep_first(f->rec.first_from_app,
					    &f->rec.first_from_app_len, p, (size_t)n);
				}
				dlist_touch(&r->tcp_idle, &f->idle_dl);
				progress = 1;
			} else if (n == 0) {
				mitm_in_commit(m, (enum mitm_side)s, 0);
				mitm_in_eof(m, (enum mitm_side)s);
				sd->eof = 1;
				progress = 1;
			} else {
				mitm_in_commit(m, (enum mitm_side)s, 0);
				if (errno != EAGAIN && errno != EINTR) {
					tls_side_broken(f, s, errno);
					return -1;
				}
			}
		}
		st = mitm_step(m);
		if (st == MITM_ESTABLISHED) {
			unsigned eofs = 0;
			ssize_t n;

			if (!f->tls_checked)
				tls_observe_start(f);
			n = f->tls_plain ? tls_plain_relay(f, &eofs) :
			    mitm_relay(m, &eofs);

			if (n == MITM_ERROR) {
				tls_fail(f);
				return -1;
			}
			progress |= n > 0;
			for (s = 0; s < 2; s++) {
				if ((eofs & (1u << s)) && !f->tls_shut[!s]) {
					f->tls_shut[!s] = 1;
					(void)mitm_shutdown(m, (enum mitm_side)!s);
					progress = 1;
				}
			}
		} else if (st == MITM_UPSTREAM_FAILED)
			progress |= tls_answer(f);
		for (s = 0; s < 2; s++) {
			struct side *sd = tls_side(f, s);
			const unsigned char *p;
			size_t len;
			ssize_t n;

			p = mitm_out_peek(m, (enum mitm_side)s, &len);
			if (len == 0 || sd->fd == -1 ||
			    (s == MITM_UPSTREAM && f->connecting))
				continue;
			n = send(sd->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n > 0) {
				if (s == MITM_CLIENT) {
					f->rec.bytes_to_app += (size_t)n;
					r->stats.bytes_to_app += (size_t)n;
					flow_keep_first(f->rec.first_to_app,
					    &f->rec.first_to_app_len, p, (size_t)n);
				}
				mitm_out_consume(m, (enum mitm_side)s, (size_t)n);
				dlist_touch(&r->tcp_idle, &f->idle_dl);
				progress = 1;
			} else if (n == -1 && errno != EAGAIN && errno != EINTR &&
			    errno != ENOBUFS) {
				tls_side_broken(f, s, errno);
				return -1;
			}
		}
		if (!progress)
			break;
	}

	/* A TLS half-close reaches the wire once its close_notify is out. */
	for (s = 0; s < 2; s++) {
		struct side *sd = tls_side(f, s);
		size_t len;

		(void)mitm_out_peek(m, (enum mitm_side)s, &len);
		if (f->tls_shut[s] && len == 0 && sd->fd != -1 && !sd->shut_wr) {
			(void)shutdown(sd->fd, SHUT_WR);
			sd->shut_wr = 1;
		}
	}
	(void)mitm_out_peek(m, MITM_CLIENT, &lc);
	(void)mitm_out_peek(m, MITM_UPSTREAM, &lu);
	switch (st) {
	case MITM_FAILED:
		/* Flush the alert to the client first, if it can take it. */
		if (lc == 0 || f->app.fd == -1 || f->app.eof) {
			tls_fail(f);
			return -1;
		}
		break;
	case MITM_UPSTREAM_FAILED:
		if (f->answered && lc == 0) {
			const struct mitm_info *in = mitm_get_info(f->m);

			r->stats.tls_upstream_failed++;
			/* An orderly close: the 502 must not be cut by a reset. */
			side_close(r, &f->app);
			flow_end(f, in->error == MITM_ERR_UPSTREAM_CONNECT ?
			    FLOW_END_CONNECT_FAILED : FLOW_END_UPSTREAM_RESET, 0);
			return -1;
		}
		break;
	case MITM_ESTABLISHED:
		if (f->app.shut_wr && f->up.shut_wr) {
			flow_end(f, FLOW_END_CLOSED, 0);
			return -1;
		}
		break;
	case MITM_HANDSHAKING:
		break;
	}
	w = mitm_wants(m);
	watch(r->loop, &f->app.rd, f->app.fd != -1 && !f->app.eof &&
	    (w & MITM_WANT_READ_CLIENT));
	watch(r->loop, &f->app.wr, f->app.fd != -1 && lc > 0);
	watch(r->loop, &f->up.rd, f->up.fd != -1 && !f->connecting &&
	    !f->up.eof && (w & MITM_WANT_READ_UPSTREAM));
	watch(r->loop, &f->up.wr, f->up.fd != -1 && (f->connecting || lu > 0));
	return 0;
}

/* The upstream could not be reached: the engine tells the client.  -1 if
 * the flow ended. */
static int
tls_connect_failed(struct rflow *f, int err)
{
	char why[160], dst[64];

	f->connecting = 0;
	f->rec.error = err;
	dlist_remove(&f->connect_dl);
	side_close(f->relay, &f->up);
	snprintf(why, sizeof(why), "connect to %s: %s",
	    flow_addr_str(&f->rec.meta.dst, dst, sizeof(dst)), strerror(err));
	mitm_upstream_failed(f->m, why);
	return tls_run(f);
}

/* Connect failed and the client said nothing in time: not for a 502. */
static void
grace_expired(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct rflow *f = w->data;

	(void)loop;
	(void)revents;
	if (f->detecting && f->a2u.len == 0)
		flow_end(f, FLOW_END_CONNECT_FAILED, f->connect_err);
}

/*
 * The app's first bytes are in a2u (from offset 0: nothing has left it
 * yet).  Decide: a ClientHello goes to the engine, unless its host is being
 * passed through; anything else, or a hello that does not come complete
 * within the buffer, is relayed raw.  Non-TLS flows are decided on their
 * first byte, so a protocol that sends a few bytes and waits is not held.
 * -1 if the flow ended (freed).
 */
static int
detect_step(struct rflow *f)
{
	struct relay *r = f->relay;
	const uint8_t *p = f->a2u.data;
	size_t n = f->a2u.len, full = r->cfg.bufsize;
	struct tls_client_hello ch;
	enum tlshello_result hr;
	const char *ignored = NULL;
	char addr[64], *colon;

	if (n == 0 && !f->app.eof)
		return 0;
	if (n == 0 || p[0] != 0x16)
		goto raw;
	switch (detect_tcp(p, n)) {
	case DETECT_NEED_MORE:
		if (!f->app.eof && n < full)
			return 0;
		goto raw;
	case DETECT_TLS:
		break;
	default:
		goto raw;
	}
	hr = tlshello_parse(p, n, &ch);
	if (hr == TLSHELLO_NEED_MORE && !f->app.eof && n < full) {
		tlshello_free(&ch);
		return 0;
	}
	/*
	 * The host a rejection is remembered by: the SNI, else the host the
	 * source knows (explicit proxy), else the address.
	 */
	if (hr == TLSHELLO_OK && ch.sni[0] != '\0')
		passmap_key(f->host, ch.sni);
	else if (f->rec.meta.host[0] != '\0')
		passmap_key(f->host, f->rec.meta.host);
	else {
		flow_addr_str(&f->rec.meta.dst, addr, sizeof(addr));
		if ((colon = strrchr(addr, ':')) != NULL)
			*colon = '\0';
		passmap_key(f->host, addr);
	}
	if (hr == TLSHELLO_OK && ch.sni[0] != '\0')
		ignored = hostmatch_find(r->cfg.ignore, ch.sni,
		    f->rec.meta.dst.port);
	tlshello_free(&ch);
	f->rec.protocol = "tls";
	f->detecting = 0;
	if (ignored != NULL)
		snprintf(f->pass_reason, sizeof(f->pass_reason),
		    "matches --ignore-hosts '%s'", ignored);
	else if (passmap_has(&r->pass, f->host, ev_now(r->loop)))
		snprintf(f->pass_reason, sizeof(f->pass_reason),
		    "client refused our certificate for this host earlier");
	if (f->pass_reason[0] != '\0') {
		f->rec.tls_passthrough = 1;
		snprintf(f->rec.tls_sni, sizeof(f->rec.tls_sni), "%s", f->host);
		r->stats.tls_passthrough++;
		goto decided;
	}
	if ((f->m = mitm_new(r->cfg.mitm, f->rec.meta.dst.addr,
	    f->rec.meta.dst.family == AF_INET ? 4 : 16,
	    f->rec.meta.dst.port)) == NULL) {
		flow_end(f, FLOW_END_INTERNAL, ENOMEM);
		return -1;
	}
	mitm_set_host_hint(f->m, f->rec.meta.host);
	r->stats.tls_intercepted++;
	if (f->connect_err)
		return tls_connect_failed(f, f->connect_err);
	return tls_run(f);

raw:
	f->detecting = 0;
decided:
	if (f->connect_err) {
		flow_end(f, FLOW_END_CONNECT_FAILED, f->connect_err);
		return -1;
	}
	return 0;
}

static void
tcp_app_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct rflow *f = w->data;

	(void)loop;
	(void)revents;
	if (f->m != NULL) {
		(void)tls_run(f);
		return;
	}
	if (tcp_read(f, &f->app, &f->a2u, 1) == -1)
		return;
	if (f->detecting && detect_step(f) == -1)
		return;
	if (f->m != NULL)
		return;		/* tls_run has run */
	http_sniff(f);
	/* Pass it on at once rather than a loop iteration later. */
	if (!f->connecting && !f->detecting &&
	    tcp_write(f, &f->up, &f->a2u, 0) == -1)
		return;
	tcp_settle(f);
}

static void
tcp_up_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct rflow *f = w->data;

	(void)loop;
	(void)revents;
	if (f->m != NULL) {
		(void)tls_run(f);
		return;
	}
	if (tcp_read(f, &f->up, &f->u2a, 0) == -1)
		return;
	/* A server that speaks first is not answering a ClientHello. */
	if (f->detecting && f->u2a.len > 0)
		f->detecting = 0;
	if (tcp_write(f, &f->app, &f->u2a, 1) == -1)
		return;
	tcp_settle(f);
}

static void
tcp_app_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct rflow *f = w->data;

	(void)loop;
	(void)revents;
	if (f->m != NULL) {
		(void)tls_run(f);
		return;
	}
	if (tcp_write(f, &f->app, &f->u2a, 1) == -1)
		return;
	tcp_settle(f);
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
				(void)tls_connect_failed(f, err);
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
				side_close(f->relay, &f->up);
				if (f->a2u.len == 0)
					ev_timer_start(f->relay->loop, &f->grace);
				tcp_settle(f);
				return;
			}
			flow_end(f, FLOW_END_CONNECT_FAILED, err);
			return;
		}
		tcp_connected(f);
	}
	if (f->m != NULL) {
		(void)tls_run(f);
		return;
	}
	if (!f->detecting && tcp_write(f, &f->up, &f->a2u, 0) == -1)
		return;
	tcp_settle(f);
}

/* --- UDP ---------------------------------------------------------------------- */

/* Relay up to UDP_BATCH datagrams from one side to the other. */
static void
udp_pump(struct rflow *f, int from_app)
{
	struct relay *r = f->relay;
	struct side *in = from_app ? &f->app : &f->up;
	struct side *out = from_app ? &f->up : &f->app;
	ssize_t n;
	int i;

	for (i = 0; i < UDP_BATCH; i++) {
		n = recv(in->fd, r->dgram, UDP_MAX_DGRAM, MSG_DONTWAIT);
		if (n == -1) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			if (!from_app && (errno == ECONNREFUSED ||
			    errno == EHOSTUNREACH || errno == ENETUNREACH)) {
				/* ICMP about an earlier datagram: UDP goes on. */
				f->rec.error = errno;
				continue;
			}
			flow_end(f, from_app ? FLOW_END_APP_RESET :
			    FLOW_END_UPSTREAM_RESET, errno);
			return;
		}
		/*
		 * A SEQPACKET flow socket reads 0 once the source closed it; on
		 * a DGRAM one, 0 is an empty datagram (its close is not seen:
		 * idle expiry or FlowClosed end the flow).
		 */
		if (n == 0 && from_app && in->type == SOCK_SEQPACKET) {
			flow_end(f, FLOW_END_CLOSED, 0);
			return;
		}
		dlist_touch(idle_list(f), &f->idle_dl);
		if (from_app) {
			f->rec.dgrams_from_app++;
			f->rec.bytes_from_app += (size_t)n;
			r->stats.bytes_from_app += (size_t)n;
			if (f->rec.first_from_app_len == 0)
				flow_keep_first(f->rec.first_from_app,
				    &f->rec.first_from_app_len, r->dgram, (size_t)n);
		} else {
			f->rec.dgrams_to_app++;
			f->rec.bytes_to_app += (size_t)n;
			r->stats.bytes_to_app += (size_t)n;
			if (f->rec.first_to_app_len == 0)
				flow_keep_first(f->rec.first_to_app,
				    &f->rec.first_to_app_len, r->dgram, (size_t)n);
		}
		/* DNS is recorded message by message, both ways. */
		if (f->rec.meta.dst.port == 53)
			(void)store_dns_add_wire(r->cfg.store, f->store_row,
			    realtime_us(), r->dgram, (size_t)n);
		/* A side that cannot take it loses it, as on any UDP path. */
		if (send(out->fd, r->dgram, (size_t)n, MSG_DONTWAIT |
		    MSG_NOSIGNAL) == -1) {
			f->rec.dgrams_dropped++;
			r->stats.dgrams_dropped++;
			if (errno != EAGAIN && errno != ENOBUFS &&
			    errno != EMSGSIZE && errno != ECONNREFUSED)
				f->rec.error = errno;
		}
	}
}

static void
udp_app_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	udp_pump(w->data, 1);
}

static void
udp_up_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	udp_pump(w->data, 0);
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
 * --ignore-hosts: the pattern a new flow's destination matches (the host
 * its source named, else its address), or NULL.
 */
static const char *
ignore_match(const struct rflow *f)
{
	const struct flow_meta *m = &f->rec.meta;
	const char *pat = NULL;
	char addr[64], *colon;

	if (f->relay->cfg.ignore == NULL)
		return NULL;
	if (m->host[0] != '\0')
		pat = hostmatch_find(f->relay->cfg.ignore, m->host, m->dst.port);
	if (pat == NULL) {
		flow_addr_str(&m->dst, addr, sizeof(addr));
		if ((colon = strrchr(addr, ':')) != NULL)
			*colon = '\0';
		pat = hostmatch_find(f->relay->cfg.ignore, addr, m->dst.port);
	}
	return pat;
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

	if ((niov = rbuf_space(f->relay, &f->a2u, iov)) <= 0 ||
	    iov[0].iov_len < len) {
		flow_end(f, FLOW_END_INTERNAL, ENOMEM);
		return -1;
	}
	memcpy(iov[0].iov_base, prefix, len);
	took(f, &f->a2u, 1, iov, len);
	if (f->detecting && detect_step(f) == -1)
		return -1;
	if (f->m == NULL)
		http_sniff(f);
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
		refusal_warn(r, "flow to %s: %zu bytes already read do not fit",
		    flow_addr_str(&meta->dst, dst, sizeof(dst)), prefix_len);
		f = NULL;
		goto refuse;
	}

	if ((f = calloc(1, sizeof(*f))) == NULL) {
		refusal_warn(r, "flow to %s: out of memory",
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
		refusal_warn(r, "flow to %s: its socket: %s",
		    flow_addr_str(&meta->dst, dst, sizeof(dst)), strerror(errno));
		goto refuse;
	}
	f->up.domain = meta->dst.family;
	f->up.type = tcp ? SOCK_STREAM : SOCK_DGRAM;
	if ((f->up.fd = socket(meta->dst.family, f->up.type | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		refusal_warn(r, "flow to %s: upstream socket: %s",
		    flow_addr_str(&meta->dst, dst, sizeof(dst)), strerror(errno));
		goto refuse;
	}
	if (tcp) {
		/* The app chose when to send; do not add Nagle delays of ours. */
		(void)setsockopt(f->up.fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
	}

	/* From here on the flow exists and is recorded however it ends. */
	f->rec.id = r->next_id++;
	f->rec.meta = *meta;
	meta->owner.name = meta->owner.cgroup = NULL;
	/* Deadlines start now, not at the loop's last wake-up. */
	ev_now_update(r->loop);
	if (f->rec.meta.start_us == 0)
		f->rec.meta.start_us = realtime_us();
	f->started = ev_now(r->loop);
	f->source = source;
	/* With interception on, a TCP flow's first bytes are looked at. */
	f->detecting = tcp && r->cfg.mitm != NULL;
	if (tcp && (pat = ignore_match(f)) != NULL) {
		/* Not looked into at all: no TLS, no HTTP observation. */
		f->ignored = 1;
		f->detecting = 0;
		f->sniffed = 1;
		snprintf(f->pass_reason, sizeof(f->pass_reason),
		    "matches --ignore-hosts '%s'", pat);
	}
	f->connect_dl.flow = f->idle_dl.flow = f;
	TAILQ_INSERT_TAIL(&r->flows, f, all);
	/* UDP to port 53 is DNS from its first datagram (udp_pump). */
	if (!tcp && f->rec.meta.dst.port == 53)
		f->rec.protocol = "dns";
	/* In the store from its start, so `localcapctl flows` can see it. */
	f->store_row = store_flow_begin(r->cfg.store, &f->rec);
	if (source) {
		size_t h = hash_slot(source, f->rec.meta.source_flow_id);

		f->hnext = r->hash[h];
		r->hash[h] = f;
		f->hashed = 1;
	}
	r->stats.flows_active++;
	r->stats.flows_total++;

	ev_io_init(&f->app.rd, tcp ? tcp_app_readable : udp_app_readable, fd,
	    EV_READ);
	ev_io_init(&f->up.rd, tcp ? tcp_up_readable : udp_up_readable, f->up.fd,
	    EV_READ);
	ev_io_init(&f->app.wr, tcp_app_writable, fd, EV_WRITE);
	ev_io_init(&f->up.wr, tcp_up_writable, f->up.fd, EV_WRITE);
	f->app.rd.data = f->up.rd.data = f->app.wr.data = f->up.wr.data = f;
	ev_timer_init(&f->grace, grace_expired, CONNECT_GRACE, 0);
	f->grace.data = f;

	sslen = flow_addr_sockaddr(&f->rec.meta.dst, &ss);
	rc = connect(f->up.fd, (struct sockaddr *)&ss, sslen);
	if (rc == -1 && !(tcp && errno == EINPROGRESS)) {
		flow_end(f, FLOW_END_CONNECT_FAILED, errno);
		return 0;
	}
	changed(r);
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
		tcp_settle(f);
	} else {
		dlist_touch(idle_list(f), &f->idle_dl);
		ev_io_start(r->loop, &f->app.rd);
		ev_io_start(r->loop, &f->up.rd);
	}
	return id;

refuse:
	r->stats.flows_refused++;
	if (f && f->up.fd != -1)
		close(f->up.fd);
	free(f);
	close(fd);
	flow_meta_clear(meta);
	changed(r);
	return 0;
}

uint64_t
relay_new_flow(struct relay *r, const void *source, const Lc__NewFlow *nf,
    int fd)
{
	struct flow_meta meta;
	char err[128];

	if (flow_meta_from_newflow(&meta, nf, err, sizeof(err)) == -1) {
		refusal_warn(r, "NewFlow %llu refused: %s",
		    (unsigned long long)nf->flow_id, err);
		r->stats.flows_refused++;
		close(fd);
		changed(r);
		return 0;
	}
	return relay_start(r, source, &meta, fd);
}

/*
 * A TCP FlowClosed reason that means the application's side ended in
 * order.  Anything else ("reset by the application", "rst from app",
 * "application timed out", "aborted"...) means its stream was cut, and the
 * server must not take what it got for the whole of it.  The reason is the
 * source's free text: naming the orderly ones keeps a new wording safe.
 */
static int
tcp_reason_orderly(const char *reason)
{
	return reason == NULL || reason[0] == '\0' ||
	    strcmp(reason, "closed") == 0 || strcmp(reason, "fin") == 0;
}

void
relay_source_flow_closed(struct relay *r, const void *source,
    uint64_t source_flow_id, const char *reason,
    const struct flow_tcp_stats *tcp)
{
	struct rflow *f;
	struct ended *e;

	if (source == NULL)
		return;
	for (f = r->hash[hash_slot(source, source_flow_id)]; f; f = f->hnext)
		if (f->source == source &&
		    f->rec.meta.source_flow_id == source_flow_id)
			break;
	if (f == NULL) {
		/* Already over on our side: only its record is left to finish. */
		if ((e = ended_find(r, source, source_flow_id)) != NULL) {
			ended_finish(r, e, tcp);
			e->source = NULL;
			hold_rearm(r);
		}
		return;
	}
	f->closed_seen = 1;
	if (tcp && f->rec.meta.transport == FLOW_TCP) {
		f->rec.has_tcp_stats = 1;
		f->rec.tcp_stats = *tcp;
	}
	if (reason)
		snprintf(f->rec.source_reason, sizeof(f->rec.source_reason),
		    "%s", reason);
	if (f->rec.meta.transport == FLOW_UDP)
		flow_end(f, FLOW_END_SOURCE_CLOSED, 0);
	else if (!tcp_reason_orderly(reason)) {
		if (f->m != NULL) {
			/*
			 * The reset may overtake what the client sent before it
			 * (an alert after our certificate): take that first, so
			 * a client that rejected us is known as such and its
			 * host passes through from now on.
			 */
			if (tls_run(f) == -1)
				return;
			tls_side_broken(f, MITM_CLIENT, ECONNRESET);
			return;
		}
		flow_end(f, FLOW_END_APP_RESET, ECONNRESET);
	}
}

void
relay_source_gone(struct relay *r, const void *source)
{
	struct rflow *f;

	TAILQ_FOREACH(f, &r->flows, all) {
		if (f->source == source) {
			hash_remove(r, f);
			f->source = NULL;
		}
	}
	ended_drop(r, source);
}

/* --- the engine ------------------------------------------------------------------ */

void
relay_config_default(struct relay_config *c)
{
	memset(c, 0, sizeof(*c));
	c->connect_timeout = 10;
	c->tcp_idle_timeout = 0;
	c->udp_idle_timeout = 60;
	c->dns_idle_timeout = 30;
	c->bufsize = 128 * 1024;
	c->ring_size = 1024;
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
	dlist_init(&r->connect_list, r, r->cfg.connect_timeout,
	    FLOW_END_CONNECT_TIMEOUT);
	dlist_init(&r->tcp_idle, r, r->cfg.tcp_idle_timeout, FLOW_END_IDLE);
	dlist_init(&r->udp_idle, r, r->cfg.udp_idle_timeout, FLOW_END_IDLE);
	dlist_init(&r->dns_idle, r, r->cfg.dns_idle_timeout, FLOW_END_IDLE);
	ev_timer_init(&r->hold_timer, hold_expired, 0, 0);
	return r;
}

void
relay_set_store(struct relay *r, struct store *store)
{
	/* The rows waiting for figures belong to the store going away. */
	if (store != r->cfg.store)
		ended_drop(r, NULL);
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
		flow_end(f, FLOW_END_SHUTDOWN, 0);
	ended_drop(r, NULL);	/* no FlowClosed will be read any more */
	ev_timer_stop(r->loop, &r->hold_timer);
	ev_timer_stop(r->loop, &r->connect_list.timer);
	ev_timer_stop(r->loop, &r->tcp_idle.timer);
	ev_timer_stop(r->loop, &r->udp_idle.timer);
	ev_timer_stop(r->loop, &r->dns_idle.timer);
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
			n += mitm_held_bytes(f->m) + f->plain[0].len +
			    f->plain[1].len;
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
