/*
 * The HTTP/2 layer (see h2.h and docs/proxyd-h2.md).
 *
 * Call chain: h2_feed -> nghttp2_session_mem_recv -> the on_* callbacks
 * below, which submit to the *other* session (a request upstream, a
 * response to the client, RST_STREAM / GOAWAY mapped across) and buffer
 * DATA in the stream; h2_output -> fill -> nghttp2_session_mem_send ->
 * read_body (the data provider), which takes buffered DATA and notes what
 * to hand back to the sender's window once those bytes are written;
 * h2_output_done -> give_back -> nghttp2_session_consume.
 *
 * A stream lives until both sessions are done with it (on_stream_close
 * from each, or the upstream never opened it); it is then recorded and
 * freed.  Structures are never freed inside an nghttp2 callback: a dead
 * stream waits on a list swept when the public call returns.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <nghttp2/nghttp2.h>

#include "log.h"
#include "proxyd/h2.h"

#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST(head);					\
	    (var) && ((tvar) = TAILQ_NEXT(var, field), 1);		\
	    (var) = (tvar))
#endif

#define OUT_HIGH	(64 * 1024)	/* output kept ready per leg */

/* --- memory: one budget for the connection, nghttp2 included ----------- */

struct h2mem {
	size_t	used, peak, limit;
	bool	refused;	/* an allocation went over the limit */
};

/* A size prefix, aligned for anything. */
#define MEM_HDR	16

static void *
mem_alloc(struct h2mem *m, size_t n)
{
	uint8_t *p;

	if (n > m->limit || m->used + n + MEM_HDR > m->limit) {
		m->refused = true;
		return NULL;
	}
	if ((p = malloc(n + MEM_HDR)) == NULL)
		return NULL;
	memcpy(p, &n, sizeof(n));
	m->used += n + MEM_HDR;
	if (m->used > m->peak)
		m->peak = m->used;
	return p + MEM_HDR;
}

static void
mem_free(struct h2mem *m, void *ptr)
{
	uint8_t *p = ptr;
	size_t n;

	if (p == NULL)
		return;
	p -= MEM_HDR;
	memcpy(&n, p, sizeof(n));
	m->used -= n + MEM_HDR;
	free(p);
}

static void *
mem_calloc(struct h2mem *m, size_t nmemb, size_t size)
{
	void *p;

	if (size != 0 && nmemb > SIZE_MAX / 2 / size)
		return NULL;
	if ((p = mem_alloc(m, nmemb * size)) != NULL)
		memset(p, 0, nmemb * size);
	return p;
}

static void *
mem_realloc(struct h2mem *m, void *ptr, size_t n)
{
	uint8_t *np;
	size_t old;

	if (ptr == NULL)
		return mem_alloc(m, n);
	memcpy(&old, (uint8_t *)ptr - MEM_HDR, sizeof(old));
	if (n > old && (n > m->limit || m->used + (n - old) > m->limit)) {
		m->refused = true;
		return NULL;
	}
	if ((np = realloc((uint8_t *)ptr - MEM_HDR, n + MEM_HDR)) == NULL)
		return NULL;
	memcpy(np, &n, sizeof(n));
	m->used = m->used - old + n;
	if (m->used > m->peak)
		m->peak = m->used;
	return np + MEM_HDR;
}

static void *ng_malloc(size_t n, void *u) { return mem_alloc(u, n); }
static void ng_free(void *p, void *u) { mem_free(u, p); }
static void *ng_calloc(size_t a, size_t b, void *u) { return mem_calloc(u, a, b); }
static void *ng_realloc(void *p, size_t n, void *u) { return mem_realloc(u, p, n); }

/* --- header lists ------------------------------------------------------------ */

struct hlist {
	struct http_field	*f;	/* each name+value one allocation */
	size_t			 n, cap;
	size_t			 weight;	/* 32 + name + value, summed */
};

/* --- body data waiting for the other leg ------------------------------------ */

struct dbuf {
	uint8_t		*p;
	size_t		 off, len, cap;
};

/* What a side of a stream kept for the record. */
struct rbody {
	uint8_t		*p;
	size_t		 len, cap;
	uint64_t	 size;
};

struct h2;

/*
 * Directions: UP is client -> upstream (the request), DOWN is upstream ->
 * client (the response).  Index 0/1 of the arrays below.
 */
enum { UP = 0, DOWN = 1 };

struct stream {
	TAILQ_ENTRY(stream)	 e;
	struct h2		*c;
	int32_t			 csid, usid;	/* 0: none (yet) */
	uint32_t		 seq;
	bool			 c_closed;	/* nghttp2 closed it on the client leg */
	bool			 u_closed;	/* …on the upstream leg (or never opened) */
	bool			 dead;		/* on the sweep list */
	bool			 emitted;

	struct hlist		 req, req_trl, resp, resp_trl;
	bool			 req_hdrs_done;	/* the request's block is complete */
	bool			 req_too_big, resp_too_big;
	bool			 answered;	/* proxyd answered the client itself */
	bool			 rst_done;	/* NO_ERROR reset sent after the end */
	bool			 resp_final;	/* final response headers came */
	bool			 resp_submitted;/* …and went to the client */
	bool			 resp_sent_end;	/* END_STREAM written to the client */
	bool			 req_sent_end;	/* END_STREAM written upstream */
	bool			 u_sent_headers;/* the request left for upstream */

	/* Per direction: the bytes waiting, the end seen, trailers to
	 * follow, the provider deferred, last time bytes moved on. */
	struct dbuf		 buf[2];
	bool			 end[2];
	bool			 deferred[2];
	bool			 has_provider[2];
	uint64_t		 moved_us[2];

	struct rbody		 rec[2];
	bool			 grpc;
	struct h2_grpc_frames	 gf[2];

	int			 status;
	uint64_t		 req_start_us, req_end_us;
	uint64_t		 resp_start_us, resp_end_us;
	char			 error[160];
};

TAILQ_HEAD(streamq, stream);

/* Bytes to hand back to a session's window once the output is written. */
struct giveback {
	uint64_t	 at;		/* output offset; UINT64_MAX: pending */
	int32_t		 sid;		/* on the other session */
	uint32_t	 n;
};

struct leg {
	nghttp2_session		*s;
	struct dbuf		 out;
	uint64_t		 appended, written;
	struct giveback		*gb;
	size_t			 gb_head, gb_len, gb_cap;
	bool			 failed;	/* fatal error: only flush */
	bool			 eof;		/* its peer closed */
	bool			 goaway_in;	/* received a GOAWAY */
	/* control-frame token bucket */
	uint64_t		 tokens_milli;
	uint64_t		 tokens_us;
	char			 liberr[120];	/* nghttp2's last complaint */
};

struct h2 {
	struct h2_config	 cfg;
	char			 scheme[8];
	char			 default_authority[300];
	struct h2mem		 mem;
	nghttp2_mem		 ngmem;
	struct leg		 leg[2];
	struct streamq		 streams;	/* open, in client order */
	struct streamq		 dead;
	uint32_t		 nstreams, next_seq;
	bool			 client_settings_sent;
	bool			 up_settings_seen;
	bool			 up_connect_protocol;
	size_t			 recorded;	/* body bytes kept by open streams */
	uint64_t		 now_us;
	char			 error[200];
	struct h2_stats		 st;
};

static const char *const leg_name[2] = { "client", "server" };

/* --- small helpers ------------------------------------------------------------ */

