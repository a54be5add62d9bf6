/*
 * Benchmark for proxyd's TLS interception engine (not a test: it prints
 * figures).
 *
 *   bench_mitm [SECONDS] [MIB]     (default 1 s per handshake phase, 64 MiB)
 *
 * Everything runs in one thread without sockets: an mbedTLS "app", the engine
 * and an mbedTLS "origin" exchange bytes through memory, so the figures are
 * the engine's CPU cost, not the kernel's.  Time spent inside engine calls is
 * measured apart from the peers' own.
 *
 * Times are thread CPU time (the machine is shared).
 * Handshakes: full flows (app -> engine -> origin) per CPU second of all
 * three parties, and the engine's own CPU per flow, with the leaf cache off (a signature per flow), on, and on
 * with upstream session resumption; against plain app <-> origin handshakes
 * in the same run.
 * Bulk: MB/s of the engine relaying origin -> app (decrypt + encrypt) per
 * cipher suite, against a plain connection whose two ends do the same amount
 * of crypto (one encryption, one decryption).
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/psa_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

#include "log.h"
#include "proxyd/ca.h"
#include "proxyd/certforge.h"
#include "proxyd/mitm.h"
#include "proxyd/signer.h"

#define MAX_ITERS	100000

static const unsigned char dst_ip[4] = { 192, 0, 2, 1 };
static double engine_time;	/* seconds spent inside engine calls */

/*
 * Thread CPU time: the machine is shared, and wall time inside a call
 * includes whatever preempted us.  Everything runs in this one thread.
 */
static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
die(const char *what, int ret)
{
	fprintf(stderr, "bench_mitm: %s: -0x%04x\n", what, (unsigned)-ret);
	exit(1);
}

/* --- environment: two CAs (the engine's, the origin's) ----------------------- */

struct env {
	char		 dir_engine[64], dir_origin[64];
	struct ca	*ca_engine, *ca_origin;
	struct signer	*sg_engine, *sg_origin;
	struct certforge *cf_origin;	/* makes the origin's certificate */
	struct forged_cert *origin_cert;
	mbedtls_x509_crt app_trust;	/* the engine's CA, as installed in the app */
	mbedtls_ssl_ticket_context origin_tickets;
	char		 origin_ca_file[128];
};

static void
env_init(struct env *e)
{
	char err[256];
	struct certforge_request req = { .sni = "bench.example", .sni_len = 13,
	    .dst_ip = dst_ip, .dst_ip_len = 4 };
	char path[128];

	memset(e, 0, sizeof(*e));
	strcpy(e->dir_engine, "/tmp/bench_mitm.XXXXXX");
	strcpy(e->dir_origin, "/tmp/bench_mitm_o.XXXXXX");
	if (mkdtemp(e->dir_engine) == NULL || mkdtemp(e->dir_origin) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	if (ca_open(e->dir_engine, CA_LOAD_OR_CREATE, &e->ca_engine, err, sizeof(err)) != 0 ||
	    ca_open(e->dir_origin, CA_LOAD_OR_CREATE, &e->ca_origin, err, sizeof(err)) != 0) {
		fprintf(stderr, "bench_mitm: ca: %s\n", err);
		exit(1);
	}
	e->sg_engine = signer_new(e->ca_engine);
	e->sg_origin = signer_new(e->ca_origin);
	e->cf_origin = certforge_new(e->sg_origin, ca_cert(e->ca_origin), 4, 0, err, sizeof(err));
	if (e->sg_engine == NULL || e->cf_origin == NULL ||
	    certforge_get(e->cf_origin, &req, &e->origin_cert, err, sizeof(err)) != 0) {
		fprintf(stderr, "bench_mitm: origin certificate: %s\n", err);
		exit(1);
	}
	snprintf(e->origin_ca_file, sizeof(e->origin_ca_file), "%s/%s", e->dir_origin,
	    CA_EXPORT_PEM_FILE);
	mbedtls_x509_crt_init(&e->app_trust);
	snprintf(path, sizeof(path), "%s/%s", e->dir_engine, CA_EXPORT_PEM_FILE);
	if (mbedtls_x509_crt_parse_file(&e->app_trust, path) != 0)
		die("app trust", -1);
	mbedtls_ssl_ticket_init(&e->origin_tickets);
	if (mbedtls_ssl_ticket_setup(&e->origin_tickets, mbedtls_psa_get_random,
	    MBEDTLS_PSA_RANDOM_STATE, MBEDTLS_CIPHER_AES_256_GCM, 3600) != 0)
		die("tickets", -1);
}

static void
env_free(struct env *e)
{
	char cmd[256];

	mbedtls_ssl_ticket_free(&e->origin_tickets);
	mbedtls_x509_crt_free(&e->app_trust);
	forged_cert_release(e->origin_cert);
	certforge_free(e->cf_origin);
	signer_free(e->sg_origin);
	signer_free(e->sg_engine);
	ca_free(e->ca_origin);
	ca_free(e->ca_engine);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", e->dir_engine, e->dir_origin);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_mitm: could not remove %s\n", e->dir_engine);
}

