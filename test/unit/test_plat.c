/*
 * The platform seam (common/plat.h).  Built twice: test_plat runs the
 * Linux side (plat_linux.c), test_plat_portable the POSIX side macOS
 * builds (plat_posix.c compiled with -DLC_PORTABLE; Makefile), so both
 * answer to the same contract here; macos-extension/shim's `make check`
 * runs it on a Mac too.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "plat.h"

static void
the_build_says_which_side(void **state)
{
	(void)state;
#if LC_PLAT_LINUX
	assert_string_equal(plat_name(), "linux");
#else
	/* LC_PORTABLE on Linux, or macOS (macos-extension/shim: make check) */
	assert_string_equal(plat_name(), "portable");
	assert_int_equal(MSG_NOSIGNAL, 0);
#endif
#ifdef LC_PORTABLE
	assert_int_equal(LC_PLAT_LINUX, 0);
#endif
}

static void
sockets_are_cloexec_and_nonblocking_when_asked(void **state)
{
	int fd, sv[2];

	(void)state;
	assert_true((fd = plat_socket(AF_UNIX, SOCK_STREAM, 1)) >= 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	close(fd);
	assert_true((fd = plat_socket(AF_INET, SOCK_DGRAM, 0)) >= 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK);
	close(fd);
	assert_int_equal(plat_socketpair(AF_UNIX, SOCK_STREAM, sv), 0);
	assert_true(fcntl(sv[0], F_GETFD) & FD_CLOEXEC);
	assert_true(fcntl(sv[1], F_GETFD) & FD_CLOEXEC);
	assert_false(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(plat_socket(-1, SOCK_STREAM, 0), -1);
}

static void
accepted_sockets_are_cloexec_and_nonblocking(void **state)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);
	int l, c, a;

	(void)state;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	/* a path, not Linux's abstract names */
	(void)snprintf(sa.sun_path, sizeof(sa.sun_path), "/tmp/lc-plat-%d",
	    (int)getpid());
	(void)unlink(sa.sun_path);
	assert_true((l = plat_socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_true((c = plat_socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_true((a = plat_accept(l, (struct sockaddr *)&sa, &len)) >= 0);
	assert_true(fcntl(a, F_GETFD) & FD_CLOEXEC);
	assert_true(fcntl(a, F_GETFL) & O_NONBLOCK);
	close(a);
	close(c);
	close(l);
	(void)unlink(sa.sun_path);
	/* nothing pending on a non-blocking listener: EAGAIN, not a hang */
	assert_true((l = plat_socket(AF_UNIX, SOCK_STREAM, 1)) >= 0);
	(void)unlink(sa.sun_path);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(plat_accept(l, NULL, NULL), -1);
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
	close(l);
	(void)unlink(sa.sun_path);
}

static void
random_bytes_differ(void **state)
{
	unsigned char a[64], b[64], z[64];

	(void)state;
	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	memset(z, 0, sizeof(z));
	assert_int_equal(plat_random(a, sizeof(a)), 0);
	assert_int_equal(plat_random(b, sizeof(b)), 0);
	assert_memory_not_equal(a, z, sizeof(a));
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(plat_random(a, 0), 0);
}

/* In a child: 300 descriptors (more than plat_posix.c reads from /dev/fd
 * at once), some below the cut; everything from the cut up is closed,
 * nothing below it. */
static void
close_from_closes_exactly_from_the_cut(void **state)
{
	int st;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		int fds[300], i, cut, bad = 0;

		for (i = 0; i < 300; i++)
			if ((fds[i] = open("/dev/null", O_RDONLY)) == -1)
				_exit(2);
		cut = fds[5];
		if (plat_close_from(cut) != 0)
			_exit(3);
		for (i = 0; i < 300; i++) {
			int open_now = fcntl(fds[i], F_GETFD) != -1;

			if (open_now != (fds[i] < cut))
				bad++;
		}
		if (fcntl(STDERR_FILENO, F_GETFD) == -1)
			bad++;
		_exit(bad == 0 ? 0 : 4);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void
no_dump_and_die_with_parent_succeed(void **state)
{
	int st;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0)
		_exit(plat_no_dump() == 0 && plat_die_with_parent() == 0 ? 0 : 1);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void
privilege_matches_the_user(void **state)
{
	(void)state;
	/* root here (or a process with capabilities) has something to drop;
	 * the answers agree with the ids either way */
	if (geteuid() == 0) {
		assert_int_equal(plat_privileged(), 1);
		assert_int_equal(plat_can_chown(), 1);
	} else {
		assert_int_equal(plat_can_chown(), 0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_build_says_which_side),
		cmocka_unit_test(sockets_are_cloexec_and_nonblocking_when_asked),
		cmocka_unit_test(accepted_sockets_are_cloexec_and_nonblocking),
		cmocka_unit_test(random_bytes_differ),
		cmocka_unit_test(close_from_closes_exactly_from_the_cut),
		cmocka_unit_test(no_dump_and_die_with_parent_succeed),
		cmocka_unit_test(privilege_matches_the_user),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
