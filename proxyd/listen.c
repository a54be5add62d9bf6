/*
 * proxyd's explicit HTTP proxy listener (see listen.h).
 *
 * One struct pconn per accepted client until its flow starts:
 *
 *	READING   the proxy request's head, parsed by http.c as it arrives
 *	RESOLVING the host it names (reading stopped)
 *	DRAINING  an error answer sent and our side shut: the client's
 *		  remaining bytes are read and dropped until it closes, so the
 *		  kernel does not answer them with a reset that could destroy
 *		  the answer before the client reads it
 *
 * and then the socket belongs to the relay.  Each state has one deadline
 * (READING two: the first byte within PLISTEN_FIRST_BYTE_TIMEOUT, the whole
 * head within PLISTEN_HEAD_TIMEOUT).  Pending connections are bounded per
 * source address and in all; at either bound the oldest one still READING
 * makes room for the new one (see listen.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "plat.h"
#include "proxyd/http.h"
#include "proxyd/listen.h"
#include "proxyd/relay.h"

#define DRAIN_TIMEOUT	2.0	/* s to let an answered client close */
#define RESOLVE_TIMEOUT	30.0	/* s a client waits for its host's address */
#define ACCEPT_PAUSE	0.1	/* s without accepting when out of fds */

enum pstate {
	P_READING,
	P_RESOLVING,
	P_DRAINING,
};

struct pconn {
	TAILQ_ENTRY(pconn)	 entry;
	struct plisten		*pl;
	int			 fd;
	enum pstate		 state;
	ev_io			 rd;
	ev_timer		 timer;
	struct http_parser	 hp;
	uint8_t			*buf;		/* what the client sent */
	size_t			 len;
	size_t			 parsed;	/* of buf, fed to hp */
	struct endpoint	 peer;
	ev_tstamp		 since;		/* accepted */
	/* The request, once its head is complete. */
	int			 tunnel;	/* CONNECT */
	char			 host[256];	/* name or address, no [] */
	uint16_t		 port;
	uint8_t			*prefix;	/* first bytes of the flow */
	size_t			 prefix_len;
	void			*query;		/* resolver handle */
};

struct plisten {
	struct ev_loop		*loop;
	struct relay		*relay;
	int			 fd;
	uint16_t		 port;
	ev_io			 accept_w;
	ev_timer		 accept_pause;	/* out of descriptors: wait */
	struct plisten_resolver	 res;
	TAILQ_HEAD(, pconn)	 conns;
	size_t			 npending;
	struct plisten_stats	 stats;
	ev_tstamp		 overload_logged;
};

static void	pconn_free(struct pconn *);

static uint64_t
realtime_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int
sockaddr_to_flow(const struct sockaddr_storage *ss, struct endpoint *fa)
{
	memset(fa, 0, sizeof(*fa));
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

		fa->family = AF_INET;
		memcpy(fa->addr, &in->sin_addr, 4);
		fa->port = ntohs(in->sin_port);
		return 0;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

		fa->family = AF_INET6;
		memcpy(fa->addr, &in6->sin6_addr, 16);
		fa->port = ntohs(in6->sin6_port);
		return 0;
	}
	return -1;
}

/* An address literal (no brackets) into fa, port 0.  -1: not one. */
static int
addr_literal(const char *s, struct endpoint *fa)
{
	memset(fa, 0, sizeof(*fa));
	if (inet_pton(AF_INET, s, fa->addr) == 1) {
		fa->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, fa->addr) == 1) {
		fa->family = AF_INET6;
		return 0;
	}
	return -1;
}

int
plisten_parse_addr(const char *s, struct endpoint *out, char *err,
    size_t errlen)
{
	char host[64];
	uint16_t port;

	if (!http_split_authority(s, strlen(s), 0, host, sizeof(host), &port) ||
	    addr_literal(host, out) == -1 ||
	    (out->family == AF_INET6 && s[0] != '[')) {
		snprintf(err, errlen, "'%s' is not ADDRESS:PORT (e.g. "
		    "127.0.0.1:8080 or [::1]:8080)", s);
		return -1;
	}
	out->port = port;
	return 0;
}

/* --- answering errors --------------------------------------------------------- */

static void
drain_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pconn *pc = w->data;
	char sink[4096];
	ssize_t n;

	(void)loop;
	(void)revents;
	while ((n = read(pc->fd, sink, sizeof(sink))) > 0)
		;
	if (n == 0 || (errno != EAGAIN && errno != EINTR))
		pconn_free(pc);
}

