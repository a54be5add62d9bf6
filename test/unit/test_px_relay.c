/*
 * Unit tests for proxyd's raw relay (proxyd/relay.c), flow records
 * (proxyd/flow.c) and flow intake (proxyd/intake.c), loopback only.
 *
 * The relay runs on a private libev loop in the test's thread.  The
 * application is a thread doing blocking/poll I/O on its end of the flow
 * socket (a socketpair like netstackd's, or a loopback TCP pair when a test
 * needs to see a real reset); the upstream is a thread serving one
 * connection on 127.0.0.1 or ::1 in a scripted way.  Every test ends with
 * no flow running, no fd left open and (under SANITIZE=1) no leak.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <cmocka.h>

#include "ipc.h"
#include "log.h"
#include "proxyd/flow.h"
#include "proxyd/hostmatch.h"
#include "proxyd/intake.h"
#include "proxyd/relay.h"
#include "proxyd/membudget.h"
#include "proxyd/store.h"

#include <sqlite3.h>

#include "test/unit/data/px_client_hellos.h"
#include "test/unit/data/px_quic_vectors.h"

#define TEST_BUFSIZE	(64 * 1024)
#define SOURCE		((const void *)0x5043)	/* any non-NULL identity */

/* --- fixture ------------------------------------------------------------------ */

struct fixture {
	struct ev_loop		*loop;
	struct relay		*relay;
	struct relay_config	 cfg;
	int			 fds_at_start;
};

static int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static int
setup(void **state)
{
	struct fixture *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	t->fds_at_start = count_fds();
	t->loop = ev_loop_new(EVFLAG_AUTO);
	assert_non_null(t->loop);
	relay_config_default(&t->cfg);
	t->cfg.bufsize = TEST_BUFSIZE;
	t->cfg.connect_timeout = 2;
	t->cfg.ring_size = 8;
	t->relay = relay_new(t->loop, &t->cfg);
	assert_non_null(t->relay);
	*state = t;
	return 0;
}

static void
restart_relay(struct fixture *t)
{
	relay_free(t->relay);
	t->relay = relay_new(t->loop, &t->cfg);
	assert_non_null(t->relay);
}

static int
teardown(void **state)
{
	struct fixture *t = *state;

	/* Nothing may still run once a test is over. */
	assert_int_equal(relay_stats(t->relay)->flows_active, 0);
	assert_int_equal(relay_stats(t->relay)->buffered, 0);
	relay_free(t->relay);
	ev_loop_destroy(t->loop);
	assert_int_equal(count_fds(), t->fds_at_start);
	free(t);
	return 0;
}

static void
tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run the loop until cond(arg) holds; fail after limit seconds. */
static void
run_until(struct fixture *t, int (*cond)(struct fixture *, void *), void *arg,
    double limit)
{
	ev_timer w;
	double end = now_s() + limit;

	ev_timer_init(&w, tick, 0.005, 0.005);
	ev_timer_start(t->loop, &w);
	while (!cond(t, arg)) {
		if (now_s() > end) {
			ev_timer_stop(t->loop, &w);
			fail_msg("condition not reached in %.1f s", limit);
		}
		ev_run(t->loop, EVRUN_ONCE);
	}
	ev_timer_stop(t->loop, &w);
}

static void
run_for(struct fixture *t, double secs)
{
	double end = now_s() + secs;
	ev_timer w;

	ev_timer_init(&w, tick, 0.005, 0.005);
	ev_timer_start(t->loop, &w);
	while (now_s() < end)
		ev_run(t->loop, EVRUN_ONCE);
	ev_timer_stop(t->loop, &w);
}

static int
no_flows(struct fixture *t, void *arg)
{
	(void)arg;
	return relay_stats(t->relay)->flows_active == 0;
}

static struct flow_meta
mkmeta(enum flow_transport tr, int family, uint16_t port)
{
	struct flow_meta m;

	memset(&m, 0, sizeof(m));
	m.transport = tr;
	m.source_flow_id = 7;
	m.src.family = m.dst.family = (sa_family_t)family;
	if (family == AF_INET) {
		memcpy(m.src.addr, "\x7f\x00\x00\x01", 4);
		memcpy(m.dst.addr, "\x7f\x00\x00\x01", 4);
	} else {
		m.src.addr[15] = 1;
		m.dst.addr[15] = 1;
	}
	m.src.port = 40000;
	m.dst.port = port;
	m.owner.pid = 4242;
	snprintf(m.owner.process, sizeof(m.owner.process), "%s", "testapp");
	snprintf(m.owner.cgroup, sizeof(m.owner.cgroup), "%s", "/test.slice");
	return m;
}

static const struct flow_record *
last_record(struct fixture *t)
{
	const struct flow_ring *ring = relay_ring(t->relay);

	assert_true(ring->count > 0);
	return flow_ring_get(ring, ring->count - 1);
}

