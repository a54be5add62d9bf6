/*
 * Unit tests for proxyd's stub resolver (proxyd/resolver.c).
 *
 * A fake DNS server runs on the test's own libev loop: UDP sockets on
 * 127.0.0.1 and 127.0.0.2 at one kernel-chosen port (the resolver's
 * cfg.port), answering from a script keyed by the question's name — plain
 * A/AAAA, CNAME chains, NXDOMAIN, SERVFAIL, silence, spoofs with a wrong id,
 * question or source, truncated and malformed answers.  The pure pieces
 * (name check, literals, query builder, answer matcher) are tested on bytes
 * built here.  Every test ends with no fd left open and (SANITIZE=1) no leak.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"
#include "proxyd/dns.h"
#include "proxyd/resolver.h"
#include "test/unit/helpers/bytes.h"

/* --- DNS message builder -------------------------------------------------------- */

/* flags: 0x8180 = response, RD, RA; rcode in the low bits. */
static void
header(struct bld *b, unsigned id, unsigned flags, unsigned qd, unsigned an,
    unsigned ns, unsigned ar)
{
	b->n = 0;
	put16(b, id);
	put16(b, flags);
	put16(b, qd);
	put16(b, an);
	put16(b, ns);
	put16(b, ar);
}

static void
question(struct bld *b, const char *name, unsigned type, unsigned qclass)
{
	putname(b, name);
	put16(b, type);
	put16(b, qclass);
}

static void
rr_a(struct bld *b, const char *name, const char *ip, uint32_t ttl)
{
	uint8_t a[4];

	assert_int_equal(inet_pton(AF_INET, ip, a), 1);
	putname(b, name);
	put16(b, DNS_T_A);
	put16(b, 1);
	put32(b, ttl);
	put16(b, 4);
	for (int i = 0; i < 4; i++)
		put8(b, a[i]);
}

static void
rr_aaaa(struct bld *b, const char *name, const char *ip, uint32_t ttl)
{
	uint8_t a[16];

	assert_int_equal(inet_pton(AF_INET6, ip, a), 1);
	putname(b, name);
	put16(b, DNS_T_AAAA);
	put16(b, 1);
	put32(b, ttl);
	put16(b, 16);
	for (int i = 0; i < 16; i++)
		put8(b, a[i]);
}

static void
rr_cname(struct bld *b, const char *name, const char *target, uint32_t ttl)
{
	size_t at;

	putname(b, name);
	put16(b, DNS_T_CNAME);
	put16(b, 1);
	put32(b, ttl);
	at = b->n;
	put16(b, 0);
	putname(b, target);
	b->d[at] = (uint8_t)((b->n - at - 2) >> 8);
	b->d[at + 1] = (uint8_t)(b->n - at - 2);
}

static void
rr_soa(struct bld *b, const char *zone, uint32_t ttl, uint32_t minimum)
{
	size_t at;

	putname(b, zone);
	put16(b, DNS_T_SOA);
	put16(b, 1);
	put32(b, ttl);
	at = b->n;
	put16(b, 0);
	putname(b, "ns.test");
	putname(b, "admin.test");
	put32(b, 1);
	put32(b, 3600);
	put32(b, 600);
	put32(b, 86400);
	put32(b, minimum);
	b->d[at] = (uint8_t)((b->n - at - 2) >> 8);
	b->d[at + 1] = (uint8_t)(b->n - at - 2);
}

/* --- the fake server --------------------------------------------------------------- */

#define FAKE_LOG	256

struct fake {
	struct ev_loop	*loop;
	int		 fd[2];		/* 127.0.0.1:port, 127.0.0.2:port */
	ev_io		 io[2];
	int		 spoof_fd;	/* 127.0.0.3:port, never queried */
	uint16_t	 port;
	/* what arrived, in order */
	size_t		 nq;
	struct {
		int		 server;	/* 0 or 1 */
		uint16_t	 id, type, src_port;
		char		 name[DNS_NAME_TEXT_MAX];
	} q[FAKE_LOG];
	bool		 all_silent;
	bool		 all_servfail;
};

static struct fake fake;

static size_t
fake_count(const char *name, uint16_t type)
{
	size_t n = 0;

	for (size_t i = 0; i < fake.nq && i < FAKE_LOG; i++)
		if (strcasecmp(fake.q[i].name, name) == 0 &&
		    (type == 0 || fake.q[i].type == type))
			n++;
	return n;
}

static void
reply(int fd, const struct sockaddr_in *to, const struct bld *b)
{
	ssize_t n = sendto(fd, b->d, b->n, 0, (const struct sockaddr *)to,
	    sizeof(*to));

	assert_int_equal(n, (ssize_t)b->n);
}

/* One answer: question echoed, ancount records added by the caller. */
static void
start(struct bld *b, unsigned id, unsigned rcode, const char *name,
    unsigned type, unsigned an, unsigned ns)
{
	header(b, id, 0x8180 | rcode, 1, an, ns, 0);
	question(b, name, type, 1);
}