/*
 * Answer status with a one-line plain-text explanation, shut our side and
 * drain.  The answer is small enough for an empty socket buffer; if the
 * client has not let that much through, it is not listening anyway.
 */
static void __attribute__((format(printf, 4, 5)))
answer(struct pconn *pc, int status, const char *reason, const char *fmt, ...)
{
	struct plisten *pl = pc->pl;
	char body[512], msg[1024];
	va_list ap;
	int blen, mlen;

	va_start(ap, fmt);
	blen = vsnprintf(body, sizeof(body) - 1, fmt, ap);
	va_end(ap);
	if (blen < 0)
		blen = 0;
	if ((size_t)blen > sizeof(body) - 2)
		blen = (int)sizeof(body) - 2;
	body[blen++] = '\n';
	body[blen] = '\0';
	mlen = snprintf(msg, sizeof(msg), "HTTP/1.1 %d %s\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Length: %d\r\nConnection: close\r\n"
	    "Proxy-Agent: localcap\r\n\r\n%s", status, reason, blen, body);
	if (mlen > 0 && (size_t)mlen < sizeof(msg))
		(void)send(pc->fd, msg, (size_t)mlen, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)shutdown(pc->fd, SHUT_WR);

	pc->state = P_DRAINING;
	ev_io_stop(pl->loop, &pc->rd);
	ev_io_set(&pc->rd, pc->fd, EV_READ);
	ev_set_cb(&pc->rd, drain_read);
	ev_io_start(pl->loop, &pc->rd);
	ev_timer_stop(pl->loop, &pc->timer);
	ev_timer_set(&pc->timer, DRAIN_TIMEOUT, 0);
	ev_timer_start(pl->loop, &pc->timer);
}

static void
refuse(struct pconn *pc, int status, const char *reason, const char *why)
{
	char peer[64];

	pc->pl->stats.refused++;
	log_info("proxy client %s: %d %s: %s", flow_addr_str(&pc->peer, peer,
	    sizeof(peer)), status, reason, why);
	answer(pc, status, reason, "localcap: %s", why);
}

/* --- starting the flow ------------------------------------------------------ */

