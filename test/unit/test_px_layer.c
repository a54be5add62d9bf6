/*
 * Unit tests for the protocol-layer seam (proxyd/layer.h) through its first
 * layer, layer_http1.c: no sockets, no clock (time is passed in), the way
 * relay_tls.c drives a layer.  What a layer must do whatever its protocol:
 * bytes in per side, bytes out per side in order, room only once what it
 * owes the other side went out (back-pressure), a side's end reported once
 * everything before it is out, exchanges to the recorder with the times it
 * was given, memory given back when idle.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proxyd/layer.h"
#include "proxyd/store.h"

struct rec {
	int		 n;
	char		 method[16];
	char		 host[64];
	char		 target[64];
	int		 status;
	uint64_t	 req_start_us;
	uint64_t	 resp_end_us;
	char		 error[64];
};

static void
exchange(void *arg, const struct store_http *h)
{
	struct rec *r = arg;

	r->n++;
	snprintf(r->method, sizeof(r->method), "%s", h->method);
	snprintf(r->host, sizeof(r->host), "%s", h->host);
	snprintf(r->target, sizeof(r->target), "%s", h->target);
	r->status = h->status;
	r->req_start_us = h->req_start_us;
	r->resp_end_us = h->resp_end_us;
	snprintf(r->error, sizeof(r->error), "%s", h->error ? h->error : "");
}

static struct layer *
new_layer(struct rec *r)
{
	struct layer_env env = {
		.flow_id = 7,
		.scheme = "https",
		.default_host = "example.test",
		.body_cap = 1024,
		.rec = { .exchange = exchange, .arg = r },
	};
	struct layer *l = layer_http1_new(&env);

	assert_non_null(l);
	assert_string_equal(l->ops->name, "http/1");
	return l;
}

/* Put s into the layer from side `from`; returns how many bytes it took. */
static size_t
put(struct layer *l, enum layer_side from, const char *s, uint64_t now)
{
	uint8_t *p;
	size_t room = l->ops->in_space(l, from, &p), n = strlen(s);

	if (room == 0)
		return 0;
	if (n > room)
		n = room;
	memcpy(p, s, n);
	assert_int_equal(l->ops->in_commit(l, from, n, now), 0);
	return n;
}

/* Everything pending towards `to`, as a string, all of it consumed. */
static void
take(struct layer *l, enum layer_side to, char *out, size_t outlen, uint64_t now)
{
	const uint8_t *p;
	size_t len;

	p = l->ops->out_peek(l, to, &len);
	assert_true(len < outlen);
	if (len > 0)
		memcpy(out, p, len);
	out[len] = '\0';
	l->ops->out_consume(l, to, len, now);
}

static void
bytes_cross_unchanged_and_exchange_recorded(void **state)
{
	static const char req[] = "GET /a HTTP/1.1\r\nHost: h.test\r\n\r\n";
	static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
	struct rec r = { 0 };
	struct layer *l = new_layer(&r);
	char out[256];

	(void)state;
	assert_int_equal(put(l, LAYER_CLIENT, req, 1000), strlen(req));
	take(l, LAYER_SERVER, out, sizeof(out), 1001);
	assert_string_equal(out, req);
	assert_int_equal(put(l, LAYER_SERVER, resp, 2000), strlen(resp));
	take(l, LAYER_CLIENT, out, sizeof(out), 2001);
	assert_string_equal(out, resp);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.method, "GET");
	assert_string_equal(r.host, "h.test");
	assert_string_equal(r.target, "/a");
	assert_int_equal(r.status, 200);
	/* The times are the ones passed in: the layer reads no clock. */
	assert_int_equal(r.req_start_us, 1000);
	assert_int_equal(r.resp_end_us, 2000);
	assert_int_equal(l->ops->held(l), 0);
	l->ops->free(l, 3000, NULL);
}

