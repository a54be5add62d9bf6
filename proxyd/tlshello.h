/*
 * TLS ClientHello parser for proxyd, I/O-free.
 *
 * proxyd keeps the first bytes of every TCP flow until it knows what they
 * are (they are replayed untouched to whichever handler wins), so this parser
 * is stateless: call tlshello_parse() on everything received so far; it says
 * NEED_MORE, NOT_TLS, MALFORMED (with a reason) or OK.  The hello may span
 * several records (bounded by TLSHELLO_MAX_HANDSHAKE).  The result gives what
 * the MITM needs to choose its leg to the origin and to record the flow: SNI
 * (validated), ALPN, versions, cipher suites, groups, signature algorithms,
 * resumption (ticket / PSK) and ECH / GREASE presence.
 */
#ifndef LOCALCAP_PROXYD_TLSHELLO_H
#define LOCALCAP_PROXYD_TLSHELLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest ClientHello handshake message accepted (header included). */
#define TLSHELLO_MAX_HANDSHAKE	65536

enum tlshello_result {
	TLSHELLO_NEED_MORE,
	TLSHELLO_NOT_TLS,	/* not a TLS handshake record at all */
	TLSHELLO_MALFORMED,	/* looked like TLS; out->error says why */
	TLSHELLO_OK,
};

enum tlshello_error {
	TLSHELLO_ERR_NONE = 0,
	TLSHELLO_ERR_RECORD_LENGTH,	/* 0 or > 2^14 */
	TLSHELLO_ERR_INTERLEAVED,	/* non-handshake record mid-hello */
	TLSHELLO_ERR_NOT_CLIENT_HELLO,
	TLSHELLO_ERR_TOO_LARGE,
	TLSHELLO_ERR_TRAILING_DATA,	/* bytes after the hello in its record
					 * or inside the message */
	TLSHELLO_ERR_TRUNCATED,		/* a field runs past the message */
	TLSHELLO_ERR_SESSION_ID,
	TLSHELLO_ERR_CIPHER_SUITES,
	TLSHELLO_ERR_COMPRESSION,
	TLSHELLO_ERR_EXTENSION_LENGTH,
	TLSHELLO_ERR_DUPLICATE_EXTENSION,
	TLSHELLO_ERR_SNI,
	TLSHELLO_ERR_ALPN,
	TLSHELLO_ERR_SUPPORTED_VERSIONS,
	TLSHELLO_ERR_SIGNATURE_ALGORITHMS,
	TLSHELLO_ERR_SUPPORTED_GROUPS,
	TLSHELLO_ERR_PSK_NOT_LAST,
	TLSHELLO_ERR_NOMEM,
	TLSHELLO_ERR__COUNT,
};

#define TLS_EXT_SERVER_NAME		0
#define TLS_EXT_SUPPORTED_GROUPS	10
#define TLS_EXT_SIGNATURE_ALGORITHMS	13
#define TLS_EXT_ALPN			16
#define TLS_EXT_SESSION_TICKET		35
#define TLS_EXT_PRE_SHARED_KEY		41
#define TLS_EXT_EARLY_DATA		42
#define TLS_EXT_SUPPORTED_VERSIONS	43
#define TLS_EXT_ECH			0xfe0d

/*
 * Lists point into hello (the reassembled handshake message, owned) in wire
 * format: 16-bit values big-endian, read them with tlshello_u16().
 */
struct tls_client_hello {
	enum tlshello_error error;	/* for TLSHELLO_MALFORMED */
	uint8_t		*hello;		/* handshake message, header included */
	size_t		 hello_len;
	size_t		 stream_len;	/* bytes of the stream its records use */
	unsigned	 nrecords;

	uint16_t	 record_version;
	uint16_t	 legacy_version;
	const uint8_t	*random;	/* 32 bytes */
	const uint8_t	*session_id;
	size_t		 session_id_len;
	const uint8_t	*cipher_suites;
	size_t		 ncipher_suites;
	const uint8_t	*extensions;	/* type, length, data … in order */
	size_t		 extensions_len;
	size_t		 nextensions;

	char		 sni[256];	/* NUL-terminated, "" when absent */
	bool		 has_sni;
	bool		 sni_rejected;	/* present but not a valid host name */
	const uint8_t	*alpn;		/* ProtocolNameList without its length */
	size_t		 alpn_len;
	size_t		 nalpn;
	const uint8_t	*supported_versions;
	size_t		 nsupported_versions;
	const uint8_t	*signature_algorithms;
	size_t		 nsignature_algorithms;
	const uint8_t	*supported_groups;
	size_t		 nsupported_groups;

	bool		 has_session_ticket;	/* extension present */
	size_t		 session_ticket_len;	/* > 0: resumption attempt */
	bool		 has_psk;
	bool		 has_early_data;
	bool		 has_ech;
	bool		 has_grease;		/* RFC 8701 values anywhere */
};

/* Zeroes *out first; call tlshello_free() after any result. */
enum tlshello_result tlshello_parse(const uint8_t *buf, size_t len,
	    struct tls_client_hello *out);
/*
 * One bare handshake message, as QUIC's CRYPTO frames carry it (RFC 9001
 * §4: no record layer): msg[0, len) must be exactly one ClientHello.
 * nrecords is 0 and record_version unset.  NEED_MORE only when len < 4.
 */
enum tlshello_result tlshello_parse_message(const uint8_t *msg, size_t len,
	    struct tls_client_hello *out);
void	 tlshello_free(struct tls_client_hello *out);
const char *tlshello_error_str(enum tlshello_error err);

static inline uint16_t
tlshello_u16(const uint8_t *list, size_t i)
{
	return (uint16_t)(list[2 * i] << 8 | list[2 * i + 1]);
}

/* i-th ALPN protocol name (not NUL-terminated); false past the end. */
bool	 tlshello_alpn_at(const struct tls_client_hello *ch, size_t i,
	    const uint8_t **name, size_t *len);
bool	 tlshello_offers_alpn(const struct tls_client_hello *ch,
	    const char *proto);
/* RFC 8701 GREASE value (0x0a0a, 0x1a1a, … 0xfafa). */
bool	 tls_is_grease(uint16_t v);
/* Host name as SNI allows: LDH labels (and '_'), 1..63 each, ≤ 253, no
 * trailing dot, not an IP literal. */
bool	 tls_valid_host_name(const uint8_t *s, size_t len);

#endif
