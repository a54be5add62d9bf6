/*
 * QUIC client Initial parser for proxyd, I/O-free.
 *
 * A QUIC connection opens with the client's Initial packets (RFC 9000
 * §17.2.2), protected with keys anyone can derive from the packet's
 * Destination Connection ID and the version's public salt (RFC 9001 §5.2,
 * RFC 9369 §3.3.1).  Inside are CRYPTO frames carrying the TLS ClientHello,
 * with no TLS record layer.  proxyd feeds a UDP flow's client datagrams to
 * quic_initial_feed() one by one; it removes header protection, opens the
 * AEAD, reassembles the CRYPTO stream (frames in any order, over several
 * packets and datagrams, coalesced packets in one datagram) in a bounded
 * buffer, and hands the complete ClientHello to tlshello.c, whose result
 * (SNI, ALPN, ...) it keeps.
 *
 * quic_peek() alone says whether a datagram starts with a long-header packet
 * and whether it is an Initial of a version we know (no crypto, no state):
 * enough to refuse QUIC without reading it.  quic_build_*() write the
 * packets a refusal may send (Version Negotiation; an Initial, e.g. with
 * CONNECTION_CLOSE) and the protected Initials the tests need.
 *
 * Crypto is mbedTLS 3.6's legacy API (HKDF-SHA256, AES-ECB, AES-128-GCM),
 * as elsewhere in proxyd.  Nothing here reads a clock or a socket.
 */
#ifndef LOCALCAP_PROXYD_QUIC_H
#define LOCALCAP_PROXYD_QUIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxyd/tlshello.h"

#define QUIC_MAX_CID		20	/* RFC 9000 §17.2, versions we know */
/* Bound on the reassembled CRYPTO stream: a ClientHello with a post-quantum
 * key share is ~1.8 KiB, big ones with many extensions ~8 KiB. */
#define QUIC_MAX_CRYPTO		16384
/* Initial packets looked at before a flow without a whole hello is given up. */
#define QUIC_MAX_PACKETS	32
/* RFC 9000 §14.1: a client's datagram carrying an Initial is >= 1200 bytes. */
#define QUIC_MIN_INITIAL_DATAGRAM	1200

#define QUIC_VERSION_1		0x00000001u
#define QUIC_VERSION_2		0x6b3343cfu	/* RFC 9369 */
#define QUIC_VERSION_NEGOTIATION 0x00000000u

enum quic_result {
	QUIC_NOT_QUIC,		/* no long-header Initial of a version we know */
	QUIC_MALFORMED,		/* was QUIC; error says why.  Sticky. */
	QUIC_NEED_MORE,		/* hello incomplete: feed the next datagram */
	QUIC_OK,		/* hello complete and parsed */
};

enum quic_error {
	QUIC_ERR_NONE = 0,
	QUIC_ERR_HEADER,		/* long header runs past the datagram */
	QUIC_ERR_CID_LENGTH,		/* > 20 bytes in a version we know */
	QUIC_ERR_LENGTH,		/* Length field past the datagram */
	QUIC_ERR_SHORT_PACKET,		/* too short to sample / hold a tag */
	QUIC_ERR_DECRYPT,		/* AEAD tag did not verify */
	QUIC_ERR_RESERVED_BITS,		/* non-zero after unprotection */
	QUIC_ERR_FRAME,			/* frame not allowed in an Initial, or cut */
	QUIC_ERR_NO_FRAMES,		/* empty payload */
	QUIC_ERR_CRYPTO_RANGE,		/* CRYPTO data beyond QUIC_MAX_CRYPTO */
	QUIC_ERR_NOT_CLIENT_HELLO,	/* first handshake message is not one */
	QUIC_ERR_TOO_LARGE,		/* hello longer than QUIC_MAX_CRYPTO */
	QUIC_ERR_TOO_MANY_PACKETS,
	QUIC_ERR_VERSION_CHANGED,	/* a later Initial of another version */
	QUIC_ERR_TLS,			/* tlshello refused it: hello.error */
	QUIC_ERR_NOMEM,
	QUIC_ERR_CRYPTO_LIB,		/* mbedTLS failed (not the peer's fault) */
	QUIC_ERR__COUNT,
};

/* What the invariant header (RFC 8999) and, for versions we know, the type
 * bits say about the first packet of a datagram. */
struct quic_header {
	uint8_t		 first;		/* first byte, still protected */
	uint32_t	 version;
	uint8_t		 dcid[255];	/* RFC 8999 allows up to 255 */
	size_t		 dcid_len;
	uint8_t		 scid[255];
	size_t		 scid_len;
	bool		 known_version;	/* we have its salt and labels */
	bool		 initial;	/* known version, Initial type */
};

struct quic_keys {
	uint8_t		 key[16];
	uint8_t		 iv[12];
	uint8_t		 hp[16];
};

