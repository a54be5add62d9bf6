/*
 * Confining a daemon once it holds what it needs (design: "privilege is
 * dropped in this order and any failure is fatal"):
 *
 *   open what is needed (done by the caller: TUN, BPF, sockets, state dir)
 *   -> setgroups/setresgid/setresuid to an unprivileged user (optional)
 *   -> capabilities: keep exactly the listed ones, empty the bounding set
 *   -> PR_SET_NO_NEW_PRIVS
 *   -> Landlock: no filesystem access beyond the listed paths
 *   -> seccomp: an allow-list of system calls; anything else kills the
 *      process with one line on stderr naming the call
 *
 * Landlock is skipped with a warning on kernels without it.  In a
 * sanitizer build (make SANITIZE=1) the seccomp filter is not installed —
 * ASan/LSan need system calls no daemon should — and the log says so.
 */
#ifndef LOCALCAP_SANDBOX_H
#define LOCALCAP_SANDBOX_H

#include <stddef.h>

#include "errmsg.h"

enum sandbox_profile {
	SANDBOX_REDIRECTORD,	/* 3 caps kept; no Landlock or seccomp (yet) */
	SANDBOX_NETSTACKD,	/* packets, Unix sockets, nothing else */
	SANDBOX_PROXYD,		/* plus outbound IP sockets and its state dir */
	SANDBOX_SIGNER,		/* proxyd's CA signer: its socket, malloc, time,
				   randomness; no filesystem at all */
	SANDBOX_WEBD,		/* the viewer: accepts on its listeners, Unix
				   sockets out (ctl.sock), reads its ro_paths */
};

struct sandbox {
	enum sandbox_profile profile;
	const char	*user;		/* NULL: keep the current uid/gid */
	const int	*keep_caps;	/* CAP_* values kept; NULL/0: none */
	size_t		 nkeep_caps;
	const char	*rw_dir;	/* Landlock: the one writable tree, or NULL */
	const char	*remove_dir;	/* Landlock: may unlink files here, or NULL */
	const char	*ro_file;	/* Landlock: may read this file (config), or NULL */
	const char *const *ro_paths;	/* Landlock: trees and files it may
					   read (NULL-terminated), or NULL;
					   a missing one is skipped */
	const char	*exec_file;	/* Seatbelt: the one program it may
					   start, unconfined (redirectord's
					   localcap-host), or NULL; Linux's
					   profiles say this themselves */
};

/* Resolve a user name to uid/gid before anything is dropped; -1 if unknown. */
LC_MUST_CHECK
int	sandbox_lookup_user(const char *name, unsigned *uid, unsigned *gid);

/* Apply everything in order; fatal on any failure. */
void	sandbox_enter(const struct sandbox *);

/*
 * sandbox_enter in two halves, for a process that must do something as the
 * unprivileged user before it confines itself (proxyd loads its CA as the
 * state dir's owner and forks its signer in between):
 *   sandbox_drop:    bounding set, user, capabilities
 *   sandbox_confine: no_new_privs, Landlock, seccomp
 */
void	sandbox_drop(const struct sandbox *);
void	sandbox_confine(const struct sandbox *);

#endif
