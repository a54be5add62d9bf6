/*
 * px_flow_source: a stand-in for netstackd, for test/integration/proxyd_relay.sh.
 *
 *   px_flow_source -r RUNTIME_DIR -d DST [-b] [-t SECONDS]
 *
 * Connects to RUNTIME_DIR/flow.sock as ROLE_NETSTACKD and listens on
 * 127.0.0.1 (an ephemeral port, printed as "listening PORT").  Every TCP
 * connection accepted there (curl, say) becomes a flow to DST
 * ("127.0.0.1:8000", "[::1]:8000"): a Unix socketpair, one end sent to
 * proxyd with a NewFlow, the other pumped to and from the accepted
 * connection by a thread, as netstackd will do with its TCP endpoints.  The
 * reset marker proxyd sends on a Unix flow socket (docs/proxyd-relay.md)
 * becomes a real TCP reset towards the client.
 *
 * -b first sends a NewFlow with a bad destination port, which proxyd must
 * refuse without dropping this connection.  Each ProxyStatus is printed as
 * "status active=N total=N refused=N".  Exits when proxyd goes away, on
 * SIGTERM, or after -t seconds (default 60).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "ipc.h"
#include "log.h"
#include "flow.pb-c.h"

static struct {
	struct ev_loop	*loop;
	struct ipc_peer	*peer;
	int		 lfd;
	ev_io		 accept_w;
	uint8_t		 dst_addr[16];
	size_t		 dst_len;
	uint16_t	 dst_port;
	int		 bad_first;
	uint64_t	 next_id;
	int		 exit_code;
} src = { .next_id = 1 };

struct pump {
	int	tcp;
	int	flow;
};

static int
write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Bytes both ways between the client's TCP connection and the flow socket. */
static void *
pump_main(void *arg)
{
	struct pump *p = arg;
	struct linger lg = { 1, 0 };
	uint8_t buf[65536];
	int tcp_open = 1, flow_open = 1, reset = 0;
	ssize_t n;

	while ((tcp_open || flow_open) && !reset) {
		struct pollfd pf[2] = {
			{ .fd = tcp_open ? p->tcp : -1, .events = POLLIN },
			{ .fd = flow_open ? p->flow : -1, .events = POLLIN | POLLPRI },
		};

		if (poll(pf, 2, 30000) <= 0)
			break;
		if (pf[0].revents) {
			n = recv(p->tcp, buf, sizeof(buf), 0);
			if (n > 0 && write_all(p->flow, buf, (size_t)n) == 0)
				;
			else if (n == 0) {
				shutdown(p->flow, SHUT_WR);
				tcp_open = 0;
			} else
				break;	/* the client reset: drop the flow */
		}
		/*
		 * The reset marker first: a plain read that reaches it passes
		 * over it, and the marker is lost.
		 */
		if (pf[1].revents & POLLPRI) {
			char c;

			if (recv(p->flow, &c, 1, MSG_OOB) == 1 && c == 'R') {
				reset = 1;
				break;
			}
		}
		if (pf[1].revents & (POLLIN | POLLHUP)) {
			n = recv(p->flow, buf, sizeof(buf), 0);
			if (n > 0 && write_all(p->tcp, buf, (size_t)n) == 0)
				;
			else if (n == 0) {
				shutdown(p->tcp, SHUT_WR);
				flow_open = 0;
			} else
				break;
		}
	}
	/*
	 * A write that failed because proxyd closed the flow, or an EOF seen
	 * first: the marker may still be waiting.
	 */
	if (!reset) {
		char c;

		if (recv(p->flow, &c, 1, MSG_OOB | MSG_DONTWAIT) == 1 && c == 'R')
			reset = 1;
	}
	if (reset)
		setsockopt(p->tcp, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(p->tcp);
	close(p->flow);
	free(p);
	return NULL;
}

static int
send_flow(const struct sockaddr_storage *peer, uint16_t dst_port, int fd)
{
	static uint8_t zero[16];
	Lc__NewFlow nf;
	Lc__Endpoint s, d;
	Lc__Owner owner;
	struct timespec ts;

	lc__new_flow__init(&nf);
	lc__endpoint__init(&s);
	lc__endpoint__init(&d);
	lc__owner__init(&owner);
	nf.flow_id = src.next_id++;
	nf.transport = LC__TRANSPORT__TRANSPORT_TCP;
	if (peer && peer->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)peer;

		s.addr.data = (uint8_t *)(uintptr_t)&sin->sin_addr;
		s.addr.len = 4;
		s.port = ntohs(sin->sin_port);
	} else {
		s.addr.data = zero;
		s.addr.len = src.dst_len;
	}
	/* The app's address family must match the destination's. */
	if (s.addr.len != src.dst_len) {
		s.addr.data = zero;
		s.addr.len = src.dst_len;
	}
	d.addr.data = src.dst_addr;
	d.addr.len = src.dst_len;
	d.port = dst_port;
	owner.pid = (uint32_t)getpid();
	owner.uid = (uint32_t)getuid();
	owner.process = (char *)(uintptr_t)"px_flow_source";
	owner.cgroup = (char *)(uintptr_t)"/localcap-test";
	clock_gettime(CLOCK_REALTIME, &ts);
	nf.start_time_us = (uint64_t)ts.tv_sec * 1000000 +
	    (uint64_t)ts.tv_nsec / 1000;
	nf.src = &s;
	nf.dst = &d;
	nf.owner = &owner;
	return ipc_send(src.peer, LC__MSG_TYPE__MSG_NEW_FLOW, &nf.base, &fd, 1);
}

