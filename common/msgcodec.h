/*
 * Every message's wire code, encode next to decode: for each lc.MsgType a
 * C form (struct msg_*), msg_*_to_pb (the C form into its protobuf, ready
 * for ipc_send) and msg_*_from_pb (a decoded protobuf back into the C form,
 * checked field by field).  A newcomer looking for how NewFlow travels
 * finds both halves here, once, and the daemons only ever see the C form.
 *
 *	message		sender -> receiver		C form
 *	CtlRequest	localcapctl, webd -> redirectord	struct msg_ctl_request
 *	CtlReply	redirectord -> localcapctl, webd	struct msg_ctl_reply
 *	TunHandover	redirectord -> netstackd	struct msg_tun_handover
 *	NetstackStatus	netstackd -> redirectord	struct msg_netstack_status
 *	OwnerQuery	netstackd -> redirectord	struct msg_owner_query
 *	OwnerReply	redirectord -> netstackd	struct msg_owner_reply
 *	NewFlow		flow source -> proxyd		struct msg_new_flow
 *	FlowClosed	flow source -> proxyd		struct msg_flow_closed
 *	ProxyStatus	proxyd -> flow source		struct msg_proxy_status
 *
 * Hello, HelloReply and Error belong to the handshake and are encoded and
 * decoded by common/ipc.c alone, side by side there.  StatusReply (inside
 * CtlReply) stays in its protobuf form for its readers (localcapctl status
 * and ps, webd): msg_ctl_reply_from_pb checks its shape once so they need
 * not.  The owner and endpoint value types are common/owner.h's.
 *
 * The layers: ipc.c frames and unframes, msg.c (the permit table) decides
 * who may send what and how large, and this file turns fields into C and
 * back.  *_to_pb never allocates: the protobuf points into the C form and
 * into a caller's struct msg_*_pb, valid while both are.  *_from_pb copies
 * what it keeps (strings into bounded arrays, refused when too long, never
 * cut silently) unless the field is marked "borrowed": then it points into
 * the decoded protobuf and lives as long as that message.  Every *_from_pb
 * returns 0, or -1 with one phrase in *why (a static string, or err).
 */
#ifndef LOCALCAP_MSGCODEC_H
#define LOCALCAP_MSGCODEC_H

#include <stddef.h>
#include <stdint.h>

#include "common.pb-c.h"
#include "control.pb-c.h"
#include "data.pb-c.h"
#include "flow.pb-c.h"
#include "msg.h"
#include "owner.h"

/* --- counters (NetstackStatus, ProxyStatus) ----------------------------------- */

struct msg_counters {
	size_t		n;
	char		name[LC_STATUS_COUNTERS_MAX][LC_COUNTER_NAME_MAX];
	uint64_t	value[LC_STATUS_COUNTERS_MAX];
};

struct msg_counters_pb {
	Lc__Counter	 c[LC_STATUS_COUNTERS_MAX];
	Lc__Counter	*p[LC_STATUS_COUNTERS_MAX];
};

/*
 * Append one; -1 (nothing added) if the set is full or the name is empty or
 * too long: a status never carries a cut name.
 */
int	msg_counters_add(struct msg_counters *, const char *name, uint64_t value);
/* Point pb->c/p at cs; returns the pointer array for the repeated field. */
Lc__Counter **msg_counters_to_pb(const struct msg_counters *cs,
	    struct msg_counters_pb *pb);
int	msg_counters_from_pb(struct msg_counters *, Lc__Counter *const *c,
	    size_t n, const char **why);

/* --- control plane -------------------------------------------------------------- */

enum msg_ctl_op {
	MSG_CTL_STATUS = 1,
	MSG_CTL_ATTACH,
	MSG_CTL_DETACH,
	MSG_CTL_RUN,
};

struct msg_ctl_request {
	uint64_t	 id;
	enum msg_ctl_op	 op;
	const char	*spec;	/* ATTACH, DETACH; borrowed; never NULL decoded */
	int		 all;	/* DETACH: every item */
	uint32_t	 pid;	/* RUN: 0 = the caller */
};

struct msg_ctl_request_pb {
	Lc__CtlRequest		m;
	Lc__StatusRequest	status;
	Lc__AttachRequest	attach;
	Lc__DetachRequest	detach;
	Lc__RunRequest		run;
};

void	msg_ctl_request_to_pb(const struct msg_ctl_request *,
	    struct msg_ctl_request_pb *);
int	msg_ctl_request_from_pb(struct msg_ctl_request *, const Lc__CtlRequest *,
	    const char **why);

enum msg_ctl_answer {
	MSG_CTL_ERROR = 1,
	MSG_CTL_STATUS_REPLY,
	MSG_CTL_SPEC,
	MSG_CTL_RUN_REPLY,
};

struct msg_ctl_reply {
	uint64_t		 id;
	enum msg_ctl_answer	 answer;
	/* ERROR */
	Lc__ErrorCode		 code;
	const char		*message;	/* borrowed; never NULL decoded */
	uint32_t		 offset;	/* ERR_BAD_SPEC: where in the spec */
	/* STATUS_REPLY: borrowed, shape checked (msg_status_reply_check) */
	const Lc__StatusReply	*status;
	/* SPEC */
	const char		*spec;		/* borrowed; never NULL decoded */
	uint32_t		 runs;
	/* RUN_REPLY */
	const char		*cgroup;	/* borrowed; never NULL decoded */
};

struct msg_ctl_reply_pb {
	Lc__CtlReply		m;
	Lc__Error		error;
	Lc__SpecReply		spec;
	Lc__RunReply		run;
};