/* Deterministic content, so 8 MiB can be checked byte for byte. */
static uint8_t *
pattern(size_t len, unsigned seed)
{
	uint8_t *p = malloc(len);
	uint32_t x = 2463534242u ^ seed;
	size_t i;

	assert_non_null(p);
	for (i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
	return p;
}

/* --- upstream servers ----------------------------------------------------------- */

enum srv_mode {
	SRV_ECHO,		/* echo until EOF, then close */
	SRV_RESPOND_AFTER_EOF,	/* read until EOF, then answer and close */
	SRV_GREET_HALFCLOSE,	/* greet, shutdown(WR), read until EOF */
	SRV_RESET_MID,		/* read reset_after bytes, send, then RST */
	SRV_READ_ALL,		/* after pause seconds, read until EOF/error */
	SRV_SEND,		/* send send_len bytes of send_buf, then close */
	SRV_H2C,		/* send_buf (SETTINGS) at once, then answer
				 * HTTP/2 requests (h2c_origin) */
};

struct server {
	int		 lfd;
	uint16_t	 port;
	enum srv_mode	 mode;
	double		 pause;
	size_t		 reset_after;
	const uint8_t	*send_buf;
	size_t		 send_len;
	pthread_t	 th;
	atomic_int	 done;
	/* What it saw. */
	uint8_t		*got;
	size_t		 gotcap;
	size_t		 gotlen;
	int		 read_err;	/* errno of a failed read, 0 if EOF */
	int		 saw_eof;
};

static int
listen_on(int family, int type, uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_loopback;
		len = sizeof(*sin6);
	}
	fd = socket(family, type | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(fd, (struct sockaddr *)&ss, len), 0);
	if (type == SOCK_STREAM)
		assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	*port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port :
	    ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

static int
write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void
server_keep(struct server *s, const uint8_t *buf, size_t n)
{
	if (s->gotlen < s->gotcap) {
		size_t k = n < s->gotcap - s->gotlen ? n : s->gotcap - s->gotlen;

		memcpy(s->got + s->gotlen, buf, k);
	}
	s->gotlen += n;
}

/* Read until EOF (saw_eof) or an error (read_err). */
static void
server_drain(struct server *s, int fd)
{
	uint8_t buf[65536];
	ssize_t n;

	for (;;) {
		n = recv(fd, buf, sizeof(buf), 0);
		if (n > 0) {
			server_keep(s, buf, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			s->saw_eof = 1;
		else
			s->read_err = errno;
		return;
	}
}

/* Read exactly n bytes, waiting 5 s at most for each part.  0 or -1. */
static int
read_full(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;
	ssize_t k;

	while (n > 0) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };

		if (poll(&pf, 1, 5000) != 1)
			return -1;
		if ((k = recv(fd, p, n, 0)) <= 0) {
			if (k < 0 && errno == EINTR)
				continue;
			return -1;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

#define H2_PREFACE_STR	"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

/*
 * A prior-knowledge h2c origin, as nghttpd behaves: its SETTINGS (send_buf)
 * as soon as it accepts, before the client's preface; then, for each
 * request (a HEADERS frame that ends its stream), SETTINGS ACK, ":status:
 * 200" and DATA "hello", until EOF.  Keeps the preface it got.
 */
static void
h2c_origin(struct server *s, int fd)
{
	uint8_t pre[24], h[9], pl[16384], out[64];
	size_t len, o;

	(void)write_all(fd, s->send_buf, s->send_len);
	if (read_full(fd, pre, sizeof(pre)) == -1)
		return;
	server_keep(s, pre, sizeof(pre));
	for (;;) {
		if (read_full(fd, h, sizeof(h)) == -1)
			break;
		len = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
		if (len > sizeof(pl) || (len > 0 && read_full(fd, pl, len) == -1))
			break;
		if (h[3] != 0x1 || !(h[4] & 0x1))	/* HEADERS, END_STREAM */
			continue;
		o = 0;
		memcpy(out + o, "\0\0\0\x04\x01\0\0\0\0", 9);	/* SETTINGS ACK */
		o += 9;
		memcpy(out + o, "\0\0\x01\x01\x04", 5);	/* HEADERS, END_HEADERS */
		memcpy(out + o + 5, h + 5, 4);
		out[o + 9] = 0x88;				/* :status: 200 */
		o += 10;
		memcpy(out + o, "\0\0\x05\0\x01", 5);	/* DATA, END_STREAM */
		memcpy(out + o + 5, h + 5, 4);
		memcpy(out + o + 9, "hello", 5);
		o += 14;
		if (write_all(fd, out, o) == -1)
			break;
	}
	s->saw_eof = 1;
}

static void *
server_main(void *arg)
{
	struct server *s = arg;
	struct linger lg = { 1, 0 };
	uint8_t buf[65536];
	ssize_t n;
	int fd;

	fd = accept(s->lfd, NULL, NULL);
	if (fd < 0)
		goto out;
	switch (s->mode) {
	case SRV_ECHO:
		while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) {
			server_keep(s, buf, (size_t)n);
			if (write_all(fd, buf, (size_t)n) == -1)
				break;
		}
		if (n == 0)
			s->saw_eof = 1;
		else if (n < 0)
			s->read_err = errno;
		break;
	case SRV_RESPOND_AFTER_EOF:
		server_drain(s, fd);
		(void)write_all(fd, "response after your EOF", 23);
		break;
	case SRV_GREET_HALFCLOSE:
		(void)write_all(fd, "greeting, then my EOF", 21);
		shutdown(fd, SHUT_WR);
		server_drain(s, fd);
		break;
	case SRV_RESET_MID:
		while (s->gotlen < s->reset_after &&
		    (n = recv(fd, buf, sizeof(buf), 0)) > 0)
			server_keep(s, buf, (size_t)n);
		(void)write_all(fd, "partial", 7);
		usleep(50000);	/* let "partial" reach the app first */
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		break;
	case SRV_READ_ALL:
		usleep((useconds_t)(s->pause * 1e6));
		server_drain(s, fd);
		break;
	case SRV_SEND:
		(void)write_all(fd, s->send_buf, s->send_len);
		shutdown(fd, SHUT_WR);
		server_drain(s, fd);
		break;
	case SRV_H2C:
		h2c_origin(s, fd);
		break;
	}
	close(fd);
out:
	atomic_store(&s->done, 1);
	return NULL;
}

static void
server_start(struct server *s, int family, enum srv_mode mode, size_t gotcap)
{
	s->lfd = listen_on(family, SOCK_STREAM, &s->port);
	s->mode = mode;
	s->gotcap = gotcap;
	s->got = gotcap ? malloc(gotcap) : NULL;
	atomic_init(&s->done, 0);
	assert_int_equal(pthread_create(&s->th, NULL, server_main, s), 0);
}

static void
server_stop(struct server *s)
{
	shutdown(s->lfd, SHUT_RDWR);	/* wakes an accept() that got nothing */
	pthread_join(s->th, NULL);
	close(s->lfd);
	free(s->got);
}

/* --- the application ----------------------------------------------------------- */

struct app {
	int		 fd;
	const uint8_t	*out;
	size_t		 outlen;
	int		 shut_after_send;	/* shutdown(SHUT_WR) when sent */
	int		 reset_after_send;	/* close with RST when sent */
	int		 read_first;		/* read until EOF, then send */
	double		 read_pause;		/* seconds before reading at all */
	pthread_t	 th;
	atomic_int	 done;
	atomic_size_t	 sent;
	/* What it saw. */
	uint8_t		*in;
	size_t		 incap;
	size_t		 inlen;
	int		 read_err;
	int		 saw_eof;
	int		 oob_marker;		/* got the reset marker */
};

static void
app_keep(struct app *a, const uint8_t *buf, size_t n)
{
	if (a->inlen < a->incap) {
		size_t k = n < a->incap - a->inlen ? n : a->incap - a->inlen;

		memcpy(a->in + a->inlen, buf, k);
	}
	a->inlen += n;
}

static void *
app_main(void *arg)
{
	struct app *a = arg;
	struct linger lg = { 1, 0 };
	uint8_t buf[65536];
	size_t off = 0;
	int reading = 1, writing = !a->read_first;
	ssize_t n;

	if (a->read_pause > 0)
		usleep((useconds_t)(a->read_pause * 1e6));
	while (reading || writing) {
		struct pollfd p = { .fd = a->fd, .events = 0 };

		if (reading)
			p.events |= POLLIN | POLLPRI;
		if (writing)
			p.events |= POLLOUT;
		if (poll(&p, 1, 10000) <= 0)
			break;
		if (p.revents & POLLPRI) {
			char c;

			if (recv(a->fd, &c, 1, MSG_OOB) == 1 && c == 'R')
				a->oob_marker = 1;
		}
		if (writing && (p.revents & (POLLOUT | POLLERR | POLLHUP))) {
			size_t chunk = a->outlen - off > 65536 ? 65536 :
			    a->outlen - off;

			n = chunk ? send(a->fd, a->out + off, chunk,
			    MSG_NOSIGNAL | MSG_DONTWAIT) : 0;
			if (n < 0 && errno != EAGAIN) {
				writing = 0;
			} else if (n > 0) {
				off += (size_t)n;
				atomic_store(&a->sent, off);
			}
			if (off == a->outlen) {
				writing = 0;
				if (a->reset_after_send) {
					setsockopt(a->fd, SOL_SOCKET, SO_LINGER,
					    &lg, sizeof(lg));
					close(a->fd);
					a->fd = -1;
					break;
				}
				if (a->shut_after_send)
					shutdown(a->fd, SHUT_WR);
			}
		}
		if (reading && (p.revents & (POLLIN | POLLERR | POLLHUP))) {
			n = recv(a->fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (n > 0)
				app_keep(a, buf, (size_t)n);
			else if (n == 0 || errno != EAGAIN) {
				if (n == 0)
					a->saw_eof = 1;
				else
					a->read_err = errno;
				reading = 0;
				if (a->read_first && n == 0)
					writing = 1;
			}
		}
	}
	/* A reset marker may come last, after the data. */
	if (a->fd != -1 && !a->oob_marker) {
		char c;

		if (recv(a->fd, &c, 1, MSG_OOB | MSG_DONTWAIT) == 1 && c == 'R')
			a->oob_marker = 1;
	}
	atomic_store(&a->done, 1);
	return NULL;
}

static void
app_start(struct app *a, int fd, size_t incap)
{
	a->fd = fd;
	a->incap = incap;
	a->in = incap ? malloc(incap) : NULL;
	atomic_init(&a->done, 0);
	atomic_init(&a->sent, 0);
	assert_int_equal(pthread_create(&a->th, NULL, app_main, a), 0);
}

static void
app_finish(struct app *a)
{
	pthread_join(a->th, NULL);
	if (a->fd != -1)
		close(a->fd);
	free(a->in);
}

/* A flow socket like netstackd's: fds[0] the app's, fds[1] the relay's. */
static void
flow_socketpair(int type, int fds[2])
{
	assert_int_equal(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds), 0);
}

/* A loopback TCP connection: fds[0] the app's, fds[1] the relay's. */
static void
flow_tcp_pair(int fds[2])
{
	uint16_t port;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int lfd = listen_on(AF_INET, SOCK_STREAM, &port);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(port);
	fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(fds[0], (struct sockaddr *)&sin, sizeof(sin)), 0);
	fds[1] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(fds[1] >= 0);
	close(lfd);
}

struct both {
	struct app	*app;
	struct server	*srv;
};

static int
all_done(struct fixture *t, void *arg)
{
	struct both *b = arg;

	return atomic_load(&b->app->done) &&
	    (b->srv == NULL || atomic_load(&b->srv->done)) &&
	    relay_stats(t->relay)->flows_active == 0;
}

static uint64_t
start_tcp(struct fixture *t, int family, uint16_t port, int relay_fd)
{
	struct flow_meta m = mkmeta(FLOW_TCP, family, port);
	uint64_t id = relay_start(t->relay, SOURCE, &m, relay_fd);

	assert_true(id != 0);
	return id;
}

/* --- TCP ------------------------------------------------------------------------ */

static void
tcp_echo(struct fixture *t, int family)
{
	static const char req[] = "hello through the relay";
	struct server srv = { 0 };
	struct app app = { 0 };
	struct both b = { &app, &srv };
	const struct flow_record *rec;
	int fds[2];

	server_start(&srv, family, SRV_ECHO, 1024);
	flow_socketpair(SOCK_STREAM, fds);
	app.out = (const uint8_t *)req;
	app.outlen = sizeof(req) - 1;
	app.shut_after_send = 1;
	app_start(&app, fds[0], 1024);
	start_tcp(t, family, srv.port, fds[1]);
	run_until(t, all_done, &b, 10);

	assert_int_equal(app.inlen, sizeof(req) - 1);
	assert_memory_equal(app.in, req, sizeof(req) - 1);
	assert_true(app.saw_eof);
	assert_false(app.oob_marker);
	assert_true(srv.saw_eof);
	rec = last_record(t);
	assert_int_equal(rec->end, FLOW_END_CLOSED);
	assert_int_equal(rec->error, 0);
	assert_int_equal(rec->bytes_from_app, sizeof(req) - 1);
	assert_int_equal(rec->bytes_to_app, sizeof(req) - 1);
	assert_int_equal(rec->first_from_app_len, sizeof(req) - 1);
	assert_memory_equal(rec->first_from_app, req, sizeof(req) - 1);
	assert_memory_equal(rec->first_to_app, req, sizeof(req) - 1);
	assert_string_equal(rec->meta.owner.process, "testapp");
	assert_true(rec->end_us >= rec->meta.start_us);
	app_finish(&app);
	server_stop(&srv);
}

static void
tcp_echo_ipv4(void **state)
{
	tcp_echo(*state, AF_INET);
}

static void
tcp_echo_ipv6(void **state)
{
	tcp_echo(*state, AF_INET6);
}

static void
tcp_8mib_both_ways_intact(void **state)
{
	struct fixture *t = *state;
	const size_t len = 8u << 20;
	struct server srv = { 0 };
	struct app app = { 0 };
	struct both b = { &app, &srv };
	uint8_t *data = pattern(len, 1);
	const struct flow_record *rec;
	int fds[2];

	server_start(&srv, AF_INET, SRV_ECHO, len);
	flow_socketpair(SOCK_STREAM, fds);
	app.out = data;
	app.outlen = len;
	app.shut_after_send = 1;
	app_start(&app, fds[0], len);
	start_tcp(t, AF_INET, srv.port, fds[1]);
	run_until(t, all_done, &b, 60);

	assert_int_equal(srv.gotlen, len);
	assert_memory_equal(srv.got, data, len);
	assert_int_equal(app.inlen, len);
	assert_memory_equal(app.in, data, len);
	rec = last_record(t);
	assert_int_equal(rec->end, FLOW_END_CLOSED);
	assert_int_equal(rec->bytes_from_app, len);
	assert_int_equal(rec->bytes_to_app, len);
	/* First bytes are capped, and are the first ones. */
	assert_int_equal(rec->first_from_app_len, FLOW_FIRST_BYTES);
	assert_memory_equal(rec->first_from_app, data, FLOW_FIRST_BYTES);
	assert_memory_equal(rec->first_to_app, data, FLOW_FIRST_BYTES);
	assert_true(relay_stats(t->relay)->buffer_high_water <= TEST_BUFSIZE);
	/* By default only server -> Unix app is spliced (relay.h). */
	assert_int_equal(relay_stats(t->relay)->splice_dirs,
	    t->cfg.splice == RELAY_SPLICE_AUTO ? 1 : 0);
	app_finish(&app);
	server_stop(&srv);
	free(data);
}

/*
 * A flow over max_flows_per_addr is refused: its socket reset, recorded as
 * "refused" with the cap it hit; the flow already running is untouched,
 * and once it is over the address may start flows again.
 */
static void
tcp_flow_cap_refuses_and_records(void **state)
{
	struct fixture *t = *state;
	static const char req[] = "under the cap";
	struct server srv = { 0 };
	struct app app = { 0 }, over = { 0 };
	struct both b = { &app, &srv }, bo = { &over, NULL };
	struct flow_meta m;
	const struct flow_record *rec;
	int fds[2], ofds[2];

	t->cfg.max_flows_per_addr = 1;
	restart_relay(t);
	server_start(&srv, AF_INET, SRV_ECHO, 1024);
	flow_socketpair(SOCK_STREAM, fds);
	app.out = (const uint8_t *)req;
	app.outlen = sizeof(req) - 1;
	app.shut_after_send = 1;
	app_start(&app, fds[0], 1024);
	start_tcp(t, AF_INET, srv.port, fds[1]);

	flow_tcp_pair(ofds);
	app_start(&over, ofds[0], 16);
	m = mkmeta(FLOW_TCP, AF_INET, srv.port);
	assert_int_equal(relay_start(t->relay, SOURCE, &m, ofds[1]), 0);
	rec = last_record(t);
	assert_int_equal(rec->end, FLOW_END_REFUSED);
	assert_int_equal(relay_stats(t->relay)->flows_over_cap, 1);
	assert_int_equal(relay_stats(t->relay)->flows_refused, 1);
	run_until(t, all_done, &bo, 10);
	assert_int_equal(over.read_err, ECONNRESET);

	run_until(t, all_done, &b, 10);
	assert_int_equal(app.inlen, sizeof(req) - 1);
	assert_int_equal(last_record(t)->end, FLOW_END_CLOSED);
	app_finish(&app);
	app_finish(&over);
	server_stop(&srv);
	/* The running flow ended: the address may start one again. */
	memset(&app, 0, sizeof(app));
	memset(&srv, 0, sizeof(srv));
	server_start(&srv, AF_INET, SRV_ECHO, 1024);
	flow_socketpair(SOCK_STREAM, fds);
	app.out = (const uint8_t *)req;
	app.outlen = sizeof(req) - 1;
	app.shut_after_send = 1;
	app_start(&app, fds[0], 1024);
	start_tcp(t, AF_INET, srv.port, fds[1]);
	run_until(t, all_done, &b, 10);
	assert_int_equal(last_record(t)->end, FLOW_END_CLOSED);
	app_finish(&app);
	server_stop(&srv);
}

/*
 * With the memory budget spent, ring buffers come small: the flow slows
 * down, its bytes arrive intact, and the budget is whole again after.
 */
static void
tcp_memory_budget_small_rings(void **state)
{
	struct fixture *t = *state;
	const size_t len = 4u << 20;
	struct server srv = { 0 };
	struct app app = { 0 };
	struct both b = { &app, &srv };
	struct membudget budget;
	uint8_t *data = pattern(len, 7);
	int fds_for_budget[2];

	membudget_init(&budget, 64 * 1024);	/* 32 KiB: less than a ring */
	t->cfg.budget = &budget;
	restart_relay(t);
	server_start(&srv, AF_INET, SRV_ECHO, len);
	flow_socketpair(SOCK_STREAM, fds_for_budget);
	app.out = data;
	app.outlen = len;
	app.shut_after_send = 1;
	app_start(&app, fds_for_budget[0], len);
	start_tcp(t, AF_INET, srv.port, fds_for_budget[1]);
	run_until(t, all_done, &b, 60);

	assert_int_equal(srv.gotlen, len);
	assert_memory_equal(srv.got, data, len);
	assert_int_equal(app.inlen, len);
	assert_memory_equal(app.in, data, len);
	assert_int_equal(last_record(t)->end, FLOW_END_CLOSED);
	assert_true(relay_stats(t->relay)->small_rings > 0);
	assert_true(relay_stats(t->relay)->buffer_high_water <= 16 * 1024);
	assert_true(budget.refused > 0);
	assert_int_equal(budget.used, 0);
	app_finish(&app);
	server_stop(&srv);
	free(data);
	/* A relay without the budget, before it goes out of scope. */
	t->cfg.budget = NULL;
	restart_relay(t);
}

/* The app's EOF reaches the server while the server can still answer. */
static void
tcp_half_close_from_app(void **state)
{
	struct fixture *t = *state;
	struct server srv = { 0 };
	struct app app = { 0 };
	struct both b = { &app, &srv };
	int fds[2];

	server_start(&srv, AF_INET, SRV_RESPOND_AFTER_EOF, 1024);
	flow_socketpair(SOCK_STREAM, fds);
	app.out = (const uint8_t *)"request";
	app.outlen = 7;
	app.shut_after_send = 1;
	app_start(&app, fds[0], 1024);
	start_tcp(t, AF_INET, srv.port, fds[1]);
	run_until(t, all_done, &b, 10);

	assert_true(srv.saw_eof);
	assert_int_equal(srv.gotlen, 7);
	assert_int_equal(app.inlen, 23);
	assert_memory_equal(app.in, "response after your EOF", 23);
	assert_true(app.saw_eof);
	assert_int_equal(last_record(t)->end, FLOW_END_CLOSED);
	app_finish(&app);
	server_stop(&srv);
}

/* The server's EOF reaches the app while the app can still send. */
static void
tcp_half_close_from_upstream(void **state)
{
	struct fixture *t = *state;
	struct server srv = { 0 };
	struct app app = { 0 };
	struct both b = { &app, &srv };
	int fds[2];

	server_start(&srv, AF_INET, SRV_GREET_HALFCLOSE, 1024);
	flow_socketpair(SOCK_STREAM, fds);
	app.read_first = 1;
	app.out = (const uint8_t *)"sent after your EOF";
	app.outlen = 19;
	app.shut_after_send = 1;
	app_start(&app, fds[0], 1024);
	start_tcp(t, AF_INET, srv.port, fds[1]);
	run_until(t, all_done, &b, 10);

	assert_int_equal(app.inlen, 21);
	assert_memory_equal(app.in, "greeting, then my EOF", 21);
	assert_int_equal(srv.gotlen, 19);
	assert_memory_equal(srv.got, "sent after your EOF", 19);
	assert_true(srv.saw_eof);
	assert_int_equal(last_record(t)->end, FLOW_END_CLOSED);
	app_finish(&app);
	server_stop(&srv);
}

/* A port nobody listens on. */
static uint16_t
closed_port(void)
{
	uint16_t port;
	int fd = listen_on(AF_INET, SOCK_STREAM, &port);

	close(fd);
	return port;
}

/* Refused upstream: a TCP app sees a reset, not an orderly empty stream. */
static void
tcp_upstream_refused_resets_tcp_app(void **state)
{
	struct fixture *t = *state;
	struct app app = { 0 };
	struct both b = { &app, NULL };
	const struct flow_record *rec;
	int fds[2];

	flow_tcp_pair(fds);
	app_start(&app, fds[0], 1024);
	start_tcp(t, AF_INET, closed_port(), fds[1]);
	run_until(t, all_done, &b, 10);

	assert_int_equal(app.read_err, ECONNRESET);
	assert_false(app.saw_eof);
	rec = last_record(t);
	assert_int_equal(rec->end, FLOW_END_CONNECT_FAILED);
	assert_int_equal(rec->error, ECONNREFUSED);
	assert_int_equal(relay_stats(t->relay)->connect_failed, 1);
	app_finish(&app);
}

/* On a Unix flow socket the reset is the out-of-band marker. */
static void
tcp_upstream_refused_marks_unix_app(void **state)
{
	struct fixture *t = *state;
	struct app app = { 0 };
	struct both b = { &app, NULL };
	int fds[2];

	flow_socketpair(SOCK_STREAM, fds);
	app_start(&app, fds[0], 1024);
	start_tcp(t, AF_INET, closed_port(), fds[1]);
	run_until(t, all_done, &b, 10);

	assert_true(app.oob_marker);
	assert_int_equal(app.inlen, 0);
	assert_int_equal(last_record(t)->end, FLOW_END_CONNECT_FAILED);
	app_finish(&app);
}

static void
tcp_upstream_reset_mid_stream(void **state)
{
	struct fixture *t = *state;
	struct server srv = { 0 };
	struct app app = { 0 };
	struct both b = { &app, &srv };
	const struct flow_record *rec;
	int fds[2];

	server_start(&srv, AF_INET, SRV_RESET_MID, 1024);
	srv.reset_after = 5;
	flow_tcp_pair(fds);
	app.out = (const uint8_t *)"12345";
	app.outlen = 5;
	app_start(&app, fds[0], 1024);
	start_tcp(t, AF_INET, srv.port, fds[1]);
	run_until(t, all_done, &b, 10);

	/* What came before the reset arrived; then the reset itself. */
	assert_int_equal(app.inlen, 7);
	assert_memory_equal(app.in, "partial", 7);
	assert_int_equal(app.read_err, ECONNRESET);
	rec = last_record(t);
	assert_int_equal(rec->end, FLOW_END_UPSTREAM_RESET);
	assert_int_equal(rec->error, ECONNRESET);
	assert_int_equal(rec->bytes_to_app, 7);
	app_finish(&app);
	server_stop(&srv);
}

static void
tcp_app_reset_resets_upstream(void **state)
{
	struct fixture *t = *state;
	struct server srv = { 0 };
	struct app app = { 0 };
	struct both b = { &app, &srv };
	int fds[2];

	server_start(&srv, AF_INET, SRV_READ_ALL, 1024);
	flow_tcp_pair(fds);
	app.out = (const uint8_t *)"abc";
	app.outlen = 3;
	app.reset_after_send = 1;
	app_start(&app, fds[0], 0);
	start_tcp(t, AF_INET, srv.port, fds[1]);
	run_until(t, all_done, &b, 10);

	assert_int_equal(srv.read_err, ECONNRESET);
	assert_false(srv.saw_eof);
	assert_int_equal(last_record(t)->end, FLOW_END_APP_RESET);
	assert_int_equal(relay_stats(t->relay)->resets_from_app, 1);
	app_finish(&app);
	server_stop(&srv);
}

/* netstackd says the app reset (FlowClosed): the server sees a reset. */
static void
tcp_flow_closed_rst_resets_upstream(void **state)
{
	struct fixture *t = *state;
	struct server srv = { 0 };
	int fds[2];
	uint64_t id;

	server_start(&srv, AF_INET, SRV_READ_ALL, 1024);
	flow_socketpair(SOCK_STREAM, fds);
	id = start_tcp(t, AF_INET, srv.port, fds[1]);
	assert_int_equal(write(fds[0], "xyz", 3), 3);
	run_for(t, 0.1);
	assert_non_null(relay_flow_record(t->relay, id));
	/* Another source's flow 7 is not this one. */
	relay_source_flow_closed(t->relay, (const void *)0x1, 7,
	    "reset by the application", NULL);
	assert_non_null(relay_flow_record(t->relay, id));
	/* An orderly end is left to the socket's own EOF. */
	relay_source_flow_closed(t->relay, SOURCE, 7, "closed", NULL);
	relay_source_flow_closed(t->relay, SOURCE, 7, "fin", NULL);
	assert_non_null(relay_flow_record(t->relay, id));
	/* netstackd's wording for an application's RST. */
	relay_source_flow_closed(t->relay, SOURCE, 7,
	    "reset by the application", NULL);
	assert_null(relay_flow_record(t->relay, id));
	pthread_join(srv.th, NULL);
	assert_int_equal(srv.gotlen, 3);
	assert_int_equal(srv.read_err, ECONNRESET);
	assert_int_equal(last_record(t)->end, FLOW_END_APP_RESET);
	assert_string_equal(last_record(t)->source_reason,
	    "reset by the application");
	close(fds[0]);
	close(srv.lfd);
	free(srv.got);
}

struct slow {
	struct app	*app;
	struct server	*srv;
	size_t		 max_buffered;
};

static int
slow_done(struct fixture *t, void *arg)
{
	struct slow *s = arg;
	const struct relay_stats *st = relay_stats(t->relay);

	if (st->buffered > s->max_buffered)
		s->max_buffered = st->buffered;
	return atomic_load(&s->app->done) && atomic_load(&s->srv->done) &&
	    st->flows_active == 0;
}

/*
 * A server that does not read stalls the app: the relay holds at most its
 * buffer, the app's writes block, and everything arrives once it reads.
 */
static void
tcp_slow_reader_pauses_writer(void **state)
{
	struct fixture *t = *state;
	const size_t len = 48u << 20;
	struct server srv = { 0 };
	struct app app = { 0 };
	struct slow s = { &app, &srv, 0 };
	uint8_t *data = pattern(len, 2);
	int fds[2];

	server_start(&srv, AF_INET, SRV_READ_ALL, len);
	srv.pause = 0.5;
	flow_socketpair(SOCK_STREAM, fds);
	app.out = data;
	app.outlen = len;
	app.shut_after_send = 1;
	app_start(&app, fds[0], 0);
	start_tcp(t, AF_INET, srv.port, fds[1]);
	run_for(t, 0.3);
	/* Stalled: the app could not push it all while nobody read. */
	assert_true(atomic_load(&app.sent) < len);
	assert_true(relay_stats(t->relay)->buffered <= TEST_BUFSIZE);
	run_until(t, slow_done, &s, 60);

	assert_int_equal(srv.gotlen, len);
	assert_memory_equal(srv.got, data, len);
	assert_true(s.max_buffered <= TEST_BUFSIZE);
	assert_true(relay_stats(t->relay)->buffer_high_water <= TEST_BUFSIZE);
	assert_int_equal(last_record(t)->end, FLOW_END_CLOSED);
	app_finish(&app);
	server_stop(&srv);
	free(data);
}

/* The same the other way: an app that does not read stalls the server. */
static void
tcp_slow_app_pauses_server(void **state)
{
	struct fixture *t = *state;
	const size_t len = 48u << 20;
	struct server srv = { 0 };
	struct app app = { 0 };
	struct slow s = { &app, &srv, 0 };
	uint8_t *data = pattern(len, 3);
	int fds[2];

	srv.send_buf = data;
	srv.send_len = len;
	server_start(&srv, AF_INET6, SRV_SEND, 0);
	flow_socketpair(SOCK_STREAM, fds);
	app.read_pause = 0.5;
	app.shut_after_send = 1;	/* nothing to send: EOF at once */
	app_start(&app, fds[0], len);
	start_tcp(t, AF_INET6, srv.port, fds[1]);
	run_for(t, 0.3);
	/* Stalled: nobody reads, so the server could not send it all. */
	assert_false(atomic_load(&srv.done));
	assert_true(relay_stats(t->relay)->buffered <= TEST_BUFSIZE);
	run_until(t, slow_done, &s, 60);

	assert_int_equal(app.inlen, len);
	assert_memory_equal(app.in, data, len);
	assert_true(app.saw_eof);
	assert_true(s.max_buffered <= TEST_BUFSIZE);
	assert_true(relay_stats(t->relay)->buffer_high_water <= TEST_BUFSIZE);
	assert_int_equal(last_record(t)->bytes_to_app, len);
	assert_int_equal(last_record(t)->end, FLOW_END_CLOSED);
	/* A download to a Unix app: through a pipe, as bounded. */
	assert_int_equal(relay_stats(t->relay)->splice_dirs, 1);
	app_finish(&app);
	server_stop(&srv);
	free(data);
}

/*
 * A listener whose accept queue is full drops SYNs, so a connect to it
 * hangs: the connect timeout ends the flow and the app is told.
 */
static void
tcp_connect_timeout(void **state)
{
	struct fixture *t = *state;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct app app = { 0 };
	struct both b = { &app, NULL };
	const struct flow_record *rec;
	uint16_t port;
	int lfd, fillers[4], i, fds[2];
	double t0;

	t->cfg.connect_timeout = 0.3;
	restart_relay(t);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lfd, 0), 0);
	{
		socklen_t l = sizeof(sin);

		assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &l), 0);
		port = ntohs(sin.sin_port);
	}
	/* Fill the accept queue (never accepted). */
	for (i = 0; i < 4; i++) {
		fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		(void)connect(fillers[i], (struct sockaddr *)&sin, sizeof(sin));
	}
	usleep(50000);

	flow_socketpair(SOCK_STREAM, fds);
	app_start(&app, fds[0], 16);
	t0 = now_s();
	start_tcp(t, AF_INET, port, fds[1]);
	run_until(t, all_done, &b, 10);

	rec = last_record(t);
	assert_int_equal(rec->end, FLOW_END_CONNECT_TIMEOUT);
	assert_int_equal(rec->error, ETIMEDOUT);
	assert_true(now_s() - t0 >= 0.25);
	assert_true(now_s() - t0 < 3);
	assert_true(app.oob_marker);
	assert_int_equal(relay_stats(t->relay)->connect_timeouts, 1);
	app_finish(&app);
	for (i = 0; i < 4; i++)
		close(fillers[i]);
	close(lfd);
}

