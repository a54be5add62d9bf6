/*
 * TLS ClientHello parser (see tlshello.h).
 *
 * Two passes: collect_records() walks the record layer and reassembles the
 * handshake message (it may be fragmented over several records — some
 * clients do, and a post-quantum key share makes it likely), then
 * parse_hello() walks the message with a bounds-checked reader.  Every length
 * is checked against what encloses it, and each vector must end exactly
 * where its length says (RFC 8446 §4.1.2 / §4.2).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxyd/tlshello.h"

#define TLS_RECORD_HANDSHAKE	22
#define TLS_HS_CLIENT_HELLO	1
#define TLS_MAX_RECORD		16384	/* 2^14: plaintext record limit */

static const char *const errstr[TLSHELLO_ERR__COUNT] = {
	[TLSHELLO_ERR_NONE] = "no error",
	[TLSHELLO_ERR_RECORD_LENGTH] = "invalid TLS record length",
	[TLSHELLO_ERR_INTERLEAVED] = "non-handshake record inside the ClientHello",
	[TLSHELLO_ERR_NOT_CLIENT_HELLO] = "first handshake message is not a ClientHello",
	[TLSHELLO_ERR_TOO_LARGE] = "ClientHello too large",
	[TLSHELLO_ERR_TRAILING_DATA] = "bytes after the ClientHello",
	[TLSHELLO_ERR_TRUNCATED] = "ClientHello field runs past the message",
	[TLSHELLO_ERR_SESSION_ID] = "invalid legacy_session_id",
	[TLSHELLO_ERR_CIPHER_SUITES] = "invalid cipher_suites",
	[TLSHELLO_ERR_COMPRESSION] = "invalid legacy_compression_methods",
	[TLSHELLO_ERR_EXTENSION_LENGTH] = "extension length exceeds the extensions block",
	[TLSHELLO_ERR_DUPLICATE_EXTENSION] = "duplicate extension",
	[TLSHELLO_ERR_SNI] = "malformed server_name extension",
	[TLSHELLO_ERR_ALPN] = "malformed ALPN extension",
	[TLSHELLO_ERR_SUPPORTED_VERSIONS] = "malformed supported_versions extension",
	[TLSHELLO_ERR_SIGNATURE_ALGORITHMS] = "malformed signature_algorithms extension",
	[TLSHELLO_ERR_SUPPORTED_GROUPS] = "malformed supported_groups extension",
	[TLSHELLO_ERR_PSK_NOT_LAST] = "pre_shared_key is not the last extension",
	[TLSHELLO_ERR_NOMEM] = "out of memory",
};

const char *
tlshello_error_str(enum tlshello_error err)
{
	if ((unsigned)err >= TLSHELLO_ERR__COUNT || errstr[err] == NULL)
		return "unknown error";
	return errstr[err];
}

bool
tls_is_grease(uint16_t v)
{
	return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff);
}

bool
tls_valid_host_name(const uint8_t *s, size_t len)
{
	size_t label = 0;
	bool all_numeric = true;

	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = s[i];

		if (c == '.') {
			/* empty label, or label ending in '-' */
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
		if (c == '-' && label == 0)
			return false;
		if (!(c >= '0' && c <= '9'))
			all_numeric = false;
		if (++label > 63)
			return false;
	}
	/* trailing dot (label == 0) is not allowed in SNI (RFC 6066 §3) */
	if (label == 0 || s[len - 1] == '-')
		return false;
	/* "1.2.3.4": IP literals are not permitted in SNI */
	return !all_numeric;
}

void
tlshello_free(struct tls_client_hello *out)
{
	free(out->hello);
	memset(out, 0, sizeof(*out));
}

/* Bounds-checked reader over one vector. */
struct rd {
	const uint8_t	*p;
	size_t		 len, off;
};

static bool
rd_u8(struct rd *r, size_t *v)
{
	if (r->len - r->off < 1)
		return false;
	*v = r->p[r->off++];
	return true;
}

static bool
rd_u16(struct rd *r, size_t *v)
{
	if (r->len - r->off < 2)
		return false;
	*v = (size_t)r->p[r->off] << 8 | r->p[r->off + 1];
	r->off += 2;
	return true;
}

/* Take n bytes as a sub-reader. */
static bool
rd_sub(struct rd *r, size_t n, struct rd *sub)
{
	if (r->len - r->off < n)
		return false;
	sub->p = r->p + r->off;
	sub->len = n;
	sub->off = 0;
	r->off += n;
	return true;
}

