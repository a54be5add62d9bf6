/*
 * mx_sim: the macOS extension's core (macos-extension/core/) driven by a
 * simulated platform into the real proxyd, for test/integration/macos_sim.sh.
 *
 *   mx_sim -m main -r RUNDIR -P PROXYD_PID [-n FLOWS] [-c CONCURRENT] [-D DNS_IP]
 *   mx_sim -m gone -r RUNDIR -P PROXYD_PID
 *   mx_sim -m ctl -r RUNDIR -P PROXYD_PID -S CTLSOCK
 *
 * The simulated platform stands where the Objective-C shim stands on macOS:
 * it implements struct mx_platform with scripted applications (their pid,
 * executable path, the bytes they send, how they end) and delivers every
 * completion later, from the loop, as NE's completion handlers do.  It
 * checks the core's side of the contract on every flow: each direction
 * shut exactly once, the flow released exactly once, no call after the
 * release, at most one read and one write outstanding.
 *
 * main: TCP flows closed every way (orderly with SHA-256 of both
 * directions, app read error, app write error, upstream reset while the
 * app sends and after its end (proxyd's reset marker on flow.sock), server
 * closing first, open failure), the fd count back to its baseline, a
 * stalled proxyd (SIGSTOP) against the core's byte credit, one UDP socket
 * talking to three remotes, DNS, and malformed frames on flow.sock.
 * gone: flows in progress when proxyd is killed.
 * ctl: the extension as redirectord's macOS backend sees it
 * (test/integration/macos_redirectord.sh).  The core starts with no spec;
 * CTLSOCK takes one request per connection, as the shim's provider
 * message does: "spec TEXT" (mx_core_set_spec; answers "ok" or the
 * error), "flow NAME PID" (a TCP flow of that process through the core and
 * proxyd; answers "intercepted", "passed" or "refused"), "quit".
 *
 * Prints "ok - ..." / "not ok - ..." lines and "expect ..." facts for the
 * script to check in proxyd's store; exits 0 only if every check passed.
 * Traffic stays on 127.0.0.1 (the script runs it in a namespace of its own).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <stddef.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <mbedtls/sha256.h>

#include "ipc.h"
#include "log.h"
#include "common.pb-c.h"
#include "macos-extension/core/mx_core.h"

/* --- results ---------------------------------------------------------------------- */

static int passed, failed;

static void
check(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
check(int cond, const char *fmt, ...)
{
	va_list ap;

	printf("%s - ", cond ? "ok" : "not ok");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (cond)
		passed++;
	else
		failed++;
}

static int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the directory's own fd */
}

/* --- the origin: TCP behaviours chosen by the first 4 bytes, UDP echo ------------------- */

static uint16_t origin_port;
static uint16_t udp_ports[3];

static int
write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n > 0) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static void *
origin_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char hdr[4];
	uint8_t buf[65536];
	size_t got = 0;
	ssize_t n;

	while (got < 4) {
		n = recv(fd, hdr + got, 4 - got, 0);
		if (n <= 0)
			goto out;
		got += (size_t)n;
	}
	if (memcmp(hdr, "ECH\n", 4) == 0) {
		/* Echo, header included, until EOF; then EOF back. */
		if (write_all(fd, hdr, 4) < 0)
			goto out;
		while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
			if (write_all(fd, buf, (size_t)n) < 0)
				goto out;
		shutdown(fd, SHUT_WR);
	} else if (memcmp(hdr, "RST\n", 4) == 0) {
		struct linger lg = { 1, 0 };

		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	} else if (memcmp(hdr, "CLS\n", 4) == 0) {
		/* The server speaks and closes first, then drains. */
		if (write_all(fd, "bye\n", 4) < 0)
			goto out;
		shutdown(fd, SHUT_WR);
		while (recv(fd, buf, sizeof(buf), 0) > 0)
			;
	}
out:
	close(fd);
	return NULL;
}

static void *
origin_main(void *arg)
{
	int lfd = (int)(intptr_t)arg;

	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		pthread_t t;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED ||
			    errno == EMFILE)
				continue;
			return NULL;
		}
		if (pthread_create(&t, NULL, origin_conn,
		    (void *)(intptr_t)fd) != 0) {
			close(fd);
			continue;
		}
		pthread_detach(t);
	}
}

/* Three UDP echo servers; each reply says which one answered. */
static void *
udp_main(void *arg)
{
	int *fds = arg;
	struct pollfd pf[3];
	uint8_t buf[2048];
	int i;

	for (i = 0; i < 3; i++)
		pf[i] = (struct pollfd){ fds[i], POLLIN, 0 };
	for (;;) {
		if (poll(pf, 3, -1) < 0)
			continue;
		for (i = 0; i < 3; i++) {
			struct sockaddr_storage ss;
			socklen_t sl = sizeof(ss);
			char out[2100];
			ssize_t n;
			int m;

			if (!(pf[i].revents & POLLIN))
				continue;
			n = recvfrom(fds[i], buf, sizeof(buf) - 1, 0,
			    (struct sockaddr *)&ss, &sl);
			if (n <= 0)
				continue;
			m = snprintf(out, sizeof(out), "%u:%.*s",
			    (unsigned)udp_ports[i], (int)n, (const char *)buf);
			sendto(fds[i], out, (size_t)m, 0,
			    (struct sockaddr *)&ss, sl);
		}
	}
	return NULL;
}

static uint16_t
bind_loopback(int type, int *fdp)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0), one = 1;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    (type == SOCK_STREAM && listen(fd, 1024) < 0) ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl) < 0) {
		perror("origin");
		exit(2);
	}
	*fdp = fd;
	return ntohs(sin.sin_port);
}

static void
start_origin(void)
{
	static int ufds[3];
	pthread_t t;
	int lfd, i;

	origin_port = bind_loopback(SOCK_STREAM, &lfd);
	for (i = 0; i < 3; i++)
		udp_ports[i] = bind_loopback(SOCK_DGRAM, &ufds[i]);
	pthread_create(&t, NULL, origin_main, (void *)(intptr_t)lfd);
	pthread_detach(t);
	pthread_create(&t, NULL, udp_main, ufds);
	pthread_detach(t);
}

/* --- the simulated platform ---------------------------------------------------------- */

