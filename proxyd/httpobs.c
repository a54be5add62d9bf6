/*
 * The HTTP/1.1 observer of one flow (see httpobs.h and
 * docs/proxyd-relay.md, "HTTP exchanges").
 *
 * The request parser's message is gone as soon as the next request starts,
 * and with pipelining that happens before the response arrives, so each
 * request is copied (start line, fields, the kept part of its body) into an
 * exchange queued until its response ends.  The response's own fields are
 * used in place: an exchange is emitted at the response's END, while the
 * parser still holds them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "log.h"
#include "proxyd/httpobs.h"
#include "proxyd/membudget.h"

struct obody {
	uint8_t		*p;
	size_t		 len, cap;
	uint64_t	 size;		/* all bytes seen, kept or not */
	struct membudget *budget;	/* cap is charged to it */
	bool		 budget_cut;	/* kept less: the budget was spent */
};

struct xchg {
	STAILQ_ENTRY(xchg)	 e;
	uint32_t		 seq;
	enum http_method	 method_id;
	int			 version_minor;
	bool			 upgrade;	/* CONNECT / Upgrade asked */
	/* One allocation: the field array, then every string. */
	void			*blob;
	const char		*method, *target, *host;
	struct http_field	*fields;
	size_t			 nfields;
	struct obody		 body;
	uint64_t		 req_start_us, req_end_us, resp_start_us;
	size_t			 cost;		/* bytes of x and its blob */
};

struct httpobs {
	struct httpobs_config	 cfg;
	char			 scheme[8];
	char			 default_host[300];
	struct http_parser	 req, resp;
	STAILQ_HEAD(, xchg)	 q;		/* oldest request first */
	size_t			 nq;
	struct xchg		*cur_req;	/* request whose body is parsed */
	bool			 req_in_msg, resp_in_msg;
	uint64_t		 req_msg_start, resp_msg_start;
	bool			 req_paused;	/* after an Upgrade/CONNECT */
	/* The response to the head of q, once its final headers came. */
	bool			 resp_headers;
	int			 status;
	char			 reason[128];
	struct obody		 resp_body;
	uint32_t		 next_seq, emitted;
	/* State charged to cfg.budget (bodies are charged on their own). */
	size_t			 xchg_bytes;	/* requests waiting, copied */
	size_t			 charged;
	bool			 stopped;
};

static void
body_add(struct obody *b, struct membudget *budget, size_t cap,
    const uint8_t *data, size_t len)
{
	size_t take, want;
	uint8_t *np;

	b->size += len;
	if (b->len >= cap || b->budget_cut)
		return;
	take = len < cap - b->len ? len : cap - b->len;
	if (b->cap - b->len < take) {
		want = b->cap ? b->cap : 4096;
		while (want - b->len < take)
			want *= 2;
		if (want > cap)
			want = cap;
		/* Growth is charged; when the budget is spent the body
		 * stops here, marked so (the flow goes on). */
		if (!membudget_take_soft(budget, want - b->cap)) {
			b->budget_cut = true;
			return;
		}
		if ((np = realloc(b->p, want)) == NULL) {
			membudget_give(budget, want - b->cap);
			return;		/* kept less: the size says so */
		}
		b->p = np;
		b->cap = want;
		b->budget = budget;
	}
	memcpy(b->p + b->len, data, take);
	b->len += take;
}