/* An idle TCP flow is reset on both sides when the idle timeout is set. */
static void
tcp_idle_timeout_resets_both(void **state)
{
	struct fixture *t = *state;
	struct server srv = { 0 };
	struct app app = { 0 };
	struct both b = { &app, &srv };
	int fds[2];

	t->cfg.tcp_idle_timeout = 0.2;
	restart_relay(t);
	server_start(&srv, AF_INET, SRV_READ_ALL, 64);
	flow_tcp_pair(fds);
	app_start(&app, fds[0], 16);
	start_tcp(t, AF_INET, srv.port, fds[1]);
	run_until(t, all_done, &b, 10);

	assert_int_equal(last_record(t)->end, FLOW_END_IDLE);
	assert_int_equal(app.read_err, ECONNRESET);
	assert_int_equal(srv.read_err, ECONNRESET);
	app_finish(&app);
	server_stop(&srv);
}

/* proxyd stopping resets what runs rather than closing it cleanly. */
static void
tcp_relay_free_resets_running_flows(void **state)
{
	struct fixture *t = *state;
	struct server srv = { 0 };
	int fds[2];
	char c;

	server_start(&srv, AF_INET, SRV_READ_ALL, 64);
	flow_socketpair(SOCK_STREAM, fds);
	start_tcp(t, AF_INET, srv.port, fds[1]);
	run_for(t, 0.1);
	relay_free(t->relay);
	t->relay = relay_new(t->loop, &t->cfg);
	pthread_join(srv.th, NULL);
	assert_int_equal(srv.read_err, ECONNRESET);
	assert_int_equal(recv(fds[0], &c, 1, MSG_OOB), 1);
	assert_int_equal(c, 'R');
	close(fds[0]);
	close(srv.lfd);
	free(srv.got);
}

