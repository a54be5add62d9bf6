/*
 * netstackd/impair.c on its own: the --impair spec parser, and what the
 * impairment does to a stream of packets (counts near the asked rates,
 * delay honoured, order kept among equals, reproducible by seed, bounded).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "netstackd/impair.h"

static void
spec_parses_and_refuses(void **state)
{
	static const char *const bad[] = {
		"loss", "loss=", "loss=51%", "loss=-1%", "loss=5%%", "dup=x",
		"delay=5s", "delay=10001ms", "seed=", "seed=1x", "jitter=5ms",
		"loss=5%,bogus=1",
	};
	struct impair im;
	char err[256];
	size_t i;

	(void)state;
	assert_int_equal(impair_parse(&im, "loss=5%,dup=1.5%,reorder=50,"
	    "delay=20ms,seed=7", err, sizeof(err)), 0);
	assert_int_equal(im.loss_ppm, 50000);
	assert_int_equal(im.dup_ppm, 15000);
	assert_int_equal(im.reorder_ppm, 500000);
	assert_int_equal(im.delay_ms, 20);
	assert_int_equal(impair_parse(&im, "", err, sizeof(err)), 0);
	assert_int_equal(im.loss_ppm + im.dup_ppm + im.reorder_ppm + im.delay_ms, 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (impair_parse(&im, bad[i], err, sizeof(err)) != -1)
			fail_msg("'%s' was accepted", bad[i]);
		assert_non_null(strstr(err, "bad impairment"));
	}
	/* Too long for its buffer: refused, not cut. */
	{
		char big[400];

		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		assert_int_equal(impair_parse(&im, big, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "too long"));
	}
}

/* Offer n one-byte packets at time 0; drain everything; count. */
static size_t
run(struct impair *im, unsigned n, uint8_t *order, size_t cap)
{
	struct impair_pkt *p;
	size_t got = 0;
	unsigned i;

	for (i = 0; i < n; i++) {
		uint8_t b = (uint8_t)i;

		impair_offer(im, 0, &b, 1, 0);
	}
	while ((p = impair_due(im, UINT64_MAX - 1)) != NULL) {
		if (got < cap)
			order[got] = p->data[0];
		got++;
		free(p);
	}
	return got;
}

static void
rates_are_near_the_asked_ones(void **state)
{
	struct impair im;
	uint8_t order[1];
	char err[128];
	size_t got = 0;
	int i;

	(void)state;
	assert_int_equal(impair_parse(&im, "loss=10%,dup=10%,seed=42", err,
	    sizeof(err)), 0);
	/* In rounds, so the queue's bound never comes into it. */
	for (i = 0; i < 20; i++)
		got += run(&im, 1000, order, 0);
	/* 20,000 packets: 10% is 2,000 each, well within +-20%. */
	assert_in_range(im.dropped, 1600, 2400);
	assert_in_range(im.duplicated, 1600, 2400);
	assert_int_equal(got, 20000 - im.dropped + im.duplicated);
	assert_int_equal(im.queued, 0);
	impair_free(&im);
}

static void
delay_is_honoured_and_order_kept_without_reordering(void **state)
{
	struct impair im;
	struct impair_pkt *p;
	char err[128];
	uint8_t b;
	int i;

	(void)state;
	assert_int_equal(impair_parse(&im, "delay=30ms", err, sizeof(err)), 0);
	for (i = 0; i < 5; i++) {
		b = (uint8_t)i;
		impair_offer(&im, 1, &b, 1, 100);
	}
	assert_int_equal(impair_next(&im), 130);
	assert_null(impair_due(&im, 129));
	for (i = 0; i < 5; i++) {
		p = impair_due(&im, 130);
		assert_non_null(p);
		assert_int_equal(p->data[0], i);	/* FIFO among equals */
		assert_int_equal(p->dir, 1);
		free(p);
	}
	assert_null(impair_due(&im, 1000));
	assert_int_equal(impair_next(&im), UINT64_MAX);
	impair_free(&im);
}

static void
same_seed_same_fate_and_reordering_reorders(void **state)
{
	struct impair a, b;
	uint8_t oa[512], ob[512];
	char err[128];
	size_t na, nb, i, inversions = 0;

	(void)state;
	assert_int_equal(impair_parse(&a, "reorder=20%,delay=5ms,loss=5%,seed=9",
	    err, sizeof(err)), 0);
	assert_int_equal(impair_parse(&b, "reorder=20%,delay=5ms,loss=5%,seed=9",
	    err, sizeof(err)), 0);
	na = run(&a, 256, oa, sizeof(oa));
	nb = run(&b, 256, ob, sizeof(ob));
	assert_int_equal(na, nb);
	assert_memory_equal(oa, ob, na);
	for (i = 1; i < na; i++)
		inversions += oa[i] < oa[i - 1];
	assert_true(a.reordered > 0 && inversions > 0);
	impair_free(&a);
	impair_free(&b);
}

static void
queue_is_bounded(void **state)
{
	struct impair im;
	char err[128];
	uint8_t b = 0;
	unsigned i;

	(void)state;
	assert_int_equal(impair_parse(&im, "delay=1000ms", err, sizeof(err)), 0);
	for (i = 0; i < IMPAIR_MAX_QUEUED + 100; i++)
		impair_offer(&im, 0, &b, 1, 0);
	assert_int_equal(im.queued, IMPAIR_MAX_QUEUED);
	assert_int_equal(im.overflow, 100);
	impair_free(&im);	/* frees what is still held (ASan checks) */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(spec_parses_and_refuses),
		cmocka_unit_test(rates_are_near_the_asked_ones),
		cmocka_unit_test(delay_is_honoured_and_order_kept_without_reordering),
		cmocka_unit_test(same_seed_same_fate_and_reordering_reorders),
		cmocka_unit_test(queue_is_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
