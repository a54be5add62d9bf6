/*
 * Tests for redirectord/backend_macos.c: the intercept spec handed to the
 * system extension through the host app.  A stand-in localcap-host (a
 * shell script in a temporary directory) records every call and answers
 * as the real one does: "spec set" / exit 0, or a reason / exit 1; status
 * prints "configuration enabled, proxy connected".  Checked: the spec
 * reaches the host whole after attach and detach; a spec the extension's
 * compiler refuses never reaches it, with the offset in what was written;
 * a failing host leaves the active spec as it was and says why; status
 * follows the host; proxyd's user is a service user.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "daemon.h"
#include "redirectord/backend.h"

static const struct rd_backend *be = &rd_backend_macos;
static char dir[64], host[128], calls[128], failf[128];
static struct daemon d = { .name = "redirectord" };

static const char script[] =
    "#!/bin/sh\n"
    "d=$(dirname \"$0\")\n"
    "printf '%s|%s\\n' \"$1\" \"$2\" >>\"$d/calls\"\n"
    "if [ -e \"$d/fail\" ]; then echo 'localcap-host: the proxy is not running'; exit 1; fi\n"
    "case $1 in\n"
    "spec) echo 'spec set' ;;\n"
    "status) echo 'configuration enabled, proxy connected' ;;\n"
    "*) echo usage; exit 2 ;;\n"
    "esac\n";

/* The host's calls so far, one "verb|arg" a line. */
static char *
read_calls(void)
{
	static char buf[8192];
	FILE *f = fopen(calls, "r");
	size_t n = 0;

	buf[0] = '\0';
	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return buf;
}

static int
setup_all(void **state)
{
	FILE *f;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_rd_macos.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(host, sizeof(host), "%s/localcap-host", dir);
	snprintf(calls, sizeof(calls), "%s/calls", dir);
	snprintf(failf, sizeof(failf), "%s/fail", dir);
	if ((f = fopen(host, "w")) == NULL)
		return -1;
	fputs(script, f);
	fclose(f);
	chmod(host, 0755);
	if (be->option('H', host) != 1 || be->option('U', "nobody") != 1)
		return -1;
	be->start(&d);
	return 0;
}

static int
teardown_all(void **state)
{
	(void)state;
	unlink(host);
	unlink(calls);
	unlink(failf);
	rmdir(dir);
	return 0;
}

static void
start_hands_over_the_empty_spec(void **state)
{
	(void)state;
	assert_string_equal(read_calls(), "spec|\n");
}

static void
attach_and_detach_reach_the_host_whole(void **state)
{
	char err[600], written[RD_SPEC_TEXT_MAX];
	uint32_t off = 0, runs = 9;

	(void)state;
	unlink(calls);
	assert_int_equal(be->attach("curl", err, sizeof(err), &off), 0);
	assert_int_equal(be->attach(" firefox , !1234", err, sizeof(err), &off), 0);
	be->written_spec(written, sizeof(written), &runs);
	assert_string_equal(written, "curl, firefox , !1234");
	assert_int_equal(runs, 0);
	assert_int_equal(be->detach("firefox", false, err, sizeof(err)), 0);
	be->written_spec(written, sizeof(written), &runs);
	assert_string_equal(written, "curl,!1234");
	/* An item that is not attached: refused, nothing handed over. */
	assert_int_equal(be->detach("safari", false, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "'safari' is not attached"));
	assert_int_equal(be->detach(NULL, true, err, sizeof(err)), 0);
	be->written_spec(written, sizeof(written), &runs);
	assert_string_equal(written, "");
	assert_string_equal(read_calls(),
	    "spec|curl\n"
	    "spec|curl, firefox , !1234\n"
	    "spec|curl,!1234\n"
	    "spec|\n");
}

static void
refused_specs_never_reach_the_host(void **state)
{
	char err[600], written[RD_SPEC_TEXT_MAX];
	uint32_t off = 0, runs;

	(void)state;
	assert_int_equal(be->attach("curl", err, sizeof(err), &off), 0);
	unlink(calls);
	/* cgroup: is Linux's; the extension refuses it, so does redirectord. */
	assert_int_equal(be->attach("wget,cgroup:/x", err, sizeof(err), &off), -1);
	assert_int_equal(off, 5);
	assert_non_null(strstr(err, "cgroup"));
	assert_int_equal(be->attach("", err, sizeof(err), &off), -1);
	assert_string_equal(read_calls(), "");
	be->written_spec(written, sizeof(written), &runs);
	assert_string_equal(written, "curl");
	assert_int_equal(be->detach(NULL, true, err, sizeof(err)), 0);
}

static void
a_failing_host_keeps_the_spec_and_says_why(void **state)
{
	char err[600], written[RD_SPEC_TEXT_MAX];
	uint32_t off = 0, runs;
	FILE *f;

	(void)state;
	assert_int_equal(be->attach("curl", err, sizeof(err), &off), 0);
	assert_non_null(f = fopen(failf, "w"));
	fclose(f);
	assert_int_equal(be->attach("wget", err, sizeof(err), &off), -1);
	assert_non_null(strstr(err, "the proxy is not running"));
	assert_non_null(strstr(err, "exit 1"));
	be->written_spec(written, sizeof(written), &runs);
	assert_string_equal(written, "curl");
	unlink(failf);
	assert_int_equal(be->detach(NULL, true, err, sizeof(err)), 0);
}

static void
status_follows_the_host(void **state)
{
	Lc__StatusReply st;
	Lc__DaemonStatus ds[RD_STATUS_ROWS], *dsp[RD_STATUS_ROWS];
	char err[600];
	uint32_t off;
	FILE *f;

	(void)state;
	assert_int_equal(be->attach("curl", err, sizeof(err), &off), 0);
	lc__status_reply__init(&st);
	lc__daemon_status__init(&ds[0]);
	dsp[0] = &ds[0];
	st.daemons = dsp;
	be->status(&st, ds, dsp);
	assert_int_equal(st.n_daemons, 2);
	assert_string_equal(ds[1].name, "extension");
	assert_true(ds[1].running);
	assert_true(st.capturing);
	assert_string_equal(st.spec, "curl");
	assert_string_equal(st.note, "");
	/* The host failing: unknown, not capturing (after the cache ran out). */
	assert_non_null(f = fopen(failf, "w"));
	fclose(f);
	sleep(3);
	be->status(&st, ds, dsp);
	assert_false(ds[1].running);
	assert_false(st.capturing);
	assert_non_null(strstr(st.note, "the proxy is not running"));
	unlink(failf);
	assert_int_equal(be->detach(NULL, true, err, sizeof(err)), 0);
}

static void
proxyd_user_is_a_service_user(void **state)
{
	(void)state;
	assert_true(be->service_uid(65534));	/* nobody */
	assert_false(be->service_uid(0));
	assert_false(be->service_uid(1234));
	assert_null(be->run);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(start_hands_over_the_empty_spec),
		cmocka_unit_test(attach_and_detach_reach_the_host_whole),
		cmocka_unit_test(refused_specs_never_reach_the_host),
		cmocka_unit_test(a_failing_host_keeps_the_spec_and_says_why),
		cmocka_unit_test(status_follows_the_host),
		cmocka_unit_test(proxyd_user_is_a_service_user),
	};

	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