/* --- splice(2) ------------------------------------------------------------------- */

/* Splice every direction that qualifies, from its first bytes on. */
static void
splice_all(struct fixture *t)
{
	t->cfg.splice = RELAY_SPLICE_ALL;
	t->cfg.splice_after = 0;
	restart_relay(t);
}

/*
 * len bytes each way through an echo server, the app on a socketpair or
 * on TCP, with every direction spliced: intact, counted, first bytes kept.
 */
static void
splice_echo(struct fixture *t, int tcp_app, size_t len)
{
	struct server srv = { 0 };
	struct app app = { 0 };
	struct both b = { &app, &srv };
	uint8_t *data = pattern(len, 11);
	const struct flow_record *rec;
	const struct relay_stats *st;
	int fds[2];

	splice_all(t);
	server_start(&srv, AF_INET, SRV_ECHO, len);
	if (tcp_app)
		flow_tcp_pair(fds);
	else
		flow_socketpair(SOCK_STREAM, fds);
	app.out = data;
	app.outlen = len;
	app.shut_after_send = 1;
	app_start(&app, fds[0], len);
	start_tcp(t, AF_INET, srv.port, fds[1]);
	run_until(t, all_done, &b, 60);

	assert_int_equal(srv.gotlen, len);
	assert_memory_equal(srv.got, data, len);
	assert_int_equal(app.inlen, len);
	assert_memory_equal(app.in, data, len);
	assert_true(app.saw_eof);
	assert_true(srv.saw_eof);
	rec = last_record(t);
	st = relay_stats(t->relay);
	assert_int_equal(rec->end, FLOW_END_CLOSED);
	assert_int_equal(rec->bytes_from_app, len);
	assert_int_equal(rec->bytes_to_app, len);
	assert_int_equal(st->bytes_from_app, len);
	assert_int_equal(st->bytes_to_app, len);
	assert_int_equal(rec->first_from_app_len, FLOW_FIRST_BYTES);
	assert_int_equal(rec->first_to_app_len, FLOW_FIRST_BYTES);
	assert_memory_equal(rec->first_from_app, data, FLOW_FIRST_BYTES);
	assert_memory_equal(rec->first_to_app, data, FLOW_FIRST_BYTES);
	/*
	 * Both ways went through pipes, all but what the ring held before
	 * the switch (at most one buffer each way: reading stops while it
	 * drains).
	 */
	assert_int_equal(st->splice_dirs, 2);
	assert_int_equal(st->splice_fallbacks, 0);
	assert_true(st->bytes_spliced >= 2 * len - 2 * TEST_BUFSIZE);
	assert_true(st->bytes_spliced <= 2 * len);
	assert_true(st->buffer_high_water <= TEST_BUFSIZE);
	app_finish(&app);
	server_stop(&srv);
	free(data);
}

static void
splice_unix_app_both_ways(void **state)
{
	splice_echo(*state, 0, 8u << 20);
}

static void
splice_tcp_app_both_ways(void **state)
{
	splice_echo(*state, 1, 8u << 20);
}

/* The default splices only server -> Unix app, and not short flows. */
static void
splice_auto_only_tcp_to_unix(void **state)
{
	struct fixture *t = *state;
	const size_t len = 4u << 20;
	struct server srv = { 0 };
	struct app app = { 0 };
	struct both b = { &app, &srv };
	uint8_t *data = pattern(len, 12);
	const struct relay_stats *st;
	int fds[2];

	assert_int_equal(t->cfg.splice, RELAY_SPLICE_AUTO);
	server_start(&srv, AF_INET, SRV_ECHO, len);
	flow_socketpair(SOCK_STREAM, fds);
	app.out = data;
	app.outlen = len;
	app.shut_after_send = 1;
	app_start(&app, fds[0], len);
	start_tcp(t, AF_INET, srv.port, fds[1]);
	run_until(t, all_done, &b, 60);
	assert_int_equal(app.inlen, len);
	assert_memory_equal(app.in, data, len);
	assert_int_equal(srv.gotlen, len);
	assert_memory_equal(srv.got, data, len);
	st = relay_stats(t->relay);
	assert_int_equal(st->splice_dirs, 1);
	/* After the first splice_after (64 KiB) bytes, the rest. */
	assert_true(st->bytes_spliced >= len - 64 * 1024 - TEST_BUFSIZE);
	assert_true(st->bytes_spliced <= len);
	app_finish(&app);
	server_stop(&srv);

	/* A short exchange pays for no pipe. */
	tcp_echo(t, AF_INET);
	assert_int_equal(relay_stats(t->relay)->splice_dirs, 1);
	free(data);
}

/* The app's EOF goes through its pipe; the server still answers. */
static void
splice_half_close_from_app(void **state)
{
	struct fixture *t = *state;
	const size_t len = 2u << 20;
	struct server srv = { 0 };
	struct app app = { 0 };
	struct both b = { &app, &srv };
	uint8_t *data = pattern(len, 13);
	int fds[2];

	splice_all(t);
	server_start(&srv, AF_INET, SRV_RESPOND_AFTER_EOF, len);
	flow_socketpair(SOCK_STREAM, fds);
	app.out = data;
	app.outlen = len;
	app.shut_after_send = 1;
	app_start(&app, fds[0], 1024);
	start_tcp(t, AF_INET, srv.port, fds[1]);
	run_until(t, all_done, &b, 30);

	assert_true(srv.saw_eof);
	assert_int_equal(srv.gotlen, len);
	assert_memory_equal(srv.got, data, len);
	assert_int_equal(app.inlen, 23);
	assert_memory_equal(app.in, "response after your EOF", 23);
	assert_true(app.saw_eof);
	assert_int_equal(last_record(t)->end, FLOW_END_CLOSED);
	assert_int_equal(relay_stats(t->relay)->splice_dirs, 1);
	app_finish(&app);
	server_stop(&srv);
	free(data);
}

/* The server's EOF goes through its pipe; the app still sends after it. */
static void
splice_half_close_from_upstream(void **state)
{
	struct fixture *t = *state;
	const size_t len = 2u << 20;
	struct server srv = { 0 };
	struct app app = { 0 };
	struct both b = { &app, &srv };
	uint8_t *data = pattern(len, 14);
	int fds[2];

	splice_all(t);
	srv.send_buf = data;
	srv.send_len = len;
	server_start(&srv, AF_INET6, SRV_SEND, 1024);
	flow_socketpair(SOCK_STREAM, fds);
	app.read_first = 1;
	app.out = (const uint8_t *)"sent after your EOF";
	app.outlen = 19;
	app.shut_after_send = 1;
	app_start(&app, fds[0], len);
	start_tcp(t, AF_INET6, srv.port, fds[1]);
	run_until(t, all_done, &b, 30);

	assert_int_equal(app.inlen, len);
	assert_memory_equal(app.in, data, len);
	assert_true(app.saw_eof);
	assert_int_equal(srv.gotlen, 19);
	assert_memory_equal(srv.got, "sent after your EOF", 19);
	assert_true(srv.saw_eof);
	assert_int_equal(last_record(t)->end, FLOW_END_CLOSED);
	assert_int_equal(last_record(t)->bytes_to_app, len);
	assert_int_equal(relay_stats(t->relay)->splice_dirs, 1);
	app_finish(&app);
	server_stop(&srv);
	free(data);
}

/* The server resets while the app's bytes go through a pipe. */
static void
splice_upstream_reset(void **state)
{
	struct fixture *t = *state;
	const size_t len = 1u << 20;
	struct server srv = { 0 };
	struct app app = { 0 };
	struct both b = { &app, &srv };
	uint8_t *data = pattern(len, 15);
	const struct flow_record *rec;
	int fds[2];

	splice_all(t);
	server_start(&srv, AF_INET, SRV_RESET_MID, len);
	srv.reset_after = len;
	flow_tcp_pair(fds);
	app.out = data;
	app.outlen = len;
	app_start(&app, fds[0], 1024);
	start_tcp(t, AF_INET, srv.port, fds[1]);
	run_until(t, all_done, &b, 30);

	assert_int_equal(srv.gotlen, len);
	assert_memory_equal(srv.got, data, len);
	assert_int_equal(app.inlen, 7);
	assert_memory_equal(app.in, "partial", 7);
	assert_int_equal(app.read_err, ECONNRESET);
	rec = last_record(t);
	assert_int_equal(rec->end, FLOW_END_UPSTREAM_RESET);
	assert_int_equal(rec->bytes_from_app, len);
	assert_int_equal(relay_stats(t->relay)->splice_dirs, 1);
	app_finish(&app);
	server_stop(&srv);
	free(data);
}

/* The app resets while its bytes go through a pipe: the server is reset. */
static void
splice_app_reset(void **state)
{
	struct fixture *t = *state;
	const size_t len = 1u << 20;
	struct server srv = { 0 };
	struct app app = { 0 };
	struct both b = { &app, &srv };
	uint8_t *data = pattern(len, 16);
	int fds[2];

	splice_all(t);
	server_start(&srv, AF_INET, SRV_READ_ALL, len);
	srv.pause = 0.2;	/* the app's bytes wait in the pipe */
	flow_tcp_pair(fds);
	app.out = data;
	app.outlen = len;
	app.reset_after_send = 1;
	app_start(&app, fds[0], 0);
	start_tcp(t, AF_INET, srv.port, fds[1]);
	run_until(t, all_done, &b, 30);

	assert_int_equal(srv.read_err, ECONNRESET);
	assert_false(srv.saw_eof);
	assert_int_equal(last_record(t)->end, FLOW_END_APP_RESET);
	assert_int_equal(relay_stats(t->relay)->resets_from_app, 1);
	assert_int_equal(relay_stats(t->relay)->splice_dirs, 1);
	app_finish(&app);
	server_stop(&srv);
	free(data);
}

/* A reader that does not read stalls the writer through a pipe too. */
static void
splice_slow_reader_pauses_writer(void **state)
{
	struct fixture *t = *state;
	const size_t len = 32u << 20;
	struct server srv = { 0 };
	struct app app = { 0 };
	struct slow s = { &app, &srv, 0 };
	uint8_t *data = pattern(len, 17);
	int fds[2];

	splice_all(t);
	server_start(&srv, AF_INET, SRV_READ_ALL, len);
	srv.pause = 0.5;
	flow_socketpair(SOCK_STREAM, fds);
	app.out = data;
	app.outlen = len;
	app.shut_after_send = 1;
	app_start(&app, fds[0], 0);
	start_tcp(t, AF_INET, srv.port, fds[1]);
	run_for(t, 0.3);
	assert_true(atomic_load(&app.sent) < len);
	assert_true(relay_stats(t->relay)->buffered <= TEST_BUFSIZE);
	run_until(t, slow_done, &s, 60);

	assert_int_equal(srv.gotlen, len);
	assert_memory_equal(srv.got, data, len);
	assert_true(s.max_buffered <= TEST_BUFSIZE);
	assert_true(relay_stats(t->relay)->buffer_high_water <= TEST_BUFSIZE);
	assert_int_equal(relay_stats(t->relay)->splice_dirs, 1);
	assert_int_equal(last_record(t)->end, FLOW_END_CLOSED);
	app_finish(&app);
	server_stop(&srv);
	free(data);
}

/*
 * A TLS flow passed through (its SNI matches --ignore-hosts) is spliced
 * after its ClientHello, which is still what the record keeps.  The engine
 * context is a stand-in: it only switches detection on, and a flow passed
 * through never reaches the engine.
 */
