/*
 * A stand-in for proxyd in netstackd's interop tests: listens on
 * <runtime>/flow.sock as proxyd would, takes every NewFlow, and echoes the
 * flow's bytes back (TCP: a stream, with each half-close passed back once
 * the echo is written; UDP: each datagram).  It logs one line per flow
 * start and end to stdout, so a test can check what netstackd reported.
 *
 *	echo_consumer RUNTIME_DIR
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <ev.h>

#include "ipc.h"
#include "log.h"
#include "flow.pb-c.h"

#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

struct echo {
	int		fd;
	int		udp;
	uint64_t	id;
	ev_io		rio, wio;
	uint8_t		buf[65536];
	size_t		off, len;
	int		eof;
	uint64_t	bytes;
};

static void
echo_free(struct echo *e)
{
	ev_io_stop(EV_DEFAULT, &e->rio);
	ev_io_stop(EV_DEFAULT, &e->wio);
	close(e->fd);
	printf("end %llu bytes %llu\n", (unsigned long long)e->id,
	    (unsigned long long)e->bytes);
	fflush(stdout);
	free(e);
}

static void
echo_pump(struct echo *e)
{
	for (;;) {
		ssize_t n;

		if (e->len > 0) {
			n = send(e->fd, e->buf + e->off, e->len, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EAGAIN) {
					ev_io_stop(EV_DEFAULT, &e->rio);
					ev_io_start(EV_DEFAULT, &e->wio);
					return;
				}
				echo_free(e);
				return;
			}
			e->off += (size_t)n;
			e->len -= (size_t)n;
			continue;
		}
		ev_io_stop(EV_DEFAULT, &e->wio);
		if (e->eof) {
			if (e->udp) {
				echo_free(e);
				return;
			}
			shutdown(e->fd, SHUT_WR);
			ev_io_stop(EV_DEFAULT, &e->rio);
			echo_free(e);
			return;
		}
		n = recv(e->fd, e->buf, sizeof(e->buf), 0);
		if (n < 0) {
			if (errno == EAGAIN) {
				ev_io_start(EV_DEFAULT, &e->rio);
				return;
			}
			echo_free(e);	/* reset */
			return;
		}
		if (n == 0) {
			e->eof = 1;
			continue;
		}
		e->bytes += (size_t)n;
		e->off = 0;
		e->len = (size_t)n;
	}
}

static void
echo_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct echo *e = (revents & EV_WRITE) ? container_of(w, struct echo, wio) :
	    container_of(w, struct echo, rio);

	(void)loop;
	echo_pump(e);
}

static void
on_message(struct ipc_peer *p, Lc__MsgType type, const ProtobufCMessage *msg,
    int *fds, size_t nfds)
{
	(void)p;
	(void)nfds;
	if (type == LC__MSG_TYPE__MSG_NEW_FLOW) {
		const Lc__NewFlow *nf = (const Lc__NewFlow *)(const void *)msg;
		struct echo *e = calloc(1, sizeof(*e));
		char dst[64] = "?";

		if (nf->dst && (nf->dst->addr.len == 4 || nf->dst->addr.len == 16))
			inet_ntop(nf->dst->addr.len == 4 ? AF_INET : AF_INET6,
			    nf->dst->addr.data, dst, sizeof(dst));
		e->fd = fds[0];
		fds[0] = -1;
		e->udp = nf->transport == LC__TRANSPORT__TRANSPORT_UDP;
		e->id = nf->flow_id;
		printf("new %llu %s %s port %u owner pid %u name %s uid %u "
		    "cgroup %s\n", (unsigned long long)e->id,
		    e->udp ? "udp" : "tcp", dst, nf->dst ? nf->dst->port : 0,
		    nf->owner ? nf->owner->pid : 0,
		    nf->owner && nf->owner->process && nf->owner->process[0] ?
		    nf->owner->process : "-", nf->owner ? nf->owner->uid : 0,
		    nf->owner && nf->owner->cgroup && nf->owner->cgroup[0] ?
		    nf->owner->cgroup : "-");
		fflush(stdout);
		ev_io_init(&e->rio, echo_io_cb, e->fd, EV_READ);
		ev_io_init(&e->wio, echo_io_cb, e->fd, EV_WRITE);
		echo_pump(e);
	} else if (type == LC__MSG_TYPE__MSG_FLOW_CLOSED) {
		const Lc__FlowClosed *fc = (const Lc__FlowClosed *)(const void *)msg;

		printf("closed %llu from_app %llu to_app %llu retransmits %llu "
		    "reason %s\n", (unsigned long long)fc->flow_id,
		    (unsigned long long)fc->bytes_from_app,
		    (unsigned long long)fc->bytes_to_app,
		    (unsigned long long)fc->retransmits,
		    fc->reason ? fc->reason : "");
		fflush(stdout);
	}
}

static void
on_close(struct ipc_peer *p, const char *reason)
{
	(void)p;
	printf("source gone: %s\n", reason);
	fflush(stdout);
}

static const struct ipc_callbacks cb = {
	.on_message = on_message,
	.on_close = on_close,
};

static void
on_term(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

int
main(int argc, char *argv[])
{
	const struct ipc_peer_config cfg = {
		.channel = IPC_CHAN_FLOW,
		.self_role = LC__ROLE__ROLE_PROXYD,
		.accept_roles = 1u << LC__ROLE__ROLE_NETSTACKD,
		.cb = &cb,
		.name = "flow.sock",
	};
	struct ipc_listener *l;
	ev_signal sig;
	char path[256];

	if (argc != 2) {
		fprintf(stderr, "usage: echo_consumer RUNTIME_DIR\n");
		return 2;
	}
	log_init("echo_consumer", 1, LOG_LEVEL_INFO);
	signal(SIGPIPE, SIG_IGN);
	snprintf(path, sizeof(path), "%s/flow.sock", argv[1]);
	if ((l = ipc_listen(EV_DEFAULT, path, 0600, &cfg, NULL, NULL)) == NULL)
		fatal("listen %s", path);
	ev_signal_init(&sig, on_term, SIGTERM);
	ev_signal_start(EV_DEFAULT, &sig);
	ev_run(EV_DEFAULT, 0);
	ipc_listener_free(l);
	return 0;
}
