/*
 * Unit tests for proxyd/h2.c, the HTTP/2 layer.  No sockets: an app (a
 * real nghttp2 client session) and an origin (a real nghttp2 server
 * session) sit on either side of the layer, and pump() moves bytes between
 * the three in memory until nothing moves.  The origin answers by path:
 *
 *	/size/N		N bytes of a known pattern
 *	/echo		the request body back
 *	/trailers	"ok", then trailers x-t: 1
 *	/grpc		three gRPC messages, grpc-status 0, grpc-message ok
 *	/rst		RST_STREAM INTERNAL_ERROR
 *	/hang		nothing (the test acts)
 *
 * Flood and bomb cases write raw frames as an attacker would.  The last
 * tests drive the same layer behind the protocol-layer seam (layer_h2.c),
 * as relay_tls.c and relay_layer.c do.  LeakSanitizer (make SANITIZE=1)
 * checks that nothing is left allocated.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <nghttp2/nghttp2.h>

#include "proxyd/h2.h"
#include "proxyd/layer.h"
#include "proxyd/membudget.h"

#define MAXS	256

/* --- the app (client) and the origin (server) -------------------------------- */

struct astream {		/* what the app saw of one stream */
	int32_t		 id;
	int		 status;
	uint64_t	 body;
	uint32_t	 sum;		/* of the body bytes */
	bool		 closed;
	uint32_t	 rst;		/* close code */
	bool		 trailer_xt;
	char		 grpc_status[8];
	bool		 connect_ok;
};

struct app {
	nghttp2_session	*s;
	struct astream	 st[MAXS];
	int		 n;
	bool		 goaway;
	uint32_t	 goaway_code;
	int32_t		 goaway_last;
	bool		 slow;		/* consumes only when told */
	size_t		 unconsumed;
	/* a request body to send */
	const uint8_t	*body;
	size_t		 body_len, body_off;
	bool		 send_trailers;
};

struct ostream {
	int32_t		 id;
	char		 path[64];
	char		 method[16];
	uint64_t	 body;
	uint8_t		*echo;
	size_t		 echo_len, echo_off;
	uint64_t	 left;		/* pattern bytes to send */
	uint64_t	 sent;
	bool		 req_trailer;
	bool		 trailers;
	int		 phase;		/* grpc: bytes out */
	bool		 in_use;
};

struct origin {
	nghttp2_session	*s;
	struct ostream	 st[MAXS];
	int		 open, max_open;
	int		 requests;
	uint32_t	 rst_seen;
	bool		 got_rst;
	bool		 got_goaway;
	uint32_t	 goaway_code;
	int32_t		 goaway_after;	/* GOAWAY after this many requests */
	bool		 connect_protocol;
};

struct rec {
	int		 n;
	char		 method[MAXS][16];
	char		 path[MAXS][64];
	char		 host[MAXS][64];
	char		 version[MAXS][12];
	int		 status[MAXS];
	uint64_t	 req_size[MAXS], resp_size[MAXS];
	size_t		 resp_kept[MAXS], req_kept[MAXS];
	bool		 req_cut[MAXS], resp_cut[MAXS];
	char		 error[MAXS][160];
	size_t		 req_trl[MAXS], resp_trl[MAXS];
	bool		 grpc[MAXS];
	int		 grpc_status[MAXS];
	uint64_t	 grpc_req_msgs[MAXS], grpc_resp_msgs[MAXS];
	uint32_t	 grpc_resp_size0[MAXS];
};

static uint8_t
pattern(uint64_t i)
{
	return (uint8_t)(i * 7 + (i >> 8));
}

static struct astream *
app_stream(struct app *a, int32_t id)
{
	int i;

	for (i = 0; i < a->n; i++)
		if (a->st[i].id == id)
			return &a->st[i];
	return NULL;
}

static int
app_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
    size_t nl, const uint8_t *value, size_t vl, uint8_t flags, void *u)
{
	struct astream *as = app_stream(u, f->hd.stream_id);

	(void)s;
	(void)flags;
	if (as == NULL)
		return 0;
	if (nl == 7 && memcmp(name, ":status", 7) == 0)
		as->status = atoi((const char *)value);
	if (nl == 3 && memcmp(name, "x-t", 3) == 0)
		as->trailer_xt = true;
	if (nl == 11 && memcmp(name, "grpc-status", 11) == 0)
		snprintf(as->grpc_status, sizeof(as->grpc_status), "%.*s",
		    (int)vl, value);
	return 0;
}

static int
app_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *d,
    size_t len, void *u)
{
	struct app *a = u;
	struct astream *as = app_stream(a, id);
	size_t i;

	(void)flags;
	if (as != NULL)
		for (i = 0; i < len; i++) {
			if (d[i] != pattern(as->body + i) && as->sum == 0)
				as->sum = 1;	/* mismatch marker */
		}
	if (as != NULL)
		as->body += len;
	if (a->slow)
		a->unconsumed += len;
	else
		nghttp2_session_consume(s, id, len);
	return 0;
}

static int
app_on_close(nghttp2_session *s, int32_t id, uint32_t code, void *u)
{
	struct astream *as = app_stream(u, id);

	(void)s;
	if (as != NULL) {
		as->closed = true;
		as->rst = code;
	}
	return 0;
}

static int
app_on_frame(nghttp2_session *s, const nghttp2_frame *f, void *u)
{
	struct app *a = u;

	(void)s;
	if (f->hd.type == NGHTTP2_GOAWAY) {
		a->goaway = true;
		a->goaway_code = f->goaway.error_code;
		a->goaway_last = f->goaway.last_stream_id;
	}
	return 0;
}

static ssize_t
app_read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
    uint32_t *flags, nghttp2_data_source *src, void *u)
{
	struct app *a = u;
	size_t n = a->body_len - a->body_off;

	(void)src;
	if (n > len)
		n = len;
	memcpy(buf, a->body + a->body_off, n);
	a->body_off += n;
	if (a->body_off == a->body_len) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		if (a->send_trailers) {
			nghttp2_nv t = { (uint8_t *)"x-req-t", (uint8_t *)"1", 7,
			    1, 0 };

			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
			assert_int_equal(nghttp2_submit_trailer(s, id, &t, 1), 0);
		}
	}
	return (ssize_t)n;
}

static int
dbg_err(nghttp2_session *s, int code, const char *msg, size_t len, void *u)
{
	(void)s; (void)u;
	if (getenv("H2DBG"))
		fprintf(stderr, "nghttp2 %d: %.*s\n", code, (int)len, msg);
	return 0;
}

static void
app_init(struct app *a, bool big_headers)
{
	nghttp2_session_callbacks *cb;
	nghttp2_option *opt;

	memset(a, 0, sizeof(*a));
	assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
	nghttp2_session_callbacks_set_on_header_callback(cb, app_on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb,
	    app_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, app_on_close);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, app_on_frame);
	nghttp2_session_callbacks_set_error_callback2(cb, dbg_err);
	assert_int_equal(nghttp2_option_new(&opt), 0);
	nghttp2_option_set_no_auto_window_update(opt, 1);
	if (big_headers)
		nghttp2_option_set_max_send_header_block_length(opt, 1 << 24);
	assert_int_equal(nghttp2_session_client_new2(&a->s, cb, a, opt), 0);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	assert_int_equal(nghttp2_submit_settings(a->s, 0, NULL, 0), 0);
}

#define NV(n, v) { (uint8_t *)(uintptr_t)(n), (uint8_t *)(uintptr_t)(v), sizeof(n) - 1, \
	strlen(v), NGHTTP2_NV_FLAG_NONE }

static int32_t
app_request(struct app *a, const char *method, const char *path,
    const nghttp2_nv *extra, size_t nextra, bool body)
{
	nghttp2_nv nv[48] = {
		NV(":method", method), NV(":scheme", "https"),
		NV(":path", path), NV(":authority", "origin.test"),
	};
	nghttp2_data_provider prd = { .read_callback = app_read_body };
	size_t n = 4, i;
	int32_t id;

	assert_true(nextra <= 44);
	for (i = 0; i < nextra; i++)
		nv[n++] = extra[i];
	id = nghttp2_submit_request(a->s, NULL, nv, n, body ? &prd : NULL,
	    NULL);
	assert_true(id > 0);
	assert_true(a->n < MAXS);
	memset(&a->st[a->n], 0, sizeof(a->st[0]));
	a->st[a->n++].id = id;
	return id;
}

/* --- the origin ------------------------------------------------------------------ */

static struct ostream *
ostream_get(struct origin *o, int32_t id, bool create)
{
	int i;

	for (i = 0; i < MAXS; i++)
		if (o->st[i].in_use && o->st[i].id == id)
			return &o->st[i];
	if (!create)
		return NULL;
	for (i = 0; i < MAXS; i++)
		if (!o->st[i].in_use) {
			memset(&o->st[i], 0, sizeof(o->st[i]));
			o->st[i].in_use = true;
			o->st[i].id = id;
			return &o->st[i];
		}
	fail();
	return NULL;
}

static int
origin_begin(nghttp2_session *s, const nghttp2_frame *f, void *u)
{
	struct origin *o = u;

	(void)s;
	if (f->hd.type == NGHTTP2_HEADERS &&
	    f->headers.cat == NGHTTP2_HCAT_REQUEST) {
		(void)ostream_get(o, f->hd.stream_id, true);
		if (++o->open > o->max_open)
			o->max_open = o->open;
	}
	return 0;
}

