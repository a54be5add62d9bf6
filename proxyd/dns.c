/*
 * DNS message parser (see dns.h).
 *
 * Call chain: dns_parse -> header -> questions (dns_read_name) -> each RR
 * (read_rr: name, fixed part, rdlength checked against the message, then
 * decode_rdata for known types, which must consume rdata exactly).  Work is
 * bounded by the message length whatever the counts claim, since every
 * question or RR consumes at least 5 or 11 bytes.
 *
 * Strings are written into an arena of blocks that never move, so the
 * pointers handed out stay valid until dns_msg_free().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/dns.h"

struct arena_block {
	struct arena_block *next;
	size_t	 len, cap;
	char	 data[];
};

#define ARENA_BLOCK	4096

static const char *const errstr[DNS_ERR__COUNT] = {
	[DNS_OK] = "no error",
	[DNS_ERR_SHORT_HEADER] = "message shorter than the DNS header",
	[DNS_ERR_NAME_TRUNCATED] = "name runs past the end of the message",
	[DNS_ERR_LABEL_TYPE] = "unsupported label type",
	[DNS_ERR_NAME_TOO_LONG] = "name longer than 255 bytes",
	[DNS_ERR_POINTER_NOT_BACKWARD] = "compression pointer does not point backwards",
	[DNS_ERR_TOO_MANY_POINTERS] = "too many compression pointers in a name",
	[DNS_ERR_QUESTION_TRUNCATED] = "question count exceeds the data",
	[DNS_ERR_RR_TRUNCATED] = "record count exceeds the data",
	[DNS_ERR_RDLENGTH] = "rdlength runs past the end of the message",
	[DNS_ERR_RDATA] = "rdata does not match its type",
	[DNS_ERR_BAD_OPT] = "invalid EDNS OPT record",
	[DNS_ERR_TRAILING_DATA] = "bytes after the last record",
	[DNS_ERR_TCP_LENGTH] = "DNS over TCP length shorter than a header",
	[DNS_ERR_NOMEM] = "out of memory",
};

const char *
dns_error_str(enum dns_error err)
{
	if ((unsigned)err >= DNS_ERR__COUNT || errstr[err] == NULL)
		return "unknown error";
	return errstr[err];
}

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

/* Copy n bytes + NUL into the arena. */
static const char *
arena_put(struct dns_msg *m, const char *s, size_t n)
{
	struct arena_block *b = (struct arena_block *)m->arena;
	char *dst;

	if (b == NULL || b->cap - b->len < n + 1) {
		size_t cap = n + 1 > ARENA_BLOCK ? n + 1 : ARENA_BLOCK;
		struct arena_block *nb = malloc(sizeof(*nb) + cap);

		if (nb == NULL)
			return NULL;
		nb->next = b;
		nb->len = 0;
		nb->cap = cap;
		m->arena = (char *)nb;
		b = nb;
	}
	dst = b->data + b->len;
	memcpy(dst, s, n);
	dst[n] = '\0';
	b->len += n + 1;
	return dst;
}

void
dns_msg_free(struct dns_msg *m)
{
	struct arena_block *b = (struct arena_block *)m->arena;

	while (b != NULL) {
		struct arena_block *next = b->next;

		free(b);
		b = next;
	}
	free(m->questions);
	free(m->rrs);
	memset(m, 0, sizeof(*m));
}

/* One byte of a label in presentation form; returns chars written. */
static size_t
escape_byte(uint8_t c, char *out, bool in_quotes)
{
	if (c < 0x21 || c > 0x7e) {
		if (c == ' ' && in_quotes) {
			out[0] = ' ';
			return 1;
		}
		out[0] = '\\';
		out[1] = (char)('0' + c / 100);
		out[2] = (char)('0' + c / 10 % 10);
		out[3] = (char)('0' + c % 10);
		return 4;
	}
	if (c == '\\' || c == '"' || (!in_quotes && (c == '.' || c == ';' ||
	    c == '(' || c == ')' || c == '@' || c == '$'))) {
		out[0] = '\\';
		out[1] = (char)c;
		return 2;
	}
	out[0] = (char)c;
	return 1;
}