static void
body_free(struct obody *b)
{
	membudget_give(b->budget, b->cap);
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static void
xchg_free(struct xchg *x)
{
	if (x == NULL)
		return;
	free(x->blob);
	body_free(&x->body);
	free(x);
}

/* Copy the request in p->msg (just parsed) into a new exchange. */
static struct xchg *
xchg_new(struct httpobs *o, const struct http_msg *m)
{
	const char *host = m->host != NULL ? m->host : o->default_host;
	size_t hostlen = strlen(host), need, i;
	struct xchg *x;
	char *s;

	need = m->nfields * sizeof(struct http_field) + m->method_len + 1 +
	    m->target_len + 1 + hostlen + 1;
	for (i = 0; i < m->nfields; i++)
		need += m->fields[i].name_len + 1 + m->fields[i].value_len + 1;
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return NULL;
	x->cost = sizeof(*x) + need;
	if ((x->blob = malloc(need)) == NULL) {
		free(x);
		return NULL;
	}
	x->fields = x->blob;
	x->nfields = m->nfields;
	s = (char *)(x->fields + m->nfields);
#define COPY(dst, src, n) do {					\
		memcpy(s, (src), (n));				\
		s[(n)] = '\0';					\
		(dst) = s;					\
		s += (n) + 1;					\
	} while (0)
	for (i = 0; i < m->nfields; i++) {
		COPY(x->fields[i].name, m->fields[i].name, m->fields[i].name_len);
		x->fields[i].name_len = m->fields[i].name_len;
		COPY(x->fields[i].value, m->fields[i].value,
		    m->fields[i].value_len);
		x->fields[i].value_len = m->fields[i].value_len;
	}
	COPY(x->method, m->method, m->method_len);
	COPY(x->target, m->target, m->target_len);
	COPY(x->host, host, hostlen);
#undef COPY
	x->seq = ++o->next_seq;
	x->method_id = m->method_id;
	x->version_minor = m->version_minor;
	x->upgrade = m->upgrade;
	x->req_start_us = o->req_msg_start;
	o->xchg_bytes += x->cost;
	return x;
}

/*
 * Record x (the head of the queue when resp_headers) and drop it.  resp is
 * the response message whose fields are still valid, or NULL.
 */
static void
emit(struct httpobs *o, struct xchg *x, const struct http_msg *resp,
    uint64_t now_us, const char *error)
{
	struct store_http h;
	bool answered = x == STAILQ_FIRST(&o->q) && o->resp_headers;

	memset(&h, 0, sizeof(h));
	h.seq = x->seq;
	h.scheme = o->scheme;
	h.method = x->method;
	h.target = x->target;
	h.host = x->host;
	h.version_minor = x->version_minor;
	h.req_fields = x->fields;
	h.n_req_fields = x->nfields;
	h.req_body_size = x->body.size;
	h.req_body = x->body.p;
	h.req_body_len = x->body.len;
	h.req_body_budget_cut = x->body.budget_cut;
	h.req_start_us = x->req_start_us;
	h.req_end_us = x->req_end_us;
	if (answered) {
		h.status = o->status;
		h.reason = o->reason;
		if (resp != NULL) {
			h.resp_fields = resp->fields;
			h.n_resp_fields = resp->nfields;
		}
		h.resp_body_size = o->resp_body.size;
		h.resp_body = o->resp_body.p;
		h.resp_body_len = o->resp_body.len;
		h.resp_body_budget_cut = o->resp_body.budget_cut;
		h.resp_start_us = x->resp_start_us;
		h.resp_end_us = now_us;
	}
	h.error = error;
	if (o->cfg.emit != NULL)
		o->cfg.emit(o->cfg.arg, &h);
	o->emitted++;
	if (answered) {
		o->resp_headers = false;
		body_free(&o->resp_body);
	}
	if (x == STAILQ_FIRST(&o->q)) {
		STAILQ_REMOVE_HEAD(&o->q, e);
		o->nq--;
	}
	if (o->cur_req == x)
		o->cur_req = NULL;
	o->xchg_bytes -= x->cost;
	xchg_free(x);
}

/*
 * Observation ends: what is pending is recorded with why (NULL: quietly,
 * after an upgrade), the parsers' memory goes.  Always -1, for the callers.
 */
static int
stop(struct httpobs *o, uint64_t now_us, const char *why, bool resp_valid)
{
	struct xchg *x;

	if (o->stopped)
		return -1;
	o->stopped = true;
	while ((x = STAILQ_FIRST(&o->q)) != NULL)
		emit(o, x, resp_valid ? &o->resp.msg : NULL, now_us,
		    why != NULL ? why : "not observed after an upgrade");
	http_parser_free(&o->req);
	http_parser_free(&o->resp);
	body_free(&o->resp_body);
	return -1;
}

static int
stop_error(struct httpobs *o, uint64_t now_us, const char *side,
    enum http_error err)
{
	char why[96];

	snprintf(why, sizeof(why), "%s: %s", side, http_error_str(err));
	log_debug("flow %llu: HTTP not observed any more (%s)",
	    (unsigned long long)o->cfg.flow_id, why);
	return stop(o, now_us, why, false);
}

