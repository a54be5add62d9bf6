/*
 * Text for a person at a terminal, shared by localcapctl's flow-store
 * commands (flows, show, ps): times, sizes, durations, hex dumps, and
 * recorded text escaped so that it can never drive the terminal
 * (common/utf8.h: C0, C1 and bidi controls, bytes that are not UTF-8).
 */
#ifndef LOCALCAP_CTL_TEXTOUT_H
#define LOCALCAP_CTL_TEXTOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* "18:00:00.123" local time, or UTC ISO 8601 with milliseconds. */
void	fmt_time(char *buf, size_t len, int64_t us, bool utc_iso);
/* "512 B", "1.5 KiB", … */
void	fmt_size(char *buf, size_t len, int64_t n);
/* "0.9 ms", "14 ms", "1.25 s"; "-" for a negative (unknown) duration. */
void	fmt_duration(char *buf, size_t len, int64_t us);
/* ADDR:PORT, an IPv6 address in brackets ("?" for an unknown address). */
void	fmt_addr(char *buf, size_t len, const char *addr, int port);

/* Offset, 16 bytes in hex, and the printable ASCII of each line. */
void	hexdump(FILE *, const uint8_t *, size_t);

/* Recorded text, escaped for the terminal (NULL: def, which may be NULL). */
void	term_str(FILE *, const char *s, const char *def);
void	term_text(FILE *, const void *data, size_t n);
/* The same keeping line ends (bodies). */
void	term_lines(FILE *, const void *data, size_t n);

#endif