static void
splice_tls_passthrough(void **state)
{
	struct fixture *t = *state;
	static char engine_stand_in;
	const size_t len = 4u << 20;
	struct hostmatch *ignore = hostmatch_new();
	struct server srv = { 0 };
	struct app app = { 0 };
	struct both b = { &app, &srv };
	uint8_t *data = pattern(len, 18);
	const struct flow_record *rec;
	char err[128];
	int fds[2];

	assert_non_null(ignore);
	assert_int_equal(hostmatch_add(ignore, "example\\.org", err,
	    sizeof(err)), 0);
	memcpy(data, px_ch_curl, px_ch_curl_len);	/* SNI www.example.org */
	t->cfg.mitm = (struct mitm_ctx *)(void *)&engine_stand_in;
	t->cfg.ignore = ignore;
	splice_all(t);
	server_start(&srv, AF_INET, SRV_ECHO, len);
	flow_socketpair(SOCK_STREAM, fds);
	app.out = data;
	app.outlen = len;
	app.shut_after_send = 1;
	app_start(&app, fds[0], len);
	start_tcp(t, AF_INET, srv.port, fds[1]);
	run_until(t, all_done, &b, 60);

	assert_int_equal(srv.gotlen, len);
	assert_memory_equal(srv.got, data, len);
	assert_int_equal(app.inlen, len);
	assert_memory_equal(app.in, data, len);
	rec = last_record(t);
	assert_true(rec->tls_passthrough);
	assert_string_equal(rec->tls_sni, "www.example.org");
	assert_int_equal(rec->bytes_from_app, len);
	assert_int_equal(rec->bytes_to_app, len);
	assert_memory_equal(rec->first_from_app, px_ch_curl, FLOW_FIRST_BYTES);
	assert_int_equal(relay_stats(t->relay)->tls_passthrough, 1);
	assert_int_equal(relay_stats(t->relay)->splice_dirs, 2);
	app_finish(&app);
	server_stop(&srv);
	/* The relay borrows both: gone before they are. */
	t->cfg.mitm = NULL;
	t->cfg.ignore = NULL;
	restart_relay(t);
	hostmatch_free(ignore);
	free(data);
}

static int
highest_fd(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = -1;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' && atoi(de->d_name) > n)
			n = atoi(de->d_name);
	closedir(d);
	return n;
}

/* No descriptor for a pipe: the flow copies on, whole, and it is counted. */
static void
splice_no_pipe_falls_back(void **state)
{
	struct fixture *t = *state;
	const size_t len = 4u << 20;
	struct server srv = { 0 };
	struct app app = { 0 };
	struct both b = { &app, &srv };
	uint8_t *data = pattern(len, 19);
	const struct relay_stats *st;
	struct rlimit old, low;
	int fds[2], fill[512], nfill = 0, i;

	splice_all(t);
	server_start(&srv, AF_INET, SRV_ECHO, len);
	flow_socketpair(SOCK_STREAM, fds);
	start_tcp(t, AF_INET, srv.port, fds[1]);
	/* Connected and accepted: the flow needs no new descriptor now. */
	run_for(t, 0.1);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)highest_fd() + 1;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	/* The limit bounds numbers, not how many: fill the holes below it. */
	while (nfill < 512 && (fill[nfill] = dup(0)) != -1)
		nfill++;
	assert_true(nfill < 512);
	assert_int_equal(errno, EMFILE);
	app.out = data;
	app.outlen = len;
	app.shut_after_send = 1;
	app_start(&app, fds[0], len);
	run_until(t, all_done, &b, 60);
	for (i = 0; i < nfill; i++)
		close(fill[i]);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);

	assert_int_equal(srv.gotlen, len);
	assert_memory_equal(srv.got, data, len);
	assert_int_equal(app.inlen, len);
	assert_memory_equal(app.in, data, len);
	st = relay_stats(t->relay);
	assert_int_equal(st->splice_dirs, 0);
	assert_int_equal(st->splice_fallbacks, 1);	/* tried once per flow */
	assert_int_equal(st->bytes_spliced, 0);
	assert_int_equal(last_record(t)->end, FLOW_END_CLOSED);
	assert_int_equal(last_record(t)->bytes_to_app, len);
	app_finish(&app);
	server_stop(&srv);
	free(data);
}

/* Off: nothing is spliced, and the bytes are the same. */
static void
splice_off_copies(void **state)
{
	struct fixture *t = *state;

	t->cfg.splice = RELAY_SPLICE_OFF;
	restart_relay(t);
	tcp_8mib_both_ways_intact(state);
	assert_int_equal(relay_stats(t->relay)->bytes_spliced, 0);
}

/* --- the source's TCP figures (FlowClosed) ----------------------------------------- */

static int64_t
row_int(sqlite3 *db, const char *col, int64_t source_flow_id)
{
	char sql[160];
	sqlite3_stmt *q;
	int64_t v;

	snprintf(sql, sizeof(sql), "SELECT coalesce(%s, -1) FROM flows WHERE"
	    " source_flow_id = %lld", col, (long long)source_flow_id);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return v;
}

/*
 * One orderly flow through an echo server, its id sfid.  If before, its
 * FlowClosed (with ts) comes while it still runs; else none is sent here.
 */
static uint64_t
figures_flow(struct fixture *t, uint64_t sfid, const struct flow_tcp_stats *ts)
{
	struct server srv = { 0 };
	struct flow_meta m;
	uint64_t id;
	int fds[2];
	char buf[8];

	server_start(&srv, AF_INET, SRV_ECHO, 64);
	flow_socketpair(SOCK_STREAM, fds);
	m = mkmeta(FLOW_TCP, AF_INET, srv.port);
	m.source_flow_id = sfid;
	id = relay_start(t->relay, SOURCE, &m, fds[1]);
	assert_true(id != 0);
	assert_int_equal(write(fds[0], "abc", 3), 3);
	run_for(t, 0.05);
	if (ts != NULL) {
		relay_source_flow_closed(t->relay, SOURCE, sfid, "closed", ts);
		assert_non_null(relay_flow_record(t->relay, id));
	}
	shutdown(fds[0], SHUT_WR);
	run_until(t, no_flows, NULL, 5);
	assert_int_equal(read(fds[0], buf, sizeof(buf)), 3);
	close(fds[0]);
	server_stop(&srv);
	return id;
}

static const struct flow_record *
ring_record(struct fixture *t, uint64_t id)
{
	const struct flow_ring *ring = relay_ring(t->relay);
	size_t i;

	for (i = 0; i < ring->count; i++)
		if (flow_ring_get(ring, i)->id == id)
			return flow_ring_get(ring, i);
	fail_msg("flow %llu not in the ring", (unsigned long long)id);
	return NULL;
}

/*
 * netstackd's FlowClosed may come before proxyd's own end of a TCP flow or
 * (usually) after it: either way its figures land in the flow's row and
 * record.  A row ended first is held (not complete, so --follow waits) until
 * the figures come or source_wait passes; figures later still are added.
 */
static void
tcp_flow_closed_figures_land_either_order(void **state)
{
	struct fixture *t = *state;
	const struct flow_tcp_stats before = { .packets_from_app = 11,
		.packets_to_app = 9, .retransmits = 2, .rtt_us = 875 };
	const struct flow_tcp_stats after = { .packets_from_app = 21,
		.packets_to_app = 19, .retransmits = 5, .rtt_us = 40000 };
	const struct flow_tcp_stats late = { .packets_from_app = 31,
		.packets_to_app = 29, .retransmits = 0, .rtt_us = 0 };
	char dir[] = "/tmp/lc-relay-figures.XXXXXX", path[96], err[256];
	struct store *st;
	sqlite3 *db;
	uint64_t id;
	int64_t serial;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, STORE_DB_NAME);
	st = store_open(path, NULL, err, sizeof(err));
	assert_non_null(st);
	t->cfg.source_wait = 0.3;
	restart_relay(t);
	relay_set_store(t->relay, st);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
	    SQLITE_OK);

	/* Before: complete at once, with the figures. */
	id = figures_flow(t, 1, &before);
	assert_int_equal(store_flush(st), 0);
	assert_true(row_int(db, "done_serial", 1) > 0);
	assert_int_equal(row_int(db, "packets_up", 1), 11);
	assert_int_equal(row_int(db, "packets_down", 1), 9);
	assert_int_equal(row_int(db, "retransmits", 1), 2);
	assert_int_equal(row_int(db, "rtt_us", 1), 875);
	assert_true(ring_record(t, id)->has_tcp_stats);
	assert_int_equal(ring_record(t, id)->tcp_stats.retransmits, 2);

	/* After: ended (end_us set) but held, then completed with them. */
	id = figures_flow(t, 2, NULL);
	assert_int_equal(store_flush(st), 0);
	assert_true(row_int(db, "end_us", 2) > 0);
	assert_int_equal(row_int(db, "done_serial", 2), -1);
	assert_int_equal(row_int(db, "retransmits", 2), -1);
	assert_false(ring_record(t, id)->has_tcp_stats);
	relay_source_flow_closed(t->relay, SOURCE, 2, "closed", &after);
	assert_int_equal(store_flush(st), 0);
	assert_true(row_int(db, "done_serial", 2) > row_int(db, "done_serial", 1));
	assert_int_equal(row_int(db, "packets_up", 2), 21);
	assert_int_equal(row_int(db, "packets_down", 2), 19);
	assert_int_equal(row_int(db, "retransmits", 2), 5);
	assert_int_equal(row_int(db, "rtt_us", 2), 40000);
	assert_true(ring_record(t, id)->has_tcp_stats);
	assert_int_equal(ring_record(t, id)->tcp_stats.rtt_us, 40000);
	/* A repeat (or another source's flow 2) changes nothing. */
	relay_source_flow_closed(t->relay, (const void *)0x1, 2, "closed", &late);
	relay_source_flow_closed(t->relay, SOURCE, 2, "closed", &late);
	assert_int_equal(store_flush(st), 0);
	assert_int_equal(row_int(db, "retransmits", 2), 5);

	/* Late: the hold ends without them; they are added when they come,
	 * and the row keeps the serial it was completed with. */
	id = figures_flow(t, 3, NULL);
	run_for(t, 0.45);
	assert_int_equal(store_flush(st), 0);
	serial = row_int(db, "done_serial", 3);
	assert_true(serial > row_int(db, "done_serial", 2));
	assert_int_equal(row_int(db, "retransmits", 3), -1);
	relay_source_flow_closed(t->relay, SOURCE, 3, "closed", &late);
	assert_int_equal(store_flush(st), 0);
	assert_int_equal(row_int(db, "done_serial", 3), serial);
	assert_int_equal(row_int(db, "packets_up", 3), 31);
	assert_int_equal(row_int(db, "retransmits", 3), 0);
	assert_int_equal(row_int(db, "rtt_us", 3), -1);	/* 0: no sample */
	assert_true(ring_record(t, id)->has_tcp_stats);

	/* A source that goes away completes its held rows at once. */
	(void)figures_flow(t, 4, NULL);
	assert_int_equal(store_flush(st), 0);
	assert_int_equal(row_int(db, "done_serial", 4), -1);
	relay_source_gone(t->relay, SOURCE);
	assert_int_equal(store_flush(st), 0);
	assert_true(row_int(db, "done_serial", 4) > serial);

	/* So does the relay going away (proxyd stopping). */
	(void)figures_flow(t, 5, NULL);
	restart_relay(t);
	assert_int_equal(store_flush(st), 0);
	assert_true(row_int(db, "done_serial", 5) > 0);

	sqlite3_close(db);
	store_close(st);
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);	/* our mkdtemp */
	assert_int_equal(system(path), 0);
}

/* --- a server that speaks first ----------------------------------------------------- */

#define SERVER_HOLD_S	0.3	/* proxyd/relay_int.h's SERVER_HOLD */

/* An h2c origin's first SETTINGS: MAX_CONCURRENT_STREAMS 100. */
static const uint8_t h2_settings[] = {
	0, 0, 6, 0x04, 0, 0, 0, 0, 0,	0, 3, 0, 0, 0, 100 };

struct h2_client {
	int	 fd;
	uint8_t	 in[4096];
	size_t	 inlen;
	int	 got_hello;	/* DATA "hello" ending stream 1 */
	int	 got_settings;	/* a SETTINGS from the relay's side */
};

/* Read what came to the app; scan its frames for the answer. */
static int
h2_client_answered(struct fixture *t, void *arg)
{
	struct h2_client *c = arg;
	size_t off = 0, len;
	ssize_t n;

	(void)t;
	while (c->inlen < sizeof(c->in) && (n = recv(c->fd, c->in + c->inlen,
	    sizeof(c->in) - c->inlen, MSG_DONTWAIT)) > 0)
		c->inlen += (size_t)n;
	while (off + 9 <= c->inlen) {
		const uint8_t *h = c->in + off;

		len = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
		if (off + 9 + len > c->inlen)
			break;
		if (h[3] == 0x4 && !(h[4] & 0x1))
			c->got_settings = 1;
		if (h[3] == 0x0 && (h[4] & 0x1) && memcmp(h + 5, "\0\0\0\x01",
		    4) == 0 && len == 5 && memcmp(h + 9, "hello", 5) == 0)
			c->got_hello = 1;
		off += 9 + len;
	}
	return c->got_hello;
}

static int64_t
count_h2_exchanges(sqlite3 *db)
{
	sqlite3_stmt *q;
	int64_t v;

	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM"
	    " http_exchanges WHERE http_version = 'HTTP/2.0' AND status = 200"
	    " AND scheme = 'http' AND method = 'GET'", -1, &q, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return v;
}

