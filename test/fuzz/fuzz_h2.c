/*
 * libFuzzer harness for proxyd/h2.c, the HTTP/2 layer: both the captured
 * program (client leg) and the origin (upstream leg) are untrusted.  The
 * input is a script of chunks, as in fuzz_httpobs: each chunk's first
 * byte says which leg sent it (high bit: the upstream) and its length
 * (low 7 bits, +1).  After every chunk the layer's output on both legs is
 * written out in full, as a transport that keeps up would, and the clock
 * moves on, now and then past the stall deadline.  Whatever the bytes, the
 * layer must not crash, must keep within its memory budget, must emit
 * only exchanges whose pointers it owns (each is read in full, so ASan
 * sees a stray one), and must free everything, and give proxyd's memory
 * budget back every byte it charged (a small one, already charged by
 * others, so that bodies are cut and reading is held back on the way).
 *
 * Seeds (test/fuzz/corpus/h2/) are transcripts of the unit tests' real
 * nghttp2 peers: H2_SEED_DIR=dir build/test/test_px_h2 writes them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/h2.h"
#include "proxyd/membudget.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink;

static void
touch(const void *p, size_t n)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; b && i < n; i++)
		sink += b[i];
}

static void
touch_str(const char *s)
{
	if (s)
		touch(s, strlen(s));
}

static void
touch_fields(const struct http_field *f, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		touch(f[i].name, f[i].name_len);
		touch(f[i].value, f[i].value_len);
	}
}

static void
emit(void *arg, const struct store_http *h)
{
	(void)arg;
	touch_str(h->scheme);
	touch_str(h->method);
	touch_str(h->target);
	touch_str(h->host);
	touch_str(h->reason);
	touch_str(h->error);
	touch_str(h->http_version);
	touch_fields(h->req_fields, h->n_req_fields);
	touch_fields(h->resp_fields, h->n_resp_fields);
	touch_fields(h->req_trailers, h->n_req_trailers);
	touch_fields(h->resp_trailers, h->n_resp_trailers);
	touch(h->req_body, h->req_body_len);
	touch(h->resp_body, h->resp_body_len);
	if (h->grpc != NULL) {
		touch_str(h->grpc->message);
		touch(h->grpc->req_sizes, h->grpc->n_req_sizes * 4);
		touch(h->grpc->resp_sizes, h->grpc->n_resp_sizes * 4);
	}
	if (h->req_body_len > h->req_body_size ||
	    h->resp_body_len > h->resp_body_size)
		__builtin_trap();
}

static void
drain(struct h2 *c, uint64_t now)
{
	const uint8_t *p;
	size_t n;
	int leg, rounds;

	for (rounds = 0; rounds < 64; rounds++) {
		bool moved = false;

		for (leg = 0; leg < 2; leg++)
			if ((n = h2_output(c, (enum h2_leg)leg, &p)) > 0) {
				touch(p, n);
				h2_output_done(c, (enum h2_leg)leg, n, now);
				moved = true;
			}
		if (!moved)
			return;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct h2_config cfg;
	struct h2_stats st;
	struct membudget budget;
	const size_t others = 100 * 1024;
	struct h2 *c;
	char err[64];
	size_t off = 0;
	uint64_t now = 1000000;

	h2_config_default(&cfg);
	cfg.default_authority = "10.0.0.1:443";
	cfg.body_cap = 4096;
	cfg.mem_limit = 4 * 1024 * 1024;
	cfg.stall_us = 5000000;
	cfg.emit = emit;
	membudget_init(&budget, 512 * 1024);	/* 256 KiB for layers */
	membudget_force(&budget, others);
	cfg.budget = &budget;
	if ((c = h2_new(&cfg, err, sizeof(err))) == NULL)
		return 0;
	while (off < size) {
		enum h2_leg leg = data[off] & 0x80 ? H2_UPSTREAM : H2_CLIENT;
		size_t len = (size_t)(data[off] & 0x7f) + 1;

		off++;
		if (len > size - off)
			len = size - off;
		if (len == 0) {
			h2_eof(c, leg, now);
			break;
		}
		/* Fed whether or not it wants it: a transport that asked
		 * may be holding a read already made. */
		(void)h2_want_read(c, leg);
		(void)h2_feed(c, leg, data + off, len, now);
		off += len;
		drain(c, now);
		now += data[off - 1] == 0xff ? cfg.stall_us : 1000;
		if (h2_next_deadline(c) != 0 && h2_next_deadline(c) <= now)
			h2_tick(c, now);
	}
	h2_get_stats(c, &st);
	if (st.mem_peak > cfg.mem_limit)
		__builtin_trap();
	(void)h2_done(c);
	h2_free(c, now, size & 1 ? "reset by the application" : NULL);
	if (budget.used != others)
		__builtin_trap();
	return 0;
}
