/* UTF-8 validation and JSON strings (see utf8.h). */
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
