/*
 * The platform seam for the daemons (proxyd first): the few system calls
 * Linux has and macOS lacks, each behind one function.  Two
 * implementations: plat_linux.c (accept4, SOCK_CLOEXEC, getrandom, prctl,
 * close_range, capabilities) and plat_posix.c (fcntl, arc4random_buf,
 * setrlimit, /dev/fd), which is what macOS builds.
 *
 * LC_PORTABLE (make portable-run, test/integration/macos_proxyd.sh) selects
 * the POSIX side on Linux too, so that the paths macOS takes run in `make
 * check` against the real tests, not only compile.  LC_PORTABLE_CHECK (make
 * PORTABLE=1) does the same without _GNU_SOURCE and with Linux-only names
 * poisoned (portable_check.h).
 */
#ifndef LOCALCAP_PLAT_H
#define LOCALCAP_PLAT_H

#include <stddef.h>
#include <sys/socket.h>

#if defined(__linux__) && !defined(LC_PORTABLE) && !defined(LC_PORTABLE_CHECK)
#define LC_PLAT_LINUX	1
#else
#define LC_PLAT_LINUX	0
#endif

/*
 * macOS may lack MSG_NOSIGNAL; every daemon ignores SIGPIPE process-wide
 * (daemon.c, the signer) and sockets made here get SO_NOSIGPIPE where it
 * exists, so 0 loses nothing.  The portable builds use 0 on Linux as well:
 * what they run is what macOS relies on.
 */
#if !LC_PLAT_LINUX
#undef MSG_NOSIGNAL
#define MSG_NOSIGNAL	0
#endif

/* socket(2), close-on-exec, non-blocking if asked, no SIGPIPE where the
 * system has SO_NOSIGPIPE.  -1 and errno. */
int	plat_socket(int domain, int type, int nonblock);
/* socketpair(2) the same way (blocking).  -1 and errno. */
int	plat_socketpair(int domain, int type, int sv[2]);
/* accept(2): the new socket non-blocking and close-on-exec.  -1 and errno. */
int	plat_accept(int lfd, struct sockaddr *, socklen_t *);
/* len random bytes from the kernel's generator.  0, or -1 and errno. */
int	plat_random(void *buf, size_t len);
/* Close every descriptor >= lowfd.  0, or -1 and errno. */
int	plat_close_from(int lowfd);
/*
 * This process may not be traced or dumped by its own user (Linux:
 * PR_SET_DUMPABLE 0; macOS: PT_DENY_ATTACH; both: no core file).
 * 0, or -1 and errno.
 */
int	plat_no_dump(void);
/*
 * Killed when the parent dies (Linux: PR_SET_PDEATHSIG).  Elsewhere there
 * is no such call and this does nothing: callers must also end on EOF of
 * their channel to the parent, which the parent's death closes.
 * 0, or -1 and errno.
 */
int	plat_die_with_parent(void);
/* 1 if the process holds any privilege to drop (Linux: a capability in any
 * set; elsewhere: euid 0), else 0. */
int	plat_privileged(void);
/* 1 if the process may give files away (Linux: CAP_CHOWN effective;
 * elsewhere: euid 0), else 0. */
int	plat_can_chown(void);
/* Set FD_CLOEXEC.  0, or -1 and errno. */
int	plat_cloexec(int fd);
/* "linux" or "portable": which of the two this binary was built with. */
const char *plat_name(void);

#endif
