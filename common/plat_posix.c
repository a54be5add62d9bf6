/*
 * plat.h the way macOS builds it: POSIX calls and what BSD adds
 * (arc4random_buf, SO_NOSIGPIPE, PT_DENY_ATTACH).  Compiled into the
 * portable builds on Linux too (LC_PORTABLE, LC_PORTABLE_CHECK), where
 * test/integration/macos_proxyd.sh runs proxyd with it.
 */
#include "plat.h"

#if !LC_PLAT_LINUX
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>
#ifdef __APPLE__
#include <sys/ptrace.h>
#endif

int
plat_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	return fl == -1 ? -1 : fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

static int
prepare(int fd, int nonblock)
{
	int fl;
#ifdef SO_NOSIGPIPE
	int one = 1;

	if (setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one)) == -1)
		return -1;
#endif
	if (plat_cloexec(fd) == -1)
		return -1;
	if (nonblock && ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1))
		return -1;
	return 0;
}

static int
fail_closing(int fd)
{
	int saved = errno;

	close(fd);
	errno = saved;
	return -1;
}

int
plat_socket(int domain, int type, int nonblock)
{
	int fd = socket(domain, type, 0);

	if (fd != -1 && prepare(fd, nonblock) == -1)
		return fail_closing(fd);
	return fd;
}

int
plat_socketpair(int domain, int type, int sv[2])
{
	if (socketpair(domain, type, 0, sv) == -1)
		return -1;
	if (prepare(sv[0], 0) == -1 || prepare(sv[1], 0) == -1) {
		(void)fail_closing(sv[0]);
		return fail_closing(sv[1]);
	}
	return 0;
}

int
plat_accept(int lfd, struct sockaddr *sa, socklen_t *len)
{
	int fd = accept(lfd, sa, len);

	/* macOS: an accepted socket does not inherit O_NONBLOCK reliably
	 * across systems; set everything explicitly. */
	if (fd != -1 && prepare(fd, 1) == -1)
		return fail_closing(fd);
	return fd;
}

int
plat_random(void *buf, size_t len)
{
	arc4random_buf(buf, len);	/* cannot fail */
	return 0;
}

/*
 * /dev/fd lists the open descriptors on macOS and Linux alike; without it,
 * every number below the descriptor limit is closed.
 */
int
plat_close_from(int lowfd)
{
	DIR *d;
	struct dirent *de;
	struct rlimit rl;
	int fds[256], n, i, fd, dfd, more;
	long max;

	do {
		if ((d = opendir("/dev/fd")) == NULL)
			goto brute;
		dfd = dirfd(d);
		n = 0;
		more = 0;
		while ((de = readdir(d)) != NULL) {
			char *end;
			long v = strtol(de->d_name, &end, 10);

			if (*end != '\0' || end == de->d_name || v < lowfd ||
			    v == dfd)
				continue;
			if (n == (int)(sizeof(fds) / sizeof(fds[0]))) {
				more = 1;	/* close these, then look again */
				break;
			}
			fds[n++] = (int)v;
		}
		closedir(d);
		for (i = 0; i < n; i++)
			(void)close(fds[i]);
	} while (more);
	return 0;
brute:
	max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ?
	    (long)rl.rlim_cur : 10240;
	if (max > 1 << 20)
		max = 1 << 20;
	for (fd = lowfd; fd < max; fd++)
		(void)close(fd);
	return 0;
}

int
plat_no_dump(void)
{
	struct rlimit none = { 0, 0 };

	if (setrlimit(RLIMIT_CORE, &none) == -1)
		return -1;
#ifdef __APPLE__
	/* No debugger, not even one of the same user, may attach. */
	if (ptrace(PT_DENY_ATTACH, 0, 0, 0) == -1)
		return -1;
#endif
	return 0;
}

int
plat_die_with_parent(void)
{
	return 0;	/* see plat.h: the caller ends on EOF instead */
}

int
plat_privileged(void)
{
	return geteuid() == 0 || getegid() == 0;
}

int
plat_can_chown(void)
{
	return geteuid() == 0;
}

const char *
plat_name(void)
{
	return "portable";
}
#else
typedef int plat_posix_not_this_build;
#endif
