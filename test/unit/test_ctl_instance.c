/*
 * ctl/instance.c's pure helpers (up, down, logs use them): which pid a
 * daemon's pid file names, trusted only if that process runs that daemon
 * (pid files outlive their processes; pids are recycled), and the one
 * line `up` prints when a daemon stopped during start-up.
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

#include "ctl/ctl.h"

static char dir[64];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/lc-instance-test.XXXXXX");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
put(const char *name, const char *text)
{
	char path[160];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
}

static void
pid_file_is_trusted_only_for_its_daemon(void **state)
{
	char comm[32] = "", text[32];
	FILE *f;

	(void)state;
	/* This test process plays the daemon: its own name and pid. */
	assert_non_null(f = fopen("/proc/self/comm", "r"));
	assert_non_null(fgets(comm, sizeof(comm), f));
	fclose(f);
	comm[strcspn(comm, "\n")] = '\0';
	snprintf(text, sizeof(text), "%d\n", (int)getpid());
	{
		char name[48];

		snprintf(name, sizeof(name), "%s.pid", comm);
		put(name, text);
	}
	assert_int_equal(ctl_daemon_pid(dir, comm), getpid());
	/* The same pid under another daemon's name: a recycled pid. */
	put("proxyd.pid", text);
	assert_int_equal(ctl_daemon_pid(dir, "proxyd"), 0);
	/* No file, garbage, or nonsense pids. */
	assert_int_equal(ctl_daemon_pid(dir, "netstackd"), 0);
	put("webd.pid", "not a pid\n");
	assert_int_equal(ctl_daemon_pid(dir, "webd"), 0);
	put("webd.pid", "-5\n");
	assert_int_equal(ctl_daemon_pid(dir, "webd"), 0);
	put("webd.pid", "0\n");
	assert_int_equal(ctl_daemon_pid(dir, "webd"), 0);
}

static void
last_error_prefers_the_fatal_line_without_prefixes(void **state)
{
	char out[256];

	(void)state;
	put("proxyd.log",
	    "12:00:00.000 proxyd[1] info: main: proxyd started\n"
	    "12:00:00.001 proxyd[1] warn: load_ca: an old warning\n"
	    "12:00:00.002 proxyd[1] fatal: listen_flow: cannot bind flow.sock: "
	    "Address in use\n"
	    "12:00:00.003 proxyd[1] warn: later_warning: less important\n");
	ctl_last_error(dir, "proxyd", out, sizeof(out));
	assert_string_equal(out, "cannot bind flow.sock: Address in use");

	/* Only warnings: the last of them. */
	put("netstackd.log",
	    "t netstackd[2] warn: a: first\n"
	    "t netstackd[2] warn: b: second one\n");
	ctl_last_error(dir, "netstackd", out, sizeof(out));
	assert_string_equal(out, "second one");

	/* A message with no "function: " prefix is kept whole. */
	put("webd.log", "t webd[3] fatal: no prefix here: the rest\n");
	ctl_last_error(dir, "webd", out, sizeof(out));
	assert_string_equal(out, "no prefix here: the rest");

	/* Nothing to say: no file, or no such lines. */
	ctl_last_error(dir, "redirectord", out, sizeof(out));
	assert_string_equal(out, "");
	put("redirectord.log", "t redirectord[4] info: all well\n");
	ctl_last_error(dir, "redirectord", out, sizeof(out));
	assert_string_equal(out, "");
}

static void
last_error_lets_no_terminal_escape_through(void **state)
{
	char out[256];

	(void)state;
	put("proxyd.log", "t proxyd[1] fatal: f: bad \x1b[31mred\x07 bytes\n");
	ctl_last_error(dir, "proxyd", out, sizeof(out));
	assert_string_equal(out, "bad ?[31mred? bytes");
	/* Cut to the caller's buffer. */
	ctl_last_error(dir, "proxyd", out, 4);
	assert_string_equal(out, "bad");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pid_file_is_trusted_only_for_its_daemon),
		cmocka_unit_test(last_error_prefers_the_fatal_line_without_prefixes),
		cmocka_unit_test(last_error_lets_no_terminal_escape_through),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
