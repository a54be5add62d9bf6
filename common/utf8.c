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
	size_t i = 0, k;

	putc('"', out);
	while (s && i < n) {
		if (s[i] == '"' || s[i] == '\\') {
			fprintf(out, "\\%c", s[i]);
			i++;
		} else if (s[i] == '\n') {
			fputs("\\n", out);
			i++;
		} else if (s[i] < 0x20 || s[i] == 0x7f) {
			fprintf(out, "\\u%04x", s[i]);
			i++;
		} else if ((k = utf8_seq(s + i, n - i)) != 0) {
			fwrite(s + i, 1, k, out);
			i += k;
		} else {
			fprintf(out, "\\u%04x", s[i]);
			i++;
		}
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

void
utf8_term_write(FILE *out, const void *data, size_t n, bool lines)
{
	const uint8_t *s = data;
	size_t i = 0, k;
	uint32_t cp;

	while (s && i < n) {
		if (lines && s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') {
			i++;
			continue;
		}
		if (s[i] == '\t' || (lines && s[i] == '\n')) {
			putc(s[i++], out);
			continue;
		}
		if ((k = utf8_seq(s + i, n - i)) == 0) {
			fprintf(out, "\\x%02x", s[i++]);
			continue;
		}
		cp = utf8_cp(s + i, k);
		if (!utf8_is_term_control(cp))
			fwrite(s + i, 1, k, out);
		else if (cp < 0x80)
			fprintf(out, "\\x%02x", (unsigned)cp);
		else
			fprintf(out, "\\u{%04x}", (unsigned)cp);
		i += k;
	}
}

void
utf8_term_str(FILE *out, const char *s, const char *def)
{
	if (s == NULL)
		s = def;
	if (s)
		utf8_term_write(out, s, strlen(s), false);
}
