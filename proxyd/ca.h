/*
 * proxyd's certificate authority: the key and self-signed certificate that
 * every forged leaf chains to.  Created on first use in the state directory,
 * reused afterwards, and refused loudly when the files look wrong (key file
 * readable by others, key not matching the certificate, corrupt PEM, expired,
 * not a CA).  Only the signer (signer.c) ever touches the private key; the
 * rest of proxyd needs the certificate alone (chain building, export).
 *
 * Files in the state directory:
 *   localcap-ca.pem       private key + certificate, mode 0600 (the secret)
 *   localcap-ca-cert.pem  certificate only, PEM, 0644 (to install in clients)
 *   localcap-ca-cert.der  certificate only, DER, 0644 (Android, Windows)
 * The exports are rewritten from the secret file whenever they are missing.
 */
#ifndef LOCALCAP_PROXYD_CA_H
#define LOCALCAP_PROXYD_CA_H

#include <stdbool.h>
#include <stddef.h>

#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "errmsg.h"

#define CA_SECRET_FILE		"localcap-ca.pem"
#define CA_EXPORT_PEM_FILE	"localcap-ca-cert.pem"
#define CA_EXPORT_DER_FILE	"localcap-ca-cert.der"
#define CA_VALIDITY_DAYS	3652	/* ten years */
#define CA_FILE_MAX		(64 * 1024)

struct ca;

enum ca_open_mode {
	CA_LOAD_ONLY,		/* fail if the CA does not exist yet */
	CA_LOAD_OR_CREATE,	/* create the state dir entry on first use */
};

/*
 * Opens (or creates) the CA in state_dir.  The directory must be owned by the
 * effective uid and not writable by group or other; with CA_LOAD_OR_CREATE a
 * missing directory (last component only) is created 0700.  On failure
 * returns -1 with a one-line reason naming the offending file in err.
 */
LC_MUST_CHECK
int	ca_open(const char *state_dir, enum ca_open_mode mode, struct ca **out,
	    char *err, size_t errlen) __attribute__((warn_unused_result));
void	ca_free(struct ca *ca);

/* True when ca_open created the CA (first start) rather than loading it. */
bool	ca_was_created(const struct ca *ca);

const mbedtls_x509_crt *ca_cert(const struct ca *ca);
const unsigned char *ca_cert_der(const struct ca *ca, size_t *len);

/* PEM of the certificate; returns the length written (NUL excluded) or -1. */
LC_MUST_CHECK
int	ca_cert_pem(const struct ca *ca, char *buf, size_t bufsize);

/*
 * The private key: for signer.c only (it lives in the signer process).
 * NULL once ca_forget_key() ran.
 */
mbedtls_pk_context *ca_private_key(struct ca *ca);

/*
 * Frees the private key (mbedTLS wipes its numbers as it frees them) and
 * keeps the certificate: what proxyd does once its signer process has been
 * forked with the key.  Idempotent.
 */
void	ca_forget_key(struct ca *ca);
bool	ca_has_private_key(const struct ca *ca);

#endif