enum way {
	WAY_ECHO,		/* orderly, SHA-256 both ways */
	WAY_APP_READ_ERR,	/* the app's socket fails (read error) */
	WAY_APP_WRITE_ERR,	/* writing to the app fails (app reset) */
	WAY_UPSTREAM_RST,	/* the server resets */
	/* The server resets after the app ended its side: the flow socket's
	 * close alone reads as an orderly end, so only proxyd's reset marker
	 * on flow.sock (FlowClosed "reset") makes it a reset. */
	WAY_UPSTREAM_RST_HALF,
	WAY_SERVER_CLOSE,	/* the server closes first */
	WAY_OPEN_FAIL,		/* openWithLocalEndpoint: fails */
	WAY_UDP,		/* a UDP socket, script in udp_* */
	NWAYS_TCP = WAY_UDP,
};

static const char *const way_names[] = {
	"orderly echo", "app read error", "app write error", "upstream reset",
	"upstream reset after the app's end", "server closes first",
	"open fails", "udp",
};

struct app {
	struct app		*next_live;
	int			 idx;
	enum way		 way;
	struct mx_flow		*flow;
	struct mx_flow_meta	 meta;
	uint32_t		 pid;
	char			 path[128];
	uint32_t		 rng;

	/* script */
	uint64_t		 to_send;	/* after the 4-byte header */
	bool			 hold;		/* after sending: keep the read open */
	bool			 stall_read;	/* hold reads until released by the test */

	/* state */
	uint64_t		 sent, received;
	bool			 eof_sent, read_out, read_held, write_out;
	bool			 opened, released;
	bool			 orphan;	/* its phase gave up: free on release */
	int			 shut_rd, shut_wr, shut_rd_err, shut_wr_err;
	int			 contract_errors;
	mbedtls_sha256_context	 sha_out, sha_in;
	uint8_t			 buf[MX_CREDIT];
	char			 head[8];	/* first bytes received */

	/* UDP */
	int			 udp_round;
	struct mx_dgram		 dg[4];
	char			 dgdata[4][64];
	int			 udp_replies[3];
	int			 udp_wrong;
	bool			 dns;
	/* churn: remotes that come and go (see phase_udp_churn) */
	bool			 churn;
	int			 churn_stage;
	bool			 churn_waiting;
	ev_timer		 churn_timer;
	struct mx_dgram		 cdg[40];
	char			 cdata[40][32];
	uint8_t			 dns_answer[512];
	size_t			 dns_answer_len;
	void			(*on_release)(struct app *);
};

static void	app_free(struct app *);

enum comp_kind { C_OPEN, C_READ, C_WRITE };

struct comp {
	struct comp	*next;
	enum comp_kind	 kind;
	struct app	*a;
	int		 err;
	size_t		 len;
};

static struct {
	struct ev_loop	*loop;
	struct mx_core	*core;
	ev_idle		 idle;
	struct comp	*head, *tail;
	uint64_t	 apps_live, apps_done;
	uint64_t	 contract_errors;
	int		 failed_flows[NWAYS_TCP + 1];
	int		 done_flows[NWAYS_TCP + 1];
	bool		 stop_when_idle;
	uint64_t	 stop_at_done;
} sim;

static void
enqueue(enum comp_kind k, struct app *a, int err, size_t len)
{
	struct comp *c = calloc(1, sizeof(*c));

	if (c == NULL)
		abort();
	c->kind = k;
	c->a = a;
	c->err = err;
	c->len = len;
	if (sim.tail != NULL)
		sim.tail->next = c;
	else
		sim.head = c;
	sim.tail = c;
	ev_idle_start(sim.loop, &sim.idle);
}

static void
contract(struct app *a, const char *what)
{
	a->contract_errors++;
	sim.contract_errors++;
	if (sim.contract_errors <= 10)
		printf("# flow %d (%s): contract broken: %s\n", a->idx,
		    way_names[a->way], what);
}

static uint32_t
xorshift(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static int
sim_proc_info(void *ctx, const uint8_t *token, size_t len, struct mx_proc *out)
{
	const struct app *a;

	(void)ctx;
	(void)len;
	/* The simulated token carries the app's pointer: the "kernel" knows. */
	memcpy(&a, token, sizeof(a));
	/* A recycled allocation is another process: the rest of the token
	 * (index, pid) differs, as pidversion does on macOS. */
	out->pid = a->pid;
	out->pidversion = 1;
	out->uid = 501;
	out->gid = 20;
	snprintf(out->path, sizeof(out->path), "%s", a->path);
	return 0;
}

static void
sim_open(void *ctx, void *pflow, struct mx_flow *f)
{
	struct app *a = pflow;

	(void)ctx;
	if (a->released)
		contract(a, "open after release");
	a->flow = f;
	enqueue(C_OPEN, a, a->way == WAY_OPEN_FAIL ? EHOSTUNREACH : 0, 0);
}

/* Produce the app's next bytes (or EOF, or an error) for one read. */
static void
tcp_produce(struct app *a, size_t max)
{
	size_t n, i, r;

	if (a->way == WAY_APP_READ_ERR && a->sent >= 4 + a->to_send) {
		enqueue(C_READ, a, ECONNRESET, 0);
		return;
	}
	if (a->sent < 4) {
		const char *h = a->way == WAY_UPSTREAM_RST ||
		    a->way == WAY_UPSTREAM_RST_HALF ? "RST\n" :
		    a->way == WAY_SERVER_CLOSE ? "CLS\n" : "ECH\n";

		memcpy(a->buf, h, 4);
		n = 4;
	} else if (a->sent < 4 + a->to_send) {
		n = 4 + a->to_send - a->sent;
		if (n > max)
			n = max;
		/* uneven sizes, as real reads are */
		r = 1 + xorshift(&a->rng) % MX_CREDIT;
		if (n > r)
			n = r;
		if (n > max)
			n = max;
		for (i = 0; i < n; i++)
			a->buf[i] = (uint8_t)xorshift(&a->rng);
	} else if (a->hold || a->stall_read) {
		a->read_held = true;
		return;
	} else {
		a->eof_sent = true;
		enqueue(C_READ, a, 0, 0);
		return;
	}
	if (n > max)
		contract(a, "header larger than the credit");
	mbedtls_sha256_update(&a->sha_out, a->buf, n);
	a->sent += n;
	enqueue(C_READ, a, 0, n);
}

static bool udp_all_answered(const struct app *);

/* n datagrams from index `from`: to the echo servers (closed false), or to
 * 127.0.0.2 ports nobody listens on (closed true). */
static void
churn_send(struct app *a, int from, int n, bool closed)
{
	int i;

	for (i = 0; i < n; i++) {
		struct mx_dgram *d = &a->cdg[i];

		snprintf(a->cdata[i], sizeof(a->cdata[i]), "churn %d/%d",
		    a->churn_stage, from + i);
		memset(d, 0, sizeof(*d));
		d->data = a->cdata[i];
		d->len = strlen(a->cdata[i]);
		d->remote.family = 4;
		d->remote.addr[0] = 127;
		d->remote.addr[3] = closed ? 2 : 1;
		d->remote.port = closed ? (uint16_t)(20000 + from + i) :
		    udp_ports[(from + i) % 3];
	}
	enqueue(C_READ, a, 0, (size_t)n);
}

static bool
churn_replies(const struct app *a, int each)
{
	return a->udp_replies[0] >= each && a->udp_replies[1] >= each &&
	    a->udp_replies[2] >= each;
}

static void churn_kick(struct app *);

static void
churn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct app *a = (struct app *)(void *)((char *)w -
	    offsetof(struct app, churn_timer));

	(void)loop;
	(void)revents;
	a->churn_stage = 2;
	a->churn_waiting = false;
	churn_kick(a);
}

