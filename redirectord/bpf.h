/*
 * User side of the capture programs (ebpf/capture.bpf.c): load them,
 * attach them to a cgroup as process-owned bpf_links (a SIGKILLed
 * redirectord leaves nothing attached), and drive their maps — TUN
 * identity, the compiled intercept spec, daemon exclusions, host addresses,
 * owner lookups and counters.
 *
 * Lifecycle, with one cleanup path (rd_bpf_destroy, safe at any stage):
 *   rd_bpf_open -> rd_bpf_set_tun / rd_bpf_exclude_* / rd_bpf_set_spec
 *   -> rd_bpf_attach_cgroup[_fd] -> ... -> rd_bpf_destroy
 * Map updates work before and after attaching; nothing is captured until
 * rd_bpf_set_tun names a TUN and capture is enabled.
 *
 * Functions returning int return 0 on success and -1 with errno set and a
 * log line on failure.
 */
#ifndef LOCALCAP_REDIRECTORD_BPF_H
#define LOCALCAP_REDIRECTORD_BPF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>

#include "ebpf/capture.h"
#include "errmsg.h"

struct rd_spec;
struct rd_bpf;

/*
 * What the kernel must offer before anything is loaded: BTF (CO-RE), a
 * cgroup v2 hierarchy, /dev/net/tun.  0, or -1 with a sentence for the
 * user in why (so redirectord can refuse to start saying what is missing).
 */
int	rd_bpf_preflight(char *why, size_t len);

/*
 * Open and load (verify) the programs; nothing is attached yet.  If the
 * kernel rejects an optional group (RD_BPF_OPT_*: they need bpf_setsockopt
 * in more hooks than the core does), load without it and say so in a
 * warning: capture works, with the gap docs/capture.md describes.  The load
 * itself runs in a short-lived child (README.md, "Loading the programs in a
 * child"), reaped before this returns; call it before any seccomp profile
 * that forbids fork.
 */
LC_MUST_CHECK
int	rd_bpf_open(struct rd_bpf **out);

/* Optional program groups. */
#define RD_BPF_OPT_SENDMSG	0x1	/* unconnected UDP to loopback */
#define RD_BPF_OPT_SERVERS	0x2	/* servers in captured processes */
/* rd_bpf_open without the groups in `skip` (tests, and its own fallback). */
LC_MUST_CHECK
int	rd_bpf_open_skipping(struct rd_bpf **out, unsigned skip);
/* The optional groups not loaded. */
unsigned rd_bpf_skipped(const struct rd_bpf *b);
/* Detach, unload, free.  NULL is fine. */
void	rd_bpf_destroy(struct rd_bpf *b);

/*
 * Attach all programs to a cgroup v2 directory.  The _fd form exists
 * because `ip netns exec` remounts /sys: open the directory before
 * entering a namespace.  Attaching twice is an error (EALREADY).
 */
LC_MUST_CHECK
int	rd_bpf_attach_cgroup(struct rd_bpf *b, const char *path);
LC_MUST_CHECK
int	rd_bpf_attach_cgroup_fd(struct rd_bpf *b, int cgroup_fd);
/* Drop the links (capture stops for new sockets); maps stay. */
void	rd_bpf_detach(struct rd_bpf *b);
bool	rd_bpf_attached(const struct rd_bpf *b);
/* Kernel ids of the attached links, for status and tests; returns count. */
size_t	rd_bpf_link_ids(const struct rd_bpf *b, uint32_t *ids, size_t max);

/* The TUN sockets are bound to, and the netns it lives in. */
LC_MUST_CHECK
int	rd_bpf_set_tun(struct rd_bpf *b, uint32_t ifindex, uint64_t netns_cookie);
/* false: capture nothing new (fail-open while a peer is down). */
LC_MUST_CHECK
int	rd_bpf_set_enabled(struct rd_bpf *b, bool enabled);
/* Replace the spec; takes effect for the next socket() at once. */
LC_MUST_CHECK
int	rd_bpf_set_spec(struct rd_bpf *b, const struct rd_spec *spec);
/* Generation of the published config (bumped by every change). */
uint64_t rd_bpf_generation(const struct rd_bpf *b);
/* What the programs see now, read back from the maps: the config and the
 * live half's rules (up to max; *nrules is the live count). */
int	rd_bpf_live(struct rd_bpf *b, struct lc_config *cfg,
	    struct lc_rule *rules, size_t max, size_t *nrules);

/* The daemons: never captured.  Up to LC_MAX_EXCLUDED of each. */
LC_MUST_CHECK
int	rd_bpf_exclude_uid(struct rd_bpf *b, uint32_t uid);
LC_MUST_CHECK
int	rd_bpf_exclude_cgroup(struct rd_bpf *b, uint64_t cgroup_id);

/* Replace the host-address set (loopback is always local). */
LC_MUST_CHECK
int	rd_bpf_set_local_addrs(struct rd_bpf *b, const struct lc_addr_key *addrs,
	    size_t n);
/* The same, from getifaddrs() in the calling thread's network namespace. */
int	rd_bpf_load_local_addrs(struct rd_bpf *b);

/* Owner of a flow netstackd saw; -1/ENOENT when unknown. */
int	rd_bpf_owner_by_flow(struct rd_bpf *b, const struct lc_flow_key *key,
	    struct lc_owner *out);
int	rd_bpf_owner_by_cookie(struct rd_bpf *b, uint64_t cookie,
	    struct lc_owner *out);
/* Walk all recorded flows (for status/tests); fn returns non-zero to stop. */
int	rd_bpf_foreach_flow(struct rd_bpf *b,
	    int (*fn)(const struct lc_flow_key *, const struct lc_owner *, void *),
	    void *arg);

/* Counters summed over CPUs, indexed by enum lc_counter. */
int	rd_bpf_counters(struct rd_bpf *b, uint64_t out[LC_CNT_MAX]);
const char *rd_bpf_counter_name(enum lc_counter c);

/* SO_NETNS_COOKIE of the calling thread's network namespace. */
int	rd_netns_cookie(uint64_t *out);

#endif
