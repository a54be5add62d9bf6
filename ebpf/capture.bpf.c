// SPDX-License-Identifier: GPL-2.0-only
/*
 * Kernel side of localcap's capture decision (CO-RE; loaded by
 * redirectord/bpf.c through the generated capture.skel.h).
 *
 *   cgroup/sock_create     decide whether a new TCP/UDP socket is captured
 *                          (daemon exclusion, then the ordered spec); if so
 *                          bind it to the TUN and remember its owner by
 *                          socket cookie.
 *   cgroup/connect4|6      a captured socket connecting to loopback or one of
 *   cgroup/sendmsg4|6      the host's own addresses (or sending an unconnected
 *                          datagram there) is unbound again: replies to such
 *                          packets could never come back through the TUN, so
 *                          the connect would hang.
 *   sockops (listen), cgroup/bind4|6 (UDP port, IPv6 address)
 *                          a captured socket that turns out to be a server
 *                          is unbound: it serves whoever connects to it,
 *                          which a socket bound to the TUN could not.
 *   cgroup_skb/egress      for captured sockets, join the cookie to the flow
 *                          key of the packets netstackd will see on the TUN.
 *
 * Every program returns 1 (allow): a capture decision never makes socket(),
 * connect() or a send fail.  GPL because bpf_probe_read_kernel (the leader's
 * comm) is GPL-only.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "capture.h"

char LICENSE[] SEC("license") = "GPL";

#define SOL_SOCKET_		1
#define SO_BINDTOIFINDEX_	62
#define IPPROTO_TCP_		6
#define IPPROTO_UDP_		17
#define ETH_P_IP_		0x0800
#define ETH_P_IPV6_		0x86DD

/* Single element, key 0; NO_PREALLOC so an update is an RCU swap. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct lc_config);
} lc_config SEC(".maps");

/* Two halves of LC_MAX_RULES; lc_config.rules_half names the live one. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * LC_MAX_RULES);
	__type(key, __u32);
	__type(value, struct lc_rule);
} lc_rules SEC(".maps");

/* The daemons: never captured, whatever the spec. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LC_MAX_EXCLUDED);
	__type(key, __u64);
	__type(value, __u8);
} lc_excl_cgroups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LC_MAX_EXCLUDED);
	__type(key, __u32);
	__type(value, __u8);
} lc_excl_uids SEC(".maps");

/* The host's own addresses in the TUN's namespace (filled by the loader). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LC_MAX_LOCAL_ADDRS);
	__type(key, struct lc_addr_key);
	__type(value, __u8);
} lc_local_addrs SEC(".maps");

/* Captured socket cookie -> owner; outlives the process (short-lived ones). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LC_MAX_OWNERS);
	__type(key, __u64);
	__type(value, struct lc_owner);
} lc_owners SEC(".maps");

/*
 * Captured sockets unbound because they connected to (or sent to) a local
 * address: cookie -> owner, so that the same socket going to a remote
 * address afterwards is bound to the TUN again (a refused loopback connect
 * retried elsewhere, a UDP socket that asked a local resolver first).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LC_MAX_OWNERS);
	__type(key, __u64);
	__type(value, struct lc_owner);
} lc_unbound SEC(".maps");

/* Flow key as seen on the TUN -> owner. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LC_MAX_OWNERS);
	__type(key, struct lc_flow_key);
	__type(value, struct lc_owner);
} lc_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LC_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} lc_counters SEC(".maps");

/* The facts about the creating task that rules are matched against. */
struct proc_facts {
	__u32	tgid;
	__u32	uid;
	__u32	gid;
	__u32	ncgroups;
	__u64	cgroups[LC_MAX_CGROUP_DEPTH];	/* own cgroup and ancestors */
	char	comm[LC_COMM_LEN];
};

static __always_inline void
count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&lc_counters, &idx);

	if (v)
		*v += 1;	/* per-CPU: no atomics needed */
}

/*
 * comm is per thread and a thread may rename itself (prctl PR_SET_NAME):
 * the thread-group leader's name is the program's name.
 */
