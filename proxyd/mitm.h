/*
 * The TLS man-in-the-middle engine: one per intercepted TLS flow.
 *
 * The engine terminates the client's TLS with a certificate forged by
 * certforge and opens its own TLS session to the real server.  It never
 * touches a socket: the caller (the relay, on libev) moves ciphertext between
 * the two sockets and the engine's bounded per-side buffers, and the engine
 * says what it wants next (mitm_wants()).  Plaintext goes in and out with
 * mitm_read() / mitm_write(), so the HTTP layer, recording and flow control
 * stay with the caller; mitm_relay() moves it straight across for protocols
 * proxyd only records (unknown ALPN).
 *
 * Order of a flow, as mitmproxy does it:
 *   ClientHello buffered and parsed (SNI, ALPN offers)
 *   -> upstream handshake first: same SNI, the client's ALPN offers minus what
 *      proxyd cannot speak (h2 for now), certificate verified against the
 *      system store (+ an extra CA) unless insecure
 *   -> leaf forged from SNI / destination address + upstream certificate
 *   -> client handshake finished, offering only the ALPN the upstream chose.
 * When the upstream fails (connect, handshake, certificate), the client
 * handshake still completes (MITM_UPSTREAM_FAILED) so that the caller can tell
 * the client why in its own protocol (an HTTP 502) and the flow records it.
 *
 * One struct mitm_ctx per event loop holds the shared parts: trust store,
 * certforge (borrowed), session-ticket keys for the client leg and a cache of
 * upstream sessions for resumption.  Not thread-safe.
 */
#ifndef LOCALCAP_PROXYD_MITM_H
#define LOCALCAP_PROXYD_MITM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct certforge;

enum mitm_side {
	MITM_CLIENT = 0,	/* the captured application */
	MITM_UPSTREAM = 1,	/* the real server */
};

/* Cipher preference on both legs (see docs/proxyd-mitm.md for the numbers). */
enum mitm_cipher_pref {
	MITM_PREFER_CHACHA = 0,	/* ChaCha20-Poly1305 first: fastest in mbedTLS */
	MITM_PREFER_AESGCM,	/* AES-GCM first (what most servers pick anyway) */
};

/* The AEAD to prefer is measured at start: aeadbench.h. */

struct mitm_options {
	const char	*system_ca_file;	/* NULL: MITM_SYSTEM_CA_FILE; "" none */
	const char	*extra_ca_file;		/* --upstream-ca, or NULL */
	/*
	 * The same as bytes already in memory (PEM NUL-terminated, len counting
	 * the NUL, or DER), used instead of the file when set: proxyd reads its
	 * trust files before it enters its sandbox, where it cannot open them (cabundle.h).
	 */
	const unsigned char *system_ca_buf;
	size_t		 system_ca_len;
	const unsigned char *extra_ca_buf;
	size_t		 extra_ca_len;
	bool		 insecure;		/* --upstream-insecure: record, don't refuse */
	bool		 allow_h2;		/* offer h2 upstream (proxyd: true,
						 * its HTTP/2 layer speaks it) */
	enum mitm_cipher_pref cipher_pref;
	size_t		 session_cache_max;	/* upstream sessions kept; 0 disables */
	uint32_t	 ticket_lifetime;	/* client-leg tickets, seconds; 0 disables */
};

#define MITM_SYSTEM_CA_FILE	"/etc/ssl/certs/ca-certificates.crt"
#define MITM_DEFAULT_SESSIONS	1024
#define MITM_DEFAULT_TICKET_LIFETIME	7200

struct mitm_ctx;

/*
 * Loads the trust store and creates the ticket keys.  cf is borrowed and must
 * outlive the context.  NULL with err set on failure (unreadable CA file…).
 */
struct mitm_ctx *mitm_ctx_new(const struct mitm_options *opt, struct certforge *cf,
	    char *err, size_t errlen);
void	mitm_ctx_free(struct mitm_ctx *ctx);


