/*
 * The HTTP/2 layer (see h2.h and docs/proxyd-h2.md): its setup, the I/O
 * entry points and the deadlines.  The streams are h2_stream.c's; the
 * plumbing h2_util.c's.
 *
 * h2_output -> fill -> nghttp2_session_mem_send fills a leg's output;
 * h2_output_done -> nghttp2_session_consume gives the other leg's peer its
 * window back for the bytes that went out (nghttpx's model).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proxyd/h2_int.h"
#include "proxyd/membudget.h"

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
	h2_set_callbacks(cb, leg);
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
		nghttp2_option_set_stream_reset_rate_limit(opt, RESET_BURST,
		    RESET_RATE);
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
	/* The connection's own struct is proxyd's memory too. */
	membudget_force(c->cfg.budget, sizeof(*c));
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
	h2_mem_init(&c->mem, &c->ngmem, c->cfg.mem_limit, c->cfg.budget);
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

/*
 * A GOAWAY written by hand after what a failed leg's session had queued:
 * nghttp2 takes no more calls on a session after a fatal error (its own
 * flood and CONTINUATION limits, a callback that refused), and the peer
 * should hear why rather than see the connection just end.  Its sessions'
 * output is whole frames, so this one starts on a frame boundary.
 */
static void
goaway_by_hand(struct h2 *c, enum h2_leg leg, uint32_t code)
{
	static const uint8_t settings[9] = { 0, 0, 0, NGHTTP2_SETTINGS };
	struct leg *l = &c->leg[leg];
	/* On the upstream leg we are the client: it opened no stream. */
	uint32_t last = leg == H2_CLIENT ? (uint32_t)c->last_csid : 0;
	uint8_t f[17] = { 0, 0, 8, NGHTTP2_GOAWAY, NGHTTP2_FLAG_NONE, 0, 0, 0, 0,
	    (uint8_t)(last >> 24 & 0x7f), (uint8_t)(last >> 16),
	    (uint8_t)(last >> 8), (uint8_t)last, (uint8_t)(code >> 24),
	    (uint8_t)(code >> 16), (uint8_t)(code >> 8), (uint8_t)code };

	if (l->appended == 0) {
		/* Nothing went to the origin yet, not even our preface. */
		if (leg == H2_UPSTREAM)
			return;
		/* A server's first frame is its SETTINGS (RFC 9113 3.4);
		 * ours was held for the origin's (maybe_client_settings). */
		if (h2_dbuf_add(c, &l->out, settings, sizeof(settings)) == -1)
			return;
		l->appended += sizeof(settings);
	}
	/* Out of memory or over the cap: the connection just ends. */
	if (h2_dbuf_add(c, &l->out, f, sizeof(f)) == 0)
		l->appended += sizeof(f);
}

static void
leg_failed(struct h2 *c, enum h2_leg leg, ssize_t rv)
{
	struct leg *l = &c->leg[leg];
	uint32_t code;

	if (l->failed)
		return;
	l->failed = true;
	if (c->mem.refused)
		h2_fail_conn(c, "%s connection over the per-connection memory "
		    "cap (%zu bytes): nghttp2 could not allocate",
		    h2_leg_name[leg], c->cfg.mem_limit);
	else if (c->mem.nomem || rv == NGHTTP2_ERR_NOMEM)
		h2_fail_conn(c, "out of memory (malloc failed) on the %s "
		    "connection", h2_leg_name[leg]);
	else if (rv == NGHTTP2_ERR_FLOODED)
		h2_fail_conn(c, "%s flooded us (frames we had to answer piled up)",
		    h2_leg_name[leg]);
	else if (l->liberr[0] != '\0')
		h2_fail_conn(c, "%s broke HTTP/2: %s (%s)", h2_leg_name[leg],
		    l->liberr, nghttp2_strerror((int)rv));
	else
		h2_fail_conn(c, "%s broke HTTP/2: %s", h2_leg_name[leg],
		    nghttp2_strerror((int)rv));
	/* Floods (ours, or nghttp2's own counts) get ENHANCE_YOUR_CALM; our
	 * own memory limits are our failure, not the peer's protocol error. */
	if (rv == NGHTTP2_ERR_FLOODED ||
	    rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS ||
	    strstr(c->error, "flooded") != NULL)
		code = NGHTTP2_ENHANCE_YOUR_CALM;
	else if (c->mem.refused || c->mem.nomem || rv == NGHTTP2_ERR_NOMEM)
		code = NGHTTP2_INTERNAL_ERROR;
	else
		code = NGHTTP2_PROTOCOL_ERROR;
	goaway_by_hand(c, leg, code);
	/* (The other leg's GOAWAY is its session's own.) */
	h2_fail_both(c, leg, code);
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
		h2_sweep(c);
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
	h2_sweep(c);
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
			h2_set_error(s, "client closed the connection");
			s->c_closed = true;
			h2_rst_upstream(c, s, NGHTTP2_CANCEL);
		} else {
			h2_set_error(s, "server closed the connection");
			s->u_closed = true;
			h2_discard(c, s, UP);
			if (!s->resp_submitted)
				h2_answer_client(c, s, 502);
			else if (!s->end[DOWN])
				h2_rst_client(c, s, NGHTTP2_INTERNAL_ERROR);
			/* else: what is buffered still goes out. */
		}
		h2_settle(c, s);
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
	h2_sweep(c);
}