/* Answer the query (id, name, type) from client `to` on fd as scripted. */
static void
script(int fd, const struct sockaddr_in *to, uint16_t id, const char *name,
    uint16_t type, size_t nth)
{
	struct bld b;
	bool a = type == DNS_T_A;

	if (fake.all_silent || strcmp(name, "silent.test") == 0)
		return;
	if (fake.all_servfail || strcmp(name, "servfail.test") == 0) {
		start(&b, id, 2, name, type, 0, 0);
		reply(fd, to, &b);
		return;
	}
	if (strcmp(name, "refused.test") == 0) {
		start(&b, id, 5, name, type, 0, 0);
		reply(fd, to, &b);
		return;
	}
	if (strcmp(name, "a.test") == 0 || strcmp(name, "ttl0.test") == 0) {
		uint32_t ttl = name[1] == '.' ? 300 : 0;

		start(&b, id, 0, name, type, a ? 2 : 1, 0);
		if (a) {
			rr_a(&b, name, "192.0.2.1", ttl);
			rr_a(&b, name, "192.0.2.2", ttl + 100);
		} else
			rr_aaaa(&b, name, "2001:db8::1", ttl);
		reply(fd, to, &b);
		return;
	}
	if (strcmp(name, "v4only.test") == 0) {
		start(&b, id, 0, name, type, a ? 1 : 0, a ? 0 : 1);
		if (a)
			rr_a(&b, name, "192.0.2.3", 60);
		else
			rr_soa(&b, "test", 60, 30);
		reply(fd, to, &b);
		return;
	}
	if (strcmp(name, "nodata.test") == 0) {
		start(&b, id, 0, name, type, 0, 1);
		rr_soa(&b, "test", 60, 30);
		reply(fd, to, &b);
		return;
	}
	if (strcmp(name, "nx.test") == 0) {
		start(&b, id, 3, name, type, 0, 1);
		rr_soa(&b, "test", 900, 45);
		reply(fd, to, &b);
		return;
	}
	if (strcmp(name, "www.cname.test") == 0) {
		/* chain, a record of a bystander, and one of class CH */
		start(&b, id, 0, "WWW.Cname.TEST", type, a ? 5 : 2, 0);
		rr_cname(&b, "www.cname.test", "edge.cdn.test", 120);
		rr_cname(&b, "EDGE.cdn.test", "node7.cdn.test", 30);
		if (a) {
			rr_a(&b, "other.test", "198.51.100.66", 300);
			rr_a(&b, "node7.cdn.test", "192.0.2.7", 200);
			/* class CH: not an address for us */
			putname(&b, "node7.cdn.test");
			put16(&b, DNS_T_A);
			put16(&b, 3);
			put32(&b, 300);
			put16(&b, 4);
			put32(&b, 0x0a000001);
		}
		reply(fd, to, &b);
		return;
	}
	if (strcmp(name, "loop.test") == 0) {
		start(&b, id, 0, name, type, 3, 0);
		rr_cname(&b, "loop.test", "loop2.test", 60);
		rr_cname(&b, "loop2.test", "loop.test", 60);
		rr_a(&b, "elsewhere.test", "198.51.100.1", 60);
		reply(fd, to, &b);
		return;
	}
	if (strcmp(name, "spoof.test") == 0) {
		/* wrong id, wrong name, wrong type, wrong class, query bit,
		 * then the real answer */
		start(&b, id ^ 0x5555, 0, name, type, 1, 0);
		a ? rr_a(&b, name, "203.0.113.66", 60) :
		    rr_aaaa(&b, name, "2001:db8::66", 60);
		reply(fd, to, &b);
		start(&b, id, 0, "spoof2.test", type, 1, 0);
		a ? rr_a(&b, "spoof2.test", "203.0.113.66", 60) :
		    rr_aaaa(&b, "spoof2.test", "2001:db8::66", 60);
		reply(fd, to, &b);
		start(&b, id, 0, name, a ? DNS_T_AAAA : DNS_T_A, 0, 0);
		reply(fd, to, &b);
		header(&b, id, 0x8180, 1, 0, 0, 0);
		question(&b, name, type, 3);
		reply(fd, to, &b);
		header(&b, id, 0x0100, 1, 0, 0, 0);
		question(&b, name, type, 1);
		reply(fd, to, &b);
		/* off-path: right id and question, from 127.0.0.3 */
		start(&b, id, 0, name, type, 1, 0);
		a ? rr_a(&b, name, "203.0.113.66", 60) :
		    rr_aaaa(&b, name, "2001:db8::66", 60);
		reply(fake.spoof_fd, to, &b);
		start(&b, id, 0, name, type, 1, 0);
		a ? rr_a(&b, name, "192.0.2.9", 60) :
		    rr_aaaa(&b, name, "2001:db8::9", 60);
		reply(fd, to, &b);
		return;
	}
	if (strcmp(name, "trunc.test") == 0) {
		header(&b, id, 0x8380, 1, 0, 0, 0);	/* TC */
		question(&b, name, type, 1);
		reply(fd, to, &b);
		return;
	}
	if (strcmp(name, "trunc-partial.test") == 0) {
		/* TC, ancount 3 but only one record came */
		header(&b, id, 0x8380, 1, 3, 0, 0);
		question(&b, name, type, 1);
		a ? rr_a(&b, name, "192.0.2.11", 60) :
		    rr_aaaa(&b, name, "2001:db8::11", 60);
		reply(fd, to, &b);
		return;
	}
	if (strcmp(name, "malformed.test") == 0) {
		/* our id, then lies: ancount 1 and half a record; then a
		 * compression loop; then a bad A rdlength */
		start(&b, id, 0, name, type, 1, 0);
		put16(&b, 0xc00c);
		put16(&b, type);
		reply(fd, to, &b);
		header(&b, id, 0x8180, 1, 0, 0, 0);
		put16(&b, 0xc00c);
		put16(&b, type);
		put16(&b, 1);
		reply(fd, to, &b);
		start(&b, id, 0, name, type, 1, 0);
		putname(&b, name);
		put16(&b, DNS_T_A);
		put16(&b, 1);
		put32(&b, 60);
		put16(&b, 5);
		put32(&b, 0x01020304);
		put8(&b, 5);
		reply(fd, to, &b);
		return;
	}
	if (strcmp(name, "many.test") == 0) {
		start(&b, id, 0, name, type, 20, 0);
		for (int i = 0; i < 20; i++) {
			char ip[64];

			snprintf(ip, sizeof(ip), a ? "192.0.2.%d" :
			    "2001:db8::%d", 100 + i % 10);	/* dups */
			a ? rr_a(&b, name, ip, 60) : rr_aaaa(&b, name, ip, 60);
		}
		reply(fd, to, &b);
		return;
	}
	if (strcmp(name, "second-try.test") == 0) {
		if (nth == 0)
			return;		/* drop the first of each type */
		start(&b, id, 0, name, type, 1, 0);
		a ? rr_a(&b, name, "192.0.2.22", 60) :
		    rr_aaaa(&b, name, "2001:db8::22", 60);
		reply(fd, to, &b);
		return;
	}
	if (strcmp(name, "no-aaaa.test") == 0) {
		if (!a)
			return;		/* a server that drops AAAA */
		start(&b, id, 0, name, type, 1, 0);
		rr_a(&b, name, "192.0.2.33", 60);
		reply(fd, to, &b);
		return;
	}
	if (strcmp(name, "zero.test") == 0) {
		start(&b, id, 0, name, type, 1, 0);
		a ? rr_a(&b, name, "0.0.0.0", 60) :
		    rr_aaaa(&b, name, "::", 60);
		reply(fd, to, &b);
		return;
	}
	/* anything else does not exist */
	start(&b, id, 3, name, type, 0, 0);
	reply(fd, to, &b);
}

static void
fake_read(struct ev_loop *loop, ev_io *w, int revents)
{
	int server = w == &fake.io[0] ? 0 : 1;
	uint8_t buf[2048];
	struct sockaddr_in from;
	socklen_t flen = sizeof(from);
	struct dns_msg m;
	ssize_t n;
	size_t nth;

	(void)loop;
	(void)revents;
	n = recvfrom(w->fd, buf, sizeof(buf), 0, (struct sockaddr *)&from,
	    &flen);
	if (n <= 0)
		return;
	assert_int_equal(dns_parse(buf, (size_t)n, &m), DNS_OK);
	assert_int_equal(m.nquestions, 1);
	assert_true(m.rd && !m.qr && m.has_edns);
	nth = fake_count(m.questions[0].name, m.questions[0].type);
	if (fake.nq < FAKE_LOG) {
		fake.q[fake.nq].server = server;
		fake.q[fake.nq].id = m.id;
		fake.q[fake.nq].type = m.questions[0].type;
		fake.q[fake.nq].src_port = ntohs(from.sin_port);
		snprintf(fake.q[fake.nq].name, sizeof(fake.q[0].name), "%s",
		    m.questions[0].name);
	}
	fake.nq++;
	script(w->fd, &from, m.id, m.questions[0].name, m.questions[0].type,
	    nth);
	dns_msg_free(&m);
}

static int
udp_bound(const char *ip, uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
	    .sin_port = htons(port) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		close(fd);
		return -1;
	}
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	fake.port = ntohs(sin.sin_port);
	return fd;
}