static __always_inline int
read_leader_comm(char comm[LC_COMM_LEN])
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct task_struct *leader;

	leader = BPF_CORE_READ(task, group_leader);
	if (!leader)
		return -1;
	if (bpf_probe_read_kernel_str(comm, LC_COMM_LEN, &leader->comm) < 0)
		return -1;
	return 0;
}

static __always_inline void
read_comm_or_count(char comm[LC_COMM_LEN])
{
	if (read_leader_comm(comm) < 0) {
		/* Leave comm empty: no name rule matches an empty name. */
		__builtin_memset(comm, 0, LC_COMM_LEN);
		count(LC_CNT_COMM_READ_FAILED);
	}
}

/*
 * Ancestor levels are absolute (0 = the hierarchy's root), so walk up from
 * the root until the id runs out instead of computing a rule's level in
 * user space (which a cgroup namespace would get wrong).
 */
static __always_inline void
read_cgroups(struct proc_facts *p)
{
	__u32 n = 0;
	int level;

	for (level = 0; level < LC_MAX_CGROUP_DEPTH; level++) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(level);

		if (id == 0)
			break;
		p->cgroups[level] = id;
		n++;
	}
	p->ncgroups = n;
	/* Deeper than LC_MAX_CGROUP_DEPTH: the own cgroup is still known. */
	if (n == LC_MAX_CGROUP_DEPTH)
		p->cgroups[LC_MAX_CGROUP_DEPTH - 1] = bpf_get_current_cgroup_id();
}

static __always_inline int
in_cgroup(const struct proc_facts *p, __u64 id)
{
	int i;

	for (i = 0; i < LC_MAX_CGROUP_DEPTH; i++) {
		if ((__u32)i >= p->ncgroups)
			break;
		if (p->cgroups[i] == id)
			return 1;
	}
	return 0;
}

static __always_inline int
is_daemon(const struct proc_facts *p)
{
	int i;

	if (bpf_map_lookup_elem(&lc_excl_uids, &p->uid))
		return 1;
	for (i = 0; i < LC_MAX_CGROUP_DEPTH; i++) {
		if ((__u32)i >= p->ncgroups)
			break;
		if (bpf_map_lookup_elem(&lc_excl_cgroups, &p->cgroups[i]))
			return 1;
	}
	return 0;
}

static __always_inline int
comm_equal(const char *a, const char *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;

	return x[0] == y[0] && x[1] == y[1];
}

static __always_inline int
rule_matches(const struct lc_rule *r, const struct proc_facts *p)
{
	switch (r->kind) {
	case LC_RULE_PID:
		return r->id == p->tgid;
	case LC_RULE_UID:
		return r->id == p->uid;
	case LC_RULE_COMM:
		return comm_equal(r->comm, p->comm);
	case LC_RULE_CGROUP:
		return in_cgroup(p, r->cgroup_id);
	default:
		return 0;
	}
}

/* mitmproxy's ordered semantics: include ORs a match in, exclude ANDs it out. */
static __always_inline int
spec_captures(const struct lc_config *cfg, const struct proc_facts *p)
{
	int capture = cfg->default_capture != 0;
	__u32 base = cfg->rules_half ? LC_MAX_RULES : 0;
	__u32 i;

	for (i = 0; i < LC_MAX_RULES; i++) {
		__u32 key = base + i;
		const struct lc_rule *r;
		int m;

		if (i >= cfg->nrules)
			break;
		r = bpf_map_lookup_elem(&lc_rules, &key);
		if (!r)
			break;
		m = rule_matches(r, p);
		if (r->exclude)
			capture = capture && !m;
		else
			capture = capture || m;
	}
	return capture;
}

