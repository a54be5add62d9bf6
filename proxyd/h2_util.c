/*
 * The HTTP/2 layer's plumbing (see h2_int.h): the per-connection memory
 * budget nghttp2 allocates through too, header lists, byte buffers, gRPC
 * message framing, and turning a finished stream into a store_http.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "proxyd/h2_int.h"
#include "proxyd/membudget.h"

const char *const h2_leg_name[2] = { "client", "server" };

/* --- memory: one budget for the connection, nghttp2 included ----------- */

/*
 * A size prefix, aligned for anything.  n + MEM_HDR is what an allocation
 * counts, in the connection's cap and in proxyd's budget alike, so that
 * each returns to where it was once everything is freed.  proxyd's budget
 * is charged whether or not it has room (membudget_force): nghttp2 cannot
 * run without its memory, the per-connection cap and the windows bound
 * it, and the layer holds back reading instead (h2_want_read).
 */
#define MEM_HDR	16

void *
h2_mem_alloc(struct h2mem *m, size_t n)
{
	uint8_t *p;

	if (n > m->limit || m->used + n + MEM_HDR > m->limit) {
		m->refused = true;
		return NULL;
	}
	if ((p = malloc(n + MEM_HDR)) == NULL) {
		m->nomem = true;
		return NULL;
	}
	memcpy(p, &n, sizeof(n));
	m->used += n + MEM_HDR;
	if (m->used > m->peak)
		m->peak = m->used;
	membudget_force(m->budget, n + MEM_HDR);
	return p + MEM_HDR;
}

void
h2_mem_free(struct h2mem *m, void *ptr)
{
	uint8_t *p = ptr;
	size_t n;

	if (p == NULL)
		return;
	p -= MEM_HDR;
	memcpy(&n, p, sizeof(n));
	m->used -= n + MEM_HDR;
	membudget_give(m->budget, n + MEM_HDR);
	free(p);
}

void *
h2_mem_calloc(struct h2mem *m, size_t nmemb, size_t size)
{
	void *p;

	if (size != 0 && nmemb > SIZE_MAX / 2 / size)
		return NULL;
	if ((p = h2_mem_alloc(m, nmemb * size)) != NULL)
		memset(p, 0, nmemb * size);
	return p;
}

void *
h2_mem_realloc(struct h2mem *m, void *ptr, size_t n)
{
	uint8_t *np;
	size_t old;

	if (ptr == NULL)
		return h2_mem_alloc(m, n);
	memcpy(&old, (uint8_t *)ptr - MEM_HDR, sizeof(old));
	if (n > old && (n > m->limit || m->used + (n - old) > m->limit)) {
		m->refused = true;
		return NULL;
	}
	if ((np = realloc((uint8_t *)ptr - MEM_HDR, n + MEM_HDR)) == NULL) {
		m->nomem = true;
		return NULL;
	}
	memcpy(np, &n, sizeof(n));
	m->used = m->used - old + n;
	if (m->used > m->peak)
		m->peak = m->used;
	if (n > old)
		membudget_force(m->budget, n - old);
	else
		membudget_give(m->budget, old - n);
	return np + MEM_HDR;
}

static void *ng_malloc(size_t n, void *u) { return h2_mem_alloc(u, n); }
static void ng_free(void *p, void *u) { h2_mem_free(u, p); }
static void *ng_calloc(size_t a, size_t b, void *u) { return h2_mem_calloc(u, a, b); }
static void *ng_realloc(void *p, size_t n, void *u) { return h2_mem_realloc(u, p, n); }

void
h2_mem_init(struct h2mem *m, nghttp2_mem *ng, size_t limit,
    struct membudget *budget)
{
	memset(m, 0, sizeof(*m));
	m->limit = limit;
	m->budget = budget;
	ng->mem_user_data = m;
	ng->malloc = ng_malloc;
	ng->free = ng_free;
	ng->calloc = ng_calloc;
	ng->realloc = ng_realloc;
}

