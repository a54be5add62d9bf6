/*
 * Unit tests for proxyd/membudget.c, proxyd's memory budget: its tiers
 * (bodies up to 3/4 of the limit, buffers up to 7/8, forced charges past
 * it), the query the HTTP/2 layer holds back reading on, and exact
 * accounting back to zero.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "proxyd/membudget.h"

static void
test_membudget_limit(void **state)
{
	struct membudget b;

	(void)state;
	membudget_init(&b, 64u << 20);
	assert_int_equal(b.limit, (64u << 20) - MEMBUDGET_PROCESS_RESERVE);
	membudget_init(&b, 1u << 20);		/* tiny: half of it */
	assert_int_equal(b.limit, 512 * 1024);
	membudget_init(&b, 0);
	assert_int_equal(b.limit, 0);
	assert_true(membudget_take(&b, (size_t)1 << 40));
	assert_true(membudget_can_take(&b, (size_t)1 << 40));
	membudget_give(&b, (size_t)1 << 40);
	assert_int_equal(b.used, 0);
	/* NULL: no budget, everything granted. */
	assert_true(membudget_take(NULL, 1));
	assert_true(membudget_take_soft(NULL, 1));
	assert_true(membudget_can_take(NULL, 1));
	membudget_force(NULL, 1);
	membudget_give(NULL, 1);
}

static void
test_membudget_tiers(void **state)
{
	struct membudget b;

	(void)state;
	membudget_init(&b, 2048 * 1024);	/* limit 1 MiB */
	assert_int_equal(b.limit, 1024 * 1024);
	/* Bodies: up to 768 KiB. */
	assert_true(membudget_take_soft(&b, 768 * 1024));
	assert_false(membudget_take_soft(&b, 1));
	assert_int_equal(b.refused, 1);
	/* Buffers: up to 896 KiB. */
	assert_true(membudget_can_take(&b, 128 * 1024));
	assert_false(membudget_can_take(&b, 128 * 1024 + 1));
	assert_int_equal(b.refused, 1);		/* asking is not refusing */
	assert_int_equal(b.used, 768 * 1024);	/* nor charging */
	assert_true(membudget_take(&b, 128 * 1024));
	assert_false(membudget_take(&b, 1));
	assert_true(membudget_can_take(&b, 0));	/* exactly at 7/8 */
	assert_int_equal(b.refused, 2);
	/* Forced past the limit; nothing else fits then. */
	membudget_force(&b, 512 * 1024);
	assert_int_equal(b.used, 1408 * 1024);
	assert_int_equal(b.high_water, 1408 * 1024);
	assert_false(membudget_can_take(&b, 0));
	assert_false(membudget_take(&b, 0));
	/* Given back: room again, high water kept. */
	membudget_give(&b, 512 * 1024);
	membudget_give(&b, 128 * 1024);
	assert_true(membudget_can_take(&b, 64 * 1024));
	membudget_give(&b, 768 * 1024);
	assert_int_equal(b.used, 0);
	assert_int_equal(b.high_water, 1408 * 1024);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_membudget_limit),
		cmocka_unit_test(test_membudget_tiers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
