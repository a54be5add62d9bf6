/*
 * Leaf signing with the CA key (interface and policy in signer.h).
 *
 * Today the signer runs inside proxyd; the lead will move it behind a socket.
 * Nothing here may assume the request came from trusted code: every name is
 * re-parsed with certname_parse() and must already be in normal form, sizes
 * and validity are bounded, and the CA's own public key is refused.
 *
 * The leaf public key is the same for every request (certforge shares one
 * leaf key per process), so the last parsed SubjectPublicKeyInfo is kept and
 * only re-parsed when the bytes change: parsing checks the EC point, which
 * is not free.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/asn1.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/psa_util.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

#include "proxyd/ca.h"
#include "proxyd/certname.h"
#include "proxyd/signer.h"
#include "proxyd/x509util.h"

struct signer {
	struct ca		*ca;
	char			issuer[512];	/* CA subject, string form */
	unsigned char		ca_spki[SIGNER_MAX_SPKI];
	size_t			ca_spki_len;
	mbedtls_pk_context	leaf_pk;	/* parsed from last_spki */
	unsigned char		last_spki[SIGNER_MAX_SPKI];
	size_t			last_spki_len;	/* 0: leaf_pk not set up */
	uint64_t		signatures;
};

static void __attribute__((format(printf, 3, 4)))
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* SubjectPublicKeyInfo DER of pk into out; its length, or 0 on failure. */
static size_t
spki_of(const mbedtls_pk_context *pk, unsigned char *out, size_t cap)
{
	int n = mbedtls_pk_write_pubkey_der(pk, out, cap);

	if (n <= 0)
		return 0;
	/* Written at the end of the buffer: move it to the front. */
	memmove(out, out + cap - (size_t)n, (size_t)n);
	return (size_t)n;
}

struct signer *
signer_new(struct ca *ca)
{
	struct signer *s;
	const mbedtls_x509_crt *crt;

	if (psa_crypto_init() != PSA_SUCCESS)
		return NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->ca = ca;
	mbedtls_pk_init(&s->leaf_pk);
	crt = ca_cert(ca);
	if (mbedtls_x509_dn_gets(s->issuer, sizeof(s->issuer), &crt->subject) < 0 ||
	    (s->ca_spki_len = spki_of(&crt->pk, s->ca_spki, sizeof(s->ca_spki))) == 0) {
		signer_free(s);
		return NULL;
	}
	return s;
}

void
signer_free(struct signer *s)
{
	if (s == NULL)
		return;
	mbedtls_pk_free(&s->leaf_pk);
	free(s);
}

uint64_t
signer_signatures(const struct signer *s)
{
	return s->signatures;
}

/* A DNS SAN or CN must be exactly what certname_parse would produce. */
static bool
name_is_normal(const char *name, size_t len, enum certname_kind *kind)
{
	struct certname cn;

	*kind = certname_parse(name, len, true, &cn);
	if (*kind == CERTNAME_INVALID)
		return false;
	return cn.textlen == len && memcmp(cn.text, name, len) == 0;
}