struct quic_initial {
	enum quic_error	 error;		/* for QUIC_MALFORMED */
	enum quic_result state;		/* last verdict (sticky when final) */
	uint32_t	 version;	/* of the first Initial */
	uint8_t		 dcid[QUIC_MAX_CID];	/* the client's chosen DCID */
	size_t		 dcid_len;
	uint8_t		 scid[QUIC_MAX_CID];
	size_t		 scid_len;
	unsigned	 npackets;	/* Initial packets opened */
	unsigned	 ndatagrams;	/* datagrams fed */
	int64_t		 largest_pn;	/* -1 before the first */

	/* keys for the DCID they were derived from (a Retry changes it) */
	uint8_t		 keys_dcid[QUIC_MAX_CID];
	size_t		 keys_dcid_len;
	bool		 have_keys;
	struct quic_keys keys;

	/* CRYPTO stream reassembly: bytes [0, QUIC_MAX_CRYPTO), with a bitmap
	 * of those received; the hello is complete when its first hello_len
	 * bytes are. */
	uint8_t		*crypto;
	uint8_t		*have;		/* bitmap, QUIC_MAX_CRYPTO / 8 */
	size_t		 contiguous;	/* bytes [0, contiguous) all present */
	size_t		 hello_len;	/* 0 until the header is in */

	struct tls_client_hello hello;	/* valid after QUIC_OK */
};

/*
 * Header of the datagram's first packet.  QUIC_OK when it is a long header
 * whose invariant fields fit (any version, Version Negotiation included);
 * QUIC_NOT_QUIC otherwise (short header, too short, fixed bit clear).
 */
enum quic_result quic_peek(const uint8_t *dgram, size_t len,
	    struct quic_header *h);
/* The datagram is what a client opens a QUIC connection with: a long-header
 * Initial of a known version, or of any other non-zero version when it is
 * padded to QUIC_MIN_INITIAL_DATAGRAM as every version's Initial must be. */
bool	 quic_looks_like_client_initial(const uint8_t *dgram, size_t len);
bool	 quic_version_known(uint32_t version);
const char *quic_version_str(uint32_t version);	/* "v1", "v2", "draft-29", ... */

void	 quic_initial_init(struct quic_initial *qi);
/* Feed one client datagram.  After QUIC_OK or QUIC_MALFORMED further feeds
 * return the same verdict and change nothing. */
enum quic_result quic_initial_feed(struct quic_initial *qi,
	    const uint8_t *dgram, size_t len);
void	 quic_initial_free(struct quic_initial *qi);
/* Once the verdict is final (QUIC_OK or QUIC_MALFORMED): free the CRYPTO
 * reassembly buffers and wipe the keys, keeping the parsed hello; later
 * feeds return the same verdict as before.  Before that, does nothing. */
void	 quic_initial_shed(struct quic_initial *qi);
const char *quic_error_str(enum quic_error err);

/* Initial keys for one side (RFC 9001 §5.2; RFC 9369 §3.3). */
bool	 quic_initial_keys(uint32_t version, const uint8_t *dcid,
	    size_t dcid_len, bool server, struct quic_keys *out);

/*
 * Version Negotiation packet (RFC 9000 §17.2.1) answering a client whose
 * Initial had the given DCID/SCID (swapped here as the RFC asks), listing
 * versions[n].  Returns its length, 0 if cap is too small.
 */
size_t	 quic_build_version_negotiation(const uint8_t *client_dcid,
	    size_t client_dcid_len, const uint8_t *client_scid,
	    size_t client_scid_len, const uint32_t *versions, size_t n,
	    uint8_t first_byte_random, uint8_t *out, size_t cap);

/*
 * A protected Initial packet: long header (version, dcid, scid, token),
 * packet number pn in pn_len bytes (1..4), the given plaintext frames, then
 * PADDING so that the packet is at least pad_to bytes.  Keys are those of
 * key_dcid for the client (server false) or the server.  Returns its length,
 * 0 if cap is too small or the arguments are out of range.
 */
struct quic_initial_spec {
	uint32_t	 version;
	bool		 server;
	const uint8_t	*key_dcid;
	size_t		 key_dcid_len;
	const uint8_t	*dcid;
	size_t		 dcid_len;
	const uint8_t	*scid;
	size_t		 scid_len;
	const uint8_t	*token;
	size_t		 token_len;
	uint64_t	 pn;
	unsigned	 pn_len;
	size_t		 pad_to;
};
size_t	 quic_build_initial(const struct quic_initial_spec *spec,
	    const uint8_t *frames, size_t frames_len, uint8_t *out, size_t cap);

/* Variable-length integer (RFC 9000 §16): bytes used, 0 if cut short. */
size_t	 quic_varint_get(const uint8_t *p, size_t len, uint64_t *v);
/* Bytes written (1, 2, 4 or 8), 0 if v >= 2^62 or cap too small. */
size_t	 quic_varint_put(uint8_t *p, size_t cap, uint64_t v);

#endif
