/*
 * The signer: the only code that uses the CA private key.
 *
 * design.md wants the key out of the network-facing proxyd, in a tiny
 * process forked before the sandbox.  This interface is the future message
 * boundary: a leaf_request carries only plain values (a CN, DNS names and IP
 * addresses, two times, the leaf's SubjectPublicKeyInfo) and the answer is a
 * DER certificate.  The signer decides everything that makes a certificate
 * powerful — issuer, serial, CA:FALSE, key usage, serverAuth, AKI — and
 * re-validates every field, so a compromised proxyd can obtain server leaf
 * certificates (which it could use anyway) but never a CA certificate, a
 * certificate for the CA's own key, or one valid for years.
 */
#ifndef LOCALCAP_PROXYD_SIGNER_H
#define LOCALCAP_PROXYD_SIGNER_H

#include <stddef.h>
#include <stdint.h>

struct ca;

#define SIGNER_MAX_SANS		256
#define SIGNER_MAX_SAN_BYTES	(16 * 1024)	/* sum of all DNS name lengths */
#define SIGNER_MAX_SPKI		1024
#define SIGNER_MAX_DAYS		398		/* CA/B Forum limit for leaves */
#define SIGNER_MAX_BACKDATE	(7 * 86400)	/* how far notBefore may lie back */
#define SIGNER_DER_MAX		(SIGNER_MAX_SAN_BYTES + 4096)

enum leaf_san_type {
	LEAF_SAN_DNS = 1,	/* value: normalised name (certname.h), no NUL */
	LEAF_SAN_IP = 2,	/* value: 4 or 16 address bytes */
};

struct leaf_san {
	enum leaf_san_type	type;
	const unsigned char	*value;
	size_t			len;
};

struct leaf_request {
	const char		*subject_cn;	/* NUL-terminated; a DNS name or IP text */
	const struct leaf_san	*sans;
	size_t			nsans;		/* 1..SIGNER_MAX_SANS */
	int64_t			not_before;	/* seconds since the epoch, UTC */
	int64_t			not_after;
	const unsigned char	*spki_der;	/* the leaf's public key */
	size_t			spki_len;
};

enum signer_status {
	SIGNER_OK = 0,
	SIGNER_BAD_REQUEST,	/* refused: the request breaks the policy above */
	SIGNER_FAILED,		/* mbedTLS or resource failure */
};

struct signer;

/* The signer borrows ca (it must outlive the signer). NULL on failure. */
struct signer *signer_new(struct ca *ca);
void	signer_free(struct signer *s);

/*
 * Signs one leaf.  On SIGNER_OK the certificate is in der[0..*der_len).
 * On failure err holds a short reason.
 */
enum signer_status signer_sign_leaf(struct signer *s, const struct leaf_request *req,
	    unsigned char *der, size_t der_cap, size_t *der_len, char *err, size_t errlen)
	    __attribute__((warn_unused_result));

/* Count of certificates signed so far (each is one private-key operation). */
uint64_t signer_signatures(const struct signer *s);

#endif
