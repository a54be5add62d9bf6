/*
 * `make PORTABLE=1` only (force-included): the system headers first, then
 * the Linux-only names made unusable, so that what macOS builds (common/'s
 * portable files, the generated protobuf code, macos-extension/core/)
 * cannot grow a Linux-only call unnoticed.  Linux-only code belongs in a
 * *_linux.c file (common/ipc_linux.c), which this build leaves out.
 */
#ifndef LOCALCAP_PORTABLE_CHECK_H
#define LOCALCAP_PORTABLE_CHECK_H

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Flags macOS does not have: set with fcntl/setsockopt instead. */
#undef SOCK_NONBLOCK
#undef SOCK_CLOEXEC
#undef MSG_CMSG_CLOEXEC
#undef SO_PEERCRED
#undef SO_PEERGROUPS
#pragma GCC poison SOCK_NONBLOCK SOCK_CLOEXEC MSG_CMSG_CLOEXEC
#pragma GCC poison SO_PEERCRED SO_PEERGROUPS
/*
 * MSG_NOSIGNAL may be missing on macOS: 0 there (common/plat.h; SIGPIPE is
 * ignored process-wide).  Defined here because glibc also has it as an
 * enum constant that an #undef would leave visible.
 */
#undef MSG_NOSIGNAL
#define MSG_NOSIGNAL	0
/* Calls macOS does not have.  (splice and tee are not poisoned: glibc
 * declares them only with _GNU_SOURCE, which this build lacks, and the
 * name splice is also a field of proxyd's relay config.) */
#pragma GCC poison accept4 pipe2 dup3 epoll_create epoll_create1 epoll_ctl
#pragma GCC poison epoll_wait signalfd eventfd timerfd_create close_range
#pragma GCC poison prctl memfd_create getrandom sendmmsg recvmmsg
#pragma GCC poison program_invocation_short_name setresuid setresgid
/* libcap (<sys/capability.h>): capabilities are Linux's. */
#pragma GCC poison cap_get_proc cap_set_proc cap_get_flag cap_init

/* What macOS's headers declare by default and glibc only with
 * _GNU_SOURCE (both systems have these). */
void	*memmem(const void *, size_t, const void *, size_t);
char	*strptime(const char *, const char *, struct tm *);

#endif