enum dns_error
dns_read_name(const uint8_t *msg, size_t len, size_t *pos, char *out)
{
	size_t p = *pos, wire = 0, o = 0, end = 0, jumps = 0;
	size_t limit = p;	/* pointers must go below this */
	bool jumped = false;

	for (;;) {
		uint8_t l;

		if (p >= len)
			return DNS_ERR_NAME_TRUNCATED;
		l = msg[p];
		if ((l & 0xc0) == 0xc0) {
			size_t target;

			if (p + 1 >= len)
				return DNS_ERR_NAME_TRUNCATED;
			target = (size_t)(l & 0x3f) << 8 | msg[p + 1];
			/*
			 * Each jump must land strictly before the previous
			 * one (or the name's start): targets decrease, so no
			 * loop is possible.  Encoders only point at names
			 * written earlier, which satisfies this.
			 */
			if (target >= limit)
				return DNS_ERR_POINTER_NOT_BACKWARD;
			if (++jumps > DNS_MAX_POINTERS)
				return DNS_ERR_TOO_MANY_POINTERS;
			if (!jumped)
				end = p + 2;
			jumped = true;
			limit = target;
			p = target;
			continue;
		}
		if (l & 0xc0)
			return DNS_ERR_LABEL_TYPE;
		wire += 1 + l;
		if (wire > DNS_MAX_NAME_WIRE)
			return DNS_ERR_NAME_TOO_LONG;
		if (l == 0) {
			if (!jumped)
				end = p + 1;
			break;
		}
		if (p + 1 + l > len)
			return DNS_ERR_NAME_TRUNCATED;
		if (o > 0)
			out[o++] = '.';
		for (size_t i = 0; i < l; i++)
			o += escape_byte(msg[p + 1 + i], out + o, false);
		p += 1 + l;
	}
	if (o == 0)
		out[o++] = '.';
	out[o] = '\0';
	*pos = end;
	return DNS_OK;
}

/* A name in rdata: read it and store it in the arena. */
static enum dns_error
rdata_name(struct dns_msg *m, const uint8_t *msg, size_t len, size_t *pos,
    size_t rd_end, const char **out)
{
	char buf[DNS_NAME_TEXT_MAX];
	enum dns_error e;

	/* names inside rdata may not reach past it */
	if ((e = dns_read_name(msg, rd_end, pos, buf)) != DNS_OK)
		return e == DNS_ERR_NAME_TRUNCATED ? DNS_ERR_RDATA : e;
	(void)len;
	if ((*out = arena_put(m, buf, strlen(buf))) == NULL)
		return DNS_ERR_NOMEM;
	return DNS_OK;
}

static enum dns_error
decode_txt(struct dns_msg *m, struct dns_rr *rr)
{
	size_t cap = (size_t)rr->rdlength * 4 + 1, o = 0;
	char *buf;

	if (rr->rdlength == 0)
		return DNS_ERR_RDATA;	/* at least one character-string */
	if ((buf = malloc(cap + 3 * (size_t)rr->rdlength)) == NULL)
		return DNS_ERR_NOMEM;
	for (size_t p = 0; p < rr->rdlength; ) {
		size_t n = rr->rdata[p++];

		if (p + n > rr->rdlength) {
			free(buf);
			return DNS_ERR_RDATA;
		}
		if (o > 0)
			buf[o++] = ' ';
		buf[o++] = '"';
		for (size_t i = 0; i < n; i++)
			o += escape_byte(rr->rdata[p + i], buf + o, true);
		buf[o++] = '"';
		p += n;
		rr->u.txt.nstrings++;
	}
	rr->u.txt.text = arena_put(m, buf, o);
	free(buf);
	return rr->u.txt.text ? DNS_OK : DNS_ERR_NOMEM;
}

static enum dns_error
decode_rdata(struct dns_msg *m, const uint8_t *msg, size_t len, size_t rd,
    struct dns_rr *rr)
{
	size_t end = rd + rr->rdlength, p = rd;
	enum dns_error e;