/* Whether proxyd's budget is short of room for buffers. */
bool
h2_budget_tight(const struct h2 *c)
{
	return c->cfg.budget != NULL &&
	    !membudget_can_take(c->cfg.budget, BUDGET_MARGIN);
}

/* --- small helpers ------------------------------------------------------------ */

void
h2_fail_conn(struct h2 *c, const char *fmt, ...)
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

void
h2_set_error(struct stream *s, const char *fmt, ...)
{
	va_list ap;

	if (s->error[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(s->error, sizeof(s->error), fmt, ap);
	va_end(ap);
}

const char *
h2_code_name(uint32_t code)
{
	return nghttp2_http2_strerror(code);
}

void
h2_hlist_clear(struct h2 *c, struct hlist *h)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		h2_mem_free(&c->mem, (void *)(uintptr_t)h->f[i].name);
	h2_mem_free(&c->mem, h->f);
	memset(h, 0, sizeof(*h));
}

int
h2_hlist_add(struct h2 *c, struct hlist *h, const uint8_t *name, size_t nlen,
    const uint8_t *value, size_t vlen)
{
	struct http_field *nf;
	char *p;

	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 16;

		if ((nf = h2_mem_realloc(&c->mem, h->f, cap * sizeof(*nf))) == NULL)
			return -1;
		h->f = nf;
		h->cap = cap;
	}
	if ((p = h2_mem_alloc(&c->mem, nlen + vlen + 2)) == NULL)
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

const struct http_field *
h2_hlist_get(const struct hlist *h, const char *name)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		if (strcasecmp(h->f[i].name, name) == 0)
			return &h->f[i];
	return NULL;
}