/*
 * The churn script: 3 echo remotes; idle past proxyd's UDP timeout, so
 * that proxyd ends those flows; the same 3 again (new subflows); 70
 * remotes nobody answers (more than MX_UDP_MAX_REMOTES: the oldest give
 * way); the 3 echo remotes once more; then close.
 */
static void
churn_produce(struct app *a)
{
	switch (a->churn_stage) {
	case 0:
		a->churn_stage = 1;
		churn_send(a, 0, 3, false);
		return;
	case 2:
		a->churn_stage = 3;
		churn_send(a, 0, 3, false);
		return;
	case 4:
		a->churn_stage = 5;
		churn_send(a, 0, 35, true);
		return;
	case 5:
		a->churn_stage = 6;
		churn_send(a, 35, 35, true);
		return;
	case 6:
		a->churn_stage = 7;
		churn_send(a, 0, 3, false);
		return;
	default:
		a->read_held = true;
		churn_kick(a);
	}
}

/* A held read goes on once the stage's replies are in. */
static void
churn_kick(struct app *a)
{
	if (!a->read_held || a->released)
		return;
	switch (a->churn_stage) {
	case 1:
		if (churn_replies(a, 1) && !a->churn_waiting) {
			/* idle: proxyd runs with --udp-timeout 1 */
			a->churn_waiting = true;
			ev_timer_init(&a->churn_timer, churn_timer_cb, 2.5, 0);
			ev_timer_start(sim.loop, &a->churn_timer);
		}
		return;
	case 2:
	case 4:
		break;
	case 3:
		if (!churn_replies(a, 2))
			return;
		a->churn_stage = 4;
		break;
	case 7:
		if (!churn_replies(a, 3))
			return;
		a->read_held = false;
		a->eof_sent = true;
		enqueue(C_READ, a, 0, 0);
		return;
	default:
		return;
	}
	a->read_held = false;
	churn_produce(a);
}

static void
udp_produce(struct app *a)
{
	int i;

	if (a->churn) {
		churn_produce(a);
		return;
	}

	if (a->dns) {
		if (a->udp_round++ == 0) {
			/* A query for mx.test A, id 0x4d58. */
			static const uint8_t q[] = {
				0x4d, 0x58, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
				2, 'm', 'x', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1,
			};

			memcpy(a->dgdata[0], q, sizeof(q));
			a->dg[0].data = a->dgdata[0];
			a->dg[0].len = sizeof(q);
			a->dg[0].remote = a->meta.remote;
			enqueue(C_READ, a, 0, 1);
			return;
		}
	} else if (a->udp_round < 2)
		goto send_round;
	/* Everything sent: wait for the replies, then close. */
	if (udp_all_answered(a)) {
		a->eof_sent = true;
		enqueue(C_READ, a, 0, 0);
	} else
		a->read_held = true;
	return;
send_round:
	for (i = 0; i < 3; i++) {
		snprintf(a->dgdata[i], sizeof(a->dgdata[i]), "round %d to %d",
		    a->udp_round, i);
		a->dg[i].data = a->dgdata[i];
		a->dg[i].len = strlen(a->dgdata[i]);
		a->dg[i].remote.family = 4;
		a->dg[i].remote.addr[0] = 127;
		a->dg[i].remote.addr[3] = 1;
		a->dg[i].remote.port = udp_ports[i];
	}
	a->udp_round++;
	enqueue(C_READ, a, 0, 3);
}

static void
sim_read(void *ctx, void *pflow, size_t max)
{
	struct app *a = pflow;

	(void)ctx;
	if (a->released)
		contract(a, "read after release");
	if (a->read_out)
		contract(a, "second read outstanding");
	if (a->shut_rd)
		contract(a, "read after closeRead");
	a->read_out = true;
	if (a->meta.transport == MX_UDP)
		udp_produce(a);
	else
		tcp_produce(a, max);
}

/* The app gets a reply; UDP apps close once every reply is in. */
static void
udp_consume(struct app *a, const void *data, size_t len,
    const struct mx_endpoint *from)
{
	int i;

	if (a->dns) {
		if (len <= sizeof(a->dns_answer)) {
			memcpy(a->dns_answer, data, len);
			a->dns_answer_len = len;
		}
	} else {
		char want[16];
		int n;

		for (i = 0; i < 3; i++)
			if (from != NULL && from->port == udp_ports[i])
				break;
		n = snprintf(want, sizeof(want), "%u:", i < 3 ?
		    (unsigned)udp_ports[i] : 0u);
		if (i == 3 || len < (size_t)n || memcmp(data, want,
		    (size_t)n) != 0)
			a->udp_wrong++;
		else
			a->udp_replies[i]++;
	}
}

static bool
udp_all_answered(const struct app *a)
{
	if (a->dns)
		return a->dns_answer_len > 0;
	return a->udp_replies[0] >= 2 && a->udp_replies[1] >= 2 &&
	    a->udp_replies[2] >= 2;
}

static void
sim_write(void *ctx, void *pflow, const void *data, size_t len,
    const struct mx_endpoint *remote)
{
	struct app *a = pflow;

	(void)ctx;
	if (a->released)
		contract(a, "write after release");
	if (a->write_out)
		contract(a, "second write outstanding");
	if (a->shut_wr)
		contract(a, "write after closeWrite");
	a->write_out = true;
	if (a->meta.transport == MX_UDP) {
		udp_consume(a, data, len, remote);
		enqueue(C_WRITE, a, 0, len);
		return;
	}
	if (a->received < sizeof(a->head)) {
		size_t n = sizeof(a->head) - a->received;

		memcpy(a->head + a->received, data, n < len ? n : len);
	}
	a->received += len;
	mbedtls_sha256_update(&a->sha_in, data, len);
	enqueue(C_WRITE, a, a->way == WAY_APP_WRITE_ERR ? ECONNRESET : 0, len);
}