static void
fake_start(struct ev_loop *loop)
{
	memset(&fake, 0, sizeof(fake));
	fake.loop = loop;
	/* a port free on all three addresses */
	for (int tries = 0; tries < 20; tries++) {
		fake.fd[0] = udp_bound("127.0.0.1", 0);
		assert_true(fake.fd[0] >= 0);
		if ((fake.fd[1] = udp_bound("127.0.0.2", fake.port)) >= 0 &&
		    (fake.spoof_fd = udp_bound("127.0.0.3", fake.port)) >= 0)
			break;
		close(fake.fd[0]);
		if (fake.fd[1] >= 0)
			close(fake.fd[1]);
		fake.fd[0] = fake.fd[1] = -1;
	}
	assert_true(fake.fd[0] >= 0 && fake.fd[1] >= 0);
	for (int i = 0; i < 2; i++) {
		ev_io_init(&fake.io[i], fake_read, fake.fd[i], EV_READ);
		ev_io_start(loop, &fake.io[i]);
	}
}

static void
fake_stop(void)
{
	for (int i = 0; i < 2; i++) {
		ev_io_stop(fake.loop, &fake.io[i]);
		close(fake.fd[i]);
	}
	close(fake.spoof_fd);
}

/* --- fixture ------------------------------------------------------------------------ */

struct done {
	int			 calls;
	enum resolver_status	 status;
	enum resolver_source	 source;
	size_t			 naddrs;
	char			 addrs[RESOLVER_MAX_ADDRS][INET6_ADDRSTRLEN];
	uint32_t		 ttl;
	char			 error[RESOLVER_ERR_LEN];
	char			 name[300];
	ev_tstamp		 at;
};

struct fx {
	struct ev_loop		*loop;
	struct resolver		*r;
	struct resolver_config	 cfg;
	int			 fds_at_start;
	bool			 in_lookup;
};

static struct fx *cur;

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
	return n - 1;	/* the DIR's own fd */
}

static void
on_done(const struct resolver_result *res, void *arg)
{
	struct done *d = arg;

	assert_false(cur->in_lookup);	/* never from inside resolver_lookup */
	d->calls++;
	d->status = res->status;
	d->source = res->source;
	d->naddrs = res->naddrs;
	d->ttl = res->ttl;
	d->at = ev_now(cur->loop);
	snprintf(d->name, sizeof(d->name), "%s", res->name);
	snprintf(d->error, sizeof(d->error), "%s", res->error ? res->error : "");
	assert_true(res->status == RESOLVER_OK ? res->error == NULL &&
	    res->naddrs > 0 : res->error != NULL && res->naddrs == 0);
	assert_true(res->naddrs <= RESOLVER_MAX_ADDRS);
	for (size_t i = 0; i < res->naddrs; i++) {
		assert_int_equal(res->addrs[i].port, 0);
		assert_non_null(inet_ntop(res->addrs[i].family,
		    res->addrs[i].addr, d->addrs[i], sizeof(d->addrs[i])));
	}
}

static void
stop_loop(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

/* Run the loop until every d has its answer (or 5 s). */
static void
wait_all(struct done *d, size_t n)
{
	ev_timer guard;
	ev_tstamp end;

	ev_now_update(cur->loop);
	end = ev_now(cur->loop) + 5;
	ev_timer_init(&guard, stop_loop, 0.01, 0.01);
	ev_timer_start(cur->loop, &guard);
	for (;;) {
		size_t got = 0;

		for (size_t i = 0; i < n; i++)
			got += d[i].calls > 0;
		if (got == n || ev_now(cur->loop) > end)
			break;
		ev_run(cur->loop, 0);
	}
	ev_timer_stop(cur->loop, &guard);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(d[i].calls, 1);
}

static void
run_for(double secs)
{
	ev_timer t;

	ev_timer_init(&t, stop_loop, secs, 0.);
	ev_timer_start(cur->loop, &t);
	ev_run(cur->loop, 0);
	ev_timer_stop(cur->loop, &t);
}

static struct resolver_query *
lookup(const char *name, struct done *d)
{
	struct resolver_query *q;

	memset(d, 0, sizeof(*d));
	cur->in_lookup = true;
	q = resolver_lookup(cur->r, name, on_done, d);
	cur->in_lookup = false;
	assert_non_null(q);
	return q;
}

/* One lookup, to its end. */
static void
resolve(const char *name, struct done *d)
{
	lookup(name, d);
	wait_all(d, 1);
}

static void
load(const char *resolv, const char *hosts)
{
	char err[256];

	assert_int_equal(resolver_load_text(cur->r, resolv, strlen(resolv),
	    hosts, strlen(hosts), err, sizeof(err)), 0);
}

static void
make_resolver(void)
{
	cur->r = resolver_new(cur->loop, &cur->cfg);
	assert_non_null(cur->r);
}

static int
setup(void **state)
{
	static struct fx fx;

	memset(&fx, 0, sizeof(fx));
	fx.fds_at_start = count_fds();
	fx.loop = ev_loop_new(EVFLAG_AUTO);
	assert_non_null(fx.loop);
	cur = &fx;
	fake_start(fx.loop);
	fx.cfg.timeout = 0.1;
	fx.cfg.attempts = 2;
	fx.cfg.port = fake.port;
	make_resolver();
	load("nameserver 127.0.0.1\n", "");
	*state = &fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;
	struct resolver_stats st;

	if (fx->r != NULL) {
		resolver_get_stats(fx->r, &st);
		assert_int_equal(st.pending, 0);
		resolver_free(fx->r);
	}
	fake_stop();
	ev_loop_destroy(fx->loop);
	assert_int_equal(count_fds(), fx->fds_at_start);
	return 0;
}

/* A resolver with other settings (and the default servers). */
static void
remake(const struct resolver_config *cfg, const char *resolv)
{
	resolver_free(cur->r);
	cur->cfg = *cfg;
	cur->cfg.port = fake.port;
	make_resolver();
	load(resolv, "");
}

/* --- pure pieces ------------------------------------------------------------------ */

static void
test_check_name(void **state)
{
	char out[RESOLVER_NAME_MAX + 1], big[300];
	static const char *const good[] = {
		"example.com", "EXAMPLE.com.", "a", "_dmarc.x-y.example",
		"xn--bcher-kva.example", "1.2.3.example", "0x7f", "a-",
	};
	static const char *const bad[] = {
		"", ".", "a..b", ".a", "a.b..", "exa mple.com", "a/b",
		"a.b:80", "ex\x01" "ample", "caf\xc3\xa9.fr", "1.2.3", "127.1",
		"a.123", "[::1", "*.example.com", "a%b",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (resolver_check_name(good[i], out) != NULL)
			fail_msg("%s refused", good[i]);
	}
	assert_null(resolver_check_name("WwW.ExAmPlE.CoM.", out));
	assert_string_equal(out, "www.example.com");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (resolver_check_name(bad[i], out) == NULL)
			fail_msg("%s accepted", bad[i]);
		assert_string_equal(out, "");
	}
	/* label 63 ok, 64 not */
	memset(big, 'a', 64);
	strcpy(big + 64, ".com");
	assert_string_equal(resolver_check_name(big, out),
	    "label longer than 63 characters");
	assert_null(resolver_check_name(big + 1, out));
	/* 253 characters ok (254 with the final dot), 254 not */
	for (int i = 0; i < 253; i++)
		big[i] = i % 2 ? '.' : 'a';
	big[252] = 'b';
	big[253] = '\0';
	assert_null(resolver_check_name(big, out));
	strcpy(big + 253, ".");
	assert_null(resolver_check_name(big, out));
	strcpy(big + 253, "c");
	assert_string_equal(resolver_check_name(big, out),
	    "name longer than 253 characters");
	memset(big, 'a', sizeof(big) - 1);	/* no NUL within 256 */
	big[sizeof(big) - 1] = '\0';
	assert_non_null(resolver_check_name(big, out));
}

