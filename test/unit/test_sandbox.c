/*
 * Tests for common/sandbox.c: each case forks, confines the child with the
 * netstackd profile (or the one under test: signer, proxyd, webd), and checks from the parent what the kernel let the
 * child do.  A forbidden system call must end the child with status 159
 * (the SIGSYS handler's); Landlock must refuse files; capabilities must be
 * gone.  The seccomp cases are skipped in sanitizer builds, where the
 * filter is deliberately not installed.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"
#include "sandbox.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZER_BUILD 1
#endif

/* Run fn in a child confined with profile; its exit status (or 128+signal). */
static int
confined_as(enum sandbox_profile profile, int (*fn)(void))
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct sandbox sb = { .profile = profile };
		int devnull = open("/dev/null", O_WRONLY);

		/* Quiet: the parent judges by exit status. */
		dup2(devnull, STDERR_FILENO);
		log_init("test_sandbox", 1, LOG_LEVEL_WARN - 1);
		sandbox_enter(&sb);
		_exit(fn());
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int
confined(int (*fn)(void))
{
	return confined_as(SANDBOX_NETSTACKD, fn);
}

static int
do_ioctl(void)
{
	struct winsize ws;

	(void)ioctl(STDIN_FILENO, TIOCGWINSZ, &ws);
	return 0;	/* not reached */
}

static int
do_inet_socket(void)
{
	(void)socket(AF_INET, SOCK_STREAM, 0);
	return 0;	/* not reached */
}

static int
do_unix_socketpair(void)
{
	int sv[2];

	return socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0 &&
	    write(sv[0], "x", 1) == 1 ? 0 : 1;
}

static int
do_open_file(void)
{
	int fd = open("/etc/hostname", O_RDONLY);

	return fd == -1 && errno == EACCES ? 0 : 1;
}

/* What proxyd's signer does: malloc, randomness, time, a socket it has. */
static int
do_signer_work(void)
{
	unsigned char rnd[32];
	struct timespec ts;
	char *big = malloc(4 << 20), *small = malloc(100);

	if (big == NULL || small == NULL)
		return 1;
	memset(big, 1, 4 << 20);
	free(big);
	free(small);
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd) ||
	    clock_gettime(CLOCK_REALTIME, &ts) != 0 || time(NULL) == (time_t)-1)
		return 2;
	return write(STDERR_FILENO, "x", 1) == 1 ? 0 : 3;
}

/*
 * What proxyd's relay does to splice a direction (proxyd/relay.c): a pipe
 * sized with F_SETPIPE_SZ, socket -> pipe -> socket with splice(2), both
 * ways between a Unix socket and a TCP one.
 */
static int
do_proxyd_splice(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int sv[2], p[2], lfd, c, a;
	char buf[8];

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1 ||
	    pipe2(p, O_NONBLOCK | O_CLOEXEC) == -1)
		return 1;
	if (fcntl(p[1], F_SETPIPE_SZ, 128 * 1024) < 128 * 1024)
		return 2;
	if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
	    bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(lfd, 1) == -1 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &len) == -1 ||
	    (c = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
	    connect(c, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    (a = accept4(lfd, NULL, NULL, 0)) == -1)
		return 3;
	/* Unix -> pipe -> TCP */
	if (write(sv[0], "unix", 4) != 4 ||
	    splice(sv[1], NULL, p[1], NULL, 4, SPLICE_F_MOVE) != 4 ||
	    splice(p[0], NULL, c, NULL, 4, SPLICE_F_MOVE) != 4 ||
	    recv(a, buf, 4, MSG_WAITALL) != 4 || memcmp(buf, "unix", 4) != 0)
		return 4;
	/* TCP -> pipe -> Unix */
	if (send(a, "tcp!", 4, 0) != 4 ||
	    splice(c, NULL, p[1], NULL, 4, SPLICE_F_MOVE) != 4 ||
	    splice(p[0], NULL, sv[1], NULL, 4, SPLICE_F_MOVE) != 4 ||
	    recv(sv[0], buf, 4, MSG_WAITALL) != 4 || memcmp(buf, "tcp!", 4) != 0)
		return 5;
	return 0;
}