static void
sim_shutdown(void *ctx, void *pflow, int how, int err)
{
	struct app *a = pflow;

	(void)ctx;
	if (a->released)
		contract(a, "shutdown after release");
	if (how == MX_SHUT_RD) {
		if (a->shut_rd++)
			contract(a, "closeRead twice");
		a->shut_rd_err = err;
		/* NE completes a pending read when the flow is closed. */
		if (a->read_held) {
			a->read_held = false;
			enqueue(C_READ, a, ECANCELED, 0);
		}
	} else {
		if (a->shut_wr++)
			contract(a, "closeWrite twice");
		a->shut_wr_err = err;
		/* The server closed: an app that was waiting closes too. */
		if (err == 0 && a->read_held && a->meta.transport == MX_TCP &&
		    !a->stall_read) {
			a->read_held = false;
			a->eof_sent = true;
			enqueue(C_READ, a, 0, 0);
		}
	}
}

static void
sim_release(void *ctx, void *pflow)
{
	struct app *a = pflow;

	(void)ctx;
	if (a->released)
		contract(a, "released twice");
	a->released = true;
	if (a->read_out || a->write_out)
		contract(a, "released with a completion owed");
	if (a->shut_rd != 1 || a->shut_wr != 1)
		contract(a, "released without closing both directions once");
	sim.apps_live--;
	sim.apps_done++;
	if (a->orphan)
		app_free(a);
	else if (a->on_release != NULL)
		a->on_release(a);
	if (sim.stop_at_done != 0 && sim.apps_done >= sim.stop_at_done)
		ev_break(sim.loop, EVBREAK_ALL);
}

static const struct mx_platform sim_platform = {
	.proc_info = sim_proc_info,
	.open = sim_open,
	.read = sim_read,
	.write = sim_write,
	.shutdown = sim_shutdown,
	.release = sim_release,
};

static void
run_completions(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct comp *c;
	int budget = 256;

	(void)revents;
	while ((c = sim.head) != NULL && budget-- > 0) {
		struct app *a = c->a;

		sim.head = c->next;
		if (sim.head == NULL)
			sim.tail = NULL;
		switch (c->kind) {
		case C_OPEN:
			a->opened = true;
			mx_flow_opened(a->flow, c->err);
			break;
		case C_READ:
			a->read_out = false;
			if (a->meta.transport == MX_UDP)
				mx_udp_read_done(a->flow,
				    a->churn ? a->cdg : a->dg,
				    c->err ? 0 : c->len, c->err);
			else
				mx_tcp_read_done(a->flow, a->buf, c->len,
				    c->err);
			break;
		case C_WRITE: {
			/* a TCP app may be freed by its release in there */
			bool udp = a->meta.transport == MX_UDP;

			a->write_out = false;
			mx_write_done(a->flow, c->err);
			/* Every reply in: the UDP app closes its socket (UDP
			 * apps are freed by their phase, never on release). */
			if (udp && a->churn)
				churn_kick(a);
			else if (udp && !a->released &&
			    a->read_held && udp_all_answered(a)) {
				a->read_held = false;
				a->eof_sent = true;
				enqueue(C_READ, a, 0, 0);
			}
			break;
		}
		}
		free(c);
	}
	if (sim.head == NULL)
		ev_idle_stop(loop, w);
}

/* --- starting apps ------------------------------------------------------------------- */

static struct app *
app_new(int idx, enum way way, uint32_t pid, const char *name)
{
	struct app *a = calloc(1, sizeof(*a));

	if (a == NULL)
		abort();
	a->idx = idx;
	a->way = way;
	a->pid = pid;
	a->rng = 2463534242u + (uint32_t)idx * 7919u;
	snprintf(a->path, sizeof(a->path), "/Applications/Sim.app/Contents/"
	    "MacOS/%s", name);
	mbedtls_sha256_init(&a->sha_out);
	mbedtls_sha256_init(&a->sha_in);
	mbedtls_sha256_starts(&a->sha_out, 0);
	mbedtls_sha256_starts(&a->sha_in, 0);
	memcpy(a->meta.audit_token, &a, sizeof(a));
	memcpy(a->meta.audit_token + sizeof(a), &idx, sizeof(idx));
	memcpy(a->meta.audit_token + sizeof(a) + sizeof(idx), &pid, sizeof(pid));
	a->meta.transport = way == WAY_UDP ? MX_UDP : MX_TCP;
	a->meta.remote.family = 4;
	a->meta.remote.addr[0] = 127;
	a->meta.remote.addr[3] = 1;
	a->meta.remote.port = origin_port;
	return a;
}

/* handleNewFlow: decide, then take it on the loop.  1 if taken. */
static int
app_start(struct app *a)
{
	struct mx_proc p;
	int rc = mx_core_decide(sim.core, &a->meta, &p);

	if (rc != 1)
		return rc;
	sim.apps_live++;
	mx_flow_take(sim.core, a, &a->meta, &p);
	return 1;
}

/* An app the core still holds (a failed phase) is left to the core. */
static void
app_free(struct app *a)
{
	if (a->flow != NULL && !a->released) {
		a->orphan = true;
		return;
	}
	mbedtls_sha256_free(&a->sha_out);
	mbedtls_sha256_free(&a->sha_in);
	free(a);
}

/* --- main: TCP flows every way ------------------------------------------------------- */

static int tcp_total, tcp_started, tcp_concurrent;
static int tcp_bad[NWAYS_TCP];
static uint64_t tcp_bytes;

static void tcp_next(void);

static int
tcp_judge(struct app *a)
{
	uint8_t out[32], in[32];

	if (a->contract_errors)
		return 0;
	switch (a->way) {
	case WAY_ECHO:
		mbedtls_sha256_finish(&a->sha_out, out);
		mbedtls_sha256_finish(&a->sha_in, in);
		return a->received == a->sent && memcmp(out, in, 32) == 0 &&
		    a->shut_rd_err == 0 && a->shut_wr_err == 0;
	case WAY_SERVER_CLOSE:
		return a->received == 4 && memcmp(a->head, "bye\n", 4) == 0 &&
		    a->shut_rd_err == 0 && a->shut_wr_err == 0;
	case WAY_UPSTREAM_RST:
	case WAY_UPSTREAM_RST_HALF:
		/* the server's reset reaches the app as a reset, not an EOF */
		return a->shut_wr_err == ECONNRESET;
	case WAY_APP_READ_ERR:
	case WAY_APP_WRITE_ERR:
	case WAY_OPEN_FAIL:
		return a->shut_rd_err != 0 && a->shut_wr_err != 0;
	default:
		return 0;
	}
}

