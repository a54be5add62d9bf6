/*
 * QUIC client Initial parser: header protection, AEAD, CRYPTO reassembly,
 * then the ClientHello through tlshello.c.  See quic.h for the contract.
 *
 * Call chain: quic_initial_feed -> open_packet (per coalesced Initial) ->
 * read_frames -> crypto_store; then hello_check on what is contiguous.
 */
#include <stdlib.h>
#include <string.h>

#include <mbedtls/aes.h>
#include <mbedtls/gcm.h>
#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>

#include "proxyd/quic.h"

/* --- versions ------------------------------------------------------------ */

struct quic_version_info {
	uint32_t	 first, last;	/* range of version numbers */
	const char	*name;
	uint8_t		 salt[20];
	const char	*key_label, *iv_label, *hp_label;
	unsigned	 initial_type;	/* long packet type bits of Initial */
	unsigned	 retry_type;
};

static const struct quic_version_info versions[] = {
	{ QUIC_VERSION_1, QUIC_VERSION_1, "v1",
	  { 0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
	    0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a },
	  "quic key", "quic iv", "quic hp", 0, 3 },
	/* RFC 9369 §3.3: another salt, other labels, rotated packet types */
	{ QUIC_VERSION_2, QUIC_VERSION_2, "v2",
	  { 0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93,
	    0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9 },
	  "quicv2 key", "quicv2 iv", "quicv2 hp", 1, 0 },
	/* drafts 33 and 34 already used v1's salt */
	{ 0xff000021, 0xff000022, "draft-33/34",
	  { 0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
	    0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a },
	  "quic key", "quic iv", "quic hp", 0, 3 },
	/* draft-29..32: what Chrome and many servers spoke until 2021 */
	{ 0xff00001d, 0xff000020, "draft-29",
	  { 0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97,
	    0x86, 0xf1, 0x9c, 0x61, 0x11, 0xe0, 0x43, 0x90, 0xa8, 0x99 },
	  "quic key", "quic iv", "quic hp", 0, 3 },
	{ 0xff000017, 0xff00001c, "draft-23..28",
	  { 0xc3, 0xee, 0xf7, 0x12, 0xc7, 0x2e, 0xbb, 0x5a, 0x11, 0xa7,
	    0xd2, 0x43, 0x2b, 0xb4, 0x63, 0x65, 0xbe, 0xf9, 0xf5, 0x02 },
	  "quic key", "quic iv", "quic hp", 0, 3 },
};

static const struct quic_version_info *
version_info(uint32_t v)
{
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++)
		if (v >= versions[i].first && v <= versions[i].last)
			return &versions[i];
	return NULL;
}

bool
quic_version_known(uint32_t version)
{
	return version_info(version) != NULL;
}

const char *
quic_version_str(uint32_t version)
{
	const struct quic_version_info *vi = version_info(version);

	if (vi != NULL)
		return vi->name;
	if (version == QUIC_VERSION_NEGOTIATION)
		return "negotiation";
	if ((version & 0x0f0f0f0fu) == 0x0a0a0a0au)
		return "grease";
	return "unknown";
}

static const char *const error_names[QUIC_ERR__COUNT] = {
	[QUIC_ERR_NONE] = "no error",
	[QUIC_ERR_HEADER] = "long header cut short",
	[QUIC_ERR_CID_LENGTH] = "connection id longer than 20 bytes",
	[QUIC_ERR_LENGTH] = "packet length past the datagram",
	[QUIC_ERR_SHORT_PACKET] = "packet too short for its protection",
	[QUIC_ERR_DECRYPT] = "Initial does not decrypt",
	[QUIC_ERR_RESERVED_BITS] = "reserved header bits set",
	[QUIC_ERR_FRAME] = "frame not allowed in an Initial, or cut short",
	[QUIC_ERR_NO_FRAMES] = "Initial without frames",
	[QUIC_ERR_CRYPTO_RANGE] = "CRYPTO data beyond the reassembly bound",
	[QUIC_ERR_NOT_CLIENT_HELLO] = "CRYPTO stream is not a ClientHello",
	[QUIC_ERR_TOO_LARGE] = "ClientHello larger than the bound",
	[QUIC_ERR_TOO_MANY_PACKETS] = "too many Initials without a whole hello",
	[QUIC_ERR_VERSION_CHANGED] = "Initial of another version",
	[QUIC_ERR_TLS] = "ClientHello malformed",
	[QUIC_ERR_NOMEM] = "out of memory",
	[QUIC_ERR_CRYPTO_LIB] = "crypto library failure",
};