static int
origin_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
    size_t nl, const uint8_t *value, size_t vl, uint8_t flags, void *u)
{
	struct ostream *os = ostream_get(u, f->hd.stream_id, false);

	(void)s;
	(void)flags;
	if (os == NULL)
		return 0;
	if (nl == 5 && memcmp(name, ":path", 5) == 0)
		snprintf(os->path, sizeof(os->path), "%.*s", (int)vl, value);
	if (nl == 7 && memcmp(name, ":method", 7) == 0)
		snprintf(os->method, sizeof(os->method), "%.*s", (int)vl, value);
	if (nl == 7 && memcmp(name, "x-req-t", 7) == 0)
		os->req_trailer = true;
	return 0;
}

static int
origin_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *d,
    size_t len, void *u)
{
	struct ostream *os = ostream_get(u, id, false);

	(void)flags;
	nghttp2_session_consume(s, id, len);
	if (os == NULL)
		return 0;
	os->body += len;
	if (strcmp(os->path, "/echo") == 0 || strcmp(os->method, "CONNECT") == 0) {
		uint8_t *n = realloc(os->echo, os->echo_len + len);

		assert_non_null(n);
		memcpy(n + os->echo_len, d, len);
		os->echo = n;
		os->echo_len += len;
		if (strcmp(os->method, "CONNECT") == 0)
			nghttp2_session_resume_data(s, id);
	}
	return 0;
}

static ssize_t
origin_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
    uint32_t *flags, nghttp2_data_source *src, void *u)
{
	struct ostream *os = src->ptr;
	size_t n, i;

	(void)u;
	if (strcmp(os->path, "/grpc") == 0) {
		/* three messages: 3, 0 and 10 bytes */
		static const uint8_t g[] = { 0, 0, 0, 0, 3, 'a', 'b', 'c',
		    0, 0, 0, 0, 0, 1, 0, 0, 0, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };

		memcpy(buf, g, sizeof(g));
		*flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
		{
			nghttp2_nv t[] = { NV("grpc-status", "0"),
			    NV("grpc-message", "ok") };

			assert_int_equal(nghttp2_submit_trailer(s, id, t, 2), 0);
		}
		return sizeof(g);
	}
	if (os->echo != NULL || strcmp(os->path, "/echo") == 0 ||
	    strcmp(os->method, "CONNECT") == 0) {
		n = os->echo_len - os->echo_off;
		if (n > len)
			n = len;
		if (n == 0 && strcmp(os->method, "CONNECT") == 0)
			return NGHTTP2_ERR_DEFERRED;
		memcpy(buf, os->echo + os->echo_off, n);
		os->echo_off += n;
		if (os->echo_off == os->echo_len)
			*flags |= NGHTTP2_DATA_FLAG_EOF;
		return (ssize_t)n;
	}
	if (strcmp(os->path, "/trailers") == 0) {
		nghttp2_nv t = NV("x-t", "1");

		memcpy(buf, "ok", 2);
		*flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
		assert_int_equal(nghttp2_submit_trailer(s, id, &t, 1), 0);
		return 2;
	}
	n = os->left < len ? (size_t)os->left : len;
	for (i = 0; i < n; i++)
		buf[i] = pattern(os->sent + i);
	os->sent += n;
	os->left -= n;
	if (os->left == 0)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static void
origin_respond(struct origin *o, struct ostream *os)
{
	nghttp2_nv ok[] = { NV(":status", "200"), NV("server", "origin") };
	nghttp2_nv grpc[] = { NV(":status", "200"),
	    NV("content-type", "application/grpc") };
	nghttp2_data_provider prd = { .source.ptr = os,
	    .read_callback = origin_read };

	o->requests++;
	if (strcmp(os->path, "/rst") == 0) {
		nghttp2_submit_rst_stream(o->s, 0, os->id, NGHTTP2_INTERNAL_ERROR);
		return;
	}
	if (strcmp(os->path, "/hang") == 0)
		return;
	if (strncmp(os->path, "/size/", 6) == 0)
		os->left = strtoull(os->path + 6, NULL, 10);
	if (strcmp(os->path, "/grpc") == 0)
		assert_int_equal(nghttp2_submit_response(o->s, os->id, grpc, 2,
		    &prd), 0);
	else
		assert_int_equal(nghttp2_submit_response(o->s, os->id, ok, 2,
		    &prd), 0);
	if (o->goaway_after > 0 && o->requests == o->goaway_after)
		nghttp2_submit_goaway(o->s, 0, os->id, NGHTTP2_NO_ERROR, NULL, 0);
}

static int
origin_frame(nghttp2_session *s, const nghttp2_frame *f, void *u)
{
	struct origin *o = u;
	struct ostream *os;

	(void)s;
	if (f->hd.type == NGHTTP2_RST_STREAM) {
		o->got_rst = true;
		o->rst_seen = f->rst_stream.error_code;
	}
	if (f->hd.type == NGHTTP2_GOAWAY) {
		o->got_goaway = true;
		o->goaway_code = f->goaway.error_code;
	}
	if ((os = ostream_get(o, f->hd.stream_id, false)) == NULL)
		return 0;
	if (f->hd.type == NGHTTP2_HEADERS && strcmp(os->method, "CONNECT") == 0 &&
	    f->headers.cat == NGHTTP2_HCAT_REQUEST) {
		nghttp2_nv ok[] = { NV(":status", "200") };
		nghttp2_data_provider prd = { .source.ptr = os,
		    .read_callback = origin_read };

		assert_int_equal(nghttp2_submit_response(s, os->id, ok, 1, &prd),
		    0);
		return 0;
	}
	if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
	    (f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
	    strcmp(os->method, "CONNECT") != 0)
		origin_respond(o, os);
	return 0;
}

static int
origin_close(nghttp2_session *s, int32_t id, uint32_t code, void *u)
{
	struct origin *o = u;
	struct ostream *os = ostream_get(o, id, false);

	(void)s;
	(void)code;
	if (os != NULL) {
		free(os->echo);
		os->in_use = false;
		o->open--;
	}
	return 0;
}

static void
origin_init(struct origin *o, uint32_t max_streams, bool connect_protocol)
{
	nghttp2_session_callbacks *cb;
	nghttp2_option *opt;
	nghttp2_settings_entry iv[2];
	size_t n = 0;

	memset(o, 0, sizeof(*o));
	assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, origin_begin);
	nghttp2_session_callbacks_set_on_header_callback(cb, origin_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, origin_data);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, origin_frame);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, origin_close);
	assert_int_equal(nghttp2_option_new(&opt), 0);
	nghttp2_option_set_no_auto_window_update(opt, 1);
	assert_int_equal(nghttp2_session_server_new2(&o->s, cb, o, opt), 0);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	if (max_streams > 0) {
		iv[n].settings_id = NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS;
		iv[n++].value = max_streams;
	}
	if (connect_protocol) {
		iv[n].settings_id = NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL;
		iv[n++].value = 1;
	}
	o->connect_protocol = connect_protocol;
	assert_int_equal(nghttp2_submit_settings(o->s, 0, iv, n), 0);
}

/* --- the recorder ------------------------------------------------------------- */

static void
record(void *arg, const struct store_http *h)
{
	struct rec *r = arg;
	int i = r->n++;

	assert_true(h->resp_body_len <= h->resp_body_size);
	if (i >= MAXS)
		return;		/* counted only */
	snprintf(r->method[i], sizeof(r->method[i]), "%s", h->method);
	snprintf(r->path[i], sizeof(r->path[i]), "%s", h->target);
	snprintf(r->host[i], sizeof(r->host[i]), "%s", h->host);
	snprintf(r->version[i], sizeof(r->version[i]), "%s", h->http_version);
	snprintf(r->error[i], sizeof(r->error[i]), "%s",
	    h->error ? h->error : "-");
	r->status[i] = h->status;
	r->req_size[i] = h->req_body_size;
	r->resp_size[i] = h->resp_body_size;
	r->resp_kept[i] = h->resp_body_len;
	r->req_kept[i] = h->req_body_len;
	r->req_cut[i] = h->req_body_budget_cut;
	r->resp_cut[i] = h->resp_body_budget_cut;
	r->req_trl[i] = h->n_req_trailers;
	r->resp_trl[i] = h->n_resp_trailers;
	assert_true(h->resp_body_len <= h->resp_body_size);
	if (h->grpc != NULL) {
		r->grpc[i] = true;
		r->grpc_status[i] = h->grpc->status;
		r->grpc_req_msgs[i] = h->grpc->req_messages;
		r->grpc_resp_msgs[i] = h->grpc->resp_messages;
		r->grpc_resp_size0[i] = h->grpc->n_resp_sizes > 0 ?
		    h->grpc->resp_sizes[0] : 0;
	}
}

static int
rec_find(const struct rec *r, const char *path)
{
	int i;

	for (i = 0; i < r->n; i++)
		if (strcmp(r->path[i], path) == 0)
			return i;
	return -1;
}

/* --- the rig --------------------------------------------------------------------- */

/*
 * H2_SEED_DIR=dir: each rig's input to the layer is also written as a
 * seed for test/fuzz/fuzz_h2.c (chunks: leg bit, length - 1, bytes).
 */