/* --- peers -------------------------------------------------------------------- */

struct pipe {
	unsigned char	buf[65536];
	size_t		head, tail;
};

struct peer {
	mbedtls_ssl_context	ssl;
	mbedtls_ssl_config	conf;
	struct mitm		*m;		/* engine mode */
	enum mitm_side		side;
	struct pipe		*in, *out;	/* plain mode */
	int			suites[2];
	bool			done;
};

static int
peer_send(void *p, const unsigned char *buf, size_t len)
{
	struct peer *pe = p;
	size_t n;
	double t0;

	if (pe->m != NULL) {
		t0 = now_s();
		n = mitm_feed(pe->m, pe->side, buf, len);
		engine_time += now_s() - t0;
	} else {
		struct pipe *q = pe->out;

		if (q->head == q->tail)
			q->head = q->tail = 0;
		n = sizeof(q->buf) - q->tail;
		if (n > len)
			n = len;
		memcpy(q->buf + q->tail, buf, n);
		q->tail += n;
	}
	return n == 0 ? MBEDTLS_ERR_SSL_WANT_WRITE : (int)n;
}

static int
peer_recv(void *p, unsigned char *buf, size_t len)
{
	struct peer *pe = p;
	const unsigned char *d;
	size_t n;

	if (pe->m != NULL) {
		d = mitm_out_peek(pe->m, pe->side, &n);
		if (n > len)
			n = len;
		memcpy(buf, d, n);
		mitm_out_consume(pe->m, pe->side, n);
	} else {
		struct pipe *q = pe->in;

		n = q->tail - q->head;
		if (n > len)
			n = len;
		memcpy(buf, q->buf + q->head, n);
		q->head += n;
	}
	return n == 0 ? MBEDTLS_ERR_SSL_WANT_READ : (int)n;
}