const char *
quic_error_str(enum quic_error err)
{
	if ((unsigned)err >= QUIC_ERR__COUNT)
		return "?";
	return error_names[err];
}

/* --- varints --------------------------------------------------------------- */

size_t
quic_varint_get(const uint8_t *p, size_t len, uint64_t *v)
{
	size_t n;

	if (len < 1)
		return 0;
	n = (size_t)1 << (p[0] >> 6);
	if (len < n)
		return 0;
	*v = p[0] & 0x3f;
	for (size_t i = 1; i < n; i++)
		*v = *v << 8 | p[i];
	return n;
}

size_t
quic_varint_put(uint8_t *p, size_t cap, uint64_t v)
{
	size_t n;
	uint8_t tag;

	if (v < 64) {
		n = 1;
		tag = 0x00;
	} else if (v < 16384) {
		n = 2;
		tag = 0x40;
	} else if (v < (1u << 30)) {
		n = 4;
		tag = 0x80;
	} else if (v < ((uint64_t)1 << 62)) {
		n = 8;
		tag = 0xc0;
	} else
		return 0;
	if (cap < n)
		return 0;
	for (size_t i = n; i-- > 0; v >>= 8)
		p[i] = (uint8_t)(v & 0xff);
	p[0] |= tag;
	return n;
}

/* A cursor over untrusted bytes. */
struct cur {
	const uint8_t	*p;
	size_t		 len, off;
};

static bool
cur_varint(struct cur *c, uint64_t *v)
{
	size_t n = quic_varint_get(c->p + c->off, c->len - c->off, v);

	c->off += n;
	return n != 0;
}

static bool
cur_skip(struct cur *c, uint64_t n)
{
	if (n > c->len - c->off)
		return false;
	c->off += (size_t)n;
	return true;
}

/* --- keys ------------------------------------------------------------------ */

/* HKDF-Expand-Label (RFC 8446 §7.1) with an empty context. */
static bool
expand_label(const uint8_t *secret, size_t secret_len, const char *label,
    uint8_t *out, size_t out_len)
{
	uint8_t info[2 + 1 + 255 + 1];
	size_t llen = strlen(label), n = 0;

	if (6 + llen > 255)
		return false;
	info[n++] = (uint8_t)(out_len >> 8);
	info[n++] = (uint8_t)out_len;
	info[n++] = (uint8_t)(6 + llen);
	memcpy(info + n, "tls13 ", 6);
	n += 6;
	memcpy(info + n, label, llen);
	n += llen;
	info[n++] = 0;
	return mbedtls_hkdf_expand(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256),
	    secret, secret_len, info, n, out, out_len) == 0;
}

bool
quic_initial_keys(uint32_t version, const uint8_t *dcid, size_t dcid_len,
    bool server, struct quic_keys *out)
{
	const struct quic_version_info *vi = version_info(version);
	const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
	uint8_t initial[32], secret[32];
	bool ok;

	if (vi == NULL || md == NULL)
		return false;
	ok = mbedtls_hkdf_extract(md, vi->salt, sizeof(vi->salt), dcid,
	    dcid_len, initial) == 0 &&
	    expand_label(initial, sizeof(initial),
		server ? "server in" : "client in", secret, sizeof(secret)) &&
	    expand_label(secret, sizeof(secret), vi->key_label, out->key,
		sizeof(out->key)) &&
	    expand_label(secret, sizeof(secret), vi->iv_label, out->iv,
		sizeof(out->iv)) &&
	    expand_label(secret, sizeof(secret), vi->hp_label, out->hp,
		sizeof(out->hp));
	mbedtls_platform_zeroize(initial, sizeof(initial));
	mbedtls_platform_zeroize(secret, sizeof(secret));
	return ok;
}