static FILE *seed;
static int seed_count;

static void
seed_open(void)
{
	const char *dir = getenv("H2_SEED_DIR");
	char path[512];

	if (dir == NULL)
		return;
	snprintf(path, sizeof(path), "%s/rig%02d", dir, ++seed_count);
	seed = fopen(path, "wb");
}

static void
seed_add(enum h2_leg from, const uint8_t *p, size_t n)
{
	size_t k;

	while (seed != NULL && n > 0) {
		k = n > 128 ? 128 : n;
		fputc((from == H2_UPSTREAM ? 0x80 : 0) | (int)(k - 1), seed);
		fwrite(p, 1, k, seed);
		p += k;
		n -= k;
	}
}

struct rig {
	struct app	 app;
	struct origin	 org;
	struct h2	*h2;
	struct rec	 rec;
	uint64_t	 now;
	size_t		 app_read_max;	/* per round, 0: all */
	bool		 app_stopped;	/* reads nothing */
	bool		 no_origin;	/* raw upstream: the test feeds it */
};

static void
rig_init(struct rig *r, uint32_t origin_streams, bool connect_protocol,
    const struct h2_config *over)
{
	struct h2_config cfg;
	char err[128];

	memset(r, 0, sizeof(*r));
	if (over != NULL)
		cfg = *over;
	else
		h2_config_default(&cfg);
	cfg.emit = record;
	cfg.arg = &r->rec;
	cfg.default_authority = "192.0.2.1:443";
	app_init(&r->app, false);
	origin_init(&r->org, origin_streams, connect_protocol);
	r->now = 1000000;
	seed_open();
	r->h2 = h2_new(&cfg, err, sizeof(err));
	assert_non_null(r->h2);
}

/* One leg's output into an nghttp2 session (all, or up to max). */
static bool
move_out(struct rig *r, enum h2_leg to, nghttp2_session *s, size_t max)
{
	const uint8_t *p;
	size_t n = h2_output(r->h2, to, &p);
	ssize_t rv;

	if (n == 0)
		return false;
	if (max > 0 && n > max)
		n = max;
	rv = nghttp2_session_mem_recv(s, p, n);
	if (getenv("H2DBG")) fprintf(stderr, "out %d: %zu -> %zd\n", to, n, rv);
	assert_true(rv == (ssize_t)n);
	h2_output_done(r->h2, to, n, r->now);
	return true;
}

/* An nghttp2 session's output into a leg of the layer. */
static bool
move_in(struct rig *r, enum h2_leg from, nghttp2_session *s)
{
	const uint8_t *p;
	ssize_t n;
	bool moved = false;

	while ((n = nghttp2_session_mem_send(s, &p)) > 0) {
		int rv2;

		seed_add(from, p, (size_t)n);
		rv2 = h2_feed(r->h2, from, p, (size_t)n, r->now);
		if (getenv("H2DBG")) fprintf(stderr, "in %d: %zd -> %d %s\n", from, n, rv2, h2_error(r->h2) ? h2_error(r->h2) : "");
		moved = true;
	}
	assert_true(n == 0);
	return moved;
}

static void
pump(struct rig *r)
{
	int rounds;
	bool moved;

	for (rounds = 0; rounds < 100000; rounds++) {
		moved = false;
		r->now += 10;
		moved |= move_in(r, H2_CLIENT, r->app.s);
		if (!r->no_origin) {
			moved |= move_in(r, H2_UPSTREAM, r->org.s);
			moved |= move_out(r, H2_UPSTREAM, r->org.s, 0);
		}
		if (!r->app_stopped)
			moved |= move_out(r, H2_CLIENT, r->app.s,
			    r->app_read_max);
		if (!moved)
			return;
	}
	fail_msg("pump did not settle");
}

static void
rig_free(struct rig *r)
{
	int i;

	h2_free(r->h2, r->now, NULL);
	if (seed != NULL)
		fclose(seed);
	seed = NULL;
	nghttp2_session_del(r->app.s);
	for (i = 0; i < MAXS; i++)
		if (r->org.st[i].in_use)
			free(r->org.st[i].echo);
	nghttp2_session_del(r->org.s);
}

/* --- tests --------------------------------------------------------------------- */

static void
test_h2_get(void **state)
{
	struct rig r;
	struct h2_stats st;

	(void)state;
	rig_init(&r, 0, false, NULL);
	app_request(&r.app, "GET", "/size/1000", NULL, 0, false);
	pump(&r);
	assert_true(r.app.st[0].closed);
	assert_int_equal(r.app.st[0].rst, 0);
	assert_int_equal(r.app.st[0].status, 200);
	assert_int_equal(r.app.st[0].body, 1000);
	assert_int_equal(r.app.st[0].sum, 0);
	assert_int_equal(r.rec.n, 1);
	assert_string_equal(r.rec.method[0], "GET");
	assert_string_equal(r.rec.path[0], "/size/1000");
	assert_string_equal(r.rec.host[0], "origin.test");
	assert_string_equal(r.rec.version[0], "HTTP/2.0");
	assert_int_equal(r.rec.status[0], 200);
	assert_int_equal(r.rec.resp_size[0], 1000);
	assert_int_equal(r.rec.resp_kept[0], 1000);
	assert_string_equal(r.rec.error[0], "-");
	h2_get_stats(r.h2, &st);
	assert_int_equal(st.streams, 1);
	assert_int_equal(st.active, 0);
	assert_int_equal(st.buffered, 0);
	rig_free(&r);
}

static void
test_h2_post_body(void **state)
{
	static uint8_t body[300 * 1024];
	struct rig r;
	size_t i;
	int k;

	(void)state;
	for (i = 0; i < sizeof(body); i++)
		body[i] = pattern(i);
	rig_init(&r, 0, false, NULL);
	r.app.body = body;
	r.app.body_len = sizeof(body);
	app_request(&r.app, "POST", "/echo", NULL, 0, true);
	pump(&r);
	assert_true(r.app.st[0].closed);
	assert_int_equal(r.app.st[0].status, 200);
	assert_int_equal(r.app.st[0].body, sizeof(body));
	assert_int_equal(r.app.st[0].sum, 0);
	assert_int_equal(r.rec.n, 1);
	k = rec_find(&r.rec, "/echo");
	assert_true(k >= 0);
	assert_string_equal(r.rec.method[k], "POST");
	assert_int_equal(r.rec.req_size[k], sizeof(body));
	assert_int_equal(r.rec.resp_size[k], sizeof(body));
	rig_free(&r);
}

static void
test_h2_trailers(void **state)
{
	struct rig r;

	(void)state;
	rig_init(&r, 0, false, NULL);
	r.app.body = (const uint8_t *)"\x00\x01\x02";
	r.app.body_len = 3;
	r.app.send_trailers = true;
	app_request(&r.app, "POST", "/trailers", NULL, 0, true);
	pump(&r);
	assert_true(r.app.st[0].closed);
	assert_int_equal(r.app.st[0].rst, 0);
	assert_int_equal(r.app.st[0].status, 200);
	assert_true(r.app.st[0].trailer_xt);
	assert_int_equal(r.app.st[0].body, 2);
	/* The origin got the request's trailers too. */
	assert_int_equal(r.rec.n, 1);
	assert_int_equal(r.rec.req_trl[0], 1);
	assert_int_equal(r.rec.resp_trl[0], 1);
	assert_int_equal(r.rec.req_size[0], 3);
	rig_free(&r);
}

static void
test_h2_concurrency_beyond_upstream_limit(void **state)
{
	struct rig r;
	char path[32];
	int i;

	(void)state;
	rig_init(&r, 2, false, NULL);
	pump(&r);		/* the origin's SETTINGS first */
	for (i = 0; i < 60; i++) {
		snprintf(path, sizeof(path), "/size/%d", 1000 + i);
		app_request(&r.app, "GET", path, NULL, 0, false);
	}
	pump(&r);
	for (i = 0; i < 60; i++) {
		assert_true(r.app.st[i].closed);
		assert_int_equal(r.app.st[i].rst, 0);
		assert_int_equal(r.app.st[i].status, 200);
		assert_int_equal(r.app.st[i].body, (uint64_t)(1000 + i));
	}
	assert_int_equal(r.rec.n, 60);
	assert_true(r.org.max_open <= 2);
	assert_int_equal(r.org.requests, 60);
	rig_free(&r);
}

static void
test_h2_rst_from_client(void **state)
{
	struct rig r;
	int32_t id;

	(void)state;
	rig_init(&r, 0, false, NULL);
	id = app_request(&r.app, "GET", "/hang", NULL, 0, false);
	pump(&r);
	assert_int_equal(r.org.requests, 1);
	nghttp2_submit_rst_stream(r.app.s, 0, id, NGHTTP2_CANCEL);
	pump(&r);
	assert_true(r.org.got_rst);
	assert_int_equal(r.org.rst_seen, NGHTTP2_CANCEL);
	assert_int_equal(r.rec.n, 1);
	assert_non_null(strstr(r.rec.error[0], "client reset the stream: CANCEL"));
	rig_free(&r);
}

