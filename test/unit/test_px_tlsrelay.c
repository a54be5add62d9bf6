/*
 * Unit tests for TLS interception wired into proxyd's relay (relay.c with
 * mitm.c): a TCP flow whose first bytes are a ClientHello is decrypted and
 * re-encrypted, everything else stays raw, a client that refuses our
 * certificate makes its host pass through, and an unusable upstream gets
 * the client a 502.  (And a UDP flow to port 53 is recorded as DNS.)
 *
 * The relay runs on a private libev loop in the test's thread.  The
 * application is an mbedTLS client thread (trusting the localcap CA made
 * in a temp dir) on a socketpair, as netstackd hands flows over; the origin
 * is an mbedTLS server thread on 127.0.0.1 with certificates from a test CA
 * made by openssl.  Flows are recorded in a flow store in the temp dir too,
 * and the TLS facts are read back from it with SQLite.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <mbedtls/pk.h>
#include <mbedtls/psa_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>
#include <sqlite3.h>

#include "log.h"
#include "proxyd/ca.h"
#include "proxyd/membudget.h"
#include "proxyd/certforge.h"
#include "proxyd/mitm.h"
#include "proxyd/passmap.h"
#include "proxyd/relay.h"
#include "proxyd/signer.h"
#include "proxyd/store.h"

#define SOURCE		((const void *)0x5043)
#define MIB		(1024 * 1024)

static char g_dir[64];
static struct ca *g_ca;
static struct signer *g_signer;
static struct certforge *g_cf;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd) == 0 ? 0 : -1;
}

static void
path(char *buf, size_t len, const char *file)
{
	snprintf(buf, len, "%s/%s", g_dir, file);
}

/* The origin's PKI: tca signs up (upstream.test); self is trusted by no one. */
static int
group_setup(void **state)
{
	const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
	char err[512];

	(void)state;
	if (psa_crypto_init() != PSA_SUCCESS)
		return -1;
	strcpy(g_dir, "/tmp/test_px_tlsrelay.XXXXXX");
	if (mkdtemp(g_dir) == NULL)
		return -1;
	if (ca_open(g_dir, CA_LOAD_OR_CREATE, &g_ca, err, sizeof(err)) != 0 ||
	    (g_signer = signer_new(g_ca)) == NULL ||
	    (g_cf = certforge_new(g_signer, ca_cert(g_ca), 64, 0, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "CA: %s\n", err);
		return -1;
	}
	if (sh("cd '%s' && openssl req -x509 %s -keyout tca.key -out tca.pem "
	    "-subj '/CN=Test Origin CA' -days 30 -addext basicConstraints=critical,CA:TRUE "
	    "-addext keyUsage=critical,keyCertSign,cRLSign >/dev/null 2>&1 && "
	    "openssl req -new %s -keyout up.key -out up.csr -subj '/CN=upstream.test' "
	    ">/dev/null 2>&1 && printf 'subjectAltName=DNS:upstream.test\\n' >san && "
	    "openssl x509 -req -in up.csr -CA tca.pem -CAkey tca.key -CAcreateserial "
	    "-days 30 -extfile san -out up.pem >/dev/null 2>&1 && "
	    "openssl req -x509 %s -keyout self.key -out self.pem -subj '/CN=upstream.test' "
	    "-days 30 -addext subjectAltName=DNS:upstream.test >/dev/null 2>&1",
	    g_dir, ec, ec, ec) != 0)
		return -1;
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	certforge_free(g_cf);
	signer_free(g_signer);
	ca_free(g_ca);
	return sh("rm -rf '%s'", g_dir);
}

/* --- fixture ------------------------------------------------------------------ */

struct fixture {
	struct ev_loop		*loop;
	struct relay		*relay;
	struct mitm_ctx		*ctx;
	struct store		*store;
	struct membudget	 budget;	/* unlimited, still counted */
	char			 db[256];
};

static int
setup(void **state)
{
	struct fixture *t = calloc(1, sizeof(*t));
	struct relay_config cfg;
	struct mitm_options o;
	char ca[256], err[512];
	static int n;

	assert_non_null(t);
	memset(&o, 0, sizeof(o));
	path(ca, sizeof(ca), "tca.pem");
	o.system_ca_file = "";
	o.extra_ca_file = ca;
	o.session_cache_max = 8;
	o.ticket_lifetime = 600;
	t->ctx = mitm_ctx_new(&o, g_cf, err, sizeof(err));
	assert_non_null(t->ctx);
	snprintf(t->db, sizeof(t->db), "%s/flows-%d.db", g_dir, n++);
	t->store = store_open(t->db, NULL, err, sizeof(err));
	assert_non_null(t->store);
	t->loop = ev_loop_new(EVFLAG_AUTO);
	relay_config_default(&cfg);
	cfg.bufsize = 64 * 1024;
	cfg.connect_timeout = 2;
	cfg.ring_size = 8;
	cfg.store = t->store;
	membudget_init(&t->budget, 0);
	cfg.budget = &t->budget;
	t->relay = relay_new(t->loop, &cfg);
	assert_non_null(t->relay);
	relay_set_mitm(t->relay, t->ctx);
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *t = *state;

	assert_int_equal(relay_stats(t->relay)->flows_active, 0);
	assert_int_equal(relay_stats(t->relay)->buffered, 0);
	/* Every flow gave back what it was charged, engine buffers too. */
	assert_int_equal(t->budget.used, 0);
	relay_free(t->relay);
	store_close(t->store);
	mitm_ctx_free(t->ctx);
	ev_loop_destroy(t->loop);
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

static void
run_until(struct fixture *t, atomic_int *a, atomic_int *b, double limit)
{
	ev_timer w;
	double end = now_s() + limit;

	ev_timer_init(&w, tick, 0.005, 0.005);
	ev_timer_start(t->loop, &w);
	while (!(atomic_load(a) && (b == NULL || atomic_load(b)) &&
	    relay_stats(t->relay)->flows_active == 0)) {
		if (now_s() > end) {
			ev_timer_stop(t->loop, &w);
			fail_msg("flow not over in %.1f s", limit);
		}
		ev_run(t->loop, EVRUN_ONCE);
	}
	ev_timer_stop(t->loop, &w);
}

static uint8_t *
pattern(size_t len, unsigned seed)
{
	uint8_t *p = malloc(len);
	uint32_t x = 2463534242u ^ seed;

	assert_non_null(p);
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
	return p;
}

static void
timeouts(int fd)
{
	struct timeval tv = { .tv_sec = 10 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* --- TLS peers on blocking sockets ---------------------------------------------- */

/*
 * Set by a test: the peers move at most this many bytes per system call
 * (0: no limit), so that their records reach the relay in pieces and its
 * sends of several records find the other end full midway.
 */
static atomic_size_t g_peer_io_max;

static size_t
peer_io_len(size_t len)
{
	size_t max = atomic_load(&g_peer_io_max);

	return max != 0 && len > max ? max : len;
}

static int
bio_send(void *ctx, const unsigned char *buf, size_t len)
{
	ssize_t n = send(*(int *)ctx, buf, peer_io_len(len), MSG_NOSIGNAL);

	return n < 0 ? MBEDTLS_ERR_SSL_INTERNAL_ERROR : (int)n;
}

static int
bio_recv(void *ctx, unsigned char *buf, size_t len)
{
	ssize_t n = recv(*(int *)ctx, buf, peer_io_len(len), 0);

	return n < 0 ? MBEDTLS_ERR_SSL_INTERNAL_ERROR : (int)n;
}

struct tls {
	mbedtls_ssl_context	ssl;
	mbedtls_ssl_config	conf;
	mbedtls_x509_crt	crt;
	mbedtls_pk_context	key;
	int			fd;
};

static int
tls_init(struct tls *p, int fd, int server, const char *cert, const char *key)
{
	char f[256];

	memset(p, 0, sizeof(*p));
	p->fd = fd;
	mbedtls_ssl_init(&p->ssl);
	mbedtls_ssl_config_init(&p->conf);
	mbedtls_x509_crt_init(&p->crt);
	mbedtls_pk_init(&p->key);
	if (mbedtls_ssl_config_defaults(&p->conf, server ? MBEDTLS_SSL_IS_SERVER :
	    MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
	    MBEDTLS_SSL_PRESET_DEFAULT) != 0)
		return -1;
	mbedtls_ssl_conf_rng(&p->conf, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);
	path(f, sizeof(f), cert);
	if (mbedtls_x509_crt_parse_file(&p->crt, f) != 0)
		return -1;
	if (server) {
		path(f, sizeof(f), key);
		if (mbedtls_pk_parse_keyfile(&p->key, f, NULL, mbedtls_psa_get_random,
		    MBEDTLS_PSA_RANDOM_STATE) != 0 ||
		    mbedtls_ssl_conf_own_cert(&p->conf, &p->crt, &p->key) != 0)
			return -1;
	} else {
		/* cert is the CA the application trusts. */
		mbedtls_ssl_conf_ca_chain(&p->conf, &p->crt, NULL);
		mbedtls_ssl_conf_authmode(&p->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
	}
	if (mbedtls_ssl_setup(&p->ssl, &p->conf) != 0)
		return -1;
	if (!server && mbedtls_ssl_set_hostname(&p->ssl, "upstream.test") != 0)
		return -1;
	mbedtls_ssl_set_bio(&p->ssl, &p->fd, bio_send, bio_recv, NULL);
	return 0;
}

static void
tls_free(struct tls *p)
{
	mbedtls_ssl_free(&p->ssl);
	mbedtls_ssl_config_free(&p->conf);
	mbedtls_x509_crt_free(&p->crt);
	mbedtls_pk_free(&p->key);
}

static int
tls_handshake(struct tls *p)
{
	int r;

	do
		r = mbedtls_ssl_handshake(&p->ssl);
	while (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE);
	return r;
}

static int
tls_write_all(struct tls *p, const uint8_t *b, size_t len)
{
	while (len > 0) {
		int r = mbedtls_ssl_write(&p->ssl, b, len);

		if (r == MBEDTLS_ERR_SSL_WANT_WRITE || r == MBEDTLS_ERR_SSL_WANT_READ ||
		    r == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
			continue;
		if (r <= 0)
			return -1;
		b += r;
		len -= (size_t)r;
	}
	return 0;
}

/* Read up to cap bytes until EOF/close_notify/error; the count. */
static size_t
tls_read_all(struct tls *p, uint8_t *b, size_t cap, size_t want)
{
	size_t got = 0;

	while (got < cap && got < want) {
		int r = mbedtls_ssl_read(&p->ssl, b + got, cap - got);

		if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE ||
		    r == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return got;
}

/* The origin: one connection; reads in_len bytes, answers out_len. */
struct origin {
	int		 lfd;
	uint16_t	 port;
	const char	*cert, *key;
	size_t		 in_len, out_len;
	pthread_t	 th;
	atomic_int	 done;
	int		 hs_ret;
	int		 in_ok;		/* read in_len bytes matching the pattern */
};

static void *
origin_main(void *arg)
{
	struct origin *o = arg;
	struct tls p;
	uint8_t *in = malloc(o->in_len + 1), *want = pattern(o->in_len, 1);
	uint8_t *out = pattern(o->out_len, 2);
	int fd = accept(o->lfd, NULL, NULL);

	if (fd >= 0) {
		timeouts(fd);
		if (tls_init(&p, fd, 1, o->cert, o->key) == 0 &&
		    (o->hs_ret = tls_handshake(&p)) == 0) {
			size_t got = tls_read_all(&p, in, o->in_len, o->in_len);

			o->in_ok = got == o->in_len && memcmp(in, want, got) == 0;
			if (tls_write_all(&p, out, o->out_len) == 0)
				(void)mbedtls_ssl_close_notify(&p.ssl);
			/* Wait for the app's close (EOF or close_notify). */
			(void)tls_read_all(&p, in, 1, 1);
		}
		tls_free(&p);
		close(fd);
	}
	free(in);
	free(want);
	free(out);
	atomic_store(&o->done, 1);
	return NULL;
}

static void
origin_start(struct origin *o, const char *cert, const char *key, size_t in_len,
    size_t out_len)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	int one = 1;

	memset(o, 0, sizeof(*o));
	o->cert = cert;
	o->key = key;
	o->in_len = in_len;
	o->out_len = out_len;
	o->hs_ret = 1;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	o->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(o->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(o->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(o->lfd, 4), 0);
	assert_int_equal(getsockname(o->lfd, (struct sockaddr *)&sin, &sl), 0);
	o->port = ntohs(sin.sin_port);
	/* A flow that never reaches it must not leave the thread hanging. */
	timeouts(o->lfd);
	assert_int_equal(pthread_create(&o->th, NULL, origin_main, o), 0);
}

static void
origin_stop(struct origin *o)
{
	pthread_join(o->th, NULL);
	close(o->lfd);
}

/* The application: trusts ca; sends out_len pattern bytes (or req), reads. */
struct app {
	int		 fd;
	const char	*ca;
	const char	*req;		/* plaintext request instead of a pattern */
	size_t		 out_len, in_len;
	pthread_t	 th;
	atomic_int	 done;
	int		 hs_ret;
	int		 in_ok;
	uint8_t		 resp[1024];
	size_t		 resp_len;
};

static void *
app_main(void *arg)
{
	struct app *a = arg;
	struct tls p;
	uint8_t *out = pattern(a->out_len, 1), *want = pattern(a->in_len, 2);
	uint8_t *in = malloc(a->in_len + 1);

	timeouts(a->fd);
	if (tls_init(&p, a->fd, 0, a->ca, NULL) == 0 &&
	    (a->hs_ret = tls_handshake(&p)) == 0) {
		if (a->req != NULL) {
			(void)tls_write_all(&p, (const uint8_t *)a->req, strlen(a->req));
			a->resp_len = tls_read_all(&p, a->resp, sizeof(a->resp) - 1,
			    sizeof(a->resp));
			a->resp[a->resp_len] = '\0';
		} else if (tls_write_all(&p, out, a->out_len) == 0) {
			size_t got = tls_read_all(&p, in, a->in_len + 1, a->in_len + 1);

			a->in_ok = got == a->in_len && memcmp(in, want, got) == 0;
		}
		(void)mbedtls_ssl_close_notify(&p.ssl);
	}
	tls_free(&p);
	close(a->fd);
	free(out);
	free(want);
	free(in);
	atomic_store(&a->done, 1);
	return NULL;
}

/* Start an app thread on a socketpair and hand the other end to the relay. */
static void
app_start(struct fixture *t, struct app *a, const char *ca, uint16_t port,
    size_t out_len, size_t in_len, const char *req)
{
	struct flow_meta m;
	int fds[2];

	memset(a, 0, sizeof(*a));
	a->ca = ca;
	a->req = req;
	a->out_len = out_len;
	a->in_len = in_len;
	a->hs_ret = 1;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	if (atomic_load(&g_peer_io_max) != 0) {
		/* Small socket buffers: the relay's sends come back partial. */
		int small = 4096;

		for (int i = 0; i < 2; i++) {
			setsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
			setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
		}
	}
	a->fd = fds[0];
	memset(&m, 0, sizeof(m));
	m.transport = FLOW_TCP;
	m.source_flow_id = 9;
	m.src.family = m.dst.family = AF_INET;
	memcpy(m.src.addr, "\x7f\x00\x00\x01", 4);
	memcpy(m.dst.addr, "\x7f\x00\x00\x01", 4);
	m.src.port = 40000;
	m.dst.port = port;
	snprintf(m.owner.process, sizeof(m.owner.process), "tlsapp");
	snprintf(m.owner.cgroup, sizeof(m.owner.cgroup), "/test.slice");
	assert_true(relay_start(t->relay, SOURCE, &m, fds[1]) != 0);
	assert_int_equal(pthread_create(&a->th, NULL, app_main, a), 0);
}

static const struct flow_record *
last_record(struct fixture *t)
{
	const struct flow_ring *ring = relay_ring(t->relay);

	assert_true(ring->count > 0);
	return flow_ring_get(ring, ring->count - 1);
}

/* One column of the last flow in the store, as text ("" for NULL). */
static void
db_col(struct fixture *t, const char *col, char *out, size_t len)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char q[256];

	assert_int_equal(store_flush(t->store), 0);
	assert_int_equal(sqlite3_open_v2(t->db, &db, SQLITE_OPEN_READONLY, NULL),
	    SQLITE_OK);
	snprintf(q, sizeof(q), "SELECT %s FROM flows ORDER BY id DESC LIMIT 1", col);
	assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(out, len, "%s", sqlite3_column_text(st, 0) ?
	    (const char *)sqlite3_column_text(st, 0) : "");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* --- tests ----------------------------------------------------------------------- */

static void
tls_flow_decrypted_1mib_each_way_with_facts(void **state)
{
	struct fixture *t = *state;
	struct origin o;
	struct app a;
	const struct flow_record *rec;
	char v[256];

	origin_start(&o, "up.pem", "up.key", MIB, MIB);
	app_start(t, &a, CA_EXPORT_PEM_FILE, o.port, MIB, MIB, NULL);
	run_until(t, &a.done, &o.done, 30);
	pthread_join(a.th, NULL);
	origin_stop(&o);

	assert_int_equal(a.hs_ret, 0);
	assert_int_equal(o.hs_ret, 0);
	assert_true(o.in_ok);		/* the app's 1 MiB reached the origin */
	assert_true(a.in_ok);		/* and the origin's reached the app */
	rec = last_record(t);
	assert_int_equal(rec->end, FLOW_END_CLOSED);
	assert_string_equal(rec->protocol, "tls");
	assert_string_equal(rec->tls_sni, "upstream.test");
	assert_string_equal(rec->tls_version, "TLSv1.3");
	assert_string_equal(rec->upstream_tls_version, "TLSv1.3");
	assert_true(rec->tls_upstream_verified);
	assert_false(rec->tls_passthrough);
	/* Ciphertext both ways: more than the plaintext. */
	assert_true(rec->bytes_from_app > MIB && rec->bytes_to_app > MIB);
	assert_int_equal(relay_stats(t->relay)->tls_intercepted, 1);

	db_col(t, "protocol", v, sizeof(v));
	assert_string_equal(v, "tls");
	db_col(t, "sni", v, sizeof(v));
	assert_string_equal(v, "upstream.test");
	db_col(t, "tls_version", v, sizeof(v));
	assert_string_equal(v, "TLSv1.3");
	db_col(t, "server_cert_verified", v, sizeof(v));
	assert_string_equal(v, "1");
	db_col(t, "server_cert_subject", v, sizeof(v));
	assert_non_null(strstr(v, "upstream.test"));
	db_col(t, "passthrough_reason", v, sizeof(v));
	assert_string_equal(v, "");
}

/*
 * The relay moves several records per recv/send (MITM_BATCH) and stops
 * reading a socket in a run once a read came back short.  Here every
 * edge of that: the peers write and read at most 1,000 bytes per call (a
 * record reaches the relay split over many reads, and a read that fills
 * part of the room is not the end of the stream), and the app's socket
 * buffers are 4 KiB, so the relay's sends of up to four records stop
 * midway with EAGAIN, again and again.  Every byte must still arrive, in
 * order, both ways.
 */
static void
tls_flow_survives_split_records_and_partial_sends(void **state)
{
	struct fixture *t = *state;
	struct origin o;
	struct app a;
	const struct flow_record *rec;

	atomic_store(&g_peer_io_max, 1000);
	origin_start(&o, "up.pem", "up.key", MIB, MIB);
	app_start(t, &a, CA_EXPORT_PEM_FILE, o.port, MIB, MIB, NULL);
	run_until(t, &a.done, &o.done, 60);
	pthread_join(a.th, NULL);
	origin_stop(&o);
	atomic_store(&g_peer_io_max, 0);

	assert_int_equal(a.hs_ret, 0);
	assert_int_equal(o.hs_ret, 0);
	assert_true(o.in_ok);
	assert_true(a.in_ok);
	rec = last_record(t);
	assert_int_equal(rec->end, FLOW_END_CLOSED);
	assert_true(rec->bytes_from_app > MIB && rec->bytes_to_app > MIB);
	/*
	 * While the app's socket was full the engine held a leg's out buffer
	 * (a quarter of mitm_buffer_bytes): charged to the budget on top of
	 * the flow's state, and given back at the end (teardown).
	 */
	assert_true(t->budget.high_water >= 136 * 1024 + mitm_buffer_bytes() / 4);
}

/* A plain-text protocol with interception on: relayed as before. */
static void *
echo_main(void *arg)
{
	struct origin *o = arg;
	char buf[256];
	int fd = accept(o->lfd, NULL, NULL);
	ssize_t n;

	if (fd >= 0) {
		timeouts(fd);
		while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
			(void)send(fd, buf, (size_t)n, MSG_NOSIGNAL);
		close(fd);
	}
	atomic_store(&o->done, 1);
	return NULL;
}

static void
non_tls_flow_stays_raw(void **state)
{
	struct fixture *t = *state;
	struct origin o;
	struct flow_meta m;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	const char *msg = "HELO localcap\r\n";
	char got[64] = "", v[64];
	atomic_int app_done = 1;
	int fds[2];
	ssize_t n;

	memset(&o, 0, sizeof(o));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	o.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(o.lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(o.lfd, 4), 0);
	assert_int_equal(getsockname(o.lfd, (struct sockaddr *)&sin, &sl), 0);
	assert_int_equal(pthread_create(&o.th, NULL, echo_main, &o), 0);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	memset(&m, 0, sizeof(m));
	m.transport = FLOW_TCP;
	m.src.family = m.dst.family = AF_INET;
	memcpy(m.src.addr, "\x7f\x00\x00\x01", 4);
	memcpy(m.dst.addr, "\x7f\x00\x00\x01", 4);
	m.src.port = 40001;
	m.dst.port = ntohs(sin.sin_port);
	snprintf(m.owner.process, sizeof(m.owner.process), "rawapp");
	snprintf(m.owner.cgroup, sizeof(m.owner.cgroup), "/");
	assert_true(relay_start(t->relay, SOURCE, &m, fds[1]) != 0);
	assert_int_equal(send(fds[0], msg, strlen(msg), 0), (ssize_t)strlen(msg));
	{
		/* Read the echo while running the loop. */
		size_t have = 0;
		double end = now_s() + 10;

		while (have < strlen(msg) && now_s() < end) {
			ev_run(t->loop, EVRUN_NOWAIT);
			n = recv(fds[0], got + have, sizeof(got) - 1 - have,
			    MSG_DONTWAIT);
			if (n > 0)
				have += (size_t)n;
			else
				usleep(1000);
		}
		got[have] = '\0';
	}
	assert_string_equal(got, msg);
	shutdown(fds[0], SHUT_WR);
	run_until(t, &app_done, &o.done, 10);
	close(fds[0]);
	pthread_join(o.th, NULL);
	close(o.lfd);
	assert_null(last_record(t)->protocol);
	assert_int_equal(last_record(t)->end, FLOW_END_CLOSED);
	assert_int_equal(relay_stats(t->relay)->tls_intercepted, 0);
	db_col(t, "protocol", v, sizeof(v));
	assert_string_equal(v, "");
}

/*
 * An app that trusts only the origin's CA (a pinning client, or one
 * without our CA) refuses our leaf; the next flow to that host is passed
 * through undecrypted, so the same app then reaches the origin.
 */
static void
client_rejection_makes_host_pass_through(void **state)
{
	struct fixture *t = *state;
	struct origin o;
	struct app a;
	const struct flow_record *rec;
	char v[128];

	origin_start(&o, "up.pem", "up.key", 16, 16);
	app_start(t, &a, "tca.pem", o.port, 16, 16, NULL);
	run_until(t, &a.done, &o.done, 20);
	pthread_join(a.th, NULL);
	origin_stop(&o);
	assert_int_not_equal(a.hs_ret, 0);
	rec = last_record(t);
	assert_int_equal(rec->tls_error, MITM_ERR_CLIENT_REJECTED);
	assert_int_equal(relay_stats(t->relay)->tls_client_rejected, 1);

	origin_start(&o, "up.pem", "up.key", 4096, 4096);
	app_start(t, &a, "tca.pem", o.port, 4096, 4096, NULL);
	run_until(t, &a.done, &o.done, 20);
	pthread_join(a.th, NULL);
	origin_stop(&o);
	assert_int_equal(a.hs_ret, 0);	/* the origin's own certificate */
	assert_true(o.in_ok);
	assert_true(a.in_ok);
	rec = last_record(t);
	assert_true(rec->tls_passthrough);
	assert_string_equal(rec->protocol, "tls");
	assert_string_equal(rec->tls_sni, "upstream.test");
	assert_int_equal(relay_stats(t->relay)->tls_passthrough, 1);
	assert_int_equal(relay_stats(t->relay)->tls_intercepted, 1);
	db_col(t, "passthrough_reason", v, sizeof(v));
	assert_non_null(strstr(v, "refused our certificate"));
}

/* An origin nobody trusts: the client still gets a readable 502. */
static void
untrusted_upstream_answers_502(void **state)
{
	struct fixture *t = *state;
	struct origin o;
	struct app a;
	char v[256];

	origin_start(&o, "self.pem", "self.key", 16, 16);
	app_start(t, &a, CA_EXPORT_PEM_FILE, o.port, 0, 0,
	    "GET / HTTP/1.1\r\nHost: upstream.test\r\n\r\n");
	run_until(t, &a.done, &o.done, 20);
	pthread_join(a.th, NULL);
	origin_stop(&o);
	assert_int_equal(a.hs_ret, 0);
	assert_int_not_equal(o.hs_ret, 0);
	assert_memory_equal(a.resp, "HTTP/1.1 502 Bad Gateway\r\n", 26);
	assert_non_null(strstr((char *)a.resp, "upstream certificate of upstream.test"));
	assert_int_equal(last_record(t)->tls_error, MITM_ERR_UPSTREAM_CERT);
	assert_int_equal(relay_stats(t->relay)->tls_upstream_failed, 1);
	db_col(t, "error", v, sizeof(v));
	assert_non_null(strstr(v, "upstream certificate"));
}

/* Nothing listens: the connect error reaches an HTTP client as a 502. */
static void
refused_upstream_answers_502(void **state)
{
	struct fixture *t = *state;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	struct app a;
	atomic_int one = 1;
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	uint16_t port;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &sl), 0);
	port = ntohs(sin.sin_port);
	close(lfd);		/* bound then closed: connections are refused */

	app_start(t, &a, CA_EXPORT_PEM_FILE, port, 0, 0,
	    "GET / HTTP/1.1\r\nHost: upstream.test\r\n\r\n");
	run_until(t, &a.done, &one, 20);
	pthread_join(a.th, NULL);
	assert_int_equal(a.hs_ret, 0);
	assert_memory_equal(a.resp, "HTTP/1.1 502 Bad Gateway\r\n", 26);
	assert_non_null(strstr((char *)a.resp, "Connection refused"));
	assert_int_equal(last_record(t)->end, FLOW_END_CONNECT_FAILED);
}

/* --- the passthrough map --------------------------------------------------------- */

/*
 * A UDP flow to port 53 has its messages recorded as DNS, so the flow's
 * protocol says so; a UDP flow to another port has none.
 */
static void
udp_port_53_flow_recorded_as_dns(void **state)
{
	static const uint8_t query[] = {	/* id 0x1234, RD: example.com A */
		0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
		7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0,
		0, 1, 0, 1,
	};
	static const uint16_t port[] = { 53, 9 };
	static const char *const want[] = { "dns", "" };
	struct fixture *t = *state;
	atomic_int done = 1;
	char v[64];
	size_t i;

	for (i = 0; i < 2; i++) {
		struct flow_meta m;
		int fds[2];

		assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC,
		    0, fds), 0);
		memset(&m, 0, sizeof(m));
		m.transport = FLOW_UDP;
		m.src.family = m.dst.family = AF_INET;
		memcpy(m.src.addr, "\x7f\x00\x00\x01", 4);
		memcpy(m.dst.addr, "\x7f\x00\x00\x01", 4);
		m.src.port = 40003;
		m.dst.port = port[i];
		snprintf(m.owner.process, sizeof(m.owner.process), "resolver");
		snprintf(m.owner.cgroup, sizeof(m.owner.cgroup), "/");
		assert_true(relay_start(t->relay, SOURCE, &m, fds[1]) != 0);
		assert_int_equal(send(fds[0], query, sizeof(query), 0),
		    (ssize_t)sizeof(query));
		close(fds[0]);	/* the source ends the flow */
		run_until(t, &done, NULL, 5);
		assert_int_equal(last_record(t)->end, FLOW_END_CLOSED);
		assert_int_equal(last_record(t)->dgrams_from_app, 1);
		db_col(t, "protocol", v, sizeof(v));
		assert_string_equal(v, want[i]);
	}
}

static void
passmap_forgets_expired_hosts(void **state)
{
	struct passmap m;

	(void)state;
	assert_int_equal(passmap_init(&m, 4), 0);
	passmap_add(&m, "a.test", 10);
	assert_true(passmap_has(&m, "a.test", 9.9));
	assert_false(passmap_has(&m, "a.test", 10));
	assert_int_equal(m.n, 0);	/* dropped, not just hidden */
	assert_false(passmap_has(&m, "b.test", 0));
	passmap_free(&m);
}

static void
passmap_full_replaces_soonest_to_expire(void **state)
{
	struct passmap m;
	char k[32];

	(void)state;
	assert_int_equal(passmap_init(&m, 3), 0);
	passmap_add(&m, "a.test", 100);
	passmap_add(&m, "b.test", 50);
	passmap_add(&m, "c.test", 200);
	passmap_add(&m, "b.test", 40);	/* an earlier deadline never shortens */
	assert_int_equal(m.n, 3);
	passmap_add(&m, "d.test", 150);	/* full: b (50) goes */
	assert_int_equal(m.n, 3);
	assert_false(passmap_has(&m, "b.test", 0));
	assert_true(passmap_has(&m, "a.test", 0));
	assert_true(passmap_has(&m, "c.test", 0));
	assert_true(passmap_has(&m, "d.test", 0));
	/* A flood of names stays within the bound. */
	for (int i = 0; i < 1000; i++) {
		snprintf(k, sizeof(k), "h%d.test", i);
		passmap_add(&m, k, 300 + i);
	}
	assert_int_equal(m.n, 3);
	assert_true(passmap_has(&m, "h999.test", 0));
	passmap_free(&m);
}

/*
 * A silent close after our certificate is a strike: one close (a browser
 * reacting to a network change) leaves the host decrypted, the third
 * within the window makes it pass, an accepted certificate clears them,
 * and strikes older than the window are forgotten.
 */
static void
passmap_silent_closes_need_strikes(void **state)
{
	struct passmap m;
	const unsigned k = PASSMAP_CLOSE_STRIKES;
	const double w = PASSMAP_STRIKE_WINDOW;

	(void)state;
	assert_true(k >= 2);
	assert_int_equal(passmap_init(&m, 4), 0);
	for (unsigned i = 1; i < k; i++) {
		assert_false(passmap_strike(&m, "a.test", i, k, 1000));
		assert_false(passmap_has(&m, "a.test", i));
	}
	assert_true(passmap_strike(&m, "a.test", k, k, 1000));
	assert_true(passmap_has(&m, "a.test", k + 1));
	assert_false(passmap_strike(&m, "a.test", k + 2, k, 2000));	/* already */
	assert_false(passmap_has(&m, "a.test", 1000));

	/* an accepted certificate in between starts the count again */
	for (unsigned i = 1; i < k; i++)
		assert_false(passmap_strike(&m, "b.test", i, k, 1000));
	passmap_forgive(&m, "b.test");
	for (unsigned i = 1; i < k; i++)
		assert_false(passmap_strike(&m, "b.test", 10 + i, k, 1000));
	assert_false(passmap_has(&m, "b.test", 20));

	/* strikes spread wider than the window never add up */
	for (unsigned i = 0; i < 3 * k; i++)
		assert_false(passmap_strike(&m, "c.test", 100 + i * (w / (k - 1) + 1),
		    k, 5000));
	assert_false(passmap_has(&m, "c.test", 100 + 3 * k * w));
	passmap_free(&m);
}

/* An alert is the client saying it: need 1 passes at once. */
static void
passmap_alert_passes_at_once(void **state)
{
	struct passmap m;

	(void)state;
	assert_int_equal(passmap_init(&m, 2), 0);
	assert_true(passmap_strike(&m, "A.Test", 5, 1, 50));
	assert_true(passmap_has(&m, "a.test", 49));
	assert_false(passmap_has(&m, "a.test", 50));
	assert_int_equal(m.n, 0);	/* nothing left of it */
	/* strike-only entries make room before passing ones */
	passmap_add(&m, "p.test", 500);
	assert_false(passmap_strike(&m, "s.test", 10, 3, 500));
	passmap_add(&m, "q.test", 400);		/* full: s.test (strikes) goes */
	assert_true(passmap_has(&m, "p.test", 11));
	assert_true(passmap_has(&m, "q.test", 11));
	assert_int_equal(m.n, 2);
	passmap_free(&m);
}

static void
passmap_keys_ignore_case_and_clip(void **state)
{
	struct passmap m;
	char k[PASSMAP_KEY_MAX], longname[600];

	(void)state;
	passmap_key(k, "WWW.Example.TEST");
	assert_string_equal(k, "www.example.test");
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	passmap_key(k, longname);
	assert_int_equal(strlen(k), PASSMAP_KEY_MAX - 1);
	/* cap 0: passthrough off, nothing is remembered */
	assert_int_equal(passmap_init(&m, 0), 0);
	passmap_add(&m, "a.test", 100);
	assert_false(passmap_has(&m, "a.test", 0));
	passmap_free(&m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(tls_flow_decrypted_1mib_each_way_with_facts,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(tls_flow_survives_split_records_and_partial_sends,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(non_tls_flow_stays_raw, setup, teardown),
		cmocka_unit_test_setup_teardown(client_rejection_makes_host_pass_through,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(untrusted_upstream_answers_502, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(refused_upstream_answers_502, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(udp_port_53_flow_recorded_as_dns, setup,
		    teardown),
		cmocka_unit_test(passmap_forgets_expired_hosts),
		cmocka_unit_test(passmap_full_replaces_soonest_to_expire),
		cmocka_unit_test(passmap_keys_ignore_case_and_clip),
		cmocka_unit_test(passmap_silent_closes_need_strikes),
		cmocka_unit_test(passmap_alert_passes_at_once),
	};

	log_init("test_px_tlsrelay", 1, LOG_LEVEL_WARN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