/* AES-ECB of the 16-byte sample (RFC 9001 §5.4.3). */
static bool
hp_mask(const struct quic_keys *k, const uint8_t *sample, uint8_t mask[16])
{
	mbedtls_aes_context aes;
	bool ok;

	mbedtls_aes_init(&aes);
	ok = mbedtls_aes_setkey_enc(&aes, k->hp, 128) == 0 &&
	    mbedtls_aes_crypt_ecb(&aes, MBEDTLS_AES_ENCRYPT, sample, mask) == 0;
	mbedtls_aes_free(&aes);
	return ok;
}

static void
make_nonce(const struct quic_keys *k, uint64_t pn, uint8_t nonce[12])
{
	memcpy(nonce, k->iv, 12);
	for (int i = 0; i < 8; i++)
		nonce[11 - i] ^= (uint8_t)(pn >> (8 * i));
}

/* --- header ---------------------------------------------------------------- */

/*
 * Parse a long header's invariant part at p (RFC 8999 §5.1).  Sets *off to
 * the byte after the SCID.  No length limits beyond the invariants' 255.
 */
static bool
parse_invariant(const uint8_t *p, size_t len, struct quic_header *h,
    size_t *off)
{
	size_t o = 0;

	memset(h, 0, sizeof(*h));
	if (len < 7 || !(p[0] & 0x80))
		return false;
	h->first = p[0];
	h->version = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 8 | p[4];
	o = 5;
	h->dcid_len = p[o++];
	if (len - o < h->dcid_len + 1)
		return false;
	memcpy(h->dcid, p + o, h->dcid_len);
	o += h->dcid_len;
	h->scid_len = p[o++];
	if (len - o < h->scid_len)
		return false;
	memcpy(h->scid, p + o, h->scid_len);
	o += h->scid_len;
	*off = o;
	return true;
}

enum quic_result
quic_peek(const uint8_t *dgram, size_t len, struct quic_header *h)
{
	const struct quic_version_info *vi;
	size_t off;

	if (!parse_invariant(dgram, len, h, &off))
		return QUIC_NOT_QUIC;
	if (h->version == QUIC_VERSION_NEGOTIATION)
		return QUIC_OK;
	/* every version so far sets the fixed bit in its long headers */
	if (!(h->first & 0x40))
		return QUIC_NOT_QUIC;
	if ((vi = version_info(h->version)) != NULL) {
		h->known_version = true;
		h->initial = ((h->first >> 4) & 3) == vi->initial_type &&
		    h->dcid_len <= QUIC_MAX_CID && h->scid_len <= QUIC_MAX_CID;
	}
	return QUIC_OK;
}

bool
quic_looks_like_client_initial(const uint8_t *dgram, size_t len)
{
	struct quic_header h;

	if (quic_peek(dgram, len, &h) != QUIC_OK ||
	    h.version == QUIC_VERSION_NEGOTIATION)
		return false;
	if (h.known_version)
		return h.initial;
	/* RFC 9000 §14.1 holds for every version's first flight; a client
	 * datagram this large with a long header is a connection attempt */
	return len >= QUIC_MIN_INITIAL_DATAGRAM;
}

/* RFC 9000 §A.3 */
static uint64_t
decode_pn(int64_t largest, uint64_t truncated, unsigned pn_nbits)
{
	uint64_t expected = (uint64_t)(largest + 1);
	uint64_t win = (uint64_t)1 << pn_nbits, hwin = win / 2, mask = win - 1;
	uint64_t candidate = (expected & ~mask) | truncated;

	if (candidate + hwin <= expected && candidate < ((uint64_t)1 << 62) - win)
		return candidate + win;
	if (candidate > expected + hwin && candidate >= win)
		return candidate - win;
	return candidate;
}

