/*
 * ipc_sys.h on Linux: accept4 and SOCK_* flags, SO_PEERCRED and
 * SO_PEERGROUPS.
 */
#ifdef __linux__
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ipc.h"
#include "ipc_sys.h"

int
ipc_sys_socket(int nonblock)
{
	return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
	    (nonblock ? SOCK_NONBLOCK : 0), 0);
}

int
ipc_sys_accept(int lfd)
{
	return accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

/*
 * The peer's supplementary groups (SO_PEERGROUPS): what the kernel holds
 * for the connecting process, not what /etc/group says of its uid.
 */
static void
peer_groups(int fd, struct ipc_cred *cred)
{
	socklen_t len = 64 * sizeof(gid_t);
	gid_t *g = NULL;
	int tries;

	for (tries = 0; tries < 3; tries++) {
		gid_t *ng = realloc(g, len ? len : sizeof(gid_t));

		if (ng == NULL)
			break;
		g = ng;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == 0) {
			cred->groups = g;
			cred->ngroups = (int)(len / sizeof(gid_t));
			return;
		}
		if (errno != ERANGE)
			break;
		/* len now says how much the list needs. */
	}
	free(g);
}

int
ipc_sys_peer_cred(int fd, struct ipc_cred *cred)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == -1)
		return -1;
	cred->pid = uc.pid;
	cred->uid = uc.uid;
	cred->gid = uc.gid;
	peer_groups(fd, cred);
	return 0;
}

void
ipc_sys_received_fd(int fd)
{
	(void)fd;	/* MSG_CMSG_CLOEXEC did it */
}
#else
typedef int ipc_linux_not_this_platform;
#endif