static int
do_unix_socket(void)
{
	(void)socket(AF_UNIX, SOCK_STREAM, 0);
	return 0;	/* not reached */
}

static int
do_exec_mapping(void)
{
	(void)mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return 0;	/* not reached */
}

static int
do_kill_parent(void)
{
	(void)kill(getppid(), 0);
	return 0;	/* not reached */
}

/* raise() is tgkill on ourselves: still allowed. */
static int
do_signal_self(void)
{
	signal(SIGUSR1, SIG_IGN);
	return raise(SIGUSR1) == 0 && kill(getpid(), 0) == 0 ? 0 : 1;
}

static int
do_tgkill_parent(void)
{
	pid_t pp = getppid();

	(void)syscall(SYS_tgkill, pp, pp, 0);
	return 0;	/* not reached */
}

/*
 * Signals reach only the process itself, under both daemon profiles: a
 * parser bug must not be able to signal redirectord, pid 1 or a sibling.
 */
static void
daemon_profiles_signal_only_themselves(void **state)
{
	(void)state;
	assert_int_equal(confined_as(SANDBOX_NETSTACKD, do_signal_self), 0);
	assert_int_equal(confined_as(SANDBOX_PROXYD, do_signal_self), 0);
#ifdef SANITIZER_BUILD
	skip();
#endif
	assert_int_equal(confined_as(SANDBOX_NETSTACKD, do_kill_parent), 159);
	assert_int_equal(confined_as(SANDBOX_PROXYD, do_kill_parent), 159);
	assert_int_equal(confined_as(SANDBOX_NETSTACKD, do_tgkill_parent), 159);
	assert_int_equal(confined_as(SANDBOX_PROXYD, do_tgkill_parent), 159);
}

/* A root-owned 0600 socket (systemd's private one, say) the probe tries. */
static char root_sock[108];

static int
do_connect_root_socket(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	memcpy(sun.sun_path, root_sock, strlen(root_sock) + 1);
	if (fd == -1)
		return 2;
	return connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 &&
	    errno == EACCES ? 0 : 1;
}