/* --- reassembly ------------------------------------------------------------ */

static enum quic_result
fail(struct quic_initial *qi, enum quic_error e)
{
	qi->error = e;
	qi->state = QUIC_MALFORMED;
	return QUIC_MALFORMED;
}

static bool
crypto_store(struct quic_initial *qi, uint64_t off, const uint8_t *data,
    size_t n)
{
	if (qi->crypto == NULL) {
		qi->crypto = malloc(QUIC_MAX_CRYPTO);
		qi->have = calloc(QUIC_MAX_CRYPTO / 8, 1);
		if (qi->crypto == NULL || qi->have == NULL) {
			fail(qi, QUIC_ERR_NOMEM);
			return false;
		}
	}
	if (off > QUIC_MAX_CRYPTO || n > QUIC_MAX_CRYPTO - off) {
		fail(qi, QUIC_ERR_CRYPTO_RANGE);
		return false;
	}
	memcpy(qi->crypto + off, data, n);
	for (size_t i = (size_t)off; i < off + n; i++)
		qi->have[i / 8] |= (uint8_t)(1u << (i % 8));
	while (qi->contiguous < QUIC_MAX_CRYPTO &&
	    (qi->have[qi->contiguous / 8] & (1u << (qi->contiguous % 8))))
		qi->contiguous++;
	return true;
}

/* RFC 9000 §12.4: an Initial may carry PADDING, PING, ACK, CRYPTO and
 * CONNECTION_CLOSE (0x1c) frames, nothing else. */
static bool
read_frames(struct quic_initial *qi, const uint8_t *payload, size_t len)
{
	struct cur c = { payload, len, 0 };
	uint64_t type, a, b, n;

	if (len == 0) {
		fail(qi, QUIC_ERR_NO_FRAMES);
		return false;
	}
	while (c.off < c.len) {
		if (!cur_varint(&c, &type))
			goto cut;
		switch (type) {
		case 0x00:	/* PADDING */
		case 0x01:	/* PING */
			break;
		case 0x02:	/* ACK */
		case 0x03:	/* ACK with ECN counts */
			if (!cur_varint(&c, &a) || !cur_varint(&c, &a) ||
			    !cur_varint(&c, &n) || !cur_varint(&c, &a))
				goto cut;
			for (uint64_t i = 0; i < n; i++)
				if (!cur_varint(&c, &a) || !cur_varint(&c, &a))
					goto cut;
			if (type == 0x03 && (!cur_varint(&c, &a) ||
			    !cur_varint(&c, &a) || !cur_varint(&c, &a)))
				goto cut;
			break;
		case 0x06:	/* CRYPTO */
			if (!cur_varint(&c, &a) || !cur_varint(&c, &b) ||
			    b > c.len - c.off)
				goto cut;
			if (!crypto_store(qi, a, c.p + c.off, (size_t)b))
				return false;
			c.off += (size_t)b;
			break;
		case 0x1c:	/* CONNECTION_CLOSE (transport) */
			if (!cur_varint(&c, &a) || !cur_varint(&c, &a) ||
			    !cur_varint(&c, &b) || !cur_skip(&c, b))
				goto cut;
			break;
		default:
			goto cut;
		}
	}
	return true;
cut:
	fail(qi, QUIC_ERR_FRAME);
	return false;
}

/*
 * Remove header protection and open the AEAD of the Initial at pkt[0,
 * pkt_len) (a private copy: both are undone in place), whose packet number
 * starts at pn_off.  On success *payload / *payload_len are the plaintext
 * frames inside pkt.
 */
