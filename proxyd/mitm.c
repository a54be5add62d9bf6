/*
 * The TLS man-in-the-middle engine (see mitm.h for the contract and
 * docs/proxyd-mitm.md for the reasoning).
 *
 * mitm_step():
 *   HELLO         tlshello_parse() on the buffered client bytes (left in place:
 *                 the client leg's mbedTLS server reads them again later)
 *   UPSTREAM_HS   mbedTLS client: SNI, filtered ALPN, cached session
 *                 -> certificate checked here (authmode OPTIONAL so that we
 *                    get and record the certificate even when it is bad)
 *   CLIENT_HS     certforge_get() -> mbedTLS server with the forged leaf and
 *                 the upstream's ALPN only
 *   ESTABLISHED / UPSTREAM_FAILED / FAILED
 *
 * Each leg has its own mbedtls_ssl_config: ALPN lists and the leaf are per
 * flow in mbedTLS's API, and a config is a few hundred bytes of pointers.
 * The heavy shared parts (trust store, ticket keys) live in struct mitm_ctx.
 * Ciphertext passes through two bounded linear buffers per leg, filled and
 * drained by the caller and allocated only while they hold bytes; the BIO
 * callbacks only copy.
 */
/*
 * Reading the alert a peer sent is the one thing mbedTLS 3.6 has no public
 * getter for; peer_alert() reads it from the record mbedTLS just parsed.
 */
#define MBEDTLS_ALLOW_PRIVATE_ACCESS

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/chachapoly.h>
#include <mbedtls/error.h>
#include <mbedtls/gcm.h>
#include <mbedtls/psa_util.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

#include "log.h"
#include "proxyd/certforge.h"
#include "proxyd/certname.h"
#include "proxyd/mitm.h"
#include "proxyd/tlshello.h"

/*
 * Per-leg ciphertext buffers.  In: one full record plus the next header, so
 * that a ClientHello of up to ~17 KB can be parsed before mbedTLS sees it.
 * Out: two full records, so that mitm_write/mitm_relay can encrypt twice
 * before the caller has to flush.  mbedTLS adds ~2 x 16.7 KB per leg.
 */
#define MITM_IN_CAP	(16384 + 1024)
#define MITM_OUT_CAP	(2 * (16384 + 1024))
#define MITM_MAX_RECORD	16384
#define MITM_MAX_ALPN	16

static double
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* MB/s of one AEAD over 16 KiB records, best of three ~2 ms rounds. */
static double
aead_rate(int aes)
{
	static unsigned char in[16384], out[16384], key[32], iv[12], tag[16];
	mbedtls_gcm_context g;
	mbedtls_chachapoly_context c;
	double best = 0;
	int round, i, n = 8;

	mbedtls_gcm_init(&g);
	mbedtls_chachapoly_init(&c);
	if (mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, key, 128) != 0 ||
	    mbedtls_chachapoly_setkey(&c, key) != 0)
		goto out;
	for (round = 0; round < 3; round++) {
		double t = mono_s();

		for (i = 0; i < n; i++)
			if ((aes ? mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT,
			    sizeof(in), iv, sizeof(iv), NULL, 0, in, out,
			    sizeof(tag), tag) :
			    mbedtls_chachapoly_encrypt_and_tag(&c, sizeof(in), iv,
			    NULL, 0, in, out, tag)) != 0)
				goto out;
		t = mono_s() - t;
		if (t > 0 && n * sizeof(in) / t / 1e6 > best)
			best = n * sizeof(in) / t / 1e6;
	}
out:
	mbedtls_gcm_free(&g);
	mbedtls_chachapoly_free(&c);
	return best;
}

enum mitm_cipher_pref
mitm_fastest_aead(double *aes_mbs, double *chacha_mbs)
{
	*aes_mbs = aead_rate(1);
	*chacha_mbs = aead_rate(0);
	return *aes_mbs > *chacha_mbs ? MITM_PREFER_AESGCM : MITM_PREFER_CHACHA;
}

static const int suites_chacha_first[] = {
	MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
	MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	/* older peers: CBC and static RSA, last */
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	MBEDTLS_TLS_RSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_RSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_RSA_WITH_AES_128_CBC_SHA,
	MBEDTLS_TLS_RSA_WITH_AES_256_CBC_SHA,
	0
};

static const int suites_aes_first[] = {
	MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
	MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	MBEDTLS_TLS_RSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_RSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_RSA_WITH_AES_128_CBC_SHA,
	MBEDTLS_TLS_RSA_WITH_AES_256_CBC_SHA,
	0
};

/*
 * The client leg in TLS 1.3: mbedTLS's server takes the client's order among
 * the suites it is given, and OpenSSL-based clients list AES-256-GCM first,
 * the slowest AEAD in mbedTLS (bench_mitm: 134 MB/s through the engine, vs
 * 172 for ChaCha20-Poly1305, 140 for AES-128-GCM).  Every TLS 1.3 client
 * must support AES-128-GCM (RFC 8446 9.1), so leaving AES-256-GCM out of
 * this leg moves such clients to ChaCha20.  A client configured to offer
 * neither ChaCha20 nor AES-128-GCM (CNSA-style AES-256 only) gets it back:
 * the ClientHello says so before the leg is set up (pick_client_suites).
 */
static const int client_leg_suites_chacha_first[] = {
	MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	0
};

static const int client_leg_suites_aes_first[] = {
	MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
	MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	0
};

/* --- shared context -------------------------------------------------------- */

struct up_session {
	uint64_t		hash;		/* of key, 0 = free slot */
	char			key[340];	/* "sni|ip|port" */
	mbedtls_ssl_session	sess;
	unsigned char		*der;		/* the certificate it was verified with */
	size_t			der_len;
	uint32_t		verify_flags;	/* its verdict (non-zero: insecure mode) */
	uint64_t		used;		/* LRU clock */
};

struct mitm_ctx {
	struct mitm_options	opt;
	struct certforge	*cf;
	mbedtls_x509_crt	trust;		/* system store + extra CA */
	bool			have_trust;
	mbedtls_ssl_ticket_context tickets;
	bool			have_tickets;
	const int		*suites;		/* upstream leg */
	const int		*client_suites;		/* client leg (our key is ECDSA) */
	struct up_session	*sessions;
	size_t			nsessions;
	uint64_t		clock;
	struct mitm		*current;	/* flow in mbedtls_ssl_handshake (ticket cb) */
	struct mitm_ctx_stats	stats;
};

/* --- per flow -------------------------------------------------------------- */

enum mitm_state {
	ST_HELLO,
	ST_UPSTREAM_HS,
	ST_CLIENT_HS,
	ST_ESTABLISHED,
	ST_UPSTREAM_FAILED,
	ST_FAILED,
};

struct mitm_buf {
	unsigned char	*data;
	size_t		 head, tail, cap;
};

struct mitm_leg {
	struct mitm_buf		in, out;
	mbedtls_ssl_context	ssl;
	mbedtls_ssl_config	conf;
	bool			setup;		/* ssl/conf initialised */
	bool			hs_done;
	bool			dead;		/* failed: reads/writes refused */
	bool			eof;		/* the socket gave EOF */
	bool			read_eof;	/* mitm_read reported the end */
	bool			fresh;		/* new input since the last AGAIN */
	bool			flush_pending;	/* a record only partly in out */
	bool			shut;		/* close_notify sent */
	/*
	 * bio_recv ran dry.  mbedTLS also says WANT_READ after a record that
	 * carried no data for the caller (a ticket, a CCS) although more input
	 * is buffered; only a starved BIO means "wait for the socket".
	 */
	bool			starved;
	size_t			hs_bytes_in;	/* ciphertext read during the handshake */
	size_t			hs_bytes_out;
	/*
	 * Record framing of the peer's handshake bytes, to catch an alert sent
	 * in plaintext where mbedTLS expects encryption (an mbedTLS TLS 1.3
	 * client refusing our certificate does that; mbedTLS then reports a
	 * MAC failure instead of the alert).
	 */
	unsigned char		rec_hdr[5];
	size_t			rec_hdr_have;
	size_t			rec_body_left;
	bool			rec_is_alert;
	unsigned char		rec_alert[2];
	size_t			rec_alert_have;
	int			plain_alert;	/* description, -1 none */
};

