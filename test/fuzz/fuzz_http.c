/*
 * libFuzzer harness for proxyd/http.c.  Byte 0 picks request/response parser
 * and the request method a response answers; byte 1 a feed size.  The input
 * is parsed whole and in pieces, and the two transcripts (events, de-chunked
 * body bytes, fields, error) must agree: framing must not depend on how the
 * bytes were split by the network.  Request targets go through the
 * authority / absolute-form splitters, and the same bytes through
 * detect_tcp(), whose verdict must never change as a prefix grows.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/detect.h"
#include "proxyd/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct digest {
	uint64_t h;
	int	 last;
};

static void
mix(struct digest *d, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		d->h = (d->h ^ b[i]) * 1099511628211ULL;
}

static void
event(struct digest *d, const struct http_parser *p, enum http_event ev)
{
	int e = (int)ev;

	if (ev == HTTP_EV_BODY && d->last == HTTP_EV_BODY)
		return;		/* bodies hashed as one stream */
	d->last = e;
	mix(d, &e, sizeof(e));
	if (ev == HTTP_EV_ERROR)
		mix(d, &p->error, sizeof(p->error));
	if (ev == HTTP_EV_HEADERS) {
		if (p->msg.is_request) {
			char host[256];
			const char *path;
			size_t plen;
			uint16_t port;
			bool https;

			if (http_split_authority(p->msg.target, p->msg.target_len,
			    0, host, sizeof(host), &port) && strlen(host) == 0)
				abort();
			if (http_split_absolute(p->msg.target, p->msg.target_len,
			    &https, host, sizeof(host), &port, &path, &plen) &&
			    (path < p->msg.target || path + plen !=
			    p->msg.target + p->msg.target_len))
				abort();
		}
		mix(d, &p->msg.body, sizeof(p->msg.body));
		mix(d, &p->msg.status, sizeof(p->msg.status));
		for (size_t i = 0; i < p->msg.nfields; i++) {
			mix(d, p->msg.fields[i].name, p->msg.fields[i].name_len);
			mix(d, p->msg.fields[i].value, p->msg.fields[i].value_len);
		}
	}
	if (ev == HTTP_EV_END)
		mix(d, &p->msg.ntrailers, sizeof(p->msg.ntrailers));
}

/* returns 1 when the parser stopped (error/upgrade/paused) */
static int
feed(struct http_parser *p, struct digest *d, const uint8_t *buf, size_t len)
{
	for (;;) {
		const uint8_t *body;
		size_t used, blen;
		enum http_event ev = http_parse(p, buf, len, &used, &body, &blen);

		if (used > len)
			abort();
		buf += used;
		len -= used;
		if (ev == HTTP_EV_NEED_MORE) {
			if (len != 0)
				abort();
			return 0;
		}
		event(d, p, ev);
		if (ev == HTTP_EV_BODY) {
			if (blen > 0 && (body < buf - used || body + blen > buf))
				abort();
			mix(d, body, blen);
		}
		if (ev == HTTP_EV_ERROR || ev == HTTP_EV_UPGRADE ||
		    ev == HTTP_EV_PAUSED)
			return 1;
	}
}

static uint64_t
run(const uint8_t *data, size_t size, int kind, int method, size_t step)
{
	struct http_limits lim;
	struct http_parser p;
	struct digest d = { 14695981039346656037ULL, -1 };
	int stopped = 0;

	http_limits_default(&lim);
	lim.max_head = 4096;	/* small limits reach the limit paths */
	lim.max_fields = 16;
	lim.max_field_line = 512;
	lim.max_start_line = 512;
	lim.max_chunk_line = 64;
	http_parser_init(&p, kind ? HTTP_RESPONSE : HTTP_REQUEST, &lim);
	http_parser_set_request_method(&p, (enum http_method)method);
	if (step == 0)
		step = size ? size : 1;
	for (size_t off = 0; off < size && !stopped; off += step)
		stopped = feed(&p, &d, data + off,
		    size - off < step ? size - off : step);
	if (!stopped) {
		enum http_event ev = http_parse_eof(&p);

		if (ev != HTTP_EV_NEED_MORE)
			event(&d, &p, ev);
	}
	http_parser_free(&p);
	return d.h;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int kind, method;
	size_t step;

	if (size < 2)
		return 0;
	kind = data[0] & 1;
	method = (data[0] >> 1) % 10;
	step = data[1] % 17;
	data += 2;
	size -= 2;
	{
		/* detection: stable once decided (prefixes up to 64 bytes) */
		enum detect_proto first = DETECT_NEED_MORE;

		for (size_t i = 0; i <= size && i <= 64; i++) {
			enum detect_proto v = detect_tcp(data, i);

			if (first == DETECT_NEED_MORE)
				first = v;
			else if (v != first)
				abort();
		}
		if (first != DETECT_NEED_MORE && detect_tcp(data, size) != first)
			abort();
	}
	if (run(data, size, kind, method, 0) !=
	    run(data, size, kind, method, step ? step : 1)) {
		fprintf(stderr, "transcript depends on the split\n");
		abort();
	}
	return 0;
}