static bool
unprotect(const struct quic_keys *k, int64_t largest, uint8_t *pkt,
    size_t pkt_len, size_t pn_off, uint64_t *pn, uint8_t **payload,
    size_t *payload_len, bool *reserved_set, bool *crypto_lib_failed)
{
	mbedtls_gcm_context gcm;
	uint8_t mask[16], nonce[12];
	unsigned pn_len;
	uint64_t truncated = 0;
	size_t hdr_len, ct_len;
	int ret;

	*crypto_lib_failed = false;
	if (!hp_mask(k, pkt + pn_off + 4, mask)) {
		*crypto_lib_failed = true;
		return false;
	}
	pkt[0] ^= mask[0] & 0x0f;
	pn_len = (pkt[0] & 0x03) + 1;
	for (unsigned i = 0; i < pn_len; i++) {
		pkt[pn_off + i] ^= mask[1 + i];
		truncated = truncated << 8 | pkt[pn_off + i];
	}
	hdr_len = pn_off + pn_len;
	if (pkt_len - hdr_len < 16)
		return false;
	ct_len = pkt_len - hdr_len - 16;
	*pn = decode_pn(largest, truncated, 8 * pn_len);
	make_nonce(k, *pn, nonce);

	mbedtls_gcm_init(&gcm);
	if (mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, k->key, 128) != 0) {
		mbedtls_gcm_free(&gcm);
		*crypto_lib_failed = true;
		return false;
	}
	ret = mbedtls_gcm_auth_decrypt(&gcm, ct_len, nonce, sizeof(nonce), pkt,
	    hdr_len, pkt + hdr_len + ct_len, 16, pkt + hdr_len, pkt + hdr_len);
	mbedtls_gcm_free(&gcm);
	if (ret != 0)
		return false;
	*reserved_set = (pkt[0] & 0x0c) != 0;
	*payload = pkt + hdr_len;
	*payload_len = ct_len;
	return true;
}

/*
 * One long-header Initial at pkt (Length already checked to fit): find keys
 * that open it, then read its frames.  Returns false on a fatal error
 * (already recorded); *opened says whether it decrypted.
 */
static bool
open_packet(struct quic_initial *qi, const struct quic_header *h,
    const uint8_t *pkt, size_t pkt_len, size_t pn_off, uint8_t *scratch,
    bool *opened)
{
	struct quic_keys k;
	uint64_t pn = 0;
	uint8_t *payload = NULL;
	size_t payload_len = 0;
	bool reserved = false, libfail = false, ok = false;

	*opened = false;
	/* the sample starts 4 bytes after the packet number's start */
	if (pkt_len < pn_off + 4 + 16) {
		fail(qi, QUIC_ERR_SHORT_PACKET);
		return false;
	}
	/* keys derived from the first Initial's DCID last for the connection
	 * (RFC 9001 §5.2); only a Retry makes the client pick another one */
	if (qi->have_keys) {
		memcpy(scratch, pkt, pkt_len);
		ok = unprotect(&qi->keys, qi->largest_pn, scratch, pkt_len,
		    pn_off, &pn, &payload, &payload_len, &reserved, &libfail);
	}
	if (!ok && !libfail && (!qi->have_keys ||
	    h->dcid_len != qi->keys_dcid_len ||
	    memcmp(h->dcid, qi->keys_dcid, h->dcid_len) != 0)) {
		if (!quic_initial_keys(h->version, h->dcid, h->dcid_len, false,
		    &k)) {
			fail(qi, QUIC_ERR_CRYPTO_LIB);
			return false;
		}
		memcpy(scratch, pkt, pkt_len);
		ok = unprotect(&k, qi->largest_pn, scratch, pkt_len, pn_off,
		    &pn, &payload, &payload_len, &reserved, &libfail);
		if (ok) {
			qi->keys = k;
			memcpy(qi->keys_dcid, h->dcid, h->dcid_len);
			qi->keys_dcid_len = h->dcid_len;
			qi->have_keys = true;
		}
		mbedtls_platform_zeroize(&k, sizeof(k));
	}
	if (libfail) {
		fail(qi, QUIC_ERR_CRYPTO_LIB);
		return false;
	}
	if (!ok)
		return true;	/* not ours to read; the caller decides */
	*opened = true;
	if (reserved) {
		fail(qi, QUIC_ERR_RESERVED_BITS);
		return false;
	}
	if ((int64_t)pn > qi->largest_pn)
		qi->largest_pn = (int64_t)pn;
	if (++qi->npackets > QUIC_MAX_PACKETS) {
		fail(qi, QUIC_ERR_TOO_MANY_PACKETS);
		return false;
	}
	if (qi->npackets == 1) {
		qi->version = h->version;
		memcpy(qi->dcid, h->dcid, h->dcid_len);
		qi->dcid_len = h->dcid_len;
		memcpy(qi->scid, h->scid, h->scid_len);
		qi->scid_len = h->scid_len;
	}
	return read_frames(qi, payload, payload_len);
}