struct mitm {
	struct mitm_ctx		*ctx;
	enum mitm_state		 st;
	struct mitm_leg		 leg[2];
	unsigned char		 dst_ip[16];
	size_t			 dst_ip_len;
	uint16_t		 dst_port;
	char			 host_hint[256];	/* mitm_set_host_hint */

	bool			 upstream_failed;
	bool			 client_offered_http11;
	bool			 client_offered_alpn;
	/* ALPN lists handed to mbedTLS (it keeps the pointers) */
	char			 alpn_store[MITM_MAX_ALPN * 64];
	const char		*up_alpn[MITM_MAX_ALPN + 1];
	const char		*cl_alpn[2];
	char			 cl_alpn_name[256];
	int			 cl_suites[16];	/* client leg, per ClientHello */

	char			 sess_key[340];
	uint64_t		 sess_hash;
	bool			 offered_session;
	size_t			 offered_der_len;
	/* upstream certificate of the offered session: a copy, because another
	 * flow may replace the cache entry while this handshake runs */
	unsigned char		*cached_der;
	size_t			 cached_der_len;
	uint32_t		 cached_flags;

	struct forged_cert	*fc;
	struct mitm_info	 info;
	uint64_t		 t_hello;	/* µs, when the ClientHello was complete */
};

const char *
mitm_error_str(enum mitm_error e)
{
	switch (e) {
	case MITM_ERR_NONE:			return "none";
	case MITM_ERR_CLIENT_HELLO:		return "bad client hello";
	case MITM_ERR_CLIENT_REJECTED:		return "client rejected our certificate";
	case MITM_ERR_CLIENT_HANDSHAKE:		return "client handshake failed";
	case MITM_ERR_CLIENT_CLOSED:		return "client closed during handshake";
	case MITM_ERR_UPSTREAM_CONNECT:		return "upstream unreachable";
	case MITM_ERR_UPSTREAM_HANDSHAKE:	return "upstream handshake failed";
	case MITM_ERR_UPSTREAM_CERT:		return "upstream certificate not trusted";
	case MITM_ERR_FORGE:			return "certificate forging failed";
	case MITM_ERR_PROTOCOL:			return "TLS protocol error";
	case MITM_ERR_INTERNAL:			return "internal error";
	}
	return "unknown";
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static void
tls_strerror(int ret, char *buf, size_t len)
{
	mbedtls_strerror(ret, buf, len);
	if (buf[0] == '\0')
		snprintf(buf, len, "mbedTLS error -0x%04x", (unsigned)-ret);
}

/* Seeded FNV-1a would be overkill: keys come from validated SNI and addresses. */
static uint64_t
key_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h == 0 ? 1 : h;
}

/* --- ticket callbacks (client leg): note resumption for the record ---------- */

static int
ticket_parse_cb(void *p, mbedtls_ssl_session *session, unsigned char *buf, size_t len)
{
	struct mitm_ctx *ctx = p;
	int ret = mbedtls_ssl_ticket_parse(&ctx->tickets, session, buf, len);

	if (ret == 0 && ctx->current != NULL)
		ctx->current->info.client_resumed = true;
	return ret;
}

static int
ticket_write_cb(void *p, const mbedtls_ssl_session *session, unsigned char *start,
    const unsigned char *end, size_t *tlen, uint32_t *lifetime)
{
	struct mitm_ctx *ctx = p;

	return mbedtls_ssl_ticket_write(&ctx->tickets, session, start, end, tlen, lifetime);
}

