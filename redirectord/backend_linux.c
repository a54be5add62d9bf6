/*
 * redirectord's Linux backend (backend.h): the capture machinery — eBPF
 * cgroup programs, the TUN device, policy routes, rtnetlink — built in
 * redirectord/'s other modules and ebpf/, and data.sock for netstackd (one
 * netstackd at a time).  Moved from redirectord.c as it was; the process
 * around it is redirectord.c.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/rtnetlink.h>
#include <sys/capability.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "daemon.h"
#include "ipc.h"
#include "log.h"
#include "msg.h"
#include "msgcodec.h"
#include "sandbox.h"
#include "control.pb-c.h"
#include "data.pb-c.h"
#include "redirectord/backend.h"
#include "redirectord/bpf.h"
#include "redirectord/capture.h"
#include "redirectord/tun.h"

struct linux_backend {
	struct daemon		*d;
	struct ipc_listener	*data_listener;
	struct ipc_peer		*netstack;	/* the one netstackd, when ready */
	/* What netstackd last told us about proxyd. */
	int			 proxyd_connected;
	uint32_t		 proxyd_pid;
	/* netstackd's last NetstackStatus (proxyd's figures in it). */
	struct msg_netstack_status ns_status;
	const char		*tun_name_opt;
	const char		*tun_mtu_opt;
	const char		*cgroup_opt;
	int			 fail_closed_opt;
	struct tun		 tun;
	struct capture		 cap;
	ev_timer		 reap;		/* run cgroups that emptied */
	int			 addr_fd;	/* rtnetlink: address changes */
	ev_io			 addr_io;
	/* --netstack-user: the unprivileged user netstackd runs as. */
	const char		*netstack_user;
	int			 netstack_user_set;
	unsigned		 netstack_uid, netstack_gid;
};

static struct linux_backend rd = { .tun.fd = -1, .addr_fd = -1 };

static const struct option linux_longopts[] = {
	{ "tun-name",	required_argument,	NULL, 't' },
	{ "tun-mtu",	required_argument,	NULL, 'm' },
	{ "cgroup",	required_argument,	NULL, 'g' },
	{ "fail-closed", no_argument,		NULL, 'F' },
	{ "netstack-user", required_argument,	NULL, 'N' },
	{ NULL, 0, NULL, 0 },
};

static int
linux_option(int c, const char *arg)
{
	if (c == 't')
		rd.tun_name_opt = arg;
	else if (c == 'm')
		rd.tun_mtu_opt = arg;
	else if (c == 'g')
		rd.cgroup_opt = arg;
	else if (c == 'F')
		rd.fail_closed_opt = 1;
	else if (c == 'N')
		rd.netstack_user = arg;
	else
		return 0;
	return 1;
}

/*
 * netstackd's and proxyd's users are refused on ctl.sock whatever their
 * groups: code running inside either must not reach capture.
 */
static int
service_uid(uid_t uid)
{
	uint32_t u;

	if (rd.netstack_user_set && uid == rd.netstack_uid)
		return 1;
	if (rd.netstack && rd_effective_uid(ipc_cred(rd.netstack)->pid, &u) == 0 &&
	    u == uid && u != 0)
		return 1;
	if (rd.netstack && rd.proxyd_connected && rd.proxyd_pid &&
	    rd_effective_uid((pid_t)rd.proxyd_pid, &u) == 0 && u == uid && u != 0)
		return 1;
	return 0;
}

