/*
 * Unit tests for proxyd/mitm.c, the TLS man-in-the-middle engine.
 *
 * Everything runs in one thread without sockets: an mbedTLS client plays the
 * captured application (trusting the localcap CA), an mbedTLS server plays the
 * origin (with certificates from a test CA made by openssl(1) in the group
 * setup), and their BIOs read and write the engine's ciphertext buffers
 * directly.  The harness steps the three in rounds, so every test is
 * deterministic.  Covered: TLS 1.3 and 1.2 on each leg, ALPN filtering, no
 * SNI (IP SAN), bad upstream certificates (expired, wrong host, unknown CA)
 * and insecure mode, a client that rejects our CA (alert or plain close),
 * 1 MiB each way, close_notify each way, resumption on both legs, garbage and
 * truncated hellos, and an unreachable upstream.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <mbedtls/pk.h>
#include <mbedtls/psa_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

#include "log.h"
#include "proxyd/ca.h"
#include "proxyd/certforge.h"
#include "proxyd/aeadbench.h"
#include "proxyd/mitm.h"
#include "proxyd/sesscache.h"
#include "proxyd/signer.h"
#include "proxyd/tlshello.h"

static char g_dir[64];
static struct ca *g_ca;
static struct signer *g_signer;

static const unsigned char ip_10_0_0_1[4] = { 10, 0, 0, 1 };

static void
path(char *buf, size_t len, const char *file)
{
	snprintf(buf, len, "%s/%s", g_dir, file);
}

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

/*
 * Test PKI: tca (the origin's CA, which the engine trusts), and leaves signed
 * by it: up (upstream.test + 10.0.0.1), expired, other (other.test); plus a
 * self-signed leaf for upstream.test that nobody trusts.
 */
static int
make_pki(void)
{
	const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";

	if (sh("cd '%s' && openssl req -x509 %s -keyout tca.key -out tca.pem "
	    "-subj '/CN=Test Upstream CA' -days 30 -addext basicConstraints=critical,CA:TRUE "
	    "-addext keyUsage=critical,keyCertSign,cRLSign >/dev/null 2>&1", g_dir, ec) != 0)
		return -1;
	if (sh("cd '%s' && openssl req -new %s -keyout up.key -out up.csr "
	    "-subj '/O=Origin Inc/CN=upstream.test' >/dev/null 2>&1 && "
	    "printf 'subjectAltName=DNS:upstream.test,IP:10.0.0.1,IP:2001:db8::1\\n' >san-up && "
	    "printf 'subjectAltName=DNS:other.test\\n' >san-other && "
	    "openssl x509 -req -in up.csr -CA tca.pem -CAkey tca.key -CAcreateserial "
	    "-days 30 -extfile san-up -out up.pem >/dev/null 2>&1 && "
	    "openssl x509 -req -in up.csr -CA tca.pem -CAkey tca.key -CAcreateserial "
	    "-days -1 -extfile san-up -out expired.pem >/dev/null 2>&1 && "
	    "openssl x509 -req -in up.csr -CA tca.pem -CAkey tca.key -CAcreateserial "
	    "-days 30 -extfile san-other -out other.pem >/dev/null 2>&1", g_dir, ec) != 0)
		return -1;
	return sh("cd '%s' && openssl req -x509 %s -keyout self.key -out self.pem "
	    "-subj '/CN=upstream.test' -days 30 "
	    "-addext subjectAltName=DNS:upstream.test >/dev/null 2>&1", g_dir, ec);
}

static int
group_setup(void **state)
{
	char err[512];

	(void)state;
	if (psa_crypto_init() != PSA_SUCCESS)
		return -1;
	strcpy(g_dir, "/tmp/test_px_mitm.XXXXXX");
	if (mkdtemp(g_dir) == NULL)
		return -1;
	if (ca_open(g_dir, CA_LOAD_OR_CREATE, &g_ca, err, sizeof(err)) != 0) {
		fprintf(stderr, "ca_open: %s\n", err);
		return -1;
	}
	if ((g_signer = signer_new(g_ca)) == NULL)
		return -1;
	return make_pki();
}

static int
group_teardown(void **state)
{
	(void)state;
	signer_free(g_signer);
	ca_free(g_ca);
	return sh("rm -rf '%s'", g_dir);
}

/* --- peers ------------------------------------------------------------------ */

struct peer {
	mbedtls_ssl_context	ssl;
	mbedtls_ssl_config	conf;
	mbedtls_x509_crt	crt;	/* own (server) */
	mbedtls_x509_crt	ca;	/* trusted (client) */
	mbedtls_pk_context	key;
	mbedtls_ssl_ticket_context tickets;
	const char		*alpn[4];
	struct mitm		**mp;
	enum mitm_side		side;	/* which side of the engine it talks to */
	bool			in_eof;	/* the engine "closed the socket" */
	bool			hs_done;
	int			hs_ret;
	bool			is_server;
	bool			one_byte;	/* send one byte per BIO call */
	unsigned char		*capture;	/* if set: sends go here, not to the engine */
	size_t			capture_len, capture_cap;
};

static int
peer_send(void *p, const unsigned char *buf, size_t len)
{
	struct peer *pe = p;
	size_t n;

	if (pe->capture != NULL) {
		n = pe->capture_cap - pe->capture_len < len ? pe->capture_cap - pe->capture_len : len;
		memcpy(pe->capture + pe->capture_len, buf, n);
		pe->capture_len += n;
		return n == 0 ? MBEDTLS_ERR_SSL_WANT_WRITE : (int)n;
	}
	n = mitm_feed(*pe->mp, pe->side, buf, pe->one_byte && len > 1 ? 1 : len);

	return n == 0 ? MBEDTLS_ERR_SSL_WANT_WRITE : (int)n;
}

static int
peer_recv(void *p, unsigned char *buf, size_t len)
{
	struct peer *pe = p;
	size_t n;
	const unsigned char *d;

	if (pe->capture != NULL)
		return MBEDTLS_ERR_SSL_WANT_READ;
	d = mitm_out_peek(*pe->mp, pe->side, &n);

	if (n == 0)
		return pe->in_eof ? 0 : MBEDTLS_ERR_SSL_WANT_READ;
	if (n > len)
		n = len;
	memcpy(buf, d, n);
	mitm_out_consume(*pe->mp, pe->side, n);
	return (int)n;
}

static void
peer_base(struct peer *pe, bool server, mbedtls_ssl_protocol_version max)
{
	memset(pe, 0, sizeof(*pe));
	pe->is_server = server;
	mbedtls_ssl_init(&pe->ssl);
	mbedtls_ssl_config_init(&pe->conf);
	mbedtls_x509_crt_init(&pe->crt);
	mbedtls_x509_crt_init(&pe->ca);
	mbedtls_pk_init(&pe->key);
	mbedtls_ssl_ticket_init(&pe->tickets);
	assert_int_equal(mbedtls_ssl_config_defaults(&pe->conf,
	    server ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT), 0);
	mbedtls_ssl_conf_rng(&pe->conf, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);
	mbedtls_ssl_conf_max_tls_version(&pe->conf, max);
}

static void
peer_alpn(struct peer *pe, const char *a, const char *b)
{
	pe->alpn[0] = a;
	pe->alpn[1] = b;
	pe->alpn[2] = NULL;
	if (a != NULL)
		assert_int_equal(mbedtls_ssl_conf_alpn_protocols(&pe->conf, pe->alpn), 0);
}

/* The origin: cert/key files from the test PKI; tickets for resumption. */
static void
server_init(struct peer *pe, const char *certfile, const char *keyfile,
    mbedtls_ssl_protocol_version max, bool tickets)
{
	char p[256];

	peer_base(pe, true, max);
	path(p, sizeof(p), certfile);
	assert_int_equal(mbedtls_x509_crt_parse_file(&pe->crt, p), 0);
	path(p, sizeof(p), keyfile);
	assert_int_equal(mbedtls_pk_parse_keyfile(&pe->key, p, NULL,
	    mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE), 0);
	assert_int_equal(mbedtls_ssl_conf_own_cert(&pe->conf, &pe->crt, &pe->key), 0);
	if (tickets) {
		assert_int_equal(mbedtls_ssl_ticket_setup(&pe->tickets, mbedtls_psa_get_random,
		    MBEDTLS_PSA_RANDOM_STATE, MBEDTLS_CIPHER_AES_256_GCM, 3600), 0);
		mbedtls_ssl_conf_session_tickets_cb(&pe->conf, mbedtls_ssl_ticket_write,
		    mbedtls_ssl_ticket_parse, &pe->tickets);
	}
}