/* status: the caller's StatusReply, built where the figures are. */
void	msg_ctl_reply_to_pb(const struct msg_ctl_reply *, struct msg_ctl_reply_pb *);
int	msg_ctl_reply_from_pb(struct msg_ctl_reply *, const Lc__CtlReply *,
	    const char **why);

/* --- data plane ------------------------------------------------------------------- */

#define MSG_IFNAME_MAX		16	/* IFNAMSIZ, with the NUL */
#define MSG_TUN_MTU_MIN		1280	/* IPv6's minimum */
#define MSG_TUN_MTU_MAX		65535

struct msg_tun_handover {	/* with the TUN fd */
	char		ifname[MSG_IFNAME_MAX];
	uint32_t	ifindex;
	uint32_t	mtu;
};

void	msg_tun_handover_to_pb(const struct msg_tun_handover *, Lc__TunHandover *);
int	msg_tun_handover_from_pb(struct msg_tun_handover *,
	    const Lc__TunHandover *, const char **why);

struct msg_netstack_status {
	int			proxyd_connected;
	uint32_t		proxyd_pid;
	char			proxyd_version[LC_SOFTWARE_VERSION_MAX];
	uint64_t		proxyd_flows_active;
	struct msg_counters	counters;
	struct msg_counters	proxyd_counters;	/* its last ProxyStatus */
};

struct msg_netstack_status_pb {
	Lc__NetstackStatus	m;
	struct msg_counters_pb	counters, proxyd_counters;
};

void	msg_netstack_status_to_pb(const struct msg_netstack_status *,
	    struct msg_netstack_status_pb *);
int	msg_netstack_status_from_pb(struct msg_netstack_status *,
	    const Lc__NetstackStatus *, const char **why);

struct msg_owner_query {
	uint64_t	id;
	uint8_t		ipproto;	/* IPPROTO_TCP or IPPROTO_UDP */
	struct endpoint	src;		/* the application */
	struct endpoint	dst;		/* where it meant to go */
};

struct msg_owner_query_pb {
	Lc__OwnerQuery	m;
	Lc__Endpoint	src, dst;
};

void	msg_owner_query_to_pb(const struct msg_owner_query *,
	    struct msg_owner_query_pb *);
/* Both endpoints of one family; port 0 allowed (a UDP source may bind none). */
int	msg_owner_query_from_pb(struct msg_owner_query *, const Lc__OwnerQuery *,
	    const char **why);

struct msg_owner_reply {
	uint64_t	id;
	int		found;
	struct owner	owner;		/* all zero unless found */
};

struct msg_owner_reply_pb {
	Lc__OwnerReply	m;
	Lc__Owner	owner;
};

void	msg_owner_reply_to_pb(const struct msg_owner_reply *,
	    struct msg_owner_reply_pb *);
/* An owner's name or cgroup too long for struct owner is refused. */
int	msg_owner_reply_from_pb(struct msg_owner_reply *, const Lc__OwnerReply *,
	    const char **why);

/* --- flow plane ------------------------------------------------------------------- */

struct msg_new_flow {	/* with the flow's socket */
	uint64_t	flow_id;	/* unique per source connection */
	uint8_t		ipproto;	/* IPPROTO_TCP or IPPROTO_UDP */
	struct endpoint	src;		/* the application */
	struct endpoint	dst;		/* where it meant to go */
	struct owner	owner;		/* zeros: not known */
	uint64_t	start_us;	/* CLOCK_REALTIME */
	/* owner.exe: the executable's path; "" not known (or too long).
	 * Not in struct owner, which netstackd keeps per flow. */
	char		exe[OWNER_EXE_MAX];
};

struct msg_new_flow_pb {
	Lc__NewFlow	m;
	Lc__Endpoint	src, dst;
	Lc__Owner	owner;
};

void	msg_new_flow_to_pb(const struct msg_new_flow *, struct msg_new_flow_pb *);
/*
 * The fields come from an application's packets, so a refusal here refuses
 * that one flow, not the source: -1 with one line naming the field in err
 * (*why points at it).  A destination needs a port and a specified address;
 * an owner's strings longer than struct owner holds are cut (the flow is
 * still recorded; the return is 0).
 */
int	msg_new_flow_from_pb(struct msg_new_flow *, const Lc__NewFlow *,
	    char *err, size_t errlen);

#define MSG_REASON_MAX		64	/* FlowClosed.reason, with the NUL */

struct msg_flow_closed {
	uint64_t	flow_id;
	uint64_t	bytes_from_app;
	uint64_t	bytes_to_app;
	uint64_t	packets_from_app;	/* 0 and 0: the source does not count */
	uint64_t	packets_to_app;
	uint64_t	retransmits;
	uint32_t	rtt_us;
	char		reason[MSG_REASON_MAX];	/* "" if none given */
};

void	msg_flow_closed_to_pb(const struct msg_flow_closed *, Lc__FlowClosed *);
int	msg_flow_closed_from_pb(struct msg_flow_closed *, const Lc__FlowClosed *,
	    const char **why);

struct msg_proxy_status {
	uint64_t		flows_active;
	struct msg_counters	counters;
};

struct msg_proxy_status_pb {
	Lc__ProxyStatus		m;
	struct msg_counters_pb	counters;
};

void	msg_proxy_status_to_pb(const struct msg_proxy_status *,
	    struct msg_proxy_status_pb *);
int	msg_proxy_status_from_pb(struct msg_proxy_status *,
	    const Lc__ProxyStatus *, const char **why);

#endif