static void
fail_conn(struct h2 *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
fail_conn(struct h2 *c, const char *fmt, ...)
{
	va_list ap;

	if (c->error[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
	log_debug("flow %llu: h2: %s", (unsigned long long)c->cfg.flow_id,
	    c->error);
}

static void
set_error(struct stream *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
set_error(struct stream *s, const char *fmt, ...)
{
	va_list ap;

	if (s->error[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(s->error, sizeof(s->error), fmt, ap);
	va_end(ap);
}

static const char *
code_name(uint32_t code)
{
	return nghttp2_http2_strerror(code);
}

static void
hlist_clear(struct h2 *c, struct hlist *h)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		mem_free(&c->mem, (void *)(uintptr_t)h->f[i].name);
	mem_free(&c->mem, h->f);
	memset(h, 0, sizeof(*h));
}

static int
hlist_add(struct h2 *c, struct hlist *h, const uint8_t *name, size_t nlen,
    const uint8_t *value, size_t vlen)
{
	struct http_field *nf;
	char *p;

	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 16;

		if ((nf = mem_realloc(&c->mem, h->f, cap * sizeof(*nf))) == NULL)
			return -1;
		h->f = nf;
		h->cap = cap;
	}
	if ((p = mem_alloc(&c->mem, nlen + vlen + 2)) == NULL)
		return -1;
	memcpy(p, name, nlen);
	p[nlen] = '\0';
	memcpy(p + nlen + 1, value, vlen);
	p[nlen + 1 + vlen] = '\0';
	h->f[h->n].name = p;
	h->f[h->n].name_len = nlen;
	h->f[h->n].value = p + nlen + 1;
	h->f[h->n].value_len = vlen;
	h->n++;
	return 0;
}

static const struct http_field *
hlist_get(const struct hlist *h, const char *name)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		if (strcasecmp(h->f[i].name, name) == 0)
			return &h->f[i];
	return NULL;
}

/* The fields as nghttp2 wants them (pointing into h). */
static nghttp2_nv *
hlist_nv(struct h2 *c, const struct hlist *h)
{
	nghttp2_nv *nv;
	size_t i;

	if ((nv = mem_calloc(&c->mem, h->n ? h->n : 1, sizeof(*nv))) == NULL)
		return NULL;
	for (i = 0; i < h->n; i++) {
		nv[i].name = (uint8_t *)(uintptr_t)h->f[i].name;
		nv[i].namelen = h->f[i].name_len;
		nv[i].value = (uint8_t *)(uintptr_t)h->f[i].value;
		nv[i].valuelen = h->f[i].value_len;
		nv[i].flags = NGHTTP2_NV_FLAG_NONE;
	}
	return nv;
}

static void
dbuf_free(struct h2 *c, struct dbuf *b)
{
	mem_free(&c->mem, b->p);
	memset(b, 0, sizeof(*b));
}

static int
dbuf_add(struct h2 *c, struct dbuf *b, const uint8_t *p, size_t n)
{
	uint8_t *np;
	size_t cap;

	if (b->off > 0 && b->cap - b->off - b->len < n) {
		memmove(b->p, b->p + b->off, b->len);
		b->off = 0;
	}
	if (b->cap - b->off - b->len < n) {
		cap = b->cap ? b->cap : 16384;
		while (cap - b->len < n)
			cap *= 2;
		if ((np = mem_realloc(&c->mem, b->p, cap)) == NULL)
			return -1;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->off + b->len, p, n);
	b->len += n;
	return 0;
}

static void
dbuf_take(struct dbuf *b, size_t n)
{
	b->off += n;
	b->len -= n;
	if (b->len == 0)
		b->off = 0;
}

static void
buffered_add(struct h2 *c, size_t n)
{
	c->st.buffered += n;
	if (c->st.buffered > c->st.buffered_peak)
		c->st.buffered_peak = c->st.buffered;
}

/* --- gRPC framing ----------------------------------------------------------- */

void
h2_grpc_feed(struct h2_grpc_frames *g, const uint8_t *p, size_t len)
{
	while (len > 0) {
		if (g->remaining > 0) {
			size_t take = len < g->remaining ? len : (size_t)g->remaining;

			g->remaining -= take;
			p += take;
			len -= take;
			continue;
		}
		g->hdr[g->hdr_len++] = *p++;
		len--;
		if (g->hdr_len < 5)
			continue;
		g->hdr_len = 0;
		g->remaining = (uint32_t)g->hdr[1] << 24 | (uint32_t)g->hdr[2] << 16 |
		    (uint32_t)g->hdr[3] << 8 | g->hdr[4];
		if (g->messages < H2_GRPC_SIZES)
			g->sizes[g->messages] = (uint32_t)g->remaining;
		g->messages++;
		if (g->hdr[0] & 1)
			g->compressed++;
	}
}

bool
h2_grpc_complete(const struct h2_grpc_frames *g)
{
	return g->hdr_len == 0 && g->remaining == 0;
}

/* --- recording ----------------------------------------------------------------- */

static void
rec_add(struct h2 *c, struct stream *s, int dir, const uint8_t *p, size_t n)
{
	struct rbody *b = &s->rec[dir];
	size_t take, cap = c->cfg.body_cap, want;
	uint8_t *np;

	b->size += n;
	if (s->grpc)
		h2_grpc_feed(&s->gf[dir], p, n);
	if (b->len >= cap)
		return;
	take = n < cap - b->len ? n : cap - b->len;
	if (c->recorded + take > c->cfg.record_budget)
		return;		/* kept less: the size says so */
	if (b->cap - b->len < take) {
		want = b->cap ? b->cap : 4096;
		while (want - b->len < take)
			want *= 2;
		if (want > cap)
			want = cap;
		/* Recording is not relaying: plain malloc, its own budget. */
		if ((np = realloc(b->p, want)) == NULL)
			return;
		b->p = np;
		b->cap = want;
	}
	memcpy(b->p + b->len, p, take);
	b->len += take;
	c->recorded += take;
}

/* The regular fields (and :protocol) of a block, for the record. */
static size_t
record_fields(const struct hlist *h, struct http_field *out, size_t max)
{
	size_t i, n = 0;

	for (i = 0; i < h->n && n < max; i++)
		if (h->f[i].name[0] != ':' ||
		    strcmp(h->f[i].name, ":protocol") == 0)
			out[n++] = h->f[i];
	return n;
}

static const char *
pseudo(const struct hlist *h, const char *name)
{
	const struct http_field *f = hlist_get(h, name);

	return f != NULL ? f->value : NULL;
}

static void
emit(struct h2 *c, struct stream *s)
{
	struct http_field *rq = NULL, *rp = NULL;
	struct store_http h;
	struct store_grpc g;
	const struct http_field *gs, *gm;
	const char *authority, *method;

	if (s->emitted)
		return;
	s->emitted = true;
	c->st.emitted++;
	if (c->cfg.emit == NULL)
		return;
	memset(&h, 0, sizeof(h));
	h.seq = s->seq;
	h.http_version = "HTTP/2.0";
	h.scheme = pseudo(&s->req, ":scheme");
	if (h.scheme == NULL)
		h.scheme = c->scheme;
	method = pseudo(&s->req, ":method");
	h.method = method != NULL ? method : "";
	authority = pseudo(&s->req, ":authority");
	if (authority == NULL)
		authority = pseudo(&s->req, "host");
	h.host = authority != NULL ? authority : c->default_authority;
	h.target = pseudo(&s->req, ":path");
	if (h.target == NULL)
		h.target = method != NULL && strcmp(method, "CONNECT") == 0 ?
		    h.host : "";
	/* Plain allocations: recording must work when the budget is gone. */
	if (s->req.n > 0 && (rq = calloc(s->req.n, sizeof(*rq))) != NULL)
		h.n_req_fields = record_fields(&s->req, rq, s->req.n);
	h.req_fields = rq;
	if (s->resp.n > 0 && (rp = calloc(s->resp.n, sizeof(*rp))) != NULL)
		h.n_resp_fields = record_fields(&s->resp, rp, s->resp.n);
	h.resp_fields = rp;
	h.req_trailers = s->req_trl.f;
	h.n_req_trailers = s->req_trl.n;
	h.resp_trailers = s->resp_trl.f;
	h.n_resp_trailers = s->resp_trl.n;
	h.status = s->resp_final ? s->status : 0;
	h.reason = NULL;
	h.req_body_size = s->rec[UP].size;
	h.req_body = s->rec[UP].p;
	h.req_body_len = s->rec[UP].len;
	h.resp_body_size = s->rec[DOWN].size;
	h.resp_body = s->rec[DOWN].p;
	h.resp_body_len = s->rec[DOWN].len;
	h.req_start_us = s->req_start_us;
	h.req_end_us = s->req_end_us;
	h.resp_start_us = s->resp_start_us;
	h.resp_end_us = s->resp_end_us;
	h.error = s->error[0] != '\0' ? s->error : NULL;
	if (s->grpc) {
		memset(&g, 0, sizeof(g));
		g.status = -1;
		gs = hlist_get(&s->resp_trl, "grpc-status");
		gm = hlist_get(&s->resp_trl, "grpc-message");
		if (gs == NULL) {	/* trailers-only */
			gs = hlist_get(&s->resp, "grpc-status");
			gm = hlist_get(&s->resp, "grpc-message");
		}
		if (gs != NULL)
			g.status = atoi(gs->value);
		g.message = gm != NULL ? gm->value : NULL;
		g.req_messages = s->gf[UP].messages;
		g.resp_messages = s->gf[DOWN].messages;
		g.req_sizes = s->gf[UP].sizes;
		g.n_req_sizes = s->gf[UP].messages < H2_GRPC_SIZES ?
		    s->gf[UP].messages : H2_GRPC_SIZES;
		g.resp_sizes = s->gf[DOWN].sizes;
		g.n_resp_sizes = s->gf[DOWN].messages < H2_GRPC_SIZES ?
		    s->gf[DOWN].messages : H2_GRPC_SIZES;
		g.req_partial = !h2_grpc_complete(&s->gf[UP]);
		g.resp_partial = !h2_grpc_complete(&s->gf[DOWN]);
		h.grpc = &g;
	}
	c->cfg.emit(c->cfg.arg, &h);
	free(rq);
	free(rp);
}

/* --- stream life ------------------------------------------------------------- */

static struct stream *
stream_by_usid(struct h2 *c, int32_t usid)
{
	struct stream *s;

	TAILQ_FOREACH(s, &c->streams, e)
		if (s->usid == usid)
			return s;
	return NULL;
}

/*
 * Bytes of dir that will never be relayed: give them back to the window
 * of the session they came in on, now.
 */
static void
discard(struct h2 *c, struct stream *s, int dir)
{
	struct dbuf *b = &s->buf[dir];
	nghttp2_session *src = c->leg[dir == UP ? H2_CLIENT : H2_UPSTREAM].s;
	int32_t sid = dir == UP ? s->csid : s->usid;

	if (b->len > 0) {
		c->st.buffered -= b->len;
		if (sid > 0)
			(void)nghttp2_session_consume(src, sid, b->len);
		else
			(void)nghttp2_session_consume_connection(src, b->len);
	}
	dbuf_free(c, b);
}

/* Done with s on both legs: record it and free it at the next sweep. */
static void
settle(struct h2 *c, struct stream *s)
{
	if (s->dead || !s->c_closed || !s->u_closed)
		return;
	s->dead = true;
	discard(c, s, UP);
	discard(c, s, DOWN);
	if (s->resp_end_us == 0 && s->resp_final)
		s->resp_end_us = c->now_us;
	emit(c, s);
	TAILQ_REMOVE(&c->streams, s, e);
	TAILQ_INSERT_TAIL(&c->dead, s, e);
	c->nstreams--;
	c->st.active = c->nstreams;
}

static void
stream_free(struct h2 *c, struct stream *s)
{
	int i;

	hlist_clear(c, &s->req);
	hlist_clear(c, &s->req_trl);
	hlist_clear(c, &s->resp);
	hlist_clear(c, &s->resp_trl);
	for (i = 0; i < 2; i++) {
		dbuf_free(c, &s->buf[i]);
		c->recorded -= s->rec[i].len;
		free(s->rec[i].p);
	}
	mem_free(&c->mem, s);
}

static void
sweep(struct h2 *c)
{
	struct stream *s;

	while ((s = TAILQ_FIRST(&c->dead)) != NULL) {
		TAILQ_REMOVE(&c->dead, s, e);
		stream_free(c, s);
	}
}

/* Reset s on the client leg (if still open there) with code. */
static void
rst_client(struct h2 *c, struct stream *s, uint32_t code)
{
	if (s->c_closed || c->leg[H2_CLIENT].failed)
		return;
	(void)nghttp2_submit_rst_stream(c->leg[H2_CLIENT].s, NGHTTP2_FLAG_NONE,
	    s->csid, code);
	discard(c, s, DOWN);
}

static void
rst_upstream(struct h2 *c, struct stream *s, uint32_t code)
{
	if (s->u_closed)
		return;
	if (s->usid <= 0 || c->leg[H2_UPSTREAM].failed) {
		s->u_closed = true;
		discard(c, s, UP);
		return;
	}
	(void)nghttp2_submit_rst_stream(c->leg[H2_UPSTREAM].s,
	    NGHTTP2_FLAG_NONE, s->usid, code);
	discard(c, s, UP);
}

/*
 * Answer the client ourselves (431, 502, …) with no body, when nothing of
 * the response went to it yet.
 */
static void
answer_client(struct h2 *c, struct stream *s, int status)
{
	char num[8];
	nghttp2_nv nv[1];

	if (s->c_closed || s->resp_submitted || c->leg[H2_CLIENT].failed) {
		rst_client(c, s, NGHTTP2_INTERNAL_ERROR);
		return;
	}
	snprintf(num, sizeof(num), "%d", status);
	nv[0].name = (uint8_t *)(uintptr_t)":status";
	nv[0].namelen = 7;
	nv[0].value = (uint8_t *)num;
	nv[0].valuelen = strlen(num);
	nv[0].flags = NGHTTP2_NV_FLAG_NONE;
	s->resp_submitted = true;
	s->answered = true;
	if (!s->resp_final) {
		s->status = status;
		s->resp_final = true;
		s->resp_start_us = c->now_us;
	}
	if (nghttp2_submit_response(c->leg[H2_CLIENT].s, s->csid, nv, 1,
	    NULL) != 0)
		rst_client(c, s, NGHTTP2_INTERNAL_ERROR);
	discard(c, s, DOWN);
	s->end[DOWN] = true;
}

/*
 * The response is all out and the origin reads no more of the request:
 * a client still sending is told to stop (RFC 9113 §8.1).
 */
static void
finish_client(struct h2 *c, struct stream *s)
{
	if (!s->resp_sent_end || !s->u_closed || s->end[UP] || s->c_closed ||
	    s->rst_done || c->leg[H2_CLIENT].failed)
		return;
	s->rst_done = true;
	(void)nghttp2_submit_rst_stream(c->leg[H2_CLIENT].s, NGHTTP2_FLAG_NONE,
	    s->csid, NGHTTP2_NO_ERROR);
}

/* --- the data provider: bytes of one direction into the other session ------ */

static void
giveback_push(struct h2 *c, struct leg *l, int32_t sid, size_t n)
{
	struct giveback *g;

	if (l->gb_len > 0) {
		g = &l->gb[(l->gb_head + l->gb_len - 1) % l->gb_cap];
		if (g->at == UINT64_MAX && g->sid == sid &&
		    (uint64_t)g->n + n <= UINT32_MAX) {
			g->n += (uint32_t)n;
			return;
		}
	}
	if (l->gb_len == l->gb_cap) {
		size_t cap = l->gb_cap ? l->gb_cap * 2 : 64, i;
		struct giveback *ng = mem_alloc(&c->mem, cap * sizeof(*ng));

		if (ng == NULL) {
			/* Give it back at once: memory beats precision. */
			(void)nghttp2_session_consume(
			    c->leg[l == &c->leg[H2_CLIENT] ? H2_UPSTREAM :
			    H2_CLIENT].s, sid, n);
			return;
		}
		for (i = 0; i < l->gb_len; i++)
			ng[i] = l->gb[(l->gb_head + i) % l->gb_cap];
		mem_free(&c->mem, l->gb);
		l->gb = ng;
		l->gb_cap = cap;
		l->gb_head = 0;
	}
	g = &l->gb[(l->gb_head + l->gb_len) % l->gb_cap];
	g->at = UINT64_MAX;
	g->sid = sid;
	g->n = (uint32_t)n;
	l->gb_len++;
}

static ssize_t
read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
    size_t length, uint32_t *data_flags, nghttp2_data_source *source,
    void *user_data)
{
	struct h2 *c = user_data;
	struct stream *s = source->ptr;
	int dir = session == c->leg[H2_UPSTREAM].s ? UP : DOWN;
	enum h2_leg to = dir == UP ? H2_UPSTREAM : H2_CLIENT;
	struct dbuf *b = &s->buf[dir];
	struct hlist *trl = dir == UP ? &s->req_trl : &s->resp_trl;
	size_t n = b->len < length ? b->len : length;

	(void)stream_id;
	if (n > 0) {
		memcpy(buf, b->p + b->off, n);
		dbuf_take(b, n);
		c->st.buffered -= n;
		giveback_push(c, &c->leg[to], dir == UP ? s->csid : s->usid, n);
		s->moved_us[dir] = c->now_us;
	}
	if (b->len == 0 && s->end[dir]) {
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
		if (trl->n > 0) {
			nghttp2_nv *nv = hlist_nv(c, trl);

			*data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
			if (nv == NULL || nghttp2_submit_trailer(session,
			    stream_id, nv, trl->n) != 0) {
				*data_flags &= ~NGHTTP2_DATA_FLAG_NO_END_STREAM;
			}
			mem_free(&c->mem, nv);
		}
		return (ssize_t)n;
	}
	if (n == 0) {
		s->deferred[dir] = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	return (ssize_t)n;
}

/* New bytes (or the end) for dir: wake its provider. */
static void
wake(struct h2 *c, struct stream *s, int dir)
{
	nghttp2_session *to = c->leg[dir == UP ? H2_UPSTREAM : H2_CLIENT].s;
	int32_t sid = dir == UP ? s->usid : s->csid;

	if (!s->deferred[dir] || sid <= 0)
		return;
	s->deferred[dir] = false;
	(void)nghttp2_session_resume_data(to, sid);
}

/* --- flood accounting ----------------------------------------------------------- */

/* One control frame from leg; false when the peer is over its rate. */
static bool
ctrl_frame(struct h2 *c, struct leg *l)
{
	uint64_t cap = (uint64_t)c->cfg.ctrl_burst * 1000;

	if (c->now_us > l->tokens_us) {
		uint64_t add = (c->now_us - l->tokens_us) * c->cfg.ctrl_rate / 1000;

		l->tokens_milli = l->tokens_milli + add > cap ? cap :
		    l->tokens_milli + add;
		l->tokens_us = c->now_us;
	}
	if (l->tokens_milli < 1000)
		return false;
	l->tokens_milli -= 1000;
	return true;
}

/* The connection fails: GOAWAY on both legs, every stream ends. */
static void
fail_both(struct h2 *c, enum h2_leg culprit, uint32_t code)
{
	struct stream *s, *tmp;
	int i;

	for (i = 0; i < 2; i++) {
		if (c->leg[i].failed)
			continue;
		(void)nghttp2_session_terminate_session(c->leg[i].s,
		    (enum h2_leg)i == culprit ? code : NGHTTP2_NO_ERROR);
	}
	/*
	 * Recorded now; freed only by h2_free(), as nghttp2 may still hold
	 * them while it writes its GOAWAY.
	 */
	TAILQ_FOREACH_SAFE(s, &c->streams, e, tmp) {
		set_error(s, "%s connection failed: %s", leg_name[culprit],
		    c->error);
		if (s->resp_final && s->resp_end_us == 0)
			s->resp_end_us = c->now_us;
		emit(c, s);
	}
}

/* --- callbacks: both sessions ------------------------------------------------------ */

static int
on_error(nghttp2_session *session, int lib_error_code, const char *msg,
    size_t len, void *user_data)
{
	struct h2 *c = user_data;
	struct leg *l = session == c->leg[H2_CLIENT].s ? &c->leg[H2_CLIENT] :
	    &c->leg[H2_UPSTREAM];

	(void)lib_error_code;
	snprintf(l->liberr, sizeof(l->liberr), "%.*s",
	    (int)(len < sizeof(l->liberr) ? len : sizeof(l->liberr) - 1), msg);
	return 0;
}

/* A header block starts; which list it fills. */
static struct hlist *
block_list(struct stream *s, bool client_leg)
{
	if (client_leg)
		return !s->req_hdrs_done ? &s->req : &s->req_trl;
	return !s->resp_final ? &s->resp : &s->resp_trl;
}

static int
on_header(nghttp2_session *session, const nghttp2_frame *frame,
    const uint8_t *name, size_t namelen, const uint8_t *value,
    size_t valuelen, uint8_t flags, void *user_data)
{
	struct h2 *c = user_data;
	bool client_leg = session == c->leg[H2_CLIENT].s;
	struct stream *s;
	struct hlist *h;
	bool *too_big;

	(void)flags;
	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (s == NULL)
		return 0;
	too_big = client_leg ? &s->req_too_big : &s->resp_too_big;
	if (*too_big)
		return 0;
	h = block_list(s, client_leg);
	h->weight += 32 + namelen + valuelen;
	if (h->weight > c->cfg.max_header_list || h->n >= c->cfg.max_fields) {
		*too_big = true;
		return 0;
	}
	if (hlist_add(c, h, name, namelen, value, valuelen) == -1) {
		*too_big = true;
		return 0;
	}
	return 0;
}

/* --- callbacks: the client leg (nghttp2 server session) ---------------------- */

static int
c_on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame,
    void *user_data)
{
	struct h2 *c = user_data;
	struct stream *s;

	if (frame->hd.type != NGHTTP2_HEADERS ||
	    frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if ((s = mem_calloc(&c->mem, 1, sizeof(*s))) == NULL) {
		c->st.refused++;
		(void)nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE,
		    frame->hd.stream_id, NGHTTP2_REFUSED_STREAM);
		return 0;
	}
	s->c = c;
	s->csid = frame->hd.stream_id;
	s->seq = ++c->next_seq;
	s->req_start_us = c->now_us;
	s->moved_us[UP] = s->moved_us[DOWN] = c->now_us;
	TAILQ_INSERT_TAIL(&c->streams, s, e);
	c->nstreams++;
	c->st.streams++;
	c->st.active = c->nstreams;
	if (c->nstreams > c->st.max_active)
		c->st.max_active = c->nstreams;
	if (nghttp2_session_set_stream_user_data(session, s->csid, s) != 0) {
		/* Cannot happen for a stream nghttp2 just opened. */
		s->c_closed = s->u_closed = true;
		settle(c, s);
	}
	return 0;
}

/* The request's headers are complete: send it upstream. */
static void
start_request(struct h2 *c, struct stream *s, bool end)
{
	nghttp2_data_provider prd, *pp = NULL;
	const struct http_field *ct;
	nghttp2_nv *nv;
	int32_t id;

	if (s->req_too_big) {
		set_error(s, "request header list over %zu bytes or %zu fields",
		    c->cfg.max_header_list, c->cfg.max_fields);
		c->st.refused++;
		s->u_closed = true;
		answer_client(c, s, 431);
		return;
	}
	ct = hlist_get(&s->req, "content-type");
	if (ct != NULL && strncasecmp(ct->value, "application/grpc", 16) == 0)
		s->grpc = true;
	if (c->leg[H2_UPSTREAM].failed || c->leg[H2_UPSTREAM].goaway_in ||
	    c->leg[H2_UPSTREAM].eof) {
		set_error(s, "refused: the server is going away");
		c->st.refused++;
		s->u_closed = true;
		rst_client(c, s, NGHTTP2_REFUSED_STREAM);
		return;
	}
	if ((nv = hlist_nv(c, &s->req)) == NULL) {
		set_error(s, "refused: out of memory");
		c->st.refused++;
		s->u_closed = true;
		rst_client(c, s, NGHTTP2_REFUSED_STREAM);
		return;
	}
	if (!end) {
		prd.source.ptr = s;
		prd.read_callback = read_body;
		pp = &prd;
		s->has_provider[UP] = true;
	}
	id = nghttp2_submit_request(c->leg[H2_UPSTREAM].s, NULL, nv, s->req.n,
	    pp, s);
	mem_free(&c->mem, nv);
	if (id < 0) {
		set_error(s, "refused upstream: %s", nghttp2_strerror(id));
		c->st.refused++;
		s->u_closed = true;
		rst_client(c, s, NGHTTP2_REFUSED_STREAM);
		return;
	}
	s->usid = id;
}

static int
c_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
    void *user_data)
{
	struct h2 *c = user_data;
	struct leg *l = &c->leg[H2_CLIENT];
	struct stream *s = NULL;
	bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;

	if (frame->hd.stream_id != 0)
		s = nghttp2_session_get_stream_user_data(session,
		    frame->hd.stream_id);
	switch (frame->hd.type) {
	case NGHTTP2_HEADERS:
		if (s == NULL)
			return 0;
		if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
			s->req_hdrs_done = true;
			if (end) {
				s->end[UP] = true;
				s->req_end_us = c->now_us;
			}
			start_request(c, s, end);
			return 0;
		}
		/* Trailers (or a too-large block that went to req_trl). */
		if (s->req_too_big || !end) {
			set_error(s, "request trailers refused");
			rst_upstream(c, s, NGHTTP2_CANCEL);
			rst_client(c, s, s->req_too_big ?
			    NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR);
			return 0;
		}
		s->end[UP] = true;
		s->req_end_us = c->now_us;
		wake(c, s, UP);
		return 0;
	case NGHTTP2_DATA:
		if (frame->hd.length == 0 && !end && !ctrl_frame(c, l))
			goto flood;
		if (s != NULL && end) {
			s->end[UP] = true;
			s->req_end_us = c->now_us;
			wake(c, s, UP);
		}
		return 0;
	case NGHTTP2_PING:
	case NGHTTP2_PRIORITY:
		if (!(frame->hd.flags & NGHTTP2_FLAG_ACK) && !ctrl_frame(c, l))
			goto flood;
		return 0;
	case NGHTTP2_SETTINGS:
		if (!(frame->hd.flags & NGHTTP2_FLAG_ACK) && !ctrl_frame(c, l))
			goto flood;
		return 0;
	case NGHTTP2_GOAWAY:
		/* The client opens nothing more; it takes no pushes anyway.
		 * Tell the origin the same. */
		l->goaway_in = true;
		if (!c->leg[H2_UPSTREAM].failed)
			(void)nghttp2_submit_goaway(c->leg[H2_UPSTREAM].s,
			    NGHTTP2_FLAG_NONE, 0, frame->goaway.error_code,
			    NULL, 0);
		if (frame->goaway.error_code != NGHTTP2_NO_ERROR)
			fail_conn(c, "client sent GOAWAY: %s",
			    code_name(frame->goaway.error_code));
		return 0;
	default:
		return 0;
	}
flood:
	fail_conn(c, "client flooded control frames (over %u/s)",
	    c->cfg.ctrl_rate);
	return NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int
c_on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
    const uint8_t *data, size_t len, void *user_data)
{
	struct h2 *c = user_data;
	struct stream *s = nghttp2_session_get_stream_user_data(session,
	    stream_id);

	(void)flags;
	if (s == NULL || s->u_closed || s->usid <= 0) {
		(void)nghttp2_session_consume(session, stream_id, len);
		return 0;
	}
	rec_add(c, s, UP, data, len);
	if (s->buf[UP].len == 0)
		s->moved_us[UP] = c->now_us;
	if (dbuf_add(c, &s->buf[UP], data, len) == -1) {
		(void)nghttp2_session_consume(session, stream_id, len);
		set_error(s, "out of memory for the request body");
		rst_upstream(c, s, NGHTTP2_INTERNAL_ERROR);
		rst_client(c, s, NGHTTP2_INTERNAL_ERROR);
		return 0;
	}
	buffered_add(c, len);
	wake(c, s, UP);
	return 0;
}