static size_t
rd_left(const struct rd *r)
{
	return r->len - r->off;
}

static bool
any_grease(const uint8_t *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (tls_is_grease(tlshello_u16(list, i)))
			return true;
	return false;
}

/* A u16-length list of u16 values, at least one, exactly filling ext. */
static bool
u16_list(struct rd *ext, size_t lenlen, const uint8_t **list, size_t *n)
{
	size_t len;

	if (lenlen == 1 ? !rd_u8(ext, &len) : !rd_u16(ext, &len))
		return false;
	if (len != rd_left(ext) || len < 2 || len % 2 != 0)
		return false;
	*list = ext->p + ext->off;
	*n = len / 2;
	ext->off += len;
	return true;
}

static enum tlshello_error
parse_sni(struct rd *ext, struct tls_client_hello *ch)
{
	size_t list_len;
	bool seen_host = false;

	if (!rd_u16(ext, &list_len) || list_len != rd_left(ext) || list_len == 0)
		return TLSHELLO_ERR_SNI;
	while (rd_left(ext) > 0) {
		struct rd name;
		size_t type, nlen;

		if (!rd_u8(ext, &type) || !rd_u16(ext, &nlen) || nlen == 0 ||
		    !rd_sub(ext, nlen, &name))
			return TLSHELLO_ERR_SNI;
		if (type != 0)		/* unknown NameType: skipped */
			continue;
		if (seen_host)		/* RFC 6066: one name per type */
			return TLSHELLO_ERR_SNI;
		seen_host = true;
		ch->has_sni = true;
		if (tls_valid_host_name(name.p, nlen)) {
			memcpy(ch->sni, name.p, nlen);
			ch->sni[nlen] = '\0';
		} else
			ch->sni_rejected = true;
	}
	return TLSHELLO_ERR_NONE;
}

static enum tlshello_error
parse_alpn(struct rd *ext, struct tls_client_hello *ch)
{
	size_t list_len;

	if (!rd_u16(ext, &list_len) || list_len != rd_left(ext) || list_len < 2)
		return TLSHELLO_ERR_ALPN;
	ch->alpn = ext->p + ext->off;
	ch->alpn_len = list_len;
	while (rd_left(ext) > 0) {
		struct rd name;
		size_t n;

		if (!rd_u8(ext, &n) || n == 0 || !rd_sub(ext, n, &name))
			return TLSHELLO_ERR_ALPN;
		ch->nalpn++;
	}
	return TLSHELLO_ERR_NONE;
}

static enum tlshello_error
parse_extension(size_t type, struct rd *ext, struct tls_client_hello *ch)
{
	switch (type) {
	case TLS_EXT_SERVER_NAME:
		return parse_sni(ext, ch);
	case TLS_EXT_ALPN:
		return parse_alpn(ext, ch);
	case TLS_EXT_SUPPORTED_VERSIONS:
		if (!u16_list(ext, 1, &ch->supported_versions,
		    &ch->nsupported_versions))
			return TLSHELLO_ERR_SUPPORTED_VERSIONS;
		break;
	case TLS_EXT_SIGNATURE_ALGORITHMS:
		if (!u16_list(ext, 2, &ch->signature_algorithms,
		    &ch->nsignature_algorithms))
			return TLSHELLO_ERR_SIGNATURE_ALGORITHMS;
		break;
	case TLS_EXT_SUPPORTED_GROUPS:
		if (!u16_list(ext, 2, &ch->supported_groups,
		    &ch->nsupported_groups))
			return TLSHELLO_ERR_SUPPORTED_GROUPS;
		break;
	case TLS_EXT_SESSION_TICKET:
		ch->has_session_ticket = true;
		ch->session_ticket_len = rd_left(ext);
		break;
	case TLS_EXT_PRE_SHARED_KEY:
		ch->has_psk = true;
		break;
	case TLS_EXT_EARLY_DATA:
		ch->has_early_data = true;
		break;
	case TLS_EXT_ECH:
		ch->has_ech = true;
		break;
	default:
		break;
	}
	return TLSHELLO_ERR_NONE;
}