static void
linux_status(Lc__StatusReply *st, Lc__DaemonStatus ds[RD_STATUS_ROWS],
    Lc__DaemonStatus *dsp[RD_STATUS_ROWS])
{
	static uint64_t bpf_counts[LC_CNT_MAX];
	/* The BPF programs' counters, then the owner-path cache's. */
	static Lc__Counter rd_counters[LC_CNT_MAX + 3],
	    *rd_counter_ptrs[LC_CNT_MAX + 3];
	static struct msg_counters_pb ns_counters;
	/* The permit table refuses a status row with more (common/msg.h). */
	_Static_assert(LC_CNT_MAX + 3 <= LC_STATUS_ROW_COUNTERS_MAX,
	    "too many redirectord counters");
	static Lc__Counter px_counters[LC_STATUS_ROW_COUNTERS_MAX],
	    *px_counter_ptrs[LC_STATUS_ROW_COUNTERS_MAX];
	int have_ns = rd.netstack != NULL;

	if (rd.cap.bpf && rd_bpf_counters(rd.cap.bpf, bpf_counts) == 0) {
		size_t i;

		for (i = 0; i < LC_CNT_MAX; i++) {
			lc__counter__init(&rd_counters[i]);
			rd_counters[i].name = (char *)(uintptr_t)rd_bpf_counter_name(
			    (enum lc_counter)i);
			rd_counters[i].value = bpf_counts[i];
			rd_counter_ptrs[i] = &rd_counters[i];
		}
		ds[0].n_counters = LC_CNT_MAX;
		ds[0].counters = rd_counter_ptrs;
		if (rd.cap.cgroups != NULL) {
			const struct cgcache_stats *cs = cgcache_stats(rd.cap.cgroups);
			static const char *const names[3] = {
				"owner_cgroup_hits", "owner_cgroup_misses",
				"owner_cgroup_walks",
			};
			const uint64_t vals[3] = {
				cs->hits + cs->confirmed, cs->misses, cs->walks,
			};

			for (i = 0; i < 3; i++) {
				Lc__Counter *k = &rd_counters[LC_CNT_MAX + i];

				lc__counter__init(k);
				k->name = (char *)(uintptr_t)names[i];
				k->value = vals[i];
				rd_counter_ptrs[LC_CNT_MAX + i] = k;
			}
			ds[0].n_counters = LC_CNT_MAX + 3;
		}
	}
	rd_fill_daemon(&ds[1], "netstackd", have_ns,
	    have_ns ? (uint32_t)ipc_cred(rd.netstack)->pid : 0,
	    have_ns ? ipc_peer_version(rd.netstack) : NULL);
	if (have_ns) {
		ds[1].n_counters = rd.ns_status.counters.n;
		ds[1].counters = msg_counters_to_pb(&rd.ns_status.counters,
		    &ns_counters);
	}
	rd_fill_daemon(&ds[2], "proxyd", have_ns && rd.proxyd_connected,
	    have_ns && rd.proxyd_connected ? rd.proxyd_pid : 0,
	    have_ns && rd.proxyd_connected ? rd.ns_status.proxyd_version : NULL);
	if (have_ns && rd.proxyd_connected) {
		const struct msg_counters *pc = &rd.ns_status.proxyd_counters;
		size_t i;

		/* proxyd's row: flows_active first, then its named counters. */
		lc__counter__init(&px_counters[0]);
		px_counters[0].name = (char *)(uintptr_t)"flows_active";
		px_counters[0].value = rd.ns_status.proxyd_flows_active;
		px_counter_ptrs[0] = &px_counters[0];
		for (i = 0; i < pc->n; i++) {
			lc__counter__init(&px_counters[1 + i]);
			px_counters[1 + i].name = (char *)(uintptr_t)pc->name[i];
			px_counters[1 + i].value = pc->value[i];
			px_counter_ptrs[1 + i] = &px_counters[1 + i];
		}
		ds[2].n_counters = 1 + pc->n;
		ds[2].counters = px_counter_ptrs;
	}
	dsp[1] = &ds[1];
	dsp[2] = &ds[2];
	st->n_daemons = 3;
	st->spec = rd.cap.spec;
	st->capturing = capture_active(&rd.cap) && rd.cap.spec[0] != '\0';
	st->fail_closed = rd.cap.fail_closed;
	st->attach_point = rd.cap.attach;
	st->tun_name = rd.tun.name;
	st->tun_mtu = rd.tun.mtu;
	if (!rd.cap.chain_up)
		st->note = (char *)(uintptr_t)(rd.cap.fail_closed ?
		    "netstackd or proxyd is down: captured connections fail "
		    "(fail-closed)" :
		    "netstackd or proxyd is down: new sockets go direct (fail-open)");
	else if (rd.cap.spec[0] == '\0')
		st->note = (char *)(uintptr_t)"nothing attached: localcapctl attach "
		    "SPEC, or localcapctl run -- CMD";
	else
		st->note = (char *)(uintptr_t)"";
}