static void
test_literals(void **state)
{
	struct endpoint a;
	char s[INET6_ADDRSTRLEN];

	(void)state;
	assert_true(resolver_parse_literal("192.0.2.1", &a));
	assert_int_equal(a.family, AF_INET);
	assert_string_equal(inet_ntop(AF_INET, a.addr, s, sizeof(s)), "192.0.2.1");
	assert_true(resolver_parse_literal("[2001:db8::1]", &a));
	assert_int_equal(a.family, AF_INET6);
	assert_string_equal(inet_ntop(AF_INET6, a.addr, s, sizeof(s)),
	    "2001:db8::1");
	assert_true(resolver_parse_literal("::ffff:192.0.2.1", &a));
	assert_int_equal(a.family, AF_INET6);
	assert_false(resolver_parse_literal("[192.0.2.1]", &a));
	assert_false(resolver_parse_literal("fe80::1%eth0", &a));
	assert_false(resolver_parse_literal("[fe80::1%eth0]", &a));
	assert_false(resolver_parse_literal("1.2.3", &a));
	assert_false(resolver_parse_literal("0x7f.1", &a));
	assert_false(resolver_parse_literal("[]", &a));
	assert_false(resolver_parse_literal("[", &a));
	assert_false(resolver_parse_literal("", &a));
	assert_false(resolver_parse_literal("1.2.3.4 ", &a));
	assert_false(resolver_parse_literal("[::1]:80", &a));
}

static void
test_build_query(void **state)
{
	uint8_t buf[512];
	struct dns_msg m;
	size_t n;

	(void)state;
	n = resolver_build_query(buf, sizeof(buf), 0xbeef, "www.example.com",
	    DNS_T_AAAA);
	assert_int_equal(n, 12 + 17 + 4 + 11);
	assert_int_equal(dns_parse(buf, n, &m), DNS_OK);
	assert_int_equal(m.id, 0xbeef);
	assert_true(m.rd && !m.qr);
	assert_int_equal(m.opcode, 0);
	assert_int_equal(m.nquestions, 1);
	assert_string_equal(m.questions[0].name, "www.example.com");
	assert_int_equal(m.questions[0].type, DNS_T_AAAA);
	assert_int_equal(m.questions[0].qclass, 1);
	assert_true(m.has_edns);
	assert_int_equal(m.edns_udp_size, 1232);
	dns_msg_free(&m);
	/* exact fit, one byte short, and names it must not encode */
	assert_int_equal(resolver_build_query(buf, n, 1, "www.example.com", 1), n);
	assert_int_equal(resolver_build_query(buf, n - 1, 1, "www.example.com",
	    1), 0);
	assert_int_equal(resolver_build_query(buf, sizeof(buf), 1, "a..b", 1), 0);
	assert_int_equal(resolver_build_query(buf, sizeof(buf), 1, "a.", 1), 0);
	assert_int_equal(resolver_build_query(buf, sizeof(buf), 1, "", 1), 0);
}

static enum resolver_answer_kind
parse(const struct bld *b, uint16_t id, const char *name, uint16_t type,
    struct resolver_answer *ans)
{
	return resolver_parse_answer(b->d, b->n, id, name, type, ans);
}

static void
test_parse_answer(void **state)
{
	struct resolver_answer ans;
	struct bld b;
	char s[INET6_ADDRSTRLEN];

	(void)state;
	/* the plain case; min TTL; bystanders ignored */
	start(&b, 7, 0, "x.test", DNS_T_A, 3, 0);
	rr_a(&b, "x.test", "192.0.2.1", 500);
	rr_a(&b, "y.test", "192.0.2.99", 5);
	rr_a(&b, "X.TEST", "192.0.2.2", 400);
	assert_int_equal(parse(&b, 7, "x.test", DNS_T_A, &ans),
	    RESOLVER_ANS_ADDRS);
	assert_int_equal(ans.naddrs, 2);
	assert_int_equal(ans.ttl, 400);
	assert_string_equal(inet_ntop(AF_INET, ans.addrs[1].addr, s, sizeof(s)),
	    "192.0.2.2");
	/* not ours: id, type, name, class, not a response, opcode */
	assert_int_equal(parse(&b, 8, "x.test", DNS_T_A, &ans),
	    RESOLVER_ANS_IGNORE);
	assert_string_equal(ans.why, "wrong id");
	assert_int_equal(parse(&b, 7, "x.test", DNS_T_AAAA, &ans),
	    RESOLVER_ANS_IGNORE);
	assert_int_equal(parse(&b, 7, "y.test", DNS_T_A, &ans),
	    RESOLVER_ANS_IGNORE);
	header(&b, 7, 0x8180, 1, 0, 0, 0);
	question(&b, "x.test", DNS_T_A, 255);
	assert_int_equal(parse(&b, 7, "x.test", DNS_T_A, &ans),
	    RESOLVER_ANS_IGNORE);
	header(&b, 7, 0x0180, 1, 0, 0, 0);
	question(&b, "x.test", DNS_T_A, 1);
	assert_int_equal(parse(&b, 7, "x.test", DNS_T_A, &ans),
	    RESOLVER_ANS_IGNORE);
	header(&b, 7, 0x8980, 1, 0, 0, 0);	/* opcode 1 */
	question(&b, "x.test", DNS_T_A, 1);
	assert_int_equal(parse(&b, 7, "x.test", DNS_T_A, &ans),
	    RESOLVER_ANS_IGNORE);
	/* zero or two questions */
	header(&b, 7, 0x8182, 0, 0, 0, 0);
	assert_int_equal(parse(&b, 7, "x.test", DNS_T_A, &ans),
	    RESOLVER_ANS_IGNORE);
	header(&b, 7, 0x8180, 2, 0, 0, 0);
	question(&b, "x.test", DNS_T_A, 1);
	question(&b, "x.test", DNS_T_A, 1);
	assert_int_equal(parse(&b, 7, "x.test", DNS_T_A, &ans),
	    RESOLVER_ANS_IGNORE);
	/* too short for a header */
	b.n = 11;
	assert_int_equal(parse(&b, 7, "x.test", DNS_T_A, &ans),
	    RESOLVER_ANS_IGNORE);
	/* our id but broken: malformed */
	start(&b, 7, 0, "x.test", DNS_T_A, 2, 0);
	rr_a(&b, "x.test", "192.0.2.1", 500);
	assert_int_equal(parse(&b, 7, "x.test", DNS_T_A, &ans),
	    RESOLVER_ANS_MALFORMED);
	assert_non_null(ans.why);
	/* rcodes */
	start(&b, 7, 2, "x.test", DNS_T_A, 0, 0);
	assert_int_equal(parse(&b, 7, "x.test", DNS_T_A, &ans),
	    RESOLVER_ANS_SERVFAIL);
	assert_int_equal(ans.rcode, 2);
	start(&b, 7, 3, "x.test", DNS_T_A, 0, 1);
	rr_soa(&b, "test", 100, 40);
	assert_int_equal(parse(&b, 7, "x.test", DNS_T_A, &ans),
	    RESOLVER_ANS_NXDOMAIN);
	assert_int_equal(ans.ttl, 40);
	start(&b, 7, 0, "x.test", DNS_T_A, 0, 0);
	assert_int_equal(parse(&b, 7, "x.test", DNS_T_A, &ans),
	    RESOLVER_ANS_NODATA);
	assert_int_equal(ans.ttl, 0);		/* no SOA: do not cache */
	/* TTL with the top bit set counts as 0 (RFC 2181) */
	start(&b, 7, 0, "x.test", DNS_T_A, 1, 0);
	rr_a(&b, "x.test", "192.0.2.1", 0x80000000u);
	assert_int_equal(parse(&b, 7, "x.test", DNS_T_A, &ans),
	    RESOLVER_ANS_ADDRS);
	assert_int_equal(ans.ttl, 0);
	/* a CNAME chain longer than 8 hops stops there: no address */
	start(&b, 7, 0, "c0.test", DNS_T_A, 11, 0);
	for (int i = 0; i < 10; i++) {
		char from[32], to[32];

		snprintf(from, sizeof(from), "c%d.test", i);
		snprintf(to, sizeof(to), "c%d.test", i + 1);
		rr_cname(&b, from, to, 60);
	}
	rr_a(&b, "c10.test", "192.0.2.10", 60);
	assert_int_equal(parse(&b, 7, "c0.test", DNS_T_A, &ans),
	    RESOLVER_ANS_NODATA);
	/* 8 hops is fine */
	start(&b, 7, 0, "c2.test", DNS_T_A, 9, 0);
	for (int i = 2; i < 10; i++) {
		char from[32], to[32];

		snprintf(from, sizeof(from), "c%d.test", i);
		snprintf(to, sizeof(to), "c%d.test", i + 1);
		rr_cname(&b, from, to, 60 + i);
	}
	rr_a(&b, "c10.test", "192.0.2.10", 600);
	assert_int_equal(parse(&b, 7, "c2.test", DNS_T_A, &ans),
	    RESOLVER_ANS_ADDRS);
	assert_int_equal(ans.ttl, 62);
	/* AAAA; the unspecified address is never an answer */
	start(&b, 9, 0, "x.test", DNS_T_AAAA, 2, 0);
	rr_aaaa(&b, "x.test", "::", 60);
	rr_aaaa(&b, "x.test", "2001:db8::5", 60);
	assert_int_equal(parse(&b, 9, "x.test", DNS_T_AAAA, &ans),
	    RESOLVER_ANS_ADDRS);
	assert_int_equal(ans.naddrs, 1);
	assert_int_equal(ans.addrs[0].family, AF_INET6);
	/* TC with nothing usable, and TC with an address */
	header(&b, 7, 0x8380, 1, 0, 0, 0);
	question(&b, "x.test", DNS_T_A, 1);
	assert_int_equal(parse(&b, 7, "x.test", DNS_T_A, &ans),
	    RESOLVER_ANS_TRUNCATED);
	header(&b, 7, 0x8380, 1, 2, 0, 0);
	question(&b, "x.test", DNS_T_A, 1);
	rr_a(&b, "x.test", "192.0.2.1", 60);
	assert_int_equal(parse(&b, 7, "x.test", DNS_T_A, &ans),
	    RESOLVER_ANS_ADDRS);
}

