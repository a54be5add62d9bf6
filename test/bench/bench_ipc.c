/*
 * What relaying packets over data.sock would cost, against handing the TUN
 * fd to netstackd (what localcap does).  Not a test: it prints figures.
 *
 *	bench_ipc [PACKETS]	(default 2,000,000 packets of 1,400 bytes)
 *
 * In the relay design every packet would cross an extra process boundary
 * each way: redirectord reads the TUN, batches packets into PacketBatch
 * messages and writes them to data.sock; netstackd reads and decodes them
 * (and the same back).  This measures exactly that added path, in one
 * process over a socketpair with the real framing library: encode + send
 * + receive + decode of batches of 64 packets, as CPU nanoseconds per
 * packet and MB/s.  The baseline in the same run is a bare write()+read()
 * of the same bytes over a socketpair — the least any relay could cost.
 * Compare the per-packet figure with netstackd's own CPU per packet from
 * test/bench/netstack_bench.sh.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "ipc.h"
#include "log.h"
#include "data.pb-c.h"

#define PKT	1400
#define BATCH	64

static uint64_t received;
static int finished;

static double
cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static double
wall_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
on_ready(struct ipc_peer *p)
{
	(void)p;
}

static void
on_message(struct ipc_peer *p, Lc__MsgType type, const ProtobufCMessage *msg,
    int *fds, size_t nfds)
{
	(void)p;
	(void)fds;
	(void)nfds;
	if (type == LC__MSG_TYPE__MSG_PACKET_BATCH)
		received += ((const Lc__PacketBatch *)(const void *)msg)->n_packets;
}

static void
on_close(struct ipc_peer *p, const char *reason)
{
	(void)p;
	if (finished)
		return;
	fprintf(stderr, "bench_ipc: peer closed: %s\n", reason);
	exit(1);
}

static void
on_drain(struct ipc_peer *p)
{
	(void)p;
}

static const struct ipc_callbacks cb = {
	.on_ready = on_ready, .on_message = on_message, .on_close = on_close,
	.on_drain = on_drain,
};

int
main(int argc, char *argv[])
{
	uint64_t packets = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
	struct ev_loop *loop = ev_default_loop(0);
	struct ipc_peer_config scfg = {
		.channel = IPC_CHAN_DATA, .self_role = LC__ROLE__ROLE_NETSTACKD,
		.accept_roles = 1u << LC__ROLE__ROLE_REDIRECTORD, .cb = &cb,
		.name = "bench-netstackd",
	};
	struct ipc_peer_config ccfg = {
		.channel = IPC_CHAN_DATA, .self_role = LC__ROLE__ROLE_REDIRECTORD,
		.accept_roles = 1u << LC__ROLE__ROLE_NETSTACKD, .cb = &cb,
		.name = "bench-redirectord",
	};
	ProtobufCBinaryData pk[BATCH];
	Lc__PacketBatch batch;
	struct ipc_peer *tx, *rx;
	uint8_t *data, *buf;
	double c0, w0, c_relay, w_relay, c_bare, w_bare;
	uint64_t sent = 0, i;
	int sv[2];

	if (packets < BATCH || packets > 100000000) {
		fprintf(stderr, "usage: bench_ipc [PACKETS >= %d]\n", BATCH);
		return 2;
	}
	log_init("bench_ipc", 1, LOG_LEVEL_WARN);
	data = calloc(BATCH, PKT);
	buf = malloc(1 << 20);
	for (i = 0; i < BATCH; i++) {
		pk[i].len = PKT;
		pk[i].data = data + i * PKT;
	}
	lc__packet_batch__init(&batch);
	batch.n_packets = BATCH;
	batch.packets = pk;

	/* The relay path: framing + protobuf over a socketpair. */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		return 1;
	rx = ipc_peer_new(loop, sv[0], 0, &scfg);
	tx = ipc_peer_new(loop, sv[1], 1, &ccfg);
	while (!ipc_is_ready(tx))
		ev_run(loop, EVRUN_ONCE);
	c0 = cpu_seconds();
	w0 = wall_seconds();
	while (received < packets) {
		while (sent < packets && ipc_send(tx, LC__MSG_TYPE__MSG_PACKET_BATCH,
		    &batch.base, NULL, 0) == 0)
			sent += BATCH;
		ev_run(loop, EVRUN_NOWAIT);
	}
	c_relay = cpu_seconds() - c0;
	w_relay = wall_seconds() - w0;
	finished = 1;
	ipc_close(tx, "done");
	ipc_close(rx, "done");

	/* The floor: the same bytes, bare write/read, no framing. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == -1)
		return 1;
	c0 = cpu_seconds();
	w0 = wall_seconds();
	{
		uint64_t out = 0, in = 0, total = packets * PKT;

		while (in < total) {
			ssize_t n;

			if (out < total) {
				n = write(sv[1], data, BATCH * PKT < total - out ?
				    BATCH * PKT : total - out);
				if (n > 0)
					out += (uint64_t)n;
			}
			while ((n = read(sv[0], buf, 1 << 20)) > 0)
				in += (uint64_t)n;
		}
	}
	c_bare = cpu_seconds() - c0;
	w_bare = wall_seconds() - w0;

	printf("packet relay over data.sock, %llu packets of %d bytes, batches of %d:\n",
	    (unsigned long long)packets, PKT, BATCH);
	printf("  framed protobuf (relay design)  %7.0f ns CPU/packet  %8.0f MB/s\n",
	    c_relay * 1e9 / (double)packets, (double)packets * PKT / w_relay / 1e6);
	printf("  bare write/read (floor)         %7.0f ns CPU/packet  %8.0f MB/s\n",
	    c_bare * 1e9 / (double)packets, (double)packets * PKT / w_bare / 1e6);
	printf("  ratio framed/bare CPU: %.2f\n", c_relay / c_bare);
	printf("  a relay pays this per packet per direction on top of the TUN I/O;\n"
	    "  handing netstackd the TUN fd pays nothing here.\n");
	free(data);
	free(buf);
	return 0;
}