/* Upstream sessions currently cached, and how many handshakes resumed. */
struct mitm_ctx_stats {
	size_t		sessions;
	uint64_t	upstream_resumed;
	uint64_t	client_resumed;
	uint64_t	handshakes;	/* flows that reached the client handshake's end */
};
void	mitm_ctx_get_stats(const struct mitm_ctx *ctx, struct mitm_ctx_stats *st);

enum mitm_status {
	MITM_HANDSHAKING,	/* more I/O needed: see mitm_wants() */
	MITM_ESTABLISHED,	/* both legs up: plaintext flows */
	MITM_UPSTREAM_FAILED,	/* client leg up, upstream failed: answer the
				 * client (e.g. 502 + reason), then close */
	MITM_FAILED,		/* flush what is pending (an alert), close both */
};

enum mitm_error {
	MITM_ERR_NONE = 0,
	MITM_ERR_CLIENT_HELLO,		/* not a usable ClientHello */
	MITM_ERR_CLIENT_REJECTED,	/* client aborted after seeing our cert */
	MITM_ERR_CLIENT_HANDSHAKE,	/* other client-leg handshake failure */
	MITM_ERR_CLIENT_CLOSED,		/* client left before its handshake ended */
	MITM_ERR_UPSTREAM_CONNECT,	/* reported by the caller */
	MITM_ERR_UPSTREAM_HANDSHAKE,
	MITM_ERR_UPSTREAM_CERT,		/* upstream certificate not trusted */
	MITM_ERR_FORGE,			/* could not forge a leaf */
	MITM_ERR_PROTOCOL,		/* bad record after the handshake */
	MITM_ERR_INTERNAL,		/* out of memory, mbedTLS failure */
};
const char *mitm_error_str(enum mitm_error e);

/* What the caller should do next (bits of mitm_wants()). */
#define MITM_WANT_READ_CLIENT		0x01	/* ciphertext from the client fits */
#define MITM_WANT_WRITE_CLIENT		0x02	/* ciphertext for the client pending */
#define MITM_WANT_READ_UPSTREAM		0x04
#define MITM_WANT_WRITE_UPSTREAM	0x08
#define MITM_READABLE_CLIENT		0x10	/* mitm_read(CLIENT) may return bytes/EOF */
#define MITM_READABLE_UPSTREAM		0x20

#define MITM_WANT_READ(side)	((side) == MITM_CLIENT ? MITM_WANT_READ_CLIENT : MITM_WANT_READ_UPSTREAM)
#define MITM_WANT_WRITE(side)	((side) == MITM_CLIENT ? MITM_WANT_WRITE_CLIENT : MITM_WANT_WRITE_UPSTREAM)
#define MITM_READABLE(side)	((side) == MITM_CLIENT ? MITM_READABLE_CLIENT : MITM_READABLE_UPSTREAM)

#define MITM_DER_MAX	16384	/* upstream certificate kept for the record */

/* TLS facts of one flow, for the flow store. */
struct mitm_info {
	enum mitm_error	error;
	char		reason[256];		/* human-readable, for logs / 502 body */

	char		sni[256];		/* validated SNI, "" when none/invalid */
	bool		sni_rejected;		/* client sent a malformed SNI */
	char		client_alpn_offer[256];	/* "h2,http/1.1" (clipped) */
	char		alpn[64];		/* agreed on both legs, "" none */

	const char	*client_version;	/* "TLSv1.3" …, NULL before */
	const char	*client_cipher;
	bool		 client_resumed;
	const char	*upstream_version;
	const char	*upstream_cipher;
	bool		 upstream_resumed;

	bool		 upstream_verified;	/* chain and name checked and good */
	uint32_t	 upstream_verify_flags;	/* MBEDTLS_X509_BADCERT_* */
	char		 upstream_subject[256];
	char		 upstream_issuer[256];
	unsigned char	 upstream_sha256[32];
	unsigned char	*upstream_der;		/* owned, NULL if none */
	size_t		 upstream_der_len;

	/* durations (CLOCK_MONOTONIC), 0 until known: from the complete
	 * ClientHello to the end of the client handshake (both legs), and of
	 * the upstream handshake alone */
	uint64_t	 handshake_us;
	uint64_t	 upstream_handshake_us;

