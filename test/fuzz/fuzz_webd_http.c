/*
 * libFuzzer harness for webd's request parser and the helpers that read
 * request bytes (webd/httpreq.c, webd/guard.c, webd/filter.c).  The input
 * is parsed whole and at every split byte 0 picks: a verdict on a prefix
 * must hold for the whole (an error stays an error, a request stays the
 * same request), since the network may deliver any prefix first.  Whatever
 * parsed is then run through the query, cookie, JSON, Host and filter
 * readers, which must never read past what they were given.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "webd/filter.h"
#include "webd/guard.h"
#include "webd/httpreq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct web_req whole, part;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf;
	size_t used = 0, used2 = 0, split;
	enum web_parse r, r2;
	char out[256], err[128];
	struct web_filter f;

	if (size < 1)
		return 0;
	split = data[0] % (size + 0);
	data++;
	size--;
	/* An exact-size copy, so ASan sees any read past the end. */
	if ((buf = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(buf, data, size);

	r = web_req_parse(&whole, buf, size, &used);
	if (split <= size) {
		r2 = web_req_parse(&part, buf, split, &used2);
		if (r2 == WEB_PARSE_ERROR && r != WEB_PARSE_ERROR)
			abort();
		if (r2 == WEB_PARSE_DONE && (r != WEB_PARSE_DONE || used2 != used))
			abort();
	}
	if (r == WEB_PARSE_DONE) {
		if (used > size || whole.body_len > WEB_MAX_BODY)
			abort();
		if (whole.body + whole.body_len > buf + size)
			abort();
		(void)web_query_get(whole.query, "filter", out, sizeof(out));
		(void)web_query_get(whole.query, "token", out, sizeof(out));
		(void)web_cookie_get(whole.cookie, WEB_TOKEN_COOKIE, out,
		    sizeof(out));
		(void)web_authorized(whole.authorization, whole.cookie,
		    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
		(void)web_host_ok(whole.host, "127.0.0.1", 8081);
		(void)web_host_ok(whole.host, "::1", 8081);
		(void)web_post_ok(whole.origin, whole.sec_fetch_site,
		    whole.content_type, whole.host);
		if (web_json_string(whole.body, whole.body_len, "spec", out,
		    sizeof(out)) >= 0 && strlen(out) >= sizeof(out))
			abort();
		if (web_query_get(whole.query, "filter", out, sizeof(out)) >= 0)
			(void)web_filter_parse(out, &f, err, sizeof(err));
	}
	/* The raw bytes as a JSON body and a filter too. */
	(void)web_json_string(buf, size, "spec", out, sizeof(out));
	if (size < sizeof(out)) {
		memcpy(out, buf, size);
		out[size] = '\0';
		(void)web_filter_parse(out, &f, err, sizeof(err));
		(void)web_host_ok(out, "127.0.0.1", 80);
	}
	free(buf);
	return 0;
}