static void
tcp_released(struct app *a)
{
	if (!tcp_judge(a)) {
		if (tcp_bad[a->way]++ < 3)
			printf("# flow %d (%s) ended wrong: sent %llu received "
			    "%llu, rd err %d, wr err %d\n", a->idx,
			    way_names[a->way], (unsigned long long)a->sent,
			    (unsigned long long)a->received, a->shut_rd_err,
			    a->shut_wr_err);
	}
	tcp_bytes += a->sent + a->received;
	app_free(a);
	tcp_next();
}

static void
tcp_next(void)
{
	while (tcp_started < tcp_total &&
	    (int)sim.apps_live < tcp_concurrent) {
		int i = tcp_started++, k = i % 50;
		char name[16];
		struct app *a;

		snprintf(name, sizeof(name), "sim%d", k);
		a = app_new(i, (enum way)(i % NWAYS_TCP), 40000 + (uint32_t)k,
		    name);
		/* mostly small; every 500th 1 MiB */
		a->to_send = i % 500 == 0 ? (1u << 20) :
		    1 + xorshift(&a->rng) % 16384;
		a->hold = a->way == WAY_APP_WRITE_ERR ||
		    a->way == WAY_UPSTREAM_RST || a->way == WAY_SERVER_CLOSE;
		if (a->way == WAY_UPSTREAM_RST ||
		    a->way == WAY_UPSTREAM_RST_HALF ||
		    a->way == WAY_SERVER_CLOSE)
			a->to_send = 0;
		a->on_release = tcp_released;
		if (app_start(a) != 1) {
			tcp_bad[a->way]++;
			app_free(a);
		}
	}
}

static void
deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)revents;
	*(int *)w->data = 1;
	ev_break(loop, EVBREAK_ALL);
}

/* Run the loop until cond() or `secs`; 0 on time. */
static int
run_until(bool (*cond)(void), double secs)
{
	ev_timer t;
	int expired = 0;

	ev_timer_init(&t, deadline_cb, secs, 0);
	t.data = &expired;
	ev_timer_start(sim.loop, &t);
	while (!cond() && !expired)
		ev_run(sim.loop, EVRUN_ONCE);
	ev_timer_stop(sim.loop, &t);
	return cond() ? 0 : -1;
}

static bool cond_connected(void) { return mx_core_connected(sim.core); }
static bool cond_disconnected(void) { return !mx_core_connected(sim.core); }
static bool cond_tcp_done(void)
{
	return tcp_started == tcp_total && sim.apps_live == 0 && sim.head == NULL;
}
static int fd_baseline;
static bool cond_fds_back(void) { return count_fds() == fd_baseline; }
static bool cond_no_live(void) { return sim.apps_live == 0 && sim.head == NULL; }

static void
phase_tcp(int total, int concurrent)
{
	struct timespec t0, t1;
	double secs;
	int w, bad = 0, rc;

	fd_baseline = count_fds();
	tcp_total = total;
	tcp_concurrent = concurrent;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	tcp_next();
	rc = run_until(cond_tcp_done, 45);
	check(rc == 0, "%d TCP flows through the core and proxyd all ended "
	    "(%d started, %llu live)", total, tcp_started,
	    (unsigned long long)sim.apps_live);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	for (w = 0; w < NWAYS_TCP; w++) {
		check(tcp_bad[w] == 0, "every '%s' flow ended as it should "
		    "(%d of %d wrong)", way_names[w], tcp_bad[w],
		    (total + NWAYS_TCP - 1 - w) / NWAYS_TCP);
		bad += tcp_bad[w];
	}
	check(sim.contract_errors == 0, "the core kept the platform contract "
	    "on every flow: each direction closed once, one release, nothing "
	    "after it, one read and one write outstanding at most (%llu "
	    "breaches)", (unsigned long long)sim.contract_errors);
	rc = run_until(cond_fds_back, 10);
	check(rc == 0, "the fd count is back to its baseline (%d, now %d)",
	    fd_baseline, count_fds());
	printf("# %d flows in %.2f s (%.0f flows/s), %.1f MiB both ways; the "
	    "most one flow held: %llu bytes; all flows at once: %llu bytes\n",
	    total, secs, total / secs, (double)tcp_bytes / 1048576.0,
	    (unsigned long long)mx_core_stats(sim.core)->flow_buffered_max,
	    (unsigned long long)mx_core_stats(sim.core)->buffered_max);
	check(mx_core_stats(sim.core)->flow_buffered_max <= 2 * MX_CREDIT,
	    "no flow held more than its credit each way (%llu <= 2 x %u bytes)",
	    (unsigned long long)mx_core_stats(sim.core)->flow_buffered_max,
	    MX_CREDIT);
	printf("expect tcp %d\n", total);
	(void)bad;
}

/* --- main: a stalled proxyd ----------------------------------------------------------- */

static struct app *stall_app;
static pid_t proxyd_pid;
static bool stall_released;

static void
stall_released_cb(struct app *a)
{
	(void)a;
	stall_released = true;
}

static bool cond_stall_released(void) { return stall_released; }
static bool cond_never(void) { return false; }

static void
phase_stall(void)
{
	const uint64_t big = 8u << 20;
	uint64_t took, bound = MX_CREDIT + 4 * (uint64_t)MX_SOCKBUF + 4;
	uint8_t out[32], in[32];
	const struct mx_stats *st = mx_core_stats(sim.core);
	uint64_t held_before = st->flow_buffered_max;

	stall_app = app_new(900000, WAY_ECHO, 41000, "stallapp");
	stall_app->to_send = big;
	stall_app->on_release = stall_released_cb;
	if (getenv("MX_NOSTOP") == NULL && kill(proxyd_pid, SIGSTOP) < 0) {
		check(0, "stop proxyd: %s", strerror(errno));
		return;
	}
	(void)held_before;
	if (app_start(stall_app) != 1) {
		kill(proxyd_pid, SIGCONT);
		check(0, "the stall flow was intercepted");
		return;
	}
	(void)run_until(cond_never, 1.5);
	took = stall_app->sent;
	printf("# proxyd stopped: the app could hand over %llu of %llu bytes; "
	    "the core held at most %llu (credit %u, socket buffers %d)\n",
	    (unsigned long long)took, (unsigned long long)big,
	    (unsigned long long)st->flow_buffered_max, MX_CREDIT, MX_SOCKBUF);
	check(took <= bound, "a stalled proxyd caps what the app hands over "
	    "at the credit plus socket buffers (%llu <= %llu bytes)",
	    (unsigned long long)took, (unsigned long long)bound);
	check(st->flow_buffered_max <= 2 * MX_CREDIT, "the core itself held "
	    "at most MX_CREDIT = %u bytes each way for the flow (%llu both)",
	    MX_CREDIT, (unsigned long long)st->flow_buffered_max);
	kill(proxyd_pid, SIGCONT);
	check(run_until(cond_stall_released, 30) == 0,
	    "once proxyd runs again the 8 MiB flow completes");
	mbedtls_sha256_finish(&stall_app->sha_out, out);
	mbedtls_sha256_finish(&stall_app->sha_in, in);
	check(stall_app->received == big + 4 && memcmp(out, in, 32) == 0,
	    "and its bytes are SHA-256 identical both ways (%llu sent, %llu "
	    "echoed)", (unsigned long long)stall_app->sent,
	    (unsigned long long)stall_app->received);
	app_free(stall_app);
}

