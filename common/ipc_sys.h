/*
 * What common/ipc.c needs from the system that Linux and macOS spell
 * differently: the rest of ipc.c is POSIX.  One implementation per
 * platform, in a file named after it (ipc_linux.c, ipc_darwin.c); `make
 * PORTABLE=1` compiles ipc.c without _GNU_SOURCE and with the Linux-only
 * names poisoned (common/portable_check.h), taking the branch below that
 * macOS takes, to keep it that way.
 */
#ifndef LOCALCAP_IPC_SYS_H
#define LOCALCAP_IPC_SYS_H

#include <sys/socket.h>

struct ipc_cred;

/* flags for the framing layer's sendmsg/recvmsg */
#if defined(__linux__) && !defined(LC_PORTABLE_CHECK)
#define IPC_SEND_FLAGS	(MSG_NOSIGNAL | MSG_DONTWAIT)
#define IPC_RECV_FLAGS	(MSG_CMSG_CLOEXEC | MSG_DONTWAIT)
#else
/* SIGPIPE is off per socket (SO_NOSIGPIPE), received fds are made
 * close-on-exec one by one (ipc_sys_received_fd). */
#define IPC_SEND_FLAGS	MSG_DONTWAIT
#define IPC_RECV_FLAGS	MSG_DONTWAIT
#endif

/* An AF_UNIX stream socket: close-on-exec, no SIGPIPE, non-blocking if
 * asked.  -1 and errno. */
int	ipc_sys_socket(int nonblock);
/* accept(2): the new socket non-blocking and close-on-exec.  -1 and errno. */
int	ipc_sys_accept(int lfd);
/* The peer's pid, uid, gid and groups (SO_PEERCRED + SO_PEERGROUPS;
 * LOCAL_PEERCRED + LOCAL_PEERPID); groups are malloc'ed, the peer frees
 * them.  Fields it cannot learn stay as they were.  0 or -1. */
int	ipc_sys_peer_cred(int fd, struct ipc_cred *);
/* An fd that arrived with SCM_RIGHTS (close-on-exec where recvmsg could
 * not do it). */
void	ipc_sys_received_fd(int fd);

#endif
