/*
 * webd's HTTP/1.1 request parser (see httpreq.h).  Strict on purpose: a
 * viewer on loopback talks to browsers and curl, which send clean
 * requests; whatever is ambiguous (bare LF, folded or duplicated framing
 * headers, Transfer-Encoding) is refused rather than guessed at.
 */
#include "webd/httpreq.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 tchar */
static bool
is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int
fail(struct web_req *req, int status, const char *why)
{
	req->error_status = status;
	req->error = why;
	return WEB_PARSE_ERROR;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
web_pct_decode(const char *s, size_t n, bool plus_space, char *out,
    size_t outlen)
{
	size_t i, k = 0;
	int c;

	for (i = 0; i < n; i++) {
		if (k + 1 >= outlen)
			return -1;
		if (s[i] == '%') {
			if (i + 2 >= n || hexval(s[i + 1]) < 0 ||
			    hexval(s[i + 2]) < 0)
				return -1;
			c = hexval(s[i + 1]) << 4 | hexval(s[i + 2]);
			i += 2;
		} else if (s[i] == '+' && plus_space)
			c = ' ';
		else
			c = (unsigned char)s[i];
		if (c == 0)
			return -1;
		out[k++] = (char)c;
	}
	out[k] = '\0';
	return (int)k;
}

/* "/a/./b", "/../x", "/a\b": refused, whatever the route table says. */
static bool
path_ok(const char *p)
{
	const char *seg = p;

	if (p[0] != '/')
		return false;
	if (strchr(p, '\\') != NULL)
		return false;
	while ((seg = strchr(seg, '/')) != NULL) {
		seg++;
		if ((seg[0] == '.' && (seg[1] == '/' || seg[1] == '\0')) ||
		    (seg[0] == '.' && seg[1] == '.' &&
		    (seg[2] == '/' || seg[2] == '\0')))
			return false;
	}
	for (; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

/* Connection: a comma list of tokens. */
static void
connection_tokens(struct web_req *req, const char *v)
{
	while (*v) {
		size_t n;

		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		n = strcspn(v, ", \t");
		if (n == 5 && strncasecmp(v, "close", 5) == 0)
			req->keep_alive = false;
		else if (n == 10 && strncasecmp(v, "keep-alive", 10) == 0 &&
		    req->version_minor == 0)
			req->keep_alive = true;
		v += n;
	}
}

static int
parse_request_line(struct web_req *req, char *line)
{
	char *sp1, *sp2, *q;
	size_t tlen;
	int n;

	if ((sp1 = strchr(line, ' ')) == NULL)
		return fail(req, 400, "malformed request line");
	*sp1 = '\0';
	if (sp1 == line || sp1 - line > 15)
		return fail(req, sp1 == line ? 400 : 501, "bad method");
	for (q = line; q < sp1; q++)
		if (!is_tchar((unsigned char)*q))
			return fail(req, 400, "bad method");
	req->method = line;
	if ((sp2 = strchr(sp1 + 1, ' ')) == NULL)
		return fail(req, 400, "malformed request line");
	*sp2 = '\0';
	req->target = sp1 + 1;
	tlen = (size_t)(sp2 - req->target);
	if (tlen > WEB_MAX_TARGET)
		return fail(req, 414, "request target too long");
	if (tlen == 0 || req->target[0] != '/')
		return fail(req, 400, "only origin-form targets (/path)");
	for (q = sp1 + 1; q < sp2; q++)
		if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
			return fail(req, 400, "bad byte in the request target");
	if (strncmp(sp2 + 1, "HTTP/", 5) != 0 || sp2[6] < '0' ||
	    sp2[6] > '9' || sp2[7] != '.' || sp2[8] < '0' || sp2[8] > '9' ||
	    sp2[9] != '\0')
		return fail(req, 400, "malformed HTTP version");
	if (sp2[6] != '1')
		return fail(req, 505, "only HTTP/1.x");
	req->version_minor = sp2[8] - '0';
	req->keep_alive = req->version_minor >= 1;

	q = memchr(req->target, '?', tlen);
	req->query = q ? q + 1 : "";
	n = web_pct_decode(req->target, q ? (size_t)(q - req->target) : tlen,
	    false, req->path, sizeof(req->path));
	if (n < 0 || !path_ok(req->path))
		return fail(req, 400, "bad path");
	return 0;
}

static int
parse_header(struct web_req *req, char *line)
{
	char *colon, *v, *end, *p;
	struct web_header *h;

	if (line[0] == ' ' || line[0] == '\t')
		return fail(req, 400, "obsolete header line folding");
	if ((colon = strchr(line, ':')) == NULL || colon == line)
		return fail(req, 400, "malformed header line");
	for (p = line; p < colon; p++) {
		if (!is_tchar((unsigned char)*p))
			return fail(req, 400, "bad header name");
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	}
	*colon = '\0';
	v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	end = v + strlen(v);
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	for (p = v; p < end; p++)
		if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
			return fail(req, 400, "control byte in a header value");
	if (req->nheaders >= WEB_MAX_HEADERS)
		return fail(req, 431, "too many header lines");
	h = &req->headers[req->nheaders++];
	h->name = line;
	h->value = v;

	if (strcmp(line, "host") == 0) {
		if (req->host)
			return fail(req, 400, "more than one Host");
		req->host = v;
	} else if (strcmp(line, "content-length") == 0) {
		size_t cl = 0;

		if (req->content_length || *v == '\0' ||
		    web_req_header(req, "content-length") != v)
			return fail(req, 400, "bad or repeated Content-Length");
		for (p = v; *p; p++) {
			if (*p < '0' || *p > '9')
				return fail(req, 400, "bad Content-Length");
			if (cl > WEB_MAX_BODY)
				break;
			cl = cl * 10 + (size_t)(*p - '0');
		}
		if (cl > WEB_MAX_BODY)
			return fail(req, 413, "request body too large");
		req->content_length = cl;
	} else if (strcmp(line, "transfer-encoding") == 0)
		return fail(req, 501, "Transfer-Encoding in a request");
	else if (strcmp(line, "connection") == 0)
		connection_tokens(req, v);
	else if (strcmp(line, "cookie") == 0 && req->cookie == NULL)
		req->cookie = v;
	else if (strcmp(line, "authorization") == 0) {
		if (req->authorization)
			return fail(req, 400, "more than one Authorization");
		req->authorization = v;
	} else if (strcmp(line, "content-type") == 0)
		req->content_type = v;
	else if (strcmp(line, "origin") == 0)
		req->origin = v;
	else if (strcmp(line, "sec-fetch-site") == 0)
		req->sec_fetch_site = v;
	else if (strcmp(line, "accept") == 0)
		req->accept = v;
	return 0;
}

enum web_parse
web_req_parse(struct web_req *req, const uint8_t *buf, size_t len,
    size_t *used)
{
	size_t i, end = 0, scan = len < WEB_MAX_HEAD + 2 ? len : WEB_MAX_HEAD + 2;
	char *line, *next;

	memset(req, 0, offsetof(struct web_req, path));
	req->method = req->target = req->query = "";
	req->head[0] = '\0';
	req->path[0] = '\0';
	/* The end of the head: CRLF CRLF; every LF must follow a CR. */
	for (i = 0; i < scan; i++) {
		if (buf[i] == '\0')
			return fail(req, 400, "NUL in the request head");
		if (buf[i] != '\n')
			continue;
		if (i == 0 || buf[i - 1] != '\r')
			return fail(req, 400, "bare LF in the request head");
		if (i == 1)
			return fail(req, 400, "empty line before the request");
		if (i >= 3 && buf[i - 2] == '\n') {
			end = i + 1;
			break;
		}
	}
	if (end == 0)
		return len >= WEB_MAX_HEAD + 2 ?
		    fail(req, 431, "request head too large") : WEB_PARSE_MORE;

	/* A copy of the head without its final CRLF CRLF, lines split. */
	memcpy(req->head, buf, end - 4);
	req->head[end - 4] = '\0';
	line = req->head;
	next = strstr(line, "\r\n");
	if (next)
		*next = '\0';
	if (parse_request_line(req, line) == WEB_PARSE_ERROR)
		return WEB_PARSE_ERROR;
	while (next) {
		line = next + 2;
		if ((next = strstr(line, "\r\n")) != NULL)
			*next = '\0';
		if (parse_header(req, line) == WEB_PARSE_ERROR)
			return WEB_PARSE_ERROR;
	}
	if (req->host == NULL && req->version_minor >= 1)
		return fail(req, 400, "no Host header");
	if (len - end < req->content_length)
		return WEB_PARSE_MORE;
	req->body = buf + end;
	req->body_len = req->content_length;
	*used = end + req->content_length;
	return WEB_PARSE_DONE;
}

const char *
web_req_header(const struct web_req *req, const char *name)
{
	size_t i;

	for (i = 0; i < req->nheaders; i++)
		if (strcmp(req->headers[i].name, name) == 0)
			return req->headers[i].value;
	return NULL;
}

/* Pairs "a=1" split by sep; the value of name, decoded (or copied) to out. */
static int
pair_get(const char *s, char sep, bool decode, const char *name, char *out,
    size_t outlen)
{
	size_t nlen = strlen(name);

	if (s == NULL)
		return -1;
	while (*s) {
		const char *end = strchr(s, sep), *eq;
		size_t n;

		while (sep == ';' && *s == ' ')
			s++;
		if (end == NULL)
			end = s + strlen(s);
		eq = memchr(s, '=', (size_t)(end - s));
		if (eq && (size_t)(eq - s) == nlen && memcmp(s, name, nlen) == 0) {
			n = (size_t)(end - eq - 1);
			if (decode)
				return web_pct_decode(eq + 1, n, true, out,
				    outlen) < 0 ? -2 : (int)strlen(out);
			if (n + 1 > outlen || memchr(eq + 1, '\0', n))
				return -2;
			memcpy(out, eq + 1, n);
			out[n] = '\0';
			return (int)n;
		}
		if (*end == '\0')
			break;
		s = end + 1;
	}
	return -1;
}

int
web_query_get(const char *query, const char *name, char *out, size_t outlen)
{
	return pair_get(query, '&', true, name, out, outlen);
}

int
web_cookie_get(const char *cookie, const char *name, char *out, size_t outlen)
{
	return pair_get(cookie, ';', false, name, out, outlen);
}

/* --- the one JSON shape webd reads ------------------------------------------- */

struct jscan {
	const uint8_t	*p, *end;
};

static void
jws(struct jscan *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' ||
	    *j->p == '\r'))
		j->p++;
}

static int
jhex4(struct jscan *j, uint32_t *v)
{
	int i, h;

	if (j->end - j->p < 4)
		return -1;
	*v = 0;
	for (i = 0; i < 4; i++) {
		if ((h = hexval(j->p[i])) < 0)
			return -1;
		*v = *v << 4 | (uint32_t)h;
	}
	j->p += 4;
	return 0;
}

/* One string at j->p (its quote): decoded into out (NULL: skipped). */
static int
jstring(struct jscan *j, char *out, size_t outlen, size_t *outn)
{
	size_t k = 0;
	uint32_t cp, lo;
	uint8_t enc[4];
	size_t n, i;

	if (j->p >= j->end || *j->p != '"')
		return -1;
	j->p++;
	while (j->p < j->end && *j->p != '"') {
		if (*j->p < 0x20)
			return -1;
		if (*j->p != '\\') {
			enc[0] = *j->p++;
			n = 1;
		} else {
			if (++j->p >= j->end)
				return -1;
			switch (*j->p++) {
			case '"': enc[0] = '"'; break;
			case '\\': enc[0] = '\\'; break;
			case '/': enc[0] = '/'; break;
			case 'b': enc[0] = '\b'; break;
			case 'f': enc[0] = '\f'; break;
			case 'n': enc[0] = '\n'; break;
			case 'r': enc[0] = '\r'; break;
			case 't': enc[0] = '\t'; break;
			case 'u':
				if (jhex4(j, &cp) == -1)
					return -1;
				if (cp >= 0xd800 && cp < 0xdc00) {
					if (j->end - j->p < 6 || j->p[0] != '\\' ||
					    j->p[1] != 'u')
						return -1;
					j->p += 2;
					if (jhex4(j, &lo) == -1 || lo < 0xdc00 ||
					    lo >= 0xe000)
						return -1;
					cp = 0x10000 + ((cp - 0xd800) << 10) +
					    (lo - 0xdc00);
				} else if (cp >= 0xdc00 && cp < 0xe000)
					return -1;
				if (cp == 0)
					return -1;
				if (cp < 0x80) {
					enc[0] = (uint8_t)cp;
					n = 1;
				} else if (cp < 0x800) {
					enc[0] = (uint8_t)(0xc0 | cp >> 6);
					enc[1] = (uint8_t)(0x80 | (cp & 0x3f));
					n = 2;
				} else if (cp < 0x10000) {
					enc[0] = (uint8_t)(0xe0 | cp >> 12);
					enc[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
					enc[2] = (uint8_t)(0x80 | (cp & 0x3f));
					n = 3;
				} else {
					enc[0] = (uint8_t)(0xf0 | cp >> 18);
					enc[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
					enc[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
					enc[3] = (uint8_t)(0x80 | (cp & 0x3f));
					n = 4;
				}
				goto put;
			default:
				return -1;
			}
			n = 1;
		}
put:
		if (out) {
			if (k + n >= outlen)
				return -2;
			for (i = 0; i < n; i++)
				out[k++] = (char)enc[i];
		}
	}
	if (j->p >= j->end)
		return -1;
	j->p++;
	if (out) {
		out[k] = '\0';
		*outn = k;
	}
	return 0;
}

int
web_json_string(const uint8_t *body, size_t len, const char *key, char *out,
    size_t outlen)
{
	struct jscan j = { body, body + len };
	char name[64];
	size_t n = 0;
	int found = -1, rc;

	if (outlen == 0)
		return -2;
	jws(&j);
	if (j.p >= j.end || *j.p++ != '{')
		return -2;
	jws(&j);
	if (j.p < j.end && *j.p == '}') {
		j.p++;
		goto end;
	}
	for (;;) {
		jws(&j);
		if ((rc = jstring(&j, name, sizeof(name), &n)) != 0)
			return -2;
		jws(&j);
		if (j.p >= j.end || *j.p++ != ':')
			return -2;
		jws(&j);
		if (strcmp(name, key) == 0 && n == strlen(key) && found < 0) {
			size_t vn = 0;

			if ((rc = jstring(&j, out, outlen, &vn)) != 0)
				return -2;
			found = (int)vn;
		} else if (jstring(&j, NULL, 0, NULL) != 0)
			return -2;
		jws(&j);
		if (j.p < j.end && *j.p == ',') {
			j.p++;
			continue;
		}
		if (j.p < j.end && *j.p == '}') {
			j.p++;
			break;
		}
		return -2;
	}
end:
	jws(&j);
	if (j.p != j.end)
		return -2;
	return found;
}