/*
 * A prior-knowledge h2c origin sends its SETTINGS as soon as it accepts,
 * before the client's preface: those are held (the app gets nothing of
 * them), and when the preface comes the HTTP/2 layer takes both; the
 * exchange is decoded and recorded as HTTP/2.0.
 */
static void
h2c_origin_speaks_first_still_decoded(void **state)
{
	static const uint8_t req[] = {
		0, 0, 0, 0x04, 0, 0, 0, 0, 0,		/* SETTINGS */
		0, 0, 17, 0x01, 0x05, 0, 0, 0, 1,	/* HEADERS, END_STREAM */
		0x82, 0x86, 0x84, 0x41, 12,		/* GET http / :authority */
		'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 't', 'e', 's', 't' };
	struct fixture *t = *state;
	char dir[] = "/tmp/lc-relay-h2c.XXXXXX", path[96], err[256];
	struct server srv = { 0 };
	struct h2_client c = { 0 };
	const struct flow_record *rec;
	struct store *st;
	sqlite3 *db;
	uint8_t b;
	int fds[2];

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, STORE_DB_NAME);
	st = store_open(path, NULL, err, sizeof(err));
	assert_non_null(st);
	relay_set_store(t->relay, st);

	srv.send_buf = h2_settings;
	srv.send_len = sizeof(h2_settings);
	server_start(&srv, AF_INET, SRV_H2C, 64);
	flow_socketpair(SOCK_STREAM, fds);
	c.fd = fds[0];
	start_tcp(t, AF_INET, srv.port, fds[1]);
	/* The origin's SETTINGS reach the relay, which holds them. */
	run_for(t, 0.1);
	assert_int_equal(recv(fds[0], &b, 1, MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);

	assert_int_equal(write_all(fds[0], H2_PREFACE_STR, 24), 0);
	assert_int_equal(write_all(fds[0], req, sizeof(req)), 0);
	run_until(t, h2_client_answered, &c, 5);
	assert_true(c.got_settings);
	/* The origin got the layer's preface, not a copy of the app's bytes
	 * after its own SETTINGS were lost. */
	assert_true(srv.gotlen >= 24);
	assert_memory_equal(srv.got, H2_PREFACE_STR, 24);

	close(fds[0]);
	run_until(t, no_flows, NULL, 5);
	server_stop(&srv);
	rec = last_record(t);
	assert_int_equal(rec->bytes_from_app, 24 + sizeof(req));
	/* What the app got is what the layer sent it, counted once. */
	assert_int_equal(rec->bytes_to_app, c.inlen);
	assert_true(rec->first_to_app_len >= 9);
	assert_memory_equal(rec->first_to_app, c.in, 9);

	assert_int_equal(store_flush(st), 0);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
	    SQLITE_OK);
	assert_int_equal(count_h2_exchanges(db), 1);
	sqlite3_close(db);
	relay_set_store(t->relay, NULL);
	store_close(st);
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);	/* our mkdtemp */
	assert_int_equal(system(path), 0);
}

struct got_n {
	int	 fd;
	uint8_t	 buf[256];
	size_t	 len;
	size_t	 want;
	double	 at;	/* now_s() when want bytes were there */
};

static int
app_got_n(struct fixture *t, void *arg)
{
	struct got_n *g = arg;
	ssize_t n;

	(void)t;
	while (g->len < sizeof(g->buf) && (n = recv(g->fd, g->buf + g->len,
	    sizeof(g->buf) - g->len, MSG_DONTWAIT)) > 0)
		g->len += (size_t)n;
	if (g->len >= g->want && g->at == 0)
		g->at = now_s();
	return g->len >= g->want;
}

/* A server that speaks first, and a client that stays silent. */
static double
server_first(struct fixture *t, const uint8_t *greet, size_t len,
    struct got_n *g)
{
	struct server srv = { 0 };
	const struct flow_record *rec;
	int fds[2];
	double t0;

	srv.send_buf = greet;
	srv.send_len = len;
	server_start(&srv, AF_INET, SRV_SEND, 64);
	flow_socketpair(SOCK_STREAM, fds);
	g->fd = fds[0];
	g->want = len;
	t0 = now_s();
	start_tcp(t, AF_INET, srv.port, fds[1]);
	run_until(t, app_got_n, g, 5);
	assert_int_equal(g->len, len);
	assert_memory_equal(g->buf, greet, len);
	shutdown(fds[0], SHUT_WR);
	run_until(t, no_flows, NULL, 5);
	close(fds[0]);
	server_stop(&srv);
	rec = last_record(t);
	assert_int_equal(rec->end, FLOW_END_CLOSED);
	assert_int_equal(rec->bytes_to_app, len);
	assert_int_equal(rec->bytes_from_app, 0);
	assert_memory_equal(rec->first_to_app, greet, len);
	return g->at - t0;
}

/*
 * A server-first protocol whose first bytes happen to look like SETTINGS,
 * to a client that waits for it: held, but only for the hold's time.
 */
static void
server_first_settings_lookalike_released(void **state)
{
	struct got_n g = { 0 };
	double took = server_first(*state, h2_settings, sizeof(h2_settings), &g);

	assert_true(took >= SERVER_HOLD_S - 0.05);
	assert_true(took < SERVER_HOLD_S + 2);
}

/*
 * A flow that ends while server bytes are held: by the app's EOF (which
 * releases them to it) and by proxyd stopping (their hold's timer must
 * not outlive the flow: the loop runs past its deadline afterwards).
 */
static void
server_first_held_then_ended(void **state)
{
	struct fixture *t = *state;
	struct server srv = { 0 };
	struct got_n g = { 0 };
	int fds[2];

	/* The app's EOF while held: the bytes reach it, the flow closes. */
	srv.send_buf = h2_settings;
	srv.send_len = sizeof(h2_settings);
	server_start(&srv, AF_INET, SRV_SEND, 64);
	flow_socketpair(SOCK_STREAM, fds);
	g.fd = fds[0];
	g.want = sizeof(h2_settings);
	start_tcp(t, AF_INET, srv.port, fds[1]);
	run_for(t, 0.1);
	assert_false(app_got_n(t, &g));
	shutdown(fds[0], SHUT_WR);
	run_until(t, app_got_n, &g, SERVER_HOLD_S - 0.1);
	run_until(t, no_flows, NULL, 5);
	assert_int_equal(last_record(t)->end, FLOW_END_CLOSED);
	close(fds[0]);
	server_stop(&srv);

	/* The relay going away while held. */
	memset(&srv, 0, sizeof(srv));
	srv.send_buf = h2_settings;
	srv.send_len = sizeof(h2_settings);
	server_start(&srv, AF_INET, SRV_SEND, 64);
	flow_socketpair(SOCK_STREAM, fds);
	start_tcp(t, AF_INET, srv.port, fds[1]);
	run_for(t, 0.1);
	assert_int_equal(relay_stats(t->relay)->flows_active, 1);
	restart_relay(t);
	run_for(t, SERVER_HOLD_S + 0.1);
	close(fds[0]);
	server_stop(&srv);
}

/* Any other server-first bytes (an SSH banner) go to the app at once. */
static void
server_first_banner_not_held(void **state)
{
	static const char banner[] = "SSH-2.0-OpenSSH_9.6 test\r\n";
	struct got_n g = { 0 };
	double took = server_first(*state, (const uint8_t *)banner,
	    sizeof(banner) - 1, &g);

	assert_true(took < SERVER_HOLD_S - 0.05);
}

/* --- UDP ------------------------------------------------------------------------ */

struct udp_echo {
	int		 fd;
	pthread_t	 th;
	atomic_int	 stop;
	atomic_int	 got;		/* datagrams received */
};

static void *
udp_echo_main(void *arg)
{
	struct udp_echo *u = arg;
	struct sockaddr_storage ss;
	uint8_t buf[65536];
	socklen_t sl;
	ssize_t n;

	while (!atomic_load(&u->stop)) {
		struct pollfd p = { .fd = u->fd, .events = POLLIN };

		if (poll(&p, 1, 20) <= 0)
			continue;
		sl = sizeof(ss);
		n = recvfrom(u->fd, buf, sizeof(buf), 0, (struct sockaddr *)&ss, &sl);
		if (n >= 0) {
			atomic_fetch_add(&u->got, 1);
			(void)sendto(u->fd, buf, (size_t)n, 0,
			    (struct sockaddr *)&ss, sl);
		}
	}
	return NULL;
}

static int
recv_timeout(int fd, void *buf, size_t len, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, ms) != 1)
		return -1;
	return (int)recv(fd, buf, len, MSG_DONTWAIT);
}

struct pump_until {
	int	fd;
	int	want;
	int	got;
	char	bufs[3][64];
	int	lens[3];
};

static int
udp_replies(struct fixture *t, void *arg)
{
	struct pump_until *p = arg;
	int n;

	(void)t;
	while (p->got < p->want && (n = (int)recv(p->fd, p->bufs[p->got],
	    sizeof(p->bufs[0]), MSG_DONTWAIT)) >= 0)
		p->lens[p->got++] = n;
	return p->got == p->want;
}

static void
udp_echo(struct fixture *t, int family)
{
	static const char *dg[3] = { "one", "", "three datagrams" };
	struct udp_echo u = { 0 };
	struct pump_until p = { 0 };
	struct flow_meta m;
	const struct flow_record *rec;
	uint16_t port;
	int fds[2], i;

	u.fd = listen_on(family, SOCK_DGRAM, &port);
	atomic_init(&u.stop, 0);
	assert_int_equal(pthread_create(&u.th, NULL, udp_echo_main, &u), 0);
	flow_socketpair(SOCK_DGRAM, fds);
	m = mkmeta(FLOW_UDP, family, port);
	assert_true(relay_start(t->relay, SOURCE, &m, fds[1]) != 0);
	for (i = 0; i < 3; i++)
		assert_int_equal(send(fds[0], dg[i], strlen(dg[i]), 0),
		    (ssize_t)strlen(dg[i]));
	p.fd = fds[0];
	p.want = 3;
	run_until(t, udp_replies, &p, 5);
	/* Boundaries kept: one reply per datagram, in order, empty one too. */
	for (i = 0; i < 3; i++) {
		assert_int_equal(p.lens[i], (int)strlen(dg[i]));
		assert_memory_equal(p.bufs[i], dg[i], strlen(dg[i]));
	}
	relay_source_flow_closed(t->relay, SOURCE, 7, "fin", NULL);
	rec = last_record(t);
	assert_int_equal(rec->end, FLOW_END_SOURCE_CLOSED);
	assert_int_equal(rec->dgrams_from_app, 3);
	assert_int_equal(rec->dgrams_to_app, 3);
	assert_int_equal(rec->bytes_from_app, 18);
	assert_int_equal(rec->first_from_app_len, 3);
	assert_memory_equal(rec->first_from_app, "one", 3);
	atomic_store(&u.stop, 1);
	pthread_join(u.th, NULL);
	close(u.fd);
	close(fds[0]);
}

static void
udp_echo_round_trip_ipv4(void **state)
{
	udp_echo(*state, AF_INET);
}

static void
udp_echo_round_trip_ipv6(void **state)
{
	udp_echo(*state, AF_INET6);
}

/* UDP flows end when idle; DNS (port 53) ones on their shorter timeout. */
static void
udp_idle_expiry(void **state)
{
	struct fixture *t = *state;
	struct udp_echo u = { 0 };
	struct flow_meta m, dns;
	uint16_t port;
	int fds[2], dfds[2];
	char buf[16];
	uint64_t id, dns_id;
	double t0;

	t->cfg.udp_idle_timeout = 0.6;
	t->cfg.dns_idle_timeout = 0.2;
	restart_relay(t);
	u.fd = listen_on(AF_INET, SOCK_DGRAM, &port);
	atomic_init(&u.stop, 0);
	assert_int_equal(pthread_create(&u.th, NULL, udp_echo_main, &u), 0);
	flow_socketpair(SOCK_DGRAM, fds);
	flow_socketpair(SOCK_DGRAM, dfds);
	m = mkmeta(FLOW_UDP, AF_INET, port);
	dns = mkmeta(FLOW_UDP, AF_INET, 53);
	dns.source_flow_id = 8;
	t0 = now_s();
	id = relay_start(t->relay, SOURCE, &m, fds[1]);
	dns_id = relay_start(t->relay, SOURCE, &dns, dfds[1]);
	assert_true(id && dns_id);
	run_for(t, 0.3);
	/* Traffic keeps the plain flow alive; the DNS one has expired. */
	assert_null(relay_flow_record(t->relay, dns_id));
	assert_int_equal(send(fds[0], "ping", 4, 0), 4);
	run_for(t, 0.4);
	assert_int_equal(recv_timeout(fds[0], buf, sizeof(buf), 100), 4);
	assert_non_null(relay_flow_record(t->relay, id));
	run_until(t, no_flows, NULL, 5);
	assert_true(now_s() - t0 >= 0.85);
	assert_int_equal(last_record(t)->end, FLOW_END_IDLE);
	assert_int_equal(relay_stats(t->relay)->idle_expired, 2);
	atomic_store(&u.stop, 1);
	pthread_join(u.th, NULL);
	close(u.fd);
	close(fds[0]);
	close(dfds[0]);
}

