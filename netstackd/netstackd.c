/*
 * netstackd — the unprivileged user-space TCP/IP stack.
 *
 * Sits between redirectord (data.sock: raw packets from the capture TUN, or
 * the TUN fd itself) and proxyd (flow.sock: one NewFlow + socket per
 * connection).  It connects to both and keeps reconnecting whenever either
 * goes away, so each neighbour can be restarted alone.  It tells redirectord
 * whether proxyd is reachable, which is what capture fail-open/fail-closed
 * decides on.
 *
 * The protocol core (IP, TCP, UDP) lives in netstackd/'s other modules; this
 * file is the process around it.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "daemon.h"
#include "ipc.h"
#include "log.h"
#include "data.pb-c.h"
#include "flow.pb-c.h"

struct netstackd {
	struct daemon		 d;
	struct ipc_connector	*redirector;	/* data.sock */
	struct ipc_connector	*proxy;		/* flow.sock */
	ev_timer		 report;	/* status to redirectord, soon */
	uint64_t		 packets_in;
	uint64_t		 tun_handovers;
};

static struct netstackd ns = { .d = { .name = "netstackd" } };

static const char usage[] =
    "usage: netstackd [options]\n"
    "The localcap user-space TCP/IP stack: packets from redirectord, flows to proxyd.\n"
    "\n"
    DAEMON_COMMON_HELP;

static void
print_version(void)
{
	printf("netstackd %s (protobuf-c %s, libev %d.%d, protocol %d)\n",
	    LOCALCAP_VERSION, protobuf_c_version(), ev_version_major(),
	    ev_version_minor(), LC__PROTOCOL__PROTOCOL_VERSION);
}

/* Tell redirectord what we know about proxyd. */
static void
report_status(void)
{
	struct ipc_peer *rd = ns.redirector ? ipc_connector_peer(ns.redirector) : NULL;
	struct ipc_peer *px = ns.proxy ? ipc_connector_peer(ns.proxy) : NULL;
	Lc__NetstackStatus st;
	Lc__Counter packets, *counters[1] = { &packets };

	if (rd == NULL)
		return;
	lc__netstack_status__init(&st);
	lc__counter__init(&packets);
	packets.name = (char *)(uintptr_t)"packets_in";
	packets.value = ns.packets_in;
	st.n_counters = 1;
	st.counters = counters;
	if (px) {
		st.proxyd_connected = 1;
		st.proxyd_pid = (uint32_t)ipc_cred(px)->pid;
		st.proxyd_version = (char *)(uintptr_t)ipc_peer_version(px);
	}
	if (ipc_send(rd, LC__MSG_TYPE__MSG_NETSTACK_STATUS, &st.base, NULL, 0) == -1)
		log_warn("sending NetstackStatus");
}

/* --- redirectord (data.sock) ---------------------------------------------- */

static void
redirector_ready(struct ipc_peer *peer)
{
	(void)peer;
	report_status();
}

static void
redirector_message(struct ipc_peer *peer, Lc__MsgType type,
    const ProtobufCMessage *msg, int *fds, size_t nfds)
{
	(void)fds;
	(void)nfds;
	switch (type) {
	case LC__MSG_TYPE__MSG_PACKET_BATCH: {
		const Lc__PacketBatch *b = (const Lc__PacketBatch *)(const void *)msg;

		/* The TCP/IP core consumes these once it lands (netstackd issue). */
		ns.packets_in += b->n_packets;
		break;
	}
	case LC__MSG_TYPE__MSG_TUN_HANDOVER: {
		const Lc__TunHandover *th = (const Lc__TunHandover *)(const void *)msg;

		ns.tun_handovers++;
		log_info("TUN %s (ifindex %u, MTU %u) received; packet I/O on it "
		    "is not built yet", th->ifname ? th->ifname : "?", th->ifindex,
		    th->mtu);
		break;
	}
	case LC__MSG_TYPE__MSG_OWNER_REPLY:
	case LC__MSG_TYPE__MSG_ERROR:
		break;
	default:
		ipc_refuse(peer, LC__ERROR_CODE__ERR_BAD_REQUEST,
		    "netstackd does not take %s", ipc_type_name(type));
	}
}