static void
start_flow(struct pconn *pc, const struct endpoint *dst)
{
	struct plisten *pl = pc->pl;
	struct flow_meta meta;
	struct endpoint probe;
	int fd = pc->fd;
	static const char established[] =
	    "HTTP/1.1 200 Connection established\r\n"
	    "Proxy-Agent: localcap\r\n\r\n";

	static const uint8_t zero[16];

	/* 0.0.0.0 and :: would mean this host, whatever the client meant. */
	if (memcmp(dst->addr, zero, dst->family == AF_INET ? 4 : 16) == 0) {
		refuse(pc, 400, "Bad Request", "an unspecified address is "
		    "not a destination");
		return;
	}
	memset(&meta, 0, sizeof(meta));
	meta.transport = FLOW_TCP;
	meta.src = pc->peer;
	meta.dst = *dst;
	meta.dst.port = pc->port;
	meta.start_us = realtime_us();
	/* The client is whoever connected: no process is known. */
	snprintf(meta.owner.process, sizeof(meta.owner.process), "(proxy)");
	/* A name (never an address) is what TLS without SNI is checked by. */
	if (addr_literal(pc->host, &probe) == -1)
		snprintf(meta.host, sizeof(meta.host), "%s", pc->host);

	if (pc->tunnel) {
		if (send(fd, established, sizeof(established) - 1,
		    MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof(established) - 1) {
			flow_meta_clear(&meta);
			pconn_free(pc);		/* the client is gone */
			return;
		}
		pl->stats.tunnels++;
	} else
		pl->stats.requests++;
	/* The socket is the relay's from here on. */
	pc->fd = -1;
	(void)relay_start_prefixed(pl->relay, NULL, &meta, fd, pc->prefix,
	    pc->prefix_len);
	pconn_free(pc);
}

static void
resolved(void *arg, const struct endpoint *addrs, size_t naddrs,
    const char *err)
{
	struct pconn *pc = arg;

	pc->query = NULL;
	if (pc->state != P_RESOLVING)
		return;		/* answered already (cannot happen: cancelled) */
	if (naddrs == 0) {
		char why[512];

		pc->pl->stats.resolve_failed++;
		snprintf(why, sizeof(why), "cannot resolve %s: %s", pc->host,
		    err ? err : "no address");
		refuse(pc, 502, "Bad Gateway", why);
		return;
	}
	/* The first address, in the resolver's order. */
	start_flow(pc, &addrs[0]);
}

/* --- the request --------------------------------------------------------------- */

/* Whether a header field stays when an absolute-form request goes to the origin. */
static int
keep_field(const struct http_msg *m, const struct http_field *f)
{
	static const char *const hop[] = {
		"host", "connection", "proxy-connection", "proxy-authorization",
		"keep-alive", "te",
	};
	size_t i;

	for (i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		if (strcasecmp(f->name, hop[i]) == 0)
			return 0;
	/*
	 * Fields the client named as hop-by-hop go, except the upgrade and
	 * the body's framing: dropping Content-Length or Transfer-Encoding
	 * would make the body that follows look like the next request.
	 */
	if (strcasecmp(f->name, "upgrade") != 0 &&
	    strcasecmp(f->name, "content-length") != 0 &&
	    strcasecmp(f->name, "transfer-encoding") != 0 &&
	    http_field_has_token(m->fields, m->nfields, "connection", f->name))
		return 0;
	return 1;
}

/*
 * "GET http://h/p HTTP/1.1" becomes "GET /p HTTP/1.1", Host from the URL
 * (RFC 9112 §3.2.2), hop-by-hop fields dropped and "Connection: close": one
 * request per flow, so a client that next asks for another host gets a new
 * connection instead of the first host's server.  An Upgrade request keeps
 * "Connection: upgrade".  rest[0..rest_len) (what followed the head) is
 * appended.  -1: out of memory, -2: too many fields once Host and
 * Connection are added.
 */
static int
rewrite(struct plisten_req *r, const struct http_msg *m, const char *path,
    size_t path_len, const uint8_t *rest, size_t rest_len)
{
	int upgrade = http_field_has_token(m->fields, m->nfields, "connection",
	    "upgrade") && http_field_get(m->fields, m->nfields, "upgrade") != NULL;
	size_t cap, n = 0, i, kept = 0;
	char *out;
	int w;

	/* Host and Connection are added: the result must stay within limits. */
	for (i = 0; i < m->nfields; i++)
		kept += keep_field(m, &m->fields[i]);
	if (kept + 2 > HTTP_DEFAULT_MAX_FIELDS)
		return -2;

	/* Request line, Host and Connection lines, then the fields kept. */
	cap = m->method_len + path_len + 1 + 32 + strlen(r->host) + 32 + 32 +
	    rest_len;
	for (i = 0; i < m->nfields; i++)
		cap += m->fields[i].name_len + m->fields[i].value_len + 4;
	if ((out = malloc(cap)) == NULL)
		return -1;
#define PUT(s, l)	do { memcpy(out + n, (s), (l)); n += (l); } while (0)
	PUT(m->method, m->method_len);
	PUT(" ", 1);
	if (path_len == 0 || path[0] != '/')
		PUT("/", 1);		/* "http://h" or "http://h?q" */
	PUT(path, path_len);
	w = snprintf(out + n, cap - n, " HTTP/1.%d\r\nHost: %s%s%s", m->version_minor,
	    strchr(r->host, ':') ? "[" : "", r->host, strchr(r->host, ':') ? "]" : "");
	n += (size_t)w;
	if (r->port != 80) {
		w = snprintf(out + n, cap - n, ":%u", (unsigned)r->port);
		n += (size_t)w;
	}
	PUT("\r\n", 2);
	for (i = 0; i < m->nfields; i++) {
		const struct http_field *f = &m->fields[i];

		if (!keep_field(m, f))
			continue;
		PUT(f->name, f->name_len);
		PUT(": ", 2);
		PUT(f->value, f->value_len);
		PUT("\r\n", 2);
	}
	w = snprintf(out + n, cap - n, "Connection: %s\r\n\r\n",
	    upgrade ? "upgrade" : "close");
	n += (size_t)w;
	PUT(rest, rest_len);
#undef PUT
	r->prefix = (uint8_t *)out;
	r->prefix_len = n;
	return 0;
}

static int
valid_host(const char *h)
{
	struct endpoint fa;
	size_t len = strlen(h);

	if (addr_literal(h, &fa) == 0)
		return 1;
	/* A DNS name: what http_split_authority let through, sanely shaped. */
	if (len == 0 || len > 253 || h[0] == '.' || h[0] == '-' ||
	    strstr(h, "..") != NULL || strchr(h, ':') != NULL)
		return 0;
	return 1;
}

#define DENY(st, rs, ...) do {						\
	r->status = (st);						\
	r->reason = (rs);						\
	snprintf(r->why, sizeof(r->why), __VA_ARGS__);			\
	return;								\
} while (0)

void
plisten_decide(const struct http_msg *m, const uint8_t *buf, size_t head_len,
    size_t len, struct plisten_req *r)
{
	const char *path = NULL;
	size_t path_len = 0;
	bool https;

	memset(r, 0, sizeof(*r));
	if (m->method_id == HTTP_M_CONNECT) {
		r->tunnel = 1;
		if (!http_split_authority(m->target, m->target_len, 0, r->host,
		    sizeof(r->host), &r->port) || !valid_host(r->host))
			DENY(400, "Bad Request", "CONNECT wants host:port");
		/* Bytes the client sent past the head are the tunnel's. */
		if (len > head_len) {
			if ((r->prefix = malloc(len - head_len)) == NULL)
				DENY(503, "Service Unavailable", "out of memory");
			memcpy(r->prefix, buf + head_len, len - head_len);
			r->prefix_len = len - head_len;
		}
		return;
	}
	if (!http_split_absolute(m->target, m->target_len, &https, r->host,
	    sizeof(r->host), &r->port, &path, &path_len))
		DENY(400, "Bad Request", "%s", m->target_len > 0 &&
		    m->target[0] == '/' ? "this is a proxy: ask for "
		    "http://host/path, or CONNECT host:port" :
		    "unsupported request target");
	if (https)
		DENY(501, "Not Implemented", "https:// URLs go through CONNECT");
	if (!valid_host(r->host))
		DENY(400, "Bad Request", "bad host in the URL");
	switch (rewrite(r, m, path, path_len, buf + head_len, len - head_len)) {
	case -1:
		DENY(503, "Service Unavailable", "out of memory");
	case -2:
		DENY(431, "Request Header Fields Too Large", "too many header "
		    "fields");
	}
}
#undef DENY

/* The head is complete (head_len bytes of buf): decide what it asks. */
static void
request(struct pconn *pc, size_t head_len)
{
	struct plisten *pl = pc->pl;
	struct plisten_req r;
	struct endpoint lit;

	ev_io_stop(pl->loop, &pc->rd);
	plisten_decide(&pc->hp.msg, pc->buf, head_len, pc->len, &r);
	if (r.status != 0) {
		free(r.prefix);
		refuse(pc, r.status, r.reason, r.why);
		return;
	}
	pc->tunnel = r.tunnel;
	memcpy(pc->host, r.host, sizeof(pc->host));
	pc->port = r.port;
	pc->prefix = r.prefix;
	pc->prefix_len = r.prefix_len;
	free(pc->buf);
	pc->buf = NULL;
	pc->len = 0;

	if (addr_literal(pc->host, &lit) == 0) {
		start_flow(pc, &lit);
		return;
	}
	if (pl->res.resolve == NULL) {
		pl->stats.resolve_failed++;
		refuse(pc, 502, "Bad Gateway", "no resolver for host names");
		return;
	}
	pc->state = P_RESOLVING;
	ev_timer_stop(pl->loop, &pc->timer);
	ev_timer_set(&pc->timer, RESOLVE_TIMEOUT, 0);
	ev_timer_start(pl->loop, &pc->timer);
	if ((pc->query = pl->res.resolve(pl->res.ctx, pc->host, resolved,
	    pc)) == NULL) {
		pl->stats.resolve_failed++;
		refuse(pc, 502, "Bad Gateway", "cannot start resolving");
	}
}

static void
head_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pconn *pc = w->data;
	const uint8_t *data;
	size_t used, dlen;
	enum http_event ev;
	ssize_t n;

	(void)revents;
	n = read(pc->fd, pc->buf + pc->len, PLISTEN_MAX_HEAD - pc->len);
	if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
		pconn_free(pc);		/* gone before asking anything */
		return;
	}
	if (n == -1)
		return;
	if (pc->len == 0) {
		/* The first byte came: the rest of the head's deadline. */
		ev_tstamp left = PLISTEN_HEAD_TIMEOUT - (ev_now(loop) - pc->since);

		ev_timer_stop(loop, &pc->timer);
		ev_timer_set(&pc->timer, left > 0.001 ? left : 0.001, 0);
		ev_timer_start(loop, &pc->timer);
	}
	pc->len += (size_t)n;
	for (;;) {
		ev = http_parse(&pc->hp, pc->buf + pc->parsed, pc->len - pc->parsed,
		    &used, &data, &dlen);
		pc->parsed += used;
		if (ev == HTTP_EV_HEADERS) {
			request(pc, pc->parsed);
			return;
		}
		if (ev == HTTP_EV_ERROR) {
			int st = http_error_status(pc->hp.error);

			refuse(pc, st, st == 431 ? "Request Header Fields Too "
			    "Large" : st == 501 ? "Not Implemented" : st == 505 ?
			    "HTTP Version Not Supported" : "Bad Request",
			    http_error_str(pc->hp.error));
			return;
		}
		if (ev == HTTP_EV_NEED_MORE)
			break;
	}
	if (pc->len == PLISTEN_MAX_HEAD)
		refuse(pc, 431, "Request Header Fields Too Large",
		    "request head too large");
}