	switch (rr->type) {
	case DNS_T_A:
		if (rr->rdlength != 4)
			return DNS_ERR_RDATA;
		memcpy(rr->u.a, rr->rdata, 4);
		p = end;
		break;
	case DNS_T_AAAA:
		if (rr->rdlength != 16)
			return DNS_ERR_RDATA;
		memcpy(rr->u.aaaa, rr->rdata, 16);
		p = end;
		break;
	case DNS_T_CNAME:
	case DNS_T_NS:
	case DNS_T_PTR:
		if ((e = rdata_name(m, msg, len, &p, end, &rr->u.target)) != DNS_OK)
			return e;
		break;
	case DNS_T_MX:
		if (rr->rdlength < 3)
			return DNS_ERR_RDATA;
		rr->u.mx.preference = get16(msg + p);
		p += 2;
		if ((e = rdata_name(m, msg, len, &p, end, &rr->u.mx.exchange)) !=
		    DNS_OK)
			return e;
		break;
	case DNS_T_SRV:
		if (rr->rdlength < 7)
			return DNS_ERR_RDATA;
		rr->u.srv.priority = get16(msg + p);
		rr->u.srv.weight = get16(msg + p + 2);
		rr->u.srv.port = get16(msg + p + 4);
		p += 6;
		if ((e = rdata_name(m, msg, len, &p, end, &rr->u.srv.target)) !=
		    DNS_OK)
			return e;
		break;
	case DNS_T_SOA:
		if ((e = rdata_name(m, msg, len, &p, end, &rr->u.soa.mname)) !=
		    DNS_OK ||
		    (e = rdata_name(m, msg, len, &p, end, &rr->u.soa.rname)) !=
		    DNS_OK)
			return e;
		if (end - p != 20)
			return DNS_ERR_RDATA;
		rr->u.soa.serial = get32(msg + p);
		rr->u.soa.refresh = get32(msg + p + 4);
		rr->u.soa.retry = get32(msg + p + 8);
		rr->u.soa.expire = get32(msg + p + 12);
		rr->u.soa.minimum = get32(msg + p + 16);
		p = end;
		break;
	case DNS_T_TXT:
		if ((e = decode_txt(m, rr)) != DNS_OK)
			return e;
		p = end;
		break;
	default:
		return DNS_OK;	/* raw */
	}
	if (p != end)		/* the name did not fill rdata exactly */
		return DNS_ERR_RDATA;
	rr->decoded = true;
	return DNS_OK;
}

static enum dns_error
read_rr(struct dns_msg *m, const uint8_t *msg, size_t len, size_t *pos,
    enum dns_section sec, struct dns_rr *rr, bool store)
{
	char name[DNS_NAME_TEXT_MAX];
	enum dns_error e;
	size_t p = *pos;

	memset(rr, 0, sizeof(*rr));
	if ((e = dns_read_name(msg, len, &p, name)) != DNS_OK)
		return e;
	if (len - p < 10)
		return DNS_ERR_RR_TRUNCATED;
	rr->section = sec;
	rr->type = get16(msg + p);
	rr->rclass = get16(msg + p + 2);
	rr->ttl = get32(msg + p + 4);
	rr->rdlength = get16(msg + p + 8);
	p += 10;
	if (len - p < rr->rdlength)
		return DNS_ERR_RDLENGTH;
	rr->rdata = msg + p;

	if (rr->type == DNS_T_OPT) {
		/* one, in the additional section, owned by the root */
		if (sec != DNS_SEC_ADDITIONAL || m->has_edns ||
		    strcmp(name, ".") != 0)
			return DNS_ERR_BAD_OPT;
		m->has_edns = true;
		m->edns_udp_size = rr->rclass;
		m->edns_do = (rr->ttl & 0x8000) != 0;
		m->rcode = (uint16_t)((rr->ttl >> 24) << 4 | (m->rcode & 0xf));
	}
	/* validate rdata even when not stored: a lie anywhere is a lie */
	if ((e = decode_rdata(m, msg, len, p, rr)) != DNS_OK)
		return e;
	if (store && (rr->name = arena_put(m, name, strlen(name))) == NULL)
		return DNS_ERR_NOMEM;
	*pos = p + rr->rdlength;
	return DNS_OK;
}