static int
c_on_stream_close(nghttp2_session *session, int32_t stream_id,
    uint32_t error_code, void *user_data)
{
	struct h2 *c = user_data;
	struct stream *s = nghttp2_session_get_stream_user_data(session,
	    stream_id);

	if (s == NULL)
		return 0;
	s->c_closed = true;
	if (error_code != NGHTTP2_NO_ERROR || !s->resp_sent_end) {
		set_error(s, "client reset the stream: %s",
		    code_name(error_code));
		/* Mirrored upstream (even while nghttp2 still queues it). */
		rst_upstream(c, s, error_code);
	}
	discard(c, s, DOWN);
	settle(c, s);
	return 0;
}

static int
c_on_frame_send(nghttp2_session *session, const nghttp2_frame *frame,
    void *user_data)
{
	struct h2 *c = user_data;
	struct stream *s;

	if (frame->hd.type == NGHTTP2_GOAWAY &&
	    frame->goaway.error_code != NGHTTP2_NO_ERROR) {
		/* nghttp2's own defences (rapid reset, …) end here too. */
		fail_conn(c, "told the client GOAWAY %s%s%s",
		    code_name(frame->goaway.error_code),
		    c->leg[H2_CLIENT].liberr[0] ? ": " : "",
		    c->leg[H2_CLIENT].liberr);
		return 0;
	}
	if ((frame->hd.type != NGHTTP2_DATA &&
	    frame->hd.type != NGHTTP2_HEADERS) ||
	    !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	if ((s = nghttp2_session_get_stream_user_data(session,
	    frame->hd.stream_id)) == NULL)
		return 0;
	s->resp_sent_end = true;
	if (s->resp_end_us == 0)
		s->resp_end_us = c->now_us;
	finish_client(c, s);
	return 0;
}

/* --- callbacks: the upstream leg (nghttp2 client session) ---------------------- */

static int
u_on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame,
    void *user_data)
{
	struct h2 *c = user_data;
	struct stream *s;

	(void)c;
	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (s == NULL)
		return 0;
	/* A final response after 1xx starts a fresh list. */
	if (!s->resp_final && s->resp.n > 0)
		hlist_clear(c, &s->resp);
	if (!s->resp_final)
		s->resp_too_big = false;
	return 0;
}

