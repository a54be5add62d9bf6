/*
 * Unit tests for common/conf.c: the localcap.conf format, section
 * precedence, and that every bad line is an error naming file and line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "conf.h"
#include "log.h"

static char path[64];

static void
write_conf(const char *text)
{
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "/tmp/lc-conf-test.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
}

static void
good_file_with_sections_and_comments(void **state)
{
	struct conf *c;
	char err[256];

	(void)state;
	write_conf("# localcap\n"
	    "\n"
	    "log_level = info\n"
	    "runtime_dir=/run/lc-test\n"
	    "  [proxyd]  \n"
	    "\tlog_level = debug\n"
	    "state_dir = /var/lib/lc-test\n"
	    "[netstackd]\n"
	    "runtime_dir = /run/other\n"
	    "[redirectord]\n"
	    "tun_name = lc1\n"
	    "tun_mtu = 9000\n");
	c = conf_load(path, err, sizeof(err));
	unlink(path);
	assert_non_null(c);
	/* A daemon's own section wins; otherwise the global value applies. */
	assert_string_equal(conf_get(c, "proxyd", "log_level"), "debug");
	assert_string_equal(conf_get(c, "redirectord", "log_level"), "info");
	assert_string_equal(conf_get(c, "proxyd", "runtime_dir"), "/run/lc-test");
	assert_string_equal(conf_get(c, "netstackd", "runtime_dir"), "/run/other");
	assert_string_equal(conf_get(c, "proxyd", "state_dir"), "/var/lib/lc-test");
	assert_null(conf_get(c, "redirectord", "state_dir"));
	assert_string_equal(conf_get(c, "redirectord", "tun_name"), "lc1");
	assert_string_equal(conf_get(c, "redirectord", "tun_mtu"), "9000");
	conf_free(c);
}

/* Each bad file must fail with "FILE:LINE: <what>". */
static void
expect_error(const char *text, unsigned line, const char *what)
{
	char err[256], want[128];
	struct conf *c;

	write_conf(text);
	c = conf_load(path, err, sizeof(err));
	assert_null(c);
	snprintf(want, sizeof(want), "%s:%u: ", path, line);
	unlink(path);
	if (strncmp(err, want, strlen(want)) != 0 || strstr(err, what) == NULL)
		fail_msg("error '%s' should start '%s' and mention '%s'", err,
		    want, what);
}

static void
bad_lines_name_file_and_line(void **state)
{
	(void)state;
	expect_error("log_level = info\nbogus\n", 2, "expected 'key = value'");
	expect_error("frobnicate = 1\n", 1, "unknown key 'frobnicate'");
	expect_error("[proxy]\n", 1, "unknown section [proxy]");
	expect_error("[proxyd\n", 1, "malformed section header");
	expect_error("log_level = loud\n", 1, "must be one of");
	expect_error("runtime_dir = relative/dir\n", 1, "absolute path");
	expect_error("\n\n = x\n", 3, "missing key");
	expect_error("log_level =\n", 1, "missing value");
	expect_error("log_level = info\nlog_level = debug\n", 2, "duplicate key");
	expect_error("state_dir = /x\n", 1, "does not belong in the global section");
	expect_error("[netstackd]\nstate_dir = /x\n", 2, "does not belong in [netstackd]");
	expect_error("[redirectord]\ntun_mtu = 100\n", 2, "from 1280 to 65535");
	expect_error("[redirectord]\ntun_mtu = 1500x\n", 2, "from 1280 to 65535");
	expect_error("[redirectord]\ntun_mtu = -1\n", 2, "from 1280 to 65535");
	expect_error("[redirectord]\ntun_name = a/b\n", 2, "interface name");
	expect_error("[redirectord]\ntun_name = sixteen-chars-xx\n", 2, "interface name");
}

static void
overlong_line_is_an_error(void **state)
{
	char *text = malloc(3000);

	(void)state;
	memset(text, 'a', 2998);
	text[2998] = '\n';
	text[2999] = '\0';
	expect_error(text, 1, "longer than");
	free(text);
}

static void
missing_file_is_an_error(void **state)
{
	char err[256];

	(void)state;
	assert_null(conf_load("/nonexistent/localcap.conf", err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/localcap.conf: No such file"));
}

static void
log_levels_parse(void **state)
{
	(void)state;
	assert_int_equal(conf_parse_log_level("warn"), LOG_LEVEL_WARN);
	assert_int_equal(conf_parse_log_level("trace"), LOG_LEVEL_TRACE);
	assert_int_equal(conf_parse_log_level("INFO"), -1);
	assert_int_equal(conf_parse_log_level(""), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(good_file_with_sections_and_comments),
		cmocka_unit_test(bad_lines_name_file_and_line),
		cmocka_unit_test(overlong_line_is_an_error),
		cmocka_unit_test(missing_file_is_an_error),
		cmocka_unit_test(log_levels_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