static void
accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);
	struct pump *p;
	pthread_t th;
	int tcp, sp[2];

	(void)loop;
	(void)w;
	(void)revents;
	if ((tcp = accept4(src.lfd, (struct sockaddr *)&peer, &len,
	    SOCK_CLOEXEC)) == -1)
		return;
	if (src.peer == NULL ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == -1) {
		close(tcp);
		return;
	}
	if (send_flow(&peer, src.dst_port, sp[1]) == -1) {
		log_warn("sending NewFlow");
		close(sp[0]);
		close(sp[1]);
		close(tcp);
		return;
	}
	close(sp[1]);	/* ipc_send sent a copy */
	if ((p = malloc(sizeof(*p))) == NULL)
		fatal("malloc");
	p->tcp = tcp;
	p->flow = sp[0];
	if (pthread_create(&th, NULL, pump_main, p) != 0)
		fatal("pthread_create");
	pthread_detach(th);
}

static void
on_ready(struct ipc_peer *peer)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int sp[2];

	(void)peer;
	if (src.bad_first) {
		/* Port 0: proxyd must refuse this flow alone. */
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == -1)
			fatal("socketpair");
		if (send_flow(NULL, 0, sp[1]) == -1)
			fatal("sending the bad NewFlow");
		close(sp[0]);
		close(sp[1]);
	}
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((src.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    bind(src.lfd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(src.lfd, 64) == -1 ||
	    getsockname(src.lfd, (struct sockaddr *)&sin, &len) == -1)
		fatal("listening socket");
	ev_io_init(&src.accept_w, accept_cb, src.lfd, EV_READ);
	ev_io_start(src.loop, &src.accept_w);
	printf("listening %u\n", ntohs(sin.sin_port));
	fflush(stdout);
}

static void
on_message(struct ipc_peer *peer, Lc__MsgType type, const ProtobufCMessage *msg,
    int *fds, size_t nfds)
{
	const Lc__ProxyStatus *st = (const Lc__ProxyStatus *)(const void *)msg;
	uint64_t total = 0, refused = 0;
	size_t i;

	(void)peer;
	(void)fds;
	(void)nfds;
	if (type != LC__MSG_TYPE__MSG_PROXY_STATUS)
		return;
	for (i = 0; i < st->n_counters; i++) {
		if (strcmp(st->counters[i]->name, "flows_total") == 0)
			total = st->counters[i]->value;
		else if (strcmp(st->counters[i]->name, "flows_refused") == 0)
			refused = st->counters[i]->value;
	}
	printf("status active=%llu total=%llu refused=%llu\n",
	    (unsigned long long)st->flows_active, (unsigned long long)total,
	    (unsigned long long)refused);
	fflush(stdout);
}

static void
on_close(struct ipc_peer *peer, const char *reason)
{
	(void)peer;
	printf("proxyd gone: %s\n", reason);
	fflush(stdout);
	src.peer = NULL;
	src.exit_code = 1;
	ev_break(src.loop, EVBREAK_ALL);
}

static void
give_up(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

static int
parse_dst(const char *s)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	size_t hl;

	if (colon == NULL || (hl = (size_t)(colon - s)) >= sizeof(host))
		return -1;
	memcpy(host, s, hl);
	host[hl] = '\0';
	src.dst_port = (uint16_t)atoi(colon + 1);
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
		host[hl - 1] = '\0';
		src.dst_len = 16;
		return inet_pton(AF_INET6, host + 1, src.dst_addr) == 1 ? 0 : -1;
	}
	src.dst_len = 4;
	return inet_pton(AF_INET, host, src.dst_addr) == 1 ? 0 : -1;
}

int
main(int argc, char *argv[])
{
	static const struct ipc_callbacks cb = {
		.on_ready = on_ready,
		.on_message = on_message,
		.on_close = on_close,
	};
	struct ipc_peer_config cfg = {
		.channel = IPC_CHAN_FLOW,
		.self_role = LC__ROLE__ROLE_NETSTACKD,
		.accept_roles = 1u << LC__ROLE__ROLE_PROXYD,
		.cb = &cb,
		.name = "flow.sock",
	};
	const char *rundir = NULL, *dst = NULL;
	double limit = 60;
	char path[300];
	ev_timer timer;
	int c, fd, i;

	while ((c = getopt(argc, argv, "r:d:bt:")) != -1) {
		switch (c) {
		case 'r': rundir = optarg; break;
		case 'd': dst = optarg; break;
		case 'b': src.bad_first = 1; break;
		case 't': limit = atof(optarg); break;
		default:
			fprintf(stderr, "usage: px_flow_source -r RUNDIR -d DST "
			    "[-b] [-t SECONDS]\n");
			return 2;
		}
	}
	if (rundir == NULL || dst == NULL || parse_dst(dst) == -1) {
		fprintf(stderr, "px_flow_source: -r RUNDIR and -d ADDR:PORT needed\n");
		return 2;
	}
	log_init("px_flow_source", 1, LOG_LEVEL_WARN);
	snprintf(path, sizeof(path), "%s/flow.sock", rundir);
	/* proxyd may still be starting. */
	for (i = 0; (fd = ipc_connect_path(path)) == -1 && i < 100; i++)
		usleep(50000);
	if (fd == -1)
		fatal("connecting to %s", path);
	src.loop = ev_default_loop(EVFLAG_AUTO);
	if ((src.peer = ipc_peer_new(src.loop, fd, 1, &cfg)) == NULL)
		fatalx("ipc_peer_new");
	ev_timer_init(&timer, give_up, limit, 0);
	ev_timer_start(src.loop, &timer);
	ev_run(src.loop, 0);
	return src.exit_code;
}