/* Every prefix and every single-byte change of an answer: never a crash,
 * never an address that was not in the message. */
static void
test_parse_answer_mutations(void **state)
{
	struct resolver_answer ans;
	struct bld b, m;

	(void)state;
	start(&b, 0x1234, 0, "www.cname.test", DNS_T_A, 2, 1);
	rr_cname(&b, "www.cname.test", "e.test", 60);
	rr_a(&b, "e.test", "192.0.2.7", 60);
	rr_soa(&b, "test", 60, 60);
	for (size_t len = 0; len <= b.n; len++)
		(void)resolver_parse_answer(b.d, len, 0x1234, "www.cname.test",
		    DNS_T_A, &ans);
	for (size_t i = 0; i < b.n; i++) {
		for (unsigned v = 0; v < 256; v += 17) {
			m = b;
			m.d[i] = (uint8_t)v;
			if (resolver_parse_answer(m.d, m.n, 0x1234,
			    "www.cname.test", DNS_T_A, &ans) ==
			    RESOLVER_ANS_ADDRS) {
				assert_true(ans.naddrs >= 1 && ans.naddrs <= 8);
				assert_int_equal(ans.addrs[0].family, AF_INET);
			}
		}
	}
}

/* --- lookups without DNS ----------------------------------------------------------- */

static void
test_literal_and_localhost(void **state)
{
	struct done d[6];

	(void)state;
	lookup("192.0.2.77", &d[0]);
	lookup("[2001:db8::77]", &d[1]);
	lookup("localhost", &d[2]);
	lookup("Foo.LOCALHOST.", &d[3]);
	lookup("0.0.0.0", &d[4]);
	lookup("::", &d[5]);
	assert_int_equal(d[0].calls, 0);	/* not before the loop runs */
	wait_all(d, 6);
	assert_int_equal(d[0].status, RESOLVER_OK);
	assert_int_equal(d[0].source, RESOLVER_SRC_LITERAL);
	assert_int_equal(d[0].naddrs, 1);
	assert_string_equal(d[0].addrs[0], "192.0.2.77");
	assert_string_equal(d[0].name, "192.0.2.77");
	assert_string_equal(d[1].addrs[0], "2001:db8::77");
	for (int i = 2; i < 4; i++) {
		assert_int_equal(d[i].source, RESOLVER_SRC_LOCALHOST);
		assert_int_equal(d[i].naddrs, 2);
		assert_string_equal(d[i].addrs[0], "127.0.0.1");
		assert_string_equal(d[i].addrs[1], "::1");
	}
	assert_string_equal(d[3].name, "Foo.LOCALHOST.");
	assert_int_equal(d[4].status, RESOLVER_ERR_NODATA);
	assert_int_equal(d[5].status, RESOLVER_ERR_NODATA);
	assert_int_equal(fake.nq, 0);
}

static void
test_bad_names(void **state)
{
	static const char *const bad[] = {
		"", "a..b", "bad name.test", "evil.test/x", "x\r\nHost: y",
		"1.2.3", "[1.2.3.4]", "fe80::1%eth0", "\xc3\xa9.test",
	};
	struct done d;
	char big[400];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		resolve(bad[i], &d);
		assert_int_equal(d.status, RESOLVER_ERR_NAME);
		assert_non_null(strstr(d.error, "invalid host name: "));
	}
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	resolve(big, &d);
	assert_string_equal(d.error,
	    "invalid host name: name longer than 253 characters");
	/* the name in the result is the one asked, even when huge */
	assert_int_equal(strlen(d.name), sizeof(d.name) - 1);
	assert_int_equal(fake.nq, 0);
}

static const char hosts_text[] =
    "# comment line\n"
    "127.0.0.1\tlocalhost\n"
    "192.0.2.50  myhost MyAlias.Example  # trailing comment\n"
    "2001:db8::50 myhost\n"
    "192.0.2.51 myhost\n"
    "192.0.2.50 myhost\n"			/* a duplicate */
    "0.0.0.0 ads.test\n"
    "::      ads.test\n"
    "not-an-address foo.test\n"
    "fe80::1%lo zoned.test\n"
    "10.0.0.1 bad..name good.test bad/name\n"
    "10.0.0.2\n"
    "\n"
    "   \t  \n"
    "10.0.0.3 last.test";			/* no final newline */