static void
test_h2_rst_from_server(void **state)
{
	struct rig r;

	(void)state;
	rig_init(&r, 0, false, NULL);
	app_request(&r.app, "GET", "/rst", NULL, 0, false);
	pump(&r);
	assert_true(r.app.st[0].closed);
	assert_int_equal(r.app.st[0].rst, NGHTTP2_INTERNAL_ERROR);
	assert_int_equal(r.rec.n, 1);
	assert_non_null(strstr(r.rec.error[0],
	    "server reset the stream: INTERNAL_ERROR"));
	rig_free(&r);
}

static void
test_h2_goaway_from_server(void **state)
{
	struct rig r;
	int i, ok = 0, refused = 0;

	(void)state;
	rig_init(&r, 1, false, NULL);
	r.org.goaway_after = 1;
	pump(&r);
	for (i = 0; i < 4; i++)
		app_request(&r.app, "GET", "/size/10", NULL, 0, false);
	pump(&r);
	assert_true(r.app.goaway);
	assert_int_equal(r.app.goaway_code, NGHTTP2_NO_ERROR);
	for (i = 0; i < 4; i++) {
		assert_true(r.app.st[i].closed);
		if (r.app.st[i].status == 200 && r.app.st[i].rst == 0)
			ok++;
		else if (r.app.st[i].rst == NGHTTP2_REFUSED_STREAM)
			refused++;
	}
	assert_int_equal(ok, 1);
	assert_int_equal(refused, 3);
	assert_int_equal(r.app.goaway_last, r.app.st[0].id);
	assert_int_equal(r.rec.n, 4);
	rig_free(&r);
}

/* The other way: a client's GOAWAY reaches the origin with its code, and
 * an error code is the connection's recorded reason. */
static void
test_h2_goaway_from_client(void **state)
{
	struct rig r;

	(void)state;
	rig_init(&r, 0, false, NULL);
	app_request(&r.app, "GET", "/hang", NULL, 0, false);
	pump(&r);
	assert_int_equal(r.org.requests, 1);
	assert_int_equal(nghttp2_submit_goaway(r.app.s, NGHTTP2_FLAG_NONE, 0,
	    NGHTTP2_ENHANCE_YOUR_CALM, NULL, 0), 0);
	pump(&r);
	assert_true(r.org.got_goaway);
	assert_int_equal(r.org.goaway_code, NGHTTP2_ENHANCE_YOUR_CALM);
	assert_non_null(h2_error(r.h2));
	assert_non_null(strstr(h2_error(r.h2),
	    "client sent GOAWAY: ENHANCE_YOUR_CALM"));
	rig_free(&r);
	/* The stream it left open is recorded with that reason. */
	assert_int_equal(r.rec.n, 1);
	assert_non_null(strstr(r.rec.error[0],
	    "client sent GOAWAY: ENHANCE_YOUR_CALM"));
}

static void
test_h2_slow_reader_bounded(void **state)
{
	struct rig r;
	struct h2_stats st;
	const uint64_t total = 16ULL * 1024 * 1024;
	int rounds = 0;

	(void)state;
	rig_init(&r, 0, false, NULL);
	r.app.slow = true;
	r.app_read_max = 4096;
	app_request(&r.app, "GET", "/size/16777216", NULL, 0, false);
	while (!r.app.st[0].closed && rounds++ < 200000) {
		pump(&r);
		/* The app hands back 16 KiB of window per round. */
		if (r.app.unconsumed > 0) {
			size_t n = r.app.unconsumed < 16384 ? r.app.unconsumed :
			    16384;

			nghttp2_session_consume(r.app.s, r.app.st[0].id, n);
			r.app.unconsumed -= n;
		}
	}
	assert_true(r.app.st[0].closed);
	assert_int_equal(r.app.st[0].body, total);
	assert_int_equal(r.app.st[0].sum, 0);
	h2_get_stats(r.h2, &st);
	/* What waited inside the layer stayed within a stream window, and
	 * its memory far below the 16 MiB that went through. */
	assert_true(st.buffered_peak <= H2_DEFAULT_STREAM_WINDOW);
	assert_true(st.mem_peak < 2 * 1024 * 1024);
	print_message("slow reader: %llu bytes through, buffered peak %zu, "
	    "memory peak %zu\n", (unsigned long long)total, st.buffered_peak,
	    st.mem_peak);
	rig_free(&r);
}

static void
test_h2_stalled_stream_reaped(void **state)
{
	struct rig r;
	uint64_t dl;

	(void)state;
	rig_init(&r, 0, false, NULL);
	r.app.slow = true;		/* never gives window back */
	app_request(&r.app, "GET", "/size/4000000", NULL, 0, false);
	pump(&r);
	assert_false(r.app.st[0].closed);
	dl = h2_next_deadline(r.h2);
	assert_true(dl > 0);
	h2_tick(r.h2, dl - 1);
	assert_int_equal(r.rec.n, 0);
	r.now = dl;
	h2_tick(r.h2, dl);
	pump(&r);
	assert_true(r.app.st[0].closed);
	assert_int_equal(r.app.st[0].rst, NGHTTP2_CANCEL);
	assert_true(r.org.got_rst);
	assert_int_equal(r.rec.n, 1);
	assert_non_null(strstr(r.rec.error[0], "stalled"));
	rig_free(&r);
}

static void
test_h2_grpc(void **state)
{
	static const uint8_t msgs[] = { 0, 0, 0, 0, 2, 'h', 'i',
	    1, 0, 0, 0, 1, 'x' };
	nghttp2_nv ct[] = { NV("content-type", "application/grpc"),
	    NV("te", "trailers") };
	struct rig r;
	struct h2_grpc_frames g;
	size_t i;

	(void)state;
	/* The framing, fed a byte at a time. */
	memset(&g, 0, sizeof(g));
	for (i = 0; i < sizeof(msgs); i++)
		h2_grpc_feed(&g, msgs + i, 1);
	assert_int_equal(g.messages, 2);
	assert_int_equal(g.compressed, 1);
	assert_int_equal(g.sizes[0], 2);
	assert_int_equal(g.sizes[1], 1);
	assert_true(h2_grpc_complete(&g));
	h2_grpc_feed(&g, msgs, 3);
	assert_false(h2_grpc_complete(&g));

	rig_init(&r, 0, false, NULL);
	r.app.body = msgs;
	r.app.body_len = sizeof(msgs);
	app_request(&r.app, "POST", "/grpc", ct, 2, true);
	pump(&r);
	assert_true(r.app.st[0].closed);
	assert_string_equal(r.app.st[0].grpc_status, "0");
	assert_int_equal(r.rec.n, 1);
	assert_true(r.rec.grpc[0]);
	assert_int_equal(r.rec.grpc_status[0], 0);
	assert_int_equal(r.rec.grpc_req_msgs[0], 2);
	assert_int_equal(r.rec.grpc_resp_msgs[0], 3);
	assert_int_equal(r.rec.grpc_resp_size0[0], 3);
	rig_free(&r);
}

static void
test_h2_extended_connect(void **state)
{
	nghttp2_nv proto[] = { NV(":protocol", "websocket") };
	static const uint8_t hello[] = "hello";
	struct rig r;

	(void)state;
	/* Without the origin's consent, the client is not offered it. */
	rig_init(&r, 0, false, NULL);
	pump(&r);
	assert_int_equal(nghttp2_session_get_remote_settings(r.app.s,
	    NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL), 0);
	rig_free(&r);

	rig_init(&r, 0, true, NULL);
	pump(&r);
	assert_true(h2_upstream_connect_protocol(r.h2));
	assert_int_equal(nghttp2_session_get_remote_settings(r.app.s,
	    NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL), 1);
	r.app.body = hello;
	r.app.body_len = 5;
	app_request(&r.app, "CONNECT", "/chat", proto, 1, true);
	pump(&r);
	assert_int_equal(r.app.st[0].status, 200);
	assert_int_equal(r.org.requests, 0);	/* a tunnel, not a request */
	/* The origin echoes the tunnel's bytes. */
	assert_int_equal(r.app.st[0].body, 5);
	rig_free(&r);
	assert_int_equal(r.rec.n, 1);
	assert_string_equal(r.rec.method[0], "CONNECT");
	assert_string_equal(r.rec.path[0], "/chat");
}

static void
test_h2_upstream_eof_502(void **state)
{
	struct rig r;

	(void)state;
	rig_init(&r, 0, false, NULL);
	app_request(&r.app, "GET", "/hang", NULL, 0, false);
	pump(&r);
	h2_eof(r.h2, H2_UPSTREAM, r.now);
	r.no_origin = true;
	pump(&r);
	assert_true(r.app.st[0].closed);
	assert_int_equal(r.app.st[0].status, 502);
	assert_true(r.app.goaway);
	assert_int_equal(r.rec.n, 1);
	assert_non_null(strstr(r.rec.error[0], "server closed"));
	/* The client leaves too: the layer is done. */
	h2_eof(r.h2, H2_CLIENT, r.now);
	assert_true(h2_done(r.h2));
	rig_free(&r);
}

/* --- raw frames, as an attacker writes them -------------------------------------- */

static size_t
frame(uint8_t *p, uint32_t len, uint8_t type, uint8_t flags, uint32_t sid)
{
	p[0] = (uint8_t)(len >> 16);
	p[1] = (uint8_t)(len >> 8);
	p[2] = (uint8_t)len;
	p[3] = type;
	p[4] = flags;
	p[5] = (uint8_t)(sid >> 24) & 0x7f;
	p[6] = (uint8_t)(sid >> 16);
	p[7] = (uint8_t)(sid >> 8);
	p[8] = (uint8_t)sid;
	return 9;
}