SEC("cgroup/sock_create")
int lc_sock_create(struct bpf_sock *sk)
{
	struct proc_facts p = {};
	struct lc_owner owner = {};
	const struct lc_config *cfg;
	__u32 key = 0;
	__u64 v;

	count(LC_CNT_SOCK_SEEN);
	if (sk->protocol != IPPROTO_TCP_ && sk->protocol != IPPROTO_UDP_)
		return 1;
	cfg = bpf_map_lookup_elem(&lc_config, &key);
	if (!cfg || cfg->tun_ifindex == 0)
		return 1;
	/* The ifindex means another device (or none) in another netns. */
	if (bpf_get_netns_cookie(sk) != cfg->tun_netns_cookie) {
		count(LC_CNT_SOCK_OTHER_NETNS);
		return 1;
	}

	v = bpf_get_current_pid_tgid();
	p.tgid = v >> 32;
	v = bpf_get_current_uid_gid();
	p.uid = (__u32)v;
	p.gid = v >> 32;
	if (cfg->flags & (LC_CFG_NEED_CGROUP | LC_CFG_EXCL_CGROUP))
		read_cgroups(&p);
	if (is_daemon(&p)) {
		count(LC_CNT_SOCK_DAEMON);
		return 1;
	}
	if (!cfg->enabled) {
		count(LC_CNT_SOCK_PAUSED);
		return 1;
	}
	/* The comm read is the costly part: before the decision only if a
	 * rule needs it, otherwise only for the owner of a captured socket. */
	if (cfg->flags & LC_CFG_NEED_COMM)
		read_comm_or_count(p.comm);
	if (!spec_captures(cfg, &p))
		return 1;
	if (!(cfg->flags & LC_CFG_NEED_COMM))
		read_comm_or_count(p.comm);

	sk->bound_dev_if = cfg->tun_ifindex;
	count(LC_CNT_SOCK_CAPTURED);

	owner.tgid = p.tgid;
	owner.uid = p.uid;
	owner.gid = p.gid;
	owner.cgroup_id = bpf_get_current_cgroup_id();
	owner.cookie = bpf_get_socket_cookie(sk);
	__builtin_memcpy(owner.comm, p.comm, sizeof(owner.comm));
	if (bpf_map_update_elem(&lc_owners, &owner.cookie, &owner, BPF_ANY) == 0)
		count(LC_CNT_OWNER_RECORDED);
	return 1;
}

static __always_inline int
is_local(__u32 family, const __u8 *addr)
{
	struct lc_addr_key k = {};

	k.family = family;
	if (family == 4)
		__builtin_memcpy(k.addr, addr, 4);
	else
		__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(&lc_local_addrs, &k) != NULL;
}

static __always_inline void
unbind(struct bpf_sock_addr *ctx, __u32 why)
{
	struct lc_owner *owner;
	int zero = 0;
	__u64 cookie;

	bpf_setsockopt(ctx, SOL_SOCKET_, SO_BINDTOIFINDEX_, &zero, sizeof(zero));
	count(why);
	/* Not going to the TUN after all: no owner, no flows to record.  A
	 * client socket's owner is kept aside, for rebind() below. */
	cookie = bpf_get_socket_cookie(ctx);
	if (why == LC_CNT_CONNECT_LOCAL &&
	    (owner = bpf_map_lookup_elem(&lc_owners, &cookie)) != NULL)
		bpf_map_update_elem(&lc_unbound, &cookie, owner, BPF_ANY);
	bpf_map_delete_elem(&lc_owners, &cookie);
}

/*
 * A socket unbound for a local destination now goes to a remote one: bind
 * it to the TUN again, with its owner back, while capture is on.  Costs
 * one hash lookup per connect (and per unconnected sendmsg) of sockets
 * that are not bound to the TUN.  For an unconnected UDP socket the kernel
 * has read the device before this hook runs, so the first datagram to the
 * remote address still goes direct; connect() takes effect at once.
 */
static __always_inline void
rebind(struct bpf_sock_addr *ctx)
{
	const struct lc_config *cfg;
	struct lc_owner *owner;
	__u32 key = 0;
	__u64 cookie;
	int ifindex;

	cookie = bpf_get_socket_cookie(ctx);
	owner = bpf_map_lookup_elem(&lc_unbound, &cookie);
	if (!owner)
		return;
	cfg = bpf_map_lookup_elem(&lc_config, &key);
	if (!cfg || cfg->tun_ifindex == 0 || !cfg->enabled)
		return;
	ifindex = (int)cfg->tun_ifindex;
	if (bpf_setsockopt(ctx, SOL_SOCKET_, SO_BINDTOIFINDEX_, &ifindex,
	    sizeof(ifindex)) != 0)
		return;
	bpf_map_update_elem(&lc_owners, &cookie, owner, BPF_ANY);
	bpf_map_delete_elem(&lc_unbound, &cookie);
	count(LC_CNT_REBOUND);
}

