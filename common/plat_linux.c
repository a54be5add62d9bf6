/*
 * plat.h on Linux (not in the portable builds, which take plat_posix.c).
 */
#include "plat.h"

#if LC_PLAT_LINUX
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

int
plat_socket(int domain, int type, int nonblock)
{
	return socket(domain, type | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
}

int
plat_socketpair(int domain, int type, int sv[2])
{
	return socketpair(domain, type | SOCK_CLOEXEC, 0, sv);
}

int
plat_accept(int lfd, struct sockaddr *sa, socklen_t *len)
{
	return accept4(lfd, sa, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int
plat_random(void *buf, size_t len)
{
	unsigned char *p = buf;
	ssize_t n;

	while (len > 0) {
		if ((n = getrandom(p, len, 0)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
plat_close_from(int lowfd)
{
	return close_range((unsigned)lowfd, ~0U, 0);
}

int
plat_no_dump(void)
{
	return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int
plat_die_with_parent(void)
{
	return prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
}

int
plat_privileged(void)
{
	cap_t now = cap_get_proc(), none = cap_init();
	int any = now == NULL || none == NULL || cap_compare(now, none) != 0;

	cap_free(now);
	cap_free(none);
	return any;
}

int
plat_can_chown(void)
{
	cap_flag_value_t v = CAP_CLEAR;
	cap_t caps = cap_get_proc();

	if (caps == NULL)
		return 0;
	(void)cap_get_flag(caps, CAP_CHOWN, CAP_EFFECTIVE, &v);
	cap_free(caps);
	return v == CAP_SET;
}

int
plat_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	return fl == -1 ? -1 : fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

const char *
plat_name(void)
{
	return "linux";
}
#else
typedef int plat_linux_not_this_build;
#endif
