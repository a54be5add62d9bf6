/*
 * Shared between the kernel side (ebpf/capture.bpf.c) and the user side
 * (redirectord/bpf.c, redirectord/spec.c): the layout of every BPF map value
 * that both sides touch.  Plain C with fixed-width types only, so that the
 * BPF target and the host compiler agree on sizes and padding (every struct
 * is padded explicitly to a multiple of 8 bytes; no implicit holes).
 *
 * The kernel side includes vmlinux.h before this file; the user side
 * includes <linux/types.h>.
 */
#ifndef LOCALCAP_EBPF_CAPTURE_H
#define LOCALCAP_EBPF_CAPTURE_H

/* The spec is evaluated in order by the BPF program; this bounds its loop. */
#define LC_MAX_RULES		64
/* TASK_COMM_LEN: 15 visible bytes + NUL. */
#define LC_COMM_LEN		16
/* Ancestor cgroup levels looked at for cgroup rules and daemon exclusion. */
#define LC_MAX_CGROUP_DEPTH	16
#define LC_MAX_EXCLUDED		64
#define LC_MAX_LOCAL_ADDRS	256
#define LC_MAX_OWNERS		65536

enum lc_rule_kind {
	LC_RULE_NONE = 0,
	LC_RULE_PID = 1,	/* id = tgid (initial pid namespace) */
	LC_RULE_COMM = 2,	/* comm = thread-group leader's comm */
	LC_RULE_UID = 3,	/* id = real uid of the creating task */
	LC_RULE_CGROUP = 4,	/* cgroup_id = the cgroup or any ancestor */
};

/* One ordered spec action; 32 bytes. */
struct lc_rule {
	__u8	kind;		/* enum lc_rule_kind */
	__u8	exclude;	/* 1: "!X" */
	__u8	pad[2];
	__u32	id;		/* pid or uid */
	__u64	cgroup_id;
	char	comm[LC_COMM_LEN];	/* NUL-padded */
};

/*
 * The whole decision state, stored as the single value of a
 * BPF_F_NO_PREALLOC hash map: an update replaces the element under RCU, so
 * a program sees either the old or the new value, never a mix.  Rules live
 * in two halves of an array map; the loader fills the inactive half and then
 * publishes a config naming it (see redirectord/bpf.c).
 */
struct lc_config {
	__u32	tun_ifindex;	/* 0: capture nothing */
	__u32	enabled;	/* 0: paused (fail-open while a peer is down) */
	__u64	tun_netns_cookie;
	__u32	rules_half;	/* 0 or 1: which half of the rules map is live */
	__u32	nrules;
	__u32	default_capture;	/* mitmproxy: first action is an exclusion */
	__u32	flags;		/* LC_CFG_* */
	__u64	generation;	/* bumped on every publish, for status */
};

/* Which facts the decision needs, so that sock_create reads no more. */
#define LC_CFG_NEED_COMM	0x1	/* some rule matches on comm */
#define LC_CFG_NEED_CGROUP	0x2	/* some rule matches on cgroup */
#define LC_CFG_EXCL_CGROUP	0x4	/* some daemon cgroup is excluded */

/* Who created a captured socket; 48 bytes. */
struct lc_owner {
	__u32	tgid;
	__u32	uid;
	__u32	gid;
	__u32	pad;
	__u64	cgroup_id;
	__u64	cookie;		/* socket cookie: tells a reused flow key apart */
	char	comm[LC_COMM_LEN];	/* thread-group leader's comm */
};

/*
 * A flow as netstackd sees it on the TUN: the packet's source and
 * destination (the captured socket's local and remote end).  IPv4 addresses
 * occupy the first 4 bytes of the 16; the rest is zero.  Ports in network
 * byte order, as they are on the wire.
 */
struct lc_flow_key {
	__u8	family;		/* 4 or 6 (not AF_*: stable across headers) */
	__u8	proto;		/* IPPROTO_TCP / IPPROTO_UDP */
	__u16	sport;
	__u16	dport;
	__u16	pad;
	__u8	saddr[16];
	__u8	daddr[16];
};

/* Key of the host-address map consulted by the connect hooks. */
struct lc_addr_key {
	__u32	family;		/* 4 or 6 */
	__u8	addr[16];
};

enum lc_counter {
	LC_CNT_SOCK_SEEN = 0,		/* sock_create calls */
	LC_CNT_SOCK_CAPTURED,		/* bound to the TUN */
	LC_CNT_SOCK_DAEMON,		/* skipped: daemon uid/cgroup */
	LC_CNT_SOCK_OTHER_NETNS,	/* skipped: not the TUN's netns */
	LC_CNT_SOCK_PAUSED,		/* skipped: capture paused */
	LC_CNT_CONNECT_LOCAL,		/* connect to a host address: unbound */
	LC_CNT_SERVER_UNBOUND,		/* TCP listen / UDP bind to a port */
	LC_CNT_OWNER_RECORDED,		/* socket cookie -> owner stored */
	LC_CNT_FLOW_RECORDED,		/* flow key -> owner stored */
	LC_CNT_COMM_READ_FAILED,	/* leader comm unreadable: name rules miss */
	LC_CNT_REBOUND,			/* unbound for a local peer, then a remote one: TUN again */
	LC_CNT_MAX
};

#endif
