/*
 * The capture state redirectord keeps and the control requests act on: the
 * attached BPF programs (bpf.c), the active intercept spec as a list of
 * items (spec.c parses it), the `run` cgroups, and whether capturing is on.
 *
 *   attach SPEC   append SPEC's items to the active spec (order matters:
 *                 mitmproxy semantics), refused whole if the result does
 *                 not parse or fit
 *   detach SPEC   remove exactly those items; detach all clears the spec
 *   run PID       move PID into a fresh cgroup under the attach point and
 *                 capture that cgroup (so PID and everything it starts);
 *                 the cgroup and its spec item go when it empties
 *   chain up/down capture is paused while netstackd or proxyd is down,
 *                 unless fail-closed (then sockets keep going to the TUN)
 */
#ifndef REDIRECTORD_CAPTURE_H
#define REDIRECTORD_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "owner.h"
#include "redirectord/cgcache.h"
#include "redirectord/spec.h"
#include "errmsg.h"

#define CAPTURE_MAX_RUNS	64

struct rd_bpf;
struct tun;

struct capture_run {
	pid_t	 pid;			/* the process moved in */
	char	 path[512];		/* absolute cgroup directory */
	char	 item[528];		/* its spec item: cgroup:/relative */
};

struct capture {
	struct rd_bpf	*bpf;
	char		 root[256];	/* cgroup v2 mount */
	char		 attach[256];	/* absolute attach point */
	char		 spec[RD_SPEC_MAX_TEXT];	/* active items, ", "-joined */
	struct capture_run runs[CAPTURE_MAX_RUNS];
	size_t		 nruns;
	bool		 fail_closed;
	bool		 chain_up;	/* netstackd and proxyd both there */
	bool		 enabled;	/* what the programs were last told */
	/* The rules last published: a restarted unit gets a new cgroup id,
	 * so capture_reap re-resolves the spec and compares. */
	struct rd_spec	*published;
	struct cgcache	*cgroups;	/* flow owners' cgroup id -> path */
};

/*
 * Load the programs, point them at the TUN, exclude redirectord's own
 * cgroup, and attach at attach_path (NULL: the cgroup v2 root).  Returns
 * 0, or -1 with a one-line reason in err.
 */
LC_MUST_CHECK
int	capture_init(struct capture *, const char *attach_path, const struct tun *,
	    bool fail_closed, char *err, size_t errlen);
void	capture_close(struct capture *);

/* 0, or -1 with err (spec errors name the item and offset in SPEC). */
LC_MUST_CHECK
int	capture_attach(struct capture *, const char *spec, char *err, size_t errlen,
	    uint32_t *err_offset);
LC_MUST_CHECK
int	capture_detach(struct capture *, const char *spec, bool all, char *err,
	    size_t errlen);
/*
 * The active spec as people wrote it: c->spec without the cgroup: items
 * capture_run added for run sessions (those are counted in *runs).
 */
void	capture_written_spec(const struct capture *, char *buf, size_t len,
	    uint32_t *runs);
/* Move pid into a new run cgroup; its path (relative) into cgroup. */
LC_MUST_CHECK
int	capture_run(struct capture *, pid_t pid, char *cgroup, size_t len,
	    char *err, size_t errlen);
/*
 * Forget run cgroups that emptied (rmdir them), and follow cgroups that were
 * recreated (a restarted unit: same path, new id); call every second.
 */
void	capture_reap(struct capture *);

/* netstackd and proxyd both connected or not: pause/resume (fail-open). */
void	capture_chain(struct capture *, bool up);
bool	capture_active(const struct capture *);
/* Never capture this process's cgroup (a daemon that connected to us). */
void	capture_exclude_pid(struct capture *, pid_t pid, uid_t uid);

/*
 * The host's addresses changed (netlink said so): reload them, so captured
 * programs keep reaching this host's own addresses directly.
 */
void	capture_addresses_changed(struct capture *);

/* The owner of the flow netstackd saw, or -1. */
int	capture_owner(struct capture *, int ipversion, int proto,
	    const uint8_t *saddr, uint16_t sport, const uint8_t *daddr,
	    uint16_t dport, struct owner *out);

#endif