struct httpobs *
httpobs_new(const struct httpobs_config *cfg)
{
	struct httpobs *o;

	if ((o = calloc(1, sizeof(*o))) == NULL)
		return NULL;
	o->cfg = *cfg;
	if (o->cfg.body_cap == 0)
		o->cfg.body_cap = STORE_DEFAULT_BODY_CAP;
	if (o->cfg.max_pending == 0)
		o->cfg.max_pending = HTTPOBS_DEFAULT_MAX_PENDING;
	snprintf(o->scheme, sizeof(o->scheme), "%s",
	    cfg->scheme != NULL ? cfg->scheme : "http");
	snprintf(o->default_host, sizeof(o->default_host), "%s",
	    cfg->default_host != NULL ? cfg->default_host : "");
	o->cfg.scheme = o->scheme;
	o->cfg.default_host = o->default_host;
	http_parser_init(&o->req, HTTP_REQUEST, NULL);
	http_parser_init(&o->resp, HTTP_RESPONSE, NULL);
	STAILQ_INIT(&o->q);
	return o;
}

static int
feed_requests(struct httpobs *o, const uint8_t *buf, size_t len,
    uint64_t now_us)
{
	const uint8_t *data;
	size_t used, dlen;
	struct xchg *x;

	if (o->req_paused)
		return 0;	/* after Upgrade/CONNECT: not ours to parse */
	for (;;) {
		if (len > 0 && !o->req_in_msg) {
			o->req_in_msg = true;
			o->req_msg_start = now_us;
		}
		switch (http_parse(&o->req, buf, len, &used, &data, &dlen)) {
		case HTTP_EV_NEED_MORE:
			return 0;
		case HTTP_EV_HEADERS:
			if (o->nq >= o->cfg.max_pending) {
				log_debug("flow %llu: HTTP not observed any more "
				    "(more than %zu requests unanswered)",
				    (unsigned long long)o->cfg.flow_id, o->nq);
				return stop(o, now_us, "too many requests "
				    "without a response", false);
			}
			if ((x = xchg_new(o, &o->req.msg)) == NULL)
				return stop(o, now_us, "out of memory", false);
			STAILQ_INSERT_TAIL(&o->q, x, e);
			o->nq++;
			o->cur_req = x;
			break;
		case HTTP_EV_BODY:
			if (o->cur_req != NULL)
				body_add(&o->cur_req->body, o->cfg.budget, o->cfg.body_cap, data,
				    dlen);
			break;
		case HTTP_EV_END:
			if (o->cur_req != NULL)
				o->cur_req->req_end_us = now_us;
			o->cur_req = NULL;
			o->req_in_msg = false;
			break;
		case HTTP_EV_PAUSED:
		case HTTP_EV_UPGRADE:
			o->req_paused = true;
			return 0;
		case HTTP_EV_ERROR:
			return stop_error(o, now_us, "request", o->req.error);
		}
		buf += used;
		len -= used;
	}
}

/* A response message ended (or switched protocols): the head is done. */
static int
response_done(struct httpobs *o, uint64_t now_us, bool upgraded)
{
	struct xchg *x = STAILQ_FIRST(&o->q);
	bool was_upgrade = x->upgrade;

	emit(o, x, &o->resp.msg, now_us, NULL);
	o->resp_in_msg = false;
	/* The request side is paused for good after an Upgrade/CONNECT. */
	if (upgraded || was_upgrade)
		return stop(o, now_us, NULL, false);
	return 0;
}