/* Final (or 1xx) response headers arrived: relay them. */
static void
start_response(struct h2 *c, struct stream *s, bool end)
{
	const char *st = pseudo(&s->resp, ":status");
	nghttp2_data_provider prd, *pp = NULL;
	nghttp2_session *cs = c->leg[H2_CLIENT].s;
	nghttp2_nv *nv;
	int status = st != NULL ? atoi(st) : 0;

	if (s->answered)
		return;
	if (s->resp_too_big) {
		set_error(s, "response header list over %zu bytes or %zu "
		    "fields", c->cfg.max_header_list, c->cfg.max_fields);
		rst_upstream(c, s, NGHTTP2_CANCEL);
		answer_client(c, s, 502);
		return;
	}
	if (s->c_closed || c->leg[H2_CLIENT].failed) {
		if (status >= 200) {
			s->resp_final = true;
			s->status = status;
			s->resp_start_us = c->now_us;
		}
		return;
	}
	if ((nv = hlist_nv(c, &s->resp)) == NULL) {
		set_error(s, "out of memory for the response headers");
		rst_upstream(c, s, NGHTTP2_INTERNAL_ERROR);
		rst_client(c, s, NGHTTP2_INTERNAL_ERROR);
		return;
	}
	if (status >= 100 && status < 200) {
		/* Interim: relayed as is; the final one follows. */
		(void)nghttp2_submit_headers(cs, NGHTTP2_FLAG_NONE, s->csid,
		    NULL, nv, s->resp.n, NULL);
		mem_free(&c->mem, nv);
		hlist_clear(c, &s->resp);
		return;
	}
	s->resp_final = true;
	s->status = status;
	s->resp_start_us = c->now_us;
	if (!end) {
		prd.source.ptr = s;
		prd.read_callback = read_body;
		pp = &prd;
		s->has_provider[DOWN] = true;
	}
	s->resp_submitted = true;
	if (nghttp2_submit_response(cs, s->csid, nv, s->resp.n, pp) != 0) {
		set_error(s, "response refused by nghttp2");
		rst_upstream(c, s, NGHTTP2_INTERNAL_ERROR);
		rst_client(c, s, NGHTTP2_INTERNAL_ERROR);
	}
	mem_free(&c->mem, nv);
}