static void
fill(struct h2 *c, enum h2_leg to)
{
	struct leg *l = &c->leg[to];
	const uint8_t *d;
	ssize_t n;
	size_t i, high = h2_budget_tight(c) ? OUT_HIGH_TIGHT : OUT_HIGH;

	if (to == H2_CLIENT && !c->client_settings_sent)
		return;
	while (l->out.len < high && !l->eof) {
		n = nghttp2_session_mem_send(l->s, &d);
		if (n < 0) {
			leg_failed(c, to, n);
			return;
		}
		if (n == 0)
			return;
		if (h2_dbuf_add(c, &l->out, d, (size_t)n) == -1) {
			if (c->mem.nomem)
				h2_fail_conn(c, "out of memory (malloc failed) "
				    "for the %s connection's output",
				    h2_leg_name[to]);
			else
				h2_fail_conn(c, "%s connection over the "
				    "per-connection memory cap (%zu bytes)",
				    h2_leg_name[to], c->cfg.mem_limit);
			l->failed = true;
			/* Best effort: the output ends on a frame boundary
			 * (what failed was not added), and 17 bytes may still
			 * fit where a whole frame did not. */
			goaway_by_hand(c, to, NGHTTP2_INTERNAL_ERROR);
			h2_fail_both(c, to, NGHTTP2_INTERNAL_ERROR);
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

	/* A failed leg's session is spent: what it holds is only flushed. */
	if (!l->failed)
		fill(c, to);
	h2_sweep(c);
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
	h2_dbuf_take(&l->out, n);
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
	h2_dbuf_trim(c, &l->out, BUF_KEEP);
	h2_sweep(c);
}

/*
 * Whether DATA from dir waits that the other leg alone will take: not a
 * request body of a stream still queued for upstream (behind the origin's
 * SETTINGS_MAX_CONCURRENT_STREAMS), which moves only once another stream
 * ends, and that may need more of this leg first.
 */
static bool
waiting_movable(const struct h2 *c, int dir)
{
	const struct stream *s;

	TAILQ_FOREACH(s, &c->streams, e)
		if (s->buf[dir].len > 0 && (dir == DOWN || s->u_sent_headers))
			return true;
	return false;
}

bool
h2_want_read(struct h2 *c, enum h2_leg from)
{
	const struct leg *l = &c->leg[from];
	int dir = from == H2_CLIENT ? UP : DOWN;
	bool hold;

	if (l->failed || l->eof || c->error[0] != '\0' ||
	    !nghttp2_session_want_read(l->s))
		return false;
	/*
	 * proxyd's budget is tight: a leg whose DATA waits here is not read
	 * until that DATA went out, while nothing waits the other way.  The
	 * other leg is read, so the window updates (and stream closes) that
	 * let the DATA go out come; and as soon as DATA waits for this leg,
	 * whose window updates only reading it brings, it is read again, as
	 * it is when what waits is only queued requests' bodies: holding back
	 * never stops what would drain the layer.
	 */
	hold = c->waiting[dir] > 0 && c->waiting[!dir] == 0 &&
	    h2_budget_tight(c) && waiting_movable(c, dir);
	if (hold && !c->throttled[dir])
		c->st.throttled++;
	c->throttled[dir] = hold;
	return !hold;
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

bool
h2_out_done(struct h2 *c, enum h2_leg to)
{
	struct leg *l = &c->leg[to];
	const uint8_t *p;

	if (h2_output(c, to, &p) > 0)
		return false;
	if (l->failed || l->eof || c->error[0] != '\0')
		return !nghttp2_session_want_write(l->s) || l->failed || l->eof;
	if (to == H2_CLIENT && !c->client_settings_sent)
		return false;
	return !nghttp2_session_want_read(l->s) &&
	    !nghttp2_session_want_write(l->s);
}

size_t
h2_held(const struct h2 *c)
{
	return c->st.buffered + c->leg[0].out.len + c->leg[1].out.len;
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
			h2_set_error(s, "stalled: the %s read nothing for %llu s",
			    d == UP ? "server" : "client",
			    (unsigned long long)(c->cfg.stall_us / 1000000));
			c->st.stalled++;
			h2_rst_upstream(c, s, NGHTTP2_CANCEL);
			h2_rst_client(c, s, NGHTTP2_CANCEL);
			break;
		}
	h2_sweep(c);
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
	c->failed_all = false;		/* the sessions are done with them */
	TAILQ_FOREACH_SAFE(s, &c->streams, e, tmp) {
		h2_set_error(s, "%s", why != NULL ? why : c->error[0] != '\0' ?
		    c->error : "connection closed");
		s->c_closed = s->u_closed = true;
		h2_settle(c, s);
	}
	h2_sweep(c);
	for (i = 0; i < 2; i++) {
		nghttp2_session_del(c->leg[i].s);
		h2_dbuf_free(c, &c->leg[i].out);
		h2_mem_free(&c->mem, c->leg[i].gb);
	}
	membudget_give(c->cfg.budget, sizeof(*c));
	free(c);
}
