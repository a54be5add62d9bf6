/*
 * UTF-8 validation and JSON strings, shared by everything that prints or
 * stores bytes that came off the network (the flow store, localcapctl).
 */
#ifndef LOCALCAP_UTF8_H
#define LOCALCAP_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Length (1-4) of the well-formed UTF-8 sequence at s[0..n), or 0 if there
 * is none: no overlong forms, no surrogates, nothing above U+10FFFF.
 */
size_t	utf8_seq(const uint8_t *s, size_t n);

/*
 * Write data[0..n) as a JSON string: valid UTF-8 kept, quotes, backslashes
 * and control characters escaped, any other byte as \u00XX.  Always valid
 * JSON, whatever the bytes.
 */
void	json_str_n(FILE *out, const void *data, size_t n);

/*
 * Text: valid UTF-8 holding no control character but tab, CR, LF and form
 * feed (what show prints as text rather than as a hex dump).
 */
bool	utf8_is_text(const void *data, size_t n);

/*
 * Whether code point cp must not reach a terminal as itself: C0 and C1
 * controls (U+0000-U+001F, U+007F-U+009F: a C1 CSI, OSC or ST drives the
 * terminal like ESC [ does), and the bidirectional controls that reorder
 * what is shown (U+061C, U+200E-U+200F, U+202A-U+202E, U+2066-U+2069).
 */
bool	utf8_is_term_control(uint32_t cp);

/*
 * Write data[0..n) for a terminal: printable UTF-8 as it is, tab kept,
 * every byte that is not UTF-8 as \xNN and every code point
 * utf8_is_term_control() refuses as \u{XXXX} (a byte below 0x80 as
 * \xNN).  lines: LF (and CR LF, as LF) kept, for bodies.  Recorded bytes
 * can then never drive the terminal or disguise what is shown.
 */
void	utf8_term_write(FILE *out, const void *data, size_t n, bool lines);
/*
 * The same into dst (NUL-terminated, never cut inside an escape or a
 * character; no lines): the length written.
 */
size_t	utf8_term_escape(char *dst, size_t dstlen, const void *data, size_t n);
/* The same for a NUL-terminated string; NULL writes def (may be NULL). */
void	utf8_term_str(FILE *out, const char *s, const char *def);

#endif
