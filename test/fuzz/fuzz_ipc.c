/*
 * libFuzzer harness over the IPC framing (common/ipc.c): the input is
 * everything a peer writes on data.sock — frames, handshake, garbage.  The
 * accepting side must never crash, hang or leak, and must close the peer on
 * anything malformed.  Seeds in test/fuzz/corpus/ipc/ start with a valid
 * Hello so the fuzzer reaches the post-handshake paths.
 */
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "ipc.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int closed;

static void
on_message(struct ipc_peer *p, Lc__MsgType type, const ProtobufCMessage *msg,
    int *fds, size_t nfds)
{
	(void)type;
	(void)msg;
	(void)fds;
	(void)nfds;
	/* Answer like a daemon would, to exercise the output path too. */
	if (ipc_is_ready(p))
		ipc_refuse(p, LC__ERROR_CODE__ERR_BAD_REQUEST, "fuzz: %s",
		    ipc_type_name(type));
}

static void
on_close(struct ipc_peer *p, const char *reason)
{
	(void)p;
	(void)reason;
	closed = 1;
}

static const struct ipc_callbacks cb = {
	.on_message = on_message,
	.on_close = on_close,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ev_loop *loop;
	const struct ipc_peer_config cfg = {
		.channel = IPC_CHAN_DATA,
		.self_role = LC__ROLE__ROLE_REDIRECTORD,
		.accept_roles = 1u << LC__ROLE__ROLE_NETSTACKD,
		.cb = &cb,
		.name = "fuzz",
	};
	int sv[2], sndbuf = 1 << 20, rounds;
	size_t off = 0;

	if (loop == NULL) {
		log_init("fuzz_ipc", 1, LOG_LEVEL_WARN - 1);
		signal(SIGPIPE, SIG_IGN);	/* as every daemon does */
		loop = ev_loop_new(EVFLAG_AUTO);
	}
	if (size > (1u << 19))
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		return 0;
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	closed = 0;
	if (ipc_peer_new(loop, sv[0], 0, &cfg) == NULL) {
		close(sv[1]);
		return 0;
	}
	/* Deliver in two writes so reassembly across reads is exercised. */
	while (off < size) {
		size_t chunk = off == 0 && size > 1 ? size / 2 : size - off;
		ssize_t n = write(sv[1], data + off, chunk);

		if (n <= 0)
			break;
		off += (size_t)n;
		ev_run(loop, EVRUN_NOWAIT);
	}
	shutdown(sv[1], SHUT_WR);
	for (rounds = 0; !closed && rounds < 10000; rounds++)
		ev_run(loop, EVRUN_NOWAIT);
	close(sv[1]);
	if (!closed)
		__builtin_trap();	/* a peer that never ends is a hang */
	return 0;
}
