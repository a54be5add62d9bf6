/*
 * Benchmark for proxyd's raw relay (not a test: it prints figures).
 *
 *   bench_relay [MIB] [BUFSIZE_KIB] [RUNS]  (default 1024 MiB, 128 KiB, 1)
 *
 * Moves MIB mebibytes over loopback, one way at a time (upload: the app
 * sends; download: the server sends), and prints MB/s and the relay
 * thread's CPU time per GB for:
 *   direct      app <-TCP-> server, no relay (the ceiling)
 *   relay/unix  app <-socketpair-> relay <-TCP-> server (netstackd's shape)
 *   relay/tcp   app <-TCP-> relay <-TCP-> server (the explicit proxy's shape)
 * each relay shape copying (splice off) and splicing (splice on), in the
 * same run, with the ratio splice/copy of CPU per GB.  With RUNS > 1 each
 * figure is the median of RUNS runs, copy and splice interleaved.  Last,
 * what setting up one pipe costs (pipe2 + F_SETPIPE_SZ + 2 close).
 * The relay runs on a libev loop in the main thread; the app and the server
 * are threads.  Bounded: one connection per run, MIB bytes each.  Build:
 * `make bench` or see docs/proxyd-relay.md.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "log.h"
#include "proxyd/relay.h"

#define CHUNK	(128 * 1024)

static size_t total;
static int upload;		/* 1: app -> server, 0: server -> app */

struct end {
	int		 fd;
	int		 sends;
	pthread_t	 th;
	atomic_int	 done;
	size_t		 moved;
};

static double
now_s(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Send total bytes then close, or read until EOF. */
static void *
end_main(void *arg)
{
	struct end *e = arg;
	static _Thread_local uint8_t buf[CHUNK];
	ssize_t n;

	if (e->sends) {
		memset(buf, 'x', sizeof(buf));
		while (e->moved < total) {
			size_t want = total - e->moved < CHUNK ? total - e->moved :
			    CHUNK;

			if ((n = send(e->fd, buf, want, MSG_NOSIGNAL)) <= 0)
				break;
			e->moved += (size_t)n;
		}
		shutdown(e->fd, SHUT_WR);
	}
	/* Either way, read until EOF so the close is orderly. */
	while ((n = recv(e->fd, buf, sizeof(buf), 0)) > 0)
		if (!e->sends)
			e->moved += (size_t)n;
	if (!e->sends)
		shutdown(e->fd, SHUT_WR);
	atomic_store(&e->done, 1);
	return NULL;
}

static void
end_start(struct end *e, int fd, int sends)
{
	memset(e, 0, sizeof(*e));
	e->fd = fd;
	e->sends = sends;
	atomic_init(&e->done, 0);
	if (pthread_create(&e->th, NULL, end_main, e) != 0)
		fatalx("pthread_create");
}

static void
end_finish(struct end *e)
{
	pthread_join(e->th, NULL);
	close(e->fd);
}

static int
listener(uint16_t *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(fd, 4) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) == -1)
		fatal("listener");
	*port = ntohs(sin.sin_port);
	return fd;
}

static void
tcp_pair(int fds[2])
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	uint16_t port;
	int lfd = listener(&port);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(port);
	fds[0] = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fds[0], (struct sockaddr *)&sin, sizeof(sin)) == -1)
		fatal("connect");
	fds[1] = accept(lfd, NULL, NULL);
	close(lfd);
}

static void
tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

enum shape { DIRECT, RELAY_UNIX, RELAY_TCP };

struct result {
	double	mbps;
	double	cpu_gb;		/* relay thread's CPU s per GB */
	uint64_t spliced;	/* bytes the relay spliced */
};