/* GET / on sid, HPACK by hand: :method GET, :scheme https, :path /,
 * :authority a. */
static size_t
raw_get(uint8_t *p, uint32_t sid, uint8_t flags)
{
	static const uint8_t hb[] = { 0x82, 0x87, 0x84, 0x41, 0x01, 'a' };
	size_t n = frame(p, sizeof(hb), NGHTTP2_HEADERS, flags, sid);

	memcpy(p + n, hb, sizeof(hb));
	return n + sizeof(hb);
}

/* A raw client's preface and SETTINGS, the origin's SETTINGS through. */
static void
raw_start(struct rig *r)
{
	uint8_t p[64];
	size_t n = 0;

	memcpy(p, H2_PREFACE, H2_PREFACE_LEN);
	n = H2_PREFACE_LEN;
	n += frame(p + n, 0, NGHTTP2_SETTINGS, 0, 0);
	assert_int_equal(h2_feed(r->h2, H2_CLIENT, p, n, r->now), 0);
	move_in(r, H2_UPSTREAM, r->org.s);
}

/* Drain the client leg's output (an attacker that reads everything). */
static size_t
raw_drain(struct rig *r, uint32_t *goaway_code)
{
	const uint8_t *p;
	size_t n, total = 0, off;
	static uint8_t acc[1 << 20];
	static size_t acc_len;

	acc_len = 0;
	while ((n = h2_output(r->h2, H2_CLIENT, &p)) > 0) {
		if (acc_len + n <= sizeof(acc)) {
			memcpy(acc + acc_len, p, n);
			acc_len += n;
		}
		h2_output_done(r->h2, H2_CLIENT, n, r->now);
		total += n;
		move_in(r, H2_UPSTREAM, r->org.s);
		(void)move_out(r, H2_UPSTREAM, r->org.s, 0);
	}
	/* Find a GOAWAY among the frames. */
	for (off = 0; goaway_code != NULL && off + 9 <= acc_len;) {
		uint32_t len = (uint32_t)acc[off] << 16 |
		    (uint32_t)acc[off + 1] << 8 | acc[off + 2];

		if (acc[off + 3] == NGHTTP2_GOAWAY && off + 9 + 8 <= acc_len)
			*goaway_code = (uint32_t)acc[off + 13] << 24 |
			    (uint32_t)acc[off + 14] << 16 |
			    (uint32_t)acc[off + 15] << 8 | acc[off + 16];
		off += 9 + len;
	}
	return total;
}

static void
test_h2_ping_flood(void **state)
{
	static uint8_t buf[17 * 5000];
	struct rig r;
	struct h2_stats st;
	uint32_t code = 0;
	size_t n = 0;
	int i, rv = 0;

	(void)state;
	rig_init(&r, 0, false, NULL);
	r.no_origin = false;
	raw_start(&r);
	for (i = 0; i < 5000; i++) {
		n += frame(buf + n, 8, NGHTTP2_PING, 0, 0);
		memset(buf + n, 'p', 8);
		n += 8;
	}
	/* The attacker never reads: the ACKs would pile up. */
	for (i = 0; i < 5000 && rv == 0; i += 100)
		rv = h2_feed(r.h2, H2_CLIENT, buf + (size_t)i * 17, 1700, r.now);
	assert_int_equal(rv, -1);
	assert_non_null(h2_error(r.h2));
	print_message("ping flood: %s\n", h2_error(r.h2));
	/* Nothing more is read from it. */
	assert_false(h2_want_read(r.h2, H2_CLIENT));
	/* It is told why, although nghttp2's session is spent. */
	(void)raw_drain(&r, &code);
	assert_int_equal(code, NGHTTP2_ENHANCE_YOUR_CALM);
	h2_get_stats(r.h2, &st);
	assert_true(st.mem_peak < 1024 * 1024);
	rig_free(&r);
}

static void
test_h2_settings_and_empty_data_flood(void **state)
{
	static uint8_t buf[1 << 16];
	const uint8_t *out;
	struct rig r;
	uint32_t code = 0;
	size_t n;
	int i, rv = 0;

	(void)state;
	/* SETTINGS frames, read and acknowledged as fast as sent: only
	 * the rate stops them. */
	rig_init(&r, 0, false, NULL);
	raw_start(&r);
	for (i = 0; i < 3000 && rv == 0; i++) {
		n = frame(buf, 0, NGHTTP2_SETTINGS, 0, 0);
		rv = h2_feed(r.h2, H2_CLIENT, buf, n, r.now);
		(void)raw_drain(&r, &code);
	}
	assert_int_equal(rv, -1);
	assert_true(i <= H2_DEFAULT_CTRL_BURST + 2);
	assert_non_null(strstr(h2_error(r.h2), "flooded"));
	(void)raw_drain(&r, &code);
	assert_int_equal(code, NGHTTP2_ENHANCE_YOUR_CALM);
	rig_free(&r);

	/* Empty DATA frames on an open stream. */
	rig_init(&r, 0, false, NULL);
	raw_start(&r);
	n = raw_get(buf, 1, NGHTTP2_FLAG_END_HEADERS);
	assert_int_equal(h2_feed(r.h2, H2_CLIENT, buf, n, r.now), 0);
	for (i = 0, rv = 0; i < 3000 && rv == 0; i++) {
		n = frame(buf, 0, NGHTTP2_DATA, 0, 1);
		rv = h2_feed(r.h2, H2_CLIENT, buf, n, r.now);
	}
	assert_int_equal(rv, -1);
	assert_non_null(strstr(h2_error(r.h2), "flooded"));
	code = 0;
	(void)raw_drain(&r, &code);
	assert_int_equal(code, NGHTTP2_ENHANCE_YOUR_CALM);
	rig_free(&r);
	/* The open request was recorded with the reason. */
	assert_int_equal(r.rec.n, 1);
	assert_non_null(strstr(r.rec.error[0], "flooded"));

	/* Before the origin's SETTINGS came (ours to the client wait for
	 * them), the client still gets a SETTINGS frame first, then the
	 * GOAWAY. */
	rig_init(&r, 0, false, NULL);
	memcpy(buf, H2_PREFACE, H2_PREFACE_LEN);
	n = H2_PREFACE_LEN + frame(buf + H2_PREFACE_LEN, 0, NGHTTP2_SETTINGS,
	    0, 0);
	assert_int_equal(h2_feed(r.h2, H2_CLIENT, buf, n, r.now), 0);
	for (i = 0, rv = 0; i < 3000 && rv == 0; i++) {
		n = frame(buf, 0, NGHTTP2_SETTINGS, 0, 0);
		rv = h2_feed(r.h2, H2_CLIENT, buf, n, r.now);
	}
	assert_int_equal(rv, -1);
	n = h2_output(r.h2, H2_CLIENT, &out);
	assert_int_equal(n, 9 + 17);
	assert_int_equal(out[3], NGHTTP2_SETTINGS);
	assert_int_equal(out[2], 0);
	assert_int_equal(out[9 + 3], NGHTTP2_GOAWAY);
	assert_int_equal(out[9 + 16], NGHTTP2_ENHANCE_YOUR_CALM);
	h2_output_done(r.h2, H2_CLIENT, n, r.now);
	rig_free(&r);
}

static void
test_h2_continuation_flood(void **state)
{
	static uint8_t buf[4096];
	static const uint8_t hb[] = { 0x82, 0x87, 0x84 };
	struct rig r;
	uint32_t code = 0;
	size_t n;
	int i;

	(void)state;
	rig_init(&r, 0, false, NULL);
	raw_start(&r);
	n = frame(buf, sizeof(hb), NGHTTP2_HEADERS, 0, 1);
	memcpy(buf + n, hb, sizeof(hb));
	n += sizeof(hb);
	/* Each CONTINUATION adds a literal header "x: y". */
	for (i = 0; i < 40; i++) {
		static const uint8_t lit[] = { 0x00, 0x01, 'x', 0x01, 'y' };

		n += frame(buf + n, sizeof(lit), NGHTTP2_CONTINUATION, 0, 1);
		memcpy(buf + n, lit, sizeof(lit));
		n += sizeof(lit);
	}
	assert_int_equal(h2_feed(r.h2, H2_CLIENT, buf, n, r.now), -1);
	print_message("continuation flood: %s\n", h2_error(r.h2));
	assert_int_equal(r.org.requests, 0);
	/* A GOAWAY says so, written by hand: nghttp2's session is spent. */
	(void)raw_drain(&r, &code);
	assert_int_equal(code, NGHTTP2_ENHANCE_YOUR_CALM);
	rig_free(&r);
}