/* --- main: UDP to three remotes, and DNS ---------------------------------------------- */

static bool udp_released;
static void udp_released_cb(struct app *a) { (void)a; udp_released = true; }
static bool cond_udp_released(void) { return udp_released; }

static void
phase_udp(void)
{
	struct app *a = app_new(800000, WAY_UDP, 42000, "udpapp");
	uint64_t subs0 = mx_core_stats(sim.core)->udp_subflows;
	int rc;

	a->meta.local.family = 4;
	a->meta.local.addr[0] = 127;
	a->meta.local.addr[3] = 1;
	a->meta.local.port = 50505;
	a->meta.remote.port = udp_ports[0];
	a->on_release = udp_released_cb;
	check(app_start(a) == 1, "the UDP socket is intercepted");
	rc = run_until(cond_udp_released, 15);
	check(rc == 0,
	    "one UDP socket talking to 3 remotes: every datagram answered, "
	    "then the socket closes (replies %d/%d/%d, wrong %d)",
	    a->udp_replies[0], a->udp_replies[1], a->udp_replies[2],
	    a->udp_wrong);
	check(a->udp_wrong == 0 && udp_all_answered(a),
	    "each reply came from the remote it was sent to");
	check(mx_core_stats(sim.core)->udp_subflows - subs0 == 3,
	    "the 3 remotes became 3 flows, each with one destination (%llu)",
	    (unsigned long long)(mx_core_stats(sim.core)->udp_subflows - subs0));
	check(a->contract_errors == 0, "the UDP flow kept the contract");
	printf("expect udp 3 pid 42000 name udpapp\n");
	app_free(a);
}

static void
phase_udp_churn(void)
{
	struct app *a = app_new(800002, WAY_UDP, 42001, "udpchurn");
	uint64_t subs0 = mx_core_stats(sim.core)->udp_subflows, subs;
	int rc;

	a->churn = true;
	a->meta.local.family = 4;
	a->meta.local.addr[0] = 127;
	a->meta.local.addr[3] = 1;
	a->meta.local.port = 50507;
	a->meta.remote.port = udp_ports[0];
	udp_released = false;
	a->on_release = udp_released_cb;
	check(app_start(a) == 1, "the churning UDP socket is intercepted");
	rc = run_until(cond_udp_released, 30);
	subs = mx_core_stats(sim.core)->udp_subflows - subs0;
	check(rc == 0 && a->udp_wrong == 0, "a UDP socket whose remotes come "
	    "and go is answered each time by the right remote (replies "
	    "%d/%d/%d, wrong %d)", a->udp_replies[0], a->udp_replies[1],
	    a->udp_replies[2], a->udp_wrong);
	/* 3, then 3 new after proxyd ended the first (the core learns it on
	 * the next send), 70 more (the oldest, the echo remotes among them,
	 * give way at %d), then the 3 echo remotes anew. */
	printf("# churn: %llu subflows, %llu datagrams dropped in all\n",
	    (unsigned long long)subs,
	    (unsigned long long)mx_core_stats(sim.core)->dgrams_dropped);
	check(subs == 3 + 3 + 70 + 3, "remotes proxyd ended are reopened, "
	    "and past %d remotes the least recently used give way (%llu "
	    "subflows, 79 expected)", MX_UDP_MAX_REMOTES,
	    (unsigned long long)subs);
	check(a->contract_errors == 0, "the churning flow kept the contract");
	ev_timer_stop(sim.loop, &a->churn_timer);
	app_free(a);
}

static void
phase_dns(const char *dns_ip)
{
	struct app *a = app_new(800001, WAY_UDP, 43000, "dnsapp");
	static const uint8_t want[4] = { 10, 1, 2, 3 };
	bool found = false;
	size_t i;

	a->dns = true;
	a->meta.local.family = 4;
	a->meta.local.addr[0] = 127;
	a->meta.local.addr[3] = 1;
	a->meta.local.port = 50506;
	inet_pton(AF_INET, dns_ip, a->meta.remote.addr);
	a->meta.remote.port = 53;
	udp_released = false;
	a->on_release = udp_released_cb;
	check(app_start(a) == 1, "the DNS socket is intercepted");
	check(run_until(cond_udp_released, 15) == 0,
	    "the DNS query through the core is answered");
	for (i = 0; i + 4 <= a->dns_answer_len; i++)
		if (memcmp(a->dns_answer + i, want, 4) == 0)
			found = true;
	check(a->dns_answer_len > 12 && a->dns_answer[0] == 0x4d &&
	    a->dns_answer[1] == 0x58 && found,
	    "the answer is the server's (id 0x4d58, A 10.1.2.3)");
	printf("expect dns 1 pid 43000 name dnsapp qname mx.test\n");
	app_free(a);
}

/* --- main: malformed frames from the extension side ----------------------------------- */