/* Is the ClientHello whole?  Parse it when it is. */
static enum quic_result
hello_check(struct quic_initial *qi)
{
	enum tlshello_result r;

	if (qi->contiguous >= 1 && qi->crypto[0] != 1)
		return fail(qi, QUIC_ERR_NOT_CLIENT_HELLO);
	if (qi->hello_len == 0 && qi->contiguous >= 4) {
		qi->hello_len = 4 + ((size_t)qi->crypto[1] << 16 |
		    (size_t)qi->crypto[2] << 8 | qi->crypto[3]);
		if (qi->hello_len > QUIC_MAX_CRYPTO)
			return fail(qi, QUIC_ERR_TOO_LARGE);
	}
	if (qi->hello_len == 0 || qi->contiguous < qi->hello_len)
		return qi->state = QUIC_NEED_MORE;
	r = tlshello_parse_message(qi->crypto, qi->hello_len, &qi->hello);
	if (r != TLSHELLO_OK)
		return fail(qi, r == TLSHELLO_MALFORMED ? QUIC_ERR_TLS :
		    QUIC_ERR_NOT_CLIENT_HELLO);
	return qi->state = QUIC_OK;
}

void
quic_initial_init(struct quic_initial *qi)
{
	memset(qi, 0, sizeof(*qi));
	qi->largest_pn = -1;
	qi->state = QUIC_NEED_MORE;
}

void
quic_initial_free(struct quic_initial *qi)
{
	free(qi->crypto);
	free(qi->have);
	qi->crypto = qi->have = NULL;
	tlshello_free(&qi->hello);
	mbedtls_platform_zeroize(&qi->keys, sizeof(qi->keys));
	qi->have_keys = false;
}

void
quic_initial_shed(struct quic_initial *qi)
{
	if (qi->state != QUIC_OK && qi->state != QUIC_MALFORMED)
		return;		/* still reassembling: it needs them */
	free(qi->crypto);
	free(qi->have);
	qi->crypto = qi->have = NULL;
	mbedtls_platform_zeroize(&qi->keys, sizeof(qi->keys));
	qi->have_keys = false;
}

