/*
 * The shared error plumbing: seterr (common/errmsg.c) and tls_strerror
 * (proxyd/tlserr.c), each the one copy the tree has.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <mbedtls/error.h>
#include <mbedtls/ssl.h>

#include "errmsg.h"
#include "proxyd/tlserr.h"

static void
seterr_formats_and_cuts_at_the_buffer(void **state)
{
	char buf[8];

	(void)state;
	seterr(buf, sizeof(buf), "%s %d", "abc", 42);
	assert_string_equal(buf, "abc 42");
	seterr(buf, sizeof(buf), "%s", "a longer message");
	assert_string_equal(buf, "a longe");	/* cut, NUL-terminated */
}

static void
seterr_without_a_buffer_is_a_no_op(void **state)
{
	char buf[4] = "xyz";

	(void)state;
	seterr(NULL, 64, "dropped %d", 1);
	seterr(buf, 0, "dropped %d", 2);
	assert_string_equal(buf, "xyz");
}

static void
tls_strerror_names_the_error_or_its_code(void **state)
{
	char buf[128];

	(void)state;
	assert_ptr_equal(tls_strerror(MBEDTLS_ERR_SSL_BAD_INPUT_DATA, buf,
	    sizeof(buf)), buf);
	assert_true(buf[0] != '\0');
	/* A code mbedTLS has no text for still says which it was. */
	(void)tls_strerror(-0x7ffe, buf, sizeof(buf));
	assert_true(strstr(buf, "7E") != NULL || strstr(buf, "7ffe") != NULL);
	/* A one-byte buffer holds the NUL only. */
	(void)tls_strerror(MBEDTLS_ERR_SSL_BAD_INPUT_DATA, buf, 1);
	assert_int_equal(buf[0], '\0');
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(seterr_formats_and_cuts_at_the_buffer),
		cmocka_unit_test(seterr_without_a_buffer_is_a_no_op),
		cmocka_unit_test(tls_strerror_names_the_error_or_its_code),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
