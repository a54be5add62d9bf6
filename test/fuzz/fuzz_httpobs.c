/*
 * libFuzzer harness for proxyd/httpobs.c, the HTTP/1.1 observer: both the
 * captured program and the server are untrusted.  The input is a script of
 * chunks: each chunk's first byte says which side sent it and how long it
 * is (low 7 bits, +1); the chunk is fed as that side's bytes.  Whatever the
 * bytes, the observer must never crash, never emit an exchange with
 * pointers outside what it owns (every emitted string and body is read in
 * full, so ASan sees a stray pointer), and free everything.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/httpobs.h"

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
	touch_fields(h->req_fields, h->n_req_fields);
	touch_fields(h->resp_fields, h->n_resp_fields);
	touch(h->req_body, h->req_body_len);
	touch(h->resp_body, h->resp_body_len);
	/* What is kept never exceeds what was seen. */
	if (h->req_body_len > h->req_body_size || h->resp_body_len > h->resp_body_size)
		__builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct httpobs_config cfg = {
		.scheme = "http",
		.default_host = "10.0.0.1:80",
		.body_cap = 4096,
		.max_pending = 4,
		.emit = emit,
	};
	struct httpobs *o = httpobs_new(&cfg);
	size_t off = 0;
	uint64_t now = 1;

	if (o == NULL)
		return 0;
	while (off < size) {
		enum httpobs_dir dir = data[off] & 0x80 ? HTTPOBS_SERVER : HTTPOBS_CLIENT;
		size_t len = (size_t)(data[off] & 0x7f) + 1;

		off++;
		if (len > size - off)
			len = size - off;
		if (len == 0) {
			(void)httpobs_eof(o, dir, now++);
			break;
		}
		(void)httpobs_feed(o, dir, data + off, len, now++);
		off += len;
	}
	httpobs_free(o, now, size & 1 ? "reset by the application" : NULL);
	return 0;
}