static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pconn *pc = w->data;

	(void)loop;
	(void)revents;
	switch (pc->state) {
	case P_READING:
		if (pc->len == 0) {
			pconn_free(pc);	/* not a byte: nothing to answer */
			break;
		}
		refuse(pc, 408, "Request Timeout", "no complete request in time");
		break;
	case P_RESOLVING:
		/* The lookup must not answer a client that has had its 504. */
		if (pc->query != NULL && pc->pl->res.cancel != NULL)
			pc->pl->res.cancel(pc->query);
		pc->query = NULL;
		pc->pl->stats.resolve_failed++;
		refuse(pc, 504, "Gateway Timeout", "resolving took too long");
		break;
	case P_DRAINING:
		pconn_free(pc);
		break;
	}
}

static void
pconn_free(struct pconn *pc)
{
	struct plisten *pl = pc->pl;

	if (pc->query != NULL && pl->res.cancel != NULL)
		pl->res.cancel(pc->query);
	ev_io_stop(pl->loop, &pc->rd);
	ev_timer_stop(pl->loop, &pc->timer);
	if (pc->fd != -1)
		close(pc->fd);
	http_parser_free(&pc->hp);
	free(pc->buf);
	free(pc->prefix);
	TAILQ_REMOVE(&pl->conns, pc, entry);
	pl->npending--;
	free(pc);
}

