/*
 * The process list of `localcapctl ps` (and, through the same code, the
 * viewer's processes tab): the running processes a person would pick, and
 * for each whether the spec redirectord holds captures it, which item of
 * the spec decided, and how many flows the store has of it.
 *
 * The decision is spec.c's own (rd_spec_parse + rd_spec_decide, linked,
 * not copied): the same facts the BPF program reads — the thread-group
 * leader's name, pid, uid, and the cgroup and its ancestors — taken from
 * /proc (ps_linux.c; on macOS ps refuses: ps_unsupported).  On top: localcap's daemons are never captured, and nothing
 * outside the attach point is.
 */
#ifndef LOCALCAP_CTL_PS_H
#define LOCALCAP_CTL_PS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "control.pb-c.h"
#include "storeread/storeread.h"

/* What redirectord said (its StatusReply), as ps needs it. */
struct ps_capture {
	bool		 known;		/* redirectord answered */
	bool		 capturing;	/* redirecting new sockets now */
	char		*spec;		/* the active spec text ("" none) */
	char		*attach;	/* the attach point, absolute */
	pid_t		 daemons[8];	/* localcap's daemons */
	size_t		 ndaemons;
};

struct ps_proc {
	pid_t		 pid, ppid;
	uint32_t	 uid;
	char		 user[64];
	char		 name[16];	/* the thread-group leader's comm */
	char		*exe;		/* NULL: unreadable (kernel thread…) */
	char		*argv0;		/* the process's own argv[0], only when exe
					   is NULL: its word, not the kernel's */
	char		*cgroup;	/* cgroup v2 path, "/a/b"; NULL unknown */
	char		*unit;		/* systemd unit of that cgroup, or NULL */
	bool		 kernel_thread;
	int64_t		 start_us;	/* CLOCK_REALTIME, to about a second */
	int		 captured;	/* 1, 0; -1 unknown (no redirectord) */
	char		*decided_by;	/* the spec item that decided, or NULL */
	const char	*reason;	/* for a person, constant text */
	int64_t		 flows;		/* in the store; -1: no store */
};

/* NULL where ps_collect works (Linux: ps_linux.c); else why not (macOS). */
extern const char *const ps_unsupported;

/*
 * The processes (kernel threads only if all), captured first, then those
 * with flows, then by pid: 0 with *out (ps_free it), or -1 with err.
 * store may be NULL (flows -1).
 */
int	ps_collect(const struct ps_capture *, struct sr_store *store, bool all,
	    struct ps_proc **out, size_t *n, char *err, size_t errlen);
void	ps_free(struct ps_proc *, size_t n);

/* One process as a JSON object (no newline): `ps --json`'s lines. */
void	ps_json(FILE *, const struct ps_proc *);

/* What ps needs of redirectord's status; ps_capture_free releases it. */
void	ps_capture_from_status(struct ps_capture *, const Lc__StatusReply *);
void	ps_capture_free(struct ps_capture *);

#endif