/* The application: trusts cafile (NULL: the localcap CA). */
static void
app_init(struct peer *pe, const char *cafile, mbedtls_ssl_protocol_version max)
{
	char p[256];

	peer_base(pe, false, max);
	if (cafile == NULL)
		snprintf(p, sizeof(p), "%s/%s", g_dir, CA_EXPORT_PEM_FILE);
	else
		path(p, sizeof(p), cafile);
	assert_int_equal(mbedtls_x509_crt_parse_file(&pe->ca, p), 0);
	mbedtls_ssl_conf_ca_chain(&pe->conf, &pe->ca, NULL);
	mbedtls_ssl_conf_authmode(&pe->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
	mbedtls_ssl_conf_tls13_enable_signal_new_session_tickets(&pe->conf,
	    MBEDTLS_SSL_TLS1_3_SIGNAL_NEW_SESSION_TICKETS_ENABLED);
}

/* After the conf is complete: bind to the engine.  host NULL: no SNI. */
static void
peer_start(struct peer *pe, struct mitm **mp, const char *host)
{
	pe->mp = mp;
	pe->side = pe->is_server ? MITM_UPSTREAM : MITM_CLIENT;
	assert_int_equal(mbedtls_ssl_setup(&pe->ssl, &pe->conf), 0);
	if (!pe->is_server)
		assert_int_equal(mbedtls_ssl_set_hostname(&pe->ssl, host), 0);
	mbedtls_ssl_set_bio(&pe->ssl, pe, peer_send, peer_recv, NULL);
}

static void
peer_free(struct peer *pe)
{
	mbedtls_ssl_free(&pe->ssl);
	mbedtls_ssl_config_free(&pe->conf);
	mbedtls_x509_crt_free(&pe->crt);
	mbedtls_x509_crt_free(&pe->ca);
	mbedtls_pk_free(&pe->key);
	mbedtls_ssl_ticket_free(&pe->tickets);
}

/* mbedtls_ssl_read past tickets and empty records while the engine has
 * bytes for this peer. */
static int
peer_read(struct peer *pe, unsigned char *buf, size_t len)
{
	size_t pending;
	int r;

	for (int i = 0; i < 64; i++) {
		r = mbedtls_ssl_read(&pe->ssl, buf, len);
		(void)mitm_out_peek(*pe->mp, pe->side, &pending);
		if (r == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET ||
		    (r == MBEDTLS_ERR_SSL_WANT_READ && pending > 0))
			continue;
		return r;
	}
	return r;
}

static void
peer_handshake(struct peer *pe)
{
	int ret;

	if (pe->hs_done || pe->hs_ret != 0)
		return;
	ret = mbedtls_ssl_handshake(&pe->ssl);
	if (ret == 0)
		pe->hs_done = true;
	else if (ret != MBEDTLS_ERR_SSL_WANT_READ && ret != MBEDTLS_ERR_SSL_WANT_WRITE &&
	    ret != MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
		pe->hs_ret = ret;
}

/* --- fixture ------------------------------------------------------------------ */

struct fx {
	struct certforge	*cf;
	struct mitm_ctx		*ctx;
	struct mitm		*m;
	struct peer		 app, srv;
	bool			 app_used, srv_used;
	enum mitm_status	 st;
};

/* The cipher preference the next fixture's context gets. */
static enum mitm_cipher_pref g_pref = MITM_PREFER_CHACHA;
/* Whether it offers h2 upstream (proxyd does: its HTTP/2 layer). */
static bool g_allow_h2;

static struct mitm_ctx *
ctx_with(struct certforge *cf, bool insecure)
{
	struct mitm_options o;
	char ca[256], err[256];
	struct mitm_ctx *ctx;

	memset(&o, 0, sizeof(o));
	path(ca, sizeof(ca), "tca.pem");
	o.system_ca_file = "";
	o.extra_ca_file = ca;
	o.insecure = insecure;
	o.cipher_pref = g_pref;
	o.allow_h2 = g_allow_h2;
	o.session_cache_max = 8;
	o.ticket_lifetime = 600;
	ctx = mitm_ctx_new(&o, cf, err, sizeof(err));
	if (ctx == NULL)
		fprintf(stderr, "mitm_ctx_new: %s\n", err);
	return ctx;
}

static int
setup_common(void **state, bool insecure)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[256];

	if (f == NULL)
		return -1;
	f->cf = certforge_new(g_signer, ca_cert(g_ca), 16, 0, err, sizeof(err));
	if (f->cf == NULL || (f->ctx = ctx_with(f->cf, insecure)) == NULL) {
		certforge_free(f->cf);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int
setup(void **state)
{
	return setup_common(state, false);
}

static int
setup_insecure(void **state)
{
	return setup_common(state, true);
}

static int
setup_h2(void **state)
{
	int rc;

	g_allow_h2 = true;
	rc = setup_common(state, false);
	g_allow_h2 = false;
	return rc;
}

static int
setup_aes_first(void **state)
{
	int rc;

	g_pref = MITM_PREFER_AESGCM;
	rc = setup_common(state, false);
	g_pref = MITM_PREFER_CHACHA;
	return rc;
}

static void
flow_end(struct fx *f)
{
	if (f->app_used)
		peer_free(&f->app);
	if (f->srv_used)
		peer_free(&f->srv);
	f->app_used = f->srv_used = false;
	mitm_free(f->m);
	f->m = NULL;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	flow_end(f);
	mitm_ctx_free(f->ctx);
	certforge_free(f->cf);
	free(f);
	return 0;
}

static void
new_flow(struct fx *f)
{
	f->m = mitm_new(f->ctx, ip_10_0_0_1, 4, 443);
	assert_non_null(f->m);
}

/* Steps app, engine and origin until the engine leaves HANDSHAKING and the
 * app is done or has failed. */
static void
run_handshakes(struct fx *f)
{
	for (int i = 0; i < 200; i++) {
		if (f->app_used)
			peer_handshake(&f->app);
		f->st = mitm_step(f->m);
		if (f->srv_used && (mitm_wants(f->m) & MITM_WANT_WRITE_UPSTREAM ||
		    f->srv.hs_done == false))
			peer_handshake(&f->srv);
		f->st = mitm_step(f->m);
		if (f->st != MITM_HANDSHAKING &&
		    (!f->app_used || f->app.hs_done || f->app.hs_ret != 0) &&
		    (f->st != MITM_ESTABLISHED || !f->srv_used || f->srv.hs_done ||
		    f->srv.hs_ret != 0))
			break;
	}
}

/* A standard flow: origin with up.pem, app trusting localcap, both ≤ max. */
static void
start_flow(struct fx *f, const char *cert,
    mbedtls_ssl_protocol_version app_max, mbedtls_ssl_protocol_version srv_max)
{
	new_flow(f);
	server_init(&f->srv, cert, cert[0] == 's' ? "self.key" : "up.key", srv_max, true);
	f->srv_used = true;
	peer_start(&f->srv, &f->m, NULL);
	app_init(&f->app, NULL, app_max);
	f->app_used = true;
}

/* --- tests --------------------------------------------------------------------- */

static void
tls13_both_legs_h2_dropped_http11_chosen(void **state)
{
	struct fx *f = *state;
	const struct mitm_info *in;

	start_flow(f, "up.pem", MBEDTLS_SSL_VERSION_TLS1_3,
	    MBEDTLS_SSL_VERSION_TLS1_3);
	/* the origin prefers h2: if it were offered, it would win */
	peer_alpn(&f->srv, "h2", "http/1.1");
	peer_alpn(&f->app, "h2", "http/1.1");
	peer_start(&f->app, &f->m, "upstream.test");
	run_handshakes(f);

	assert_int_equal(f->app.hs_ret, 0);
	assert_true(f->app.hs_done);
	assert_int_equal(f->st, MITM_ESTABLISHED);
	in = mitm_get_info(f->m);
	assert_string_equal(in->sni, "upstream.test");
	assert_string_equal(in->alpn, "http/1.1");
	assert_string_equal(in->client_alpn_offer, "h2,http/1.1");
	assert_string_equal(mbedtls_ssl_get_alpn_protocol(&f->srv.ssl), "http/1.1");
	assert_string_equal(mbedtls_ssl_get_alpn_protocol(&f->app.ssl), "http/1.1");
	assert_string_equal(in->client_version, "TLSv1.3");
	assert_string_equal(in->upstream_version, "TLSv1.3");
	assert_non_null(in->client_cipher);
	assert_non_null(in->upstream_cipher);
	assert_true(in->upstream_verified);
	assert_int_equal(in->upstream_verify_flags, 0);
	assert_non_null(strstr(in->upstream_subject, "CN=upstream.test"));
	assert_non_null(strstr(in->upstream_issuer, "CN=Test Upstream CA"));
	assert_non_null(in->upstream_der);
	assert_true(in->upstream_der_len > 100);
	assert_int_equal(in->error, MITM_ERR_NONE);
	assert_true(in->upstream_handshake_us > 0);
	assert_true(in->handshake_us >= in->upstream_handshake_us);
	assert_true(in->handshake_us < 10 * 1000000u);
	/* the app checked our leaf against "upstream.test" with the localcap CA */
	assert_int_equal(mbedtls_ssl_get_verify_result(&f->app.ssl), 0);
}

static void
tls12_both_legs(void **state)
{
	struct fx *f = *state;
	const struct mitm_info *in;

	start_flow(f, "up.pem", MBEDTLS_SSL_VERSION_TLS1_2,
	    MBEDTLS_SSL_VERSION_TLS1_2);
	peer_alpn(&f->srv, "http/1.1", NULL);
	peer_alpn(&f->app, "http/1.1", NULL);
	peer_start(&f->app, &f->m, "upstream.test");
	run_handshakes(f);

	assert_true(f->app.hs_done);
	assert_int_equal(f->st, MITM_ESTABLISHED);
	in = mitm_get_info(f->m);
	assert_string_equal(in->client_version, "TLSv1.2");
	assert_string_equal(in->upstream_version, "TLSv1.2");
	assert_string_equal(in->alpn, "http/1.1");
	assert_true(in->upstream_verified);
}

/*
 * The upstream leg offers what a current browser offers, less its legacy:
 * TLS 1.2 and 1.3 only; TLS 1.3 suites and ECDHE with an AEAD; no static
 * RSA key exchange, no CBC (SHA-1 or otherwise).  Read from the
 * ClientHello the engine sends upstream.
 */
static void
upstream_hello_offers_only_ecdhe_aead(void **state)
{
	struct fx *f = *state;
	struct tls_client_hello ch;
	const unsigned char *out = NULL;
	size_t len = 0, i;
	int n;

	new_flow(f);
	app_init(&f->app, NULL, MBEDTLS_SSL_VERSION_TLS1_3);
	f->app_used = true;
	peer_start(&f->app, &f->m, "upstream.test");
	for (n = 0; n < 20 && len == 0; n++) {
		peer_handshake(&f->app);
		f->st = mitm_step(f->m);
		out = mitm_out_peek(f->m, MITM_UPSTREAM, &len);
	}
	assert_true(len > 0);
	assert_int_equal(tlshello_parse(out, len, &ch), TLSHELLO_OK);
	assert_true(ch.ncipher_suites > 0);
	for (i = 0; i < ch.ncipher_suites; i++) {
		uint16_t id = tlshello_u16(ch.cipher_suites, i);
		const char *name = mbedtls_ssl_get_ciphersuite_name(id);
		bool ok;

		if (id == 0x00ff || id == 0x5600 || tls_is_grease(id))
			continue;	/* signalling values, not suites */
		ok = strncmp(name, "TLS1-3-", 7) == 0 ||
		    (strncmp(name, "TLS-ECDHE-", 10) == 0 &&
		    (strstr(name, "-GCM-") != NULL || strstr(name, "CHACHA20-POLY1305") != NULL ||
		    strstr(name, "-CCM") != NULL));
		if (!ok) {
			tlshello_free(&ch);
			fail_msg("the upstream leg offers %s (0x%04x)", name, id);
		}
	}
	for (i = 0; i < ch.nsupported_versions; i++) {
		uint16_t v = tlshello_u16(ch.supported_versions, i);

		if (!tls_is_grease(v) && v != 0x0303 && v != 0x0304) {
			tlshello_free(&ch);
			fail_msg("the upstream leg offers version 0x%04x", v);
		}
	}
	tlshello_free(&ch);
}

static void
legs_negotiate_versions_independently(void **state)
{
	struct fx *f = *state;
	const struct mitm_info *in;

	start_flow(f, "up.pem", MBEDTLS_SSL_VERSION_TLS1_3,
	    MBEDTLS_SSL_VERSION_TLS1_2);
	peer_start(&f->app, &f->m, "upstream.test");
	run_handshakes(f);

	assert_true(f->app.hs_done);
	in = mitm_get_info(f->m);
	assert_string_equal(in->client_version, "TLSv1.3");
	assert_string_equal(in->upstream_version, "TLSv1.2");
	assert_string_equal(in->alpn, "");	/* nobody offered any */
	assert_null(mbedtls_ssl_get_alpn_protocol(&f->app.ssl));
}

static void
unknown_alpn_is_relayed(void **state)
{
	struct fx *f = *state;

	start_flow(f, "up.pem", MBEDTLS_SSL_VERSION_TLS1_3,
	    MBEDTLS_SSL_VERSION_TLS1_3);
	peer_alpn(&f->srv, "x-custom/2", NULL);
	peer_alpn(&f->app, "h2", "x-custom/2");
	peer_start(&f->app, &f->m, "upstream.test");
	run_handshakes(f);

	assert_true(f->app.hs_done);
	assert_string_equal(mitm_get_info(f->m)->alpn, "x-custom/2");
	assert_string_equal(mbedtls_ssl_get_alpn_protocol(&f->app.ssl), "x-custom/2");
}

static void
h2_only_client_still_gets_h2(void **state)
{
	struct fx *f = *state;

	start_flow(f, "up.pem", MBEDTLS_SSL_VERSION_TLS1_3,
	    MBEDTLS_SSL_VERSION_TLS1_3);
	peer_alpn(&f->srv, "h2", "http/1.1");
	peer_alpn(&f->app, "h2", NULL);
	peer_start(&f->app, &f->m, "upstream.test");
	run_handshakes(f);

	assert_true(f->app.hs_done);
	assert_string_equal(mitm_get_info(f->m)->alpn, "h2");
}

/* With allow_h2 (proxyd): h2 offered upstream, the server's choice mirrored. */
static void
h2_offered_and_mirrored(void **state)
{
	struct fx *f = *state;

	start_flow(f, "up.pem", MBEDTLS_SSL_VERSION_TLS1_3,
	    MBEDTLS_SSL_VERSION_TLS1_3);
	peer_alpn(&f->srv, "h2", "http/1.1");
	peer_alpn(&f->app, "h2", "http/1.1");
	peer_start(&f->app, &f->m, "upstream.test");
	run_handshakes(f);

	assert_true(f->app.hs_done);
	assert_string_equal(mitm_get_info(f->m)->alpn, "h2");
	assert_string_equal(mbedtls_ssl_get_alpn_protocol(&f->srv.ssl), "h2");
	assert_string_equal(mbedtls_ssl_get_alpn_protocol(&f->app.ssl), "h2");
}

/* An HTTP/1.1-only server (no ALPN at all): a client that can fall back
 * gets no protocol either, i.e. HTTP/1.1, as it would directly. */
static void
h2_client_to_h1_server_falls_back(void **state)
{
	struct fx *f = *state;

	start_flow(f, "up.pem", MBEDTLS_SSL_VERSION_TLS1_3,
	    MBEDTLS_SSL_VERSION_TLS1_3);
	peer_alpn(&f->app, "h2", "http/1.1");
	peer_start(&f->app, &f->m, "upstream.test");
	run_handshakes(f);

	assert_true(f->app.hs_done);
	assert_null(mbedtls_ssl_get_alpn_protocol(&f->app.ssl));
	assert_string_equal(mitm_get_info(f->m)->alpn, "");
}

/* ... and one that speaks h2 only gets an alert and the flow says why. */
static void
h2_only_client_to_h1_server_gets_an_alert(void **state)
{
	struct fx *f = *state;
	const struct mitm_info *in;

	start_flow(f, "up.pem", MBEDTLS_SSL_VERSION_TLS1_3,
	    MBEDTLS_SSL_VERSION_TLS1_3);
	peer_alpn(&f->app, "h2", NULL);
	peer_start(&f->app, &f->m, "upstream.test");
	run_handshakes(f);

	assert_false(f->app.hs_done);
	assert_int_not_equal(f->app.hs_ret, 0);
	assert_int_equal(f->st, MITM_FAILED);
	in = mitm_get_info(f->m);
	if (strstr(in->reason, "the client offered only h2, the server speaks "
	    "HTTP/1.1 only") == NULL)
		fail_msg("reason: %s", in->reason);
}

/* The client leg avoids AES-256-GCM (slowest) unless the client needs it. */
static void
check_client_suite(struct fx *f, const int *offer, const char *expect)
{
	start_flow(f, "up.pem", MBEDTLS_SSL_VERSION_TLS1_3, MBEDTLS_SSL_VERSION_TLS1_3);
	mbedtls_ssl_conf_ciphersuites(&f->app.conf, offer);
	peer_start(&f->app, &f->m, "upstream.test");
	run_handshakes(f);
	assert_true(f->app.hs_done);
	assert_string_equal(mitm_get_info(f->m)->client_cipher, expect);
	flow_end(f);
}

static void
client_leg_prefers_chacha_over_aes256_but_serves_aes256_only(void **state)
{
	static const int openssl_order[] = { MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
	    MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256, MBEDTLS_TLS1_3_AES_128_GCM_SHA256, 0 };
	static const int aes_only[] = { MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
	    MBEDTLS_TLS1_3_AES_128_GCM_SHA256, 0 };
	static const int aes256_only[] = { MBEDTLS_TLS1_3_AES_256_GCM_SHA384, 0 };

	check_client_suite(*state, openssl_order, "TLS1-3-CHACHA20-POLY1305-SHA256");
	check_client_suite(*state, aes_only, "TLS1-3-AES-128-GCM-SHA256");
	check_client_suite(*state, aes256_only, "TLS1-3-AES-256-GCM-SHA384");
}

/*
 * Where AES-GCM is the faster (aeadbench_fastest), an OpenSSL-ordered client
 * (AES-256, ChaCha20, AES-128) gets AES-128-GCM; a client without it keeps
 * what it offers.
 */
static void
client_leg_aes_first_serves_aes128_to_openssl_order(void **state)
{
	static const int openssl_order[] = { MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
	    MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256, MBEDTLS_TLS1_3_AES_128_GCM_SHA256, 0 };
	static const int chacha_only[] = { MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256, 0 };
	static const int aes256_only[] = { MBEDTLS_TLS1_3_AES_256_GCM_SHA384, 0 };

	check_client_suite(*state, openssl_order, "TLS1-3-AES-128-GCM-SHA256");
	check_client_suite(*state, chacha_only, "TLS1-3-CHACHA20-POLY1305-SHA256");
	check_client_suite(*state, aes256_only, "TLS1-3-AES-256-GCM-SHA384");
}

static void
fastest_aead_measures_both(void **state)
{
	double aes = 0, chacha = 0;
	enum mitm_cipher_pref p;

	(void)state;
	p = aeadbench_fastest(&aes, &chacha);
	assert_true(aes > 1 && chacha > 1);	/* MB/s: both ran */
	assert_int_equal(p, aes > chacha ? MITM_PREFER_AESGCM : MITM_PREFER_CHACHA);
}

static void
no_sni_ipv6_destination(void **state)
{
	struct fx *f = *state;
	static const unsigned char v6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0,
	    0, 0, 0, 1 };
	uint32_t flags = 0;

	start_flow(f, "up.pem", MBEDTLS_SSL_VERSION_TLS1_3, MBEDTLS_SSL_VERSION_TLS1_3);
	mitm_free(f->m);
	f->m = mitm_new(f->ctx, v6, 16, 443);
	assert_non_null(f->m);
	peer_start(&f->app, &f->m, NULL);
	run_handshakes(f);

	assert_true(f->app.hs_done);
	assert_int_equal(f->st, MITM_ESTABLISHED);
	assert_true(mitm_get_info(f->m)->upstream_verified);	/* IP:2001:db8::1 */
	assert_int_equal(mbedtls_x509_crt_verify((mbedtls_x509_crt *)(uintptr_t)
	    mbedtls_ssl_get_peer_cert(&f->app.ssl), &f->app.ca, NULL, "2001:db8::1",
	    &flags, NULL, NULL), 0);
	/* the same origin at an address its certificate does not name */
	flow_end(f);
	start_flow(f, "up.pem", MBEDTLS_SSL_VERSION_TLS1_3, MBEDTLS_SSL_VERSION_TLS1_3);
	mitm_free(f->m);
	f->m = mitm_new(f->ctx, (const unsigned char *)"\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x02",
	    16, 443);
	peer_start(&f->app, &f->m, NULL);
	run_handshakes(f);
	assert_int_equal(f->st, MITM_UPSTREAM_FAILED);
	assert_int_equal(mitm_get_info(f->m)->error, MITM_ERR_UPSTREAM_CERT);
	assert_non_null(strstr(mitm_get_info(f->m)->reason, "(no SNI)"));
	assert_true(mitm_get_info(f->m)->upstream_verify_flags & MBEDTLS_X509_BADCERT_CN_MISMATCH);
}

static void
no_sni_gets_ip_san_leaf_and_ip_checked_upstream(void **state)
{
	struct fx *f = *state;
	const struct mitm_info *in;
	uint32_t flags = 0;

	start_flow(f, "up.pem", MBEDTLS_SSL_VERSION_TLS1_3, MBEDTLS_SSL_VERSION_TLS1_3);
	peer_start(&f->app, &f->m, NULL);	/* no SNI, no name check */
	run_handshakes(f);

	assert_true(f->app.hs_done);
	assert_int_equal(f->st, MITM_ESTABLISHED);
	in = mitm_get_info(f->m);
	assert_string_equal(in->sni, "");
	assert_true(in->upstream_verified);	/* up.pem has IP:10.0.0.1 */
	/* the leaf the app got is valid for the destination address */
	assert_int_equal(mbedtls_x509_crt_verify((mbedtls_x509_crt *)(uintptr_t)
	    mbedtls_ssl_get_peer_cert(&f->app.ssl), &f->app.ca, NULL, "10.0.0.1",
	    &flags, NULL, NULL), 0);
	assert_int_not_equal(mbedtls_x509_crt_verify((mbedtls_x509_crt *)(uintptr_t)
	    mbedtls_ssl_get_peer_cert(&f->app.ssl), &f->app.ca, NULL, "10.0.0.2",
	    &flags, NULL, NULL), 0);
}

/* A bad upstream: the client leg completes, the caller can answer 502. */
static void
check_upstream_refused(struct fx *f, const char *cert, const char *sni, const char *why)
{
	const struct mitm_info *in;
	unsigned char buf[64];
	ssize_t n;
	int r;

	start_flow(f, cert, MBEDTLS_SSL_VERSION_TLS1_3, MBEDTLS_SSL_VERSION_TLS1_3);
	peer_alpn(&f->app, "h2", "http/1.1");
	peer_start(&f->app, &f->m, sni);
	run_handshakes(f);

	assert_int_equal(f->st, MITM_UPSTREAM_FAILED);
	in = mitm_get_info(f->m);
	assert_int_equal(in->error, MITM_ERR_UPSTREAM_CERT);
	assert_false(in->upstream_verified);
	assert_int_not_equal(in->upstream_verify_flags, 0);
	if (strstr(in->reason, why) == NULL)
		fail_msg("reason '%s' lacks '%s'", in->reason, why);
	assert_non_null(in->upstream_der);	/* recorded all the same */
	/* the origin got a fatal alert, not a finished handshake */
	assert_false(f->srv.hs_done);
	assert_int_not_equal(f->srv.hs_ret, 0);
	/* the app is connected (http/1.1 kept for the error page) ... */
	assert_true(f->app.hs_done);
	assert_string_equal(in->alpn, "http/1.1");
	/* ... and reads what the caller tells it */
	assert_int_equal(mitm_write(f->m, MITM_CLIENT, "HTTP/1.1 502 ", 13), 13);
	assert_int_equal(mitm_shutdown(f->m, MITM_CLIENT), 0);
	r = peer_read(&f->app, buf, sizeof(buf));
	assert_int_equal(r, 13);
	assert_memory_equal(buf, "HTTP/1.1 502 ", 13);
	assert_int_equal(peer_read(&f->app, buf, sizeof(buf)), MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
	/* the upstream leg is gone */
	n = mitm_read(f->m, MITM_UPSTREAM, buf, sizeof(buf));
	assert_int_equal(n, MITM_ERROR);
	assert_int_equal(mitm_write(f->m, MITM_UPSTREAM, "x", 1), MITM_ERROR);
}

static void
upstream_expired_certificate_is_refused(void **state)
{
	check_upstream_refused(*state, "expired.pem", "upstream.test", "expired");
}

static void
upstream_wrong_host_is_refused(void **state)
{
	check_upstream_refused(*state, "other.pem", "upstream.test", "CN");
}

static void
upstream_unknown_ca_is_refused(void **state)
{
	check_upstream_refused(*state, "self.pem", "upstream.test", "trusted");
}

static void
insecure_mode_accepts_unknown_ca(void **state)
{
	struct fx *f = *state;
	const struct mitm_info *in;

	start_flow(f, "self.pem", MBEDTLS_SSL_VERSION_TLS1_3,
	    MBEDTLS_SSL_VERSION_TLS1_3);
	peer_start(&f->app, &f->m, "upstream.test");
	run_handshakes(f);

	assert_int_equal(f->st, MITM_ESTABLISHED);
	assert_true(f->app.hs_done);
	assert_true(f->srv.hs_done);
	in = mitm_get_info(f->m);
	assert_false(in->upstream_verified);
	assert_true(in->upstream_verify_flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED);
	assert_int_equal(in->error, MITM_ERR_NONE);
}

/* A session cached in insecure mode keeps its verdict when it resumes. */
static void
insecure_resumed_session_stays_unverified(void **state)
{
	struct fx *f = *state;
	mbedtls_ssl_ticket_context shared;

	mbedtls_ssl_ticket_init(&shared);
	assert_int_equal(mbedtls_ssl_ticket_setup(&shared, mbedtls_psa_get_random,
	    MBEDTLS_PSA_RANDOM_STATE, MBEDTLS_CIPHER_AES_256_GCM, 3600), 0);
	for (int i = 0; i < 2; i++) {
		start_flow(f, "self.pem", MBEDTLS_SSL_VERSION_TLS1_2, MBEDTLS_SSL_VERSION_TLS1_2);
		mbedtls_ssl_conf_session_tickets_cb(&f->srv.conf, mbedtls_ssl_ticket_write,
		    mbedtls_ssl_ticket_parse, &shared);
		peer_start(&f->app, &f->m, "upstream.test");
		run_handshakes(f);
		assert_int_equal(f->st, MITM_ESTABLISHED);
		assert_int_equal(mitm_get_info(f->m)->upstream_resumed, i == 1);
		assert_false(mitm_get_info(f->m)->upstream_verified);
		assert_true(mitm_get_info(f->m)->upstream_verify_flags &
		    MBEDTLS_X509_BADCERT_NOT_TRUSTED);
		flow_end(f);
	}
	mbedtls_ssl_ticket_free(&shared);
}

static void
client_rejecting_our_ca_is_reported(void **state)
{
	struct fx *f = *state;
	const struct mitm_info *in;

	new_flow(f);
	server_init(&f->srv, "up.pem", "up.key", MBEDTLS_SSL_VERSION_TLS1_3, false);
	f->srv_used = true;
	peer_start(&f->srv, &f->m, NULL);
	app_init(&f->app, "tca.pem", MBEDTLS_SSL_VERSION_TLS1_3);	/* not ours */
	f->app_used = true;
	peer_start(&f->app, &f->m, "upstream.test");
	run_handshakes(f);

	assert_int_not_equal(f->app.hs_ret, 0);
	assert_int_equal(f->st, MITM_FAILED);
	in = mitm_get_info(f->m);
	if (in->error != MITM_ERR_CLIENT_REJECTED)
		fail_msg("error %d: %s", in->error, in->reason);
	if (strstr(in->reason, "unknown_ca") == NULL && strstr(in->reason, "bad_certificate") == NULL)
		fail_msg("reason: %s", in->reason);
	assert_non_null(strstr(in->reason, "upstream.test"));
	assert_true(in->rejected_by_alert);	/* it said so: pass at once */
}

static void
client_closing_after_our_certificate_is_a_rejection(void **state)
{
	struct fx *f = *state;
	size_t n;

	start_flow(f, "up.pem", MBEDTLS_SSL_VERSION_TLS1_2,
	    MBEDTLS_SSL_VERSION_TLS1_3);
	peer_start(&f->app, &f->m, "upstream.test");
	/* step until our first flight is waiting for the app, then "close" */
	for (int i = 0; i < 100; i++) {
		peer_handshake(&f->app);
		f->st = mitm_step(f->m);
		peer_handshake(&f->srv);
		f->st = mitm_step(f->m);
		(void)mitm_out_peek(f->m, MITM_CLIENT, &n);
		if (n > 0)
			break;
	}
	assert_true(n > 0);
	mitm_out_consume(f->m, MITM_CLIENT, n);	/* the app read it and left */
	mitm_in_eof(f->m, MITM_CLIENT);
	f->st = mitm_step(f->m);
	assert_int_equal(f->st, MITM_FAILED);
	assert_int_equal(mitm_get_info(f->m)->error, MITM_ERR_CLIENT_REJECTED);
	assert_non_null(strstr(mitm_get_info(f->m)->reason, "closed"));
	assert_false(mitm_get_info(f->m)->rejected_by_alert);	/* a strike only */
}

static void
fill(unsigned char *p, size_t n, unsigned seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (unsigned char)(x >> 16);
	}
}

static void
established(struct fx *f, mbedtls_ssl_protocol_version v)
{
	start_flow(f, "up.pem", v, v);
	peer_start(&f->app, &f->m, "upstream.test");
	run_handshakes(f);
	if (!f->app.hs_done || !f->srv.hs_done || f->st != MITM_ESTABLISHED)
		fail_msg("app %d/-0x%x srv %d/-0x%x engine %d (%s)", f->app.hs_done,
		    (unsigned)-f->app.hs_ret, f->srv.hs_done, (unsigned)-f->srv.hs_ret, f->st,
		    mitm_get_info(f->m)->reason);
}

/* Sends up to len of p from pe, advancing *off (mbedTLS retries the same data). */
static void
peer_push(struct peer *pe, const unsigned char *p, size_t len, size_t *off)
{
	size_t chunk;
	int r;

	if (*off >= len)
		return;
	chunk = len - *off > 16384 ? 16384 : len - *off;
	r = mbedtls_ssl_write(&pe->ssl, p + *off, chunk);
	if (r > 0)
		*off += (size_t)r;
	else if (r != MBEDTLS_ERR_SSL_WANT_WRITE && r != MBEDTLS_ERR_SSL_WANT_READ &&
	    r != MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
		fail_msg("mbedtls_ssl_write: -0x%04x", (unsigned)-r);
}

static void
peer_pull(struct peer *pe, unsigned char *got, size_t len, size_t *off)
{
	int r;

	while (*off < len) {
		r = mbedtls_ssl_read(&pe->ssl, got + *off, len - *off);
		if (r == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
			continue;
		if (r <= 0) {
			assert_true(r == MBEDTLS_ERR_SSL_WANT_READ);
			return;
		}
		*off += (size_t)r;
	}
}

static void
check_mib_both_ways(struct fx *f)
{
	const size_t N = 1 << 20;
	unsigned char *up = malloc(N), *down = malloc(N), *got_up = malloc(N),
	    *got_down = malloc(N);
	size_t a_sent = 0, s_sent = 0, s_got = 0, a_got = 0;
	unsigned eof;
	int i;

	assert_non_null(up);
	assert_non_null(down);
	assert_non_null(got_up);
	assert_non_null(got_down);
	fill(up, N, 1);
	fill(down, N, 2);
	for (i = 0; i < 100000 && (s_got < N || a_got < N); i++) {
		peer_push(&f->app, up, N, &a_sent);
		peer_push(&f->srv, down, N, &s_sent);
		assert_true(mitm_relay(f->m, &eof) >= 0);
		assert_int_equal(eof, 0);
		peer_pull(&f->srv, got_up, N, &s_got);
		peer_pull(&f->app, got_down, N, &a_got);
	}
	assert_int_equal(s_got, N);
	assert_int_equal(a_got, N);
	assert_memory_equal(got_up, up, N);
	assert_memory_equal(got_down, down, N);
	free(up);
	free(down);
	free(got_up);
	free(got_down);
}

static void
one_mib_each_way_tls13(void **state)
{
	struct fx *f = *state;

	established(f, MBEDTLS_SSL_VERSION_TLS1_3);
	check_mib_both_ways(f);
}

static void
one_mib_each_way_tls12(void **state)
{
	struct fx *f = *state;

	established(f, MBEDTLS_SSL_VERSION_TLS1_2);
	check_mib_both_ways(f);
}

static void
read_write_api_moves_bytes_and_backs_off(void **state)
{
	struct fx *f = *state;
	unsigned char big[16384], buf[64];
	ssize_t n;
	int writes = 0;

	established(f, MBEDTLS_SSL_VERSION_TLS1_3);
	assert_int_equal(mbedtls_ssl_write(&f->app.ssl, (const unsigned char *)"GET /", 5), 5);
	(void)mitm_step(f->m);
	assert_true(mitm_wants(f->m) & MITM_READABLE_CLIENT);
	n = mitm_read(f->m, MITM_CLIENT, buf, sizeof(buf));
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "GET /", 5);
	assert_int_equal(mitm_read(f->m, MITM_CLIENT, buf, sizeof(buf)), MITM_AGAIN);
	assert_false(mitm_wants(f->m) & MITM_READABLE_CLIENT);
	/* nobody drains the upstream socket: writes stop at the buffer's bound */
	memset(big, 'x', sizeof(big));
	while ((n = mitm_write(f->m, MITM_UPSTREAM, big, sizeof(big))) > 0) {
		assert_true(n >= 16000 && n <= (ssize_t)sizeof(big));	/* one record */
		writes++;
		assert_true(writes < 10);
	}
	assert_int_equal(n, MITM_AGAIN);
	assert_true(writes >= 1);
	assert_true(mitm_wants(f->m) & MITM_WANT_WRITE_UPSTREAM);
	assert_true(mitm_held_bytes(f->m) > 0);
	assert_true(mitm_held_bytes(f->m) <= mitm_buffer_bytes());
}

static void
idle_flow_holds_no_buffers(void **state)
{
	struct fx *f = *state;
	unsigned char buf[64], *p;
	unsigned eof;

	established(f, MBEDTLS_SSL_VERSION_TLS1_3);
	/* deliver the tickets and anything else in flight, then go idle */
	(void)mitm_relay(f->m, &eof);
	(void)peer_read(&f->app, buf, sizeof(buf));
	(void)mitm_relay(f->m, &eof);
	assert_int_equal(mitm_held_bytes(f->m), 0);
	/* a read that finds nothing gives its buffer back */
	assert_true(mitm_in_space(f->m, MITM_CLIENT, &p) > 0);
	assert_non_null(p);
	assert_true(mitm_held_bytes(f->m) > 0);
	mitm_in_commit(f->m, MITM_CLIENT, 0);
	assert_int_equal(mitm_held_bytes(f->m), 0);
	/* and the flow still works */
	{
		int r;

		do	/* the app's write may first report our ticket */
			r = mbedtls_ssl_write(&f->app.ssl, (const unsigned char *)"ping", 4);
		while (r == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET);
		assert_int_equal(r, 4);
	}
	(void)mitm_relay(f->m, &eof);
	assert_int_equal(peer_read(&f->srv, buf, sizeof(buf)), 4);
	assert_int_equal(mitm_held_bytes(f->m), 0);
}

static void
close_notify_both_ways(void **state)
{
	struct fx *f = *state;
	unsigned char buf[64];
	unsigned eof = 0;

	established(f, MBEDTLS_SSL_VERSION_TLS1_3);
	/* app -> origin: the app closes; the engine sees a clean end ... */
	assert_int_equal(mbedtls_ssl_close_notify(&f->app.ssl), 0);
	assert_int_equal(mitm_relay(f->m, &eof), 0);
	assert_int_equal(eof, 1u << MITM_CLIENT);
	assert_true(mitm_get_info(f->m)->client_close_notify);
	/* ... and passes it on (the caller's job) */
	assert_int_equal(mitm_shutdown(f->m, MITM_UPSTREAM), 0);
	assert_int_equal(peer_read(&f->srv, buf, sizeof(buf)), MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
	/* origin -> app, after the half-close: data still flows, then the end */
	assert_int_equal(mbedtls_ssl_write(&f->srv.ssl, (const unsigned char *)"bye", 3), 3);
	assert_int_equal(mbedtls_ssl_close_notify(&f->srv.ssl), 0);
	assert_int_equal(mitm_relay(f->m, &eof), 3);
	assert_int_equal(eof, (1u << MITM_CLIENT) | (1u << MITM_UPSTREAM));
	assert_true(mitm_get_info(f->m)->upstream_close_notify);
	assert_int_equal(mitm_shutdown(f->m, MITM_CLIENT), 0);
	assert_int_equal(peer_read(&f->app, buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "bye", 3);
	assert_int_equal(peer_read(&f->app, buf, sizeof(buf)), MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
}

static void
eof_without_close_notify_is_a_truncation(void **state)
{
	struct fx *f = *state;
	unsigned char buf[16];

	established(f, MBEDTLS_SSL_VERSION_TLS1_3);
	mitm_in_eof(f->m, MITM_UPSTREAM);
	assert_true(mitm_wants(f->m) & MITM_READABLE_UPSTREAM);
	assert_int_equal(mitm_read(f->m, MITM_UPSTREAM, buf, sizeof(buf)), 0);
	assert_false(mitm_get_info(f->m)->upstream_close_notify);
	assert_false(mitm_wants(f->m) & MITM_WANT_READ_UPSTREAM);
}

static void
garbage_instead_of_client_hello(void **state)
{
	struct fx *f = *state;
	static const char get[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	/* a handshake record holding a ServerHello */
	static const unsigned char sh[] = { 0x16, 0x03, 0x03, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00 };
	/* a ClientHello whose session id claims 200 bytes */
	static const unsigned char bad[] = { 0x16, 0x03, 0x01, 0x00, 0x2b, 0x01, 0x00, 0x00, 0x27,
	    0x03, 0x03, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
	    21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 200, 0, 0, 0, 0 };

	new_flow(f);
	assert_int_equal(mitm_feed(f->m, MITM_CLIENT, get, sizeof(get) - 1), sizeof(get) - 1);
	assert_int_equal(mitm_step(f->m), MITM_FAILED);
	assert_int_equal(mitm_get_info(f->m)->error, MITM_ERR_CLIENT_HELLO);
	assert_int_equal(mitm_wants(f->m) & ~0u, 0);
	flow_end(f);

	new_flow(f);
	(void)mitm_feed(f->m, MITM_CLIENT, sh, sizeof(sh));
	assert_int_equal(mitm_step(f->m), MITM_FAILED);
	assert_int_equal(mitm_get_info(f->m)->error, MITM_ERR_CLIENT_HELLO);
	flow_end(f);

	new_flow(f);
	(void)mitm_feed(f->m, MITM_CLIENT, bad, sizeof(bad));
	assert_int_equal(mitm_step(f->m), MITM_FAILED);
	assert_int_equal(mitm_get_info(f->m)->error, MITM_ERR_CLIENT_HELLO);
	assert_non_null(strstr(mitm_get_info(f->m)->reason, "malformed"));
	flow_end(f);

	/* a hello cut short by the client's close */
	new_flow(f);
	(void)mitm_feed(f->m, MITM_CLIENT, bad, 7);
	assert_int_equal(mitm_step(f->m), MITM_HANDSHAKING);
	assert_true(mitm_wants(f->m) & MITM_WANT_READ_CLIENT);
	assert_false(mitm_wants(f->m) & MITM_WANT_READ_UPSTREAM);
	mitm_in_eof(f->m, MITM_CLIENT);
	assert_int_equal(mitm_step(f->m), MITM_FAILED);
	assert_int_equal(mitm_get_info(f->m)->error, MITM_ERR_CLIENT_CLOSED);
}

static void
tls11_only_client_is_told_before_any_upstream_work(void **state)
{
	struct fx *f = *state;
	/* TLS 1.0 record, ClientHello version 3.2 (TLS 1.1), one suite, no extensions */
	static const unsigned char hello[] = { 0x16, 0x03, 0x01, 0x00, 0x2d,
	    0x01, 0x00, 0x00, 0x29, 0x03, 0x02,
	    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
	    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
	    0x00, 0x00, 0x02, 0x00, 0x2f, 0x01, 0x00 };
	static const unsigned char alert[] = { 0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46 };
	const unsigned char *out;
	size_t n;

	new_flow(f);
	assert_int_equal(mitm_feed(f->m, MITM_CLIENT, hello, sizeof(hello)), sizeof(hello));
	assert_int_equal(mitm_step(f->m), MITM_FAILED);
	assert_int_equal(mitm_get_info(f->m)->error, MITM_ERR_CLIENT_HANDSHAKE);
	assert_non_null(strstr(mitm_get_info(f->m)->reason, "TLS 1.1 or older"));
	out = mitm_out_peek(f->m, MITM_CLIENT, &n);
	assert_int_equal(n, sizeof(alert));
	assert_memory_equal(out, alert, sizeof(alert));
	(void)mitm_out_peek(f->m, MITM_UPSTREAM, &n);
	assert_int_equal(n, 0);	/* no upstream ClientHello was made */
	assert_int_equal(mitm_wants(f->m), MITM_WANT_WRITE_CLIENT);
}

static void
oversized_client_hello_is_refused(void **state)
{
	struct fx *f = *state;
	unsigned char rec[5 + 16384];
	size_t fed = 0, n;

	/* records of a hello that never ends (each full-length) */
	new_flow(f);
	memset(rec, 0, sizeof(rec));
	rec[0] = 0x16; rec[1] = 0x03; rec[2] = 0x01; rec[3] = 0x40; rec[4] = 0x00;
	rec[5] = 0x01; rec[6] = 0x00; rec[7] = 0xff; rec[8] = 0x00;	/* 65280 bytes */
	rec[9] = 0x03; rec[10] = 0x03;
	while ((n = mitm_feed(f->m, MITM_CLIENT, rec + fed % sizeof(rec),
	    sizeof(rec) - fed % sizeof(rec))) > 0)
		fed += n;
	assert_int_equal(mitm_step(f->m), MITM_FAILED);
	assert_int_equal(mitm_get_info(f->m)->error, MITM_ERR_CLIENT_HELLO);
}

static void
hello_fed_one_byte_at_a_time(void **state)
{
	struct fx *f = *state;

	/* the app's BIO hands the engine one byte per call */
	start_flow(f, "up.pem", MBEDTLS_SSL_VERSION_TLS1_3,
	    MBEDTLS_SSL_VERSION_TLS1_3);
	f->app.one_byte = true;
	peer_start(&f->app, &f->m, "upstream.test");
	for (int i = 0; i < 20000 && !f->app.hs_done && f->app.hs_ret == 0; i++) {
		f->st = mitm_step(f->m);
		assert_true(f->st == MITM_HANDSHAKING || f->st == MITM_ESTABLISHED);
		peer_handshake(&f->app);
		peer_handshake(&f->srv);
	}
	assert_true(f->app.hs_done);
	assert_int_equal(mitm_step(f->m), MITM_ESTABLISHED);
	assert_string_equal(mitm_get_info(f->m)->sni, "upstream.test");
}

static void
unreachable_upstream_still_answers_the_client(void **state)
{
	struct fx *f = *state;
	const struct mitm_info *in;

	new_flow(f);
	mitm_upstream_failed(f->m, "connect: Connection refused");
	app_init(&f->app, NULL, MBEDTLS_SSL_VERSION_TLS1_3);
	f->app_used = true;
	peer_alpn(&f->app, "http/1.1", NULL);
	peer_start(&f->app, &f->m, "upstream.test");
	run_handshakes(f);

	assert_true(f->app.hs_done);
	assert_int_equal(f->st, MITM_UPSTREAM_FAILED);
	in = mitm_get_info(f->m);
	assert_int_equal(in->error, MITM_ERR_UPSTREAM_CONNECT);
	assert_string_equal(in->reason, "connect: Connection refused");
	assert_string_equal(in->alpn, "http/1.1");
	assert_int_equal(mbedtls_ssl_get_verify_result(&f->app.ssl), 0);
	assert_false(mitm_wants(f->m) & (MITM_WANT_READ_UPSTREAM | MITM_WANT_WRITE_UPSTREAM));
}

/* The caller's connect times out while the engine waits for the origin. */
static void
upstream_lost_mid_handshake_and_after(void **state)
{
	struct fx *f = *state;
	unsigned char buf[16];

	new_flow(f);
	app_init(&f->app, NULL, MBEDTLS_SSL_VERSION_TLS1_3);
	f->app_used = true;
	peer_alpn(&f->app, "http/1.1", NULL);
	peer_start(&f->app, &f->m, "upstream.test");
	peer_handshake(&f->app);
	assert_int_equal(mitm_step(f->m), MITM_HANDSHAKING);
	assert_true(mitm_wants(f->m) & MITM_WANT_WRITE_UPSTREAM);	/* our hello */
	mitm_upstream_failed(f->m, "connect timeout");
	run_handshakes(f);
	assert_true(f->app.hs_done);
	assert_int_equal(f->st, MITM_UPSTREAM_FAILED);
	assert_string_equal(mitm_get_info(f->m)->reason, "connect timeout");
	flow_end(f);

	/* after the handshakes: the upstream leg is refused, the client's is not */
	established(f, MBEDTLS_SSL_VERSION_TLS1_3);
	mitm_upstream_failed(f->m, "upstream reset");
	assert_int_equal(mitm_read(f->m, MITM_UPSTREAM, buf, sizeof(buf)), MITM_ERROR);
	assert_int_equal(mitm_write(f->m, MITM_UPSTREAM, "x", 1), MITM_ERROR);
	assert_int_equal(mitm_write(f->m, MITM_CLIENT, "x", 1), 1);
	assert_string_equal(mitm_get_info(f->m)->reason, "upstream reset");
}

/* An origin that insists on a client certificate: a clear upstream error. */
static void
origin_requiring_a_client_certificate(void **state)
{
	struct fx *f = *state;
	char ca[256];

	for (int v = 0; v < 2; v++) {
		mbedtls_ssl_protocol_version ver = v == 0 ? MBEDTLS_SSL_VERSION_TLS1_3 :
		    MBEDTLS_SSL_VERSION_TLS1_2;

		start_flow(f, "up.pem", ver, ver);
		path(ca, sizeof(ca), "tca.pem");
		assert_int_equal(mbedtls_x509_crt_parse_file(&f->srv.ca, ca), 0);
		mbedtls_ssl_conf_ca_chain(&f->srv.conf, &f->srv.ca, NULL);
		mbedtls_ssl_conf_authmode(&f->srv.conf, MBEDTLS_SSL_VERIFY_REQUIRED);
		peer_alpn(&f->app, "http/1.1", NULL);
		peer_start(&f->app, &f->m, "upstream.test");
		run_handshakes(f);
		assert_true(f->app.hs_done);
		assert_int_not_equal(f->srv.hs_ret, 0);
		if (ver == MBEDTLS_SSL_VERSION_TLS1_2) {
			/* the origin refuses before its Finished */
			assert_int_equal(f->st, MITM_UPSTREAM_FAILED);
			assert_int_equal(mitm_get_info(f->m)->error, MITM_ERR_UPSTREAM_HANDSHAKE);
			if (strstr(mitm_get_info(f->m)->reason, "server sent alert") == NULL)
				fail_msg("reason: %s", mitm_get_info(f->m)->reason);
		} else {
			/* TLS 1.3: our Finished goes with the empty Certificate, so
			 * the refusal arrives after the handshake, at the first read.
			 * (An mbedTLS origin protects that alert with keys our side no
			 * longer reads with, so it shows as a MAC failure; OpenSSL's
			 * reads as "alert 116 (certificate_required)".) */
			unsigned char buf[16];

			assert_int_equal(f->st, MITM_ESTABLISHED);
			assert_int_equal(mitm_read(f->m, MITM_UPSTREAM, buf, sizeof(buf)), MITM_ERROR);
			assert_int_equal(mitm_get_info(f->m)->error, MITM_ERR_PROTOCOL);
			if (strncmp(mitm_get_info(f->m)->reason, "upstream", 8) != 0)
				fail_msg("reason: %s", mitm_get_info(f->m)->reason);
		}
		flow_end(f);
	}
}

static void
upstream_speaking_plaintext_fails_the_upstream_leg(void **state)
{
	struct fx *f = *state;
	static const char resp[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";

	new_flow(f);
	app_init(&f->app, NULL, MBEDTLS_SSL_VERSION_TLS1_3);
	f->app_used = true;
	peer_start(&f->app, &f->m, "upstream.test");
	for (int i = 0; i < 5; i++) {
		peer_handshake(&f->app);
		f->st = mitm_step(f->m);
	}
	assert_int_equal(f->st, MITM_HANDSHAKING);
	assert_true(mitm_wants(f->m) & MITM_WANT_WRITE_UPSTREAM);
	(void)mitm_feed(f->m, MITM_UPSTREAM, resp, sizeof(resp) - 1);
	mitm_in_eof(f->m, MITM_UPSTREAM);
	run_handshakes(f);
	assert_int_equal(f->st, MITM_UPSTREAM_FAILED);
	assert_int_equal(mitm_get_info(f->m)->error, MITM_ERR_UPSTREAM_HANDSHAKE);
	assert_true(f->app.hs_done);
}

static void
upstream_and_client_sessions_resume(void **state)
{
	struct fx *f = *state;
	mbedtls_ssl_session app_sess;
	struct mitm_ctx_stats st;
	struct certforge_stats cs1, cs2;
	unsigned eof;
	unsigned char buf[16];
	int r;

	mbedtls_ssl_session_init(&app_sess);
	for (int v = 0; v < 2; v++) {
		mbedtls_ssl_protocol_version ver = v == 0 ? MBEDTLS_SSL_VERSION_TLS1_3 :
		    MBEDTLS_SSL_VERSION_TLS1_2;
		mbedtls_ssl_ticket_context keep;

		/* a fresh context per version: a cached TLS 1.3 session makes
		 * mbedTLS offer 1.3 only (the engine drops it if that fails) */
		mitm_ctx_free(f->ctx);
		f->ctx = ctx_with(f->cf, false);
		assert_non_null(f->ctx);
		/* first flow: full handshakes; let the tickets arrive on both legs */
		established(f, ver);
		for (int i = 0; i < 4; i++) {
			assert_true(mitm_relay(f->m, &eof) >= 0);
			r = mbedtls_ssl_read(&f->app.ssl, buf, sizeof(buf));
			if (r == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET || ver ==
			    MBEDTLS_SSL_VERSION_TLS1_2)
				break;
			(void)mbedtls_ssl_read(&f->srv.ssl, buf, sizeof(buf));
		}
		assert_int_equal(mbedtls_ssl_get_session(&f->app.ssl, &app_sess), 0);
		assert_false(mitm_get_info(f->m)->upstream_resumed);
		mitm_ctx_get_stats(f->ctx, &st);
		assert_int_equal(st.sessions, 1);
		/* the origin must keep its ticket keys for the second flow */
		keep = f->srv.tickets;
		mbedtls_ssl_ticket_init(&f->srv.tickets);
		certforge_get_stats(f->cf, &cs1);
		flow_end(f);

		/* second flow, same host: both legs resume */
		start_flow(f, "up.pem", ver, ver);
		mbedtls_ssl_ticket_free(&f->srv.tickets);
		f->srv.tickets = keep;
		mbedtls_ssl_conf_session_tickets_cb(&f->srv.conf, mbedtls_ssl_ticket_write,
		    mbedtls_ssl_ticket_parse, &f->srv.tickets);
		peer_start(&f->app, &f->m, "upstream.test");
		assert_int_equal(mbedtls_ssl_set_session(&f->app.ssl, &app_sess), 0);
		run_handshakes(f);
		assert_true(f->app.hs_done);
		assert_int_equal(f->st, MITM_ESTABLISHED);
		if (!mitm_get_info(f->m)->upstream_resumed)
			fail_msg("upstream did not resume (%s)", ver ==
			    MBEDTLS_SSL_VERSION_TLS1_3 ? "1.3" : "1.2");
		assert_true(mitm_get_info(f->m)->client_resumed);
		assert_true(mitm_get_info(f->m)->upstream_verified);
		assert_non_null(mitm_get_info(f->m)->upstream_der);
		/* no new signature: the leaf came from the cache */
		certforge_get_stats(f->cf, &cs2);
		assert_int_equal(cs2.signatures, cs1.signatures);
		flow_end(f);
		mbedtls_ssl_session_free(&app_sess);
		mbedtls_ssl_session_init(&app_sess);
		mitm_ctx_get_stats(f->ctx, &st);
		assert_int_equal(st.upstream_resumed, 1);
		assert_int_equal(st.client_resumed, 1);
		assert_int_equal(st.handshakes, 2);
	}
}

/* Whether c offers a session under key to a fresh client context of conf. */
static bool
cache_offers(struct sesscache *c, const char *key, const mbedtls_ssl_config *conf,
    size_t *der_len, uint32_t *flags)
{
	mbedtls_ssl_context probe;
	unsigned char *der = NULL;
	bool ok;

	mbedtls_ssl_init(&probe);
	assert_int_equal(mbedtls_ssl_setup(&probe, conf), 0);
	*der_len = 0;
	*flags = 0;
	ok = sesscache_offer(c, key, &probe, &der, der_len, flags);
	free(der);
	mbedtls_ssl_free(&probe);
	return ok;
}

/* Keep the session of a new flow's finished client handshake under key
 * (mbedTLS exports a TLS 1.2 session once per connection). */
static void
cache_save_new(struct fx *f, struct sesscache *c, const char *key,
    const unsigned char *der, size_t der_len, uint32_t flags)
{
	established(f, MBEDTLS_SSL_VERSION_TLS1_2);
	sesscache_save(c, key, &f->app.ssl, der, der_len, flags);
	flow_end(f);
}

/*
 * The upstream session cache on its own: entries made on first use, the
 * certificate and verdict kept with them, the least recently used entry
 * evicted when every slot is taken, a forgotten key's slot reused.
 */
static void
session_cache_keeps_evicts_and_forgets(void **state)
{
	struct fx *f = *state;
	static const unsigned char cert[] = { 0x30, 0x03, 0x02, 0x01, 0x07 };
	struct sesscache *c = sesscache_new(2);
	mbedtls_ssl_config client;	/* what the offers are made to */
	uint32_t flags;
	size_t len;

	assert_non_null(c);
	mbedtls_ssl_config_init(&client);
	assert_int_equal(mbedtls_ssl_config_defaults(&client, MBEDTLS_SSL_IS_CLIENT,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT), 0);
	mbedtls_ssl_conf_rng(&client, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);
	cache_save_new(f, c, "a.test|192.0.2.1|443", cert, sizeof(cert), 7);
	assert_int_equal(sesscache_count(c), 1);
	assert_false(cache_offers(c, "b.test|192.0.2.2|443", &client, &len, &flags));
	cache_save_new(f, c, "b.test|192.0.2.2|443", NULL, 0, 0);
	assert_int_equal(sesscache_count(c), 2);
	assert_true(cache_offers(c, "a.test|192.0.2.1|443", &client, &len, &flags));
	assert_int_equal(len, sizeof(cert));
	assert_int_equal(flags, 7);
	/* a is now the more recently used: a third key takes b's slot */
	cache_save_new(f, c, "c.test|192.0.2.3|443", NULL, 0, 0);
	assert_int_equal(sesscache_count(c), 2);
	assert_false(cache_offers(c, "b.test|192.0.2.2|443", &client, &len, &flags));
	assert_true(cache_offers(c, "c.test|192.0.2.3|443", &client, &len, &flags));
	assert_int_equal(len, 0);
	assert_true(cache_offers(c, "a.test|192.0.2.1|443", &client, &len, &flags));
	/* saved again under the same key: replaced in place */
	cache_save_new(f, c, "a.test|192.0.2.1|443", NULL, 0, 0);
	assert_int_equal(sesscache_count(c), 2);
	assert_true(cache_offers(c, "a.test|192.0.2.1|443", &client, &len, &flags));
	assert_int_equal(len, 0);
	sesscache_forget(c, "a.test|192.0.2.1|443");
	assert_int_equal(sesscache_count(c), 1);
	assert_false(cache_offers(c, "a.test|192.0.2.1|443", &client, &len, &flags));
	cache_save_new(f, c, "d.test|192.0.2.4|443", NULL, 0, 0);
	assert_int_equal(sesscache_count(c), 2);
	assert_true(cache_offers(c, "c.test|192.0.2.3|443", &client, &len, &flags));
	assert_true(cache_offers(c, "d.test|192.0.2.4|443", &client, &len, &flags));
	mbedtls_ssl_config_free(&client);
	sesscache_free(c);
	sesscache_free(NULL);
}

/* Another flow to the same host replaces the cached session while one that
 * offered it is still handshaking (a use-after-free under ASan once). */
static void
session_replaced_during_a_resuming_handshake(void **state)
{
	struct fx *f = *state, g;
	mbedtls_ssl_ticket_context shared;

	mbedtls_ssl_ticket_init(&shared);
	assert_int_equal(mbedtls_ssl_ticket_setup(&shared, mbedtls_psa_get_random,
	    MBEDTLS_PSA_RANDOM_STATE, MBEDTLS_CIPHER_AES_256_GCM, 3600), 0);
#define SHARE_TICKETS(x) mbedtls_ssl_conf_session_tickets_cb(&(x)->srv.conf, \
	    mbedtls_ssl_ticket_write, mbedtls_ssl_ticket_parse, &shared)

	start_flow(f, "up.pem", MBEDTLS_SSL_VERSION_TLS1_2, MBEDTLS_SSL_VERSION_TLS1_2);
	SHARE_TICKETS(f);
	peer_start(&f->app, &f->m, "upstream.test");
	run_handshakes(f);
	assert_int_equal(f->st, MITM_ESTABLISHED);
	flow_end(f);

	/* flow A offers the cached session ... */
	start_flow(f, "up.pem", MBEDTLS_SSL_VERSION_TLS1_2, MBEDTLS_SSL_VERSION_TLS1_2);
	SHARE_TICKETS(f);
	peer_start(&f->app, &f->m, "upstream.test");
	peer_handshake(&f->app);
	assert_int_equal(mitm_step(f->m), MITM_HANDSHAKING);

	/* ... flow B to the same host completes and caches its own ... */
	memset(&g, 0, sizeof(g));
	g.cf = f->cf;
	g.ctx = f->ctx;
	start_flow(&g, "up.pem", MBEDTLS_SSL_VERSION_TLS1_2, MBEDTLS_SSL_VERSION_TLS1_2);
	SHARE_TICKETS(&g);
	peer_start(&g.app, &g.m, "upstream.test");
	run_handshakes(&g);
	assert_int_equal(g.st, MITM_ESTABLISHED);
	flow_end(&g);

	/* ... and A still resumes, with the certificate it offered */
	run_handshakes(f);
	assert_int_equal(f->st, MITM_ESTABLISHED);
	assert_true(mitm_get_info(f->m)->upstream_resumed);
	assert_non_null(strstr(mitm_get_info(f->m)->upstream_subject, "CN=upstream.test"));
	flow_end(f);
	mbedtls_ssl_ticket_free(&shared);
#undef SHARE_TICKETS
}

static uint32_t
rnd(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

static void
assert_clean_status(struct mitm *m, enum mitm_status st)
{
	const struct mitm_info *in = mitm_get_info(m);

	assert_true(st == MITM_HANDSHAKING || st == MITM_FAILED || st == MITM_UPSTREAM_FAILED ||
	    st == MITM_ESTABLISHED);
	if (st == MITM_FAILED || st == MITM_UPSTREAM_FAILED) {
		assert_int_not_equal(in->error, MITM_ERR_NONE);
		assert_true(in->reason[0] != '\0');
	}
}

/*
 * Bytes a peer chose, at each stage: a real ClientHello with random bytes
 * flipped, and random records from the "origin" after a valid hello.  The
 * engine must end in a clear status every time, never crash, never leak
 * (ASan/LSan in the SANITIZE=1 build).
 */
static void
random_peer_bytes_fail_cleanly(void **state)
{
	struct fx *f = *state;
	unsigned char hello[4096], junk[1024];
	struct peer cap;
	uint32_t x = 0x9e3779b9;
	int failed = 0;

	/* a real ClientHello, captured from an mbedTLS client */
	app_init(&cap, NULL, MBEDTLS_SSL_VERSION_TLS1_3);
	cap.capture = hello;
	cap.capture_cap = sizeof(hello);
	peer_alpn(&cap, "h2", "http/1.1");
	assert_int_equal(mbedtls_ssl_setup(&cap.ssl, &cap.conf), 0);
	assert_int_equal(mbedtls_ssl_set_hostname(&cap.ssl, "upstream.test"), 0);
	mbedtls_ssl_set_bio(&cap.ssl, &cap, peer_send, peer_recv, NULL);
	(void)mbedtls_ssl_handshake(&cap.ssl);
	assert_true(cap.capture_len > 100);

	for (int i = 0; i < 300; i++) {
		unsigned char h[4096];
		enum mitm_status st;

		memcpy(h, hello, cap.capture_len);
		for (int k = 0, flips = 1 + (int)(rnd(&x) % 4); k < flips; k++)
			h[rnd(&x) % cap.capture_len] ^= (unsigned char)(1 + rnd(&x) % 255);
		new_flow(f);
		(void)mitm_feed(f->m, MITM_CLIENT, h, cap.capture_len);
		st = mitm_step(f->m);
		assert_clean_status(f->m, st);
		mitm_in_eof(f->m, MITM_CLIENT);
		mitm_in_eof(f->m, MITM_UPSTREAM);
		st = mitm_step(f->m);
		assert_clean_status(f->m, st);
		failed += st == MITM_FAILED;
		flow_end(f);
	}
	assert_true(failed > 250);	/* each ends, cut short by the EOFs */

	for (int i = 0; i < 200; i++) {
		enum mitm_status st;
		size_t len = 0;

		new_flow(f);
		(void)mitm_feed(f->m, MITM_CLIENT, hello, cap.capture_len);
		assert_int_equal(mitm_step(f->m), MITM_HANDSHAKING);
		/* random records: plausible headers, random bodies */
		while (len + 5 + 64 < sizeof(junk)) {
			size_t body = 1 + rnd(&x) % 64;
			static const unsigned char types[] = { 20, 21, 22, 23, 24, 0x80 };

			junk[len] = types[rnd(&x) % sizeof(types)];
			junk[len + 1] = 3;
			junk[len + 2] = (unsigned char)(rnd(&x) % 5);
			junk[len + 3] = 0;
			junk[len + 4] = (unsigned char)body;
			for (size_t k = 0; k < body; k++)
				junk[len + 5 + k] = (unsigned char)rnd(&x);
			len += 5 + body;
			if (rnd(&x) % 4 == 0)
				break;
		}
		(void)mitm_feed(f->m, MITM_UPSTREAM, junk, len);
		st = mitm_step(f->m);
		assert_clean_status(f->m, st);
		mitm_in_eof(f->m, MITM_UPSTREAM);
		st = mitm_step(f->m);
		assert_clean_status(f->m, st);
		/* whatever the origin sent, the client leg is being served */
		assert_true(st == MITM_HANDSHAKING || st == MITM_UPSTREAM_FAILED);
		assert_true(mitm_get_info(f->m)->error == MITM_ERR_UPSTREAM_HANDSHAKE);
		mitm_in_eof(f->m, MITM_CLIENT);
		assert_clean_status(f->m, mitm_step(f->m));
		flow_end(f);
	}
	cap.capture = NULL;
	peer_free(&cap);
}

static void
ctx_refuses_missing_trust_store(void **state)
{
	struct fx *f = *state;
	struct mitm_options o;
	char err[256];

	memset(&o, 0, sizeof(o));
	o.system_ca_file = "/nonexistent/ca.crt";
	assert_null(mitm_ctx_new(&o, f->cf, err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/ca.crt"));
	o.system_ca_file = "";
	assert_null(mitm_ctx_new(&o, f->cf, err, sizeof(err)));
	assert_non_null(strstr(err, "trust"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(tls13_both_legs_h2_dropped_http11_chosen, setup, teardown),
		cmocka_unit_test_setup_teardown(tls12_both_legs, setup, teardown),
		cmocka_unit_test_setup_teardown(upstream_hello_offers_only_ecdhe_aead, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(legs_negotiate_versions_independently, setup, teardown),
		cmocka_unit_test_setup_teardown(unknown_alpn_is_relayed, setup, teardown),
		cmocka_unit_test_setup_teardown(h2_only_client_still_gets_h2, setup, teardown),
		cmocka_unit_test_setup_teardown(h2_offered_and_mirrored, setup_h2, teardown),
		cmocka_unit_test_setup_teardown(h2_client_to_h1_server_falls_back, setup_h2, teardown),
		cmocka_unit_test_setup_teardown(h2_only_client_to_h1_server_gets_an_alert, setup_h2, teardown),
		cmocka_unit_test_setup_teardown(client_leg_prefers_chacha_over_aes256_but_serves_aes256_only, setup, teardown),
		cmocka_unit_test_setup_teardown(client_leg_aes_first_serves_aes128_to_openssl_order, setup_aes_first, teardown),
		cmocka_unit_test(fastest_aead_measures_both),
		cmocka_unit_test_setup_teardown(no_sni_gets_ip_san_leaf_and_ip_checked_upstream, setup, teardown),
		cmocka_unit_test_setup_teardown(no_sni_ipv6_destination, setup, teardown),
		cmocka_unit_test_setup_teardown(upstream_expired_certificate_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(upstream_wrong_host_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(upstream_unknown_ca_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(insecure_mode_accepts_unknown_ca, setup_insecure, teardown),
		cmocka_unit_test_setup_teardown(insecure_resumed_session_stays_unverified, setup_insecure, teardown),
		cmocka_unit_test_setup_teardown(client_rejecting_our_ca_is_reported, setup, teardown),
		cmocka_unit_test_setup_teardown(client_closing_after_our_certificate_is_a_rejection, setup, teardown),
		cmocka_unit_test_setup_teardown(one_mib_each_way_tls13, setup, teardown),
		cmocka_unit_test_setup_teardown(one_mib_each_way_tls12, setup, teardown),
		cmocka_unit_test_setup_teardown(read_write_api_moves_bytes_and_backs_off, setup, teardown),
		cmocka_unit_test_setup_teardown(idle_flow_holds_no_buffers, setup, teardown),
		cmocka_unit_test_setup_teardown(close_notify_both_ways, setup, teardown),
		cmocka_unit_test_setup_teardown(eof_without_close_notify_is_a_truncation, setup, teardown),
		cmocka_unit_test_setup_teardown(garbage_instead_of_client_hello, setup, teardown),
		cmocka_unit_test_setup_teardown(oversized_client_hello_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(tls11_only_client_is_told_before_any_upstream_work, setup, teardown),
		cmocka_unit_test_setup_teardown(hello_fed_one_byte_at_a_time, setup, teardown),
		cmocka_unit_test_setup_teardown(unreachable_upstream_still_answers_the_client, setup, teardown),
		cmocka_unit_test_setup_teardown(upstream_speaking_plaintext_fails_the_upstream_leg, setup, teardown),
		cmocka_unit_test_setup_teardown(upstream_lost_mid_handshake_and_after, setup, teardown),
		cmocka_unit_test_setup_teardown(origin_requiring_a_client_certificate, setup, teardown),
		cmocka_unit_test_setup_teardown(upstream_and_client_sessions_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(session_cache_keeps_evicts_and_forgets, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(session_replaced_during_a_resuming_handshake, setup, teardown),
		cmocka_unit_test_setup_teardown(random_peer_bytes_fail_cleanly, setup, teardown),
		cmocka_unit_test_setup_teardown(ctx_refuses_missing_trust_store, setup, teardown),
	};

	log_init("test_px_mitm", 1, LOG_LEVEL_WARN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