/* A SEQPACKET flow socket says when the source closed it. */
static void
udp_seqpacket_close_ends_flow(void **state)
{
	struct fixture *t = *state;
	struct flow_meta m = mkmeta(FLOW_UDP, AF_INET, closed_port());
	int fds[2];

	flow_socketpair(SOCK_SEQPACKET, fds);
	assert_true(relay_start(t->relay, SOURCE, &m, fds[1]) != 0);
	/* To a closed port: the ICMP error does not end a UDP flow. */
	assert_int_equal(send(fds[0], "q", 1, 0), 1);
	run_for(t, 0.1);
	assert_int_equal(relay_stats(t->relay)->flows_active, 1);
	close(fds[0]);
	run_until(t, no_flows, NULL, 5);
	assert_int_equal(last_record(t)->end, FLOW_END_CLOSED);
}

/* --- QUIC on UDP (relay_quic.c) ------------------------------------------------------- */

static void
quic_echo_start(struct udp_echo *u, uint16_t *port)
{
	u->fd = listen_on(AF_INET, SOCK_DGRAM, port);
	atomic_init(&u->stop, 0);
	atomic_init(&u->got, 0);
	assert_int_equal(pthread_create(&u->th, NULL, udp_echo_main, u), 0);
}

static void
quic_echo_stop(struct udp_echo *u)
{
	atomic_store(&u->stop, 1);
	pthread_join(u->th, NULL);
	close(u->fd);
}

/* --quic fallback: RFC 9001's Initial gets a Version Negotiation echoing
 * its connection ids, nothing goes upstream, the flow ends refused and is
 * recorded as quic with its SNI. */
static void
quic_fallback_refuses(void **state)
{
	struct fixture *t = *state;
	struct udp_echo u;
	struct flow_meta m;
	const struct flow_record *rec;
	uint16_t port;
	uint8_t vn[128];
	int fds[2], n;

	quic_echo_start(&u, &port);
	flow_socketpair(SOCK_SEQPACKET, fds);
	m = mkmeta(FLOW_UDP, AF_INET, port);
	assert_true(relay_start(t->relay, SOURCE, &m, fds[1]) != 0);
	assert_int_equal(send(fds[0], QUIC_V1_CLIENT_INITIAL,
	    sizeof(QUIC_V1_CLIENT_INITIAL), 0), sizeof(QUIC_V1_CLIENT_INITIAL));
	run_until(t, no_flows, NULL, 5);
	n = recv_timeout(fds[0], vn, sizeof(vn), 100);
	/* first byte, version 0, DCID = the client's (empty) SCID, SCID = its
	 * DCID, one reserved version */
	assert_int_equal(n, 1 + 4 + 1 + 0 + 1 + 8 + 4);
	assert_true(vn[0] & 0x80);
	assert_memory_equal(vn + 1, "\0\0\0\0\0\x08\x83\x94\xc8\xf0\x3e\x51"
	    "\x57\x08", 14);
	assert_int_equal(recv_timeout(fds[0], vn, sizeof(vn), 50), 0);	/* EOF */
	rec = last_record(t);
	assert_int_equal(rec->end, FLOW_END_REFUSED);
	assert_string_equal(rec->protocol, "quic");
	assert_string_equal(rec->tls_sni, "example.com");
	assert_int_equal(rec->dgrams_from_app, 1);
	assert_int_equal(rec->dgrams_to_app, 1);
	assert_int_equal(relay_stats(t->relay)->quic_refused, 1);
	run_for(t, 0.05);
	assert_int_equal(atomic_load(&u.got), 0);
	quic_echo_stop(&u);
	close(fds[0]);
}

/* A ClientHello that never completes is refused once the hold expires. */
static void
quic_fallback_hold_expires(void **state)
{
	struct fixture *t = *state;
	static const uint8_t dcid[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	struct quic_initial_spec spec = {
		.version = QUIC_VERSION_1, .key_dcid = dcid,
		.key_dcid_len = 8, .dcid = dcid, .dcid_len = 8,
		.pn_len = 2, .pad_to = 1200,
	};
	/* the first 100 bytes of the RFC's ClientHello only */
	uint8_t frames[120] = { 0x06, 0x00, 0x40, 100 }, pkt[1300], vn[64];
	struct udp_echo u;
	struct flow_meta m;
	uint16_t port;
	size_t len;
	double t0;
	int fds[2];

	memcpy(frames + 4, QUIC_CLIENT_FRAMES + 4, 100);
	len = quic_build_initial(&spec, frames, 104, pkt, sizeof(pkt));
	assert_true(len >= 1200);
	quic_echo_start(&u, &port);
	flow_socketpair(SOCK_SEQPACKET, fds);
	m = mkmeta(FLOW_UDP, AF_INET, port);
	assert_true(relay_start(t->relay, SOURCE, &m, fds[1]) != 0);
	t0 = now_s();
	assert_int_equal(send(fds[0], pkt, len, 0), (ssize_t)len);
	run_until(t, no_flows, NULL, 5);
	assert_true(now_s() - t0 >= QGATE_HOLD_MS / 1000.0 * 0.9);
	assert_true(recv_timeout(fds[0], vn, sizeof(vn), 100) > 0);
	assert_int_equal(last_record(t)->end, FLOW_END_REFUSED);
	assert_string_equal(last_record(t)->tls_sni, "");
	assert_int_equal(atomic_load(&u.got), 0);
	quic_echo_stop(&u);
	close(fds[0]);
}

static int
echo_got_one(struct fixture *t, void *arg)
{
	(void)t;
	return atomic_load(&((struct udp_echo *)arg)->got) >= 1;
}

/* --quic pass: relayed unchanged both ways, recorded as quic with SNI. */
static void
quic_pass_relays(void **state)
{
	struct fixture *t = *state;
	struct udp_echo u;
	struct flow_meta m;
	const struct flow_record *rec;
	uint16_t port;
	uint8_t back[1300];
	int fds[2];

	t->cfg.quic = QUIC_MODE_PASS;
	restart_relay(t);
	quic_echo_start(&u, &port);
	flow_socketpair(SOCK_SEQPACKET, fds);
	m = mkmeta(FLOW_UDP, AF_INET, port);
	assert_true(relay_start(t->relay, SOURCE, &m, fds[1]) != 0);
	assert_int_equal(send(fds[0], QUIC_V2_CLIENT_INITIAL,
	    sizeof(QUIC_V2_CLIENT_INITIAL), 0), sizeof(QUIC_V2_CLIENT_INITIAL));
	run_until(t, echo_got_one, &u, 5);
	run_for(t, 0.05);
	assert_int_equal(recv_timeout(fds[0], back, sizeof(back), 500),
	    sizeof(QUIC_V2_CLIENT_INITIAL));
	assert_memory_equal(back, QUIC_V2_CLIENT_INITIAL,
	    sizeof(QUIC_V2_CLIENT_INITIAL));
	assert_int_equal(relay_stats(t->relay)->quic_passed, 1);
	close(fds[0]);
	run_until(t, no_flows, NULL, 5);
	rec = last_record(t);
	assert_int_equal(rec->end, FLOW_END_CLOSED);
	assert_string_equal(rec->protocol, "quic");
	assert_string_equal(rec->tls_sni, "example.com");
	quic_echo_stop(&u);
}

/* --- NewFlow validation and records ------------------------------------------------ */

static Lc__NewFlow *
mknewflow(Lc__NewFlow *nf, Lc__Endpoint *src, Lc__Endpoint *dst,
    Lc__Owner *owner)
{
	static uint8_t a4[4] = { 127, 0, 0, 1 };

	lc__new_flow__init(nf);
	lc__endpoint__init(src);
	lc__endpoint__init(dst);
	lc__owner__init(owner);
	nf->flow_id = 99;
	nf->transport = LC__TRANSPORT__TRANSPORT_TCP;
	src->addr.data = a4;
	src->addr.len = 4;
	src->port = 50000;
	dst->addr.data = a4;
	dst->addr.len = 4;
	dst->port = 80;
	owner->pid = 12;
	owner->process = (char *)(uintptr_t)"curl";
	owner->cgroup = (char *)(uintptr_t)"/user.slice";
	nf->src = src;
	nf->dst = dst;
	nf->owner = owner;
	return nf;
}

static void
newflow_malformed_refused(void **state)
{
	static uint8_t a5[5], a6[16] = { [15] = 1 }, zero4[4];
	Lc__NewFlow nf;
	Lc__Endpoint src, dst;
	Lc__Owner owner;
	struct flow_meta m;
	char err[128];

	(void)state;
	mknewflow(&nf, &src, &dst, &owner);
	assert_int_equal(flow_meta_from_newflow(&m, &nf, err, sizeof(err)), 0);
	assert_int_equal(m.dst.family, AF_INET);
	assert_int_equal(m.dst.port, 80);
	assert_string_equal(m.owner.process, "curl");
	flow_meta_clear(&m);

#define REFUSED(what, expect) do {					\
	mknewflow(&nf, &src, &dst, &owner);				\
	what;								\
	assert_int_equal(flow_meta_from_newflow(&m, &nf, err, sizeof(err)), -1); \
	assert_non_null(strstr(err, expect));				\
	assert_string_equal(m.owner.process, "");				\
} while (0)
	REFUSED(nf.transport = LC__TRANSPORT__TRANSPORT_UNSPECIFIED, "transport");
	REFUSED(nf.transport = (Lc__Transport)77, "transport");
	REFUSED(nf.dst = NULL, "missing");
	REFUSED(nf.src = NULL, "missing");
	REFUSED((dst.addr.data = a5, dst.addr.len = 5), "destination address of 5");
	REFUSED(dst.addr.len = 0, "destination address of 0");
	REFUSED((src.addr.data = a5, src.addr.len = 5), "source address of 5");
	REFUSED((dst.addr.data = a6, dst.addr.len = 16), "families");
	REFUSED(dst.port = 0, "destination port 0");
	REFUSED(dst.port = 65536, "destination port 65536");
	REFUSED(src.port = 70000, "source port");
	REFUSED(dst.addr.data = zero4, "unspecified");
#undef REFUSED

	/* An owner's name or path longer than the struct holds is cut. */
	{
		char longname[200];

		memset(longname, 'n', sizeof(longname) - 1);
		longname[sizeof(longname) - 1] = '\0';
		mknewflow(&nf, &src, &dst, &owner);
		owner.process = longname;
		assert_int_equal(flow_meta_from_newflow(&m, &nf, err, sizeof(err)), 0);
		assert_int_equal(strlen(m.owner.process), OWNER_NAME_MAX - 1);
		flow_meta_clear(&m);
	}

	/* No owner at all is fine: empty strings, not NULL. */
	mknewflow(&nf, &src, &dst, &owner);
	nf.owner = NULL;
	assert_int_equal(flow_meta_from_newflow(&m, &nf, err, sizeof(err)), 0);
	assert_string_equal(m.owner.process, "");
	flow_meta_clear(&m);
}

/* The relay refuses a bad NewFlow by closing its fd, and counts it. */
static void
relay_refuses_bad_newflow(void **state)
{
	struct fixture *t = *state;
	Lc__NewFlow nf;
	Lc__Endpoint src, dst;
	Lc__Owner owner;
	int fds[2];
	char c;

	mknewflow(&nf, &src, &dst, &owner);
	dst.port = 0;
	flow_socketpair(SOCK_STREAM, fds);
	assert_int_equal(intake_new_flow(t->relay, SOURCE, &nf, fds[1]), 0);
	assert_int_equal(recv(fds[0], &c, 1, 0), 0);	/* closed */
	assert_int_equal(relay_stats(t->relay)->flows_refused, 1);
	assert_int_equal(relay_stats(t->relay)->flows_total, 0);
	close(fds[0]);
}

/*
 * The executable's path a NewFlow brings (the macOS extension's): on the
 * running flow's record, then on the ring's once it ended (the ring owns
 * it from then on; ASan's leak check runs this in make SANITIZE=1).
 */
