/*
 * Unit tests for proxyd/hostmatch.c (--ignore-hosts): mitmproxy's
 * semantics (unanchored, case-insensitive, against "host:port"), list
 * splitting that leaves commas inside {} and [] alone, bad patterns refused
 * whole with a reason, and limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proxyd/hostmatch.h"

static struct hostmatch *
make(const char *list)
{
	struct hostmatch *hm = hostmatch_new();
	char err[256];

	assert_non_null(hm);
	if (hostmatch_add(hm, list, err, sizeof(err)) == -1)
		fail_msg("'%s' refused: %s", list, err);
	return hm;
}

static void
unanchored_and_caseless(void **state)
{
	struct hostmatch *hm = make("example\\.com");

	(void)state;
	assert_string_equal(hostmatch_find(hm, "example.com", 443), "example\\.com");
	assert_non_null(hostmatch_find(hm, "WWW.Example.COM", 443));
	assert_null(hostmatch_find(hm, "example.org", 443));
	assert_null(hostmatch_find(hm, "", 443));
	assert_null(hostmatch_find(hm, NULL, 443));
	hostmatch_free(hm);
}

static void
anchored_with_port(void **state)
{
	struct hostmatch *hm = make("^api\\.test:443$");

	(void)state;
	assert_non_null(hostmatch_find(hm, "api.test", 443));
	assert_null(hostmatch_find(hm, "api.test", 8443));
	assert_null(hostmatch_find(hm, "xapi.test", 443));
	hostmatch_free(hm);
}

static void
addresses_match_as_text(void **state)
{
	struct hostmatch *hm = make("^10\\.1\\.,^\\[fd00:");

	(void)state;
	assert_non_null(hostmatch_find(hm, "10.1.2.3", 80));
	assert_null(hostmatch_find(hm, "10.11.2.3", 80));
	assert_non_null(hostmatch_find(hm, "[fd00::1]", 443));
	hostmatch_free(hm);
}

static void
list_split_outside_braces_and_brackets(void **state)
{
	struct hostmatch *hm = make("^a{1,3}\\.test,[,x]y\\.test,plain");

	(void)state;
	assert_int_equal(hostmatch_count(hm), 3);
	assert_non_null(hostmatch_find(hm, "aaa.test", 1));
	assert_non_null(hostmatch_find(hm, ",y.test", 1));
	assert_non_null(hostmatch_find(hm, "plain.example", 1));
	assert_null(hostmatch_find(hm, "other", 1));
	/* A second list adds to the first. */
	{
		char err[128];

		assert_int_equal(hostmatch_add(hm, "other", err, sizeof(err)), 0);
	}
	assert_int_equal(hostmatch_count(hm), 4);
	assert_non_null(hostmatch_find(hm, "other", 1));
	hostmatch_free(hm);
}

static void
bad_lists_refused_whole(void **state)
{
	struct hostmatch *hm = hostmatch_new();
	char err[256], big[HOSTMATCH_MAX_PATTERN + 2];
	static const char *const bad[] = { "good,a(b", "a,,b", "", ",", "x[" };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(hostmatch_add(hm, bad[i], err, sizeof(err)), -1);
		assert_true(err[0] != '\0');
		assert_int_equal(hostmatch_count(hm), 0);
	}
	assert_int_equal(hostmatch_add(hm, "good,a(b", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "a(b"));
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(hostmatch_add(hm, big, err, sizeof(err)), -1);
	assert_int_equal(hostmatch_count(hm), 0);
	/* Nothing matches an empty set, or a NULL one. */
	assert_null(hostmatch_find(hm, "good", 1));
	assert_null(hostmatch_find(NULL, "good", 1));
	hostmatch_free(hm);
}

static void
too_many_patterns(void **state)
{
	struct hostmatch *hm = hostmatch_new();
	char err[256], *list;
	size_t i, n = HOSTMATCH_MAX_PATTERNS + 1;

	(void)state;
	assert_non_null(list = malloc(n * 2));
	for (i = 0; i < n; i++) {
		list[2 * i] = 'a';
		list[2 * i + 1] = ',';
	}
	list[2 * n - 1] = '\0';
	assert_int_equal(hostmatch_add(hm, list, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "patterns"));
	list[2 * (n - 1) - 1] = '\0';	/* one fewer: fits */
	assert_int_equal(hostmatch_add(hm, list, err, sizeof(err)), 0);
	assert_int_equal(hostmatch_count(hm), HOSTMATCH_MAX_PATTERNS);
	free(list);
	hostmatch_free(hm);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(unanchored_and_caseless),
		cmocka_unit_test(anchored_with_port),
		cmocka_unit_test(addresses_match_as_text),
		cmocka_unit_test(list_split_outside_braces_and_brackets),
		cmocka_unit_test(bad_lists_refused_whole),
		cmocka_unit_test(too_many_patterns),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