static int
linux_attach(const char *spec, char *err, size_t errlen, uint32_t *err_offset)
{
	return capture_attach(&rd.cap, spec, err, errlen, err_offset);
}

static int
linux_detach(const char *spec, bool all, char *err, size_t errlen)
{
	return capture_detach(&rd.cap, spec, all, err, errlen);
}

static void
linux_written_spec(char *buf, size_t len, uint32_t *runs)
{
	capture_written_spec(&rd.cap, buf, len, runs);
}

static int
linux_run(pid_t pid, char *cgroup, size_t len, char *err, size_t errlen)
{
	return capture_run(&rd.cap, pid, cgroup, len, err, errlen);
}

/* --- data plane (data.sock) -------------------------------------------------- */

static int
data_authorize(const struct ipc_cred *cred, void *arg)
{
	(void)arg;
	return cred->uid == 0 || cred->uid == geteuid() ||
	    (rd.netstack_user_set && cred->uid == rd.netstack_uid);
}

/*
 * netstackd reads and writes the TUN itself: no packet crosses a process
 * boundary twice.  It gets the fd, nothing else (it cannot reconfigure the
 * device without CAP_NET_ADMIN).
 */
static void
send_tun(struct ipc_peer *peer)
{
	struct msg_tun_handover th = { .ifindex = rd.tun.ifindex,
	    .mtu = rd.tun.mtu };
	Lc__TunHandover pb;

	snprintf(th.ifname, sizeof(th.ifname), "%s", rd.tun.name);
	msg_tun_handover_to_pb(&th, &pb);
	if (ipc_send(peer, LC__MSG_TYPE__MSG_TUN_HANDOVER, &pb.base, &rd.tun.fd, 1) == -1)
		ipc_close(peer, "cannot hand the TUN over");
}

static void
netstack_ready(struct ipc_peer *peer)
{
	if (rd.netstack != NULL) {
		ipc_refuse(peer, LC__ERROR_CODE__ERR_BUSY,
		    "another netstackd (pid %d) is connected",
		    (int)ipc_cred(rd.netstack)->pid);
		return;
	}
	rd.netstack = peer;
	rd.proxyd_connected = 0;
	log_info("netstackd connected (pid %d, version %s)",
	    (int)ipc_cred(peer)->pid, ipc_peer_version(peer));
	capture_exclude_pid(&rd.cap, ipc_cred(peer)->pid, ipc_cred(peer)->uid);
	send_tun(peer);
}

/* Who owns the flow netstackd just saw (the BPF programs recorded it). */
static void
owner_query(struct ipc_peer *peer, const Lc__OwnerQuery *pb)
{
	struct msg_owner_query q;
	struct msg_owner_reply r = { .id = pb->query_id };
	struct msg_owner_reply_pb out;
	const char *why;

	/* A query that does not decode is answered "not found". */
	if (msg_owner_query_from_pb(&q, pb, &why) == 0 &&
	    capture_owner(&rd.cap, q.src.family == AF_INET ? 4 : 6, q.ipproto,
	    q.src.addr, q.src.port, q.dst.addr, q.dst.port, &r.owner) == 0)
		r.found = 1;
	msg_owner_reply_to_pb(&r, &out);
	if (ipc_send(peer, LC__MSG_TYPE__MSG_OWNER_REPLY, &out.m.base, NULL, 0) == -1)
		log_warn("OwnerReply");
}

