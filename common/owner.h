/*
 * A flow's owner and its endpoints: one shape from the capture side to the
 * store, with their protobuf forms (lc.Owner, lc.Endpoint) encoded
 * and decoded side by side here.
 *
 *	eBPF event (ebpf/capture.h struct lc_owner: tgid, uid, gid, cgroup_id,
 *	comm — the kernel's names) -> redirectord (struct owner, cgroup path
 *	added) -> OwnerReply.owner (lc.Owner) -> netstackd (struct owner per
 *	flow) -> NewFlow.owner -> proxyd (flow_meta.owner, struct owner) -> the
 *	store's flows row (pid, process, uid, gid, cgroup, cgroup_id).
 *
 * Past the kernel boundary the process name is `process` everywhere: the
 * struct's field, the protobuf field, the store's column, the JSON key and
 * localcapctl's --process filter that people already use.
 */
#ifndef LOCALCAP_OWNER_H
#define LOCALCAP_OWNER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common.pb-c.h"

#define OWNER_NAME_MAX		64	/* a comm is 16 with its NUL; macOS names more */
#define OWNER_CGROUP_MAX	256	/* relative cgroup v2 path, with its NUL */
#define OWNER_EXE_MAX		1024	/* Owner.exe, with its NUL (macOS's PATH_MAX) */

struct owner {
	uint32_t	pid;		/* thread-group id; 0: not known */
	uint32_t	uid;
	uint32_t	gid;
	uint64_t	cgroup_id;
	char		process[OWNER_NAME_MAX];	/* the thread-group leader's name */
	char		cgroup[OWNER_CGROUP_MAX];	/* "" if not known */
};

/* An address and port as a flow source reports it. */
struct endpoint {
	sa_family_t	family;		/* AF_INET or AF_INET6 */
	uint8_t		addr[16];	/* network order; 4 used for AF_INET */
	uint16_t	port;
};

/*
 * Encode: pb points into o (no allocation): valid while o is.
 */
void	owner_to_pb(const struct owner *o, Lc__Owner *pb);
/*
 * Decode a peer's Owner (NULL: nothing known).  Strings longer than
 * the struct holds are cut at a byte boundary and the cut counted in the
 * return value: 0 whole, 1 if something was cut.
 */
int	owner_from_pb(struct owner *o, const Lc__Owner *pb);

/* Encode: pb->addr points into e. */
void	endpoint_to_pb(const struct endpoint *e, Lc__Endpoint *pb);
/*
 * Decode and validate: an address of 4 or 16 bytes, a port that fits 16
 * bits (and is not 0 unless port_zero_ok).  0, or ENDPOINT_BAD_ADDR /
 * ENDPOINT_BAD_PORT with a phrase in why.
 */
#define ENDPOINT_BAD_ADDR	(-1)
#define ENDPOINT_BAD_PORT	(-2)
int	endpoint_from_pb(struct endpoint *e, const Lc__Endpoint *pb,
	    int port_zero_ok, const char **why);

#endif