static int
same_source(const struct endpoint *a, const struct endpoint *b)
{
	return a->family == b->family &&
	    memcmp(a->addr, b->addr, a->family == AF_INET ? 4 : 16) == 0;
}

/*
 * Room for a client from src: 0 if there is (or was made, by closing the
 * oldest connection still sending its head: of src when src is at its
 * limit, of anyone when the listener is), -1 if there is none to make.
 */
static int
make_room(struct plisten *pl, const struct endpoint *src)
{
	struct pconn *pc, *oldest_src = NULL, *oldest = NULL;
	size_t from_src = 0;

	TAILQ_FOREACH(pc, &pl->conns, entry) {
		int mine = src->family != 0 && same_source(&pc->peer, src);

		from_src += mine;
		if (pc->state != P_READING)
			continue;
		if (mine && oldest_src == NULL)
			oldest_src = pc;
		if (oldest == NULL)
			oldest = pc;
	}
	if (from_src >= PLISTEN_MAX_PER_SOURCE)
		pc = oldest_src;
	else if (pl->npending >= PLISTEN_MAX_PENDING)
		pc = oldest;
	else
		return 0;
	if (pc == NULL)
		return -1;
	pl->stats.evicted++;
	if (ev_now(pl->loop) - pl->overload_logged > 10) {
		pl->overload_logged = ev_now(pl->loop);
		log_warnx("proxy listener: %zu clients waiting for their flow (%zu "
		    "from one source); closing the oldest that has not sent its "
		    "request for a new one", pl->npending, from_src);
	}
	pconn_free(pc);
	return 0;
}