static enum signer_status
check_request(struct signer *s, const struct leaf_request *req, char *err, size_t errlen)
{
	enum certname_kind kind;
	size_t i, dns_bytes = 0;
	int64_t now = (int64_t)time(NULL);
	int ret;

	if (req->subject_cn == NULL ||
	    !name_is_normal(req->subject_cn, strnlen(req->subject_cn, CERTNAME_DNS_MAX + 1),
	    &kind)) {
		seterr(err, errlen, "subject CN is not a normalised host name or address");
		return SIGNER_BAD_REQUEST;
	}
	if (req->nsans == 0 || req->nsans > SIGNER_MAX_SANS || req->sans == NULL) {
		seterr(err, errlen, "%zu subjectAltNames (1..%d allowed)", req->nsans,
		    SIGNER_MAX_SANS);
		return SIGNER_BAD_REQUEST;
	}
	for (i = 0; i < req->nsans; i++) {
		const struct leaf_san *san = &req->sans[i];

		switch (san->type) {
		case LEAF_SAN_DNS:
			if (san->value == NULL ||
			    !name_is_normal((const char *)san->value, san->len, &kind) ||
			    kind != CERTNAME_DNS) {
				seterr(err, errlen, "subjectAltName %zu: bad DNS name", i);
				return SIGNER_BAD_REQUEST;
			}
			dns_bytes += san->len;
			break;
		case LEAF_SAN_IP:
			if (san->value == NULL || (san->len != 4 && san->len != 16)) {
				seterr(err, errlen, "subjectAltName %zu: bad IP length", i);
				return SIGNER_BAD_REQUEST;
			}
			dns_bytes += san->len;
			break;
		default:
			seterr(err, errlen, "subjectAltName %zu: unknown type", i);
			return SIGNER_BAD_REQUEST;
		}
	}
	if (dns_bytes > SIGNER_MAX_SAN_BYTES) {
		seterr(err, errlen, "subjectAltNames too long (%zu bytes)", dns_bytes);
		return SIGNER_BAD_REQUEST;
	}
	if (req->not_after <= req->not_before ||
	    req->not_after - req->not_before > (int64_t)SIGNER_MAX_DAYS * 86400 ||
	    req->not_before < now - SIGNER_MAX_BACKDATE ||
	    req->not_after > now + (int64_t)SIGNER_MAX_DAYS * 86400) {
		seterr(err, errlen, "validity out of policy (at most %d days, notBefore "
		    "at most %d days back)", SIGNER_MAX_DAYS, SIGNER_MAX_BACKDATE / 86400);
		return SIGNER_BAD_REQUEST;
	}
	if (req->spki_der == NULL || req->spki_len == 0 || req->spki_len > SIGNER_MAX_SPKI) {
		seterr(err, errlen, "bad public key size");
		return SIGNER_BAD_REQUEST;
	}
	if (req->spki_len == s->ca_spki_len &&
	    memcmp(req->spki_der, s->ca_spki, s->ca_spki_len) == 0) {
		seterr(err, errlen, "refusing to certify the CA's own key");
		return SIGNER_BAD_REQUEST;
	}
	if (req->spki_len != s->last_spki_len ||
	    memcmp(req->spki_der, s->last_spki, req->spki_len) != 0) {
		mbedtls_pk_free(&s->leaf_pk);
		mbedtls_pk_init(&s->leaf_pk);
		s->last_spki_len = 0;
		if ((ret = mbedtls_pk_parse_public_key(&s->leaf_pk, req->spki_der,
		    req->spki_len)) != 0) {
			seterr(err, errlen, "public key does not parse (-0x%04x)", -ret);
			return SIGNER_BAD_REQUEST;
		}
		memcpy(s->last_spki, req->spki_der, req->spki_len);
		s->last_spki_len = req->spki_len;
	}
	return SIGNER_OK;
}

