/* Text for a terminal (textout.h). */
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "ctl/textout.h"
#include "utf8.h"

void
fmt_time(char *buf, size_t len, int64_t us, bool utc_iso)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;
	size_t n;

	if (us < 0)
		t = 0, us = 0;
	if (utc_iso) {
		gmtime_r(&t, &tm);
		n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(buf + n, len - n, ".%03dZ", (int)((us % 1000000) / 1000));
	} else {
		localtime_r(&t, &tm);
		n = strftime(buf, len, "%H:%M:%S", &tm);
		snprintf(buf + n, len - n, ".%03d", (int)((us % 1000000) / 1000));
	}
}

void
fmt_size(char *buf, size_t len, int64_t n)
{
	if (n < 1024)
		snprintf(buf, len, "%" PRId64 " B", n);
	else if (n < 1024 * 1024)
		snprintf(buf, len, "%.1f KiB", (double)n / 1024);
	else if (n < 1024LL * 1024 * 1024)
		snprintf(buf, len, "%.1f MiB", (double)n / (1024 * 1024));
	else
		snprintf(buf, len, "%.1f GiB", (double)n / (1024 * 1024 * 1024));
}

void
fmt_duration(char *buf, size_t len, int64_t us)
{
	if (us < 0)
		snprintf(buf, len, "-");
	else if (us < 10000)
		snprintf(buf, len, "%.1f ms", (double)us / 1000);
	else if (us < 1000000)
		snprintf(buf, len, "%" PRId64 " ms", us / 1000);
	else
		snprintf(buf, len, "%.2f s", (double)us / 1e6);
}

void
fmt_addr(char *buf, size_t len, const char *addr, int port)
{
	if (addr == NULL)
		addr = "?";
	snprintf(buf, len, strchr(addr, ':') ? "[%s]:%d" : "%s:%d", addr, port);
}

void
hexdump(FILE *out, const uint8_t *p, size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i += 16) {
		fprintf(out, "  %08zx  ", i);
		for (j = 0; j < 16; j++) {
			if (i + j < n)
				fprintf(out, "%02x ", p[i + j]);
			else
				fputs("   ", out);
			if (j == 7)
				putc(' ', out);
		}
		fputs(" |", out);
		for (j = 0; j < 16 && i + j < n; j++)
			putc(p[i + j] >= 0x20 && p[i + j] < 0x7f ? p[i + j] : '.',
			    out);
		fputs("|\n", out);
	}
}

void
term_str(FILE *out, const char *s, const char *def)
{
	utf8_term_str(out, s, def);
}

void
term_text(FILE *out, const void *data, size_t n)
{
	utf8_term_write(out, data, n, false);
}

void
term_lines(FILE *out, const void *data, size_t n)
{
	utf8_term_write(out, data, n, true);
}
