/*
 * The TLS engine's handshakes (mitm.h; docs/proxyd-mitm.md):
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
 */
/*
 * Reading the alert a peer sent is the one thing mbedTLS 3.6 has no public
 * getter for; mitm_peer_alert() reads it from the record mbedTLS just parsed.
 */
#define MBEDTLS_ALLOW_PRIVATE_ACCESS

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/psa_util.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>

#include "proxyd/certforge.h"
#include "proxyd/certname.h"
#include "proxyd/mitm.h"
#include "proxyd/mitm_int.h"
#include "proxyd/sesscache.h"
#include "proxyd/tlshello.h"

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


/* --- the upstream session cache (sesscache.c) ------------------------------ */

/* Drops m's cached upstream session (it led to a failed handshake). */
static void
session_forget(struct mitm *m)
{
	sesscache_forget(m->ctx->sessions, m->sess_key);
	free(m->cached_der);
	m->cached_der = NULL;
	m->cached_der_len = 0;
}

void
mitm_session_save(struct mitm *m)
{
	const struct mitm_info *in = &m->info;

	if (m->ctx->sessions == NULL || m->sess_key[0] == '\0')
		return;
	/* Only sessions whose certificate we accepted may skip the check. */
	if (!in->upstream_verified && !m->ctx->opt.insecure)
		return;
	sesscache_save(m->ctx->sessions, m->sess_key,
	    &m->leg[MITM_UPSTREAM].ssl, in->upstream_der, in->upstream_der_len,
	    in->upstream_verify_flags);
}

/* --- the handshakes -------------------------------------------------------- */

int
mitm_peer_alert(const mbedtls_ssl_context *ssl)
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

