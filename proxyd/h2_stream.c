/*
 * The HTTP/2 layer's streams (see h2.h, h2_int.h, docs/proxyd-h2.md).
 *
 * Call chain: h2_feed -> nghttp2_session_mem_recv -> the on_* callbacks
 * below, which submit to the *other* session (a request upstream, a
 * response to the client, RST_STREAM / GOAWAY mapped across) and buffer
 * DATA in the stream; h2_output -> nghttp2_session_mem_send -> read_body
 * (the data provider), which takes buffered DATA and notes what to hand
 * back to the sender's window once those bytes are written (h2.c).
 *
 * A stream lives until both sessions are done with it (on_stream_close
 * from each, or the upstream never opened it); it is then recorded and
 * freed.  Structures are never freed inside an nghttp2 callback: a dead
 * stream waits on a list swept when the public call returns.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "proxyd/h2_int.h"

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
void
h2_discard(struct h2 *c, struct stream *s, int dir)
{
	struct dbuf *b = &s->buf[dir];
	nghttp2_session *src = c->leg[dir == UP ? H2_CLIENT : H2_UPSTREAM].s;
	int32_t sid = dir == UP ? s->csid : s->usid;

	if (b->len > 0) {
		h2_buffered_sub(c, dir, b->len);
		if (sid > 0)
			(void)nghttp2_session_consume(src, sid, b->len);
		else
			(void)nghttp2_session_consume_connection(src, b->len);
	}
	h2_dbuf_free(c, b);
}

/* Done with s on both legs: record it and free it at the next sweep. */
void
h2_settle(struct h2 *c, struct stream *s)
{
	if (s->dead || !s->c_closed || !s->u_closed)
		return;
	if (c->failed_all) {
		/* Recorded already; both sessions may still name it while
		 * they write their GOAWAYs. */
		h2_emit(c, s);
		return;
	}
	s->dead = true;
	h2_discard(c, s, UP);
	h2_discard(c, s, DOWN);
	if (s->resp_end_us == 0 && s->resp_final)
		s->resp_end_us = c->now_us;
	h2_emit(c, s);
	TAILQ_REMOVE(&c->streams, s, e);
	TAILQ_INSERT_TAIL(&c->dead, s, e);
	c->nstreams--;
	c->st.active = c->nstreams;
}

void
h2_stream_free(struct h2 *c, struct stream *s)
{
	int i;

	h2_hlist_clear(c, &s->req);
	h2_hlist_clear(c, &s->req_trl);
	h2_hlist_clear(c, &s->resp);
	h2_hlist_clear(c, &s->resp_trl);
	for (i = 0; i < 2; i++) {
		h2_dbuf_free(c, &s->buf[i]);
		h2_rec_free(c, &s->rec[i]);
	}
	h2_mem_free(&c->mem, s);
}

void
h2_sweep(struct h2 *c)
{
	struct stream *s;

	while ((s = TAILQ_FIRST(&c->dead)) != NULL) {
		TAILQ_REMOVE(&c->dead, s, e);
		h2_stream_free(c, s);
	}
}

/* Reset s on the client leg (if still open there) with code. */
void
h2_rst_client(struct h2 *c, struct stream *s, uint32_t code)
{
	if (s->c_closed || c->leg[H2_CLIENT].failed)
		return;
	(void)nghttp2_submit_rst_stream(c->leg[H2_CLIENT].s, NGHTTP2_FLAG_NONE,
	    s->csid, code);
	h2_discard(c, s, DOWN);
}

void
h2_rst_upstream(struct h2 *c, struct stream *s, uint32_t code)
{
	if (s->u_closed)
		return;
	if (s->usid <= 0 || c->leg[H2_UPSTREAM].failed) {
		s->u_closed = true;
		h2_discard(c, s, UP);
		return;
	}
	(void)nghttp2_submit_rst_stream(c->leg[H2_UPSTREAM].s,
	    NGHTTP2_FLAG_NONE, s->usid, code);
	h2_discard(c, s, UP);
}

/*
 * Answer the client ourselves (431, 502, …) with no body, when nothing of
 * the response went to it yet.
 */