/* The fields as nghttp2 wants them (pointing into h). */
nghttp2_nv *
h2_hlist_nv(struct h2 *c, const struct hlist *h)
{
	nghttp2_nv *nv;
	size_t i;

	if ((nv = h2_mem_calloc(&c->mem, h->n ? h->n : 1, sizeof(*nv))) == NULL)
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

void
h2_dbuf_free(struct h2 *c, struct dbuf *b)
{
	h2_mem_free(&c->mem, b->p);
	memset(b, 0, sizeof(*b));
}

int
h2_dbuf_add(struct h2 *c, struct dbuf *b, const uint8_t *p, size_t n)
{
	uint8_t *np;
	size_t cap;

	if (b->off > 0 && b->cap - b->off - b->len < n) {
		memmove(b->p, b->p + b->off, b->len);
		b->off = 0;
	}
	if (b->cap - b->off - b->len < n) {
		cap = b->cap ? b->cap : 4096;
		while (cap - b->len < n)
			cap *= 2;
		if ((np = h2_mem_realloc(&c->mem, b->p, cap)) == NULL)
			return -1;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->off + b->len, p, n);
	b->len += n;
	return 0;
}

void
h2_dbuf_take(struct dbuf *b, size_t n)
{
	b->off += n;
	b->len -= n;
	if (b->len == 0)
		b->off = 0;
}

/*
 * An empty buffer is freed when it is larger than keep, or whenever
 * proxyd's budget is tight (a connection with many streams would
 * otherwise keep a buffer for each).
 */
void
h2_dbuf_trim(struct h2 *c, struct dbuf *b, size_t keep)
{
	if (b->len == 0 && b->p != NULL &&
	    (b->cap > keep || h2_budget_tight(c)))
		h2_dbuf_free(c, b);
}

/* DATA bytes of direction dir now wait in a stream's buffer (or no longer). */
void
h2_buffered_add(struct h2 *c, int dir, size_t n)
{
	c->waiting[dir] += n;
	c->st.buffered += n;
	if (c->st.buffered > c->st.buffered_peak)
		c->st.buffered_peak = c->st.buffered;
}

void
h2_buffered_sub(struct h2 *c, int dir, size_t n)
{
	c->waiting[dir] -= n;
	c->st.buffered -= n;
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

/* The record of a body stops here, marked cut by a memory budget. */
static void
rec_cut(struct h2 *c, struct rbody *b)
{
	if (!b->budget_cut)
		c->st.budget_cut++;
	b->budget_cut = true;
}

/*
 * Keeps what fits of a body for the record: up to body_cap, within the
 * connection's record_budget, with every byte of capacity charged to
 * proxyd's budget at its soft tier (membudget_take_soft).  When either
 * budget is spent the body stops where it is (a prefix, never one with a
 * hole), marked so; the stream goes on.
 */
void
h2_rec_add(struct h2 *c, struct stream *s, int dir, const uint8_t *p, size_t n)
{
	struct rbody *b = &s->rec[dir];
	size_t take, cap = c->cfg.body_cap, want;
	uint8_t *np;

	b->size += n;
	if (s->grpc)
		h2_grpc_feed(&s->gf[dir], p, n);
	if (b->len >= cap || b->budget_cut || n == 0)
		return;
	take = n < cap - b->len ? n : cap - b->len;
	if (c->recorded + take > c->cfg.record_budget) {
		take = c->recorded < c->cfg.record_budget ?
		    c->cfg.record_budget - c->recorded : 0;
		rec_cut(c, b);
		if (take == 0)
			return;
	}
	if (b->cap - b->len < take) {
		want = b->cap ? b->cap : 4096;
		while (want - b->len < take)
			want *= 2;
		if (want > cap)
			want = cap;
		/* Recording is not relaying: plain malloc, outside the
		 * connection's cap, but charged to proxyd's budget. */
		if (!membudget_take_soft(c->cfg.budget, want - b->cap)) {
			rec_cut(c, b);
			return;
		}
		if ((np = realloc(b->p, want)) == NULL) {
			membudget_give(c->cfg.budget, want - b->cap);
			rec_cut(c, b);
			return;
		}
		b->p = np;
		b->cap = want;
	}
	memcpy(b->p + b->len, p, take);
	b->len += take;
	c->recorded += take;
}

/* A stream's record is gone: its memory goes back to the budgets. */
void
h2_rec_free(struct h2 *c, struct rbody *b)
{
	c->recorded -= b->len;
	membudget_give(c->cfg.budget, b->cap);
	free(b->p);
	memset(b, 0, sizeof(*b));
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

const char *
h2_pseudo(const struct hlist *h, const char *name)
{
	const struct http_field *f = h2_hlist_get(h, name);

	return f != NULL ? f->value : NULL;
}

void
h2_emit(struct h2 *c, struct stream *s)
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
	h.scheme = h2_pseudo(&s->req, ":scheme");
	if (h.scheme == NULL)
		h.scheme = c->scheme;
	method = h2_pseudo(&s->req, ":method");
	h.method = method != NULL ? method : "";
	authority = h2_pseudo(&s->req, ":authority");
	if (authority == NULL)
		authority = h2_pseudo(&s->req, "host");
	h.host = authority != NULL ? authority : c->default_authority;
	h.target = h2_pseudo(&s->req, ":path");
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
	h.req_body_budget_cut = s->rec[UP].budget_cut;
	h.resp_body_size = s->rec[DOWN].size;
	h.resp_body = s->rec[DOWN].p;
	h.resp_body_len = s->rec[DOWN].len;
	h.resp_body_budget_cut = s->rec[DOWN].budget_cut;
	h.req_start_us = s->req_start_us;
	h.req_end_us = s->req_end_us;
	h.resp_start_us = s->resp_start_us;
	h.resp_end_us = s->resp_end_us;
	h.error = s->error[0] != '\0' ? s->error : NULL;
	if (s->grpc) {
		memset(&g, 0, sizeof(g));
		g.status = -1;
		gs = h2_hlist_get(&s->resp_trl, "grpc-status");
		gm = h2_hlist_get(&s->resp_trl, "grpc-message");
		if (gs == NULL) {	/* trailers-only */
			gs = h2_hlist_get(&s->resp, "grpc-status");
			gm = h2_hlist_get(&s->resp, "grpc-message");
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
