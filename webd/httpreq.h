/*
 * webd's HTTP/1.1 request parser: pure (bytes in, a parsed request or a
 * status out), no sockets, no clocks, so it is unit-tested and fuzzed
 * alone (test/unit/test_webd_http.c, test/fuzz/fuzz_webd_http.c).
 *
 * It reads what a browser or curl sends to a local viewer and nothing
 * more: origin-form targets, Content-Length bodies up to a small limit,
 * no chunked request bodies, no obsolete line folding, CRLF line ends.
 * Anything else is refused with the status to answer (400, 413, 414, 431,
 * 501, 505), after which the server closes the connection.
 *
 * The caller keeps the bytes received in one buffer and calls
 * web_req_parse() whenever more arrive; the head is parsed once it is
 * whole, into a copy the request owns (so the buffer may be reused).
 */
#ifndef LOCALCAP_WEBD_HTTPREQ_H
#define LOCALCAP_WEBD_HTTPREQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WEB_MAX_HEAD		16384	/* request line and headers */
#define WEB_MAX_TARGET		4096	/* the request target */
#define WEB_MAX_HEADERS		64
#define WEB_MAX_BODY		16384	/* POST bodies: small JSON */

enum web_parse {
	WEB_PARSE_MORE = 0,	/* not a whole request yet */
	WEB_PARSE_DONE = 1,	/* one request; *used bytes belong to it */
	WEB_PARSE_ERROR = -1,	/* refused: answer req->error_status, close */
};

struct web_header {
	const char	*name;		/* lower-cased */
	const char	*value;		/* optional whitespace trimmed */
};

struct web_req {
	const char	*method;
	const char	*target;	/* as sent: /path?query */
	const char	*query;		/* after '?', raw; "" if none */
	int		 version_minor;	/* HTTP/1.x */
	struct web_header headers[WEB_MAX_HEADERS];
	size_t		 nheaders;
	/* Headers the server looks at; NULL when absent. */
	const char	*host;
	const char	*cookie;	/* several Cookie lines: the first */
	const char	*authorization;
	const char	*content_type;
	const char	*origin;
	const char	*sec_fetch_site;
	const char	*accept;
	bool		 keep_alive;	/* HTTP/1.1 default, Connection: close */
	size_t		 content_length;
	const uint8_t	*body;		/* into the caller's buffer */
	size_t		 body_len;
	int		 error_status;	/* with WEB_PARSE_ERROR */
	const char	*error;		/* why, for the log and the answer */
	/* Buffers last: web_req_parse clears what comes before them. */
	char		 path[WEB_MAX_TARGET + 1];	/* percent-decoded */
	char		 head[WEB_MAX_HEAD + 1];	/* NUL-separated copy */
};

/*
 * Parse buf[0..len).  DONE: *used is the length of the request (head and
 * body); body points into buf.  MORE: call again with more bytes.
 * ERROR: req->error_status and req->error say what to answer.
 */
enum web_parse	web_req_parse(struct web_req *req, const uint8_t *buf,
		    size_t len, size_t *used);

/* A header's value by lower-case name (the first of several), or NULL. */
const char	*web_req_header(const struct web_req *, const char *name);

/*
 * Query and form helpers: the value of name in "a=1&b=x%20y" (percent-
 * and '+'-decoded) into out (NUL-terminated).  Its length, or -1 if the
 * name is absent, -2 if the value does not fit or decodes to a NUL.
 */
int		 web_query_get(const char *query, const char *name, char *out,
		    size_t outlen);

/* A cookie's value from a Cookie header, as web_query_get. */
int		 web_cookie_get(const char *cookie, const char *name, char *out,
		    size_t outlen);

/*
 * Percent-decode s[0..n) into out[0..outlen) (plus_space: '+' is ' ').
 * The decoded length, or -1 on a bad escape, a NUL, or no room.
 */
int		 web_pct_decode(const char *s, size_t n, bool plus_space,
		    char *out, size_t outlen);

/*
 * A POST body such as {"spec":"curl,!1234"}: an object whose values are
 * all strings (the only JSON webd reads).  The value of key, decoded
 * (escapes, \uXXXX and surrogate pairs) into out, NUL-terminated: its
 * length; -1 if key is absent; -2 if the body is not such an object, the
 * value holds a NUL or does not fit.
 */
int		 web_json_string(const uint8_t *body, size_t len,
		    const char *key, char *out, size_t outlen);

#endif