enum dns_error
dns_parse(const uint8_t *msg, size_t len, struct dns_msg *m)
{
	size_t pos = DNS_HEADER_LEN, total;
	enum dns_error e;
	uint16_t counts[3];

	memset(m, 0, sizeof(*m));
	if (len < DNS_HEADER_LEN)
		return DNS_ERR_SHORT_HEADER;
	m->id = get16(msg);
	m->flags = get16(msg + 2);
	m->qr = m->flags & 0x8000;
	m->opcode = (m->flags >> 11) & 0xf;
	m->aa = m->flags & 0x0400;
	m->tc = m->flags & 0x0200;
	m->rd = m->flags & 0x0100;
	m->ra = m->flags & 0x0080;
	m->ad = m->flags & 0x0020;
	m->cd = m->flags & 0x0010;
	m->rcode = m->flags & 0xf;
	m->qdcount = get16(msg + 4);
	m->ancount = get16(msg + 6);
	m->nscount = get16(msg + 8);
	m->arcount = get16(msg + 10);

	if (m->qdcount > 0) {
		size_t n = m->qdcount < DNS_MAX_STORED_QUESTIONS ? m->qdcount :
		    DNS_MAX_STORED_QUESTIONS;

		if ((m->questions = calloc(n, sizeof(*m->questions))) == NULL)
			return DNS_ERR_NOMEM;
	}
	for (size_t i = 0; i < m->qdcount; i++) {
		char name[DNS_NAME_TEXT_MAX];

		if (m->tc && pos == len) {
			m->incomplete = true;
			return DNS_OK;
		}
		if ((e = dns_read_name(msg, len, &pos, name)) != DNS_OK)
			return e == DNS_ERR_NAME_TRUNCATED && pos == len ?
			    DNS_ERR_QUESTION_TRUNCATED : e;
		if (len - pos < 4)
			return DNS_ERR_QUESTION_TRUNCATED;
		if (i < DNS_MAX_STORED_QUESTIONS) {
			struct dns_question *q = &m->questions[m->nquestions++];

			if ((q->name = arena_put(m, name, strlen(name))) == NULL)
				return DNS_ERR_NOMEM;
			q->type = get16(msg + pos);
			q->qclass = get16(msg + pos + 2);
		} else
			m->store_truncated = true;
		pos += 4;
	}

	counts[0] = m->ancount;
	counts[1] = m->nscount;
	counts[2] = m->arcount;
	total = (size_t)m->ancount + m->nscount + m->arcount;
	if (total > 0) {
		size_t n = total < DNS_MAX_STORED_RRS ? total : DNS_MAX_STORED_RRS;

		if ((m->rrs = calloc(n, sizeof(*m->rrs))) == NULL)
			return DNS_ERR_NOMEM;
	}
	for (int s = 0; s < 3; s++) {
		for (size_t i = 0; i < counts[s]; i++) {
			struct dns_rr scratch, *rr;
			bool store = m->nrrs < DNS_MAX_STORED_RRS;

			if (pos == len) {
				if (m->tc) {
					m->incomplete = true;
					return DNS_OK;
				}
				return DNS_ERR_RR_TRUNCATED;
			}
			rr = store ? &m->rrs[m->nrrs] : &scratch;
			if ((e = read_rr(m, msg, len, &pos, (enum dns_section)s,
			    rr, store)) != DNS_OK)
				return e;
			if (store)
				m->nrrs++;
			else
				m->store_truncated = true;
		}
	}
	if (pos != len)
		return DNS_ERR_TRAILING_DATA;
	return DNS_OK;
}

int
dns_tcp_frame(const uint8_t *buf, size_t len, const uint8_t **msg,
    size_t *msg_len, size_t *consumed, enum dns_error *err)
{
	size_t n;

	if (len < 2)
		return 0;
	n = get16(buf);
	if (n < DNS_HEADER_LEN) {
		*err = DNS_ERR_TCP_LENGTH;
		return -1;
	}
	if (len - 2 < n)
		return 0;
	*msg = buf + 2;
	*msg_len = n;
	*consumed = 2 + n;
	return 1;
}