static int
raw_connect(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static void
put_header(uint8_t *h, uint32_t len, uint16_t type, uint8_t nfds)
{
	h[0] = (uint8_t)(len >> 24);
	h[1] = (uint8_t)(len >> 16);
	h[2] = (uint8_t)(len >> 8);
	h[3] = (uint8_t)len;
	h[4] = (uint8_t)(type >> 8);
	h[5] = (uint8_t)type;
	h[6] = nfds;
	h[7] = 0;
}

/* Wait (driving our loop, so the core keeps working) until fd reads EOF. */
static int closed_fd = -1;
static bool
cond_peer_closed(void)
{
	char b[4096];
	ssize_t n;

	while ((n = recv(closed_fd, b, sizeof(b), MSG_DONTWAIT)) > 0)
		;
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static int
send_hello(int fd)
{
	Lc__Hello h;
	uint8_t buf[256];
	size_t n;

	lc__hello__init(&h);
	h.protocol_version = LC__PROTOCOL__PROTOCOL_VERSION;
	h.role = LC__ROLE__ROLE_REDIRECTORD;
	h.software_version = (char *)(uintptr_t)"mx_sim";
	n = lc__hello__pack(&h, buf + 8);
	put_header(buf, (uint32_t)n, LC__MSG_TYPE__MSG_HELLO, 0);
	return write_all(fd, buf, n + 8);
}

static bool echo_released;
static struct app *echo_app;
static void echo_released_cb(struct app *a) { (void)a; echo_released = true; }
static bool cond_echo_released(void) { return echo_released; }

static void
one_echo_flow(const char *what)
{
	uint8_t out[32], in[32];

	echo_released = false;
	echo_app = app_new(700000, WAY_ECHO, 44000, "echoapp");
	echo_app->to_send = 100000;
	echo_app->on_release = echo_released_cb;
	if (app_start(echo_app) != 1) {
		check(0, "%s: the flow was intercepted", what);
		app_free(echo_app);
		return;
	}
	(void)run_until(cond_echo_released, 15);
	mbedtls_sha256_finish(&echo_app->sha_out, out);
	mbedtls_sha256_finish(&echo_app->sha_in, in);
	check(echo_released && echo_app->received == echo_app->sent &&
	    memcmp(out, in, 32) == 0, "%s", what);
	app_free(echo_app);
}

static void
phase_bad_frames(const char *sock)
{
	uint8_t frame[64];
	uint64_t losses = mx_core_stats(sim.core)->proxyd_losses;
	int fd;

	/* An oversized frame, judged on its header alone. */
	if ((fd = raw_connect(sock)) < 0) {
		check(0, "connect to flow.sock: %s", strerror(errno));
		return;
	}
	put_header(frame, IPC_MAX_PAYLOAD + 1, LC__MSG_TYPE__MSG_HELLO, 0);
	(void)write_all(fd, frame, 8);
	closed_fd = fd;
	check(run_until(cond_peer_closed, 10) == 0,
	    "an oversized frame (%u bytes) closes that peer", IPC_MAX_PAYLOAD + 1);
	close(fd);

	/* After a proper Hello: a NewFlow whose payload does not decode. */
	if ((fd = raw_connect(sock)) < 0 || send_hello(fd) < 0) {
		check(0, "connect and Hello: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	memset(frame + 8, 0xff, 16);
	put_header(frame, 16, LC__MSG_TYPE__MSG_NEW_FLOW, 0);
	(void)write_all(fd, frame, 24);
	closed_fd = fd;
	check(run_until(cond_peer_closed, 10) == 0,
	    "a NewFlow that does not decode (and brings no fd) closes that peer");
	close(fd);

	check(mx_core_connected(sim.core) &&
	    mx_core_stats(sim.core)->proxyd_losses == losses,
	    "the core's own connection to proxyd was not touched");
	one_echo_flow("and a flow through the core still works afterwards");
}

/* --- gone: proxyd killed under running flows ----------------------------------------- */

static int gone_bad;
static struct app *gone_apps[50];
static void
gone_released(struct app *a)
{
	int i;

	for (i = 0; i < 50; i++)
		if (gone_apps[i] == a)
			gone_apps[i] = NULL;
	if (a->shut_rd_err == 0 || a->shut_wr_err == 0 || a->contract_errors) {
		if (gone_bad++ < 3)
			printf("# flow %d: rd err %d, wr err %d, %d breaches\n",
			    a->idx, a->shut_rd_err, a->shut_wr_err,
			    a->contract_errors);
	}
	app_free(a);
}

static bool gone_all_echoed_flag;
static bool
cond_gone_established(void)
{
	int i;

	for (i = 0; i < 50; i++)
		if (gone_apps[i] == NULL || gone_apps[i]->received < gone_apps[i]->sent ||
		    gone_apps[i]->sent < 1004)
			return false;
	gone_all_echoed_flag = true;
	return true;
}

static void
phase_gone(void)
{
	struct app *probe;
	struct mx_proc p;
	int i, started = 0, rc;

	for (i = 0; i < 50; i++) {
		gone_apps[i] = app_new(600000 + i, WAY_ECHO, 45000, "goneapp");
		gone_apps[i]->to_send = 1000;
		gone_apps[i]->hold = true;
		gone_apps[i]->on_release = gone_released;
		started += app_start(gone_apps[i]) == 1;
	}
	check(started == 50, "50 flows intercepted (%d)", started);
	check(run_until(cond_gone_established, 15) == 0,
	    "all 50 are relaying (each echoed its first 1004 bytes)");
	kill(proxyd_pid, SIGKILL);
	rc = run_until(cond_no_live, 10);
	check(rc == 0, "with proxyd killed every flow "
	    "ends and is released (%llu left)",
	    (unsigned long long)sim.apps_live);
	check(gone_bad == 0 && sim.contract_errors == 0,
	    "each as an error to its app, closed once per direction (%d "
	    "wrong)", gone_bad);
	/* The core learns of proxyd's end from flow.sock's EOF, which may
	 * come after the flows' own ends: the probe waits for it. */
	check(run_until(cond_disconnected, 10) == 0,
	    "the core saw proxyd go (flow.sock closed)");
	probe = app_new(600100, WAY_ECHO, 45001, "probe");
	check(mx_core_decide(sim.core, &probe->meta, &p) == 0 &&
	    mx_core_stats(sim.core)->flows_no_proxyd >= 1,
	    "a new flow without proxyd is left to the system (fail-open)");
	app_free(probe);
}

/* --- ctl: requests from a stand-in host app ---------------------------------------- */

static bool ctl_pending;
static ev_io ctl_io;

static void
ctl_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)revents;
	ctl_pending = true;
	ev_io_stop(loop, w);
}
static bool cond_ctl_pending(void) { return ctl_pending; }

/* One TCP flow of process NAME (pid), echoed through proxyd if taken. */
static void
ctl_flow(const char *name, uint32_t pid, char *reply, size_t len)
{
	static int idx = 800000;
	struct app *a = app_new(idx++, WAY_ECHO, pid, name);
	uint8_t out[32], in[32];
	int rc;

	a->to_send = 10000;
	a->on_release = echo_released_cb;
	echo_released = false;
	if ((rc = app_start(a)) != 1) {
		snprintf(reply, len, "%s", rc == 0 ? "passed" : "refused");
		app_free(a);
		return;
	}
	(void)run_until(cond_echo_released, 15);
	mbedtls_sha256_finish(&a->sha_out, out);
	mbedtls_sha256_finish(&a->sha_in, in);
	snprintf(reply, len, "%s", echo_released && a->received == a->sent &&
	    memcmp(out, in, 32) == 0 ? "intercepted" : "intercepted but broken");
	app_free(a);
}

static void
phase_ctl(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int lfd, served = 0, quit = 0;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	unlink(path);
	if ((lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(lfd, 8) == -1) {
		check(0, "ctl: listen on %s: %s", path, strerror(errno));
		return;
	}
	ev_io_init(&ctl_io, ctl_io_cb, lfd, EV_READ);
	while (!quit) {
		char req[ISPEC_MAX_TEXT + 64], reply[600], name[64];
		struct timeval tv = { .tv_sec = 5 };
		struct ispec_error err;
		size_t used = 0;
		unsigned pid;
		ssize_t n;
		int fd;

		ctl_pending = false;
		ev_io_start(sim.loop, &ctl_io);
		if (run_until(cond_ctl_pending, 300) == -1) {
			check(0, "ctl: no request in 300 s");
			break;
		}
		if ((fd = accept(lfd, NULL, NULL)) == -1)
			continue;
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		while (used < sizeof(req) - 1 &&
		    (n = read(fd, req + used, sizeof(req) - 1 - used)) > 0)
			used += (size_t)n;
		req[used] = '\0';
		if (strncmp(req, "spec ", 5) == 0) {
			if (mx_core_set_spec(sim.core, req + 5, &err) == 0)
				snprintf(reply, sizeof(reply), "ok");
			else
				snprintf(reply, sizeof(reply), "%s", err.msg);
		} else if (sscanf(req, "flow %63s %u", name, &pid) == 2)
			ctl_flow(name, pid, reply, sizeof(reply));
		else if (strcmp(req, "quit") == 0) {
			snprintf(reply, sizeof(reply), "ok");
			quit = 1;
		} else
			snprintf(reply, sizeof(reply), "unknown request");
		printf("ctl: '%s' -> %s\n", req, reply);
		fflush(stdout);
		(void)write_all(fd, (const uint8_t *)reply, strlen(reply));
		close(fd);
		served++;
	}
	ev_io_stop(sim.loop, &ctl_io);
	close(lfd);
	unlink(path);
	check(quit && served > 1 && sim.contract_errors == 0,
	    "ctl: %d requests served, the platform contract kept", served);
}

/* --- main ---------------------------------------------------------------------------- */

static void
usage(void)
{
	fprintf(stderr, "usage: mx_sim -m main|gone|ctl -r RUNDIR -P PROXYD_PID "
	    "[-n FLOWS] [-c CONCURRENT] [-D DNS_IP] [-S CTLSOCK]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *mode = NULL, *rundir = NULL, *dns_ip = "127.0.0.1";
	const char *ctl_sock = NULL;
	int total = 10000, concurrent = 64, opt, base_all;
	char sock[512];
	struct mx_config cfg;
	struct ispec_error err;

	while ((opt = getopt(argc, argv, "m:r:P:n:c:D:S:")) != -1) {
		switch (opt) {
		case 'm': mode = optarg; break;
		case 'r': rundir = optarg; break;
		case 'P': proxyd_pid = (pid_t)atoi(optarg); break;
		case 'n': total = atoi(optarg); break;
		case 'c': concurrent = atoi(optarg); break;
		case 'D': dns_ip = optarg; break;
		case 'S': ctl_sock = optarg; break;
		default: usage();
		}
	}
	if (mode == NULL || rundir == NULL || proxyd_pid <= 0 || total <= 0 ||
	    concurrent <= 0)
		usage();
	signal(SIGPIPE, SIG_IGN);
	log_init("mx_sim", 1, LOG_LEVEL_WARN);
	start_origin();
	snprintf(sock, sizeof(sock), "%s/flow.sock", rundir);
	memset(&cfg, 0, sizeof(cfg));
	cfg.flow_sock = sock;
	sim.loop = EV_DEFAULT;
	/* The loop's own fds (epoll, the async eventfd) live as long as it. */
	{
		ev_async a;

		ev_async_init(&a, NULL);
		ev_async_start(sim.loop, &a);
		ev_async_stop(sim.loop, &a);
	}
	base_all = count_fds();
	ev_idle_init(&sim.idle, run_completions);
	if ((sim.core = mx_core_new(sim.loop, &sim_platform, &cfg)) == NULL) {
		perror("mx_core_new");
		return 2;
	}
	/* Every simulated app, by name: sim0..sim49 and the phases' own
	 * (ctl: none, the spec comes from redirectord). */
	if (strcmp(mode, "ctl") != 0) {
		char spec[1024];
		size_t used = 0;
		int k;

		used += (size_t)snprintf(spec, sizeof(spec), "stallapp,udpapp,"
		    "udpchurn,dnsapp,echoapp,goneapp,probe");
		for (k = 0; k < 50; k++)
			used += (size_t)snprintf(spec + used, sizeof(spec) - used,
			    ",sim%d", k);
		if (mx_core_set_spec(sim.core, spec, &err) < 0) {
			fprintf(stderr, "spec: %s\n", err.msg);
			return 2;
		}
	}
	check(run_until(cond_connected, 15) == 0, "the core connects to "
	    "proxyd's flow.sock and completes the handshake");
	if (!mx_core_connected(sim.core))
		goto out;

	if (strcmp(mode, "main") == 0) {
		phase_tcp(total, concurrent);
		phase_stall();
		phase_udp();
		phase_udp_churn();
		phase_dns(dns_ip);
		phase_bad_frames(sock);
	} else if (strcmp(mode, "gone") == 0) {
		phase_gone();
	} else if (strcmp(mode, "ctl") == 0 && ctl_sock != NULL) {
		phase_ctl(ctl_sock);
	} else
		usage();
out:
	mx_core_free(sim.core);
	/* Let the completions of released flows drain (they are dropped). */
	while (sim.head != NULL) {
		struct comp *c = sim.head;

		sim.head = c->next;
		free(c);
	}
	if (strcmp(mode, "gone") == 0) {
		int rc;

		fd_baseline = base_all;
		rc = run_until(cond_fds_back, 10);
		check(rc == 0, "after the core is "
		    "freed the fd count is back to its baseline (%d, now %d)",
		    base_all, count_fds());
	}
	printf("sim: %d ok, %d failed\n", passed, failed);
	return failed == 0 && passed > 0 ? 0 : 1;
}