static int
u_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
    void *user_data)
{
	struct h2 *c = user_data;
	struct leg *l = &c->leg[H2_UPSTREAM];
	struct stream *s = NULL, *t;
	bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
	int32_t last_csid;
	size_t i;

	if (frame->hd.stream_id != 0)
		s = nghttp2_session_get_stream_user_data(session,
		    frame->hd.stream_id);
	switch (frame->hd.type) {
	case NGHTTP2_HEADERS:
		if (s == NULL || s->answered)
			return 0;
		if (!s->resp_final) {
			start_response(c, s, end);
			if (end) {
				s->end[DOWN] = true;
				s->resp_end_us = c->now_us;
			}
			return 0;
		}
		/* Trailers. */
		if (s->resp_too_big || !end) {
			set_error(s, "response trailers refused");
			rst_upstream(c, s, NGHTTP2_CANCEL);
			rst_client(c, s, NGHTTP2_INTERNAL_ERROR);
			return 0;
		}
		s->end[DOWN] = true;
		s->resp_end_us = c->now_us;
		wake(c, s, DOWN);
		return 0;
	case NGHTTP2_DATA:
		if (frame->hd.length == 0 && !end && !ctrl_frame(c, l))
			goto flood;
		if (s != NULL && end) {
			s->end[DOWN] = true;
			s->resp_end_us = c->now_us;
			wake(c, s, DOWN);
		}
		return 0;
	case NGHTTP2_SETTINGS:
		if (frame->hd.flags & NGHTTP2_FLAG_ACK)
			return 0;
		if (!ctrl_frame(c, l))
			goto flood;
		c->up_settings_seen = true;
		for (i = 0; i < frame->settings.niv; i++)
			if (frame->settings.iv[i].settings_id ==
			    NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL &&
			    frame->settings.iv[i].value == 1 &&
			    !c->up_connect_protocol) {
				nghttp2_settings_entry e = {
				    NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1 };

				c->up_connect_protocol = true;
				/* Queued right after our first SETTINGS,
				 * which is held until now. */
				if (!c->leg[H2_CLIENT].failed)
					(void)nghttp2_submit_settings(
					    c->leg[H2_CLIENT].s,
					    NGHTTP2_FLAG_NONE, &e, 1);
			}
		return 0;
	case NGHTTP2_PING:
	case NGHTTP2_PRIORITY:
		if (!(frame->hd.flags & NGHTTP2_FLAG_ACK) && !ctrl_frame(c, l))
			goto flood;
		return 0;
	case NGHTTP2_GOAWAY:
		/*
		 * The origin takes nothing past last_stream_id: nghttp2
		 * closes those streams (REFUSED_STREAM, relayed below as
		 * such, so the client may retry), and the client hears the
		 * same GOAWAY in its own stream ids.
		 */
		l->goaway_in = true;
		last_csid = 0;
		TAILQ_FOREACH(t, &c->streams, e)
			if (t->usid > 0 &&
			    t->usid <= frame->goaway.last_stream_id &&
			    t->csid > last_csid)
				last_csid = t->csid;
		if (frame->goaway.error_code != NGHTTP2_NO_ERROR)
			fail_conn(c, "server sent GOAWAY: %s",
			    code_name(frame->goaway.error_code));
		if (!c->leg[H2_CLIENT].failed)
			(void)nghttp2_submit_goaway(c->leg[H2_CLIENT].s,
			    NGHTTP2_FLAG_NONE, last_csid,
			    frame->goaway.error_code, NULL, 0);
		return 0;
	default:
		return 0;
	}
flood:
	fail_conn(c, "server flooded control frames (over %u/s)",
	    c->cfg.ctrl_rate);
	return NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int
u_on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
    const uint8_t *data, size_t len, void *user_data)
{
	struct h2 *c = user_data;
	struct stream *s = nghttp2_session_get_stream_user_data(session,
	    stream_id);

	(void)flags;
	if (s == NULL || s->c_closed || !s->resp_submitted || s->answered) {
		(void)nghttp2_session_consume(session, stream_id, len);
		return 0;
	}
	rec_add(c, s, DOWN, data, len);
	if (s->buf[DOWN].len == 0)
		s->moved_us[DOWN] = c->now_us;
	if (dbuf_add(c, &s->buf[DOWN], data, len) == -1) {
		(void)nghttp2_session_consume(session, stream_id, len);
		set_error(s, "out of memory for the response body");
		rst_upstream(c, s, NGHTTP2_INTERNAL_ERROR);
		rst_client(c, s, NGHTTP2_INTERNAL_ERROR);
		return 0;
	}
	buffered_add(c, len);
	wake(c, s, DOWN);
	return 0;
}

