/*
 * Unit tests for common/utf8.c: UTF-8 sequences, JSON strings of any
 * bytes, text detection, and terminal escaping (C0, C1 and bidi controls,
 * bytes that are not UTF-8) — issue 12 #6.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "utf8.h"

static char *
term(const char *s, size_t n, bool lines)
{
	static char buf[1024];
	FILE *f = fmemopen(buf, sizeof(buf), "w");

	assert_non_null(f);
	utf8_term_write(f, s, n, lines);
	fclose(f);
	return buf;
}

static char *
json(const char *s, size_t n)
{
	static char buf[1024];
	FILE *f = fmemopen(buf, sizeof(buf), "w");

	assert_non_null(f);
	json_str_n(f, s, n);
	fclose(f);
	return buf;
}

#define T(s)	term(s, sizeof(s) - 1, false)

static void
seq_lengths_and_malformed(void **state)
{
	(void)state;
	assert_int_equal(utf8_seq((const uint8_t *)"a", 1), 1);
	assert_int_equal(utf8_seq((const uint8_t *)"\xc3\xa9", 2), 2);
	assert_int_equal(utf8_seq((const uint8_t *)"\xe2\x82\xac", 3), 3);
	assert_int_equal(utf8_seq((const uint8_t *)"\xf0\x9f\x98\x80", 4), 4);
	assert_int_equal(utf8_seq((const uint8_t *)"\xc0\x80", 2), 0);	/* overlong */
	assert_int_equal(utf8_seq((const uint8_t *)"\xed\xa0\x80", 3), 0);	/* surrogate */
	assert_int_equal(utf8_seq((const uint8_t *)"\xf4\x90\x80\x80", 4), 0);
	assert_int_equal(utf8_seq((const uint8_t *)"\xe2\x82", 2), 0);	/* cut */
	assert_int_equal(utf8_seq((const uint8_t *)"\x80", 1), 0);
}

static void
terminal_keeps_printable_text(void **state)
{
	(void)state;
	assert_string_equal(T("plain ascii"), "plain ascii");
	assert_string_equal(T("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
	    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	assert_string_equal(T("a\tb"), "a\tb");
	/* U+00A0 and U+200B are past the C1 range / not bidi: kept. */
	assert_string_equal(T("\xc2\xa0\xe2\x80\x8b"), "\xc2\xa0\xe2\x80\x8b");
}

static void
terminal_escapes_c0_and_del(void **state)
{
	(void)state;
	assert_string_equal(T("\x1b[31mred"), "\\x1b[31mred");
	assert_string_equal(T("a\nb\rc"), "a\\x0ab\\x0dc");
	assert_string_equal(T("nul\0x"), "nul\\x00x");
	assert_string_equal(T("\x7f"), "\\x7f");
	/* lines: LF kept, CR LF as LF, a lone CR escaped. */
	assert_string_equal(term("a\r\nb\nc\rd", 8, true), "a\nb\nc\\x0dd");
}

/* A C1 CSI / OSC / ST as UTF-8 (C2 9B, C2 9D, C2 9C) drives a terminal. */
static void
terminal_escapes_c1_controls(void **state)
{
	(void)state;
	assert_string_equal(T("\xc2\x9b" "31m"), "\\u{009b}31m");
	assert_string_equal(T("\xc2\x9d" "0;title\xc2\x9c"),
	    "\\u{009d}0;title\\u{009c}");
	assert_string_equal(T("\xc2\x80\xc2\x9f"), "\\u{0080}\\u{009f}");
	/* Raw C1 bytes are not UTF-8: escaped as bytes. */
	assert_string_equal(T("\x9b"), "\\x9b");
}

static void
terminal_escapes_bidi_controls(void **state)
{
	(void)state;
	/* U+202A-202E: LRE RLE PDF LRO RLO */
	assert_string_equal(T("\xe2\x80\xaa\xe2\x80\xab\xe2\x80\xac\xe2\x80\xad"
	    "\xe2\x80\xae"), "\\u{202a}\\u{202b}\\u{202c}\\u{202d}\\u{202e}");
	/* U+2066-2069: LRI RLI FSI PDI */
	assert_string_equal(T("\xe2\x81\xa6\xe2\x81\xa7\xe2\x81\xa8\xe2\x81\xa9"),
	    "\\u{2066}\\u{2067}\\u{2068}\\u{2069}");
	/* LRM, RLM, ALM */
	assert_string_equal(T("\xe2\x80\x8e\xe2\x80\x8f\xd8\x9c"),
	    "\\u{200e}\\u{200f}\\u{061c}");
	assert_true(utf8_is_term_control(0x9b));
	assert_false(utf8_is_term_control(0xa0));
	assert_false(utf8_is_term_control(0x2070));
}

static void
term_str_null_and_default(void **state)
{
	char buf[64];
	FILE *f = fmemopen(buf, sizeof(buf), "w");

	(void)state;
	utf8_term_str(f, NULL, "-");
	utf8_term_str(f, NULL, NULL);
	utf8_term_str(f, "\x1b", NULL);
	fclose(f);
	assert_string_equal(buf, "-\\x1b");
}

static void
escape_into_a_buffer(void **state)
{
	char buf[16];

	(void)state;
	assert_int_equal(utf8_term_escape(buf, sizeof(buf), "a\x1b" "b", 3), 6);
	assert_string_equal(buf, "a\\x1bb");
	/* Cut before an escape that would not fit, never inside one. */
	assert_int_equal(utf8_term_escape(buf, 8, "abcd\xc2\x9b", 6), 4);
	assert_string_equal(buf, "abcd");
	assert_int_equal(utf8_term_escape(buf, 4, "caf\xc3\xa9", 5), 3);
	assert_string_equal(buf, "caf");
	assert_int_equal(utf8_term_escape(buf, sizeof(buf), "\xe2\x80\xae", 3),
	    8);
	assert_string_equal(buf, "\\u{202e}");
}

static void
json_strings_always_valid(void **state)
{
	(void)state;
	assert_string_equal(json("a\"b\\c\n", 6), "\"a\\\"b\\\\c\\n\"");
	assert_string_equal(json("\x01\x7f", 2), "\"\\u0001\\u007f\"");
	assert_string_equal(json("\xff\xc3", 2), "\"\\u00ff\\u00c3\"");
	assert_string_equal(json("\xc3\xa9", 2), "\"\xc3\xa9\"");
}

static void
text_detection(void **state)
{
	(void)state;
	assert_true(utf8_is_text("line\r\n\tcaf\xc3\xa9\f", 13));
	assert_true(utf8_is_text("", 0));
	assert_false(utf8_is_text("a\0b", 3));
	assert_false(utf8_is_text("\x89PNG", 4));
	assert_false(utf8_is_text("\x1b", 1));
	assert_false(utf8_is_text("\x7f", 1));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(seq_lengths_and_malformed),
		cmocka_unit_test(terminal_keeps_printable_text),
		cmocka_unit_test(terminal_escapes_c0_and_del),
		cmocka_unit_test(terminal_escapes_c1_controls),
		cmocka_unit_test(terminal_escapes_bidi_controls),
		cmocka_unit_test(term_str_null_and_default),
		cmocka_unit_test(escape_into_a_buffer),
		cmocka_unit_test(json_strings_always_valid),
		cmocka_unit_test(text_detection),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