enum quic_result
quic_initial_feed(struct quic_initial *qi, const uint8_t *dgram, size_t len)
{
	uint8_t *scratch;
	size_t off = 0;
	unsigned opened_here = 0, undecryptable = 0;
	bool had_any = qi->npackets > 0;

	if (qi->state == QUIC_OK || qi->state == QUIC_MALFORMED)
		return qi->state;
	qi->ndatagrams++;
	if ((scratch = malloc(len > 0 ? len : 1)) == NULL)
		return fail(qi, QUIC_ERR_NOMEM);

	/* coalesced packets (RFC 9000 §12.2): long headers one after another;
	 * anything else ends what we can read of the datagram */
	while (off < len) {
		const uint8_t *p = dgram + off;
		size_t n = len - off, hoff, pn_off;
		const struct quic_version_info *vi;
		struct quic_header h;
		uint64_t v, length;
		unsigned type;
		bool opened;

		if (!(p[0] & 0x80))
			break;		/* short header, or padding */
		if (!parse_invariant(p, n, &h, &hoff)) {
			if (off == 0 && !had_any) {
				free(scratch);
				return qi->state = QUIC_NOT_QUIC;
			}
			break;
		}
		if ((vi = version_info(h.version)) == NULL ||
		    !(h.first & 0x40)) {
			if (off == 0 && !had_any) {
				free(scratch);
				return qi->state = QUIC_NOT_QUIC;
			}
			break;
		}
		if (h.dcid_len > QUIC_MAX_CID || h.scid_len > QUIC_MAX_CID) {
			free(scratch);
			return fail(qi, QUIC_ERR_CID_LENGTH);
		}
		type = (h.first >> 4) & 3;
		if (type == vi->retry_type)
			break;		/* no Length field: cannot skip it */
		if (type == vi->initial_type) {
			size_t t = quic_varint_get(p + hoff, n - hoff, &v);

			if (t == 0 || v > n - hoff - t) {
				free(scratch);
				return fail(qi, QUIC_ERR_HEADER);
			}
			hoff += t + (size_t)v;
		}
		if ((pn_off = quic_varint_get(p + hoff, n - hoff, &length)) == 0) {
			free(scratch);
			return fail(qi, QUIC_ERR_HEADER);
		}
		pn_off += hoff;
		if (length > n - pn_off) {
			free(scratch);
			return fail(qi, QUIC_ERR_LENGTH);
		}
		if (type != vi->initial_type) {	/* 0-RTT or Handshake */
			off += pn_off + (size_t)length;
			continue;
		}
		if (qi->npackets > 0 && h.version != qi->version) {
			free(scratch);
			return fail(qi, QUIC_ERR_VERSION_CHANGED);
		}
		if (!open_packet(qi, &h, p, pn_off + (size_t)length, pn_off,
		    scratch, &opened)) {
			free(scratch);
			return QUIC_MALFORMED;
		}
		if (opened)
			opened_here++;
		else
			undecryptable++;
		off += pn_off + (size_t)length;
	}
	free(scratch);

	if (qi->npackets == 0) {
		/* a known version's Initial that nobody can open is not a
		 * client's first flight */
		if (undecryptable > 0)
			return fail(qi, QUIC_ERR_DECRYPT);
		return qi->state = had_any ? QUIC_NEED_MORE : QUIC_NOT_QUIC;
	}
	if (opened_here == 0 && qi->crypto == NULL)
		return qi->state = QUIC_NEED_MORE;
	if (qi->crypto == NULL)
		return qi->state = QUIC_NEED_MORE;
	return hello_check(qi);
}

/* --- builders -------------------------------------------------------------- */

size_t
quic_build_version_negotiation(const uint8_t *client_dcid,
    size_t client_dcid_len, const uint8_t *client_scid, size_t client_scid_len,
    const uint32_t *vers, size_t n, uint8_t first_byte_random, uint8_t *out,
    size_t cap)
{
	size_t need = 7 + client_dcid_len + client_scid_len + 4 * n, o = 0;

	if (client_dcid_len > 255 || client_scid_len > 255 || cap < need)
		return 0;
	out[o++] = 0x80 | (first_byte_random & 0x7f);
	memset(out + o, 0, 4);
	o += 4;
	out[o++] = (uint8_t)client_scid_len;
	if (client_scid_len > 0)
		memcpy(out + o, client_scid, client_scid_len);
	o += client_scid_len;
	out[o++] = (uint8_t)client_dcid_len;
	if (client_dcid_len > 0)
		memcpy(out + o, client_dcid, client_dcid_len);
	o += client_dcid_len;
	for (size_t i = 0; i < n; i++) {
		out[o++] = (uint8_t)(vers[i] >> 24);
		out[o++] = (uint8_t)(vers[i] >> 16);
		out[o++] = (uint8_t)(vers[i] >> 8);
		out[o++] = (uint8_t)vers[i];
	}
	return o;
}