static int
u_on_stream_close(nghttp2_session *session, int32_t stream_id,
    uint32_t error_code, void *user_data)
{
	struct h2 *c = user_data;
	struct stream *s = nghttp2_session_get_stream_user_data(session,
	    stream_id);

	if (s == NULL)
		return 0;
	s->u_closed = true;
	discard(c, s, UP);
	if (!s->answered && (!s->end[DOWN] ||
	    error_code != NGHTTP2_NO_ERROR)) {
		set_error(s, "server reset the stream: %s",
		    code_name(error_code));
		/* Mirrored to the client; NO_ERROR before the response ended
		 * would read as a complete response, so it is not. */
		rst_client(c, s, !s->end[DOWN] && error_code ==
		    NGHTTP2_NO_ERROR ? NGHTTP2_INTERNAL_ERROR : error_code);
	}
	finish_client(c, s);
	settle(c, s);
	return 0;
}

static int
u_on_frame_send(nghttp2_session *session, const nghttp2_frame *frame,
    void *user_data)
{
	struct h2 *c = user_data;
	struct stream *s;

	(void)c;
	if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
		return 0;
	if ((s = nghttp2_session_get_stream_user_data(session,
	    frame->hd.stream_id)) == NULL)
		return 0;
	if (frame->hd.type == NGHTTP2_HEADERS)
		s->u_sent_headers = true;
	if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
		s->req_sent_end = true;
	return 0;
}

/* A request nghttp2 dropped before sending (GOAWAY, our own RST). */
static int
u_on_frame_not_send(nghttp2_session *session, const nghttp2_frame *frame,
    int lib_error_code, void *user_data)
{
	struct h2 *c = user_data;
	struct stream *s;

	(void)session;
	if (frame->hd.type != NGHTTP2_HEADERS ||
	    (s = stream_by_usid(c, frame->hd.stream_id)) == NULL ||
	    s->u_sent_headers || s->u_closed)
		return 0;
	set_error(s, "not sent upstream: %s", nghttp2_strerror(lib_error_code));
	s->u_closed = true;
	discard(c, s, UP);
	rst_client(c, s, NGHTTP2_REFUSED_STREAM);
	settle(c, s);
	return 0;
}

/* --- setup ------------------------------------------------------------------------ */

