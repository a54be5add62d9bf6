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
 *
 * Two ways to run it:
 *   signer_spawn()  forks a signer process holding the CA key and makes the
 *                   caller forget the key: what proxyd does, before it
 *                   confines itself (docs/proxyd-tls.md, "Signer process").
 *   signer_new()    signs in the calling process (unit tests, benchmarks,
 *                   test tools).
 * signer_sign_leaf() is the same blocking call either way.
 */
#ifndef LOCALCAP_PROXYD_SIGNER_H
#define LOCALCAP_PROXYD_SIGNER_H

#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"

struct ca;

#define SIGNER_MAX_SANS		256
#define SIGNER_MAX_SAN_BYTES	(16 * 1024)	/* sum of all DNS name lengths */
#define SIGNER_MAX_SPKI		1024
/*
 * Leaves live days, not the CA/B Forum's 398: a compromised proxyd must not
 * be able to mint certificates that stay useful for long wherever the CA
 * is trusted.  certforge caches leaves and re-forges before they expire.
 */
#define SIGNER_MAX_DAYS		7		/* notAfter - notBefore, and ahead of now */
#define SIGNER_MAX_BACKDATE	(3 * 86400)	/* how far notBefore may lie back */
/*
 * The signer process (not an in-process signer) signs at most
 * SIGNER_RATE_BURST leaves at once and SIGNER_RATE_PER_S a second on
 * average; further requests are refused until the bucket refills.
 */
#define SIGNER_RATE_BURST	256
#define SIGNER_RATE_PER_S	32
#define SIGNER_DER_MAX		(SIGNER_MAX_SAN_BYTES + 4096)
/* Largest record either way on the signer socket (proto/signer.proto). */
#define SIGNER_MSG_MAX		(32 * 1024)
/* proxyd waits this long for an answer before it gives the signer up. */
#define SIGNER_TIMEOUT_MS	10000

/* Exit statuses of the signer process (besides 1: its sandbox failed). */
#define SIGNER_EXIT_CLOSED	0	/* proxyd closed the channel */
#define SIGNER_EXIT_PROTOCOL	2	/* an oversized or undecodable record */
#define SIGNER_EXIT_IO		3	/* the socket failed */

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
	SIGNER_UNAVAILABLE,	/* the signer process is gone (it is not restarted) */
};

struct signer;

/* In-process: borrows ca (it must outlive the signer). NULL on failure. */
LC_MUST_CHECK
struct signer *signer_new(struct ca *ca);

/*
 * Forks the signer process: it keeps the CA key and certificate and one end
 * of a record channel (recchan.h: SOCK_SEQPACKET on Linux, a length-prefixed
 * stream on macOS), closes every other descriptor, makes itself undumpable
 * (no ptrace, no /proc/PID/mem for proxyd's user), dies with its parent
 * (PR_SET_PDEATHSIG; elsewhere it ends on the channel's EOF) and confines
 * itself (no_new_privs, Landlock with no filesystem access, the
 * SANDBOX_SIGNER seccomp list; macOS: its Seatbelt profile).  It
 * runs as the caller's user: call this after sandbox_drop(), before
 * sandbox_confine().  In the caller, ca keeps only its certificate
 * (ca_forget_key), so the signer is the one process with the key.  The
 * caller must not use the CA key through any other signer afterwards.
 * NULL with err set on failure (ca keeps its key then).
 */
LC_MUST_CHECK
struct signer *signer_spawn(struct ca *ca, char *err, size_t errlen);

/*
 * The rate limit of signers spawned after this call (burst, per second;
 * 0, 0: none — benchmarks only).  Default SIGNER_RATE_BURST, _PER_S.
 * A spawned signer also pins the leaf public key of its first request and
 * refuses every other key afterwards: proxyd's first request is its
 * start-up self-test, made before it reads a byte from the network.
 */
void	signer_set_rate_limit(unsigned burst, unsigned per_second);

/*
 * In-process: frees.  Spawned: closes the socket (the signer exits on EOF)
 * and reaps the process unless the caller's SIGCHLD handling already did.
 */
void	signer_free(struct signer *s);

/* A spawned signer's process id (-1 in-process) and socket (-1 once gone). */
int	signer_pid(const struct signer *s);
int	signer_fd(const struct signer *s);

/*
 * cb(arg) runs when the channel to a spawned signer is lost (it died, broke
 * the protocol, or stopped answering), just before signer_fd() is closed:
 * the moment to stop watching it.
 */
void	signer_on_lost(struct signer *s, void (*cb)(void *), void *arg);

/*
 * For an event loop watching signer_fd() while no request is outstanding:
 * readable then means the signer died (EOF) or spoke out of turn.  Logs
 * it, closes the channel and returns -1; 0 when nothing happened.
 * Afterwards signer_sign_leaf() fails with SIGNER_UNAVAILABLE.
 */
int	signer_check_idle(struct signer *s);

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