static enum tlshello_error
parse_hello(struct tls_client_hello *ch)
{
	struct rd msg = { ch->hello + 4, ch->hello_len - 4, 0 }, sub, exts;
	uint8_t seen[65536 / 8];
	size_t v, n;
	enum tlshello_error e;

	if (!rd_u16(&msg, &v))
		return TLSHELLO_ERR_TRUNCATED;
	ch->legacy_version = (uint16_t)v;
	if (!rd_sub(&msg, 32, &sub))
		return TLSHELLO_ERR_TRUNCATED;
	ch->random = sub.p;

	if (!rd_u8(&msg, &n) || n > 32 || !rd_sub(&msg, n, &sub))
		return TLSHELLO_ERR_SESSION_ID;
	ch->session_id = sub.p;
	ch->session_id_len = n;

	if (!rd_u16(&msg, &n) || n < 2 || n % 2 != 0 || !rd_sub(&msg, n, &sub))
		return TLSHELLO_ERR_CIPHER_SUITES;
	ch->cipher_suites = sub.p;
	ch->ncipher_suites = n / 2;

	if (!rd_u8(&msg, &n) || n < 1 || !rd_sub(&msg, n, &sub))
		return TLSHELLO_ERR_COMPRESSION;

	ch->has_grease = any_grease(ch->cipher_suites, ch->ncipher_suites);
	if (rd_left(&msg) == 0)		/* no extensions (pre-TLS 1.2 style) */
		return TLSHELLO_ERR_NONE;
	if (!rd_u16(&msg, &n) || !rd_sub(&msg, n, &exts))
		return TLSHELLO_ERR_EXTENSION_LENGTH;
	if (rd_left(&msg) != 0)
		return TLSHELLO_ERR_TRAILING_DATA;
	ch->extensions = exts.p;
	ch->extensions_len = exts.len;

	memset(seen, 0, sizeof(seen));
	while (rd_left(&exts) > 0) {
		struct rd ext;
		size_t type;

		if (!rd_u16(&exts, &type) || !rd_u16(&exts, &n) ||
		    !rd_sub(&exts, n, &ext))
			return TLSHELLO_ERR_EXTENSION_LENGTH;
		if (seen[type / 8] & (1u << (type % 8)))
			return TLSHELLO_ERR_DUPLICATE_EXTENSION;
		seen[type / 8] |= (uint8_t)(1u << (type % 8));
		ch->nextensions++;
		if (tls_is_grease((uint16_t)type))
			ch->has_grease = true;
		/* RFC 8446 §4.2.11: pre_shared_key MUST be the last one */
		if (ch->has_psk)
			return TLSHELLO_ERR_PSK_NOT_LAST;
		if ((e = parse_extension(type, &ext, ch)) != TLSHELLO_ERR_NONE)
			return e;
	}
	if (any_grease(ch->supported_versions, ch->nsupported_versions) ||
	    any_grease(ch->supported_groups, ch->nsupported_groups) ||
	    any_grease(ch->signature_algorithms, ch->nsignature_algorithms))
		ch->has_grease = true;
	return TLSHELLO_ERR_NONE;
}

/*
 * Walk the records until the whole ClientHello is there (first pass, no
 * copying, so that NEED_MORE costs nothing), then reassemble the handshake
 * message into ch->hello (second pass).
 */
