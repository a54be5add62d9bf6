/*
 * Reading the JSON text proxyd stores (header lists, string values): the
 * one parser of the store's bytes in storeread, kept apart so that it can
 * be fuzzed alone (test/fuzz/fuzz_store_headers.c).  The store belongs to
 * proxyd's user: everything here takes any bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storeread/internal.h"

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

static void
put_utf8(char *out, size_t *k, uint32_t cp)
{
	if (cp < 0x80)
		out[(*k)++] = (char)cp;
	else if (cp < 0x800) {
		out[(*k)++] = (char)(0xc0 | cp >> 6);
		out[(*k)++] = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		out[(*k)++] = (char)(0xe0 | cp >> 12);
		out[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[(*k)++] = (char)(0x80 | (cp & 0x3f));
	} else {
		out[(*k)++] = (char)(0xf0 | cp >> 18);
		out[(*k)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
		out[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[(*k)++] = (char)(0x80 | (cp & 0x3f));
	}
}

static int
hex4(const char *p, const char *end, uint32_t *v)
{
	int i, h;

	if (end - p < 4)
		return -1;
	*v = 0;
	for (i = 0; i < 4; i++) {
		if ((h = hexval(p[i])) < 0)
			return -1;
		*v = *v << 4 | (uint32_t)h;
	}
	return 0;
}

/*
 * SQLite's json_extract() stops at a \u0000, and header values may hold
 * NULs, so the JSON text of a string is decoded here.  6 bytes of JSON
 * (\uXXXX) always hold the at most 4 of UTF-8, so out never outgrows s.
 */
size_t
sr_json_decode(const char *s, size_t len, char *out)
{
	const char *p = s, *end = s + len;
	size_t k = 0;
	uint32_t cp, lo;

	if (p < end && *p == '"')
		p++;
	if (end > p && end[-1] == '"')
		end--;
	while (p < end) {
		if (*p != '\\' || p + 1 >= end) {
			out[k++] = *p++;
			continue;
		}
		p++;
		switch (*p) {
		case 'n': out[k++] = '\n'; p++; break;
		case 'r': out[k++] = '\r'; p++; break;
		case 't': out[k++] = '\t'; p++; break;
		case 'b': out[k++] = '\b'; p++; break;
		case 'f': out[k++] = '\f'; p++; break;
		case 'u':
			if (hex4(p + 1, end, &cp) == -1) {
				out[k++] = *p++;
				break;
			}
			p += 5;
			if (cp >= 0xd800 && cp < 0xdc00 && end - p >= 6 &&
			    p[0] == '\\' && p[1] == 'u' &&
			    hex4(p + 2, end, &lo) == 0 && lo >= 0xdc00 &&
			    lo < 0xe000) {
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				p += 6;
			}
			put_utf8(out, &k, cp);
			break;
		default:
			out[k++] = *p++;
			break;
		}
	}
	return k;
}

/*
 * The header lists proxyd writes, [["name","value"],...], read without
 * SQL (json_each cost half of a long `flows --json`).  Strict: anything
 * else, or any doubt, returns -1 and the caller takes SQLite's tolerant
 * reading instead.  Two passes, so that nothing is handed on from a list
 * that turns out to be malformed.
 */
static const char *
skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	return p;
}

/* The end of the JSON string at p (past its closing quote), or NULL. */
static const char *
string_end(const char *p, const char *end)
{
	if (p >= end || *p != '"')
		return NULL;
	for (p++; p < end; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '"')
			return p + 1;
		if (c < 0x20)
			return NULL;
		if (c == '\\') {
			if (++p >= end)
				return NULL;
			if (*p == 'u') {
				uint32_t v;

				if (hex4(p + 1, end, &v) == -1)
					return NULL;
				p += 4;
			} else if (strchr("\"\\/bfnrt", *p) == NULL || *p == '\0')
				return NULL;
		}
	}
	return NULL;
}

int
sr_headers_parse(const char *json, size_t len, sr_header_cb cb, void *ctx)
{
	const char *end = json + len, *p, *n0, *n1, *v0, *v1;
	char *name = NULL, *value = NULL;
	size_t cap = 0;
	int pass;

	for (pass = 0; pass < 2; pass++) {
		p = skip_ws(json, end);
		if (p >= end || *p++ != '[')
			goto bad;
		p = skip_ws(p, end);
		if (p < end && *p == ']') {
			p++;
			goto done;
		}
		for (;;) {
			p = skip_ws(p, end);
			if (p >= end || *p++ != '[')
				goto bad;
			n0 = skip_ws(p, end);
			if ((n1 = string_end(n0, end)) == NULL)
				goto bad;
			p = skip_ws(n1, end);
			if (p >= end || *p++ != ',')
				goto bad;
			v0 = skip_ws(p, end);
			if ((v1 = string_end(v0, end)) == NULL)
				goto bad;
			p = skip_ws(v1, end);
			if (p >= end || *p++ != ']')
				goto bad;
			if (pass == 1) {
				size_t need = (size_t)(n1 - n0) > (size_t)(v1 - v0) ?
				    (size_t)(n1 - n0) : (size_t)(v1 - v0);
				size_t nl, vl;

				if (need + 1 > cap) {
					char *a = realloc(name, need + 1);
					char *b;

					if (a == NULL)
						goto bad;
					name = a;
					if ((b = realloc(value, need + 1)) == NULL)
						goto bad;
					value = b;
					cap = need + 1;
				}
				nl = sr_json_decode(n0, (size_t)(n1 - n0), name);
				vl = sr_json_decode(v0, (size_t)(v1 - v0), value);
				name[nl] = value[vl] = '\0';
				cb(ctx, name, nl, value, vl);
			}
			p = skip_ws(p, end);
			if (p < end && *p == ',') {
				p++;
				continue;
			}
			if (p < end && *p == ']') {
				p++;
				break;
			}
			goto bad;
		}
done:
		if (skip_ws(p, end) != end)
			goto bad;
	}
	free(name);
	free(value);
	return 0;
bad:
	free(name);
	free(value);
	/* A failure in the second pass (memory) after callbacks: say done. */
	return pass == 1 ? 0 : -1;
}

