/*
 * The stub resolver's wire side (resolver.h): host names checked, address
 * literals parsed, the A/AAAA query built, and an answer datagram matched
 * to our question and parsed (CNAME chains, TTLs, negative answers).  Pure
 * functions over bytes: the untrusted-input half, fuzzed by fuzz_resolver.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "proxyd/dns.h"
#include "proxyd/resolver.h"
#include "proxyd/resolver_int.h"

/* --- names, literals, queries -------------------------------------------------- */

static bool
ldh_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '_';
}

const char *
resolver_check_name(const char *name, char *out)
{
	size_t len = strnlen(name, RESOLVER_NAME_MAX + 3), label = 0;
	const char *why = NULL;
	bool digits = true;

	if (len > 0 && name[len - 1] == '.')
		len--;		/* absolute form: one final dot */
	if (len == 0)
		why = "empty name";
	else if (len > RESOLVER_NAME_MAX)
		why = "name longer than 253 characters";
	for (size_t i = 0; i < len && why == NULL; i++) {
		char c = name[i];

		if (c == '.') {
			if (label == 0)
				why = "empty label";
			label = 0;
			digits = true;
			out[i] = '.';
			continue;
		}
		if (!ldh_char(c))
			why = "only letters, digits, '-' and '_' are allowed";
		else if (++label > DNS_MAX_LABEL)
			why = "label longer than 63 characters";
		if (c < '0' || c > '9')
			digits = false;
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	if (why == NULL && label == 0)
		why = "empty label";
	if (why == NULL && digits)
		why = "all-digit last label (not an IPv4 address either)";
	out[why == NULL ? len : 0] = '\0';
	return why;
}

bool
resolver_parse_literal(const char *s, struct endpoint *a)
{
	char buf[INET6_ADDRSTRLEN + 1];
	size_t len = strnlen(s, sizeof(buf) + 2);

	memset(a, 0, sizeof(*a));
	if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
		if (len - 2 >= sizeof(buf))
			return false;
		memcpy(buf, s + 1, len - 2);
		buf[len - 2] = '\0';
		a->family = AF_INET6;
		return inet_pton(AF_INET6, buf, a->addr) == 1;
	}
	if (len >= sizeof(buf))
		return false;
	if (strchr(s, ':') != NULL) {
		a->family = AF_INET6;
		return inet_pton(AF_INET6, s, a->addr) == 1;
	}
	a->family = AF_INET;
	return inet_pton(AF_INET, s, a->addr) == 1;
}

size_t
resolver_build_query(uint8_t *buf, size_t bufsz, uint16_t id,
    const char *name, uint16_t qtype)
{
	size_t n = strlen(name), p = DNS_HEADER_LEN, label;

	if (n == 0 || n > RESOLVER_NAME_MAX ||
	    bufsz < DNS_HEADER_LEN + n + 2 + 4 + 11)
		return 0;
	memset(buf, 0, DNS_HEADER_LEN);
	resolver_put16(buf, id);
	resolver_put16(buf + 2, 0x0100);		/* RD */
	resolver_put16(buf + 4, 1);		/* QDCOUNT */
	resolver_put16(buf + 10, 1);		/* ARCOUNT: the OPT record */
	while (*name != '\0') {
		const char *dot = strchr(name, '.');

		label = dot != NULL ? (size_t)(dot - name) : strlen(name);
		if (label == 0 || label > DNS_MAX_LABEL)
			return 0;
		buf[p++] = (uint8_t)label;
		memcpy(buf + p, name, label);
		p += label;
		name += label;
		if (*name == '.' && *++name == '\0')
			return 0;	/* a final empty label */
	}
	buf[p++] = 0;
	resolver_put16(buf + p, qtype);
	resolver_put16(buf + p + 2, CLASS_IN);
	p += 4;
	/* OPT: root owner, type 41, class = UDP size, TTL 0, no rdata */
	buf[p++] = 0;
	resolver_put16(buf + p, DNS_T_OPT);
	resolver_put16(buf + p + 2, EDNS_UDP_SIZE);
	memset(buf + p + 4, 0, 6);
	return p + 10;
}

/* --- answers ----------------------------------------------------------------- */

static uint32_t
rr_ttl(uint32_t ttl)
{
	return ttl > 0x7fffffff ? 0 : ttl;	/* RFC 2181 §8 */
}