static enum tlshello_result
collect_records(const uint8_t *buf, size_t len, struct tls_client_hello *ch)
{
	uint8_t hdr[4];
	size_t off = 0, want = 0, got = 0, nrec = 0;

	for (;;) {
		size_t rlen, take;

		if (len - off < 3)
			return TLSHELLO_NEED_MORE;
		if (buf[off] != TLS_RECORD_HANDSHAKE || buf[off + 1] != 3 ||
		    buf[off + 2] > 4) {
			if (off == 0)
				return TLSHELLO_NOT_TLS;
			ch->error = TLSHELLO_ERR_INTERLEAVED;
			return TLSHELLO_MALFORMED;
		}
		if (off == 0)
			ch->record_version = (uint16_t)(buf[1] << 8 | buf[2]);
		if (len - off < 5)
			return TLSHELLO_NEED_MORE;
		rlen = (size_t)buf[off + 3] << 8 | buf[off + 4];
		if (rlen == 0 || rlen > TLS_MAX_RECORD) {
			ch->error = TLSHELLO_ERR_RECORD_LENGTH;
			return TLSHELLO_MALFORMED;
		}
		/* refuse a non-ClientHello before its record is complete */
		if (got == 0 && len - off > 5 &&
		    buf[off + 5] != TLS_HS_CLIENT_HELLO) {
			ch->error = TLSHELLO_ERR_NOT_CLIENT_HELLO;
			return TLSHELLO_MALFORMED;
		}
		if (len - off - 5 < rlen)
			return TLSHELLO_NEED_MORE;
		take = rlen;
		for (size_t i = 0; got + i < 4 && i < take; i++)
			hdr[got + i] = buf[off + 5 + i];
		if (want != 0 && take > want - got) {
			ch->error = TLSHELLO_ERR_TRAILING_DATA;
			return TLSHELLO_MALFORMED;
		}
		got += take;
		off += 5 + rlen;
		nrec++;
		if (want == 0 && got >= 4) {
			want = 4 + ((size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 |
			    hdr[3]);
			if (want > TLSHELLO_MAX_HANDSHAKE) {
				ch->error = TLSHELLO_ERR_TOO_LARGE;
				return TLSHELLO_MALFORMED;
			}
			if (got > want) {
				ch->error = TLSHELLO_ERR_TRAILING_DATA;
				return TLSHELLO_MALFORMED;
			}
		}
		if (want != 0 && got == want)
			break;
	}

	if ((ch->hello = malloc(want)) == NULL) {
		ch->error = TLSHELLO_ERR_NOMEM;
		return TLSHELLO_MALFORMED;
	}
	ch->hello_len = want;
	ch->stream_len = off;
	ch->nrecords = (unsigned)nrec;
	for (size_t o = 0, g = 0; o < off; ) {
		size_t rlen = (size_t)buf[o + 3] << 8 | buf[o + 4];

		memcpy(ch->hello + g, buf + o + 5, rlen);
		g += rlen;
		o += 5 + rlen;
	}
	return TLSHELLO_OK;
}

enum tlshello_result
tlshello_parse(const uint8_t *buf, size_t len, struct tls_client_hello *out)
{
	enum tlshello_result r;

	memset(out, 0, sizeof(*out));
	r = collect_records(buf, len, out);
	if (r != TLSHELLO_OK) {
		/* keep nothing half-built; error stays for MALFORMED */
		enum tlshello_error e = out->error;
		uint16_t rv = out->record_version;

		tlshello_free(out);
		out->error = r == TLSHELLO_MALFORMED ? e : TLSHELLO_ERR_NONE;
		out->record_version = rv;
		return r;
	}
	if ((out->error = parse_hello(out)) != TLSHELLO_ERR_NONE) {
		enum tlshello_error e = out->error;

		tlshello_free(out);
		out->error = e;
		return TLSHELLO_MALFORMED;
	}
	return TLSHELLO_OK;
}

enum tlshello_result
tlshello_parse_message(const uint8_t *msg, size_t len,
    struct tls_client_hello *out)
{
	memset(out, 0, sizeof(*out));
	if (len < 4)
		return TLSHELLO_NEED_MORE;
	if (msg[0] != TLS_HS_CLIENT_HELLO) {
		out->error = TLSHELLO_ERR_NOT_CLIENT_HELLO;
		return TLSHELLO_MALFORMED;
	}
	if (4 + ((size_t)msg[1] << 16 | (size_t)msg[2] << 8 | msg[3]) != len) {
		out->error = len > TLSHELLO_MAX_HANDSHAKE ?
		    TLSHELLO_ERR_TOO_LARGE : TLSHELLO_ERR_TRAILING_DATA;
		return TLSHELLO_MALFORMED;
	}
	if (len > TLSHELLO_MAX_HANDSHAKE) {
		out->error = TLSHELLO_ERR_TOO_LARGE;
		return TLSHELLO_MALFORMED;
	}
	if ((out->hello = malloc(len)) == NULL) {
		out->error = TLSHELLO_ERR_NOMEM;
		return TLSHELLO_MALFORMED;
	}
	memcpy(out->hello, msg, len);
	out->hello_len = len;
	out->stream_len = len;
	if ((out->error = parse_hello(out)) != TLSHELLO_ERR_NONE) {
		enum tlshello_error e = out->error;

		tlshello_free(out);
		out->error = e;
		return TLSHELLO_MALFORMED;
	}
	return TLSHELLO_OK;
}

bool
tlshello_alpn_at(const struct tls_client_hello *ch, size_t i,
    const uint8_t **name, size_t *len)
{
	size_t off = 0;

	while (off < ch->alpn_len) {
		size_t n = ch->alpn[off];

		if (i-- == 0) {
			*name = ch->alpn + off + 1;
			*len = n;
			return true;
		}
		off += 1 + n;
	}
	return false;
}

bool
tlshello_offers_alpn(const struct tls_client_hello *ch, const char *proto)
{
	size_t plen = strlen(proto), n;
	const uint8_t *name;

	for (size_t i = 0; tlshello_alpn_at(ch, i, &name, &n); i++)
		if (n == plen && memcmp(name, proto, n) == 0)
			return true;
	return false;
}