static __always_inline int
sk_bound_to_tun(struct bpf_sock *sk)
{
	const struct lc_config *cfg;
	__u32 key = 0;

	cfg = bpf_map_lookup_elem(&lc_config, &key);
	if (!cfg || cfg->tun_ifindex == 0 || !sk)
		return 0;
	return sk->bound_dev_if == cfg->tun_ifindex;
}

static __always_inline int
bound_to_tun(struct bpf_sock_addr *ctx)
{
	return sk_bound_to_tun(ctx->sk);
}

static __always_inline int
v4_is_local(__u32 ip /* network order */)
{
	__u32 h = bpf_ntohl(ip);

	/* 127/8 and 0.0.0.0 (which Linux connects to loopback). */
	if ((h >> 24) == 127 || h == 0)
		return 1;
	return is_local(4, (const __u8 *)&ip);
}

/* Unbound earlier for a local destination (the common case: no). */
static __always_inline int
was_unbound(struct bpf_sock_addr *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);

	return bpf_map_lookup_elem(&lc_unbound, &cookie) != NULL;
}

static __always_inline int
local_dest4(struct bpf_sock_addr *ctx)
{
	if (bound_to_tun(ctx)) {
		if (v4_is_local(ctx->user_ip4))
			unbind(ctx, LC_CNT_CONNECT_LOCAL);
	} else if (was_unbound(ctx) && !v4_is_local(ctx->user_ip4))
		rebind(ctx);
	return 1;
}

static __always_inline int
v6_is_local(const __u32 *a)
{
	/* ::, ::1 */
	if (a[0] == 0 && a[1] == 0 && a[2] == 0 &&
	    (a[3] == 0 || a[3] == bpf_htonl(1)))
		return 1;
	/* ::ffff:a.b.c.d on a dual-stack socket */
	if (a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0xffff))
		return v4_is_local(a[3]);
	return is_local(6, (const __u8 *)a);
}

static __always_inline int
local_dest6(struct bpf_sock_addr *ctx)
{
	__u32 a[4];
	int bound = bound_to_tun(ctx);

	if (!bound && !was_unbound(ctx))
		return 1;
	a[0] = ctx->user_ip6[0];
	a[1] = ctx->user_ip6[1];
	a[2] = ctx->user_ip6[2];
	a[3] = ctx->user_ip6[3];
	if (bound) {
		if (v6_is_local(a))
			unbind(ctx, LC_CNT_CONNECT_LOCAL);
	} else if (!v6_is_local(a))
		rebind(ctx);
	return 1;
}

SEC("cgroup/connect4")
int lc_connect4(struct bpf_sock_addr *ctx)
{
	return local_dest4(ctx);
}

SEC("cgroup/connect6")
int lc_connect6(struct bpf_sock_addr *ctx)
{
	return local_dest6(ctx);
}

/*
 * Unconnected UDP (sendto) to a local address: the same, at the first such
 * datagram.  Unbinding is per socket, so a socket that talks to loopback
 * and then elsewhere is no longer captured: local traffic working beats
 * capturing a rare mixed socket.
 */
SEC("cgroup/sendmsg4")
int lc_sendmsg4(struct bpf_sock_addr *ctx)
{
	return local_dest4(ctx);
}

SEC("cgroup/sendmsg6")
int lc_sendmsg6(struct bpf_sock_addr *ctx)
{
	return local_dest6(ctx);
}

/*
 * Servers.  A UDP socket bound to a chosen port serves (DNS, QUIC servers);
 * a UDP client lets the kernel pick (port 0) and stays captured.  TCP is
 * decided at listen() instead (sockops below), because a listener may well
 * bind port 0 and a client may bind a port.
 *
 * IPv6 also refuses to bind a socket bound to the TUN to an address that
 * is not on the TUN (EADDRNOTAVAIL: [::1]:0 for a test server, say), so an
 * IPv6 bind to a specific address unbinds as well.  IPv4 checks addresses
 * per routing table, not per device, and needs no such care.
 */