enum signer_status
signer_sign_leaf(struct signer *s, const struct leaf_request *req, unsigned char *der,
    size_t der_cap, size_t *der_len, char *err, size_t errlen)
{
	static char server_auth_oid[] = MBEDTLS_OID_SERVER_AUTH;
	mbedtls_asn1_sequence eku = {
		.buf = { .tag = MBEDTLS_ASN1_OID, .len = MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH),
		    .p = (unsigned char *)server_auth_oid },
	};
	unsigned char serial[X509U_SERIAL_MAX], *scratch = NULL;
	char subject[CERTNAME_DNS_MAX + 8], nb[16], na[16], why[128];
	mbedtls_x509_san_list *sanlist = NULL;
	enum signer_status st;
	mbedtls_x509write_cert w;
	unsigned int ku;
	size_t i, serial_len, total = 0, off = 0;
	int ret;

	*der_len = 0;
	if ((st = check_request(s, req, err, errlen)) != SIGNER_OK)
		return st;

	/* mbedTLS wants non-const SAN buffers: copy the values once. */
	for (i = 0; i < req->nsans; i++)
		total += req->sans[i].len;
	if ((scratch = malloc(total)) == NULL ||
	    (sanlist = calloc(req->nsans, sizeof(*sanlist))) == NULL) {
		free(scratch);
		seterr(err, errlen, "out of memory");
		return SIGNER_FAILED;
	}
	/* The writer emits the list back to front: link it reversed so the
	 * certificate lists the names in request order. */
	for (i = 0; i < req->nsans; i++) {
		mbedtls_x509_san_list *node = &sanlist[i];

		memcpy(scratch + off, req->sans[i].value, req->sans[i].len);
		node->node.type = req->sans[i].type == LEAF_SAN_DNS ?
		    MBEDTLS_X509_SAN_DNS_NAME : MBEDTLS_X509_SAN_IP_ADDRESS;
		node->node.san.unstructured_name.p = scratch + off;
		node->node.san.unstructured_name.len = req->sans[i].len;
		node->next = i > 0 ? &sanlist[i - 1] : NULL;
		off += req->sans[i].len;
	}

	snprintf(subject, sizeof(subject), "CN=%s", req->subject_cn);
	x509u_format_time((time_t)req->not_before, nb);
	x509u_format_time((time_t)req->not_after, na);
	ku = MBEDTLS_X509_KU_DIGITAL_SIGNATURE;
	if (mbedtls_pk_can_do(&s->leaf_pk, MBEDTLS_PK_RSA))
		ku |= MBEDTLS_X509_KU_KEY_ENCIPHERMENT;

	mbedtls_x509write_crt_init(&w);
	mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
	mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
	mbedtls_x509write_crt_set_subject_key(&w, &s->leaf_pk);
	mbedtls_x509write_crt_set_issuer_key(&w, ca_private_key(s->ca));
	if (x509u_random_serial(serial, &serial_len) != 0) {
		ret = MBEDTLS_ERR_X509_BAD_INPUT_DATA;
		goto fail;
	}
	if ((ret = mbedtls_x509write_crt_set_serial_raw(&w, serial, serial_len)) != 0 ||
	    (ret = mbedtls_x509write_crt_set_validity(&w, nb, na)) != 0 ||
	    (ret = mbedtls_x509write_crt_set_subject_name(&w, subject)) != 0 ||
	    (ret = mbedtls_x509write_crt_set_issuer_name(&w, s->issuer)) != 0 ||
	    (ret = mbedtls_x509write_crt_set_basic_constraints(&w, 0, -1)) != 0 ||
	    (ret = mbedtls_x509write_crt_set_key_usage(&w, ku)) != 0 ||
	    (ret = mbedtls_x509write_crt_set_ext_key_usage(&w, &eku)) != 0 ||
	    (ret = mbedtls_x509write_crt_set_authority_key_identifier(&w)) != 0 ||
	    (ret = mbedtls_x509write_crt_set_subject_alternative_name(&w,
	    &sanlist[req->nsans - 1])) != 0)
		goto fail;
	ret = mbedtls_x509write_crt_der(&w, der, der_cap, mbedtls_psa_get_random,
	    MBEDTLS_PSA_RANDOM_STATE);
	if (ret <= 0)
		goto fail;
	memmove(der, der + der_cap - (size_t)ret, (size_t)ret);
	*der_len = (size_t)ret;
	s->signatures++;
	mbedtls_x509write_crt_free(&w);
	free(sanlist);
	free(scratch);
	return SIGNER_OK;
fail:
	mbedtls_strerror(ret, why, sizeof(why));
	seterr(err, errlen, "signing failed: %s", why);
	mbedtls_x509write_crt_free(&w);
	free(sanlist);
	free(scratch);
	return SIGNER_FAILED;
}