const char *
dns_type_str(uint16_t type)
{
	switch (type) {
	case DNS_T_A: return "A";
	case DNS_T_NS: return "NS";
	case DNS_T_CNAME: return "CNAME";
	case DNS_T_SOA: return "SOA";
	case DNS_T_PTR: return "PTR";
	case DNS_T_MX: return "MX";
	case DNS_T_TXT: return "TXT";
	case DNS_T_AAAA: return "AAAA";
	case DNS_T_SRV: return "SRV";
	case DNS_T_OPT: return "OPT";
	case DNS_T_HTTPS: return "HTTPS";
	case 64: return "SVCB";
	case 255: return "ANY";
	default: return NULL;
	}
}

const char *
dns_rcode_str(uint16_t rcode)
{
	static const char *const names[] = {
		"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP",
		"REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH",
		"NOTZONE",
	};

	if (rcode < sizeof(names) / sizeof(names[0]))
		return names[rcode];
	if (rcode == 16)
		return "BADVERS";
	return NULL;
}

char *
dns_rr_format(const struct dns_rr *rr, char *out, size_t outsz)
{
	size_t o;

	if (outsz == 0)
		return out;
	out[0] = '\0';
	if (!rr->decoded) {
		o = (size_t)snprintf(out, outsz, "\\# %u", rr->rdlength);
		if (rr->rdlength > 0 && o + 1 < outsz)
			out[o++] = ' ';
		for (size_t i = 0; i < rr->rdlength && o + 3 <= outsz; i++)
			o += (size_t)snprintf(out + o, outsz - o, "%02x",
			    rr->rdata[i]);
		if (o < outsz)
			out[o] = '\0';
		return out;
	}
	switch (rr->type) {
	case DNS_T_A:
		snprintf(out, outsz, "%u.%u.%u.%u", rr->u.a[0], rr->u.a[1],
		    rr->u.a[2], rr->u.a[3]);
		break;
	case DNS_T_AAAA: {
		/* RFC 5952: lowercase, longest run of zero groups as "::" */
		uint16_t g[8];
		int best = -1, bestlen = 1;

		for (int i = 0; i < 8; i++)
			g[i] = (uint16_t)(rr->u.aaaa[2 * i] << 8 |
			    rr->u.aaaa[2 * i + 1]);
		for (int i = 0; i < 8; i++) {
			int j = i;

			while (j < 8 && g[j] == 0)
				j++;
			if (j - i > bestlen) {
				best = i;
				bestlen = j - i;
			}
		}
		o = 0;
		for (int i = 0; i < 8 && o < outsz; i++) {
			if (i == best) {
				o += (size_t)snprintf(out + o, outsz - o, "::");
				i += bestlen - 1;
				continue;
			}
			o += (size_t)snprintf(out + o, outsz - o, "%s%x",
			    (i > 0 && i != best + bestlen) ? ":" : "", g[i]);
		}
		break;
	}
	case DNS_T_CNAME:
	case DNS_T_NS:
	case DNS_T_PTR:
		snprintf(out, outsz, "%s", rr->u.target);
		break;
	case DNS_T_MX:
		snprintf(out, outsz, "%u %s", rr->u.mx.preference,
		    rr->u.mx.exchange);
		break;
	case DNS_T_SRV:
		snprintf(out, outsz, "%u %u %u %s", rr->u.srv.priority,
		    rr->u.srv.weight, rr->u.srv.port, rr->u.srv.target);
		break;
	case DNS_T_SOA:
		snprintf(out, outsz, "%s %s %u %u %u %u %u", rr->u.soa.mname,
		    rr->u.soa.rname, rr->u.soa.serial, rr->u.soa.refresh,
		    rr->u.soa.retry, rr->u.soa.expire, rr->u.soa.minimum);
		break;
	case DNS_T_TXT:
		snprintf(out, outsz, "%s", rr->u.txt.text);
		break;
	default:
		break;
	}
	return out;
}