static void
peer_init(struct peer *pe, struct env *e, bool origin, int suite,
    mbedtls_ssl_protocol_version max)
{
	int ret;

	memset(pe, 0, sizeof(*pe));
	mbedtls_ssl_init(&pe->ssl);
	mbedtls_ssl_config_init(&pe->conf);
	if ((ret = mbedtls_ssl_config_defaults(&pe->conf,
	    origin ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT)) != 0)
		die("config", ret);
	mbedtls_ssl_conf_rng(&pe->conf, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);
	mbedtls_ssl_conf_max_tls_version(&pe->conf, max);
	if (suite != 0) {
		pe->suites[0] = suite;
		mbedtls_ssl_conf_ciphersuites(&pe->conf, pe->suites);
	}
	if (origin) {
		if ((ret = mbedtls_ssl_conf_own_cert(&pe->conf, forged_cert_chain(e->origin_cert),
		    certforge_leaf_key(e->cf_origin))) != 0)
			die("origin cert", ret);
		mbedtls_ssl_conf_session_tickets_cb(&pe->conf, mbedtls_ssl_ticket_write,
		    mbedtls_ssl_ticket_parse, &e->origin_tickets);
	} else {
		mbedtls_ssl_conf_ca_chain(&pe->conf, &e->app_trust, NULL);
		mbedtls_ssl_conf_authmode(&pe->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
	}
	if ((ret = mbedtls_ssl_setup(&pe->ssl, &pe->conf)) != 0)
		die("setup", ret);
	if (!origin && (ret = mbedtls_ssl_set_hostname(&pe->ssl, "bench.example")) != 0)
		die("hostname", ret);
	mbedtls_ssl_set_bio(&pe->ssl, pe, peer_send, peer_recv, NULL);
}

static void
peer_free(struct peer *pe)
{
	mbedtls_ssl_free(&pe->ssl);
	mbedtls_ssl_config_free(&pe->conf);
}

static void
peer_step(struct peer *pe)
{
	int ret;

	if (pe->done)
		return;
	ret = mbedtls_ssl_handshake(&pe->ssl);
	if (ret == 0)
		pe->done = true;
	else if (ret != MBEDTLS_ERR_SSL_WANT_READ && ret != MBEDTLS_ERR_SSL_WANT_WRITE &&
	    ret != MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
		die("peer handshake", ret);
}

static enum mitm_status
engine_step(struct mitm *m)
{
	double t0 = now_s();
	enum mitm_status st = mitm_step(m);

	engine_time += now_s() - t0;
	return st;
}

/* One intercepted flow through its handshakes; the engine stays up. */
static void
flow_open(struct env *e, struct mitm_ctx *ctx, struct mitm **m, struct peer *app,
    struct peer *origin, int suite, mbedtls_ssl_protocol_version max)
{
	enum mitm_status st = MITM_HANDSHAKING;

	*m = mitm_new(ctx, dst_ip, 4, 443);
	if (*m == NULL)
		die("mitm_new", -1);
	peer_init(app, e, false, suite, max);
	peer_init(origin, e, true, suite, max);
	app->m = origin->m = *m;
	app->side = MITM_CLIENT;
	origin->side = MITM_UPSTREAM;
	for (int i = 0; i < 200 && !(app->done && origin->done && st == MITM_ESTABLISHED); i++) {
		peer_step(app);
		st = engine_step(*m);
		peer_step(origin);
		st = engine_step(*m);
	}
	if (st != MITM_ESTABLISHED || !app->done) {
		fprintf(stderr, "bench_mitm: flow did not establish: %s\n",
		    mitm_get_info(*m)->reason);
		exit(1);
	}
}

static void
flow_close(struct mitm *m, struct peer *app, struct peer *origin)
{
	double t0 = now_s();

	mitm_free(m);
	engine_time += now_s() - t0;
	peer_free(app);
	peer_free(origin);
}

/* --- handshakes ---------------------------------------------------------------- */

static void
bench_flows(struct env *e, const char *label, size_t leaf_cache, size_t sessions, double secs)
{
	struct certforge *cf;
	struct mitm_ctx *ctx;
	struct mitm_options o = { .system_ca_file = "", .extra_ca_file = e->origin_ca_file,
	    .session_cache_max = sessions, .ticket_lifetime = 600 };
	char err[256];
	double t0, t;
	long n;

	cf = certforge_new(e->sg_engine, ca_cert(e->ca_engine), leaf_cache, 0, err, sizeof(err));
	if (cf == NULL || (ctx = mitm_ctx_new(&o, cf, err, sizeof(err))) == NULL) {
		fprintf(stderr, "bench_mitm: %s\n", err);
		exit(1);
	}
	engine_time = 0;
	t0 = now_s();
	for (n = 0; n < MAX_ITERS; n++) {
		struct mitm *m;
		struct peer app, origin;

		flow_open(e, ctx, &m, &app, &origin, 0, MBEDTLS_SSL_VERSION_TLS1_3);
		if (sessions > 0) {
			/* let the origin's ticket reach the engine's cache */
			unsigned eof;
			unsigned char b[64];

			(void)mbedtls_ssl_write(&origin.ssl, (const unsigned char *)"x", 1);
			(void)mitm_relay(m, &eof);
			(void)mbedtls_ssl_read(&app.ssl, b, sizeof(b));
		}
		flow_close(m, &app, &origin);
		if ((t = now_s() - t0) >= secs)
			break;
	}
	n++;
	printf("  %-42s %6.0f flows/s  engine %5.2f ms CPU/flow (%4.0f flows/s/core)\n",
	    label, n / t, engine_time * 1e3 / n, n / engine_time);
	mitm_ctx_free(ctx);
	certforge_free(cf);
}

static void
bench_plain_handshakes(struct env *e, double secs)
{
	double t0 = now_s(), t;
	long n;

	for (n = 0; n < MAX_ITERS; n++) {
		struct peer app, origin;
		struct pipe *a2o = calloc(1, sizeof(*a2o)), *o2a = calloc(1, sizeof(*o2a));

		if (a2o == NULL || o2a == NULL)
			die("calloc", -1);
		peer_init(&app, e, false, 0, MBEDTLS_SSL_VERSION_TLS1_3);
		peer_init(&origin, e, true, 0, MBEDTLS_SSL_VERSION_TLS1_3);
		/* the app trusts the engine's CA; here it talks to the origin */
		mbedtls_ssl_conf_authmode(&app.conf, MBEDTLS_SSL_VERIFY_NONE);
		app.out = origin.in = a2o;
		app.in = origin.out = o2a;
		for (int i = 0; i < 100 && !(app.done && origin.done); i++) {
			peer_step(&app);
			peer_step(&origin);
		}
		if (!app.done || !origin.done)
			die("plain handshake", -1);
		peer_free(&app);
		peer_free(&origin);
		free(a2o);
		free(o2a);
		if ((t = now_s() - t0) >= secs)
			break;
	}
	n++;
	printf("  %-42s %6.0f handshakes/s, %5.2f ms CPU each (app + origin)\n",
	    "plain TLS 1.3 app <-> origin, no engine", n / t, t * 1e3 / n);
}

/* --- memory ------------------------------------------------------------------------ */

#define MEM_FLOWS	32

/* Heap held per established flow by the engine: flows (engine + app +
 * origin) minus plain app <-> origin pairs, both kept open at once. */
static void
bench_memory(struct env *e, struct mitm_ctx *ctx)
{
	static struct mitm *m[MEM_FLOWS];
	static struct peer app[MEM_FLOWS], origin[MEM_FLOWS];
	static struct pipe pipes[2 * MEM_FLOWS];
	size_t before, with_engine, plain;

	before = mallinfo2().uordblks;
	for (int i = 0; i < MEM_FLOWS; i++)
		flow_open(e, ctx, &m[i], &app[i], &origin[i], 0, MBEDTLS_SSL_VERSION_TLS1_3);
	with_engine = mallinfo2().uordblks - before;
	for (int i = 0; i < MEM_FLOWS; i++)
		flow_close(m[i], &app[i], &origin[i]);

	before = mallinfo2().uordblks;
	for (int i = 0; i < MEM_FLOWS; i++) {
		peer_init(&app[i], e, false, 0, MBEDTLS_SSL_VERSION_TLS1_3);
		peer_init(&origin[i], e, true, 0, MBEDTLS_SSL_VERSION_TLS1_3);
		mbedtls_ssl_conf_authmode(&app[i].conf, MBEDTLS_SSL_VERIFY_NONE);
		app[i].out = origin[i].in = &pipes[2 * i];
		app[i].in = origin[i].out = &pipes[2 * i + 1];
		for (int k = 0; k < 100 && !(app[i].done && origin[i].done); k++) {
			peer_step(&app[i]);
			peer_step(&origin[i]);
		}
	}
	plain = mallinfo2().uordblks - before;
	for (int i = 0; i < MEM_FLOWS; i++) {
		peer_free(&app[i]);
		peer_free(&origin[i]);
	}
	printf("  heap per established idle flow: engine %zu KiB (+ up to %zu KiB of its own "
	    "buffers while bytes are in flight); a plain app+origin pair %zu KiB\n",
	    (with_engine - plain) / MEM_FLOWS / 1024, mitm_buffer_bytes() / 1024,
	    plain / MEM_FLOWS / 1024);
}

/* --- bulk ------------------------------------------------------------------------- */

static const unsigned char chunk[16384];

/* origin -> app, total bytes: one run; engine and plain CPU seconds. */
static void
bulk_once(struct env *e, struct mitm_ctx *ctx, int suite, mbedtls_ssl_protocol_version ver,
    size_t total, double *eng, double *plain_out, double *whole)
{
	struct mitm *m;
	struct peer app, origin;
	static unsigned char rbuf[16384];
	size_t sent = 0, got = 0;
	double t0, wall, plain;
	unsigned eof;

	flow_open(e, ctx, &m, &app, &origin, suite, ver);
	engine_time = 0;
	t0 = now_s();
	while (got < total) {
		int r;

		while (sent < total) {
			r = mbedtls_ssl_write(&origin.ssl, chunk, sizeof(chunk));
			if (r <= 0)
				break;
			sent += (size_t)r;
		}
		{
			double t1 = now_s();

			if (mitm_relay(m, &eof) < 0)
				die("relay", -1);
			engine_time += now_s() - t1;
		}
		while ((r = mbedtls_ssl_read(&app.ssl, rbuf, sizeof(rbuf))) > 0 ||
		    r == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
			if (r > 0)
				got += (size_t)r;
	}
	wall = now_s() - t0;
	flow_close(m, &app, &origin);

	/* the same bytes app <-> origin directly: one encryption + one decryption */
	{
		struct pipe *a2o = calloc(1, sizeof(*a2o)), *o2a = calloc(1, sizeof(*o2a));

		if (a2o == NULL || o2a == NULL)
			die("calloc", -1);
		peer_init(&app, e, false, suite, ver);
		peer_init(&origin, e, true, suite, ver);
		mbedtls_ssl_conf_authmode(&app.conf, MBEDTLS_SSL_VERIFY_NONE);
		app.out = origin.in = a2o;
		app.in = origin.out = o2a;
		for (int i = 0; i < 100 && !(app.done && origin.done); i++) {
			peer_step(&app);
			peer_step(&origin);
		}
		sent = got = 0;
		t0 = now_s();
		while (got < total) {
			int r;

			while (sent < total && (r = mbedtls_ssl_write(&origin.ssl, chunk,
			    sizeof(chunk))) > 0)
				sent += (size_t)r;
			while ((r = mbedtls_ssl_read(&app.ssl, rbuf, sizeof(rbuf))) > 0 ||
			    r == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
				if (r > 0)
					got += (size_t)r;
		}
		plain = now_s() - t0;
		peer_free(&app);
		peer_free(&origin);
		free(a2o);
		free(o2a);
	}
	*eng = engine_time;
	*plain_out = plain;
	*whole = wall;
}

/* Best of three runs (least CPU), as the machine is shared. */
static void
bench_bulk(struct env *e, struct mitm_ctx *ctx, const char *label, int suite,
    mbedtls_ssl_protocol_version ver, size_t total)
{
	double eng = 1e9, plain = 1e9, whole = 1e9;

	for (int i = 0; i < 3; i++) {
		double a, b, c;

		bulk_once(e, ctx, suite, ver, total, &a, &b, &c);
		eng = a < eng ? a : eng;
		plain = b < plain ? b : plain;
		whole = c < whole ? c : whole;
	}
	printf("  %-32s engine %6.1f MB/s (dec+enc)  plain %6.1f MB/s (enc+dec)  "
	    "engine/plain CPU %.2f  all three %5.1f MB/s\n", label,
	    total / eng / 1e6, total / plain / 1e6, eng / plain, total / whole / 1e6);
}

int
main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 1.0;
	size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 64;
	struct env e;
	struct mitm_ctx *ctx;
	struct certforge *cf;
	struct mitm_options o;
	char err[256];

	if (secs <= 0 || secs > 60 || mib == 0 || mib > 4096) {
		fprintf(stderr, "usage: bench_mitm [SECONDS 0-60] [MIB 1-4096]\n");
		return 2;
	}
	log_init("bench_mitm", 1, LOG_LEVEL_WARN);
	if (psa_crypto_init() != PSA_SUCCESS)
		die("psa", -1);
	env_init(&e);

	printf("TLS interception engine, one thread, no sockets (%.1f s per phase)\n", secs);
	printf("handshakes (TLS 1.3 both legs, ECDSA P-256 everywhere):\n");
	bench_plain_handshakes(&e, secs);
	bench_flows(&e, "engine, leaf cache off (signs)", 0, 0, secs);
	bench_flows(&e, "engine, leaf cache on", CERTFORGE_DEFAULT_CACHE, 0, secs);
	bench_flows(&e, "engine, leaf cache + upstream resumption", CERTFORGE_DEFAULT_CACHE,
	    MITM_DEFAULT_SESSIONS, secs);

	memset(&o, 0, sizeof(o));
	o.system_ca_file = "";
	o.extra_ca_file = e.origin_ca_file;
	cf = certforge_new(e.sg_engine, ca_cert(e.ca_engine), 16, 0, err, sizeof(err));
	if (cf == NULL || (ctx = mitm_ctx_new(&o, cf, err, sizeof(err))) == NULL) {
		fprintf(stderr, "bench_mitm: %s\n", err);
		return 1;
	}
	printf("memory (TLS 1.3, %d flows held open):\n", MEM_FLOWS);
	bench_memory(&e, ctx);
	printf("bulk, origin -> app, %zu MiB, 16 KiB records:\n", mib);
	bench_bulk(&e, ctx, "TLS 1.3 AES-128-GCM", MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
	    MBEDTLS_SSL_VERSION_TLS1_3, mib << 20);
	/* what a client that offers only AES-256-GCM gets (see mitm.c) */
	bench_bulk(&e, ctx, "TLS 1.3 AES-256-GCM", MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
	    MBEDTLS_SSL_VERSION_TLS1_3, mib << 20);
	bench_bulk(&e, ctx, "TLS 1.3 CHACHA20-POLY1305", MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
	    MBEDTLS_SSL_VERSION_TLS1_3, mib << 20);
	bench_bulk(&e, ctx, "TLS 1.2 ECDHE-ECDSA-AES-128-GCM",
	    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, MBEDTLS_SSL_VERSION_TLS1_2,
	    mib << 20);
	bench_bulk(&e, ctx, "TLS 1.2 ECDHE-ECDSA-CHACHA20",
	    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, MBEDTLS_SSL_VERSION_TLS1_2,
	    mib << 20);
	mitm_ctx_free(ctx);
	certforge_free(cf);
	env_free(&e);
	return 0;
}