static void
test_h2_hpack_bomb_431(void **state)
{
	static char big[4000];
	nghttp2_nv nv[40];
	struct rig r;
	struct h2_stats st;
	int i;

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	rig_init(&r, 0, false, NULL);
	/* An app whose encoder indexes one 4 KB field and repeats it: a
	 * few hundred bytes on the wire, 160 KB decoded. */
	nghttp2_session_del(r.app.s);
	app_init(&r.app, true);
	for (i = 0; i < 40; i++) {
		nv[i].name = (uint8_t *)"x-bomb";
		nv[i].namelen = 6;
		nv[i].value = (uint8_t *)big;
		nv[i].valuelen = strlen(big);
		nv[i].flags = NGHTTP2_NV_FLAG_NONE;
	}
	app_request(&r.app, "GET", "/size/10", nv, 20, false);
	pump(&r);
	assert_int_equal(r.app.st[0].status, 431);
	assert_true(r.app.st[0].closed);
	assert_int_equal(r.org.requests, 0);
	assert_int_equal(r.rec.n, 1);
	assert_int_equal(r.rec.status[0], 431);
	assert_non_null(strstr(r.rec.error[0], "header list"));
	/* The connection carries on. */
	app_request(&r.app, "GET", "/size/10", NULL, 0, false);
	pump(&r);
	assert_int_equal(r.app.st[1].status, 200);
	h2_get_stats(r.h2, &st);
	assert_true(st.mem_peak < 1024 * 1024);
	rig_free(&r);
}

static void
test_h2_rapid_reset(void **state)
{
	static uint8_t buf[64];
	struct rig r;
	uint32_t code = 0;
	size_t n;
	int i, rv = 0;

	(void)state;
	rig_init(&r, 0, false, NULL);
	raw_start(&r);
	for (i = 0; i < 3000 && rv == 0; i++) {
		uint32_t sid = 1 + 2 * (uint32_t)i;

		n = raw_get(buf, sid, NGHTTP2_FLAG_END_HEADERS |
		    NGHTTP2_FLAG_END_STREAM);
		n += frame(buf + n, 4, NGHTTP2_RST_STREAM, 0, sid);
		memset(buf + n, 0, 3);
		buf[n + 3] = NGHTTP2_CANCEL;
		n += 4;
		rv = h2_feed(r.h2, H2_CLIENT, buf, n, r.now);
		if (i % 64 == 0)
			(void)raw_drain(&r, &code);
	}
	(void)raw_drain(&r, &code);
	print_message("rapid reset: stopped after %d streams: %s\n", i,
	    h2_error(r.h2) ? h2_error(r.h2) : "-");
	assert_true(i < 1200);
	assert_non_null(h2_error(r.h2));
	/* The reason names the attack, not just nghttp2's GOAWAY code. */
	assert_non_null(strstr(h2_error(r.h2), "rapid reset"));
	assert_int_equal(code, NGHTTP2_INTERNAL_ERROR);
	/* Few requests ever reached the origin. */
	assert_true(r.org.requests < 1200);
	rig_free(&r);
}