static void
test_hosts(void **state)
{
	struct done d;
	struct resolver_stats st;

	(void)state;
	load("nameserver 127.0.0.1\n", hosts_text);
	resolver_get_stats(cur->r, &st);
	assert_int_equal(st.hosts_names, 10);
	resolve("MYHOST", &d);
	assert_int_equal(d.status, RESOLVER_OK);
	assert_int_equal(d.source, RESOLVER_SRC_HOSTS);
	assert_int_equal(d.naddrs, 3);
	assert_string_equal(d.addrs[0], "192.0.2.50");
	assert_string_equal(d.addrs[1], "192.0.2.51");
	assert_string_equal(d.addrs[2], "2001:db8::50");
	resolve("myalias.example.", &d);
	assert_int_equal(d.naddrs, 1);
	resolve("good.test", &d);
	assert_string_equal(d.addrs[0], "10.0.0.1");
	resolve("last.test", &d);
	assert_string_equal(d.addrs[0], "10.0.0.3");
	resolve("ads.test", &d);
	assert_int_equal(d.status, RESOLVER_ERR_NODATA);
	assert_int_equal(d.source, RESOLVER_SRC_HOSTS);
	assert_non_null(strstr(d.error, "blocked by the hosts file"));
	assert_int_equal(fake.nq, 0);
	/* not in the file: DNS, which says it does not exist */
	resolve("foo.test", &d);
	assert_int_equal(d.status, RESOLVER_ERR_NOHOST);
	resolve("zoned.test", &d);
	assert_int_equal(d.source, RESOLVER_SRC_DNS);
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void
test_load_files(void **state)
{
	char dir[] = "/tmp/test_px_resolver.XXXXXX", rc[128], hosts[128];
	char err[256], big[300];
	struct resolver_stats st;
	struct done d;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(rc, sizeof(rc), "%s/resolv.conf", dir);
	snprintf(hosts, sizeof(hosts), "%s/hosts", dir);
	write_file(rc, "# generated\n; also a comment\nsearch example.com\n"
	    "nameserver 127.0.0.2\nnameserver not.an.address\n"
	    "nameserver fe80::1%nosuchif0\n"
	    "nameserver 127.0.0.1\nnameserver ::1\nnameserver 127.0.0.9\n"
	    "options ndots:5 timeout:1 attempts:3 rotate\n");
	write_file(hosts, "192.0.2.60 filehost\n");
	assert_int_equal(resolver_load(cur->r, rc, hosts, err, sizeof(err)), 0);
	resolver_get_stats(cur->r, &st);
	assert_int_equal(st.servers, 3);	/* the first three usable */
	assert_int_equal(st.hosts_names, 1);
	resolve("filehost", &d);
	assert_string_equal(d.addrs[0], "192.0.2.60");
	resolve("a.test", &d);
	assert_int_equal(d.status, RESOLVER_OK);
	assert_int_equal(fake.q[0].server, 1);	/* 127.0.0.2 first */

	/* failure keeps the old state: a directory is not a file ... */
	assert_int_equal(resolver_load(cur->r, rc, dir, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "Is a directory"));
	/* ... nor a file too large */
	snprintf(big, sizeof(big), "%s/big", dir);
	assert_non_null(f = fopen(big, "w"));
	for (int i = 0; i < 70 * 1024 / 16; i++)
		fputs("# padding line.\n", f);
	fclose(f);
	assert_int_equal(resolver_load(cur->r, big, hosts, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "larger than"));
	resolver_get_stats(cur->r, &st);
	assert_int_equal(st.servers, 3);
	assert_int_equal(st.hosts_names, 1);
	resolve("filehost", &d);
	assert_int_equal(d.status, RESOLVER_OK);

	/* missing files are empty: 127.0.0.1, as glibc */
	unlink(rc);
	unlink(hosts);
	unlink(big);
	assert_int_equal(resolver_load(cur->r, rc, hosts, err, sizeof(err)), 0);
	resolver_get_stats(cur->r, &st);
	assert_int_equal(st.servers, 1);
	assert_int_equal(st.hosts_names, 0);
	assert_int_equal(rmdir(dir), 0);
	resolve("filehost", &d);
	assert_int_equal(d.status, RESOLVER_ERR_NOHOST);
}

static void
test_no_load(void **state)
{
	struct done d;

	(void)state;
	resolver_free(cur->r);
	make_resolver();
	resolve("a.test", &d);
	assert_int_equal(d.status, RESOLVER_ERR_NOSERVER);
	resolve("127.0.0.1", &d);
	assert_int_equal(d.status, RESOLVER_OK);
}

/* --- lookups over DNS --------------------------------------------------------------- */

static void
test_a_and_aaaa(void **state)
{
	struct done d;
	struct resolver_stats st;

	(void)state;
	resolve("A.Test.", &d);
	assert_int_equal(d.status, RESOLVER_OK);
	assert_int_equal(d.source, RESOLVER_SRC_DNS);
	assert_int_equal(d.naddrs, 3);
	assert_string_equal(d.addrs[0], "192.0.2.1");	/* IPv4 first */
	assert_string_equal(d.addrs[1], "192.0.2.2");
	assert_string_equal(d.addrs[2], "2001:db8::1");
	assert_int_equal(d.ttl, 300);
	assert_string_equal(d.name, "A.Test.");
	assert_int_equal(fake_count("a.test", DNS_T_A), 1);
	assert_int_equal(fake_count("a.test", DNS_T_AAAA), 1);
	/* one socket for both questions, two different ids */
	assert_int_equal(fake.q[0].src_port, fake.q[1].src_port);
	assert_int_not_equal(fake.q[0].id, fake.q[1].id);

	/* again: from the cache, nothing sent */
	resolve("a.test", &d);
	assert_int_equal(d.source, RESOLVER_SRC_CACHE);
	assert_int_equal(d.naddrs, 3);
	assert_true(d.ttl <= 300 && d.ttl >= 298);
	assert_int_equal(fake.nq, 2);
	resolver_get_stats(cur->r, &st);
	assert_int_equal(st.cache_hits, 1);
	assert_int_equal(st.queries_sent, 2);
	assert_int_equal(st.cached, 1);

	/* TTL 0: never cached */
	resolve("ttl0.test", &d);
	resolve("ttl0.test", &d);
	assert_int_equal(d.source, RESOLVER_SRC_DNS);
	assert_int_equal(fake_count("ttl0.test", 0), 4);
}

static void
test_ids_and_ports_vary(void **state)
{
	struct done d[16];
	int same_id = 0, same_port = 0;

	(void)state;
	for (int i = 0; i < 16; i++) {
		char name[32];

		snprintf(name, sizeof(name), "n%d.example", i);
		lookup(name, &d[i]);
	}
	wait_all(d, 16);
	assert_int_equal(fake.nq, 32);
	for (size_t i = 2; i < fake.nq; i += 2) {
		same_id += fake.q[i].id == fake.q[0].id;
		same_port += fake.q[i].src_port == fake.q[0].src_port;
	}
	/* 15 draws of 16 bits; the kernel's ports are random too */
	assert_true(same_id <= 1);
	assert_true(same_port <= 1);
	for (int i = 0; i < 16; i++) {
		assert_int_equal(d[i].status, RESOLVER_ERR_NOHOST);
		assert_string_equal(d[i].error, "no such host");
	}
}

static void
test_cname_chain(void **state)
{
	struct done d;

	(void)state;
	resolve("www.cname.test", &d);
	assert_int_equal(d.status, RESOLVER_OK);
	assert_int_equal(d.naddrs, 1);
	assert_string_equal(d.addrs[0], "192.0.2.7");
	assert_int_equal(d.ttl, 30);
	resolve("loop.test", &d);
	assert_int_equal(d.status, RESOLVER_ERR_NODATA);
	assert_string_equal(d.error, "no address for host");
}

static void
test_nxdomain_nodata_cached(void **state)
{
	struct done d;

	(void)state;
	resolve("nx.test", &d);
	assert_int_equal(d.status, RESOLVER_ERR_NOHOST);
	assert_string_equal(d.error, "no such host");
	assert_int_equal(d.ttl, 45);
	resolve("nx.test", &d);
	assert_int_equal(d.status, RESOLVER_ERR_NOHOST);
	assert_int_equal(d.source, RESOLVER_SRC_CACHE);
	/* NXDOMAIN on one question is enough: at most 2 were sent */
	assert_true(fake_count("nx.test", 0) <= 2);

	resolve("nodata.test", &d);
	assert_int_equal(d.status, RESOLVER_ERR_NODATA);
	assert_int_equal(d.ttl, 30);
	resolve("v4only.test", &d);
	assert_int_equal(d.status, RESOLVER_OK);
	assert_int_equal(d.naddrs, 1);
	assert_int_equal(d.ttl, 60);
	resolve("zero.test", &d);
	assert_int_equal(d.status, RESOLVER_ERR_NODATA);
}

static void
test_spoofs_ignored(void **state)
{
	struct done d;
	struct resolver_stats st;

	(void)state;
	resolve("spoof.test", &d);
	assert_int_equal(d.status, RESOLVER_OK);
	assert_int_equal(d.naddrs, 2);
	assert_string_equal(d.addrs[0], "192.0.2.9");
	assert_string_equal(d.addrs[1], "2001:db8::9");
	resolver_get_stats(cur->r, &st);
	/* 5 per question reach the socket; the off-path one never does */
	assert_true(st.answers_ignored >= 8);
	assert_int_equal(st.timeouts, 0);
}

static void
test_truncated(void **state)
{
	struct done d;

	(void)state;
	resolve("trunc.test", &d);
	assert_int_equal(d.status, RESOLVER_ERR_SERVER);
	assert_non_null(strstr(d.error, "truncated"));
	assert_non_null(strstr(d.error, "after 2 tries"));
	/* tried again right away, no waiting */
	assert_int_equal(fake_count("trunc.test", DNS_T_A), 2);
	resolve("trunc-partial.test", &d);
	assert_int_equal(d.status, RESOLVER_OK);
	assert_int_equal(d.naddrs, 2);
	assert_string_equal(d.addrs[0], "192.0.2.11");
}

static void
test_malformed_then_timeout(void **state)
{
	struct done d;
	struct resolver_stats st;

	(void)state;
	resolve("malformed.test", &d);
	assert_int_equal(d.status, RESOLVER_ERR_TIMEOUT);
	assert_string_equal(d.error,
	    "timed out after 2 tries (malformed answers ignored)");
	resolver_get_stats(cur->r, &st);
	assert_int_equal(st.answers_ignored, 12);	/* 3 x 2 types x 2 */
	assert_int_equal(st.timeouts, 2);
}

static void
test_many_bounded(void **state)
{
	struct done d;

	(void)state;
	resolve("many.test", &d);
	assert_int_equal(d.status, RESOLVER_OK);
	assert_int_equal(d.naddrs, 2 * RESOLVER_MAX_PER_FAMILY);
	assert_string_equal(d.addrs[0], "192.0.2.100");
	assert_string_equal(d.addrs[7], "192.0.2.107");
	assert_string_equal(d.addrs[8], "2001:db8::100");
}

static void
test_timeout_and_retries(void **state)
{
	struct resolver_config cfg = { .timeout = 0.05, .attempts = 3 };
	struct resolver_stats st;
	struct done d;
	ev_tstamp t0;

	(void)state;
	remake(&cfg, "nameserver 127.0.0.1\nnameserver 127.0.0.2\n");
	ev_now_update(cur->loop);
	t0 = ev_now(cur->loop);
	resolve("silent.test", &d);
	assert_int_equal(d.status, RESOLVER_ERR_TIMEOUT);
	assert_string_equal(d.error, "timed out after 6 tries");
	assert_true(d.at - t0 >= 6 * 0.05 - 0.01);
	assert_true(d.at - t0 < 2.0);
	/* servers in turn, both questions each time, new port each try */
	assert_int_equal(fake_count("silent.test", DNS_T_A), 6);
	assert_int_equal(fake_count("silent.test", DNS_T_AAAA), 6);
	for (size_t i = 0; i < 12; i += 2) {
		assert_int_equal(fake.q[i].server, (int)(i / 2 % 2));
		if (i > 0)
			assert_int_not_equal(fake.q[i].src_port,
			    fake.q[i - 2].src_port);
	}
	resolver_get_stats(cur->r, &st);
	assert_int_equal(st.timeouts, 6);
	assert_int_equal(st.queries_sent, 12);
	/* not cached */
	resolve("silent.test", &d);
	assert_int_equal(fake_count("silent.test", DNS_T_A), 12);
}

static void
test_second_try_answers(void **state)
{
	struct done d;

	(void)state;
	resolve("second-try.test", &d);
	assert_int_equal(d.status, RESOLVER_OK);
	assert_int_equal(d.naddrs, 2);
	assert_int_equal(fake_count("second-try.test", DNS_T_A), 2);
}

static void
test_aaaa_dropped(void **state)
{
	struct resolver_config cfg = { .timeout = 0.1, .attempts = 5 };
	struct done d;

	(void)state;
	remake(&cfg, "nameserver 127.0.0.1\n");
	resolve("no-aaaa.test", &d);
	/* the A answer is used after one try's wait, not five */
	assert_int_equal(d.status, RESOLVER_OK);
	assert_int_equal(d.naddrs, 1);
	assert_string_equal(d.addrs[0], "192.0.2.33");
	assert_int_equal(fake_count("no-aaaa.test", DNS_T_AAAA), 1);
}

static void
test_servfail_and_refused(void **state)
{
	struct resolver_config cfg = { .timeout = 2, .attempts = 2 };
	struct done d;
	ev_tstamp t0;

	(void)state;
	remake(&cfg, "nameserver 127.0.0.1\nnameserver 127.0.0.2\n");
	ev_now_update(cur->loop);
	t0 = ev_now(cur->loop);
	resolve("servfail.test", &d);
	assert_int_equal(d.status, RESOLVER_ERR_SERVER);
	assert_string_equal(d.error,
	    "server failure (SERVFAIL from 127.0.0.2), after 4 tries");
	assert_true(d.at - t0 < 1.0);	/* no timeout waited */
	assert_int_equal(fake_count("servfail.test", DNS_T_A), 4);
	resolve("refused.test", &d);
	assert_int_equal(d.status, RESOLVER_ERR_SERVER);
	assert_string_equal(d.error,
	    "server error (REFUSED from 127.0.0.2), after 4 tries");
}

static void
test_unreachable_server_skipped(void **state)
{
	struct resolver_config cfg = { .timeout = 2, .attempts = 1 };
	struct done d;
	ev_tstamp t0;

	(void)state;
	/* nothing listens on 127.0.0.4: port unreachable, next server */
	remake(&cfg, "nameserver 127.0.0.4\nnameserver 127.0.0.1\n");
	ev_now_update(cur->loop);
	t0 = ev_now(cur->loop);
	resolve("a.test", &d);
	assert_int_equal(d.status, RESOLVER_OK);
	assert_true(d.at - t0 < 1.0);
	/* and only unreachable servers: a clear error, quickly */
	remake(&cfg, "nameserver 127.0.0.4\n");
	resolve("a.test", &d);
	assert_int_equal(d.status, RESOLVER_ERR_SERVER);
	assert_string_equal(d.error, "connection refused from 127.0.0.4");
}

static void
test_family(void **state)
{
	struct resolver_config cfg = { .timeout = 0.1, .attempts = 1,
	    .family = AF_INET };
	struct done d;

	(void)state;
	remake(&cfg, "nameserver 127.0.0.1\n");
	resolve("a.test", &d);
	assert_int_equal(d.naddrs, 2);
	assert_int_equal(fake_count("a.test", DNS_T_AAAA), 0);
	resolve("localhost", &d);
	assert_int_equal(d.naddrs, 1);
	resolve("::1", &d);
	assert_int_equal(d.status, RESOLVER_ERR_NODATA);
	assert_string_equal(d.error, "IPv6 is not enabled");
	cfg.family = AF_INET6;
	remake(&cfg, "nameserver 127.0.0.1\n");
	resolve("a.test", &d);
	assert_int_equal(d.naddrs, 1);
	assert_string_equal(d.addrs[0], "2001:db8::1");
}

static void
test_cancel(void **state)
{
	struct resolver_query *q;
	struct resolver_stats st;
	struct done d[4];

	(void)state;
	/* before anything is sent, an immediate one, and NULL */
	resolver_cancel(lookup("a.test", &d[0]));
	lookup("silent.test", &d[1]);
	resolver_cancel(lookup("192.0.2.1", &d[2]));
	resolver_cancel(NULL);
	run_for(0.02);
	resolver_get_stats(cur->r, &st);
	assert_int_equal(st.pending, 1);
	/* one waiting for its answer */
	q = lookup("silent.test", &d[3]);
	run_for(0.02);
	assert_int_equal(fake_count("silent.test", DNS_T_A), 2);
	resolver_cancel(q);
	wait_all(&d[1], 1);		/* the other one times out */
	run_for(0.3);
	assert_int_equal(d[0].calls + d[2].calls + d[3].calls, 0);
	assert_int_equal(fake_count("a.test", 0), 0);
	resolver_get_stats(cur->r, &st);
	assert_int_equal(st.pending, 0);
	assert_int_equal(st.lookups, 4);
}

static void
test_free_with_pending(void **state)
{
	struct done d[3];

	(void)state;
	lookup("silent.test", &d[0]);
	lookup("192.0.2.1", &d[1]);
	run_for(0.01);
	assert_int_equal(d[1].calls, 1);
	lookup("silent.test", &d[2]);		/* not even started */
	resolver_free(cur->r);
	cur->r = NULL;
	run_for(0.3);
	assert_int_equal(d[0].calls + d[2].calls, 0);
}

/* A callback may free the resolver: the end of proxyd's shutdown path. */
static void
free_in_cb(const struct resolver_result *res, void *arg)
{
	int *calls = arg;

	(void)res;
	(*calls)++;
	resolver_free(cur->r);
	cur->r = NULL;
}

static void
test_free_from_callback(void **state)
{
	int calls = 0;
	struct done other;

	(void)state;
	assert_non_null(resolver_lookup(cur->r, "192.0.2.1", free_in_cb,
	    &calls));
	lookup("silent.test", &other);
	run_for(0.05);
	assert_int_equal(calls, 1);
	assert_int_equal(other.calls, 0);
}

static void
test_too_many_pending(void **state)
{
	struct resolver_config cfg = { .timeout = 0.05, .attempts = 1,
	    .max_pending = 2 };
	struct done d[3];

	(void)state;
	remake(&cfg, "nameserver 127.0.0.1\n");
	lookup("silent.test", &d[0]);
	lookup("silent.test", &d[1]);
	lookup("silent.test", &d[2]);
	wait_all(d, 3);
	assert_int_equal(d[2].status, RESOLVER_ERR_SYSTEM);
	assert_string_equal(d[2].error, "too many lookups in progress");
	assert_int_equal(d[0].status, RESOLVER_ERR_TIMEOUT);
}

static void
test_cache_bounded(void **state)
{
	struct resolver_config cfg = { .timeout = 0.1, .attempts = 1,
	    .cache_entries = 2 };
	struct resolver_stats st;
	struct done d;

	(void)state;
	remake(&cfg, "nameserver 127.0.0.1\n");
	resolve("a.test", &d);
	resolve("nx.test", &d);
	resolve("v4only.test", &d);	/* evicts the soonest to expire */
	resolver_get_stats(cur->r, &st);
	assert_int_equal(st.cached, 2);
	resolve("a.test", &d);
	assert_int_equal(d.source, RESOLVER_SRC_CACHE);	/* ttl 300 kept */
	/* a reload empties it */
	load("nameserver 127.0.0.1\n", "");
	resolver_get_stats(cur->r, &st);
	assert_int_equal(st.cached, 0);
	resolve("a.test", &d);
	assert_int_equal(d.source, RESOLVER_SRC_DNS);
	/* no cache at all */
	cfg.cache_entries = -1;
	remake(&cfg, "nameserver 127.0.0.1\n");
	resolve("a.test", &d);
	resolve("a.test", &d);
	assert_int_equal(d.source, RESOLVER_SRC_DNS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_name),
		cmocka_unit_test(test_literals),
		cmocka_unit_test(test_build_query),
		cmocka_unit_test(test_parse_answer),
		cmocka_unit_test(test_parse_answer_mutations),
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_literal_and_localhost),
		T(test_bad_names),
		T(test_hosts),
		T(test_load_files),
		T(test_no_load),
		T(test_a_and_aaaa),
		T(test_ids_and_ports_vary),
		T(test_cname_chain),
		T(test_nxdomain_nodata_cached),
		T(test_spoofs_ignored),
		T(test_truncated),
		T(test_malformed_then_timeout),
		T(test_many_bounded),
		T(test_timeout_and_retries),
		T(test_second_try_answers),
		T(test_aaaa_dropped),
		T(test_servfail_and_refused),
		T(test_unreachable_server_skipped),
		T(test_family),
		T(test_cancel),
		T(test_free_with_pending),
		T(test_free_from_callback),
		T(test_too_many_pending),
		T(test_cache_bounded),
#undef T
	};

	log_init("test_px_resolver", 1, LOG_LEVEL_WARN - 1);	/* quiet */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