void
h2_answer_client(struct h2 *c, struct stream *s, int status)
{
	char num[8];
	nghttp2_nv nv[1];

	if (s->c_closed || s->resp_submitted || c->leg[H2_CLIENT].failed) {
		h2_rst_client(c, s, NGHTTP2_INTERNAL_ERROR);
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
		h2_rst_client(c, s, NGHTTP2_INTERNAL_ERROR);
	h2_discard(c, s, DOWN);
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
		struct giveback *ng = h2_mem_alloc(&c->mem, cap * sizeof(*ng));

		if (ng == NULL) {
			/* Give it back at once: memory beats precision. */
			(void)nghttp2_session_consume(
			    c->leg[l == &c->leg[H2_CLIENT] ? H2_UPSTREAM :
			    H2_CLIENT].s, sid, n);
			return;
		}
		for (i = 0; i < l->gb_len; i++)
			ng[i] = l->gb[(l->gb_head + i) % l->gb_cap];
		h2_mem_free(&c->mem, l->gb);
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
		h2_dbuf_take(b, n);
		h2_dbuf_trim(c, b, SIZE_MAX);
		h2_buffered_sub(c, dir, n);
		giveback_push(c, &c->leg[to], dir == UP ? s->csid : s->usid, n);
		s->moved_us[dir] = c->now_us;
	}
	if (b->len == 0 && s->end[dir]) {
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
		if (trl->n > 0) {
			nghttp2_nv *nv = h2_hlist_nv(c, trl);

			*data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
			if (nv == NULL || nghttp2_submit_trailer(session,
			    stream_id, nv, trl->n) != 0) {
				*data_flags &= ~NGHTTP2_DATA_FLAG_NO_END_STREAM;
			}
			h2_mem_free(&c->mem, nv);
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

/*
 * A DATA chunk for stream s going `dir` (UP: the request body from the
 * client, DOWN: the response body from the origin): recorded, held until
 * the other leg takes it (its window is given back only then), and that
 * leg woken.  Out of memory resets the stream on both legs.
 */
static int
take_data(struct h2 *c, nghttp2_session *session, int32_t stream_id,
    struct stream *s, int dir, const uint8_t *data, size_t len)
{
	h2_rec_add(c, s, dir, data, len);
	if (s->buf[dir].len == 0)
		s->moved_us[dir] = c->now_us;
	if (h2_dbuf_add(c, &s->buf[dir], data, len) == -1) {
		(void)nghttp2_session_consume(session, stream_id, len);
		h2_set_error(s, "out of memory for the %s body", dir == UP ?
		    "request" : "response");
		h2_rst_upstream(c, s, NGHTTP2_INTERNAL_ERROR);
		h2_rst_client(c, s, NGHTTP2_INTERNAL_ERROR);
		return 0;
	}
	h2_buffered_add(c, dir, len);
	wake(c, s, dir);
	return 0;
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
void
h2_fail_both(struct h2 *c, enum h2_leg culprit, uint32_t code)
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
	c->failed_all = true;
	TAILQ_FOREACH_SAFE(s, &c->streams, e, tmp) {
		h2_set_error(s, "%s connection failed: %s", h2_leg_name[culprit],
		    c->error);
		if (s->resp_final && s->resp_end_us == 0)
			s->resp_end_us = c->now_us;
		h2_emit(c, s);
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
	if (h2_hlist_add(c, h, name, namelen, value, valuelen) == -1) {
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
	if ((s = h2_mem_calloc(&c->mem, 1, sizeof(*s))) == NULL) {
		c->st.refused++;
		(void)nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE,
		    frame->hd.stream_id, NGHTTP2_REFUSED_STREAM);
		return 0;
	}
	s->c = c;
	s->csid = frame->hd.stream_id;
	if (s->csid > c->last_csid)
		c->last_csid = s->csid;
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
		h2_settle(c, s);
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
		h2_set_error(s, "request header list over %zu bytes or %zu fields",
		    c->cfg.max_header_list, c->cfg.max_fields);
		c->st.refused++;
		s->u_closed = true;
		h2_answer_client(c, s, 431);
		return;
	}
	ct = h2_hlist_get(&s->req, "content-type");
	if (ct != NULL && strncasecmp(ct->value, "application/grpc", 16) == 0)
		s->grpc = true;
	if (c->leg[H2_UPSTREAM].failed || c->leg[H2_UPSTREAM].goaway_in ||
	    c->leg[H2_UPSTREAM].eof) {
		h2_set_error(s, "refused: the server is going away");
		c->st.refused++;
		s->u_closed = true;
		h2_rst_client(c, s, NGHTTP2_REFUSED_STREAM);
		return;
	}
	if ((nv = h2_hlist_nv(c, &s->req)) == NULL) {
		h2_set_error(s, "refused: out of memory");
		c->st.refused++;
		s->u_closed = true;
		h2_rst_client(c, s, NGHTTP2_REFUSED_STREAM);
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
	h2_mem_free(&c->mem, nv);
	if (id < 0) {
		h2_set_error(s, "refused upstream: %s", nghttp2_strerror(id));
		c->st.refused++;
		s->u_closed = true;
		h2_rst_client(c, s, NGHTTP2_REFUSED_STREAM);
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
			h2_set_error(s, "request trailers refused");
			h2_rst_upstream(c, s, NGHTTP2_CANCEL);
			h2_rst_client(c, s, s->req_too_big ?
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
	case NGHTTP2_RST_STREAM:
		/* Counted to name nghttp2's rapid-reset GOAWAY. */
		l->rst_in++;
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
			h2_fail_conn(c, "client sent GOAWAY: %s",
			    h2_code_name(frame->goaway.error_code));
		return 0;
	default:
		return 0;
	}
flood:
	h2_fail_conn(c, "client flooded control frames (over %u/s)",
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
	return take_data(c, session, stream_id, s, UP, data, len);
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
		h2_set_error(s, "client reset the stream: %s",
		    h2_code_name(error_code));
		/* Mirrored upstream (even while nghttp2 still queues it). */
		h2_rst_upstream(c, s, error_code);
	}
	h2_discard(c, s, DOWN);
	h2_settle(c, s);
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
		/*
		 * nghttp2's own defences end here too.  Its rapid-reset limit
		 * says nothing but INTERNAL_ERROR: named by the count.
		 */
		if (frame->goaway.error_code == NGHTTP2_INTERNAL_ERROR &&
		    c->leg[H2_CLIENT].liberr[0] == '\0' &&
		    c->leg[H2_CLIENT].rst_in >= RESET_BURST)
			h2_fail_conn(c, "client reset %llu streams, over %u at "
			    "once and %u/s (rapid reset, CVE-2023-44487): told it "
			    "GOAWAY INTERNAL_ERROR",
			    (unsigned long long)c->leg[H2_CLIENT].rst_in,
			    RESET_BURST, RESET_RATE);
		h2_fail_conn(c, "told the client GOAWAY %s%s%s",
		    h2_code_name(frame->goaway.error_code),
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
		h2_hlist_clear(c, &s->resp);
	if (!s->resp_final)
		s->resp_too_big = false;
	return 0;
}

/* Final (or 1xx) response headers arrived: relay them. */
static void
start_response(struct h2 *c, struct stream *s, bool end)
{
	const char *st = h2_pseudo(&s->resp, ":status");
	nghttp2_data_provider prd, *pp = NULL;
	nghttp2_session *cs = c->leg[H2_CLIENT].s;
	nghttp2_nv *nv;
	int status = st != NULL ? atoi(st) : 0;

	if (s->answered)
		return;
	if (s->resp_too_big) {
		h2_set_error(s, "response header list over %zu bytes or %zu "
		    "fields", c->cfg.max_header_list, c->cfg.max_fields);
		h2_rst_upstream(c, s, NGHTTP2_CANCEL);
		h2_answer_client(c, s, 502);
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
	if ((nv = h2_hlist_nv(c, &s->resp)) == NULL) {
		h2_set_error(s, "out of memory for the response headers");
		h2_rst_upstream(c, s, NGHTTP2_INTERNAL_ERROR);
		h2_rst_client(c, s, NGHTTP2_INTERNAL_ERROR);
		return;
	}
	if (status >= 100 && status < 200) {
		/* Interim: relayed as is; the final one follows. */
		(void)nghttp2_submit_headers(cs, NGHTTP2_FLAG_NONE, s->csid,
		    NULL, nv, s->resp.n, NULL);
		h2_mem_free(&c->mem, nv);
		h2_hlist_clear(c, &s->resp);
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
		h2_set_error(s, "response refused by nghttp2");
		h2_rst_upstream(c, s, NGHTTP2_INTERNAL_ERROR);
		h2_rst_client(c, s, NGHTTP2_INTERNAL_ERROR);
	}
	h2_mem_free(&c->mem, nv);
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
			h2_set_error(s, "response trailers refused");
			h2_rst_upstream(c, s, NGHTTP2_CANCEL);
			h2_rst_client(c, s, NGHTTP2_INTERNAL_ERROR);
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
			h2_fail_conn(c, "server sent GOAWAY: %s",
			    h2_code_name(frame->goaway.error_code));
		if (!c->leg[H2_CLIENT].failed)
			(void)nghttp2_submit_goaway(c->leg[H2_CLIENT].s,
			    NGHTTP2_FLAG_NONE, last_csid,
			    frame->goaway.error_code, NULL, 0);
		return 0;
	default:
		return 0;
	}
flood:
	h2_fail_conn(c, "server flooded control frames (over %u/s)",
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
	return take_data(c, session, stream_id, s, DOWN, data, len);
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
	h2_discard(c, s, UP);
	if (!s->answered && (!s->end[DOWN] ||
	    error_code != NGHTTP2_NO_ERROR)) {
		h2_set_error(s, "server reset the stream: %s",
		    h2_code_name(error_code));
		/* Mirrored to the client; NO_ERROR before the response ended
		 * would read as a complete response, so it is not. */
		h2_rst_client(c, s, !s->end[DOWN] && error_code ==
		    NGHTTP2_NO_ERROR ? NGHTTP2_INTERNAL_ERROR : error_code);
	}
	finish_client(c, s);
	h2_settle(c, s);
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
	h2_set_error(s, "not sent upstream: %s", nghttp2_strerror(lib_error_code));
	s->u_closed = true;
	h2_discard(c, s, UP);
	h2_rst_client(c, s, NGHTTP2_REFUSED_STREAM);
	h2_settle(c, s);
	return 0;
}

/* The callbacks of a leg's session. */
void
h2_set_callbacks(nghttp2_session_callbacks *cb, enum h2_leg leg)
{
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
}
