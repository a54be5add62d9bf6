/*
 * The TLS engine's insides, shared by its three files (nothing else
 * includes this):
 *   mitm_ctx.c        the per-loop context: trust store, ticket keys,
 *                     cipher suites, the upstream session cache (sesscache.c)
 *   mitm_handshake.c  mitm_step(): ClientHello, upstream leg, forged leaf,
 *                     client leg, certificate verdicts, alerts
 *   mitm.c            one flow's buffers and BIO, ciphertext in/out,
 *                     plaintext read/write/relay, mitm_wants()
 */
#ifndef LOCALCAP_PROXYD_MITM_INT_H
#define LOCALCAP_PROXYD_MITM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>

#include "proxyd/tlserr.h"
#include "proxyd/mitm.h"

struct sesscache;
struct forged_cert;

/*
 * Per-leg ciphertext buffers, MITM_BATCH full records each way, so that
 * one recv(2) takes and one send(2) gives several records of a bulk
 * transfer (with one record each, a GB cost 60,000 of each call per leg,
 * and netstackd cut its segments at a record's size).  In holds at least
 * one full record plus the next header, so that a ClientHello of up to
 * ~17 KB can be parsed before mbedTLS sees it.  The memory exists only
 * while a buffer holds bytes (mitm.c).  mbedTLS adds ~2 x 16.7 KB per leg.
 */
#define MITM_BATCH	4
#define MITM_IN_CAP	(MITM_BATCH * (16384 + 1024))
#define MITM_OUT_CAP	(MITM_BATCH * (16384 + 1024))
#define MITM_MAX_RECORD	16384
#define MITM_MAX_ALPN	16

struct mitm_ctx {
	struct mitm_options	opt;
	struct certforge	*cf;
	mbedtls_x509_crt	trust;		/* system store + extra CA */
	bool			have_trust;
	mbedtls_ssl_ticket_context tickets;
	bool			have_tickets;
	const int		*suites;		/* upstream leg */
	const int		*client_suites;		/* client leg (our key is ECDSA) */
	struct sesscache	*sessions;	/* NULL: resumption off */
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
	bool			 client_offered_h2;
	bool			 h2_only_to_h1;	/* the client offered only h2, the
						 * server speaks HTTP/1.1 only */
	/* ALPN lists handed to mbedTLS (it keeps the pointers) */
	char			 alpn_store[MITM_MAX_ALPN * 64];
	const char		*up_alpn[MITM_MAX_ALPN + 1];
	const char		*cl_alpn[2];
	char			 cl_alpn_name[256];
	int			 cl_suites[16];	/* client leg, per ClientHello */

	char			 sess_key[340];
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

/* mitm.c */
uint64_t	 mitm_now_us(void);
void		 mitm_fail(struct mitm *m, enum mitm_error e, const char *fmt, ...)
		    __attribute__((format(printf, 3, 4)));
/* The upstream leg is lost; the client leg goes on so that it can be told. */
void		 mitm_upstream_fail(struct mitm *m, enum mitm_error e,
		    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
size_t		 mitm_buf_len(const struct mitm_buf *b);
void		 mitm_buf_compact(struct mitm_buf *b);
int		 mitm_bio_send(void *leg, const unsigned char *buf, size_t len);
int		 mitm_bio_recv(void *leg, unsigned char *buf, size_t len);
/* The server's name: the client's SNI, else the hint, else "" (none). */
const char	*mitm_server_name(const struct mitm *m);

/* mitm_handshake.c */
/* The alert the peer just sent, or -1. */
int		 mitm_peer_alert(const mbedtls_ssl_context *ssl);
const char	*mitm_alert_name(int alert);
/* Remembers the upstream session of m (after a handshake or a new ticket). */
void		 mitm_session_save(struct mitm *m);

#endif