static void
netstack_message(struct ipc_peer *peer, Lc__MsgType type,
    const ProtobufCMessage *msg, int *fds, size_t nfds)
{
	(void)fds;
	(void)nfds;
	switch (type) {
	case LC__MSG_TYPE__MSG_NETSTACK_STATUS: {
		struct msg_netstack_status *st = &rd.ns_status;
		const char *why;

		if (msg_netstack_status_from_pb(st,
		    (const Lc__NetstackStatus *)(const void *)msg, &why) == -1) {
			ipc_refuse(peer, LC__ERROR_CODE__ERR_BAD_REQUEST,
			    "NetstackStatus: %s", why);
			return;
		}
		if (st->proxyd_connected != rd.proxyd_connected)
			log_info("proxyd %s (as netstackd reports)",
			    st->proxyd_connected ? "reachable" : "unreachable");
		if (st->proxyd_connected && st->proxyd_pid != rd.proxyd_pid)
			capture_exclude_pid(&rd.cap, (pid_t)st->proxyd_pid, (uid_t)-1);
		rd.proxyd_connected = st->proxyd_connected;
		rd.proxyd_pid = st->proxyd_pid;
		capture_chain(&rd.cap, rd.proxyd_connected);
		break;
	}
	case LC__MSG_TYPE__MSG_OWNER_QUERY:
		owner_query(peer, (const Lc__OwnerQuery *)(const void *)msg);
		break;
	default:
		ipc_refuse(peer, LC__ERROR_CODE__ERR_BAD_REQUEST,
		    "redirectord does not take %s", ipc_type_name(type));
	}
}

static void
netstack_close(struct ipc_peer *peer, const char *reason)
{
	if (peer != rd.netstack)
		return;
	log_warnx("lost netstackd (pid %d): %s", (int)ipc_cred(peer)->pid, reason);
	rd.netstack = NULL;
	rd.proxyd_connected = 0;
	memset(&rd.ns_status, 0, sizeof(rd.ns_status));
	capture_chain(&rd.cap, false);
}

static const struct ipc_callbacks netstack_cb = {
	.on_ready = netstack_ready,
	.on_message = netstack_message,
	.on_close = netstack_close,
};

static void
linux_shutdown(void)
{
	if (rd.d == NULL)
		return;
	ipc_listener_free(rd.data_listener);
	rd.data_listener = NULL;
	if (rd.netstack)
		ipc_close(rd.netstack, "redirectord shutting down");
	ev_timer_stop(rd.d->loop, &rd.reap);
	ev_io_stop(rd.d->loop, &rd.addr_io);
	capture_close(&rd.cap);
	tun_close(&rd.tun);
}

static void
reap_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	capture_reap(&rd.cap);
}

/*
 * An address was added or removed somewhere on the host: the connect hooks
 * must know this host's addresses, or a captured program connecting to a
 * new one would be sent to the TUN and hang.  The messages themselves do
 * not matter; drain them and reload the whole set.
 */
static void
addr_event_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	char buf[8192];
	int changed = 0;

	(void)loop;
	(void)w;
	(void)revents;
	while (recv(rd.addr_fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		changed = 1;
	if (changed)
		capture_addresses_changed(&rd.cap);
}

static void
watch_addresses(void)
{
	struct sockaddr_nl snl = {
		.nl_family = AF_NETLINK,
		.nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR,
	};

	rd.addr_fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    NETLINK_ROUTE);
	if (rd.addr_fd == -1 ||
	    bind(rd.addr_fd, (struct sockaddr *)&snl, sizeof(snl)) == -1)
		fatal("watching the host's addresses (rtnetlink)");
	ev_io_init(&rd.addr_io, addr_event_cb, rd.addr_fd, EV_READ);
	ev_io_start(rd.d->loop, &rd.addr_io);
}

static void
start_capture(void)
{
	const char *cg = rd.cgroup_opt ? rd.cgroup_opt :
	    conf_get(rd.d->conf, "redirectord", "cgroup");
	const char *fc = conf_get(rd.d->conf, "redirectord", "fail_closed");
	char err[300];

	if (capture_init(&rd.cap, cg, &rd.tun, rd.fail_closed_opt ||
	    (fc && conf_parse_bool(fc) == 1), err, sizeof(err)) == -1)
		fatalx("%s", err);
	ev_timer_init(&rd.reap, reap_cb, 1., 1.);
	ev_timer_start(rd.d->loop, &rd.reap);
	ev_unref(rd.d->loop);
	watch_addresses();
}

static void
close_tun_at_exit(void)
{
	capture_close(&rd.cap);
	tun_close(&rd.tun);
}