static void
relay_keeps_the_newflow_exe(void **state)
{
	struct fixture *t = *state;
	Lc__NewFlow nf;
	Lc__Endpoint src, dst;
	Lc__Owner owner;
	struct flow_meta m;
	char err[128];
	uint64_t id;
	int fds[2];

	(void)state;
	mknewflow(&nf, &src, &dst, &owner);
	owner.exe = (char *)(uintptr_t)"/Applications/Curl.app/Contents/MacOS/curl";
	assert_int_equal(flow_meta_from_newflow(&m, &nf, err, sizeof(err)), 0);
	assert_string_equal(m.exe, owner.exe);
	flow_meta_clear(&m);
	assert_null(m.exe);

	dst.port = closed_port();	/* ends at once: connection refused */
	flow_socketpair(SOCK_STREAM, fds);
	id = intake_new_flow(t->relay, SOURCE, &nf, fds[1]);
	assert_true(id != 0);
	assert_string_equal(relay_flow_record(t->relay, id)->meta.exe, owner.exe);
	run_until(t, no_flows, NULL, 5);
	assert_int_equal(last_record(t)->id, id);
	assert_string_equal(last_record(t)->meta.exe, owner.exe);
	close(fds[0]);

	/* netstackd's NewFlow: none. */
	mknewflow(&nf, &src, &dst, &owner);
	dst.port = closed_port();
	flow_socketpair(SOCK_STREAM, fds);
	id = intake_new_flow(t->relay, SOURCE, &nf, fds[1]);
	assert_true(id != 0);
	run_until(t, no_flows, NULL, 5);
	assert_null(last_record(t)->meta.exe);
	close(fds[0]);
}

/* Bad NewFlows from a chatty app cost at most one log line a second. */
static void
relay_refusals_rate_limited(void **state)
{
	struct fixture *t = *state;
	Lc__NewFlow nf;
	Lc__Endpoint src, dst;
	Lc__Owner owner;
	char out[4096];
	int fds[2], pipefd[2], saved, i;
	ssize_t n;

	mknewflow(&nf, &src, &dst, &owner);
	dst.port = 0;
	assert_int_equal(pipe(pipefd), 0);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	dup2(pipefd[1], STDERR_FILENO);
	for (i = 0; i < 3; i++) {
		nf.flow_id = (uint64_t)i + 1;
		flow_socketpair(SOCK_STREAM, fds);
		assert_int_equal(intake_new_flow(t->relay, SOURCE, &nf, fds[1]), 0);
		close(fds[0]);
	}
	run_for(t, 1.05);
	nf.flow_id = 4;
	flow_socketpair(SOCK_STREAM, fds);
	assert_int_equal(intake_new_flow(t->relay, SOURCE, &nf, fds[1]), 0);
	close(fds[0]);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(pipefd[1]);
	n = read(pipefd[0], out, sizeof(out) - 1);
	close(pipefd[0]);
	out[n < 0 ? 0 : n] = '\0';

	assert_non_null(strstr(out, "NewFlow 1 refused: destination port 0\n"));
	assert_null(strstr(out, "NewFlow 2"));
	assert_null(strstr(out, "NewFlow 3"));
	assert_non_null(strstr(out, "NewFlow 4 refused: destination port 0 "
	    "(and 2 more refusals not logged)"));
	assert_int_equal(relay_stats(t->relay)->flows_refused, 4);
}

static void
flow_ring_evicts_oldest(void **state)
{
	struct flow_ring ring;
	struct flow_record rec;
	int i;

	(void)state;
	assert_int_equal(flow_ring_init(&ring, 2), 0);
	for (i = 1; i <= 3; i++) {
		memset(&rec, 0, sizeof(rec));
		rec.id = (uint64_t)i;
		snprintf(rec.meta.owner.process, sizeof(rec.meta.owner.process), "%s", "n");
		snprintf(rec.meta.owner.cgroup, sizeof(rec.meta.owner.cgroup), "%s", "c");
		flow_ring_push(&ring, &rec);
		assert_string_equal(rec.meta.owner.process, "n");	/* copied */
	}
	assert_int_equal(ring.count, 2);
	assert_int_equal(ring.evicted, 1);
	assert_int_equal(flow_ring_get(&ring, 0)->id, 2);
	assert_int_equal(flow_ring_get(&ring, 1)->id, 3);
	assert_null(flow_ring_get(&ring, 2));
	flow_ring_free(&ring);
}

/* The daemon's ring (relay_config_default) keeps nothing, and holds no memory. */
static void
flow_ring_of_none_keeps_nothing(void **state)
{
	struct relay_config cfg;
	struct flow_ring ring;
	struct flow_record rec;

	(void)state;
	relay_config_default(&cfg);
	assert_int_equal(cfg.ring_size, 0);
	assert_int_equal(flow_ring_init(&ring, cfg.ring_size), 0);
	assert_null(ring.slots);
	memset(&rec, 0, sizeof(rec));
	rec.id = 1;
	flow_ring_push(&ring, &rec);
	assert_int_equal(ring.count, 0);
	assert_int_equal(ring.evicted, 1);
	assert_null(flow_ring_get(&ring, 0));
	assert_null(flow_ring_find(&ring, 1));
	flow_ring_free(&ring);
}

static void
flow_addr_formats(void **state)
{
	struct endpoint a = { .family = AF_INET, .addr = { 192, 0, 2, 1 },
	    .port = 80 };
	struct endpoint b = { .family = AF_INET6, .addr = { 0x20, 0x01, 0x0d,
	    0xb8, [15] = 1 }, .port = 443 };
	char buf[64];

	(void)state;
	assert_string_equal(flow_addr_str(&a, buf, sizeof(buf)), "192.0.2.1:80");
	assert_string_equal(flow_addr_str(&b, buf, sizeof(buf)),
	    "[2001:db8::1]:443");
	a.family = 0;
	assert_string_equal(flow_addr_str(&a, buf, sizeof(buf)), "?");
}

/* --- intake over a real flow.sock ----------------------------------------------- */

struct client {
	struct ipc_peer	*peer;
	int		 ready;
	int		 closed;
	uint64_t	 statuses;
	uint64_t	 last_refused;
	uint64_t	 last_active;
};

static void
client_ready(struct ipc_peer *p)
{
	((struct client *)ipc_user(p))->ready = 1;
}

static void
client_message(struct ipc_peer *p, Lc__MsgType type, const ProtobufCMessage *msg,
    int *fds, size_t nfds)
{
	struct client *c = ipc_user(p);
	const Lc__ProxyStatus *st = (const Lc__ProxyStatus *)(const void *)msg;
	size_t i;

	(void)fds;
	(void)nfds;
	if (type != LC__MSG_TYPE__MSG_PROXY_STATUS)
		return;
	c->statuses++;
	c->last_active = st->flows_active;
	for (i = 0; i < st->n_counters; i++)
		if (strcmp(st->counters[i]->name, "flows_refused") == 0)
			c->last_refused = st->counters[i]->value;
}

static void
client_close(struct ipc_peer *p, const char *reason)
{
	struct client *c = ipc_user(p);

	(void)reason;
	c->closed = 1;
	c->peer = NULL;
}

static const struct ipc_callbacks client_cb = {
	.on_ready = client_ready,
	.on_message = client_message,
	.on_close = client_close,
};

static int
client_ready_cond(struct fixture *t, void *arg)
{
	(void)t;
	return ((struct client *)arg)->ready;
}

static int
refusal_reported(struct fixture *t, void *arg)
{
	struct client *c = arg;

	(void)t;
	return c->last_refused == 1 && relay_stats(t->relay)->flows_total == 1 &&
	    relay_stats(t->relay)->flows_active == 0 && c->last_active == 0;
}

/*
 * Over flow.sock: a NewFlow with a bad destination is refused alone (its fd
 * closed, the source kept), the next good one is relayed, and ProxyStatus
 * reports both.
 */
static void
intake_bad_newflow_keeps_source(void **state)
{
	struct fixture *t = *state;
	struct ipc_peer_config lcfg = {
		.channel = IPC_CHAN_FLOW,
		.self_role = LC__ROLE__ROLE_PROXYD,
		.accept_roles = 1u << LC__ROLE__ROLE_NETSTACKD,
		.cb = &intake_callbacks,
		.name = "flow.sock",
	};
	struct ipc_peer_config ccfg = {
		.channel = IPC_CHAN_FLOW,
		.self_role = LC__ROLE__ROLE_NETSTACKD,
		.accept_roles = 1u << LC__ROLE__ROLE_PROXYD,
		.name = "flow.sock",
		.cb = &client_cb,
	};
	char dir[] = "/tmp/lc-relay-test.XXXXXX", path[64];
	struct ipc_listener *l;
	struct intake *in;
	struct client c = { 0 };
	struct server srv = { 0 };
	Lc__NewFlow nf;
	Lc__Endpoint src, dst;
	Lc__Owner owner;
	int bad[2], good[2], fd;
	char buf[16];

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/flow.sock", dir);
	in = intake_new(t->loop, t->relay);
	assert_non_null(in);
	lcfg.user = in;
	l = ipc_listen(t->loop, path, 0600, &lcfg, NULL, intake_accept);
	assert_non_null(l);
	fd = ipc_connect_path(path);
	assert_true(fd >= 0);
	ccfg.user = &c;
	c.peer = ipc_peer_new(t->loop, fd, 1, &ccfg);
	assert_non_null(c.peer);
	run_until(t, client_ready_cond, &c, 5);

	server_start(&srv, AF_INET, SRV_ECHO, 64);
	mknewflow(&nf, &src, &dst, &owner);
	dst.port = 0;
	flow_socketpair(SOCK_STREAM, bad);
	assert_int_equal(ipc_send(c.peer, LC__MSG_TYPE__MSG_NEW_FLOW, &nf.base,
	    &bad[1], 1), 0);
	close(bad[1]);
	dst.port = srv.port;
	nf.flow_id = 100;
	flow_socketpair(SOCK_STREAM, good);
	assert_int_equal(ipc_send(c.peer, LC__MSG_TYPE__MSG_NEW_FLOW, &nf.base,
	    &good[1], 1), 0);
	close(good[1]);
	assert_int_equal(write(good[0], "via flow.sock", 13), 13);
	shutdown(good[0], SHUT_WR);
	run_until(t, refusal_reported, &c, 5);

	assert_false(c.closed);
	assert_int_equal(intake_nsources(in), 1);
	assert_int_equal(recv(bad[0], buf, sizeof(buf), MSG_DONTWAIT), 0);
	assert_int_equal(recv(good[0], buf, sizeof(buf), MSG_DONTWAIT), 13);
	assert_memory_equal(buf, "via flow.sock", 13);
	assert_int_equal(last_record(t)->meta.source_flow_id, 100);
	assert_string_equal(last_record(t)->meta.owner.process, "curl");

	ipc_close(c.peer, "test over");
	ipc_listener_free(l);
	intake_free(in);
	run_for(t, 0.02);
	close(bad[0]);
	close(good[0]);
	server_stop(&srv);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(tcp_echo_ipv4, setup, teardown),
		cmocka_unit_test_setup_teardown(tcp_echo_ipv6, setup, teardown),
		cmocka_unit_test_setup_teardown(tcp_8mib_both_ways_intact, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(tcp_half_close_from_app, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(tcp_half_close_from_upstream,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(tcp_upstream_refused_resets_tcp_app,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(tcp_upstream_refused_marks_unix_app,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(tcp_upstream_reset_mid_stream,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(tcp_app_reset_resets_upstream,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(tcp_flow_closed_rst_resets_upstream,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(tcp_slow_reader_pauses_writer,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(tcp_slow_app_pauses_server,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(tcp_connect_timeout, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(tcp_flow_cap_refuses_and_records,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(tcp_memory_budget_small_rings,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(tcp_idle_timeout_resets_both,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(tcp_relay_free_resets_running_flows,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    tcp_flow_closed_figures_land_either_order, setup, teardown),
		cmocka_unit_test_setup_teardown(splice_unix_app_both_ways, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(splice_tcp_app_both_ways, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(splice_auto_only_tcp_to_unix,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(splice_half_close_from_app, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(splice_half_close_from_upstream,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(splice_upstream_reset, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(splice_app_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(splice_slow_reader_pauses_writer,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(splice_tls_passthrough, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(splice_no_pipe_falls_back, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(splice_off_copies, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    h2c_origin_speaks_first_still_decoded, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    server_first_settings_lookalike_released, setup, teardown),
		cmocka_unit_test_setup_teardown(server_first_held_then_ended,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(server_first_banner_not_held,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(udp_echo_round_trip_ipv4, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(udp_echo_round_trip_ipv6, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(udp_idle_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(quic_fallback_refuses,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(quic_fallback_hold_expires,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(quic_pass_relays,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(udp_seqpacket_close_ends_flow,
		    setup, teardown),
		cmocka_unit_test(newflow_malformed_refused),
		cmocka_unit_test_setup_teardown(relay_refuses_bad_newflow, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(relay_keeps_the_newflow_exe, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(relay_refusals_rate_limited, setup,
		    teardown),
		cmocka_unit_test(flow_ring_evicts_oldest),
		cmocka_unit_test(flow_ring_of_none_keeps_nothing),
		cmocka_unit_test(flow_addr_formats),
		cmocka_unit_test_setup_teardown(intake_bad_newflow_keeps_source,
		    setup, teardown),
	};

	log_init("test_px_relay", 1, getenv("TEST_VERBOSE") ? LOG_LEVEL_DEBUG :
	    LOG_LEVEL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