static void
test_h2_bad_preface(void **state)
{
	struct rig r;

	(void)state;
	rig_init(&r, 0, false, NULL);
	assert_int_equal(h2_feed(r.h2, H2_CLIENT,
	    (const uint8_t *)"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27, r.now), -1);
	assert_non_null(h2_error(r.h2));
	rig_free(&r);
}

static void
test_h2_memory_budget(void **state)
{
	struct h2_config cfg;
	struct rig r;
	char path[32];
	int i;

	(void)state;
	/* A budget too small for the streams the client opens: the layer
	 * refuses cleanly, and frees what it had. */
	h2_config_default(&cfg);
	cfg.mem_limit = 300 * 1024;
	rig_init(&r, 0, false, &cfg);
	pump(&r);
	for (i = 0; i < 90; i++) {
		snprintf(path, sizeof(path), "/size/%d", 200000);
		app_request(&r.app, "GET", path, NULL, 0, false);
	}
	r.app.slow = true;
	pump(&r);
	{
		struct h2_stats st;

		h2_get_stats(r.h2, &st);
		assert_true(st.mem_peak <= cfg.mem_limit);
	}
	/* the client hears why: our limit, not its protocol error */
	assert_non_null(h2_error(r.h2));
	assert_non_null(strstr(h2_error(r.h2), "per-connection memory cap"));
	assert_true(r.app.goaway);
	assert_int_equal(r.app.goaway_code, NGHTTP2_INTERNAL_ERROR);
	rig_free(&r);
}

/*
 * proxyd's memory budget sees every byte the connection allocates, and
 * gets every one back: a budget already charged with 1 MiB by others
 * (so that a byte given back twice would show: membudget_give stops at
 * 0) is exactly there again once the connection is freed, after
 * requests, bodies both ways, trailers, resets and a stream left open.
 */
static void
test_h2_budget_accounting(void **state)
{
	static uint8_t body[200 * 1024];
	const size_t others = 1024 * 1024;
	struct membudget budget;
	struct h2_config cfg;
	struct h2_stats st;
	struct rig r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(body); i++)
		body[i] = pattern(i);
	membudget_init(&budget, 0);		/* no limit: counts only */
	membudget_force(&budget, others);
	h2_config_default(&cfg);
	cfg.budget = &budget;
	rig_init(&r, 0, false, &cfg);
	/* The connection's struct and nghttp2's sessions, at once. */
	h2_get_stats(r.h2, &st);
	assert_true(st.mem > 0);
	assert_true(budget.used > others + st.mem);
	r.app.body = body;
	r.app.body_len = sizeof(body);
	r.app.send_trailers = true;
	app_request(&r.app, "POST", "/echo", NULL, 0, true);
	app_request(&r.app, "GET", "/size/300000", NULL, 0, false);
	app_request(&r.app, "GET", "/trailers", NULL, 0, false);
	app_request(&r.app, "GET", "/rst", NULL, 0, false);
	app_request(&r.app, "GET", "/hang", NULL, 0, false);
	pump(&r);
	assert_int_equal(r.app.st[0].body, sizeof(body));
	assert_int_equal(r.app.st[1].body, 300000);
	assert_int_equal(r.rec.n, 4);		/* /hang is still open */
	h2_get_stats(r.h2, &st);
	/* Bodies recorded (300 KiB kept of them at least) are charged too. */
	assert_true(budget.high_water > others + st.mem_peak);
	assert_true(budget.high_water > others + 500 * 1024);
	rig_free(&r);
	assert_int_equal(r.rec.n, 5);
	assert_int_equal(budget.used, others);
	assert_int_equal(budget.refused, 0);
}

/*
 * A budget with little room for bodies: the request body's record stops
 * and is marked cut by the budget, and the exchange itself is whole (the
 * echo comes back complete); the budget is back where it was after.
 */
static void
test_h2_budget_cuts_bodies(void **state)
{
	static uint8_t body[1024 * 1024];
	struct membudget budget;
	struct h2_config cfg;
	struct h2_stats st;
	struct rig r;
	size_t i, start;
	int k;

	(void)state;
	for (i = 0; i < sizeof(body); i++)
		body[i] = pattern(i);
	/* 1 MiB: 512 KiB for buffers and bodies, bodies up to 384 KiB. */
	membudget_init(&budget, 1024 * 1024);
	h2_config_default(&cfg);
	cfg.budget = &budget;
	rig_init(&r, 0, false, &cfg);
	start = budget.used;
	r.app.body = body;
	r.app.body_len = sizeof(body);
	app_request(&r.app, "POST", "/echo", NULL, 0, true);
	pump(&r);
	assert_true(r.app.st[0].closed);
	assert_int_equal(r.app.st[0].status, 200);
	assert_int_equal(r.app.st[0].rst, 0);
	assert_int_equal(r.app.st[0].body, sizeof(body));
	assert_int_equal(r.app.st[0].sum, 0);
	k = rec_find(&r.rec, "/echo");
	assert_true(k >= 0);
	assert_string_equal(r.rec.error[k], "-");
	assert_int_equal(r.rec.req_size[k], sizeof(body));
	assert_int_equal(r.rec.resp_size[k], sizeof(body));
	assert_true(r.rec.req_cut[k]);
	assert_true(r.rec.req_kept[k] < sizeof(body));
	assert_true(r.rec.resp_cut[k]);
	h2_get_stats(r.h2, &st);
	assert_int_equal(st.budget_cut, 2);
	assert_true(budget.refused > 0);
	print_message("budget cut: request kept %zu of %zu, response %zu\n",
	    r.rec.req_kept[k], sizeof(body), r.rec.resp_kept[k]);
	rig_free(&r);
	(void)start;
	assert_int_equal(budget.used, 0);
}

/*
 * The connection's own record budget cuts a body the same way, and the
 * record is a prefix: a later chunk that would fit is not appended after
 * one that did not.
 */
static void
test_h2_record_budget_prefix(void **state)
{
	static uint8_t body[256 * 1024];
	struct h2_config cfg;
	struct rig r;
	size_t i;
	int k;

	(void)state;
	for (i = 0; i < sizeof(body); i++)
		body[i] = pattern(i);
	h2_config_default(&cfg);
	cfg.record_budget = 100000;
	rig_init(&r, 0, false, &cfg);
	r.app.body = body;
	r.app.body_len = sizeof(body);
	app_request(&r.app, "POST", "/echo", NULL, 0, true);
	pump(&r);
	assert_int_equal(r.app.st[0].body, sizeof(body));
	k = rec_find(&r.rec, "/echo");
	assert_true(k >= 0);
	assert_int_equal(r.rec.req_kept[k], 100000);
	assert_true(r.rec.req_cut[k]);
	assert_int_equal(r.rec.resp_kept[k], 0);	/* nothing left for it */
	assert_true(r.rec.resp_cut[k]);
	rig_free(&r);
}

/* --- the same layer behind the seam (layer.h), as relay_tls.c drives it ---- */

/* One side's nghttp2 output into the layer, through the room it offers. */
static bool
seam_in(struct layer *l, enum layer_side from, nghttp2_session *s,
    uint64_t now)
{
	static uint8_t pend[2][1 << 20];
	static size_t plen[2];
	const uint8_t *d;
	ssize_t n;
	uint8_t *p;
	size_t room, k;
	bool moved = false;

	while (plen[from] < sizeof(pend[0]) - 65536 &&
	    (n = nghttp2_session_mem_send(s, &d)) > 0) {
		memcpy(pend[from] + plen[from], d, (size_t)n);
		plen[from] += (size_t)n;
	}
	while (plen[from] > 0 && (room = l->ops->in_space(l, from, &p)) > 0) {
		k = plen[from] < room ? plen[from] : room;
		memcpy(p, pend[from], k);
		assert_int_equal(l->ops->in_commit(l, from, k, now), 0);
		memmove(pend[from], pend[from] + k, plen[from] - k);
		plen[from] -= k;
		moved = true;
	}
	return moved;
}

static bool
seam_out(struct layer *l, enum layer_side to, nghttp2_session *s,
    uint64_t now)
{
	const uint8_t *p;
	size_t len;
	bool moved = false;

	while ((p = l->ops->out_peek(l, to, &len)) != NULL && len > 0) {
		assert_int_equal(nghttp2_session_mem_recv(s, p, len), (ssize_t)len);
		l->ops->out_consume(l, to, len, now);
		moved = true;
	}
	return moved;
}

static void
seam_pump(struct layer *l, struct app *a, struct origin *o, uint64_t *now)
{
	int rounds;
	bool moved;

	for (rounds = 0; rounds < 100000; rounds++) {
		*now += 10;
		moved = seam_in(l, LAYER_CLIENT, a->s, *now);
		moved |= seam_in(l, LAYER_SERVER, o->s, *now);
		moved |= seam_out(l, LAYER_SERVER, o->s, *now);
		moved |= seam_out(l, LAYER_CLIENT, a->s, *now);
		if (!moved)
			return;
	}
	fail_msg("seam pump did not settle");
}

static void
exchange_rec(void *arg, const struct store_http *h)
{
	record(arg, h);
}

static void
test_layer_h2_through_the_seam(void **state)
{
	struct rec rec;
	struct layer_env env = {
		.flow_id = 9, .scheme = "https", .default_host = "origin.test",
		.body_cap = 4096, .rec = { .exchange = exchange_rec, .arg = &rec },
	};
	struct app app;
	struct origin org;
	struct layer *l;
	uint64_t now = 1000000;

	(void)state;
	memset(&rec, 0, sizeof(rec));
	app_init(&app, false);
	origin_init(&org, 0, false);
	assert_non_null(l = layer_h2_new(&env));
	assert_string_equal(l->ops->name, "h2");
	/* It re-frames: no transparent path for the plain pump. */
	assert_null(l->ops->observe);
	app_request(&app, "GET", "/size/100000", NULL, 0, false);
	seam_pump(l, &app, &org, &now);
	assert_true(app.st[0].closed);
	assert_int_equal(app.st[0].status, 200);
	assert_int_equal(app.st[0].body, 100000);
	assert_int_equal(rec.n, 1);
	assert_string_equal(rec.version[0], "HTTP/2.0");
	assert_int_equal(l->ops->held(l), 0);
	assert_false(l->ops->out_done(l, LAYER_CLIENT));
	assert_false(l->ops->out_done(l, LAYER_SERVER));
	/* The app leaves: the origin gets a GOAWAY, then both sides are done. */
	assert_int_equal(l->ops->in_eof(l, LAYER_CLIENT, now), 0);
	assert_false(l->ops->out_done(l, LAYER_SERVER));	/* GOAWAY first */
	seam_pump(l, &app, &org, &now);
	assert_true(nghttp2_session_get_remote_settings(org.s,
	    NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS) > 0);
	assert_true(l->ops->out_done(l, LAYER_SERVER));
	assert_true(l->ops->out_done(l, LAYER_CLIENT));
	assert_string_equal(l->why, "");
	l->ops->free(l, now, NULL);
	nghttp2_session_del(app.s);
	nghttp2_session_del(org.s);
}

static void
test_layer_h2_flood_ends_in_order(void **state)
{
	static uint8_t buf[17 * 3000];
	struct rec rec;
	struct layer_env env = {
		.flow_id = 10, .scheme = "https", .default_host = "origin.test",
		.rec = { .exchange = exchange_rec, .arg = &rec },
	};
	struct origin org;
	struct layer *l;
	uint64_t now = 1000000;
	size_t n = 0, off = 0, room, k;
	uint8_t *p;
	int i;

	(void)state;
	memset(&rec, 0, sizeof(rec));
	origin_init(&org, 0, false);
	assert_non_null(l = layer_h2_new(&env));
	memcpy(buf, H2_PREFACE, H2_PREFACE_LEN);
	n = H2_PREFACE_LEN;
	n += frame(buf + n, 0, NGHTTP2_SETTINGS, 0, 0);
	for (i = 0; i < 2000; i++) {
		n += frame(buf + n, 8, NGHTTP2_PING, 0, 0);
		memset(buf + n, 'p', 8);
		n += 8;
	}
	/* A client that writes PINGs and reads its answers at once. */
	while (off < n && (room = l->ops->in_space(l, LAYER_CLIENT, &p)) > 0) {
		const uint8_t *o;
		size_t len;

		k = n - off < room ? n - off : room;
		if (k > 170)
			k = 170;
		memcpy(p, buf + off, k);
		assert_int_equal(l->ops->in_commit(l, LAYER_CLIENT, k, now), 0);
		off += k;
		while ((o = l->ops->out_peek(l, LAYER_CLIENT, &len)) != NULL &&
		    len > 0)
			l->ops->out_consume(l, LAYER_CLIENT, len, now);
		(void)seam_in(l, LAYER_SERVER, org.s, now);
		(void)seam_out(l, LAYER_SERVER, org.s, now);
	}
	/* Refused before the end of it; no more room for that client. */
	assert_true(off < n);
	assert_int_equal(l->ops->in_space(l, LAYER_CLIENT, &p), 0);
	assert_non_null(strstr(l->why, "flooded"));
	/* The GOAWAYs go out, then both sides are done. */
	{
		const uint8_t *o;
		size_t len;

		while ((o = l->ops->out_peek(l, LAYER_CLIENT, &len)) != NULL &&
		    len > 0)
			l->ops->out_consume(l, LAYER_CLIENT, len, now);
	}
	(void)seam_out(l, LAYER_SERVER, org.s, now);
	assert_true(l->ops->out_done(l, LAYER_CLIENT));
	assert_true(l->ops->out_done(l, LAYER_SERVER));
	l->ops->free(l, now, "shutdown");
	nghttp2_session_del(org.s);
}

/*
 * Several connections through the seam, as proxyd runs them, charged to
 * one budget: while they run it holds their memory, and once they are
 * all freed it is exactly where it started.
 */
static void
test_layer_h2_budget_returns(void **state)
{
	enum { NC = 3 };
	const size_t others = 512 * 1024;
	struct membudget budget;
	struct rec rec;
	struct layer_env env = {
		.flow_id = 11, .scheme = "https", .default_host = "origin.test",
		.body_cap = 64 * 1024, .budget = &budget,
		.rec = { .exchange = exchange_rec, .arg = &rec },
	};
	struct app app[NC];
	struct origin org[NC];
	struct layer *l[NC];
	uint64_t now = 1000000;
	size_t during;
	int i;

	(void)state;
	memset(&rec, 0, sizeof(rec));
	membudget_init(&budget, 0);
	membudget_force(&budget, others);
	for (i = 0; i < NC; i++) {
		app_init(&app[i], false);
		origin_init(&org[i], 0, false);
		assert_non_null(l[i] = layer_h2_new(&env));
		app_request(&app[i], "GET", "/size/200000", NULL, 0, false);
		app_request(&app[i], "GET", "/hang", NULL, 0, false);
	}
	for (i = 0; i < NC; i++) {
		seam_pump(l[i], &app[i], &org[i], &now);
		assert_int_equal(app[i].st[0].body, 200000);
	}
	during = budget.used;
	assert_true(during > others + NC * 16 * 1024);
	for (i = 0; i < NC; i++) {
		l[i]->ops->free(l[i], now, "shutdown");
		nghttp2_session_del(app[i].s);
		nghttp2_session_del(org[i].s);
	}
	assert_int_equal(rec.n, 2 * NC);
	print_message("%d connections: budget %zu while open, %zu after "
	    "(%zu before)\n", NC, during, budget.used, others);
	assert_int_equal(budget.used, others);
}

/*
 * Back-pressure from the budget: an upload towards an origin that reads
 * nothing.  While proxyd's budget is tight the layer stops reading the
 * client as soon as DATA of it waits (it holds the output kept ready and
 * about one read), where with room it takes a stream window; once the
 * origin reads, the whole body goes through: slowed, never dropped.
 */
static void
test_layer_h2_budget_backpressure(void **state)
{
	static uint8_t body[3 * 1024 * 1024];
	const size_t fake = 48 * 1024 * 1024;
	struct membudget budget;
	struct rec rec;
	struct layer_env env = {
		.flow_id = 12, .scheme = "https", .default_host = "origin.test",
		.body_cap = 4096, .budget = &budget,
		.rec = { .exchange = exchange_rec, .arg = &rec },
	};
	struct app app;
	struct origin org;
	struct layer *l;
	uint64_t now = 1000000;
	size_t held_tight = 0, held_room = 0, i;
	uint8_t *p;
	int round;

	(void)state;
	for (i = 0; i < sizeof(body); i++)
		body[i] = pattern(i);
	memset(&rec, 0, sizeof(rec));
	membudget_init(&budget, 64 * 1024 * 1024);	/* limit 48 MiB */
	app_init(&app, false);
	origin_init(&org, 0, false);
	assert_non_null(l = layer_h2_new(&env));
	seam_pump(l, &app, &org, &now);		/* SETTINGS both ways */
	/* Others took the whole budget: it is tight. */
	membudget_force(&budget, fake);
	app.body = body;
	app.body_len = sizeof(body);
	app_request(&app, "POST", "/hang", NULL, 0, true);
	for (round = 0; round < 200; round++) {
		now += 10;
		(void)seam_in(l, LAYER_CLIENT, app.s, now);
		(void)seam_out(l, LAYER_CLIENT, app.s, now);
		if (l->ops->held(l) > held_tight)
			held_tight = l->ops->held(l);
	}
	/* Held back: nothing more taken from the client. */
	assert_int_equal(l->ops->in_space(l, LAYER_CLIENT, &p), 0);
	assert_true(held_tight > 0);
	assert_true(held_tight <= 16384 + 16384 + 16384 + 16384);
	/* The budget has room again: the client is read up to its window. */
	membudget_give(&budget, fake);
	for (round = 0; round < 200; round++) {
		now += 10;
		(void)seam_in(l, LAYER_CLIENT, app.s, now);
		(void)seam_out(l, LAYER_CLIENT, app.s, now);
		if (l->ops->held(l) > held_room)
			held_room = l->ops->held(l);
	}
	assert_true(held_room >= 512 * 1024);
	/* Tight again, and the origin reads: all of it goes through. */
	membudget_force(&budget, fake);
	seam_pump(l, &app, &org, &now);
	assert_int_equal(org.st[0].body, sizeof(body));
	assert_int_equal(app.body_off, sizeof(body));
	print_message("origin not reading: held %zu bytes with the budget "
	    "tight, %zu with room\n", held_tight, held_room);
	l->ops->free(l, now, "shutdown");
	nghttp2_session_del(app.s);
	nghttp2_session_del(org.s);
	assert_int_equal(rec.n, 1);
	assert_int_equal(budget.used, fake);
}

/*
 * Holding back never deadlocks: with the budget tight, an upload queued
 * behind the origin's limit of one stream (its DATA waits in the layer)
 * while a download on the open stream needs the client's window updates.
 * The client is read while DATA waits for it, so the download ends, the
 * upload's stream opens, and both complete.
 */
static void
test_layer_h2_budget_no_deadlock(void **state)
{
	static uint8_t body[2 * 1024 * 1024];
	const size_t fake = 48 * 1024 * 1024;
	struct membudget budget;
	struct rec rec;
	struct layer_env env = {
		.flow_id = 13, .scheme = "https", .default_host = "origin.test",
		.body_cap = 4096, .budget = &budget,
		.rec = { .exchange = exchange_rec, .arg = &rec },
	};
	struct app app;
	struct origin org;
	struct layer *l;
	uint64_t now = 1000000;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(body); i++)
		body[i] = pattern(i);
	memset(&rec, 0, sizeof(rec));
	membudget_init(&budget, 64 * 1024 * 1024);
	app_init(&app, false);
	origin_init(&org, 1, false);
	assert_non_null(l = layer_h2_new(&env));
	seam_pump(l, &app, &org, &now);
	membudget_force(&budget, fake);
	app.body = body;
	app.body_len = sizeof(body);
	app_request(&app, "GET", "/size/4194304", NULL, 0, false);
	app_request(&app, "POST", "/echo", NULL, 0, true);
	seam_pump(l, &app, &org, &now);
	assert_true(app.st[0].closed);
	assert_int_equal(app.st[0].body, 4194304);
	assert_int_equal(app.st[0].sum, 0);
	assert_true(app.st[1].closed);
	assert_int_equal(app.st[1].status, 200);
	assert_int_equal(app.st[1].body, sizeof(body));
	assert_int_equal(app.st[1].sum, 0);
	assert_int_equal(org.max_open, 1);
	l->ops->free(l, now, NULL);
	nghttp2_session_del(app.s);
	nghttp2_session_del(org.s);
	assert_int_equal(rec.n, 2);
	assert_int_equal(budget.used, fake);
}