static void
open_tun(void)
{
	const char *name = rd.tun_name_opt ? rd.tun_name_opt :
	    conf_get(rd.d->conf, "redirectord", "tun_name");
	const char *mtu_s = rd.tun_mtu_opt ? rd.tun_mtu_opt :
	    conf_get(rd.d->conf, "redirectord", "tun_mtu");
	unsigned long mtu = TUN_DEFAULT_MTU;
	char err[256], *end;

	if (mtu_s) {
		mtu = strtoul(mtu_s, &end, 10);
		if (*mtu_s == '\0' || *end != '\0' || mtu > TUN_MAX_MTU)
			fatalx("--tun-mtu %s: not a number from %u to %u", mtu_s,
			    TUN_MIN_MTU, TUN_MAX_MTU);
	}
	if (tun_open(&rd.tun, name ? name : TUN_DEFAULT_NAME, (unsigned)mtu,
	    TUN_DEFAULT_TABLE, err, sizeof(err)) == -1)
		fatalx("%s", err);
	/* Even a fatal() later must not leave the IPv6 rule behind. */
	atexit(close_tun_at_exit);
}

static void
linux_start(struct daemon *d)
{
	const struct ipc_peer_config data_cfg = {
		.channel = IPC_CHAN_DATA,
		.self_role = LC__ROLE__ROLE_REDIRECTORD,
		.accept_roles = 1u << LC__ROLE__ROLE_NETSTACKD,
		.cb = &netstack_cb,
		.name = "data.sock",
	};
	char path[300];

	rd.d = d;
	{
		char why[300];

		/* Refuse at once, saying what the kernel lacks. */
		if (rd_bpf_preflight(why, sizeof(why)) == -1)
			fatalx("%s", why);
	}
	open_tun();
	start_capture();

	daemon_path(d, "data.sock", path, sizeof(path));
	if ((rd.data_listener = ipc_listen(d->loop, path, 0660, &data_cfg,
	    data_authorize, NULL)) == NULL)
		fatal("cannot listen on %s", path);
	if (rd.netstack_user == NULL)
		rd.netstack_user = conf_get(d->conf, "redirectord", "netstack_user");
	if (rd.netstack_user) {
		/* netstackd, unprivileged, must be able to (re)connect. */
		if (sandbox_lookup_user(rd.netstack_user, &rd.netstack_uid,
		    &rd.netstack_gid) == -1)
			fatalx("--netstack-user: unknown user '%s'", rd.netstack_user);
		if (chown(path, 0, rd.netstack_gid) == -1)
			fatal("chown %s", path);
		rd.netstack_user_set = 1;
	}
}

/* Everything is open: keep only what capture needs from here on. */
static void
linux_confine(void)
{
	static const int keep[] = { CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON };
	const struct sandbox sb = {
		.profile = SANDBOX_REDIRECTORD,
		.keep_caps = keep,
		.nkeep_caps = sizeof(keep) / sizeof(keep[0]),
	};

	sandbox_enter(&sb);
}

const struct rd_backend rd_backend_linux = {
	.name = "linux",
	.summary = "The privileged part of localcap: capture by eBPF + TUN, and "
	    "the control socket.",
	.help =
	    "  -t, --tun-name NAME     the capture TUN device (default "
	    TUN_DEFAULT_NAME ")\n"
	    "  -m, --tun-mtu N         its MTU, 1280-65535 (default 65535)\n"
	    "  -g, --cgroup PATH       attach capture here (default: the cgroup v2 root)\n"
	    "      --fail-closed       keep capturing while netstackd/proxyd are down\n"
	    "      --netstack-user NAME  the user netstackd runs as (may use data.sock)\n",
	.shortopts = "t:m:g:",
	.longopts = linux_longopts,
	.option = linux_option,
	.start = linux_start,
	.confine = linux_confine,
	.shutdown = linux_shutdown,
	.service_uid = service_uid,
	.attach = linux_attach,
	.detach = linux_detach,
	.written_spec = linux_written_spec,
	.run = linux_run,
	.status = linux_status,
};