static int
response_event(struct httpobs *o, enum http_event ev, const uint8_t *data,
    size_t dlen, uint64_t now_us)
{
	const struct http_msg *m = &o->resp.msg;
	struct xchg *x = STAILQ_FIRST(&o->q);

	switch (ev) {
	case HTTP_EV_NEED_MORE:
	case HTTP_EV_PAUSED:
		return 0;
	case HTTP_EV_HEADERS:
		if (m->interim)
			return 0;	/* 100 Continue &c.: the final one follows */
		o->resp_headers = true;
		o->status = m->status;
		snprintf(o->reason, sizeof(o->reason), "%.*s",
		    (int)(m->reason_len < sizeof(o->reason) ? m->reason_len :
		    sizeof(o->reason) - 1), m->reason != NULL ? m->reason : "");
		x->resp_start_us = o->resp_msg_start;
		body_free(&o->resp_body);
		return 0;
	case HTTP_EV_BODY:
		body_add(&o->resp_body, o->cfg.budget, o->cfg.body_cap, data,
		    dlen);
		return 0;
	case HTTP_EV_END:
		if (!o->resp_headers) {		/* an interim response */
			o->resp_in_msg = false;
			return 0;
		}
		return response_done(o, now_us, false);
	case HTTP_EV_UPGRADE:
		return response_done(o, now_us, true);
	case HTTP_EV_ERROR:
		break;
	}
	return stop_error(o, now_us, "response", o->resp.error);
}

static int
feed_responses(struct httpobs *o, const uint8_t *buf, size_t len,
    uint64_t now_us)
{
	const uint8_t *data;
	size_t used, dlen;
	enum http_event ev;

	for (;;) {
		if (len > 0 && !o->resp_in_msg) {
			struct xchg *x = STAILQ_FIRST(&o->q);

			if (x == NULL) {
				log_debug("flow %llu: HTTP not observed any more "
				    "(a response without a request)",
				    (unsigned long long)o->cfg.flow_id);
				return stop(o, now_us, NULL, false);
			}
			http_parser_set_request_method(&o->resp, x->method_id);
			o->resp_in_msg = true;
			o->resp_msg_start = now_us;
		}
		ev = http_parse(&o->resp, buf, len, &used, &data, &dlen);
		if (ev == HTTP_EV_NEED_MORE)
			return 0;
		if (response_event(o, ev, data, dlen, now_us) == -1)
			return -1;
		buf += used;
		len -= used;
	}
}

static size_t
parser_bytes(const struct http_parser *p)
{
	return p->head_cap + p->trail_cap + (p->fields_cap + p->tfields_cap) *
	    sizeof(struct http_field);
}

/*
 * The observer's own state (parsers' header buffers, requests waiting for
 * their responses) is charged to the budget as it is, never refused: the
 * parsers' limits bound it, and the budget's other users yield to it.
 */
static int
recharge(struct httpobs *o, int rc)
{
	size_t now = o->xchg_bytes;

	if (!o->stopped)
		now += parser_bytes(&o->req) + parser_bytes(&o->resp);
	if (now > o->charged)
		membudget_force(o->cfg.budget, now - o->charged);
	else
		membudget_give(o->cfg.budget, o->charged - now);
	o->charged = now;
	return rc;
}

int
httpobs_feed(struct httpobs *o, enum httpobs_dir dir, const uint8_t *buf,
    size_t len, uint64_t now_us)
{
	if (o->stopped)
		return -1;
	if (len == 0)
		return 0;
	return recharge(o, dir == HTTPOBS_CLIENT ?
	    feed_requests(o, buf, len, now_us) :
	    feed_responses(o, buf, len, now_us));
}

int
httpobs_eof(struct httpobs *o, enum httpobs_dir dir, uint64_t now_us)
{
	if (o->stopped)
		return -1;
	if (dir == HTTPOBS_CLIENT) {
		/* A request cut short gets no response: recorded at the end. */
		if (!o->req_paused)
			(void)http_parse_eof(&o->req);
		return 0;
	}
	if (!o->resp_in_msg)
		return 0;
	return recharge(o, response_event(o, http_parse_eof(&o->resp), NULL, 0,
	    now_us));
}

uint32_t
httpobs_count(const struct httpobs *o)
{
	return o->emitted;
}

bool
httpobs_stopped(const struct httpobs *o)
{
	return o->stopped;
}

void
httpobs_free(struct httpobs *o, uint64_t now_us, const char *why)
{
	if (o == NULL)
		return;
	if (!o->stopped && o->resp_headers)
		emit(o, STAILQ_FIRST(&o->q), o->resp.error == HTTP_OK ?
		    &o->resp.msg : NULL, now_us, why != NULL ? why :
		    "connection closed before the response ended");
	(void)stop(o, now_us, why != NULL ? why :
	    "connection closed before a response", false);
	membudget_give(o->cfg.budget, o->charged);
	free(o);
}