int
mitm_read_ca_file(const char *path, unsigned char **buf, size_t *len, char *err,
    size_t errlen)
{
	unsigned char *b = NULL, *nb;
	size_t n = 0, cap = 0;
	ssize_t got;
	int fd;

	*buf = NULL;
	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		seterr(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	for (;;) {
		if (cap - n < 4096) {
			/* A trust bundle is a few hundred KiB; refuse the absurd. */
			if (cap >= 16 * 1024 * 1024 ||
			    (nb = realloc(b, cap ? cap * 2 : 256 * 1024)) == NULL) {
				seterr(err, errlen, "%s: too large or out of memory", path);
				goto fail;
			}
			b = nb;
			cap = cap ? cap * 2 : 256 * 1024;
		}
		got = read(fd, b + n, cap - n - 1);
		if (got == -1 && errno == EINTR)
			continue;
		if (got == -1) {
			seterr(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	close(fd);
	b[n] = '\0';
	*buf = b;
	/* mbedtls_x509_crt_parse wants PEM's NUL counted, and DER without it. */
	*len = memmem(b, n, "-----BEGIN", 10) != NULL ? n + 1 : n;
	return 0;
fail:
	close(fd);
	free(b);
	return -1;
}

struct mitm_ctx *
mitm_ctx_new(const struct mitm_options *opt, struct certforge *cf, char *err, size_t errlen)
{
	struct mitm_ctx *ctx;
	const char *sys;
	char ebuf[128];
	int ret;

	if (psa_crypto_init() != PSA_SUCCESS) {
		seterr(err, errlen, "psa_crypto_init failed");
		return NULL;
	}
	if ((ctx = calloc(1, sizeof(*ctx))) == NULL) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	ctx->opt = *opt;
	ctx->cf = cf;
	ctx->suites = opt->cipher_pref == MITM_PREFER_AESGCM ? suites_aes_first :
	    suites_chacha_first;
	ctx->client_suites = opt->cipher_pref == MITM_PREFER_AESGCM ?
	    client_leg_suites_aes_first : client_leg_suites_chacha_first;
	mbedtls_x509_crt_init(&ctx->trust);
	mbedtls_ssl_ticket_init(&ctx->tickets);

	sys = opt->system_ca_file != NULL ? opt->system_ca_file : MITM_SYSTEM_CA_FILE;
	if (opt->system_ca_buf != NULL) {
		if ((ret = mbedtls_x509_crt_parse(&ctx->trust, opt->system_ca_buf,
		    opt->system_ca_len)) < 0) {
			tls_strerror(ret, ebuf, sizeof(ebuf));
			seterr(err, errlen, "%s: %s", sys, ebuf);
			goto fail;
		}
		ctx->have_trust = true;
	} else if (sys[0] != '\0') {
		/* > 0: some certificates of the bundle did not parse; skip them,
		 * as every TLS library does with a system store. */
		if ((ret = mbedtls_x509_crt_parse_file(&ctx->trust, sys)) < 0) {
			tls_strerror(ret, ebuf, sizeof(ebuf));
			seterr(err, errlen, "%s: %s", sys, ebuf);
			goto fail;
		}
		ctx->have_trust = true;
	}
	if (opt->extra_ca_buf != NULL || (opt->extra_ca_file != NULL &&
	    opt->extra_ca_file[0] != '\0')) {
		const char *name = opt->extra_ca_file ? opt->extra_ca_file : "extra CA";

		ret = opt->extra_ca_buf != NULL ? mbedtls_x509_crt_parse(&ctx->trust,
		    opt->extra_ca_buf, opt->extra_ca_len) :
		    mbedtls_x509_crt_parse_file(&ctx->trust, opt->extra_ca_file);
		if (ret != 0) {
			if (ret > 0)
				seterr(err, errlen, "%s: %d certificate(s) did not parse",
				    name, ret);
			else {
				tls_strerror(ret, ebuf, sizeof(ebuf));
				seterr(err, errlen, "%s: %s", name, ebuf);
			}
			goto fail;
		}
		ctx->have_trust = true;
	}
	if (!ctx->have_trust && !opt->insecure) {
		seterr(err, errlen, "no upstream trust store: give a CA file or insecure mode");
		goto fail;
	}
	if (opt->ticket_lifetime > 0) {
		if ((ret = mbedtls_ssl_ticket_setup(&ctx->tickets, mbedtls_psa_get_random,
		    MBEDTLS_PSA_RANDOM_STATE, MBEDTLS_CIPHER_AES_256_GCM,
		    opt->ticket_lifetime)) != 0) {
			tls_strerror(ret, ebuf, sizeof(ebuf));
			seterr(err, errlen, "session tickets: %s", ebuf);
			goto fail;
		}
		ctx->have_tickets = true;
	}
	if (opt->session_cache_max > 0) {
		ctx->sessions = calloc(opt->session_cache_max, sizeof(*ctx->sessions));
		if (ctx->sessions == NULL) {
			seterr(err, errlen, "out of memory");
			goto fail;
		}
		ctx->nsessions = opt->session_cache_max;
		for (size_t i = 0; i < ctx->nsessions; i++)
			mbedtls_ssl_session_init(&ctx->sessions[i].sess);
	}
	return ctx;
fail:
	mitm_ctx_free(ctx);
	return NULL;
}

void
mitm_ctx_free(struct mitm_ctx *ctx)
{
	if (ctx == NULL)
		return;
	for (size_t i = 0; i < ctx->nsessions; i++) {
		mbedtls_ssl_session_free(&ctx->sessions[i].sess);
		free(ctx->sessions[i].der);
	}
	free(ctx->sessions);
	mbedtls_ssl_ticket_free(&ctx->tickets);
	mbedtls_x509_crt_free(&ctx->trust);
	free(ctx);
}

void
mitm_ctx_get_stats(const struct mitm_ctx *ctx, struct mitm_ctx_stats *st)
{
	*st = ctx->stats;
	st->sessions = 0;
	for (size_t i = 0; i < ctx->nsessions; i++)
		if (ctx->sessions[i].hash != 0)
			st->sessions++;
}

static struct up_session *
session_find(struct mitm_ctx *ctx, const char *key, uint64_t hash)
{
	for (size_t i = 0; i < ctx->nsessions; i++) {
		struct up_session *s = &ctx->sessions[i];

		if (s->hash == hash && strcmp(s->key, key) == 0)
			return s;
	}
	return NULL;
}

static void
session_drop(struct up_session *s)
{
	mbedtls_ssl_session_free(&s->sess);
	mbedtls_ssl_session_init(&s->sess);
	free(s->der);
	s->der = NULL;
	s->der_len = 0;
	s->hash = 0;
	s->key[0] = '\0';
}

/* Drops m's cached upstream session (it led to a failed handshake). */
static void
session_forget(struct mitm *m)
{
	struct up_session *s = session_find(m->ctx, m->sess_key, m->sess_hash);

	if (s != NULL)
		session_drop(s);
	free(m->cached_der);
	m->cached_der = NULL;
	m->cached_der_len = 0;
}

/* Remembers the upstream session of m (after a handshake or a new ticket). */
static void
session_save(struct mitm *m)
{
	struct mitm_ctx *ctx = m->ctx;
	struct up_session *s, *victim = NULL;
	const struct mitm_info *in = &m->info;

	if (ctx->nsessions == 0 || m->sess_hash == 0)
		return;
	/* Only sessions whose certificate we accepted may skip the check. */
	if (!in->upstream_verified && !ctx->opt.insecure)
		return;
	if ((s = session_find(ctx, m->sess_key, m->sess_hash)) == NULL) {
		for (size_t i = 0; i < ctx->nsessions; i++) {
			s = &ctx->sessions[i];
			if (s->hash == 0) {
				victim = s;
				break;
			}
			if (victim == NULL || s->used < victim->used)
				victim = s;
		}
		s = victim;
	}
	session_drop(s);
	if (mbedtls_ssl_get_session(&m->leg[MITM_UPSTREAM].ssl, &s->sess) != 0) {
		session_drop(s);
		return;
	}
	if (in->upstream_der != NULL) {
		if ((s->der = malloc(in->upstream_der_len)) == NULL) {
			session_drop(s);
			return;
		}
		memcpy(s->der, in->upstream_der, in->upstream_der_len);
		s->der_len = in->upstream_der_len;
		s->verify_flags = in->upstream_verify_flags;
	}
	snprintf(s->key, sizeof(s->key), "%s", m->sess_key);
	s->hash = m->sess_hash;
	s->used = ++ctx->clock;
}

static void fail(struct mitm *m, enum mitm_error e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* --- buffers and BIO ------------------------------------------------------- */

static size_t
buf_len(const struct mitm_buf *b)
{
	return b->tail - b->head;
}

static void
buf_compact(struct mitm_buf *b)
{
	if (b->head == b->tail) {
		b->head = b->tail = 0;
	} else if (b->head > 0) {
		memmove(b->data, b->data + b->head, b->tail - b->head);
		b->tail -= b->head;
		b->head = 0;
	}
}

/*
 * A buffer's memory exists only while it holds bytes (or the caller is about
 * to fill it): an idle keep-alive flow holds none of the ~100 KiB.
 */
static bool
buf_ensure(struct mitm_buf *b)
{
	if (b->data == NULL)
		b->data = malloc(b->cap);
	return b->data != NULL;
}

static void
buf_release_if_empty(struct mitm_buf *b)
{
	if (b->head == b->tail) {
		free(b->data);
		b->data = NULL;
		b->head = b->tail = 0;
	}
}

static size_t
buf_space(struct mitm_buf *b)
{
	if (b->head == b->tail || b->tail == b->cap)
		buf_compact(b);
	return b->cap - b->tail;
}

static int
bio_send(void *p, const unsigned char *buf, size_t len)
{
	struct mitm_leg *leg = p;
	struct mitm_buf *b = &leg->out;
	size_t n;

	if (b->cap - b->tail < len)
		buf_compact(b);
	n = b->cap - b->tail;
	if (n == 0)
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	if (!buf_ensure(b))
		return MBEDTLS_ERR_SSL_ALLOC_FAILED;
	if (n > len)
		n = len;
	memcpy(b->data + b->tail, buf, n);
	b->tail += n;
	if (!leg->hs_done)
		leg->hs_bytes_out += n;
	return (int)n;
}

/* Follows record boundaries over bytes handed to mbedTLS (see plain_alert). */
static void
sniff_records(struct mitm_leg *leg, const unsigned char *p, size_t len)
{
	while (len > 0) {
		if (leg->rec_hdr_have < 5) {
			leg->rec_hdr[leg->rec_hdr_have++] = *p++;
			len--;
			if (leg->rec_hdr_have == 5) {
				leg->rec_body_left = (size_t)leg->rec_hdr[3] << 8 | leg->rec_hdr[4];
				leg->rec_is_alert = leg->rec_hdr[0] == MBEDTLS_SSL_MSG_ALERT &&
				    leg->rec_body_left == 2;
				leg->rec_alert_have = 0;
				if (leg->rec_body_left == 0)
					leg->rec_hdr_have = 0;
			}
			continue;
		}
		size_t take = len < leg->rec_body_left ? len : leg->rec_body_left;

		for (size_t i = 0; leg->rec_is_alert && i < take && leg->rec_alert_have < 2; i++)
			leg->rec_alert[leg->rec_alert_have++] = p[i];
		p += take;
		len -= take;
		leg->rec_body_left -= take;
		if (leg->rec_body_left == 0) {
			if (leg->rec_is_alert && leg->rec_alert_have == 2 &&
			    leg->rec_alert[0] == MBEDTLS_SSL_ALERT_LEVEL_FATAL)
				leg->plain_alert = leg->rec_alert[1];
			leg->rec_hdr_have = 0;
		}
	}
}

static int
bio_recv(void *p, unsigned char *buf, size_t len)
{
	struct mitm_leg *leg = p;
	struct mitm_buf *b = &leg->in;
	size_t n = buf_len(b);

	if (n == 0) {
		if (leg->eof)
			return 0;
		leg->starved = true;
		return MBEDTLS_ERR_SSL_WANT_READ;
	}
	if (n > len)
		n = len;
	memcpy(buf, b->data + b->head, n);
	b->head += n;
	buf_release_if_empty(b);
	if (!leg->hs_done) {
		leg->hs_bytes_in += n;
		sniff_records(leg, buf, n);
	}
	return (int)n;
}

/* --- per-flow lifecycle ---------------------------------------------------- */

size_t
mitm_buffer_bytes(void)
{
	return 2 * (MITM_IN_CAP + MITM_OUT_CAP);	/* at most, all four full */
}

size_t
mitm_held_bytes(const struct mitm *m)
{
	size_t n = 0;

	for (int s = 0; s < 2; s++) {
		if (m->leg[s].in.data != NULL)
			n += m->leg[s].in.cap;
		if (m->leg[s].out.data != NULL)
			n += m->leg[s].out.cap;
	}
	return n;
}

struct mitm *
mitm_new(struct mitm_ctx *ctx, const unsigned char *dst_ip, size_t dst_ip_len,
    uint16_t dst_port)
{
	struct mitm *m;

	if (dst_ip_len != 4 && dst_ip_len != 16)
		return NULL;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	for (int s = 0; s < 2; s++) {
		m->leg[s].in.cap = MITM_IN_CAP;		/* allocated on first use */
		m->leg[s].out.cap = MITM_OUT_CAP;
	}
	m->ctx = ctx;
	memcpy(m->dst_ip, dst_ip, dst_ip_len);
	m->dst_ip_len = dst_ip_len;
	m->dst_port = dst_port;
	m->st = ST_HELLO;
	m->leg[MITM_CLIENT].plain_alert = m->leg[MITM_UPSTREAM].plain_alert = -1;
	return m;
}

void
mitm_set_host_hint(struct mitm *m, const char *host)
{
	snprintf(m->host_hint, sizeof(m->host_hint), "%s", host ? host : "");
}

/* The server's name: the client's SNI, else the hint, else "" (none). */
static const char *
server_name(const struct mitm *m)
{
	return m->info.sni[0] != '\0' ? m->info.sni : m->host_hint;
}

void
mitm_free(struct mitm *m)
{
	if (m == NULL)
		return;
	for (int s = 0; s < 2; s++) {
		if (m->leg[s].setup) {
			mbedtls_ssl_free(&m->leg[s].ssl);
			mbedtls_ssl_config_free(&m->leg[s].conf);
		}
	}
	if (m->fc != NULL)
		forged_cert_release(m->fc);
	if (m->ctx->current == m)
		m->ctx->current = NULL;
	for (int s = 0; s < 2; s++) {
		free(m->leg[s].in.data);
		free(m->leg[s].out.data);
	}
	free(m->cached_der);
	free(m->info.upstream_der);
	free(m);
}

const struct mitm_info *
mitm_get_info(const struct mitm *m)
{
	return &m->info;
}

size_t
mitm_in_space(struct mitm *m, enum mitm_side side, unsigned char **p)
{
	struct mitm_leg *leg = &m->leg[side];
	size_t n;

	*p = NULL;
	if (leg->eof || m->st == ST_FAILED)
		return 0;
	n = buf_space(&leg->in);
	if (n == 0)
		return 0;
	if (!buf_ensure(&leg->in)) {
		fail(m, MITM_ERR_INTERNAL, "out of memory");
		return 0;
	}
	*p = leg->in.data + leg->in.tail;
	return n;
}

void
mitm_in_commit(struct mitm *m, enum mitm_side side, size_t n)
{
	struct mitm_leg *leg = &m->leg[side];

	if (leg->in.data == NULL)
		n = 0;				/* caller bug: no mitm_in_space */
	if (n > leg->in.cap - leg->in.tail)
		n = leg->in.cap - leg->in.tail;	/* caller bug; never overrun */
	leg->in.tail += n;
	if (n > 0)
		leg->fresh = true;
	else
		buf_release_if_empty(&leg->in);	/* the read found nothing */
}

size_t
mitm_feed(struct mitm *m, enum mitm_side side, const void *buf, size_t len)
{
	unsigned char *p;
	size_t n = mitm_in_space(m, side, &p);

	if (n > len)
		n = len;
	if (n > 0) {
		memcpy(p, buf, n);
		mitm_in_commit(m, side, n);
	}
	return n;
}

void
mitm_in_eof(struct mitm *m, enum mitm_side side)
{
	m->leg[side].eof = true;
	m->leg[side].fresh = true;
	buf_release_if_empty(&m->leg[side].in);
}

const unsigned char *
mitm_out_peek(const struct mitm *m, enum mitm_side side, size_t *len)
{
	const struct mitm_buf *b = &m->leg[side].out;

	*len = buf_len(b);
	return b->data != NULL ? b->data + b->head : (const unsigned char *)"";
}

void
mitm_out_consume(struct mitm *m, enum mitm_side side, size_t n)
{
	struct mitm_buf *b = &m->leg[side].out;

	if (n > buf_len(b))
		n = buf_len(b);
	b->head += n;
	buf_release_if_empty(b);
}

/* --- the handshakes -------------------------------------------------------- */

static void
fail(struct mitm *m, enum mitm_error e, const char *fmt, ...)
{
	va_list ap;

	m->info.error = e;
	va_start(ap, fmt);
	vsnprintf(m->info.reason, sizeof(m->info.reason), fmt, ap);
	va_end(ap);
	m->st = ST_FAILED;
	m->leg[MITM_CLIENT].dead = true;
	m->leg[MITM_UPSTREAM].dead = true;
}

/* The upstream leg is lost; the client leg goes on so that it can be told. */
static void
upstream_fail(struct mitm *m, enum mitm_error e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
upstream_fail(struct mitm *m, enum mitm_error e, const char *fmt, ...)
{
	va_list ap;

	if (m->upstream_failed)
		return;
	m->upstream_failed = true;
	m->leg[MITM_UPSTREAM].dead = true;
	m->info.error = e;
	va_start(ap, fmt);
	vsnprintf(m->info.reason, sizeof(m->info.reason), fmt, ap);
	va_end(ap);
}

void
mitm_upstream_failed(struct mitm *m, const char *reason)
{
	if (m->st == ST_FAILED)
		return;
	if (m->st == ST_ESTABLISHED) {
		m->leg[MITM_UPSTREAM].dead = true;
		if (m->info.error == MITM_ERR_NONE) {
			m->info.error = MITM_ERR_UPSTREAM_CONNECT;
			snprintf(m->info.reason, sizeof(m->info.reason), "%s", reason);
		}
		return;
	}
	upstream_fail(m, MITM_ERR_UPSTREAM_CONNECT, "%s", reason);
}

/* The alert the peer just sent, or -1 (see the note at the top). */
static int
peer_alert(const mbedtls_ssl_context *ssl)
{
	if (ssl->in_msg == NULL || ssl->in_msgtype != MBEDTLS_SSL_MSG_ALERT ||
	    ssl->in_msglen < 2)
		return -1;
	return ssl->in_msg[1];
}

static bool
is_cert_alert(int a)
{
	switch (a) {
	case MBEDTLS_SSL_ALERT_MSG_BAD_CERT:
	case MBEDTLS_SSL_ALERT_MSG_UNSUPPORTED_CERT:
	case MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED:
	case MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED:
	case MBEDTLS_SSL_ALERT_MSG_CERT_UNKNOWN:
	case MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA:
	case MBEDTLS_SSL_ALERT_MSG_ACCESS_DENIED:
		return true;
	default:
		return false;
	}
}

static const char *
alert_name(int a)
{
	switch (a) {
	case 0:		return "close_notify";
	case 10:	return "unexpected_message";
	case 20:	return "bad_record_mac";
	case 40:	return "handshake_failure";
	case 42:	return "bad_certificate";
	case 43:	return "unsupported_certificate";
	case 44:	return "certificate_revoked";
	case 45:	return "certificate_expired";
	case 46:	return "certificate_unknown";
	case 47:	return "illegal_parameter";
	case 48:	return "unknown_ca";
	case 49:	return "access_denied";
	case 50:	return "decode_error";
	case 51:	return "decrypt_error";
	case 70:	return "protocol_version";
	case 71:	return "insufficient_security";
	case 80:	return "internal_error";
	case 90:	return "user_canceled";
	case 109:	return "missing_extension";
	case 112:	return "unrecognized_name";
	case 116:	return "certificate_required";
	case 120:	return "no_application_protocol";
	default:	return "alert";
	}
}

static int
leg_setup(struct mitm *m, enum mitm_side side)
{
	struct mitm_leg *leg = &m->leg[side];
	mbedtls_ssl_config *conf = &leg->conf;
	int ret;

	mbedtls_ssl_config_init(conf);
	mbedtls_ssl_init(&leg->ssl);
	leg->setup = true;
	if ((ret = mbedtls_ssl_config_defaults(conf,
	    side == MITM_CLIENT ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT)) != 0)
		return ret;
	mbedtls_ssl_conf_rng(conf, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);
	mbedtls_ssl_conf_min_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_2);
	mbedtls_ssl_conf_max_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_3);
	mbedtls_ssl_conf_ciphersuites(conf, side == MITM_CLIENT ? m->cl_suites :
	    m->ctx->suites);
	return 0;
}

/* The client's ALPN offers minus what proxyd cannot speak, for the upstream. */
static void
build_upstream_alpn(struct mitm *m, const struct tls_client_hello *ch)
{
	const uint8_t *name;
	size_t len, used = 0, n = 0, clip = 0;
	char *offer = m->info.client_alpn_offer;
	bool dropped_h2 = false;

	for (size_t i = 0; tlshello_alpn_at(ch, i, &name, &len); i++) {
		bool printable = len > 0;

		m->client_offered_alpn = true;
		for (size_t j = 0; j < len; j++)
			if (name[j] < 0x21 || name[j] > 0x7e || name[j] == ',')
				printable = false;
		if (!printable)
			continue;	/* mbedTLS takes C strings; such a name
					 * cannot be relayed (nor recorded) */
		if (clip + len + 2 < sizeof(m->info.client_alpn_offer)) {
			if (clip > 0)
				offer[clip++] = ',';
			memcpy(offer + clip, name, len);
			clip += len;
			offer[clip] = '\0';
		}
		if (len == 8 && memcmp(name, "http/1.1", 8) == 0)
			m->client_offered_http11 = true;
		if (!m->ctx->opt.allow_h2 && len == 2 && memcmp(name, "h2", 2) == 0) {
			dropped_h2 = true;
			continue;
		}
		if (n == MITM_MAX_ALPN || used + len + 1 > sizeof(m->alpn_store))
			continue;
		memcpy(m->alpn_store + used, name, len);
		m->alpn_store[used + len] = '\0';
		m->up_alpn[n++] = m->alpn_store + used;
		used += len + 1;
	}
	/* A client that offered h2 alone still gets h2, relayed undecoded,
	 * rather than a protocol it never asked for. */
	if (n == 0 && dropped_h2) {
		memcpy(m->alpn_store, "h2", 3);
		m->up_alpn[n++] = m->alpn_store;
	}
	m->up_alpn[n] = NULL;
}

static void
format_ip(const struct mitm *m, char *buf, size_t len)
{
	if (!certname_ip_to_text(m->dst_ip, m->dst_ip_len, buf, len))
		snprintf(buf, len, "?");
}

static int upstream_verify_cb(void *p, mbedtls_x509_crt *crt, int depth, uint32_t *flags);

static void
start_upstream(struct mitm *m)
{
	struct mitm_leg *leg = &m->leg[MITM_UPSTREAM];
	struct mitm_ctx *ctx = m->ctx;
	struct up_session *s;
	char ip[64], ebuf[128];
	int ret;

	if ((ret = leg_setup(m, MITM_UPSTREAM)) != 0)
		goto fail;
	/*
	 * REQUIRED: an untrusted origin never sees a finished handshake (mbedTLS
	 * sends it the alert).  Insecure mode: OPTIONAL, the handshake completes
	 * and the verdict is only recorded.  Either way upstream_verify_cb sees
	 * (and records) the certificate.
	 */
	mbedtls_ssl_conf_authmode(&leg->conf, ctx->opt.insecure ?
	    MBEDTLS_SSL_VERIFY_OPTIONAL : MBEDTLS_SSL_VERIFY_REQUIRED);
	if (ctx->have_trust)
		mbedtls_ssl_conf_ca_chain(&leg->conf, &ctx->trust, NULL);
	if (m->up_alpn[0] != NULL &&
	    (ret = mbedtls_ssl_conf_alpn_protocols(&leg->conf, m->up_alpn)) != 0)
		goto fail;
	if (ctx->nsessions > 0)
		mbedtls_ssl_conf_tls13_enable_signal_new_session_tickets(&leg->conf,
		    MBEDTLS_SSL_TLS1_3_SIGNAL_NEW_SESSION_TICKETS_ENABLED);
	else
		mbedtls_ssl_conf_session_tickets(&leg->conf, MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
	if ((ret = mbedtls_ssl_setup(&leg->ssl, &leg->conf)) != 0)
		goto fail;
	/* No name: hostname NULL (no SNI sent, no name check by mbedTLS); the
	 * destination address is checked against the certificate afterwards. */
	if ((ret = mbedtls_ssl_set_hostname(&leg->ssl,
	    server_name(m)[0] != '\0' ? server_name(m) : NULL)) != 0)
		goto fail;
	mbedtls_ssl_set_bio(&leg->ssl, leg, bio_send, bio_recv, NULL);
	mbedtls_ssl_set_verify(&leg->ssl, upstream_verify_cb, m);

	format_ip(m, ip, sizeof(ip));
	snprintf(m->sess_key, sizeof(m->sess_key), "%s|%s|%u", server_name(m), ip,
	    (unsigned)m->dst_port);
	m->sess_hash = key_hash(m->sess_key);
	if ((s = session_find(ctx, m->sess_key, m->sess_hash)) != NULL) {
		if (mbedtls_ssl_set_session(&leg->ssl, &s->sess) == 0) {
			m->offered_session = true;
			if (s->der != NULL && (m->cached_der = malloc(s->der_len)) != NULL) {
				memcpy(m->cached_der, s->der, s->der_len);
				m->cached_der_len = s->der_len;
				m->cached_flags = s->verify_flags;
			}
			s->used = ++ctx->clock;
		}
	}
	m->st = ST_UPSTREAM_HS;
	return;
fail:
	tls_strerror(ret, ebuf, sizeof(ebuf));
	fail(m, MITM_ERR_INTERNAL, "upstream TLS setup: %s", ebuf);
}

/* Keeps the upstream certificate for the record (first one seen wins). */
static void
record_upstream_cert(struct mitm *m, const mbedtls_x509_crt *crt)
{
	struct mitm_info *in = &m->info;

	if (in->upstream_der != NULL || crt->raw.len == 0 || crt->raw.len > MITM_DER_MAX)
		return;
	if ((in->upstream_der = malloc(crt->raw.len)) == NULL)
		return;
	memcpy(in->upstream_der, crt->raw.p, crt->raw.len);
	in->upstream_der_len = crt->raw.len;
	(void)mbedtls_sha256(crt->raw.p, crt->raw.len, in->upstream_sha256, 0);
	if (mbedtls_x509_dn_gets(in->upstream_subject, sizeof(in->upstream_subject),
	    &crt->subject) < 0)
		in->upstream_subject[0] = '\0';
	if (mbedtls_x509_dn_gets(in->upstream_issuer, sizeof(in->upstream_issuer),
	    &crt->issuer) < 0)
		in->upstream_issuer[0] = '\0';
}

/*
 * mbedTLS calls this for each certificate of the upstream chain, root first.
 * At the leaf: record it, and without SNI check it against the address we
 * connected to (mbedTLS only checks the name given to set_hostname, and a
 * client without SNI gave none).
 */
static int
upstream_verify_cb(void *p, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
	struct mitm *m = p;
	char ip[64];
	uint32_t f2 = 0;

	if (depth != 0)
		return 0;
	record_upstream_cert(m, crt);
	if (server_name(m)[0] == '\0' && m->ctx->have_trust) {
		format_ip(m, ip, sizeof(ip));
		(void)mbedtls_x509_crt_verify(crt, &m->ctx->trust, NULL, ip, &f2, NULL, NULL);
		*flags |= f2 & MBEDTLS_X509_BADCERT_CN_MISMATCH;
	}
	return 0;
}

static void
verify_reason(uint32_t flags, char *buf, size_t len)
{
	buf[0] = '\0';
	if (mbedtls_x509_crt_verify_info(buf, len, "", flags) < 0)
		buf[0] = '\0';
	for (char *q = buf; *q != '\0'; q++)
		if (*q == '\n')
			*q = (q[1] == '\0') ? '\0' : ';';
	if (buf[0] == '\0')
		snprintf(buf, len, "not trusted (flags 0x%x)", (unsigned)flags);
}

/* After a successful upstream handshake: versions, resumption, trust. */
static void
check_upstream(struct mitm *m)
{
	struct mitm_leg *leg = &m->leg[MITM_UPSTREAM];
	struct mitm_info *in = &m->info;
	uint32_t flags;

	in->upstream_version = mbedtls_ssl_get_version(&leg->ssl);
	in->upstream_cipher = mbedtls_ssl_get_ciphersuite(&leg->ssl);
	flags = mbedtls_ssl_get_verify_result(&leg->ssl);
	/*
	 * A resumed handshake carries no certificate, so it is shorter than
	 * the certificate it was first verified with: that is our resumption
	 * test (mbedTLS 3.6 does not say), and the cached DER stands in.
	 */
	if (m->offered_session && m->cached_der != NULL &&
	    leg->hs_bytes_in < m->cached_der_len) {
		mbedtls_x509_crt crt;

		in->upstream_resumed = true;
		m->ctx->stats.upstream_resumed++;
		flags = m->cached_flags;	/* the verdict when it was cached */
		mbedtls_x509_crt_init(&crt);
		if (in->upstream_der == NULL &&
		    mbedtls_x509_crt_parse_der(&crt, m->cached_der, m->cached_der_len) == 0)
			record_upstream_cert(m, &crt);
		mbedtls_x509_crt_free(&crt);
	} else if (in->upstream_der == NULL) {
		flags |= MBEDTLS_X509_BADCERT_MISSING;
	}
	if (!m->ctx->have_trust && !in->upstream_resumed)
		flags |= MBEDTLS_X509_BADCERT_NOT_TRUSTED;
	in->upstream_verify_flags = flags;
	in->upstream_verified = flags == 0;
}

static void
start_client(struct mitm *m)
{
	struct mitm_leg *leg = &m->leg[MITM_CLIENT];
	struct mitm_ctx *ctx = m->ctx;
	struct certforge_request req;
	const char *alpn = NULL;
	char err[256], ebuf[128];
	int ret;

	memset(&req, 0, sizeof(req));
	if (server_name(m)[0] != '\0') {
		req.sni = server_name(m);
		req.sni_len = strlen(req.sni);
	}
	req.dst_ip = m->dst_ip;
	req.dst_ip_len = m->dst_ip_len;
	if (!m->upstream_failed) {
		/* A refused certificate is not copied: an expired one would make
		 * our leaf expired too, and the client could not read the 502. */
		req.upstream_der = m->info.upstream_der;
		req.upstream_len = m->info.upstream_der_len;
	}
	if (certforge_get(ctx->cf, &req, &m->fc, err, sizeof(err)) != 0) {
		m->fc = NULL;
		fail(m, MITM_ERR_FORGE, "forging a certificate: %s", err);
		return;
	}
	if ((ret = leg_setup(m, MITM_CLIENT)) != 0)
		goto fail;
	if ((ret = mbedtls_ssl_conf_own_cert(&leg->conf, forged_cert_chain(m->fc),
	    certforge_leaf_key(ctx->cf))) != 0)
		goto fail;
	if (!m->upstream_failed) {
		alpn = mbedtls_ssl_get_alpn_protocol(&m->leg[MITM_UPSTREAM].ssl);
	} else if (m->client_offered_http11) {
		alpn = "http/1.1";	/* so that the caller can answer 502 */
	}
	if (alpn != NULL) {
		snprintf(m->cl_alpn_name, sizeof(m->cl_alpn_name), "%s", alpn);
		snprintf(m->info.alpn, sizeof(m->info.alpn), "%s", alpn);
		m->cl_alpn[0] = m->cl_alpn_name;
		m->cl_alpn[1] = NULL;
		if ((ret = mbedtls_ssl_conf_alpn_protocols(&leg->conf, m->cl_alpn)) != 0)
			goto fail;
	}
	if (ctx->have_tickets)
		mbedtls_ssl_conf_session_tickets_cb(&leg->conf, ticket_write_cb,
		    ticket_parse_cb, ctx);
	if ((ret = mbedtls_ssl_setup(&leg->ssl, &leg->conf)) != 0)
		goto fail;
	mbedtls_ssl_set_bio(&leg->ssl, leg, bio_send, bio_recv, NULL);
	m->st = ST_CLIENT_HS;
	return;
fail:
	tls_strerror(ret, ebuf, sizeof(ebuf));
	fail(m, MITM_ERR_INTERNAL, "client TLS setup: %s", ebuf);
}

/* mbedtls_ssl_handshake until it is done or truly waits (see starved). */
static int
handshake(struct mitm_leg *leg)
{
	int ret;

	for (int spins = 0;; spins++) {
		leg->starved = false;
		ret = mbedtls_ssl_handshake(&leg->ssl);
		if (ret != MBEDTLS_ERR_SSL_WANT_READ || leg->starved || spins >= 64)
			return ret;
	}
}

/* TLS 1.2 or 1.3 among the client's versions (mbedTLS 3.6 has nothing older). */
static bool
client_speaks_modern_tls(const struct tls_client_hello *ch)
{
	if (ch->nsupported_versions == 0)
		return ch->legacy_version >= 0x0303;
	for (size_t i = 0; i < ch->nsupported_versions; i++) {
		uint16_t v = tlshello_u16(ch->supported_versions, i);

		if (v == 0x0303 || v == 0x0304)
			return true;
	}
	return false;
}

/* The client leg's suites: ours, plus AES-256-GCM for a TLS 1.3 client that
 * offers neither of our two preferred AEADs. */
static void
pick_client_suites(struct mitm *m, const struct tls_client_hello *ch)
{
	bool fast = false, aes128 = false;
	size_t n = 0;

	for (size_t i = 0; i < ch->ncipher_suites; i++) {
		uint16_t cs = tlshello_u16(ch->cipher_suites, i);

		if (cs == MBEDTLS_TLS1_3_AES_128_GCM_SHA256 ||
		    cs == MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256)
			fast = true;
		aes128 |= cs == MBEDTLS_TLS1_3_AES_128_GCM_SHA256;
	}
	for (const int *p = m->ctx->client_suites; *p != 0 && n + 2 < 16; p++) {
		/*
		 * Where AES-GCM is the faster here (mitm_fastest_aead), a
		 * client that offers AES-128-GCM gets it even if it lists
		 * ChaCha20 first: the client runs on this machine too.
		 */
		if (aes128 && m->ctx->client_suites == client_leg_suites_aes_first &&
		    *p == MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256)
			continue;
		m->cl_suites[n++] = *p;
		/* right after the TLS 1.3 pair */
		if (!fast && n == 2)
			m->cl_suites[n++] = MBEDTLS_TLS1_3_AES_256_GCM_SHA384;
	}
	m->cl_suites[n] = 0;
}

static void
step_hello(struct mitm *m)
{
	struct mitm_leg *leg = &m->leg[MITM_CLIENT];
	struct tls_client_hello ch;
	enum tlshello_result r;

	if (buf_len(&leg->in) == 0) {
		if (leg->eof)
			fail(m, MITM_ERR_CLIENT_CLOSED, "client closed before its ClientHello");
		return;
	}
	r = tlshello_parse(leg->in.data + leg->in.head, buf_len(&leg->in), &ch);
	switch (r) {
	case TLSHELLO_NEED_MORE:
		if (leg->eof)
			fail(m, MITM_ERR_CLIENT_CLOSED, "client closed before its ClientHello ended");
		else if (buf_len(&leg->in) >= leg->in.cap)
			fail(m, MITM_ERR_CLIENT_HELLO, "ClientHello larger than %u bytes",
			    (unsigned)leg->in.cap);
		break;
	case TLSHELLO_NOT_TLS:
		fail(m, MITM_ERR_CLIENT_HELLO, "client did not start a TLS handshake");
		break;
	case TLSHELLO_MALFORMED:
		fail(m, MITM_ERR_CLIENT_HELLO, "malformed ClientHello: %s",
		    tlshello_error_str(ch.error));
		break;
	case TLSHELLO_OK:
		if (!client_speaks_modern_tls(&ch)) {
			/* Say so before any upstream work: a fatal protocol_version
			 * alert in a plaintext record, as the client expects it. */
			static const unsigned char alert[] = { MBEDTLS_SSL_MSG_ALERT, 0x03, 0x01,
			    0x00, 0x02, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
			    MBEDTLS_SSL_ALERT_MSG_PROTOCOL_VERSION };

			(void)bio_send(leg, alert, sizeof(alert));
			fail(m, MITM_ERR_CLIENT_HANDSHAKE, "client offers only TLS 1.1 or older "
			    "(version 0x%04x)", ch.legacy_version);
			break;
		}
		m->t_hello = now_us();
		if (ch.has_sni && !ch.sni_rejected)
			snprintf(m->info.sni, sizeof(m->info.sni), "%s", ch.sni);
		m->info.sni_rejected = ch.sni_rejected;
		build_upstream_alpn(m, &ch);
		pick_client_suites(m, &ch);
		if (m->upstream_failed)
			start_client(m);
		else
			start_upstream(m);
		break;
	}
	tlshello_free(&ch);
}

static void
step_upstream(struct mitm *m)
{
	struct mitm_leg *leg = &m->leg[MITM_UPSTREAM];
	char ebuf[128];
	int ret;

	if (m->upstream_failed) {
		start_client(m);
		return;
	}
	ret = handshake(leg);
	if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE)
		return;
	if (ret == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
		ret = 0;	/* the handshake is over; the ticket is read later */
	if (ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
		char why[200];

		m->info.upstream_verify_flags = mbedtls_ssl_get_verify_result(&leg->ssl);
		verify_reason(m->info.upstream_verify_flags, why, sizeof(why));
		upstream_fail(m, MITM_ERR_UPSTREAM_CERT, "upstream certificate of %s: %s",
		    m->info.sni[0] != '\0' ? m->info.sni : "(no SNI)", why);
		start_client(m);
		return;
	}
	if (ret != 0) {
		int a = ret == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE ? peer_alert(&leg->ssl) : -1;

		if (m->offered_session)
			session_forget(m);	/* the next attempt starts afresh */
		if (a >= 0)
			upstream_fail(m, MITM_ERR_UPSTREAM_HANDSHAKE,
			    "upstream TLS handshake: server sent alert %d (%s)", a, alert_name(a));
		else if (ret == MBEDTLS_ERR_SSL_CONN_EOF)
			upstream_fail(m, MITM_ERR_UPSTREAM_HANDSHAKE,
			    "upstream TLS handshake: server closed the connection");
		else {
			tls_strerror(ret, ebuf, sizeof(ebuf));
			upstream_fail(m, MITM_ERR_UPSTREAM_HANDSHAKE, "upstream TLS handshake: %s",
			    ebuf);
		}
		start_client(m);
		return;
	}
	leg->hs_done = true;
	m->info.upstream_handshake_us = now_us() - m->t_hello;
	check_upstream(m);
	session_save(m);
	start_client(m);
}

static void
step_client(struct mitm *m)
{
	struct mitm_leg *leg = &m->leg[MITM_CLIENT];
	char ebuf[128];
	int ret;

	m->ctx->current = m;
	ret = handshake(leg);
	m->ctx->current = NULL;
	if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE)
		return;
	if (ret != 0) {
		int a = ret == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE ? peer_alert(&leg->ssl) :
		    leg->plain_alert;
		/* Our first flight (with the certificate) went out unless resumed. */
		bool saw_cert = leg->hs_bytes_out > 0 && !m->info.client_resumed;
		enum mitm_error e;

		if (saw_cert && is_cert_alert(a)) {
			e = MITM_ERR_CLIENT_REJECTED;
			snprintf(ebuf, sizeof(ebuf), "alert %d (%s)", a, alert_name(a));
		} else if (saw_cert && (ret == MBEDTLS_ERR_SSL_CONN_EOF ||
		    (a < 0 && leg->eof))) {
			e = MITM_ERR_CLIENT_REJECTED;
			snprintf(ebuf, sizeof(ebuf), "closed the connection");
		} else if (a >= 0) {
			e = MITM_ERR_CLIENT_HANDSHAKE;
			snprintf(ebuf, sizeof(ebuf), "alert %d (%s)", a, alert_name(a));
		} else if (ret == MBEDTLS_ERR_SSL_CONN_EOF) {
			e = MITM_ERR_CLIENT_CLOSED;
			snprintf(ebuf, sizeof(ebuf), "closed the connection");
		} else {
			e = MITM_ERR_CLIENT_HANDSHAKE;
			tls_strerror(ret, ebuf, sizeof(ebuf));
		}
		fail(m, e, "client TLS handshake for %s: %s%s",
		    m->info.sni[0] != '\0' ? m->info.sni : "(no SNI)", ebuf,
		    e == MITM_ERR_CLIENT_REJECTED ? " after our certificate" : "");
		/* the upstream sees an orderly end rather than a cut */
		if (m->leg[MITM_UPSTREAM].hs_done && !m->upstream_failed)
			(void)mbedtls_ssl_close_notify(&m->leg[MITM_UPSTREAM].ssl);
		return;
	}
	leg->hs_done = true;
	m->info.handshake_us = now_us() - m->t_hello;
	m->info.client_version = mbedtls_ssl_get_version(&leg->ssl);
	m->info.client_cipher = mbedtls_ssl_get_ciphersuite(&leg->ssl);
	m->ctx->stats.handshakes++;
	if (m->info.client_resumed)
		m->ctx->stats.client_resumed++;
	/* The leaf is in the session now; the cache keeps its own reference. */
	forged_cert_release(m->fc);
	m->fc = NULL;
	m->st = m->upstream_failed ? ST_UPSTREAM_FAILED : ST_ESTABLISHED;
}

enum mitm_status
mitm_step(struct mitm *m)
{
	enum mitm_state before;

	do {
		before = m->st;
		switch (m->st) {
		case ST_HELLO:
			step_hello(m);
			break;
		case ST_UPSTREAM_HS:
			step_upstream(m);
			break;
		case ST_CLIENT_HS:
			step_client(m);
			break;
		case ST_ESTABLISHED:
		case ST_UPSTREAM_FAILED:
		case ST_FAILED:
			break;
		}
	} while (m->st != before);

	switch (m->st) {
	case ST_ESTABLISHED:
		return MITM_ESTABLISHED;
	case ST_UPSTREAM_FAILED:
		return MITM_UPSTREAM_FAILED;
	case ST_FAILED:
		return MITM_FAILED;
	default:
		return MITM_HANDSHAKING;
	}
}

static bool
leg_usable(const struct mitm *m, enum mitm_side side)
{
	if (m->leg[side].dead)
		return false;
	if (m->st == ST_ESTABLISHED)
		return true;
	return m->st == ST_UPSTREAM_FAILED && side == MITM_CLIENT;
}

unsigned
mitm_wants(const struct mitm *m)
{
	unsigned w = 0;

	for (int s = 0; s < 2; s++) {
		const struct mitm_leg *leg = &m->leg[s];
		bool reading;

		if (buf_len(&leg->out) > 0)
			w |= MITM_WANT_WRITE(s);
		switch (m->st) {
		case ST_HELLO:
			reading = s == MITM_CLIENT;
			break;
		case ST_UPSTREAM_HS:
		case ST_CLIENT_HS:
			reading = !leg->dead;
			break;
		case ST_ESTABLISHED:
		case ST_UPSTREAM_FAILED:
			reading = leg_usable(m, s) && !leg->read_eof;
			break;
		default:
			reading = false;
		}
		if (reading && !leg->eof &&
		    (leg->in.tail < leg->in.cap || leg->in.head > 0))
			w |= MITM_WANT_READ(s);
		if (leg_usable(m, s) && !leg->read_eof &&
		    (leg->fresh || mbedtls_ssl_get_bytes_avail(&leg->ssl) > 0))
			w |= MITM_READABLE(s);
	}
	return w;
}

/* --- plaintext ------------------------------------------------------------- */

static ssize_t
leg_error(struct mitm *m, enum mitm_side side, int ret)
{
	char ebuf[128];
	int a = ret == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE ? peer_alert(&m->leg[side].ssl) : -1;

	m->leg[side].dead = true;
	if (m->info.error == MITM_ERR_NONE) {
		m->info.error = MITM_ERR_PROTOCOL;
		if (a >= 0)
			snprintf(m->info.reason, sizeof(m->info.reason), "%s sent alert %d (%s)",
			    side == MITM_CLIENT ? "client" : "upstream", a, alert_name(a));
		else {
			tls_strerror(ret, ebuf, sizeof(ebuf));
			snprintf(m->info.reason, sizeof(m->info.reason), "%s: %s",
			    side == MITM_CLIENT ? "client" : "upstream", ebuf);
		}
	}
	return MITM_ERROR;
}

ssize_t
mitm_read(struct mitm *m, enum mitm_side side, void *buf, size_t len)
{
	struct mitm_leg *leg = &m->leg[side];
	int ret;

	if (!leg_usable(m, side))
		return m->st == ST_HELLO || m->st == ST_UPSTREAM_HS || m->st == ST_CLIENT_HS ?
		    MITM_AGAIN : MITM_ERROR;
	if (leg->read_eof)
		return 0;
	if (len > INT32_MAX)
		len = INT32_MAX;
	for (int spins = 0;; spins++) {
		leg->starved = false;
		ret = mbedtls_ssl_read(&leg->ssl, buf, len);
		if (ret == MBEDTLS_ERR_SSL_WANT_READ && !leg->starved && spins < 64)
			continue;
		if (ret > 0)
			return ret;
		if (ret == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {
			session_save(m);
			continue;
		}
		if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
			leg->fresh = false;
			return MITM_AGAIN;
		}
		if (ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
			if (side == MITM_CLIENT)
				m->info.client_close_notify = true;
			else
				m->info.upstream_close_notify = true;
			leg->read_eof = true;
			return 0;
		}
		if (ret == 0 || ret == MBEDTLS_ERR_SSL_CONN_EOF) {
			/* EOF without close_notify (mbedTLS says 0): a truncation,
			 * which the record shows */
			leg->read_eof = true;
			return 0;
		}
		return leg_error(m, side, ret);
	}
}

static size_t
max_payload(struct mitm_leg *leg)
{
	int n = mbedtls_ssl_get_max_out_record_payload(&leg->ssl);

	return n > 0 && n < MITM_MAX_RECORD ? (size_t)n : MITM_MAX_RECORD;
}

/* Room for a whole record of n plaintext bytes in side's out buffer. */
static bool
out_room(struct mitm_leg *leg, size_t n)
{
	int exp = mbedtls_ssl_get_record_expansion(&leg->ssl);
	size_t need = n + (exp > 0 ? (size_t)exp : 1024);

	if (leg->out.cap - leg->out.tail < need)
		buf_compact(&leg->out);
	return leg->out.cap - leg->out.tail >= need;
}

/* Largest plaintext that fits in the out buffer as one record right now. */
static size_t
out_fit(struct mitm_leg *leg)
{
	int exp = mbedtls_ssl_get_record_expansion(&leg->ssl);
	size_t e = exp > 0 ? (size_t)exp : 1024, space;

	buf_compact(&leg->out);
	space = leg->out.cap - leg->out.tail;
	if (space <= e)
		return 0;
	space -= e;
	return space > max_payload(leg) ? max_payload(leg) : space;
}

static int
flush_pending(struct mitm_leg *leg)
{
	int ret;

	if (!leg->flush_pending)
		return 0;
	/* mbedTLS flushes the record it already built and returns 0 */
	ret = mbedtls_ssl_write(&leg->ssl, (const unsigned char *)"", 0);
	if (ret == MBEDTLS_ERR_SSL_WANT_WRITE)
		return ret;
	leg->flush_pending = false;
	return ret < 0 ? ret : 0;
}

ssize_t
mitm_write(struct mitm *m, enum mitm_side side, const void *buf, size_t len)
{
	struct mitm_leg *leg = &m->leg[side];
	int ret;

	if (!leg_usable(m, side) || leg->shut)
		return m->st == ST_HELLO || m->st == ST_UPSTREAM_HS || m->st == ST_CLIENT_HS ?
		    MITM_AGAIN : MITM_ERROR;
	if ((ret = flush_pending(leg)) == MBEDTLS_ERR_SSL_WANT_WRITE)
		return MITM_AGAIN;
	if (ret != 0)
		return leg_error(m, side, ret);
	if (len == 0)
		return 0;
	if (len > max_payload(leg))
		len = max_payload(leg);
	if (!out_room(leg, len))
		return MITM_AGAIN;
	ret = mbedtls_ssl_write(&leg->ssl, buf, len);
	if (ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
		/* The record is built and partly in out: the bytes are taken. */
		leg->flush_pending = true;
		return (ssize_t)len;
	}
	if (ret < 0)
		return leg_error(m, side, ret);
	return ret;
}

int
mitm_shutdown(struct mitm *m, enum mitm_side side)
{
	struct mitm_leg *leg = &m->leg[side];
	int ret;

	if (!leg->setup || !leg->hs_done || leg->dead)
		return MITM_ERROR;
	if (leg->shut)
		return 0;
	if (flush_pending(leg) != 0)
		return MITM_ERROR;
	ret = mbedtls_ssl_close_notify(&leg->ssl);
	if (ret != 0 && ret != MBEDTLS_ERR_SSL_WANT_WRITE)
		return MITM_ERROR;
	leg->shut = true;
	return 0;
}

ssize_t
mitm_relay(struct mitm *m, unsigned *eof_from)
{
	unsigned char tmp[MITM_MAX_RECORD];
	ssize_t total = 0;

	*eof_from = 0;
	if (m->st != ST_ESTABLISHED)
		return m->st == ST_FAILED || m->st == ST_UPSTREAM_FAILED ? MITM_ERROR : 0;
	for (int from = 0; from < 2; from++) {
		struct mitm_leg *to = &m->leg[!from];

		if (m->leg[from].read_eof) {
			*eof_from |= 1u << from;
			continue;
		}
		for (;;) {
			size_t fit;
			ssize_t n, w;

			if (to->dead || to->shut)
				break;
			if (flush_pending(to) != 0)
				break;
			if ((fit = out_fit(to)) == 0)
				break;
			n = mitm_read(m, (enum mitm_side)from, tmp, fit);
			if (n == MITM_AGAIN)
				break;
			if (n == MITM_ERROR)
				return MITM_ERROR;
			if (n == 0) {
				*eof_from |= 1u << from;
				break;
			}
			w = mitm_write(m, (enum mitm_side)!from, tmp, (size_t)n);
			if (w != n)	/* cannot happen: fit said it fits */
				return leg_error(m, (enum mitm_side)!from,
				    MBEDTLS_ERR_SSL_INTERNAL_ERROR);
			total += n;
		}
	}
	return total;
}