	/* MITM_ERR_CLIENT_REJECTED by a certificate alert (the client said
	 * so), not only a close after our certificate */
	bool		 rejected_by_alert;

	bool		 client_close_notify;	/* clean TLS close seen */
	bool		 upstream_close_notify;
};

struct mitm;

/*
 * One engine per flow.  dst is the original destination address (4 or 16
 * bytes), used for the leaf when the client sent no SNI and to key resumed
 * upstream sessions.  NULL on allocation failure.
 */
struct mitm *mitm_new(struct mitm_ctx *ctx, const unsigned char *dst_ip, size_t dst_ip_len,
	    uint16_t dst_port);
/*
 * The server's host name when the flow's source knows it (an explicit-proxy
 * CONNECT): used, for a client that sends no SNI, as the upstream SNI and
 * name checked, and in our leaf.  Never an address.  Before the first step.
 */
void	mitm_set_host_hint(struct mitm *m, const char *host);
void	mitm_free(struct mitm *m);

/* --- ciphertext, between the engine and the sockets ----------------------- */

/*
 * Room to receive ciphertext from side into (read(2) straight into *p), then
 * commit what was read.  Commit 0 after a read that found nothing: buffers
 * exist only while they hold bytes, so an idle flow gives its memory back.
 */
size_t	mitm_in_space(struct mitm *m, enum mitm_side side, unsigned char **p);
void	mitm_in_commit(struct mitm *m, enum mitm_side side, size_t n);
/* Copying variant: returns how many of len bytes were taken. */
size_t	mitm_feed(struct mitm *m, enum mitm_side side, const void *buf, size_t len);
/* The side's socket reached EOF (or was reset): no more ciphertext. */
void	mitm_in_eof(struct mitm *m, enum mitm_side side);

/* Ciphertext waiting to be sent to side; consume what the socket took. */
const unsigned char *mitm_out_peek(const struct mitm *m, enum mitm_side side, size_t *len);
void	mitm_out_consume(struct mitm *m, enum mitm_side side, size_t n);

/* --- progress ------------------------------------------------------------- */

/* Advances the handshakes as far as the buffered bytes allow.  Call after
 * every I/O event; cheap when there is nothing to do. */
enum mitm_status mitm_step(struct mitm *m);
unsigned mitm_wants(const struct mitm *m);
/* The caller could not reach the upstream (connect failed / timed out). */
void	mitm_upstream_failed(struct mitm *m, const char *reason);

/* --- plaintext ------------------------------------------------------------ */

#define MITM_AGAIN	(-1)	/* nothing now: more ciphertext / output room needed */
#define MITM_ERROR	(-2)	/* the leg is broken: mitm_info()->reason */

/*
 * Decrypted bytes from side: > 0 bytes, 0 at the end of the side's stream
 * (close_notify, or EOF: see info->*_close_notify), MITM_AGAIN, MITM_ERROR.
 */
ssize_t	mitm_read(struct mitm *m, enum mitm_side side, void *buf, size_t len);
/*
 * Encrypts up to one record of buf towards side: the number of bytes taken
 * (all of them or a record's worth), or MITM_AGAIN when the side's
 * ciphertext buffer lacks room for a record (flush it first), MITM_ERROR.
 */
ssize_t	mitm_write(struct mitm *m, enum mitm_side side, const void *buf, size_t len);
/* Sends close_notify towards side (TLS half-close); 0 or MITM_ERROR. */
int	mitm_shutdown(struct mitm *m, enum mitm_side side);

/*
 * Moves plaintext both ways without a buffer of the caller's (for ALPN
 * protocols proxyd does not parse).  Returns the bytes moved; sets *eof_from
 * bits (1 << side) for sides whose stream ended (the caller then calls
 * mitm_shutdown on the other side once), MITM_ERROR on a broken leg.
 */
ssize_t	mitm_relay(struct mitm *m, unsigned *eof_from);

const struct mitm_info *mitm_get_info(const struct mitm *m);
/* Most memory the engine's own ciphertext buffers take for one flow. */
size_t	mitm_buffer_bytes(void);
/* What they take now: buffers exist only while they hold bytes. */
size_t	mitm_held_bytes(const struct mitm *m);

#endif