/* Negative caching TTL: the SOA in authority (RFC 2308 §5), else 0. */
static uint32_t
negative_ttl(const struct dns_msg *m)
{
	for (size_t i = 0; i < m->nrrs; i++) {
		const struct dns_rr *rr = &m->rrs[i];

		if (rr->section == DNS_SEC_AUTHORITY && rr->type == DNS_T_SOA &&
		    rr->decoded) {
			uint32_t t = rr_ttl(rr->ttl);
			uint32_t min = rr_ttl(rr->u.soa.minimum);

			return t < min ? t : min;
		}
	}
	return 0;
}

enum resolver_answer_kind
resolver_parse_answer(const uint8_t *msg, size_t len, uint16_t id,
    const char *name, uint16_t qtype, struct resolver_answer *out)
{
	struct dns_msg m;
	const struct dns_question *qn;
	const char *cur = name;
	enum dns_error e;
	uint32_t ttl = UINT32_MAX;

	memset(out, 0, sizeof(*out));
	out->kind = RESOLVER_ANS_IGNORE;
	if (len < DNS_HEADER_LEN) {
		out->why = "shorter than a DNS header";
		return out->kind;
	}
	if (resolver_get16(msg) != id) {
		out->why = "wrong id";
		return out->kind;
	}
	if ((msg[2] & 0x80) == 0 || (msg[2] >> 3 & 0xf) != 0) {
		out->why = "not a response to a query";
		return out->kind;
	}
	if ((e = dns_parse(msg, len, &m)) != DNS_OK) {
		out->kind = RESOLVER_ANS_MALFORMED;
		out->why = dns_error_str(e);
		goto done;
	}
	if (m.qdcount != 1 || m.nquestions != 1) {
		out->why = "not exactly one question";
		goto done;
	}
	qn = &m.questions[0];
	if (qn->type != qtype || qn->qclass != CLASS_IN ||
	    strcasecmp(qn->name, name) != 0) {
		out->why = "another question";
		goto done;
	}
	out->rcode = m.rcode;
	if (m.rcode == 3) {
		out->kind = RESOLVER_ANS_NXDOMAIN;
		out->ttl = negative_ttl(&m);
		goto done;
	}
	if (m.rcode != 0) {
		out->kind = RESOLVER_ANS_SERVFAIL;
		out->why = "error rcode";
		goto done;
	}

	/* Follow the CNAME chain from our name, within this answer only. */
	for (int hop = 0; hop < MAX_CNAME_HOPS; hop++) {
		const struct dns_rr *next = NULL;

		for (size_t i = 0; i < m.nrrs && next == NULL; i++) {
			const struct dns_rr *rr = &m.rrs[i];

			if (rr->section == DNS_SEC_ANSWER &&
			    rr->type == DNS_T_CNAME && rr->rclass == CLASS_IN &&
			    rr->decoded && strcasecmp(rr->name, cur) == 0)
				next = rr;
		}
		if (next == NULL)
			break;
		cur = next->u.target;
		if (rr_ttl(next->ttl) < ttl)
			ttl = rr_ttl(next->ttl);
	}
	for (size_t i = 0; i < m.nrrs; i++) {
		const struct dns_rr *rr = &m.rrs[i];
		struct endpoint a;

		if (rr->section != DNS_SEC_ANSWER || rr->type != qtype ||
		    rr->rclass != CLASS_IN || !rr->decoded ||
		    strcasecmp(rr->name, cur) != 0)
			continue;
		memset(&a, 0, sizeof(a));
		if (qtype == DNS_T_A) {
			a.family = AF_INET;
			memcpy(a.addr, rr->u.a, 4);
		} else {
			a.family = AF_INET6;
			memcpy(a.addr, rr->u.aaaa, 16);
		}
		resolver_addr_add(out->addrs, &out->naddrs, RESOLVER_MAX_PER_FAMILY, &a);
		if (rr_ttl(rr->ttl) < ttl)
			ttl = rr_ttl(rr->ttl);
	}
	if (out->naddrs > 0) {
		out->kind = RESOLVER_ANS_ADDRS;
		out->ttl = ttl;
	} else if (m.tc) {
		out->kind = RESOLVER_ANS_TRUNCATED;
		out->why = "truncated";
	} else {
		out->kind = RESOLVER_ANS_NODATA;
		out->ttl = negative_ttl(&m);
	}
done:
	dns_msg_free(&m);
	return out->kind;
}