static struct result
run(enum shape shape, size_t bufsize, int splice)
{
	static const char *names[] = { "direct", "relay/unix", "relay/tcp" };
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct relay_config cfg;
	struct relay *r;
	struct end app, srv;
	struct flow_meta m;
	uint16_t port;
	int lfd = listener(&port), fds[2], sfd;
	double t0, c0, wall, cpu;
	struct result res;
	ev_timer w;

	relay_config_default(&cfg);
	cfg.bufsize = bufsize;
	cfg.splice = splice ? RELAY_SPLICE_ALL : RELAY_SPLICE_OFF;
	r = relay_new(loop, &cfg);
	t0 = now_s(CLOCK_MONOTONIC);
	c0 = now_s(CLOCK_THREAD_CPUTIME_ID);
	if (shape == DIRECT) {
		struct sockaddr_in sin = { .sin_family = AF_INET };

		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin.sin_port = htons(port);
		fds[0] = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(fds[0], (struct sockaddr *)&sin, sizeof(sin)) == -1)
			fatal("connect");
		sfd = accept(lfd, NULL, NULL);
		end_start(&app, fds[0], upload);
		end_start(&srv, sfd, !upload);
	} else {
		if (shape == RELAY_UNIX) {
			if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == -1)
				fatal("socketpair");
		} else
			tcp_pair(fds);
		memset(&m, 0, sizeof(m));
		m.transport = FLOW_TCP;
		m.src.family = m.dst.family = AF_INET;
		memcpy(m.src.addr, "\x7f\0\0\x01", 4);
		memcpy(m.dst.addr, "\x7f\0\0\x01", 4);
		m.dst.port = port;
		snprintf(m.owner.process, sizeof(m.owner.process), "bench");
		m.owner.cgroup[0] = '\0';
		if (relay_start(r, NULL, &m, fds[1]) == 0)
			fatalx("relay_start");
		end_start(&app, fds[0], upload);
		/* The relay's connect completes in the loop: accept after. */
		ev_run(loop, EVRUN_NOWAIT);
		sfd = accept(lfd, NULL, NULL);
		end_start(&srv, sfd, !upload);
		ev_timer_init(&w, tick, 0.05, 0.05);
		ev_timer_start(loop, &w);
		while (relay_stats(r)->flows_active > 0)
			ev_run(loop, EVRUN_ONCE);
		ev_timer_stop(loop, &w);
	}
	end_finish(&app);
	end_finish(&srv);
	wall = now_s(CLOCK_MONOTONIC) - t0;
	cpu = now_s(CLOCK_THREAD_CPUTIME_ID) - c0;
	if ((upload ? srv.moved : app.moved) != total)
		fatalx("%s: moved %zu of %zu bytes", names[shape],
		    upload ? srv.moved : app.moved, total);
	res.mbps = (double)total / 1e6 / wall;
	res.cpu_gb = cpu / ((double)total / 1e9);
	res.spliced = relay_stats(r)->bytes_spliced;
	relay_free(r);
	ev_loop_destroy(loop);
	close(lfd);
	return res;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#define MAX_RUNS	15

/* One shape, copy and splice interleaved runs times: medians. */
static void
compare(enum shape shape, size_t bufsize, int runs)
{
	static const char *names[] = { "direct", "relay/unix", "relay/tcp" };
	double mb[2][MAX_RUNS], cpu[2][MAX_RUNS], m[2], c[2];
	uint64_t spliced = 0;
	struct result res;
	int i, sp;

	for (i = 0; i < runs; i++) {
		for (sp = 0; sp < (shape == DIRECT ? 1 : 2); sp++) {
			res = run(shape, bufsize, sp);
			mb[sp][i] = res.mbps;
			cpu[sp][i] = res.cpu_gb;
			if (sp)
				spliced = res.spliced;
		}
	}
	m[0] = median(mb[0], runs);
	printf("%-9s %-11s", upload ? "upload" : "download", names[shape]);
	if (shape == DIRECT) {
		printf(" %6.0f MB/s\n", m[0]);
		fflush(stdout);
		return;
	}
	c[0] = median(cpu[0], runs);
	m[1] = median(mb[1], runs);
	c[1] = median(cpu[1], runs);
	printf(" copy %6.0f MB/s %5.2f s/GB   splice %6.0f MB/s %5.2f s/GB   "
	    "splice/copy: MB/s %.2f, CPU %.2f%s\n", m[0], c[0], m[1], c[1],
	    m[1] / m[0], c[1] / c[0],
	    spliced * 2 < total ? "  (mostly NOT spliced)" : "");
	fflush(stdout);
}

/* What one pipe costs a flow that gets one: pipe2, F_SETPIPE_SZ, close. */
static void
pipe_cost(size_t bufsize)
{
	const int n = 20000;
	double t0 = now_s(CLOCK_MONOTONIC);
	int i, fds[2];

	for (i = 0; i < n; i++) {
		if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1)
			fatal("pipe2");
		(void)fcntl(fds[1], F_SETPIPE_SZ, (int)bufsize);
		close(fds[0]);
		close(fds[1]);
	}
	printf("one pipe of %zu KiB: %.2f us to set up and close\n",
	    bufsize / 1024, (now_s(CLOCK_MONOTONIC) - t0) / n * 1e6);
}

int
main(int argc, char *argv[])
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
	size_t bufsize = (argc > 2 ? strtoul(argv[2], NULL, 10) : 128) * 1024;
	int runs = argc > 3 ? atoi(argv[3]) : 1;

	if (mib == 0 || mib > 65536 || bufsize < 4096 || bufsize > (64u << 20) ||
	    runs < 1 || runs > MAX_RUNS) {
		fprintf(stderr, "usage: bench_relay [MIB 1..65536] [BUFSIZE_KIB] "
		    "[RUNS 1..%d]\n", MAX_RUNS);
		return 2;
	}
	log_init("bench_relay", 1, LOG_LEVEL_WARN);
	total = mib << 20;
	printf("%zu MiB per run, relay buffer %zu KiB per direction, %ld CPUs, "
	    "median of %d\n", mib, bufsize / 1024,
	    sysconf(_SC_NPROCESSORS_ONLN), runs);
	for (upload = 1; upload >= 0; upload--) {
		compare(DIRECT, bufsize, runs);
		compare(RELAY_UNIX, bufsize, runs);
		compare(RELAY_TCP, bufsize, runs);
	}
	pipe_cost(bufsize);
	printf("proxyd's default (RELAY_SPLICE_AUTO) splices only TCP -> Unix: "
	    "the download relay/unix row\n");
	return 0;
}