const char *
mitm_alert_name(int a)
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
		if (len == 2 && memcmp(name, "h2", 2) == 0)
			m->client_offered_h2 = true;
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
	if (ctx->sessions != NULL)
		mbedtls_ssl_conf_tls13_enable_signal_new_session_tickets(&leg->conf,
		    MBEDTLS_SSL_TLS1_3_SIGNAL_NEW_SESSION_TICKETS_ENABLED);
	else
		mbedtls_ssl_conf_session_tickets(&leg->conf, MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
	if ((ret = mbedtls_ssl_setup(&leg->ssl, &leg->conf)) != 0)
		goto fail;
	/* No name: hostname NULL (no SNI sent, no name check by mbedTLS); the
	 * destination address is checked against the certificate afterwards. */
	if ((ret = mbedtls_ssl_set_hostname(&leg->ssl,
	    mitm_server_name(m)[0] != '\0' ? mitm_server_name(m) : NULL)) != 0)
		goto fail;
	mbedtls_ssl_set_bio(&leg->ssl, leg, mitm_bio_send, mitm_bio_recv, NULL);
	mbedtls_ssl_set_verify(&leg->ssl, upstream_verify_cb, m);

	format_ip(m, ip, sizeof(ip));
	snprintf(m->sess_key, sizeof(m->sess_key), "%s|%s|%u", mitm_server_name(m), ip,
	    (unsigned)m->dst_port);
	m->offered_session = sesscache_offer(ctx->sessions, m->sess_key,
	    &leg->ssl, &m->cached_der, &m->cached_der_len, &m->cached_flags);
	m->st = ST_UPSTREAM_HS;
	return;
fail:
	(void)tls_strerror(ret, ebuf, sizeof(ebuf));
	mitm_fail(m, MITM_ERR_INTERNAL, "upstream TLS setup: %s", ebuf);
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
	if (mitm_server_name(m)[0] == '\0' && m->ctx->have_trust) {
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
	if (mitm_server_name(m)[0] != '\0') {
		req.sni = mitm_server_name(m);
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
		mitm_fail(m, MITM_ERR_FORGE, "forging a certificate: %s", err);
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
	/*
	 * A client that offered h2 and not http/1.1, to a server that chose
	 * no protocol (it speaks HTTP/1.1 only) or refused h2: offering it
	 * http/1.1 makes mbedTLS answer its ClientHello with a
	 * no_application_protocol alert, a clear end instead of a connection
	 * neither side can use.
	 */
	if (alpn == NULL && m->client_offered_h2 && !m->client_offered_http11) {
		alpn = "http/1.1";
		m->h2_only_to_h1 = true;
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
	mbedtls_ssl_set_bio(&leg->ssl, leg, mitm_bio_send, mitm_bio_recv, NULL);
	m->st = ST_CLIENT_HS;
	return;
fail:
	(void)tls_strerror(ret, ebuf, sizeof(ebuf));
	mitm_fail(m, MITM_ERR_INTERNAL, "client TLS setup: %s", ebuf);
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
		 * Where AES-GCM is the faster here (aeadbench_fastest), a
		 * client that offers AES-128-GCM gets it even if it lists
		 * ChaCha20 first: the client runs on this machine too.
		 */
		if (aes128 && m->ctx->opt.cipher_pref == MITM_PREFER_AESGCM &&
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

	if (mitm_buf_len(&leg->in) == 0) {
		if (leg->eof)
			mitm_fail(m, MITM_ERR_CLIENT_CLOSED, "client closed before its ClientHello");
		return;
	}
	r = tlshello_parse(leg->in.data + leg->in.head, mitm_buf_len(&leg->in), &ch);
	switch (r) {
	case TLSHELLO_NEED_MORE:
		if (leg->eof)
			mitm_fail(m, MITM_ERR_CLIENT_CLOSED, "client closed before its ClientHello ended");
		else if (mitm_buf_len(&leg->in) >= leg->in.cap)
			mitm_fail(m, MITM_ERR_CLIENT_HELLO, "ClientHello larger than %u bytes",
			    (unsigned)leg->in.cap);
		break;
	case TLSHELLO_NOT_TLS:
		mitm_fail(m, MITM_ERR_CLIENT_HELLO, "client did not start a TLS handshake");
		break;
	case TLSHELLO_MALFORMED:
		mitm_fail(m, MITM_ERR_CLIENT_HELLO, "malformed ClientHello: %s",
		    tlshello_error_str(ch.error));
		break;
	case TLSHELLO_OK:
		if (!client_speaks_modern_tls(&ch)) {
			/* Say so before any upstream work: a fatal protocol_version
			 * alert in a plaintext record, as the client expects it. */
			static const unsigned char alert[] = { MBEDTLS_SSL_MSG_ALERT, 0x03, 0x01,
			    0x00, 0x02, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
			    MBEDTLS_SSL_ALERT_MSG_PROTOCOL_VERSION };

			(void)mitm_bio_send(leg, alert, sizeof(alert));
			mitm_fail(m, MITM_ERR_CLIENT_HANDSHAKE, "client offers only TLS 1.1 or older "
			    "(version 0x%04x)", ch.legacy_version);
			break;
		}
		m->t_hello = mitm_now_us();
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
		mitm_upstream_fail(m, MITM_ERR_UPSTREAM_CERT, "upstream certificate of %s: %s",
		    m->info.sni[0] != '\0' ? m->info.sni : "(no SNI)", why);
		start_client(m);
		return;
	}
	if (ret != 0) {
		int a = ret == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE ? mitm_peer_alert(&leg->ssl) : -1;

		if (m->offered_session)
			session_forget(m);	/* the next attempt starts afresh */
		if (a >= 0)
			mitm_upstream_fail(m, MITM_ERR_UPSTREAM_HANDSHAKE,
			    "upstream TLS handshake: server sent alert %d (%s)", a, mitm_alert_name(a));
		else if (ret == MBEDTLS_ERR_SSL_CONN_EOF)
			mitm_upstream_fail(m, MITM_ERR_UPSTREAM_HANDSHAKE,
			    "upstream TLS handshake: server closed the connection");
		else {
			(void)tls_strerror(ret, ebuf, sizeof(ebuf));
			mitm_upstream_fail(m, MITM_ERR_UPSTREAM_HANDSHAKE, "upstream TLS handshake: %s",
			    ebuf);
		}
		start_client(m);
		return;
	}
	leg->hs_done = true;
	m->info.upstream_handshake_us = mitm_now_us() - m->t_hello;
	check_upstream(m);
	mitm_session_save(m);
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
		int a = ret == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE ? mitm_peer_alert(&leg->ssl) :
		    leg->plain_alert;
		/* Our first flight (with the certificate) went out unless resumed. */
		bool saw_cert = leg->hs_bytes_out > 0 && !m->info.client_resumed;
		enum mitm_error e;

		if (saw_cert && is_cert_alert(a)) {
			e = MITM_ERR_CLIENT_REJECTED;
			m->info.rejected_by_alert = true;
			snprintf(ebuf, sizeof(ebuf), "alert %d (%s)", a, mitm_alert_name(a));
		} else if (saw_cert && (ret == MBEDTLS_ERR_SSL_CONN_EOF ||
		    (a < 0 && leg->eof))) {
			e = MITM_ERR_CLIENT_REJECTED;
			snprintf(ebuf, sizeof(ebuf), "closed the connection");
		} else if (a >= 0) {
			e = MITM_ERR_CLIENT_HANDSHAKE;
			snprintf(ebuf, sizeof(ebuf), "alert %d (%s)", a, mitm_alert_name(a));
		} else if (ret == MBEDTLS_ERR_SSL_CONN_EOF) {
			e = MITM_ERR_CLIENT_CLOSED;
			snprintf(ebuf, sizeof(ebuf), "closed the connection");
		} else {
			e = MITM_ERR_CLIENT_HANDSHAKE;
			(void)tls_strerror(ret, ebuf, sizeof(ebuf));
		}
		if (m->h2_only_to_h1)
			mitm_fail(m, MITM_ERR_CLIENT_HANDSHAKE, "client TLS "
			    "handshake for %s: the client offered only h2, the "
			    "server speaks HTTP/1.1 only (%s)",
			    m->info.sni[0] != '\0' ? m->info.sni : "(no SNI)",
			    ebuf);
		else
			mitm_fail(m, e, "client TLS handshake for %s: %s%s",
			    m->info.sni[0] != '\0' ? m->info.sni : "(no SNI)",
			    ebuf, e == MITM_ERR_CLIENT_REJECTED ?
			    " after our certificate" : "");
		/* the upstream sees an orderly end rather than a cut */
		if (m->leg[MITM_UPSTREAM].hs_done && !m->upstream_failed)
			(void)mbedtls_ssl_close_notify(&m->leg[MITM_UPSTREAM].ssl);
		return;
	}
	leg->hs_done = true;
	m->info.handshake_us = mitm_now_us() - m->t_hello;
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