/* The daemon profiles as they run (their own user): no root-only socket. */
static int
confined_user(enum sandbox_profile profile, const char *user, int (*fn)(void))
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct sandbox sb = { .profile = profile, .user = user };
		int devnull = open("/dev/null", O_WRONLY);

		dup2(devnull, STDERR_FILENO);
		log_init("test_sandbox", 1, LOG_LEVEL_WARN - 1);
		sandbox_enter(&sb);
		_exit(fn());
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void
daemon_users_cannot_reach_root_sockets(void **state)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char dir[] = "/tmp/lc-sbx.XXXXXX";
	int lfd;

	(void)state;
	if (geteuid() != 0 || getpwnam("nobody") == NULL)
		skip();
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chmod(dir, 0755), 0);
	snprintf(root_sock, sizeof(root_sock), "%s/private", dir);
	memcpy(sun.sun_path, root_sock, strlen(root_sock) + 1);
	assert_true((lfd = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(chmod(root_sock, 0600), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(confined_user(SANDBOX_NETSTACKD, "nobody",
	    do_connect_root_socket), 0);
	assert_int_equal(confined_user(SANDBOX_PROXYD, "nobody",
	    do_connect_root_socket), 0);
	close(lfd);
	unlink(root_sock);
	rmdir(dir);
}

static void
signer_profile_allows_its_work_and_nothing_else(void **state)
{
	(void)state;
	assert_int_equal(confined_as(SANDBOX_SIGNER, do_signer_work), 0);
	/* Landlock with no rule: no file at all (seccomp ends it first). */
#ifdef SANITIZER_BUILD
	assert_int_equal(confined_as(SANDBOX_SIGNER, do_open_file), 0);
	skip();
#endif
	assert_int_equal(confined_as(SANDBOX_SIGNER, do_open_file), 159);
	assert_int_equal(confined_as(SANDBOX_SIGNER, do_unix_socket), 159);
	assert_int_equal(confined_as(SANDBOX_SIGNER, do_exec_mapping), 159);
	assert_int_equal(confined_as(SANDBOX_SIGNER, do_kill_parent), 159);
	assert_int_equal(confined_as(SANDBOX_SIGNER, do_ioctl), 159);
}

static void
proxyd_profile_allows_splice(void **state)
{
	(void)state;
	assert_int_equal(confined_as(SANDBOX_PROXYD, do_proxyd_splice), 0);
}

static void
forbidden_ioctl_kills(void **state)
{
	(void)state;
#ifdef SANITIZER_BUILD
	skip();
#endif
	assert_int_equal(confined(do_ioctl), 159);
}

static void
inet_socket_kills_but_unix_works(void **state)
{
	(void)state;
#ifdef SANITIZER_BUILD
	skip();
#endif
	assert_int_equal(confined(do_inet_socket), 159);
	assert_int_equal(confined(do_unix_socketpair), 0);
}

static void
landlock_refuses_files(void **state)
{
	(void)state;
	assert_int_equal(confined(do_open_file), 0);
}

/*
 * The viewer's profile (webd): it accepts on a listener made before it
 * confined itself and talks to ctl.sock, but it can create no IP socket
 * (so it never connects out), and it reads only its ro_paths.
 */
static int webd_listener = -1;
static char webd_dir[] = "/tmp/lc-sbx-webd.XXXXXX";
static char webd_file[64];

static int
confined_webd(int (*fn)(void))
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		const char *ro[] = { webd_dir, NULL };
		struct sandbox sb = { .profile = SANDBOX_WEBD, .ro_paths = ro };
		int devnull = open("/dev/null", O_WRONLY);

		dup2(devnull, STDERR_FILENO);
		log_init("test_sandbox", 1, LOG_LEVEL_WARN - 1);
		sandbox_enter(&sb);
		_exit(fn());
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* What webd does: accept a waiting connection, read it, a Unix socket. */
static int
do_webd_work(void)
{
	char buf[4];
	int c, sv[2];

	if ((c = accept4(webd_listener, NULL, NULL, SOCK_CLOEXEC)) == -1)
		return 1;
	if (recv(c, buf, 4, MSG_WAITALL) != 4 || memcmp(buf, "GET ", 4) != 0)
		return 2;
	if (send(c, "HTTP", 4, 0) != 4)
		return 3;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		return 4;
	return 0;
}

static int
do_inet6_socket(void)
{
	(void)socket(AF_INET6, SOCK_STREAM, 0);
	return 0;	/* not reached */
}

static int
do_inet_dgram_socket(void)
{
	(void)socket(AF_INET, SOCK_DGRAM, 0);
	return 0;	/* not reached */
}

/* Its ro_paths are readable; nothing else is, and nothing is writable. */
static int
do_webd_files(void)
{
	char buf[8];
	int fd;

	if ((fd = open(webd_file, O_RDONLY)) == -1 || read(fd, buf, 5) != 5 ||
	    memcmp(buf, "store", 5) != 0)
		return 1;
	close(fd);
	if (open(webd_file, O_WRONLY) != -1 || errno != EACCES)
		return 2;
	if (open("/etc/hostname", O_RDONLY) != -1 || errno != EACCES)
		return 3;
	if (open("/tmp/lc-sbx-webd-new", O_WRONLY | O_CREAT, 0600) != -1 ||
	    errno != EACCES)
		return 4;
	return 0;
}

static void
webd_profile_never_connects_out(void **state)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	char buf[4];
	int c, fd;

	(void)state;
	assert_non_null(mkdtemp(webd_dir));
	snprintf(webd_file, sizeof(webd_file), "%s/flows.db", webd_dir);
	assert_true((fd = open(webd_file, O_WRONLY | O_CREAT, 0600)) >= 0);
	assert_int_equal(write(fd, "store", 5), 5);
	close(fd);
	/* The listener and a connection waiting on it, made before the fork. */
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true((webd_listener = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(webd_listener, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(webd_listener, 4), 0);
	assert_int_equal(getsockname(webd_listener, (struct sockaddr *)&sin, &len), 0);
	assert_true((c = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(connect(c, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(send(c, "GET ", 4, 0), 4);

	assert_int_equal(confined_webd(do_webd_work), 0);
	assert_int_equal(recv(c, buf, 4, MSG_WAITALL), 4);
	assert_memory_equal(buf, "HTTP", 4);
	assert_int_equal(confined_webd(do_webd_files), 0);
	close(c);
	close(webd_listener);
	unlink(webd_file);
	rmdir(webd_dir);
#ifdef SANITIZER_BUILD
	skip();
#endif
	assert_int_equal(confined_webd(do_inet_socket), 159);
	assert_int_equal(confined_webd(do_inet6_socket), 159);
	assert_int_equal(confined_webd(do_inet_dgram_socket), 159);
	assert_int_equal(confined_webd(do_ioctl), 159);
	assert_int_equal(confined_webd(do_kill_parent), 159);
}

/* A field of /proc/PID/status. */
static void
status_field(pid_t pid, const char *name, char *out, size_t len)
{
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	assert_non_null(f = fopen(path, "r"));
	out[0] = '\0';
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, name, strlen(name)) == 0 && line[strlen(name)] == ':') {
			sscanf(line + strlen(name) + 1, "%63s", out);
			break;
		}
	fclose(f);
	assert_true(len >= 64 && out[0] != '\0');
}

static void
check_confined_child(const char *user)
{
	char v[64], go;
	int ready[2], hold[2], status;
	pid_t pid;

	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(hold), 0);
	if ((pid = fork()) == 0) {
		struct sandbox sb = { .profile = SANDBOX_NETSTACKD, .user = user };
		int devnull = open("/dev/null", O_WRONLY);

		dup2(devnull, STDERR_FILENO);
		log_init("test_sandbox", 1, LOG_LEVEL_WARN - 1);
		sandbox_enter(&sb);
		(void)!write(ready[1], "r", 1);
		(void)!read(hold[0], &go, 1);	/* until the parent has looked */
		_exit(0);
	}
	assert_int_equal(read(ready[0], &go, 1), 1);
	/* What the kernel says about the confined child. */
	status_field(pid, "CapEff", v, sizeof(v));
	assert_string_equal(v, "0000000000000000");
	status_field(pid, "CapPrm", v, sizeof(v));
	assert_string_equal(v, "0000000000000000");
	status_field(pid, "CapBnd", v, sizeof(v));
	assert_string_equal(v, "0000000000000000");
	status_field(pid, "CapAmb", v, sizeof(v));
	assert_string_equal(v, "0000000000000000");
	status_field(pid, "NoNewPrivs", v, sizeof(v));
	assert_string_equal(v, "1");
#ifndef SANITIZER_BUILD
	status_field(pid, "Seccomp", v, sizeof(v));
	assert_string_equal(v, "2");
#endif
	if (user) {
		status_field(pid, "Uid", v, sizeof(v));
		assert_string_equal(v, "65534");
		status_field(pid, "Gid", v, sizeof(v));
		assert_string_equal(v, "65534");
	}
	assert_int_equal(write(hold[1], "g", 1), 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(ready[0]);
	close(ready[1]);
	close(hold[0]);
	close(hold[1]);
}

static void
no_capabilities_and_no_new_privs(void **state)
{
	(void)state;
	check_confined_child(NULL);
}

/* Switching user must not leave anything in the bounding set either. */
static void
as_another_user_nothing_is_left(void **state)
{
	(void)state;
	if (geteuid() != 0 || getpwnam("nobody") == NULL ||
	    getpwnam("nobody")->pw_uid != 65534)
		skip();
	check_confined_child("nobody");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(forbidden_ioctl_kills),
		cmocka_unit_test(inet_socket_kills_but_unix_works),
		cmocka_unit_test(landlock_refuses_files),
		cmocka_unit_test(signer_profile_allows_its_work_and_nothing_else),
		cmocka_unit_test(proxyd_profile_allows_splice),
		cmocka_unit_test(webd_profile_never_connects_out),
		cmocka_unit_test(daemon_profiles_signal_only_themselves),
		cmocka_unit_test(daemon_users_cannot_reach_root_sockets),
		cmocka_unit_test(no_capabilities_and_no_new_privs),
		cmocka_unit_test(as_another_user_nothing_is_left),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