/* A request body of its own per stream: the pattern, `left` bytes. */
struct upl {
	uint64_t	 off, left;
};

static ssize_t
upl_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
    uint32_t *flags, nghttp2_data_source *src, void *u)
{
	struct upl *b = src->ptr;
	size_t n = b->left < len ? (size_t)b->left : len, i;

	(void)s; (void)id; (void)u;
	for (i = 0; i < n; i++)
		buf[i] = pattern(b->off + i);
	b->off += n;
	b->left -= n;
	if (b->left == 0)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/*
 * Nor when what waits is a request body queued behind the origin's limit
 * of one stream, while the open stream's body is still to be read from
 * the client: holding the client back until the queued body went out
 * would wait for ever.  Both uploads complete, one after the other.
 */
static void
test_layer_h2_budget_queued_upload(void **state)
{
	const size_t fake = 48 * 1024 * 1024;
	struct membudget budget;
	struct rec rec;
	struct layer_env env = {
		.flow_id = 14, .scheme = "https", .default_host = "origin.test",
		.body_cap = 4096, .budget = &budget,
		.rec = { .exchange = exchange_rec, .arg = &rec },
	};
	nghttp2_nv nv[] = { NV(":method", "POST"), NV(":scheme", "https"),
	    NV(":path", "/echo"), NV(":authority", "origin.test") };
	struct upl up[2] = { { 0, 1536 * 1024 }, { 0, 1024 * 1024 } };
	nghttp2_data_provider prd[2];
	struct app app;
	struct origin org;
	struct layer *l;
	uint64_t now = 1000000;
	int i;

	(void)state;
	memset(&rec, 0, sizeof(rec));
	membudget_init(&budget, 64 * 1024 * 1024);
	app_init(&app, false);
	origin_init(&org, 1, false);
	assert_non_null(l = layer_h2_new(&env));
	seam_pump(l, &app, &org, &now);
	membudget_force(&budget, fake);
	for (i = 0; i < 2; i++) {
		prd[i].source.ptr = &up[i];
		prd[i].read_callback = upl_read;
		memset(&app.st[app.n], 0, sizeof(app.st[0]));
		app.st[app.n++].id = nghttp2_submit_request(app.s, NULL, nv, 4,
		    &prd[i], NULL);
		assert_true(app.st[i].id > 0);
	}
	seam_pump(l, &app, &org, &now);
	for (i = 0; i < 2; i++) {
		assert_true(app.st[i].closed);
		assert_int_equal(app.st[i].status, 200);
		assert_int_equal(app.st[i].body, i == 0 ? 1536 * 1024 :
		    1024 * 1024);
		assert_int_equal(app.st[i].sum, 0);
	}
	assert_int_equal(org.max_open, 1);
	l->ops->free(l, now, NULL);
	nghttp2_session_del(app.s);
	nghttp2_session_del(org.s);
	assert_int_equal(rec.n, 2);
	assert_int_equal(budget.used, fake);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_h2_get),
		cmocka_unit_test(test_h2_post_body),
		cmocka_unit_test(test_h2_trailers),
		cmocka_unit_test(test_h2_concurrency_beyond_upstream_limit),
		cmocka_unit_test(test_h2_rst_from_client),
		cmocka_unit_test(test_h2_rst_from_server),
		cmocka_unit_test(test_h2_goaway_from_server),
		cmocka_unit_test(test_h2_goaway_from_client),
		cmocka_unit_test(test_h2_slow_reader_bounded),
		cmocka_unit_test(test_h2_stalled_stream_reaped),
		cmocka_unit_test(test_h2_grpc),
		cmocka_unit_test(test_h2_extended_connect),
		cmocka_unit_test(test_h2_upstream_eof_502),
		cmocka_unit_test(test_h2_ping_flood),
		cmocka_unit_test(test_h2_settings_and_empty_data_flood),
		cmocka_unit_test(test_h2_continuation_flood),
		cmocka_unit_test(test_h2_hpack_bomb_431),
		cmocka_unit_test(test_h2_rapid_reset),
		cmocka_unit_test(test_h2_bad_preface),
		cmocka_unit_test(test_h2_memory_budget),
		cmocka_unit_test(test_h2_budget_accounting),
		cmocka_unit_test(test_h2_budget_cuts_bodies),
		cmocka_unit_test(test_h2_record_budget_prefix),
		cmocka_unit_test(test_layer_h2_through_the_seam),
		cmocka_unit_test(test_layer_h2_flood_ends_in_order),
		cmocka_unit_test(test_layer_h2_budget_returns),
		cmocka_unit_test(test_layer_h2_budget_backpressure),
		cmocka_unit_test(test_layer_h2_budget_no_deadlock),
		cmocka_unit_test(test_layer_h2_budget_queued_upload),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
