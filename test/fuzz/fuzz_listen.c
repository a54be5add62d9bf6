/*
 * libFuzzer harness for the explicit proxy's request decision
 * (proxyd/listen.c, plisten_decide): the input is a client's first bytes.
 * Once http.c has a head, the decision must be well-formed, and a rewritten
 * absolute-form request must itself parse as one HTTP request head in
 * origin form, to the same method and with Host naming the decided host,
 * followed byte for byte by what the client sent after its head.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxyd/http.h"
#include "proxyd/listen.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_rewrite(const struct http_msg *orig, const struct plisten_req *r,
    size_t rest_len)
{
	struct http_parser p;
	const uint8_t *d;
	size_t used, dl;
	enum http_event ev;
	const char *host;

	http_parser_init(&p, HTTP_REQUEST, NULL);
	ev = http_parse(&p, r->prefix, r->prefix_len - rest_len, &used, &d, &dl);
	if (ev != HTTP_EV_HEADERS || used != r->prefix_len - rest_len)
		abort();	/* our head is not one valid head */
	if (p.msg.method_len != orig->method_len ||
	    memcmp(p.msg.method, orig->method, orig->method_len) != 0 ||
	    p.msg.target[0] != '/')
		abort();
	host = p.msg.host;
	if (host == NULL || strncasecmp(host + (host[0] == '['), r->host,
	    strlen(r->host)) != 0)
		abort();
	if (!http_field_has_token(p.msg.fields, p.msg.nfields, "connection",
	    "close") && !http_field_has_token(p.msg.fields, p.msg.nfields,
	    "connection", "upgrade"))
		abort();
	if (http_field_get(p.msg.fields, p.msg.nfields, "proxy-authorization"))
		abort();	/* credentials for us never go upstream */
	http_parser_free(&p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_parser p;
	struct plisten_req r;
	const uint8_t *d;
	size_t used, dl, off = 0;
	enum http_event ev;

	if (size > PLISTEN_MAX_HEAD)
		return 0;
	http_parser_init(&p, HTTP_REQUEST, NULL);
	do {
		ev = http_parse(&p, data + off, size - off, &used, &d, &dl);
		off += used;
	} while (ev != HTTP_EV_HEADERS && ev != HTTP_EV_ERROR &&
	    ev != HTTP_EV_NEED_MORE);
	if (ev == HTTP_EV_HEADERS) {
		plisten_decide(&p.msg, data, off, size, &r);
		if (r.status != 0) {
			if (r.status < 400 || r.status > 599 || r.reason == NULL ||
			    r.why[0] == '\0' || r.prefix != NULL)
				abort();
		} else {
			if (r.host[0] == '\0' || r.port == 0)
				abort();
			if (r.tunnel) {
				if (r.prefix_len != size - off || (r.prefix_len &&
				    memcmp(r.prefix, data + off, r.prefix_len)))
					abort();
			} else {
				if (r.prefix_len < size - off ||
				    memcmp(r.prefix + r.prefix_len - (size - off),
				    data + off, size - off) != 0)
					abort();
				check_rewrite(&p.msg, &r, size - off);
			}
		}
		free(r.prefix);
	}
	http_parser_free(&p);
	return 0;
}
