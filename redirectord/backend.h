/*
 * redirectord's two halves: the platform-neutral process (redirectord.c:
 * options, ctl.sock for localcapctl, its authorization, the request
 * dispatch and the status frame) and a capture backend behind this table.
 *
 *   backend_linux.c  eBPF cgroup programs, the TUN, policy routes,
 *                    rtnetlink, data.sock for netstackd, capabilities
 *   backend_macos.c  hands the spec to the system extension through the
 *                    host app (localcap-host spec), reports its state
 *
 * redirectord.c picks one at compile time: macOS's on __APPLE__ and in the
 * portable builds (LC_PORTABLE, LC_PORTABLE_CHECK), Linux's otherwise.
 * backend.c holds what both share: the active spec as a list of written
 * items (attach appends, detach removes exactly those items) and a status
 * row.  Backends run on redirectord's one libev loop; none may block it
 * for long (backend_macos.c bounds its helper's run).
 */
#ifndef REDIRECTORD_BACKEND_H
#define REDIRECTORD_BACKEND_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon.h"
#include "ispec.h"
#include "control.pb-c.h"

/* Longest active spec text (it arrives over the control socket). */
#define RD_SPEC_TEXT_MAX	ISPEC_MAX_TEXT
/* Status rows a backend may fill: [0] is redirectord, the rest its own. */
#define RD_STATUS_ROWS		3

struct rd_backend {
	const char	*name;		/* "linux", "macos" */
	const char	*summary;	/* usage's second line */
	const char	*help;		/* its options, DAEMON_COMMON_HELP's form */
	const char	*shortopts;
	const struct option *longopts;	/* ends with a zeroed entry */
	/* 1 if c was its option (handled), 0 if not; exits on a bad value. */
	int	(*option)(int c, const char *arg);
	/* After daemon_start, before ctl.sock: bring capture up, open what
	 * else it serves; fatal on error (redirectord refuses to start). */
	void	(*start)(struct daemon *);
	/* Everything is open: confine the process (may be NULL). */
	void	(*confine)(void);
	/* The daemon is shutting down: close everything it opened. */
	void	(*shutdown)(void);
	/* 1 if uid is a localcap service user (refused on ctl.sock). */
	int	(*service_uid)(uid_t);
	/* The control requests; 0, or -1 with a one-line reason in err. */
	int	(*attach)(const char *spec, char *err, size_t errlen,
		    uint32_t *err_offset);
	int	(*detach)(const char *spec, bool all, char *err, size_t errlen);
	/* The active spec as people wrote it; *runs: run sessions in it. */
	void	(*written_spec)(char *buf, size_t len, uint32_t *runs);
	/* NULL: `run` is not supported by this backend. */
	int	(*run)(pid_t pid, char *cgroup, size_t len, char *err,
		    size_t errlen);
	/* Fill st and rows 1.. (row 0, redirectord's, is filled already:
	 * add counters to it if any); set st->n_daemons. */
	void	(*status)(Lc__StatusReply *st, Lc__DaemonStatus ds[RD_STATUS_ROWS],
		    Lc__DaemonStatus *dsp[RD_STATUS_ROWS]);
};

extern const struct rd_backend rd_backend_linux;
extern const struct rd_backend rd_backend_macos;

/* A process's effective uid now (/proc, or sysctl on macOS): 0 or -1. */
int	rd_effective_uid(pid_t pid, uint32_t *uid);

/* A status row; its uid from rd_effective_uid when running with a pid. */
void	rd_fill_daemon(Lc__DaemonStatus *, const char *name, int running,
	    uint32_t pid, const char *version);

/*
 * The active spec as a list of written items, ", "-free and comma-joined.
 * check parses items alone (errors count in what the caller wrote);
 * publish makes candidate the active spec (user_start: where the caller's
 * items begin in it, for error offsets) and copies it into the list.
 */
struct rd_speclist_ops {
	int	(*check)(void *arg, const char *items, char *err, size_t errlen,
		    uint32_t *err_offset);
	int	(*publish)(void *arg, const char *candidate, size_t user_start,
		    char *err, size_t errlen, uint32_t *err_offset);
};
/* Append spec's items to active (RD_SPEC_TEXT_MAX bytes), all or none. */
int	rd_speclist_attach(const char *active, const char *spec,
	    const struct rd_speclist_ops *, void *arg, char *err, size_t errlen,
	    uint32_t *err_offset);
/* Remove exactly spec's items (each must be there), or all of them. */
int	rd_speclist_detach(const char *active, const char *spec, bool all,
	    const struct rd_speclist_ops *, void *arg, char *err, size_t errlen);
/* list without its first item equal to want, into out; 1 if found. */
int	rd_speclist_remove(const char *list, const char *want, char *out,
	    size_t len);

#endif
