/*
 * common/daemon.c on its own: the common options, absolute paths, and
 * daemon_start's refusals (a runtime dir others may write to, a second
 * instance on the same pid file), each in a child process because they
 * end it, as they end a daemon.
 */
#include <errno.h>
#include <getopt.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <ev.h>

#include "daemon.h"
#include "log.h"

static char dir[64];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/lc-daemon-test.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	return chmod(dir, 0755);
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
common_options_are_taken(void **state)
{
	struct daemon d = { .name = "testd" };

	(void)state;
	assert_int_equal(daemon_common_opt(&d, 'r', "/run/x", "usage", NULL), 1);
	assert_string_equal(d.runtime_dir_opt, "/run/x");
	assert_int_equal(daemon_common_opt(&d, 'f', NULL, "usage", NULL), 1);
	assert_int_equal(d.foreground, 1);
	assert_int_equal(daemon_common_opt(&d, 'v', NULL, "usage", NULL), 1);
	assert_int_equal(daemon_common_opt(&d, 'v', NULL, "usage", NULL), 1);
	assert_int_equal(d.verbose, 2);
	assert_int_equal(daemon_common_opt(&d, 'c', "/etc/x.conf", "usage", NULL), 1);
	assert_string_equal(d.config_path, "/etc/x.conf");
	/* Not a common one: the daemon's own. */
	assert_int_equal(daemon_common_opt(&d, 'Z', NULL, "usage", NULL), 0);
}

static void
paths_are_made_absolute(void **state)
{
	struct daemon d = { .name = "testd" };
	char out[256], cwd[200], want[256];

	(void)state;
	daemon_abspath("/abs/path", out, sizeof(out));
	assert_string_equal(out, "/abs/path");
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	daemon_abspath("rel/x", out, sizeof(out));
	snprintf(want, sizeof(want), "%s/rel/x", cwd);
	assert_string_equal(out, want);
	snprintf(d.runtime_dir, sizeof(d.runtime_dir), "/run/lc");
	daemon_path(&d, "ctl.sock", out, sizeof(out));
	assert_string_equal(out, "/run/lc/ctl.sock");
}

/* daemon_start in a child; returns its exit status (0: it started). */
static int
start_in_child(const char *runtime, int hold_fd)
{
	pid_t pid;
	int status;

	if ((pid = fork()) == 0) {
		struct daemon d = { .name = "testd", .foreground = 1 };
		const struct daemon_hooks hooks = { 0 };
		struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
		char c;

		/* Quiet: the refusals are expected. */
		if (freopen("/dev/null", "w", stderr) == NULL)
			_exit(99);
		d.runtime_dir_opt = runtime;
		daemon_start(&d, loop, &hooks);
		if (hold_fd >= 0) {
			/* Started: say so, then hold the lock until told. */
			(void)!write(hold_fd, "s", 1);
			(void)!read(hold_fd, &c, 1);
		}
		daemon_finish(&d);
		_exit(0);
	}
	if (hold_fd >= 0)
		return 0;
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void
start_makes_the_runtime_dir_and_pid_file(void **state)
{
	char rd[128], pidf[160];
	struct stat st;

	(void)state;
	snprintf(rd, sizeof(rd), "%s/run", dir);
	assert_int_equal(start_in_child(rd, -1), 0);
	assert_int_equal(stat(rd, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0755);
	/* daemon_finish removed its pid file. */
	snprintf(pidf, sizeof(pidf), "%s/testd.pid", rd);
	assert_int_equal(access(pidf, F_OK), -1);
}

static void
start_refuses_a_dir_others_may_write(void **state)
{
	char rd[128];

	(void)state;
	snprintf(rd, sizeof(rd), "%s/open", dir);
	assert_int_equal(mkdir(rd, 0777), 0);
	assert_int_equal(chmod(rd, 0777), 0);
	assert_int_not_equal(start_in_child(rd, -1), 0);
	assert_int_equal(chmod(rd, 0755), 0);
	assert_int_equal(start_in_child(rd, -1), 0);
}

static void
second_instance_on_the_same_dir_is_refused(void **state)
{
	char rd[128], c = 0;
	int sv[2], status, tries;
	pid_t first;

	(void)state;
	snprintf(rd, sizeof(rd), "%s/one", dir);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	if ((first = fork()) == 0) {
		close(sv[0]);
		(void)start_in_child(rd, sv[1]);
		_exit(0);
	}
	close(sv[1]);
	/* Wait until the first holds the lock. */
	assert_int_equal(read(sv[0], &c, 1), 1);
	assert_int_equal(c, 's');
	assert_int_not_equal(start_in_child(rd, -1), 0);
	assert_int_equal(write(sv[0], "x", 1), 1);
	assert_int_equal(waitpid(first, &status, 0), first);
	/*
	 * The instance holding the lock is first's child: its end of the
	 * socketpair reads EOF once it has exited.  The kernel may drop the
	 * flock a moment after that fd, so a few quick retries.
	 */
	while (read(sv[0], &c, 1) > 0)
		;
	close(sv[0]);
	/* Once it is gone, the next one starts. */
	for (tries = 0; tries < 100 && start_in_child(rd, -1) != 0; tries++)
		usleep(10000);
	assert_true(tries < 100);
}

static void
overlong_runtime_dir_is_refused(void **state)
{
	char rd[200];

	(void)state;
	snprintf(rd, sizeof(rd), "%s/%0120d", dir, 0);
	assert_int_not_equal(start_in_child(rd, -1), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(common_options_are_taken),
		cmocka_unit_test(paths_are_made_absolute),
		cmocka_unit_test(start_makes_the_runtime_dir_and_pid_file),
		cmocka_unit_test(start_refuses_a_dir_others_may_write),
		cmocka_unit_test(second_instance_on_the_same_dir_is_refused),
		cmocka_unit_test(overlong_runtime_dir_is_refused),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