void
h2_config_default(struct h2_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->scheme = "https";
	cfg->body_cap = STORE_DEFAULT_BODY_CAP;
	cfg->record_budget = H2_DEFAULT_RECORD_BUDGET;
	cfg->max_streams = H2_DEFAULT_MAX_STREAMS;
	cfg->stream_window = H2_DEFAULT_STREAM_WINDOW;
	cfg->conn_window = H2_DEFAULT_CONN_WINDOW;
	cfg->max_header_list = H2_DEFAULT_MAX_HEADER_LIST;
	cfg->max_fields = H2_DEFAULT_MAX_FIELDS;
	cfg->stall_us = H2_DEFAULT_STALL_US;
	cfg->mem_limit = H2_DEFAULT_MEM_LIMIT;
	cfg->ctrl_burst = H2_DEFAULT_CTRL_BURST;
	cfg->ctrl_rate = H2_DEFAULT_CTRL_RATE;
}

static int
new_session(struct h2 *c, enum h2_leg leg)
{
	nghttp2_session_callbacks *cb;
	nghttp2_option *opt;
	int rv;

	if (nghttp2_session_callbacks_new(&cb) != 0)
		return -1;
	if (nghttp2_option_new(&opt) != 0) {
		nghttp2_session_callbacks_del(cb);
		return -1;
	}
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_error_callback2(cb, on_error);
	if (leg == H2_CLIENT) {
		nghttp2_session_callbacks_set_on_begin_headers_callback(cb,
		    c_on_begin_headers);
		nghttp2_session_callbacks_set_on_frame_recv_callback(cb,
		    c_on_frame_recv);
		nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb,
		    c_on_data_chunk);
		nghttp2_session_callbacks_set_on_stream_close_callback(cb,
		    c_on_stream_close);
		nghttp2_session_callbacks_set_on_frame_send_callback(cb,
		    c_on_frame_send);
	} else {
		nghttp2_session_callbacks_set_on_begin_headers_callback(cb,
		    u_on_begin_headers);
		nghttp2_session_callbacks_set_on_frame_recv_callback(cb,
		    u_on_frame_recv);
		nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb,
		    u_on_data_chunk);
		nghttp2_session_callbacks_set_on_stream_close_callback(cb,
		    u_on_stream_close);
		nghttp2_session_callbacks_set_on_frame_send_callback(cb,
		    u_on_frame_send);
		nghttp2_session_callbacks_set_on_frame_not_send_callback(cb,
		    u_on_frame_not_send);
	}
	/* Flow control is ours (see the top of h2.h). */
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_option_set_no_closed_streams(opt, 1);
	/* CVE-2019-9512/9515: ACKs piling up unsent; SETTINGS with many
	 * entries. */
	nghttp2_option_set_max_outbound_ack(opt, 1000);
	nghttp2_option_set_max_settings(opt, 32);
	/* CVE-2024-27316 &c.: endless CONTINUATION. */
	nghttp2_option_set_max_continuations(opt, 8);
	if (leg == H2_CLIENT)
		/* CVE-2023-44487, rapid reset: 1000 at once, then 33/s. */
		nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);
	else
		nghttp2_option_set_peer_max_concurrent_streams(opt, 100);
	if (leg == H2_CLIENT)
		rv = nghttp2_session_server_new3(&c->leg[leg].s, cb, c, opt,
		    &c->ngmem);
	else
		rv = nghttp2_session_client_new3(&c->leg[leg].s, cb, c, opt,
		    &c->ngmem);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	return rv == 0 ? 0 : -1;
}

/* Our SETTINGS to a leg, and the larger connection window. */
static int
send_settings(struct h2 *c, enum h2_leg leg)
{
	nghttp2_settings_entry iv[6];
	size_t n = 0;

	iv[n].settings_id = NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE;
	iv[n++].value = c->cfg.stream_window;
	iv[n].settings_id = NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE;
	iv[n++].value = (uint32_t)c->cfg.max_header_list;
	if (leg == H2_CLIENT) {
		iv[n].settings_id = NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS;
		iv[n++].value = c->cfg.max_streams;
	} else {
		iv[n].settings_id = NGHTTP2_SETTINGS_ENABLE_PUSH;
		iv[n++].value = 0;
	}
	if (nghttp2_submit_settings(c->leg[leg].s, NGHTTP2_FLAG_NONE, iv, n) != 0)
		return -1;
	if (c->cfg.conn_window > 65535 && nghttp2_session_set_local_window_size(
	    c->leg[leg].s, NGHTTP2_FLAG_NONE, 0, (int32_t)c->cfg.conn_window) != 0)
		return -1;
	return 0;
}

struct h2 *
h2_new(const struct h2_config *cfg, char *err, size_t errlen)
{
	struct h2_config d;
	struct h2 *c;

	h2_config_default(&d);
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->cfg = *cfg;
#define DEF(f) do { if (c->cfg.f == 0) c->cfg.f = d.f; } while (0)
	DEF(body_cap);
	DEF(record_budget);
	DEF(max_streams);
	DEF(stream_window);
	DEF(conn_window);
	DEF(max_header_list);
	DEF(max_fields);
	DEF(stall_us);
	DEF(mem_limit);
	DEF(ctrl_burst);
	DEF(ctrl_rate);
#undef DEF
	if (c->cfg.stream_window > NGHTTP2_MAX_WINDOW_SIZE)
		c->cfg.stream_window = NGHTTP2_MAX_WINDOW_SIZE;
	if (c->cfg.conn_window > NGHTTP2_MAX_WINDOW_SIZE)
		c->cfg.conn_window = NGHTTP2_MAX_WINDOW_SIZE;
	snprintf(c->scheme, sizeof(c->scheme), "%s",
	    cfg->scheme != NULL ? cfg->scheme : "https");
	snprintf(c->default_authority, sizeof(c->default_authority), "%s",
	    cfg->default_authority != NULL ? cfg->default_authority : "");
	c->cfg.scheme = c->scheme;
	c->cfg.default_authority = c->default_authority;
	c->mem.limit = c->cfg.mem_limit;
	c->ngmem.mem_user_data = &c->mem;
	c->ngmem.malloc = ng_malloc;
	c->ngmem.free = ng_free;
	c->ngmem.calloc = ng_calloc;
	c->ngmem.realloc = ng_realloc;
	TAILQ_INIT(&c->streams);
	TAILQ_INIT(&c->dead);
	c->leg[H2_CLIENT].tokens_milli = (uint64_t)c->cfg.ctrl_burst * 1000;
	c->leg[H2_UPSTREAM].tokens_milli = (uint64_t)c->cfg.ctrl_burst * 1000;
	if (new_session(c, H2_CLIENT) == -1 ||
	    new_session(c, H2_UPSTREAM) == -1 ||
	    send_settings(c, H2_CLIENT) == -1 ||
	    send_settings(c, H2_UPSTREAM) == -1) {
		snprintf(err, errlen, "cannot set up the HTTP/2 sessions");
		h2_free(c, 0, NULL);
		return NULL;
	}
	return c;
}

/*
 * The client leg's output (our SETTINGS first) is held until the origin's
 * SETTINGS came (or the upstream leg is gone), so that extended CONNECT
 * is advertised in the same flight when the origin offers it.
 */
static void
maybe_client_settings(struct h2 *c)
{
	struct leg *u = &c->leg[H2_UPSTREAM];

	if (c->client_settings_sent)
		return;
	if (!c->up_settings_seen && !u->failed && !u->eof && !u->goaway_in)
		return;
	c->client_settings_sent = true;
}

/* --- I/O ------------------------------------------------------------------------- */

static void
leg_failed(struct h2 *c, enum h2_leg leg, ssize_t rv)
{
	struct leg *l = &c->leg[leg];

	if (l->failed)
		return;
	l->failed = true;
	if (c->mem.refused)
		fail_conn(c, "%s connection over its memory budget (%zu bytes)",
		    leg_name[leg], c->cfg.mem_limit);
	else if (rv == NGHTTP2_ERR_FLOODED)
		fail_conn(c, "%s flooded us (frames we had to answer piled up)",
		    leg_name[leg]);
	else if (l->liberr[0] != '\0')
		fail_conn(c, "%s broke HTTP/2: %s (%s)", leg_name[leg],
		    l->liberr, nghttp2_strerror((int)rv));
	else
		fail_conn(c, "%s broke HTTP/2: %s", leg_name[leg],
		    nghttp2_strerror((int)rv));
	fail_both(c, leg, NGHTTP2_PROTOCOL_ERROR);
}

