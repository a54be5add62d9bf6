/*
 * mitmproxy's intercept-spec cases (mitmproxy_rs intercept_conf.rs, plus
 * the order and whitespace rules), shared by test_rd_spec.c (redirectord,
 * Linux) and test_mx_core.c (the macOS core): one table, so the two
 * platforms cannot drift apart.  Both evaluate through common/ispec.c.
 */
#ifndef LOCALCAP_TEST_SPEC_CASES_H
#define LOCALCAP_TEST_SPEC_CASES_H

#include <stdbool.h>

/* mitmproxy's own test processes: a = pid 1 "a", b = pid 2242 "mitmproxy". */
static const struct {
	const char	*spec;
	bool		 a, b;
} mitmproxy_table[] = {
	{ "1,2,3", true, false },
	{ "", false, false },
	{ "   ", false, false },
	{ "!1234", true, true },
	{ "mitmproxy", false, true },
	{ "!mitmproxy", true, false },
	/* The whole name is compared (Linux: the comm; macOS: the
	 * executable's base name): no substring match, where mitmproxy's
	 * macOS/Windows matchers use `contains` on the path. */
	{ "mitm", false, false },
	{ "!mitm", true, true },
	/* Ordered: a later include re-includes, a later exclude removes. */
	{ "!a,a", true, true },
	{ "a,!a", false, false },
	{ "!a,!mitmproxy", false, false },
	{ "mitmproxy,!2242", false, false },
	{ "2242,!mitmproxy", false, false },
	{ "!2242,mitmproxy", true, true },
	{ "a,mitmproxy", true, true },
	/* Whitespace around items and after '!' is trimmed. */
	{ " a , mitmproxy ", true, true },
	{ "\ta,\n2242\r\n", true, true },
	{ "! a", false, true },
	{ "!\t2242", true, false },
	/* Digits are a pid, leading zeros and all; a name is anything else. */
	{ "0001", true, false },
	{ "2242x", false, false },
	/* Names are case-sensitive, as comm is. */
	{ "MITMPROXY", false, false },
};

#define MITMPROXY_TABLE_LEN \
	(sizeof(mitmproxy_table) / sizeof(mitmproxy_table[0]))

#endif