static __always_inline int
on_bind(struct bpf_sock_addr *ctx, int v6)
{
	int server = ctx->protocol == IPPROTO_UDP_ && ctx->user_port != 0;

	if (v6 && !server)
		server = ctx->user_ip6[0] != 0 || ctx->user_ip6[1] != 0 ||
		    ctx->user_ip6[2] != 0 || ctx->user_ip6[3] != 0;
	if (server && bound_to_tun(ctx))
		unbind(ctx, LC_CNT_SERVER_UNBOUND);
	return 1;
}

SEC("cgroup/bind4")
int lc_bind4(struct bpf_sock_addr *ctx)
{
	return on_bind(ctx, 0);
}

SEC("cgroup/bind6")
int lc_bind6(struct bpf_sock_addr *ctx)
{
	return on_bind(ctx, 1);
}

SEC("sockops")
int lc_sockops(struct bpf_sock_ops *skops)
{
	int zero = 0;
	__u64 cookie;

	if (skops->op != BPF_SOCK_OPS_TCP_LISTEN_CB)
		return 1;
	if (!sk_bound_to_tun(skops->sk))
		return 1;
	bpf_setsockopt(skops, SOL_SOCKET_, SO_BINDTOIFINDEX_, &zero,
	    sizeof(zero));
	count(LC_CNT_SERVER_UNBOUND);
	cookie = bpf_get_socket_cookie(skops);
	bpf_map_delete_elem(&lc_owners, &cookie);
	return 1;
}

/*
 * Runs for every egress packet of every socket in the cgroup, so the common
 * case (not a captured socket) is one hash lookup by cookie.  TCP: the SYN
 * names the flow (and replaces whatever an earlier socket left under the
 * same key); UDP: each datagram may go elsewhere, so look before writing.
 */
SEC("cgroup_skb/egress")
int lc_egress(struct __sk_buff *skb)
{
	struct lc_flow_key k = {};
	struct lc_owner *owner, *prev;
	__u64 cookie;
	__u32 l4off;
	__u8 tcpflags;

	cookie = bpf_get_socket_cookie(skb);
	if (cookie == 0)
		return 1;
	owner = bpf_map_lookup_elem(&lc_owners, &cookie);
	if (!owner)
		return 1;

	if (skb->protocol == bpf_htons(ETH_P_IP_)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0)
			return 1;
		if (ip.ihl < 5 || (ip.frag_off & bpf_htons(0x1fff)))
			return 1;	/* not a first fragment: no ports */
		k.family = 4;
		k.proto = ip.protocol;
		__builtin_memcpy(k.saddr, &ip.saddr, 4);
		__builtin_memcpy(k.daddr, &ip.daddr, 4);
		l4off = ip.ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6_)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) < 0)
			return 1;
		k.family = 6;
		k.proto = ip6.nexthdr;	/* extension headers: not joined */
		__builtin_memcpy(k.saddr, &ip6.saddr, 16);
		__builtin_memcpy(k.daddr, &ip6.daddr, 16);
		l4off = sizeof(ip6);
	} else {
		return 1;
	}
	if (k.proto != IPPROTO_TCP_ && k.proto != IPPROTO_UDP_)
		return 1;
	if (bpf_skb_load_bytes(skb, l4off, &k.sport, 4) < 0)
		return 1;	/* sport and dport are adjacent */

	if (k.proto == IPPROTO_TCP_) {
		/* flags byte: offset 13; SYN without ACK opens the flow */
		if (bpf_skb_load_bytes(skb, l4off + 13, &tcpflags, 1) < 0)
			return 1;
		if ((tcpflags & 0x12) != 0x02)
			return 1;
	} else {
		prev = bpf_map_lookup_elem(&lc_flows, &k);
		if (prev && prev->cookie == cookie)
			return 1;
	}
	if (bpf_map_update_elem(&lc_flows, &k, owner, BPF_ANY) == 0)
		count(LC_CNT_FLOW_RECORDED);
	return 1;
}
