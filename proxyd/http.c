/*
 * Incremental HTTP/1.1 message parser (see http.h for the API).
 *
 * Call chain: http_parse -> scan_block (accumulate the header block, limits
 * enforced as bytes arrive) -> parse_head (start line + fields, in place,
 * NUL-terminating each part) -> decide_framing (RFC 9112 §6.3) -> body
 * states (length / chunked / until close) -> trailers -> END.
 *
 * The header block is copied into a parser-owned buffer so that fields split
 * across reads are contiguous; bodies are never copied.  Every rejection has
 * its own enum http_error; nothing here asserts on peer data.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxyd/http.h"

enum {
	S_NEXT = 0,		/* reset, then S_HEAD */
	S_HEAD,			/* accumulating start line + fields */
	S_BODY_LEN,
	S_BODY_CLOSE,
	S_CHUNK_SIZE,
	S_CHUNK_BWS,		/* whitespace after the size, before ';' */
	S_CHUNK_EXT,
	S_CHUNK_SIZE_LF,
	S_CHUNK_DATA,
	S_CHUNK_DATA_CR,
	S_CHUNK_DATA_LF,
	S_TRAILERS,
	S_END_PENDING,		/* message complete, END not yet returned */
	S_UPGRADE_PENDING,
	S_TUNNEL,
	S_PAUSED,
	S_CLOSED,		/* Connection: close seen; only EOF is fine */
	S_ERROR,
};

