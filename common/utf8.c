/* UTF-8 validation and JSON strings (see utf8.h). */
#include <string.h>

#include "utf8.h"

size_t
utf8_seq(const uint8_t *s, size_t n)
{
	size_t len, i;
	uint32_t cp;

	if (n == 0)
		return 0;
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

void
json_str_n(FILE *out, const void *data, size_t n)
{
	const uint8_t *s = data;
	size_t i = 0, run, k;

	putc('"', out);
	while (s && i < n) {
		/* A run that needs no escape goes out in one write. */
		for (run = i; run < n; run += k) {
			if (s[run] >= 0x20 && s[run] < 0x7f && s[run] != '"' &&
			    s[run] != '\\')
				k = 1;
			else if (s[run] < 0x80 || (k = utf8_seq(s + run,
			    n - run)) == 0)
				break;
		}
		if (run > i) {
			fwrite(s + i, 1, run - i, out);
			i = run;
			continue;
		}
		if (s[i] == '"' || s[i] == '\\')
			fprintf(out, "\\%c", s[i]);
		else if (s[i] == '\n')
			fputs("\\n", out);
		else
			fprintf(out, "\\u%04x", s[i]);
		i++;
	}
	putc('"', out);
}

/* The code point of the well-formed sequence s[0..k) (k from utf8_seq). */
static uint32_t
utf8_cp(const uint8_t *s, size_t k)
{
	uint32_t cp;
	size_t i;

	if (k == 1)
		return s[0];
	cp = s[0] & (k == 2 ? 0x1f : k == 3 ? 0x0f : 0x07);
	for (i = 1; i < k; i++)
		cp = cp << 6 | (s[i] & 0x3f);
	return cp;
}

bool
utf8_is_text(const void *data, size_t n)
{
	const uint8_t *p = data;
	size_t i = 0, k;

	while (i < n) {
		if (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r' &&
		    p[i] != '\f')
			return false;
		if (p[i] == 0x7f || (k = utf8_seq(p + i, n - i)) == 0)
			return false;
		i += k;
	}
	return true;
}

bool
utf8_is_term_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x61c ||
	    cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
	    (cp >= 0x2066 && cp <= 0x2069);
}

/*
 * The next unit of s[0..n) for a terminal: how many bytes of s it takes
 * (*used), written to out (at most 12 bytes), its length returned.  0 and
 * *used 1 for the CR of a CR LF when lines.
 */
static size_t
term_unit(const uint8_t *s, size_t n, bool lines, size_t *used, char *out)
{
	size_t k;
	uint32_t cp;

	*used = 1;
	if (lines && s[0] == '\r' && n > 1 && s[1] == '\n')
		return 0;
	if (s[0] == '\t' || (lines && s[0] == '\n')) {
		out[0] = (char)s[0];
		return 1;
	}
	if ((k = utf8_seq(s, n)) == 0)
		return (size_t)snprintf(out, 12, "\\x%02x", s[0]);
	*used = k;
	cp = utf8_cp(s, k);
	if (!utf8_is_term_control(cp)) {
		memcpy(out, s, k);
		return k;
	}
	if (cp < 0x80)
		return (size_t)snprintf(out, 12, "\\x%02x", (unsigned)cp);
	return (size_t)snprintf(out, 12, "\\u{%04x}", (unsigned)cp);
}

void
utf8_term_write(FILE *out, const void *data, size_t n, bool lines)
{
	const uint8_t *s = data;
	size_t i = 0, used, len, run;
	char unit[12];

	while (s && i < n) {
		/* Printable ASCII goes out in runs. */
		for (run = i; run < n && s[run] >= 0x20 && s[run] < 0x7f; run++)
			;
		if (run > i) {
			fwrite(s + i, 1, run - i, out);
			i = run;
			continue;
		}
		len = term_unit(s + i, n - i, lines, &used, unit);
		fwrite(unit, 1, len, out);
		i += used;
	}
}

size_t
utf8_term_escape(char *dst, size_t dstlen, const void *data, size_t n)
{
	const uint8_t *s = data;
	size_t i = 0, k = 0, used, len;
	char unit[12];

	if (dstlen == 0)
		return 0;
	while (s && i < n) {
		len = term_unit(s + i, n - i, false, &used, unit);
		if (k + len >= dstlen)
			break;
		memcpy(dst + k, unit, len);
		k += len;
		i += used;
	}
	dst[k] = '\0';
	return k;
}

void
utf8_term_str(FILE *out, const char *s, const char *def)
{
	if (s == NULL)
		s = def;
	if (s)
		utf8_term_write(out, s, strlen(s), false);
}