static void
no_room_until_the_other_side_took_it(void **state)
{
	struct rec r = { 0 };
	struct layer *l = new_layer(&r);
	const uint8_t *p;
	uint8_t *in;
	size_t len;
	char out[256];

	(void)state;
	assert_int_equal(put(l, LAYER_CLIENT, "GET / HTTP/1.1\r\n", 1), 16);
	/* Back-pressure: nothing more from the client while 16 bytes wait. */
	assert_int_equal(l->ops->in_space(l, LAYER_CLIENT, &in), 0);
	assert_int_equal(l->ops->held(l), 16);
	/* The other direction is independent. */
	assert_true(l->ops->in_space(l, LAYER_SERVER, &in) > 0);
	(void)l->ops->in_commit(l, LAYER_SERVER, 0, 2);
	/* Partly out: still no room. */
	p = l->ops->out_peek(l, LAYER_SERVER, &len);
	assert_int_equal(len, 16);
	assert_memory_equal(p, "GET / HTTP/1.1\r\n", 16);
	l->ops->out_consume(l, LAYER_SERVER, 5, 3);
	assert_int_equal(l->ops->in_space(l, LAYER_CLIENT, &in), 0);
	take(l, LAYER_SERVER, out, sizeof(out), 4);
	assert_string_equal(out, " HTTP/1.1\r\n");
	assert_true(l->ops->in_space(l, LAYER_CLIENT, &in) > 0);
	(void)l->ops->in_commit(l, LAYER_CLIENT, 0, 5);
	assert_int_equal(l->ops->held(l), 0);
	l->ops->free(l, 6, "cut");
}

static void
end_reported_after_the_last_bytes(void **state)
{
	struct rec r = { 0 };
	struct layer *l = new_layer(&r);
	uint8_t *in;
	char out[256];

	(void)state;
	assert_int_equal(put(l, LAYER_SERVER, "tail", 1), 4);
	assert_int_equal(l->ops->in_eof(l, LAYER_SERVER, 2), 0);
	/* The server's end reaches the client only after "tail". */
	assert_false(l->ops->out_done(l, LAYER_CLIENT));
	assert_false(l->ops->out_done(l, LAYER_SERVER));
	take(l, LAYER_CLIENT, out, sizeof(out), 3);
	assert_string_equal(out, "tail");
	assert_true(l->ops->out_done(l, LAYER_CLIENT));
	/* Nothing is taken from a side whose stream ended. */
	assert_int_equal(l->ops->in_space(l, LAYER_SERVER, &in), 0);
	assert_false(l->ops->out_done(l, LAYER_SERVER));
	l->ops->free(l, 4, NULL);
}

/* Bad input stops the looking, never the bytes. */
static void
garbage_still_relayed(void **state)
{
	static const char junk[] = "\x01\x02 not http at all\r\n\r\n";
	struct rec r = { 0 };
	struct layer *l = new_layer(&r);
	char out[256];
	int i;

	(void)state;
	for (i = 0; i < 3; i++) {
		assert_int_equal(put(l, LAYER_CLIENT, junk, 10 + (uint64_t)i),
		    strlen(junk));
		take(l, LAYER_SERVER, out, sizeof(out), 20);
		assert_string_equal(out, junk);
	}
	/* The transparent path reports the stop to the plain pump. */
	assert_int_equal(l->ops->observe(l, LAYER_CLIENT,
	    (const uint8_t *)junk, strlen(junk), 30), -1);
	l->ops->free(l, 40, NULL);
}

/* An unfinished exchange is recorded with why the flow was cut. */
static void
cut_flow_records_pending_exchange(void **state)
{
	static const char req[] = "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\nabc";
	struct rec r = { 0 };
	struct layer *l = new_layer(&r);
	char out[256];

	(void)state;
	assert_int_equal(put(l, LAYER_CLIENT, req, 100), strlen(req));
	take(l, LAYER_SERVER, out, sizeof(out), 101);
	assert_int_equal(r.n, 0);
	l->ops->free(l, 200, "upstream reset");
	assert_int_equal(r.n, 1);
	assert_string_equal(r.method, "POST");
	assert_string_equal(r.error, "upstream reset");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bytes_cross_unchanged_and_exchange_recorded),
		cmocka_unit_test(no_room_until_the_other_side_took_it),
		cmocka_unit_test(end_reported_after_the_last_bytes),
		cmocka_unit_test(garbage_still_relayed),
		cmocka_unit_test(cut_flow_records_pending_exchange),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