int
h2_feed(struct h2 *c, enum h2_leg from, const uint8_t *buf, size_t len,
    uint64_t now_us)
{
	struct leg *l = &c->leg[from];
	ssize_t rv;

	c->now_us = now_us;
	if (l->tokens_us == 0)
		l->tokens_us = now_us;
	if (l->failed || c->error[0] != '\0') {
		sweep(c);
		return -1;
	}
	if (l->eof)
		return 0;
	if (len > 0) {
		rv = nghttp2_session_mem_recv(l->s, buf, len);
		if (rv < 0)
			leg_failed(c, from, rv);
		else if ((size_t)rv != len)
			leg_failed(c, from, NGHTTP2_ERR_PROTO);
	}
	if (from == H2_UPSTREAM)
		maybe_client_settings(c);
	sweep(c);
	return l->failed || c->error[0] != '\0' ? -1 : 0;
}

void
h2_eof(struct h2 *c, enum h2_leg from, uint64_t now_us)
{
	struct leg *l = &c->leg[from];
	struct stream *s, *tmp;

	c->now_us = now_us;
	if (l->eof)
		return;
	l->eof = true;
	TAILQ_FOREACH_SAFE(s, &c->streams, e, tmp) {
		if (from == H2_CLIENT) {
			set_error(s, "client closed the connection");
			s->c_closed = true;
			rst_upstream(c, s, NGHTTP2_CANCEL);
		} else {
			set_error(s, "server closed the connection");
			s->u_closed = true;
			discard(c, s, UP);
			if (!s->resp_submitted)
				answer_client(c, s, 502);
			else if (!s->end[DOWN])
				rst_client(c, s, NGHTTP2_INTERNAL_ERROR);
			/* else: what is buffered still goes out. */
		}
		settle(c, s);
	}
	if (from == H2_UPSTREAM) {
		maybe_client_settings(c);
		if (!c->leg[H2_CLIENT].failed)
			(void)nghttp2_submit_goaway(c->leg[H2_CLIENT].s,
			    NGHTTP2_FLAG_NONE,
			    nghttp2_session_get_last_proc_stream_id(
			    c->leg[H2_CLIENT].s), NGHTTP2_NO_ERROR, NULL, 0);
	} else if (!c->leg[H2_UPSTREAM].failed)
		(void)nghttp2_session_terminate_session(c->leg[H2_UPSTREAM].s,
		    NGHTTP2_NO_ERROR);
	sweep(c);
}

static void
fill(struct h2 *c, enum h2_leg to)
{
	struct leg *l = &c->leg[to];
	const uint8_t *d;
	ssize_t n;
	size_t i;

	if (to == H2_CLIENT && !c->client_settings_sent)
		return;
	while (l->out.len < OUT_HIGH && !l->eof) {
		n = nghttp2_session_mem_send(l->s, &d);
		if (n < 0) {
			leg_failed(c, to, n);
			return;
		}
		if (n == 0)
			return;
		if (dbuf_add(c, &l->out, d, (size_t)n) == -1) {
			fail_conn(c, "%s connection over its memory budget "
			    "(%zu bytes)", leg_name[to], c->cfg.mem_limit);
			l->failed = true;
			fail_both(c, to, NGHTTP2_INTERNAL_ERROR);
			return;
		}
		l->appended += (uint64_t)n;
		for (i = l->gb_len; i > 0; i--) {
			struct giveback *g =
			    &l->gb[(l->gb_head + i - 1) % l->gb_cap];

			if (g->at != UINT64_MAX)
				break;
			g->at = l->appended;
		}
	}
}

size_t
h2_output(struct h2 *c, enum h2_leg to, const uint8_t **p)
{
	struct leg *l = &c->leg[to];

	if (!l->failed || l->out.len == 0)
		fill(c, to);
	sweep(c);
	*p = l->out.p != NULL ? l->out.p + l->out.off : NULL;
	return l->out.len;
}

void
h2_output_done(struct h2 *c, enum h2_leg to, size_t n, uint64_t now_us)
{
	struct leg *l = &c->leg[to];
	nghttp2_session *src = c->leg[to == H2_CLIENT ? H2_UPSTREAM :
	    H2_CLIENT].s;

	c->now_us = now_us;
	if (n > l->out.len)
		n = l->out.len;
	dbuf_take(&l->out, n);
	l->written += n;
	/* What went out gives its sender room again (nghttpx's model). */
	while (l->gb_len > 0) {
		struct giveback *g = &l->gb[l->gb_head];

		if (g->at == UINT64_MAX || g->at > l->written)
			break;
		(void)nghttp2_session_consume(src, g->sid, g->n);
		l->gb_head = (l->gb_head + 1) % l->gb_cap;
		l->gb_len--;
	}
	if (l->out.len == 0 && l->out.cap > OUT_HIGH * 2)
		dbuf_free(c, &l->out);
	sweep(c);
}

bool
h2_want_read(const struct h2 *c, enum h2_leg from)
{
	const struct leg *l = &c->leg[from];

	return !l->failed && !l->eof && c->error[0] == '\0' &&
	    nghttp2_session_want_read(l->s);
}

bool
h2_done(const struct h2 *c)
{
	int i;

	for (i = 0; i < 2; i++) {
		const struct leg *l = &c->leg[i];

		if (l->out.len > 0 && !l->eof)
			return false;
		if (l->failed || l->eof)
			continue;
		if (i == H2_CLIENT && !c->client_settings_sent)
			return false;
		if (nghttp2_session_want_read(l->s) ||
		    nghttp2_session_want_write(l->s))
			return false;
	}
	return true;
}

uint64_t
h2_next_deadline(const struct h2 *c)
{
	const struct stream *s;
	uint64_t next = 0, t;
	int d;

	TAILQ_FOREACH(s, &c->streams, e)
		for (d = 0; d < 2; d++) {
			if (s->buf[d].len == 0)
				continue;
			t = s->moved_us[d] + c->cfg.stall_us;
			if (next == 0 || t < next)
				next = t;
		}
	return next;
}

void
h2_tick(struct h2 *c, uint64_t now_us)
{
	struct stream *s, *tmp;
	int d;

	c->now_us = now_us;
	TAILQ_FOREACH_SAFE(s, &c->streams, e, tmp)
		for (d = 0; d < 2; d++) {
			if (s->buf[d].len == 0 ||
			    now_us < s->moved_us[d] + c->cfg.stall_us)
				continue;
			set_error(s, "stalled: the %s read nothing for %llu s",
			    d == UP ? "server" : "client",
			    (unsigned long long)(c->cfg.stall_us / 1000000));
			c->st.stalled++;
			rst_upstream(c, s, NGHTTP2_CANCEL);
			rst_client(c, s, NGHTTP2_CANCEL);
			break;
		}
	sweep(c);
}

const char *
h2_error(const struct h2 *c)
{
	return c->error[0] != '\0' ? c->error : NULL;
}

bool
h2_upstream_connect_protocol(const struct h2 *c)
{
	return c->up_connect_protocol;
}

void
h2_get_stats(const struct h2 *c, struct h2_stats *st)
{
	*st = c->st;
	st->mem = c->mem.used;
	st->mem_peak = c->mem.peak;
}

void
h2_free(struct h2 *c, uint64_t now_us, const char *why)
{
	struct stream *s, *tmp;
	int i;

	if (c == NULL)
		return;
	c->now_us = now_us;
	TAILQ_FOREACH_SAFE(s, &c->streams, e, tmp) {
		set_error(s, "%s", why != NULL ? why : c->error[0] != '\0' ?
		    c->error : "connection closed");
		s->c_closed = s->u_closed = true;
		settle(c, s);
	}
	sweep(c);
	for (i = 0; i < 2; i++) {
		nghttp2_session_del(c->leg[i].s);
		dbuf_free(c, &c->leg[i].out);
		mem_free(&c->mem, c->leg[i].gb);
	}
	free(c);
}