static void
redirector_close(struct ipc_peer *peer, const char *reason)
{
	(void)peer;
	(void)reason;	/* the connector logs the loss and reconnects */
}

static const struct ipc_callbacks redirector_cb = {
	.on_ready = redirector_ready,
	.on_message = redirector_message,
	.on_close = redirector_close,
};

/* --- proxyd (flow.sock) ----------------------------------------------------- */

static void
proxy_ready(struct ipc_peer *peer)
{
	(void)peer;
	report_status();
}

static void
proxy_message(struct ipc_peer *peer, Lc__MsgType type,
    const ProtobufCMessage *msg, int *fds, size_t nfds)
{
	(void)msg;
	(void)fds;
	(void)nfds;
	switch (type) {
	case LC__MSG_TYPE__MSG_PROXY_STATUS:
	case LC__MSG_TYPE__MSG_ERROR:
		break;
	default:
		ipc_refuse(peer, LC__ERROR_CODE__ERR_BAD_REQUEST,
		    "netstackd does not take %s from proxyd", ipc_type_name(type));
	}
}

static void
proxy_close(struct ipc_peer *peer, const char *reason)
{
	(void)peer;
	(void)reason;
	/* Runs before the connector forgets the peer: report from the loop. */
	ev_timer_start(ns.d.loop, &ns.report);
}

static void
report_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	report_status();
}

static const struct ipc_callbacks proxy_cb = {
	.on_ready = proxy_ready,
	.on_message = proxy_message,
	.on_close = proxy_close,
};

static void
netstackd_shutdown(void *arg)
{
	(void)arg;
	ipc_connector_free(ns.proxy);
	ns.proxy = NULL;
	ipc_connector_free(ns.redirector);
	ns.redirector = NULL;
	ev_timer_stop(ns.d.loop, &ns.report);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		DAEMON_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	const struct ipc_peer_config rd_cfg = {
		.channel = IPC_CHAN_DATA,
		.self_role = LC__ROLE__ROLE_NETSTACKD,
		.accept_roles = 1u << LC__ROLE__ROLE_REDIRECTORD,
		.cb = &redirector_cb,
		.name = "redirectord",
	};
	const struct ipc_peer_config px_cfg = {
		.channel = IPC_CHAN_FLOW,
		.self_role = LC__ROLE__ROLE_NETSTACKD,
		.accept_roles = 1u << LC__ROLE__ROLE_PROXYD,
		.cb = &proxy_cb,
		.name = "proxyd",
	};
	const struct daemon_hooks hooks = { .shutdown = netstackd_shutdown };
	struct ev_loop *loop;
	char path[300];
	int c;

	while ((c = getopt_long(argc, argv, DAEMON_SHORTOPTS, longopts, NULL)) != -1)
		(void)daemon_common_opt(&ns.d, c, optarg, usage, print_version);
	if (optind != argc) {
		fprintf(stderr, "netstackd: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if ((loop = ev_default_loop(EVFLAG_AUTO)) == NULL)
		fatalx("cannot initialise libev");
	daemon_start(&ns.d, loop, &hooks);
	ev_timer_init(&ns.report, report_cb, 0., 0.);

	daemon_path(&ns.d, "data.sock", path, sizeof(path));
	if ((ns.redirector = ipc_connector_new(loop, path, &rd_cfg)) == NULL)
		fatal("%s", path);
	daemon_path(&ns.d, "flow.sock", path, sizeof(path));
	if ((ns.proxy = ipc_connector_new(loop, path, &px_cfg)) == NULL)
		fatal("%s", path);

	ev_run(loop, 0);
	daemon_finish(&ns.d);
	return 0;
}
