/*
 * Protocol detection (see detect.h).
 *
 * Each check answers MATCH, NO or MORE on a prefix and never looks past
 * what it needs, so garbage is refused within a few bytes: the first byte
 * alone rules out most binary protocols (neither 0x16 nor an upper-case
 * method letter nor CR/LF).
 */
#include <string.h>

#include "proxyd/detect.h"

enum verdict {
	V_NO,
	V_MORE,
	V_MATCH,
};

/* RFC 9110, RFC 5789 (PATCH), WebDAV and friends (IANA method registry). */
static const char *const methods[] = {
	"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE",
	"PATCH", "QUERY",
	"ACL", "BASELINE-CONTROL", "BIND", "CHECKIN", "CHECKOUT", "COPY",
	"LABEL", "LINK", "LOCK", "MERGE", "MKACTIVITY", "MKCALENDAR", "MKCOL",
	"MKREDIRECTREF", "MKWORKSPACE", "MOVE", "ORDERPATCH", "PROPFIND",
	"PROPPATCH", "REBIND", "REPORT", "SEARCH", "UNBIND", "UNCHECKOUT",
	"UNLINK", "UNLOCK", "UPDATE", "UPDATEREDIRECTREF", "VERSION-CONTROL",
	"PURGE", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE", "M-SEARCH",
};

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* Match buf against a fixed string, prefix-aware. */
static enum verdict
match_fixed(const uint8_t *buf, size_t len, const char *s, size_t slen)
{
	size_t n = len < slen ? len : slen;

	if (memcmp(buf, s, n) != 0)
		return V_NO;
	return len < slen ? V_MORE : V_MATCH;
}

static enum verdict
tls_record(const uint8_t *buf, size_t len)
{
	size_t rlen;

	if (buf[0] != 0x16)
		return V_NO;
	if (len < 2)
		return V_MORE;
	if (buf[1] != 0x03)
		return V_NO;
	if (len < 3)
		return V_MORE;
	if (buf[2] > 0x04)
		return V_NO;
	if (len < 5)
		return V_MORE;
	rlen = (size_t)buf[3] << 8 | buf[4];
	if (rlen == 0 || rlen > 16384)
		return V_NO;
	if (len < 6)
		return V_MORE;
	return buf[5] == 0x01 ? V_MATCH : V_NO;
}

/* method SP request-target SP HTTP/1.x (CR|LF) */
static enum verdict
http1_request(const uint8_t *buf, size_t len)
{
	enum verdict best = V_NO;
	size_t i = 0, mlen = 0, t;

	/* RFC 9112 §2.2: empty lines before the request line are tolerated */
	while (i < len && i < 4 && (buf[i] == '\r' || buf[i] == '\n'))
		i++;
	if (i == len)
		return V_MORE;
	buf += i;
	len -= i;

	for (size_t k = 0; k < sizeof(methods) / sizeof(methods[0]); k++) {
		size_t ml = strlen(methods[k]);
		enum verdict v = match_fixed(buf, len, methods[k], ml);

		if (v == V_MORE)
			best = V_MORE;
		else if (v == V_MATCH) {
			if (len == ml)
				best = V_MORE;
			else if (buf[ml] == ' ') {
				mlen = ml;
				break;
			}
		}
	}
	if (mlen == 0)
		return best;

	/* request-target: visible ASCII, at least one byte */
	t = mlen + 1;
	for (i = t; i < len && buf[i] != ' '; i++) {
		if (buf[i] <= 0x20 || buf[i] >= 0x7f)
			return V_NO;
		if (i >= DETECT_MAX_REQUEST_LINE)
			return V_MATCH;
	}
	if (i == len)
		return V_MORE;
	if (i == t)
		return V_NO;
	/* version */
	i++;
	switch (match_fixed(buf + i, len - i, "HTTP/1.", 7)) {
	case V_NO:
		return V_NO;
	case V_MORE:
		return V_MORE;
	case V_MATCH:
		break;
	}
	i += 7;
	if (i == len)
		return V_MORE;
	if (buf[i] < '0' || buf[i] > '9')
		return V_NO;
	if (++i == len)
		return V_MORE;
	return buf[i] == '\r' || buf[i] == '\n' ? V_MATCH : V_NO;
}

enum detect_proto
detect_tcp(const uint8_t *buf, size_t len)
{
	enum verdict v, h2;

	if (len == 0)
		return DETECT_NEED_MORE;
	if ((v = tls_record(buf, len)) == V_MATCH)
		return DETECT_TLS;
	if (v == V_MORE)
		return DETECT_NEED_MORE;
	h2 = match_fixed(buf, len, h2_preface, sizeof(h2_preface) - 1);
	if (h2 == V_MATCH)
		return DETECT_HTTP2;
	v = http1_request(buf, len);
	if (v == V_MATCH)
		return DETECT_HTTP1;
	if (v == V_MORE || h2 == V_MORE)
		return DETECT_NEED_MORE;
	return DETECT_RAW;
}

enum detect_proto
detect_udp(const uint8_t *buf, size_t len, uint16_t dst_port)
{
	unsigned opcode;
	size_t qd, rrs;

	if (dst_port != 53 || len < 12)
		return DETECT_RAW;
	opcode = (buf[2] >> 3) & 0xf;
	/* QUERY, STATUS, NOTIFY, UPDATE */
	if (opcode != 0 && opcode != 2 && opcode != 4 && opcode != 5)
		return DETECT_RAW;
	qd = (size_t)buf[4] << 8 | buf[5];
	rrs = ((size_t)buf[6] << 8 | buf[7]) + ((size_t)buf[8] << 8 | buf[9]) +
	    ((size_t)buf[10] << 8 | buf[11]);
	/* a question takes at least 5 bytes, a record 11 */
	if (qd * 5 + rrs * 11 > len - 12)
		return DETECT_RAW;
	return DETECT_DNS;
}

const char *
detect_proto_str(enum detect_proto p)
{
	switch (p) {
	case DETECT_NEED_MORE: return "need-more";
	case DETECT_TLS: return "tls";
	case DETECT_HTTP1: return "http1";
	case DETECT_HTTP2: return "http2";
	case DETECT_DNS: return "dns";
	case DETECT_RAW: return "raw";
	}
	return "unknown";
}