/* RFC 9110 tchar */
static const uint8_t tchar[256] = {
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
	['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
	['`'] = 1, ['|'] = 1, ['~'] = 1,
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
	['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
	['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
	['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
	['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
	['Y'] = 1, ['Z'] = 1,
	['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
	['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
	['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
	['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
	['y'] = 1, ['z'] = 1,
};

static const char *const errstr[HTTP_ERR__COUNT] = {
	[HTTP_OK] = "no error",
	[HTTP_ERR_START_LINE_TOO_LONG] = "start line too long",
	[HTTP_ERR_FIELD_TOO_LONG] = "header field line too long",
	[HTTP_ERR_HEAD_TOO_LARGE] = "header block too large",
	[HTTP_ERR_TOO_MANY_FIELDS] = "too many header fields",
	[HTTP_ERR_BAD_METHOD] = "invalid method",
	[HTTP_ERR_BAD_TARGET] = "invalid request target",
	[HTTP_ERR_BAD_VERSION] = "invalid HTTP version",
	[HTTP_ERR_UNSUPPORTED_VERSION] = "unsupported HTTP major version",
	[HTTP_ERR_BAD_STATUS] = "invalid status code",
	[HTTP_ERR_BAD_REASON] = "invalid reason phrase",
	[HTTP_ERR_BARE_CR] = "bare CR in header block",
	[HTTP_ERR_OBS_FOLD] = "obsolete line folding",
	[HTTP_ERR_BAD_FIELD_NAME] = "invalid header field name",
	[HTTP_ERR_WS_BEFORE_COLON] = "whitespace before colon in header field",
	[HTTP_ERR_BAD_FIELD_VALUE] = "invalid header field value",
	[HTTP_ERR_BAD_CONTENT_LENGTH] = "invalid Content-Length",
	[HTTP_ERR_CONTENT_LENGTH_MISMATCH] = "differing Content-Length values",
	[HTTP_ERR_TE_AND_CL] = "Transfer-Encoding with Content-Length in a request",
	[HTTP_ERR_BAD_TRANSFER_ENCODING] = "invalid Transfer-Encoding",
	[HTTP_ERR_TE_NOT_CHUNKED] = "request Transfer-Encoding does not end in chunked",
	[HTTP_ERR_TE_IN_HTTP10] = "Transfer-Encoding in an HTTP/1.0 message",
	[HTTP_ERR_BAD_CHUNK_SIZE] = "invalid chunk size",
	[HTTP_ERR_CHUNK_SIZE_OVERFLOW] = "chunk size overflows 64 bits",
	[HTTP_ERR_BAD_CHUNK_EXT] = "invalid chunk extension",
	[HTTP_ERR_CHUNK_LINE_TOO_LONG] = "chunk size line too long",
	[HTTP_ERR_CHUNK_CRLF] = "missing CRLF in chunked framing",
	[HTTP_ERR_DATA_AFTER_CLOSE] = "data after a Connection: close message",
	[HTTP_ERR_TRUNCATED] = "connection closed inside a message",
	[HTTP_ERR_BAD_HOST] = "duplicate or invalid Host",
	[HTTP_ERR_NOMEM] = "out of memory",
};

const char *
http_error_str(enum http_error err)
{
	if ((unsigned)err >= HTTP_ERR__COUNT || errstr[err] == NULL)
		return "unknown error";
	return errstr[err];
}

int
http_error_status(enum http_error err)
{
	switch (err) {
	case HTTP_OK:
		return 200;
	case HTTP_ERR_START_LINE_TOO_LONG:
		return 414;
	case HTTP_ERR_FIELD_TOO_LONG:
	case HTTP_ERR_HEAD_TOO_LARGE:
	case HTTP_ERR_TOO_MANY_FIELDS:
		return 431;
	case HTTP_ERR_UNSUPPORTED_VERSION:
		return 505;
	case HTTP_ERR_NOMEM:
		return 500;
	default:
		return 400;
	}
}

static const struct {
	const char	*name;
	enum http_method id;
} methods[] = {
	{ "GET", HTTP_M_GET }, { "HEAD", HTTP_M_HEAD }, { "POST", HTTP_M_POST },
	{ "PUT", HTTP_M_PUT }, { "DELETE", HTTP_M_DELETE },
	{ "CONNECT", HTTP_M_CONNECT }, { "OPTIONS", HTTP_M_OPTIONS },
	{ "TRACE", HTTP_M_TRACE }, { "PATCH", HTTP_M_PATCH },
};

/* Methods are case-sensitive (RFC 9110 §9.1). */
enum http_method
http_method_lookup(const char *s, size_t len)
{
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strlen(methods[i].name) == len &&
		    memcmp(methods[i].name, s, len) == 0)
			return methods[i].id;
	return HTTP_M_OTHER;
}

bool
http_is_token(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!tchar[(uint8_t)s[i]])
			return false;
	return true;
}

static bool
is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* field-vchar / SP / HTAB; obs-text allowed, CTLs (incl. NUL) not. */
static bool
is_value_char(uint8_t c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

const struct http_field *
http_field_get(const struct http_field *f, size_t n, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < n; i++)
		if (f[i].name_len == len && strncasecmp(f[i].name, name, len) == 0)
			return &f[i];
	return NULL;
}

/*
 * Walk the comma-separated elements of one field value: returns the next
 * element trimmed of OWS (possibly empty), or false at the end.
 */
static bool
next_element(const char **pos, const char *end, const char **el, size_t *el_len)
{
	const char *s = *pos, *e;

	if (s > end)
		return false;
	e = memchr(s, ',', (size_t)(end - s));
	if (e == NULL)
		e = end;
	*pos = e + 1;
	while (s < e && is_ows(*s))
		s++;
	while (e > s && is_ows(e[-1]))
		e--;
	*el = s;
	*el_len = (size_t)(e - s);
	return true;
}

/* Strip ";params" off a list element. */
static size_t
strip_params(const char *el, size_t len)
{
	const char *semi = memchr(el, ';', len);

	if (semi != NULL)
		len = (size_t)(semi - el);
	while (len > 0 && is_ows(el[len - 1]))
		len--;
	return len;
}

bool
http_field_has_token(const struct http_field *f, size_t n, const char *name,
    const char *token)
{
	size_t nlen = strlen(name), tlen = strlen(token);

	for (size_t i = 0; i < n; i++) {
		const char *pos, *end, *el;
		size_t el_len;

		if (f[i].name_len != nlen || strncasecmp(f[i].name, name, nlen) != 0)
			continue;
		pos = f[i].value;
		end = f[i].value + f[i].value_len;
		while (next_element(&pos, end, &el, &el_len)) {
			el_len = strip_params(el, el_len);
			if (el_len == tlen && strncasecmp(el, token, tlen) == 0)
				return true;
		}
	}
	return false;
}

void
http_limits_default(struct http_limits *lim)
{
	lim->max_start_line = HTTP_DEFAULT_MAX_START_LINE;
	lim->max_field_line = HTTP_DEFAULT_MAX_FIELD_LINE;
	lim->max_head = HTTP_DEFAULT_MAX_HEAD;
	lim->max_fields = HTTP_DEFAULT_MAX_FIELDS;
	lim->max_chunk_line = HTTP_DEFAULT_MAX_CHUNK_LINE;
}

void
http_parser_init(struct http_parser *p, enum http_kind kind,
    const struct http_limits *lim)
{
	memset(p, 0, sizeof(*p));
	p->kind = kind;
	if (lim != NULL)
		p->lim = *lim;
	else
		http_limits_default(&p->lim);
	p->next_req_method = HTTP_M_GET;
	p->state = S_NEXT;
}

void
http_parser_free(struct http_parser *p)
{
	free(p->head);
	free(p->trail);
	free(p->fields);
	free(p->tfields);
	memset(p, 0, sizeof(*p));
}

void
http_parser_set_request_method(struct http_parser *p, enum http_method m)
{
	p->next_req_method = m;
}

void
http_parser_resume(struct http_parser *p)
{
	if (p->state == S_PAUSED)
		p->state = S_NEXT;
}

static void
reset_message(struct http_parser *p)
{
	memset(&p->msg, 0, sizeof(p->msg));
	p->msg.is_request = p->kind == HTTP_REQUEST;
	p->head_len = p->trail_len = 0;
	p->line_len = p->nlines = p->skipped = 0;
	p->remaining = 0;
	p->chunk_digits = p->chunk_in_ext = false;
}

static bool
reserve(char **buf, size_t *cap, size_t need)
{
	size_t ncap;
	char *nb;

	if (need <= *cap)
		return true;
	ncap = *cap ? *cap : 512;
	while (ncap < need)
		ncap *= 2;
	if ((nb = realloc(*buf, ncap)) == NULL)
		return false;
	*buf = nb;
	*cap = ncap;
	return true;
}

/*
 * Accumulate lines of a header (or trailer) block up to and including the
 * empty line.  Returns 1 when complete, 0 when all input was taken, -1 on
 * error.  Limits are checked as bytes arrive, so an endless line is
 * rejected once it passes the limit, not when it ends.
 */
static int
scan_block(struct http_parser *p, bool trailer, const uint8_t *in, size_t len,
    size_t *used)
{
	char **buf = trailer ? &p->trail : &p->head;
	size_t *blen = trailer ? &p->trail_len : &p->head_len;
	size_t *bcap = trailer ? &p->trail_cap : &p->head_cap;
	size_t i = 0;

	*used = 0;
	while (i < len) {
		const uint8_t *lf = memchr(in + i, '\n', len - i);
		size_t seg = lf ? (size_t)(lf - (in + i)) + 1 : len - i;
		bool first = !trailer && p->nlines == 0;
		size_t line_max = first ? p->lim.max_start_line :
		    p->lim.max_field_line;
		size_t ll;

		if (p->line_len + seg > line_max) {
			p->error = first ? HTTP_ERR_START_LINE_TOO_LONG :
			    HTTP_ERR_FIELD_TOO_LONG;
			goto fail;
		}
		if (*blen + seg > p->lim.max_head) {
			p->error = HTTP_ERR_HEAD_TOO_LARGE;
			goto fail;
		}
		if (!reserve(buf, bcap, *blen + seg)) {
			p->error = HTTP_ERR_NOMEM;
			goto fail;
		}
		memcpy(*buf + *blen, in + i, seg);
		*blen += seg;
		p->line_len += seg;
		i += seg;
		if (lf == NULL)
			break;

		ll = p->line_len;
		p->line_len = 0;
		if (ll == 1 || (ll == 2 && (*buf)[*blen - 2] == '\r')) {
			/* RFC 9112 §2.2: a server SHOULD ignore empty lines
			 * before a request line; bounded like the line. */
			if (first && p->kind == HTTP_REQUEST &&
			    p->skipped + ll <= p->lim.max_start_line) {
				p->skipped += ll;
				*blen -= ll;
				continue;
			}
			*used = i;
			return 1;
		}
		p->nlines++;
		if (p->nlines > p->lim.max_fields + (trailer ? 0 : 1)) {
			p->error = HTTP_ERR_TOO_MANY_FIELDS;
			goto fail;
		}
	}
	*used = i;
	return 0;
fail:
	*used = i;
	return -1;
}

/* "HTTP/1.x"; s is exactly 8 bytes. */
static enum http_error
parse_version(const char *s, size_t len, int *minor)
{
	if (len != 8 || memcmp(s, "HTTP/", 5) != 0 || s[6] != '.' ||
	    s[5] < '0' || s[5] > '9' || s[7] < '0' || s[7] > '9')
		return HTTP_ERR_BAD_VERSION;
	if (s[5] != '1')
		return HTTP_ERR_UNSUPPORTED_VERSION;
	*minor = s[7] - '0';
	return HTTP_OK;
}

/* method SP request-target SP HTTP-version; single spaces only. */
static enum http_error
parse_request_line(struct http_msg *m, char *line, size_t n)
{
	size_t i = 0, t;
	enum http_error e;

	while (i < n && tchar[(uint8_t)line[i]])
		i++;
	if (i == 0 || i == n || line[i] != ' ')
		return HTTP_ERR_BAD_METHOD;
	m->method = line;
	m->method_len = i;
	m->method_id = http_method_lookup(line, i);
	line[i++] = '\0';

	t = i;
	while (i < n && (uint8_t)line[i] > 0x20 && (uint8_t)line[i] < 0x7f)
		i++;
	if (i == t)
		return HTTP_ERR_BAD_TARGET;
	if (i == n)		/* HTTP/0.9 style: no version */
		return HTTP_ERR_BAD_VERSION;
	if (line[i] != ' ')
		return HTTP_ERR_BAD_TARGET;
	m->target = line + t;
	m->target_len = i - t;
	line[i++] = '\0';

	if ((e = parse_version(line + i, n - i, &m->version_minor)) != HTTP_OK)
		return e;
	line[n] = '\0';
	return HTTP_OK;
}

/* HTTP-version SP 3DIGIT [SP reason]; a missing SP before an empty reason is
 * tolerated (common in the wild, unambiguous). */
static enum http_error
parse_status_line(struct http_msg *m, char *line, size_t n)
{
	enum http_error e;
	size_t i;

	if (n < 8)
		return HTTP_ERR_BAD_VERSION;
	if ((e = parse_version(line, 8, &m->version_minor)) != HTTP_OK)
		return e;
	if (n < 12 || line[8] != ' ')
		return HTTP_ERR_BAD_STATUS;
	m->status = 0;
	for (i = 9; i < 12; i++) {
		if (line[i] < '0' || line[i] > '9')
			return HTTP_ERR_BAD_STATUS;
		m->status = m->status * 10 + (line[i] - '0');
	}
	if (m->status < 100)
		return HTTP_ERR_BAD_STATUS;
	if (n > 12 && line[12] != ' ')
		return HTTP_ERR_BAD_STATUS;
	for (i = 13; i < n; i++)
		if (!is_value_char((uint8_t)line[i]))
			return HTTP_ERR_BAD_REASON;
	m->reason = n > 12 ? line + 13 : line + n;
	m->reason_len = n > 12 ? n - 13 : 0;
	line[8] = '\0';
	line[n] = '\0';
	return HTTP_OK;
}

static enum http_error
parse_field(struct http_field *f, char *line, size_t n)
{
	char *colon, *v, *ve;
	size_t name_len;

	if (is_ows(line[0]))
		return HTTP_ERR_OBS_FOLD;
	if ((colon = memchr(line, ':', n)) == NULL)
		return HTTP_ERR_BAD_FIELD_NAME;
	name_len = (size_t)(colon - line);
	if (name_len == 0)
		return HTTP_ERR_BAD_FIELD_NAME;
	/* RFC 9112 §5.1: MUST reject (smuggling vector) */
	if (is_ows(line[name_len - 1]))
		return HTTP_ERR_WS_BEFORE_COLON;
	if (!http_is_token(line, name_len))
		return HTTP_ERR_BAD_FIELD_NAME;
	v = colon + 1;
	ve = line + n;
	while (v < ve && is_ows(*v))
		v++;
	while (ve > v && is_ows(ve[-1]))
		ve--;
	for (char *c = v; c < ve; c++)
		if (!is_value_char((uint8_t)*c))
			return HTTP_ERR_BAD_FIELD_VALUE;
	*colon = '\0';
	*ve = '\0';	/* OWS, CR or LF: always inside the buffer */
	f->name = line;
	f->name_len = name_len;
	f->value = v;
	f->value_len = (size_t)(ve - v);
	return HTTP_OK;
}

/*
 * Split a complete block into lines and parse them.  Each line ends in LF
 * (bare LF accepted as RFC 9112 §2.2 allows); a CR anywhere else is a bare
 * CR and rejected.
 */
static enum http_error
parse_block(struct http_parser *p, bool trailer)
{
	char *buf = trailer ? p->trail : p->head;
	size_t blen = trailer ? p->trail_len : p->head_len;
	struct http_field **fields = trailer ? &p->tfields : &p->fields;
	size_t *cap = trailer ? &p->tfields_cap : &p->fields_cap;
	size_t nf = 0, pos = 0, want = p->nlines;
	enum http_error e;
	bool first = !trailer;

	if (!trailer && want > 0)
		want--;
	if (want > *cap) {
		struct http_field *nfld = realloc(*fields, want * sizeof(**fields));

		if (nfld == NULL)
			return HTTP_ERR_NOMEM;
		*fields = nfld;
		*cap = want;
	}
	while (pos < blen) {
		char *line = buf + pos, *lf = memchr(line, '\n', blen - pos);
		size_t n;

		if (lf == NULL)		/* cannot happen: blocks end in LF */
			return HTTP_ERR_TRUNCATED;
		n = (size_t)(lf - line);
		pos += n + 1;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (memchr(line, '\r', n) != NULL)
			return HTTP_ERR_BARE_CR;
		if (first) {
			first = false;
			e = p->kind == HTTP_REQUEST ?
			    parse_request_line(&p->msg, line, n) :
			    parse_status_line(&p->msg, line, n);
			if (e != HTTP_OK)
				return e;
			continue;
		}
		if (n == 0)	/* the terminating empty line */
			break;
		if (nf >= want)
			return HTTP_ERR_TOO_MANY_FIELDS;
		if ((e = parse_field(&(*fields)[nf], line, n)) != HTTP_OK)
			return e;
		nf++;
	}
	if (first)		/* empty start line */
		return p->kind == HTTP_REQUEST ? HTTP_ERR_BAD_METHOD :
		    HTTP_ERR_BAD_VERSION;
	if (trailer) {
		p->msg.trailers = *fields;
		p->msg.ntrailers = nf;
	} else {
		p->msg.fields = *fields;
		p->msg.nfields = nf;
	}
	return HTTP_OK;
}

/* All Content-Length fields and list elements must agree ("5, 5" is fine). */
static enum http_error
content_length(const struct http_msg *m, bool *have, uint64_t *out)
{
	*have = false;
	for (size_t i = 0; i < m->nfields; i++) {
		const struct http_field *f = &m->fields[i];
		const char *pos, *end, *el;
		size_t el_len;

		if (f->name_len != 14 || strcasecmp(f->name, "content-length") != 0)
			continue;
		pos = f->value;
		end = f->value + f->value_len;
		while (next_element(&pos, end, &el, &el_len)) {
			uint64_t v = 0;

			if (el_len == 0)
				return HTTP_ERR_BAD_CONTENT_LENGTH;
			for (size_t k = 0; k < el_len; k++) {
				unsigned d = (unsigned)(el[k] - '0');

				if (d > 9)
					return HTTP_ERR_BAD_CONTENT_LENGTH;
				if (v > (UINT64_MAX - d) / 10)
					return HTTP_ERR_BAD_CONTENT_LENGTH;
				v = v * 10 + d;
			}
			if (*have && v != *out)
				return HTTP_ERR_CONTENT_LENGTH_MISMATCH;
			*have = true;
			*out = v;
		}
	}
	return HTTP_OK;
}

/* Transfer-Encoding: chunked may appear once, and only last. */
static enum http_error
transfer_encoding(const struct http_msg *m, bool *have, bool *chunked)
{
	size_t ncodings = 0;

	*have = *chunked = false;
	for (size_t i = 0; i < m->nfields; i++) {
		const struct http_field *f = &m->fields[i];
		const char *pos, *end, *el;
		size_t el_len;

		if (f->name_len != 17 ||
		    strcasecmp(f->name, "transfer-encoding") != 0)
			continue;
		*have = true;
		pos = f->value;
		end = f->value + f->value_len;
		while (next_element(&pos, end, &el, &el_len)) {
			size_t clen = strip_params(el, el_len);

			if (el_len == 0)
				continue;	/* empty list elements */
			if (!http_is_token(el, clen))
				return HTTP_ERR_BAD_TRANSFER_ENCODING;
			if (*chunked)	/* something after chunked */
				return HTTP_ERR_BAD_TRANSFER_ENCODING;
			*chunked = clen == 7 && strncasecmp(el, "chunked", 7) == 0;
			ncodings++;
		}
	}
	if (*have && ncodings == 0)
		return HTTP_ERR_BAD_TRANSFER_ENCODING;
	return HTTP_OK;
}

/* uri-host [ ":" port ] characters: unreserved, pct, sub-delims, ':', [] */
static bool
is_host_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') ||
	    (c != '\0' && strchr("-._~%!$&'()*+,;=:[]", c) != NULL);
}

/*
 * RFC 9112 §3.2: more than one Host, or an invalid one, is a 400.  Two
 * differing Hosts are a classic way to make a proxy and an origin disagree
 * on where a request goes.  A missing Host is left to the caller (msg.host
 * NULL): the proxy knows the destination anyway.
 */
static enum http_error
check_host(struct http_msg *m)
{
	for (size_t i = 0; i < m->nfields; i++) {
		const struct http_field *f = &m->fields[i];

		if (f->name_len != 4 || strcasecmp(f->name, "host") != 0)
			continue;
		if (m->host != NULL)
			return HTTP_ERR_BAD_HOST;
		for (size_t k = 0; k < f->value_len; k++)
			if (!is_host_char((uint8_t)f->value[k]))
				return HTTP_ERR_BAD_HOST;
		m->host = f->value;
	}
	return HTTP_OK;
}

/* RFC 9112 §6.3, with the careful-proxy choices of docs/proxyd-parsers.md. */
static enum http_error
decide_framing(struct http_parser *p)
{
	struct http_msg *m = &p->msg;
	bool have_cl, have_te, chunked, close_tok, ka_tok;
	uint64_t cl = 0;
	enum http_error e;

	close_tok = http_field_has_token(m->fields, m->nfields, "connection",
	    "close");
	ka_tok = http_field_has_token(m->fields, m->nfields, "connection",
	    "keep-alive");
	m->keep_alive = m->version_minor >= 1 ? !close_tok : ka_tok && !close_tok;

	if (p->kind == HTTP_REQUEST) {
		if ((e = content_length(m, &have_cl, &cl)) != HTTP_OK)
			return e;
		if ((e = transfer_encoding(m, &have_te, &chunked)) != HTTP_OK)
			return e;
		if (have_te && m->version_minor == 0)
			return HTTP_ERR_TE_IN_HTTP10;
		if (have_te && have_cl)
			return HTTP_ERR_TE_AND_CL;
		if (have_te && !chunked)
			return HTTP_ERR_TE_NOT_CHUNKED;
		if (have_te) {
			m->body = HTTP_BODY_CHUNKED;
		} else if (have_cl) {
			m->body = HTTP_BODY_LENGTH;
			m->content_length = cl;
		} else
			m->body = HTTP_BODY_NONE;
		m->upgrade = m->method_id == HTTP_M_CONNECT ||
		    (http_field_get(m->fields, m->nfields, "upgrade") != NULL &&
		    http_field_has_token(m->fields, m->nfields, "connection",
		    "upgrade"));
		m->expect_continue = m->version_minor >= 1 &&
		    http_field_has_token(m->fields, m->nfields, "expect",
		    "100-continue");
		return check_host(m);
	}

	m->interim = m->status >= 100 && m->status < 200 && m->status != 101;
	if (m->status == 101 || (p->next_req_method == HTTP_M_CONNECT &&
	    m->status >= 200 && m->status < 300)) {
		m->body = HTTP_BODY_TUNNEL;
		return HTTP_OK;
	}
	if (p->next_req_method == HTTP_M_HEAD || m->interim ||
	    m->status == 204 || m->status == 304) {
		m->body = HTTP_BODY_NONE;
		return HTTP_OK;
	}
	if ((e = transfer_encoding(m, &have_te, &chunked)) != HTTP_OK)
		return e;
	if (have_te && m->version_minor == 0)
		return HTTP_ERR_TE_IN_HTTP10;
	if (have_te) {
		/* TE wins; the proxy must drop CL when forwarding. */
		m->te_overrode_cl = http_field_get(m->fields, m->nfields,
		    "content-length") != NULL;
		m->body = chunked ? HTTP_BODY_CHUNKED : HTTP_BODY_UNTIL_CLOSE;
	} else {
		if ((e = content_length(m, &have_cl, &cl)) != HTTP_OK)
			return e;
		if (have_cl) {
			m->body = HTTP_BODY_LENGTH;
			m->content_length = cl;
		} else
			m->body = HTTP_BODY_UNTIL_CLOSE;
	}
	if (m->body == HTTP_BODY_UNTIL_CLOSE)
		m->keep_alive = false;
	return HTTP_OK;
}

/* State after HTTP_EV_END. */
static void
finish_message(struct http_parser *p)
{
	const struct http_msg *m = &p->msg;

	if (p->kind == HTTP_RESPONSE && !m->interim)
		p->next_req_method = HTTP_M_GET;
	if (p->kind == HTTP_RESPONSE && m->interim)
		p->state = S_NEXT;	/* the final response follows */
	else if (p->kind == HTTP_REQUEST && m->upgrade)
		p->state = S_PAUSED;
	else if (!m->keep_alive)
		p->state = S_CLOSED;
	else
		p->state = S_NEXT;
}

static int
hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* One byte of a chunk-size line.  Returns an error or HTTP_OK. */
static enum http_error
chunk_line_byte(struct http_parser *p, uint8_t c)
{
	int h;

	if (++p->line_len > p->lim.max_chunk_line)
		return HTTP_ERR_CHUNK_LINE_TOO_LONG;
	switch (p->state) {
	case S_CHUNK_SIZE:
		if ((h = hexval(c)) >= 0) {
			if (p->remaining > (UINT64_MAX >> 4))
				return HTTP_ERR_CHUNK_SIZE_OVERFLOW;
			p->remaining = (p->remaining << 4) | (uint64_t)h;
			p->chunk_digits = true;
			return HTTP_OK;
		}
		if (!p->chunk_digits)
			return HTTP_ERR_BAD_CHUNK_SIZE;
		if (c == '\r')
			p->state = S_CHUNK_SIZE_LF;
		else if (c == ';')
			p->state = S_CHUNK_EXT;
		else if (is_ows((char)c))
			p->state = S_CHUNK_BWS;
		else if (c == '\n')
			return HTTP_ERR_CHUNK_CRLF;
		else
			return HTTP_ERR_BAD_CHUNK_SIZE;
		return HTTP_OK;
	case S_CHUNK_BWS:
		/* only BWS then ';' — "1 0" must not read as size 1 */
		if (c == ';')
			p->state = S_CHUNK_EXT;
		else if (!is_ows((char)c))
			return HTTP_ERR_BAD_CHUNK_EXT;
		return HTTP_OK;
	case S_CHUNK_EXT:
		if (c == '\r')
			p->state = S_CHUNK_SIZE_LF;
		else if (c == '\n')
			return HTTP_ERR_CHUNK_CRLF;
		else if (!is_value_char(c))
			return HTTP_ERR_BAD_CHUNK_EXT;
		return HTTP_OK;
	case S_CHUNK_SIZE_LF:
		if (c != '\n')
			return HTTP_ERR_CHUNK_CRLF;
		p->line_len = 0;
		if (p->remaining == 0) {
			p->state = S_TRAILERS;
			p->nlines = 0;
		} else
			p->state = S_CHUNK_DATA;
		return HTTP_OK;
	default:
		return HTTP_ERR_BAD_CHUNK_SIZE;
	}
}

enum http_event
http_parse(struct http_parser *p, const uint8_t *buf, size_t len, size_t *used,
    const uint8_t **data, size_t *data_len)
{
	size_t off = 0, n;
	enum http_error e;
	int r;

	*used = 0;
	*data = NULL;
	*data_len = 0;
	for (;;) {
		switch (p->state) {
		case S_ERROR:
			return HTTP_EV_ERROR;
		case S_NEXT:
			if (off == len)
				goto need_more;
			reset_message(p);
			p->state = S_HEAD;
			break;
		case S_HEAD:
			if (off == len)
				goto need_more;
			r = scan_block(p, false, buf + off, len - off, &n);
			off += n;
			if (r < 0)
				goto fail_set;
			if (r == 0)
				goto need_more;
			if ((e = parse_block(p, false)) != HTTP_OK ||
			    (e = decide_framing(p)) != HTTP_OK) {
				p->error = e;
				goto fail_set;
			}
			switch (p->msg.body) {
			case HTTP_BODY_NONE:
				p->state = S_END_PENDING;
				break;
			case HTTP_BODY_LENGTH:
				p->remaining = p->msg.content_length;
				p->state = p->remaining ? S_BODY_LEN : S_END_PENDING;
				break;
			case HTTP_BODY_CHUNKED:
				p->remaining = 0;
				p->line_len = 0;
				p->state = S_CHUNK_SIZE;
				break;
			case HTTP_BODY_UNTIL_CLOSE:
				p->state = S_BODY_CLOSE;
				break;
			case HTTP_BODY_TUNNEL:
				p->state = S_UPGRADE_PENDING;
				break;
			}
			*used = off;
			return HTTP_EV_HEADERS;
		case S_BODY_LEN:
		case S_CHUNK_DATA:
			if (off == len)
				goto need_more;
			n = len - off;
			if (n > p->remaining)
				n = (size_t)p->remaining;
			*data = buf + off;
			*data_len = n;
			off += n;
			p->remaining -= n;
			if (p->remaining == 0)
				p->state = p->state == S_BODY_LEN ?
				    S_END_PENDING : S_CHUNK_DATA_CR;
			*used = off;
			return HTTP_EV_BODY;
		case S_BODY_CLOSE:
			if (off == len)
				goto need_more;
			*data = buf + off;
			*data_len = len - off;
			*used = len;
			return HTTP_EV_BODY;
		case S_CHUNK_SIZE:
		case S_CHUNK_BWS:
		case S_CHUNK_EXT:
		case S_CHUNK_SIZE_LF:
			if (off == len)
				goto need_more;
			if ((e = chunk_line_byte(p, buf[off++])) != HTTP_OK) {
				p->error = e;
				goto fail_set;
			}
			break;
		case S_CHUNK_DATA_CR:
		case S_CHUNK_DATA_LF:
			if (off == len)
				goto need_more;
			if (buf[off++] != (p->state == S_CHUNK_DATA_CR ? '\r' : '\n')) {
				p->error = HTTP_ERR_CHUNK_CRLF;
				goto fail_set;
			}
			if (p->state == S_CHUNK_DATA_CR) {
				p->state = S_CHUNK_DATA_LF;
			} else {
				p->state = S_CHUNK_SIZE;
				p->remaining = 0;
				p->chunk_digits = false;
				p->line_len = 0;
			}
			break;
		case S_TRAILERS:
			if (off == len)
				goto need_more;
			r = scan_block(p, true, buf + off, len - off, &n);
			off += n;
			if (r < 0)
				goto fail_set;
			if (r == 0)
				goto need_more;
			if ((e = parse_block(p, true)) != HTTP_OK) {
				p->error = e;
				goto fail_set;
			}
			p->state = S_END_PENDING;
			break;
		case S_END_PENDING:
			finish_message(p);
			*used = off;
			return HTTP_EV_END;
		case S_UPGRADE_PENDING:
			p->state = S_TUNNEL;
			*used = off;
			return HTTP_EV_UPGRADE;
		case S_TUNNEL:
			*used = off;
			return HTTP_EV_UPGRADE;
		case S_PAUSED:
			*used = off;
			return HTTP_EV_PAUSED;
		case S_CLOSED:
			if (off == len)
				goto need_more;
			p->error = HTTP_ERR_DATA_AFTER_CLOSE;
			goto fail_set;
		default:
			p->error = HTTP_ERR_TRUNCATED;
			goto fail_set;
		}
	}
need_more:
	*used = off;
	return HTTP_EV_NEED_MORE;
fail_set:
	p->state = S_ERROR;
	*used = off;
	return HTTP_EV_ERROR;
}

enum http_event
http_parse_eof(struct http_parser *p)
{
	switch (p->state) {
	case S_ERROR:
		return HTTP_EV_ERROR;
	case S_NEXT:
	case S_CLOSED:
	case S_TUNNEL:
	case S_PAUSED:
		return HTTP_EV_NEED_MORE;
	case S_HEAD:
		if (p->head_len == 0 && p->line_len == 0)
			return HTTP_EV_NEED_MORE;
		break;
	case S_BODY_CLOSE:
	case S_END_PENDING:
		finish_message(p);
		p->state = S_CLOSED;
		return HTTP_EV_END;
	case S_UPGRADE_PENDING:
		p->state = S_TUNNEL;
		return HTTP_EV_UPGRADE;
	default:
		break;
	}
	p->error = HTTP_ERR_TRUNCATED;
	p->state = S_ERROR;
	return HTTP_EV_ERROR;
}

static bool
parse_port(const char *s, size_t len, uint16_t *port)
{
	unsigned v = 0;

	if (len == 0 || len > 5)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

bool
http_split_authority(const char *s, size_t len, uint16_t default_port,
    char *host, size_t hostsz, uint16_t *port)
{
	const char *h = s, *rest;
	size_t hlen;

	if (len == 0)
		return false;
	if (s[0] == '[') {
		const char *close = memchr(s, ']', len);

		if (close == NULL)
			return false;
		h = s + 1;
		hlen = (size_t)(close - h);
		rest = close + 1;
		if (hlen == 0)
			return false;
		/* an IPv6 literal: hex digits, ':' and '.' (v4-mapped) only */
		for (size_t i = 0; i < hlen; i++) {
			char c = h[i];

			if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			    (c >= 'A' && c <= 'F') || c == ':' || c == '.'))
				return false;
		}
	} else {
		const char *colon = memchr(s, ':', len);

		hlen = colon ? (size_t)(colon - s) : len;
		rest = s + hlen;
		if (hlen == 0)
			return false;
		/* reg-name or IPv4: letters, digits, '-', '.', '_' (no
		 * userinfo, no percent-encoding: nothing a resolver takes) */
		for (size_t i = 0; i < hlen; i++) {
			char c = h[i];

			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
			    c == '_'))
				return false;
		}
	}
	if (rest == s + len) {
		if (default_port == 0)
			return false;
		*port = default_port;
	} else if (*rest != ':' ||
	    !parse_port(rest + 1, (size_t)(s + len - rest - 1), port))
		return false;
	if (hlen >= hostsz)
		return false;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	return true;
}

bool
http_split_absolute(const char *target, size_t len, bool *https, char *host,
    size_t hostsz, uint16_t *port, const char **path, size_t *path_len)
{
	const char *auth, *end;
	size_t skip;

	if (len >= 7 && strncasecmp(target, "http://", 7) == 0) {
		*https = false;
		skip = 7;
	} else if (len >= 8 && strncasecmp(target, "https://", 8) == 0) {
		*https = true;
		skip = 8;
	} else
		return false;
	auth = target + skip;
	end = auth;
	while (end < target + len && *end != '/' && *end != '?' && *end != '#')
		end++;
	if (!http_split_authority(auth, (size_t)(end - auth),
	    *https ? 443 : 80, host, hostsz, port))
		return false;
	*path = end;
	*path_len = (size_t)(target + len - end);
	return true;
}