size_t
quic_build_initial(const struct quic_initial_spec *s, const uint8_t *frames,
    size_t frames_len, uint8_t *out, size_t cap)
{
	const struct quic_version_info *vi = version_info(s->version);
	struct quic_keys k;
	mbedtls_gcm_context gcm;
	uint8_t mask[16], nonce[12];
	size_t o = 0, t, pn_off, plain_len, length, total, hdr_len;
	int ret;

	if (vi == NULL || s->pn_len < 1 || s->pn_len > 4 ||
	    s->dcid_len > QUIC_MAX_CID || s->scid_len > QUIC_MAX_CID ||
	    (s->pn_len < 4 && s->pn >> (8 * s->pn_len) != 0) ||
	    frames_len > 65535)
		return 0;
	/* header up to Length */
	if (cap < 7 + s->dcid_len + s->scid_len)
		return 0;
	out[o++] = (uint8_t)(0xc0 | vi->initial_type << 4 | (s->pn_len - 1));
	out[o++] = (uint8_t)(s->version >> 24);
	out[o++] = (uint8_t)(s->version >> 16);
	out[o++] = (uint8_t)(s->version >> 8);
	out[o++] = (uint8_t)s->version;
	out[o++] = (uint8_t)s->dcid_len;
	if (s->dcid_len > 0)
		memcpy(out + o, s->dcid, s->dcid_len);
	o += s->dcid_len;
	out[o++] = (uint8_t)s->scid_len;
	if (s->scid_len > 0)
		memcpy(out + o, s->scid, s->scid_len);
	o += s->scid_len;
	if ((t = quic_varint_put(out + o, cap - o, s->token_len)) == 0 ||
	    s->token_len > cap - o - t)
		return 0;
	o += t;
	if (s->token_len > 0)
		memcpy(out + o, s->token, s->token_len);
	o += s->token_len;

	/* Length as a 2-byte varint (what RFC 9001's examples use) */
	plain_len = frames_len;
	pn_off = o + 2;
	if (pn_off + s->pn_len + plain_len + 16 < s->pad_to)
		plain_len = s->pad_to - pn_off - s->pn_len - 16;
	if (s->pn_len + plain_len < 4)	/* room for the sample */
		plain_len = 4 - s->pn_len;
	length = s->pn_len + plain_len + 16;
	if (length >= 16384)
		return 0;
	total = pn_off + length;
	if (total > cap)
		return 0;
	out[o++] = (uint8_t)(0x40 | length >> 8);
	out[o++] = (uint8_t)length;
	for (unsigned i = 0; i < s->pn_len; i++)
		out[o++] = (uint8_t)(s->pn >> (8 * (s->pn_len - 1 - i)));
	hdr_len = o;
	if (frames_len > 0)
		memcpy(out + o, frames, frames_len);
	memset(out + o + frames_len, 0, plain_len - frames_len);

	if (!quic_initial_keys(s->version, s->key_dcid, s->key_dcid_len,
	    s->server, &k))
		return 0;
	make_nonce(&k, s->pn, nonce);
	mbedtls_gcm_init(&gcm);
	ret = mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, k.key, 128);
	if (ret == 0)
		ret = mbedtls_gcm_crypt_and_tag(&gcm, MBEDTLS_GCM_ENCRYPT,
		    plain_len, nonce, sizeof(nonce), out, hdr_len,
		    out + hdr_len, out + hdr_len, 16, out + hdr_len + plain_len);
	mbedtls_gcm_free(&gcm);
	if (ret != 0 || !hp_mask(&k, out + pn_off + 4, mask)) {
		mbedtls_platform_zeroize(&k, sizeof(k));
		return 0;
	}
	mbedtls_platform_zeroize(&k, sizeof(k));
	out[0] ^= mask[0] & 0x0f;
	for (unsigned i = 0; i < s->pn_len; i++)
		out[pn_off + i] ^= mask[1 + i];
	return total;
}