static void
accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct plisten *pl = w->data;
	struct sockaddr_storage ss;
	socklen_t sslen;
	struct pconn *pc = NULL;
	int fd, i;

	(void)revents;
	for (i = 0; i < 64; i++) {
		sslen = sizeof(ss);
		fd = plat_accept(pl->fd, (struct sockaddr *)&ss, &sslen);
		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/*
				 * The connection stays queued, so the socket
				 * stays readable: pause rather than spin, and
				 * say so at most every 10 s.
				 */
				if (ev_now(loop) - pl->overload_logged > 10) {
					pl->overload_logged = ev_now(loop);
					log_warn("proxy listener: accept (pausing "
					    "%.0f ms)", ACCEPT_PAUSE * 1000);
				}
				pl->stats.overloaded++;
				ev_io_stop(loop, &pl->accept_w);
				ev_timer_start(loop, &pl->accept_pause);
			} else if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("proxy listener: accept");
			return;
		}
		pl->stats.accepted++;
		{
			struct endpoint src;

			if (sockaddr_to_flow(&ss, &src) == -1)
				memset(&src, 0, sizeof(src));
			/* At a limit with nobody to push out (all past their
			 * head, resolving or draining): refuse this one. */
			if (make_room(pl, &src) == -1) {
				pl->stats.overloaded++;
				close(fd);
				continue;
			}
		}
		pc = NULL;
		if (pl->npending >= PLISTEN_MAX_PENDING ||
		    (pc = calloc(1, sizeof(*pc))) == NULL ||
		    (pc->buf = malloc(PLISTEN_MAX_HEAD)) == NULL) {
			free(pc);
			pl->stats.overloaded++;
			if (ev_now(loop) - pl->overload_logged > 10) {
				pl->overload_logged = ev_now(loop);
				log_warnx("proxy listener: %zu clients waiting "
				    "for their flow; closing new ones",
				    pl->npending);
			}
			close(fd);
			continue;
		}
		pc->pl = pl;
		pc->fd = fd;
		if (sockaddr_to_flow(&ss, &pc->peer) == -1)
			memset(&pc->peer, 0, sizeof(pc->peer));
		http_parser_init(&pc->hp, HTTP_REQUEST, NULL);
		TAILQ_INSERT_TAIL(&pl->conns, pc, entry);
		pl->npending++;
		ev_io_init(&pc->rd, head_read, fd, EV_READ);
		pc->rd.data = pc;
		ev_io_start(loop, &pc->rd);
		pc->since = ev_now(loop);
		ev_timer_init(&pc->timer, timer_cb, PLISTEN_FIRST_BYTE_TIMEOUT, 0);
		pc->timer.data = pc;
		ev_timer_start(loop, &pc->timer);
	}
}

static void
accept_resume(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct plisten *pl = w->data;

	(void)revents;
	ev_io_start(loop, &pl->accept_w);
}

struct plisten *
plisten_new(struct ev_loop *loop, struct relay *relay,
    const struct endpoint *a, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	struct plisten *pl;
	socklen_t len;
	int one = 1;
	char where[64];

	flow_addr_str(a, where, sizeof(where));
	if ((pl = calloc(1, sizeof(*pl))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pl->loop = loop;
	pl->relay = relay;
	TAILQ_INIT(&pl->conns);
	len = flow_addr_sockaddr(a, &ss);
	if ((pl->fd = plat_socket(a->family, SOCK_STREAM, 1)) == -1 ||
	    setsockopt(pl->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    (a->family == AF_INET6 && setsockopt(pl->fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &one, sizeof(one)) == -1) ||
	    bind(pl->fd, (struct sockaddr *)&ss, len) == -1 ||
	    listen(pl->fd, 512) == -1) {
		snprintf(err, errlen, "listening on %s: %s", where,
		    strerror(errno));
		if (pl->fd != -1)
			close(pl->fd);
		free(pl);
		return NULL;
	}
	len = sizeof(ss);
	if (getsockname(pl->fd, (struct sockaddr *)&ss, &len) == 0) {
		struct endpoint bound;

		if (sockaddr_to_flow(&ss, &bound) == 0)
			pl->port = bound.port;
	}
	ev_io_init(&pl->accept_w, accept_cb, pl->fd, EV_READ);
	pl->accept_w.data = pl;
	ev_timer_init(&pl->accept_pause, accept_resume, ACCEPT_PAUSE, 0);
	pl->accept_pause.data = pl;
	return pl;
}

void
plisten_start(struct plisten *pl, const struct plisten_resolver *res)
{
	if (res != NULL)
		pl->res = *res;
	ev_io_start(pl->loop, &pl->accept_w);
}

void
plisten_free(struct plisten *pl)
{
	struct pconn *pc;

	if (pl == NULL)
		return;
	while ((pc = TAILQ_FIRST(&pl->conns)) != NULL)
		pconn_free(pc);
	ev_io_stop(pl->loop, &pl->accept_w);
	ev_timer_stop(pl->loop, &pl->accept_pause);
	close(pl->fd);
	free(pl);
}

const struct plisten_stats *
plisten_stats(const struct plisten *pl)
{
	return &pl->stats;
}

uint16_t
plisten_port(const struct plisten *pl)
{
	return pl->port;
}
