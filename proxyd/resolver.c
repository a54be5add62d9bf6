/*
 * proxyd's stub resolver (see resolver.h and docs/proxyd-resolver.md).
 *
 * Call chain of a lookup that needs DNS:
 *	resolver_lookup -> try_next (socket, connect, send A and AAAA)
 *	  io_cb -> resolver_parse_answer (dns_parse, question, CNAME chain)
 *	        -> take_answer -> settle -> finish | try_next
 *	  timer_cb (this try's time is up) -> finish | try_next
 *	finish -> cache_put -> callback -> free
 * Everything else (literals, localhost, hosts, cache, bad names) is decided
 * in resolver_lookup and delivered by the same timer set to 0, so callers
 * never see their callback run inside resolver_lookup.
 *
 * Each try is one new connected UDP socket to one server: the kernel picks a
 * random ephemeral port for it (Linux randomises UDP source ports) and drops
 * datagrams from any other address, which recvfrom checks again; each
 * question gets a fresh 16-bit id from getrandom.  An answer must then also
 * carry our question, so an off-path forger has to guess port and id.
 *
 * Few lookups run at once (bounded by max_pending), each with its own timer:
 * tries of different lookups have different durations left, so libev's
 * "one timer over a list" does not buy anything here.
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
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "proxyd/dns.h"
#include "proxyd/resolver.h"

#define DEFAULT_TIMEOUT		5.0
#define DEFAULT_ATTEMPTS	2
#define MAX_TIMEOUT		30.0
#define MAX_ATTEMPTS		5
#define DEFAULT_CACHE		256
#define DEFAULT_PENDING		256
#define MAX_CNAME_HOPS		8
#define MAX_POSITIVE_TTL	3600
#define MAX_NEGATIVE_TTL	300
#define EDNS_UDP_SIZE		1232	/* the 2020 DNS flag day's size */
#define QUERY_MAX		(DNS_HEADER_LEN + RESOLVER_NAME_MAX + 2 + 4 + 11)
#define RX_MAX			4096
#define RX_BATCH		16	/* datagrams read per readiness */
#define RESOLV_CONF_MAX		(64 * 1024)
#define HOSTS_MAX		(8 * 1024 * 1024)
#define HOSTS_MAX_PAIRS		262144
#define CLASS_IN		1

/* One (name, address) pair of the hosts file, sorted by (name, seq). */
struct hosts_pair {
	const char		*name;	/* in hosts_text, lower case */
	uint32_t		 seq;	/* file order */
	struct flow_addr	 addr;
};

struct cache_entry {
	char			 name[RESOLVER_NAME_MAX + 1];	/* "": free */
	ev_tstamp		 expires;
	enum resolver_status	 status;	/* OK, NOHOST or NODATA */
	size_t			 naddrs;
	struct flow_addr	 addrs[RESOLVER_MAX_ADDRS];
};

struct server {
	struct sockaddr_storage	 sa;
	socklen_t		 len;
};

/* One of the two questions of a lookup (A, AAAA). */
struct question {
	uint16_t		 qtype;
	uint16_t		 id;		/* of the current try */
	bool			 wanted;
	bool			 done;		/* final answer in kind */
	bool			 failed_try;	/* this try gave up on it */
	enum resolver_answer_kind kind;
	size_t			 naddrs;
	struct flow_addr	 addrs[RESOLVER_MAX_PER_FAMILY];
	uint32_t		 ttl;
};

struct resolver_query {
	LIST_ENTRY(resolver_query) entry;
	struct resolver		*r;
	resolver_cb		 cb;
	void			*arg;
	char			*given;		/* the name as asked */
	char			 name[RESOLVER_NAME_MAX + 1];	/* checked */
	ev_timer		 timer;
	ev_io			 io;
	int			 fd;		/* this try's socket, or -1 */
	bool			 immediate;	/* res is ready: timer at 0 */
	bool			 started;	/* the first try was sent */
	bool			 dns;		/* counted in r->pending */
	/* the servers and timing the lookup started with */
	struct server		 servers[RESOLVER_MAX_SERVERS];
	size_t			 nservers;
	double			 timeout;
	int			 tries, max_tries, timeouts;
	size_t			 server;	/* of the current try */
	struct question		 q[2];		/* A, AAAA */
	unsigned		 malformed;
	bool			 failed;	/* fail holds the last failure */
	char			 fail[RESOLVER_ERR_LEN];
	struct resolver_result	 res;
	char			 errbuf[RESOLVER_ERR_LEN];
};

struct resolver {
	struct ev_loop		*loop;
	struct resolver_config	 cfg;		/* 0s mean defaults */
	double			 timeout;	/* in effect */
	int			 attempts;
	bool			 loaded;
	struct server		 servers[RESOLVER_MAX_SERVERS];
	size_t			 nservers;
	char			*hosts_text;
	struct hosts_pair	*hosts;
	size_t			 nhosts;
	struct cache_entry	*cache;
	size_t			 cache_cap;
	size_t			 cached;
	size_t			 max_pending;
	size_t			 pending;
	LIST_HEAD(, resolver_query) queries;
	struct resolver_stats	 stats;
	uint8_t			 rx[RX_MAX];
};

static void	try_next(struct resolver_query *);
static void	finish(struct resolver_query *);

/* --- small helpers ----------------------------------------------------------- */

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static bool
addr_unspecified(const struct flow_addr *a)
{
	static const uint8_t zero[16];

	return memcmp(a->addr, zero, a->family == AF_INET ? 4 : 16) == 0;
}

static bool
family_wanted(const struct resolver *r, sa_family_t family)
{
	return r->cfg.family == AF_UNSPEC || r->cfg.family == family;
}

/* Append a to list (of cap) unless already there or unspecified. */
static void
addr_add(struct flow_addr *list, size_t *n, size_t cap,
    const struct flow_addr *a)
{
	if (*n >= cap || addr_unspecified(a))
		return;
	for (size_t i = 0; i < *n; i++)
		if (list[i].family == a->family &&
		    memcmp(list[i].addr, a->addr, 16) == 0)
			return;
	list[(*n)++] = *a;
}

static const char *
server_str(const struct server *s, char *buf, size_t len)
{
	const void *a;

	if (s->sa.ss_family == AF_INET)
		a = &((const struct sockaddr_in *)&s->sa)->sin_addr;
	else
		a = &((const struct sockaddr_in6 *)&s->sa)->sin6_addr;
	if (inet_ntop(s->sa.ss_family, a, buf, (socklen_t)len) == NULL)
		snprintf(buf, len, "?");
	return buf;
}

static bool
same_sockaddr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const struct sockaddr_in *)a;
		const struct sockaddr_in *y = (const struct sockaddr_in *)b;

		return x->sin_port == y->sin_port &&
		    x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
		const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;

		return x->sin6_port == y->sin6_port &&
		    memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
	}
	return false;
}

const char *
resolver_status_str(enum resolver_status s)
{
	switch (s) {
	case RESOLVER_OK:		return "ok";
	case RESOLVER_ERR_NAME:		return "invalid name";
	case RESOLVER_ERR_NOHOST:	return "no such host";
	case RESOLVER_ERR_NODATA:	return "no address";
	case RESOLVER_ERR_SERVER:	return "server failure";
	case RESOLVER_ERR_TIMEOUT:	return "timeout";
	case RESOLVER_ERR_NOSERVER:	return "no name server";
	case RESOLVER_ERR_SYSTEM:	return "system error";
	}
	return "?";
}

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
resolver_parse_literal(const char *s, struct flow_addr *a)
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
	put16(buf, id);
	put16(buf + 2, 0x0100);		/* RD */
	put16(buf + 4, 1);		/* QDCOUNT */
	put16(buf + 10, 1);		/* ARCOUNT: the OPT record */
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
	put16(buf + p, qtype);
	put16(buf + p + 2, CLASS_IN);
	p += 4;
	/* OPT: root owner, type 41, class = UDP size, TTL 0, no rdata */
	buf[p++] = 0;
	put16(buf + p, DNS_T_OPT);
	put16(buf + p + 2, EDNS_UDP_SIZE);
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
	if (get16(msg) != id) {
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
		struct flow_addr a;

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
		addr_add(out->addrs, &out->naddrs, RESOLVER_MAX_PER_FAMILY, &a);
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

/* --- configuration -------------------------------------------------------------- */

/* "nameserver ADDR" with an optional %zone (IPv6); false if unusable. */
static bool
parse_server(const char *s, uint16_t port, struct server *out)
{
	char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
	struct sockaddr_in *sin = (struct sockaddr_in *)&out->sa;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->sa;
	char *zone;

	if (strlen(s) >= sizeof(buf))
		return false;
	strcpy(buf, s);
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, buf, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		out->len = sizeof(*sin);
		return true;
	}
	if ((zone = strchr(buf, '%')) != NULL)
		*zone++ = '\0';
	if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) != 1)
		return false;
	if (zone != NULL) {
		char *end;
		unsigned long idx = strtoul(zone, &end, 10);

		if (*zone == '\0' || *end != '\0')
			idx = if_nametoindex(zone);
		if (idx == 0 || idx > UINT32_MAX)
			return false;
		sin6->sin6_scope_id = (uint32_t)idx;
	}
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	out->len = sizeof(*sin6);
	return true;
}

/* "timeout:5" -> 5 (capped at 100); -1 if tok is not key followed by digits. */
static int
option_int(const char *tok, const char *key)
{
	size_t kl = strlen(key);
	int v = 0;

	if (strncmp(tok, key, kl) != 0 || tok[kl] == '\0')
		return -1;
	for (tok += kl; *tok != '\0'; tok++) {
		if (*tok < '0' || *tok > '9')
			return -1;
		if (v < 100)
			v = v * 10 + (*tok - '0');
	}
	return v > 100 ? 100 : v;
}

struct resolv_conf {
	struct server	servers[RESOLVER_MAX_SERVERS];
	size_t		nservers;
	int		timeout;	/* 0: not given */
	int		attempts;
};

static void
parse_resolv_conf(const char *text, size_t len, uint16_t port,
    struct resolv_conf *rc)
{
	size_t p = 0;

	memset(rc, 0, sizeof(*rc));
	while (p < len) {
		char line[512], *tok, *save;
		size_t e = p, n;

		while (e < len && text[e] != '\n')
			e++;
		n = e - p < sizeof(line) - 1 ? e - p : sizeof(line) - 1;
		memcpy(line, text + p, n);
		line[n] = '\0';
		p = e + 1;
		if (strlen(line) != n)
			continue;	/* a NUL inside: not a line we know */
		if ((tok = strtok_r(line, " \t\r", &save)) == NULL ||
		    tok[0] == '#' || tok[0] == ';')
			continue;
		if (strcmp(tok, "nameserver") == 0) {
			struct server s;

			if ((tok = strtok_r(NULL, " \t\r", &save)) == NULL ||
			    rc->nservers >= RESOLVER_MAX_SERVERS)
				continue;
			if (parse_server(tok, port, &s))
				rc->servers[rc->nservers++] = s;
			else
				log_warnx("resolv.conf: nameserver %.64s: not "
				    "an address; ignored", tok);
		} else if (strcmp(tok, "options") == 0) {
			while ((tok = strtok_r(NULL, " \t\r", &save)) != NULL) {
				int v;

				if ((v = option_int(tok, "timeout:")) > 0)
					rc->timeout = v;
				else if ((v = option_int(tok, "attempts:")) > 0)
					rc->attempts = v;
			}
		}
	}
	if (rc->nservers == 0) {	/* glibc's default */
		(void)parse_server("127.0.0.1", port, &rc->servers[0]);
		rc->nservers = 1;
	}
}

static int
pair_cmp(const void *a, const void *b)
{
	const struct hosts_pair *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c != 0)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static bool
space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\0';
}

/*
 * The hosts file: "ADDRESS NAME..." per line, '#' to the end of a line.
 * Bad addresses and bad names are skipped; the names are lowered in place
 * in a private copy of the text, which the pairs point into.
 */
static int
parse_hosts(const char *text, size_t len, char **textp,
    struct hosts_pair **pairsp, size_t *npairs, char *err, size_t errlen)
{
	struct hosts_pair *pairs = NULL;
	size_t n = 0, cap = 0, p = 0;
	char *t;

	*textp = NULL;
	*pairsp = NULL;
	*npairs = 0;
	if ((t = malloc(len + 1)) == NULL) {
		snprintf(err, errlen, "hosts: out of memory");
		return -1;
	}
	memcpy(t, text, len);
	t[len] = '\0';
	while (p < len) {
		size_t e = p;
		char *tok[2] = { NULL, NULL };
		struct flow_addr addr;
		char *s;

		while (e < len && t[e] != '\n')
			e++;
		t[e] = '\0';	/* (t[len] is already) */
		if ((s = memchr(t + p, '#', e - p)) != NULL)
			*s = '\0';
		s = t + p;
		p = e + 1;
		/* first token: the address */
		while (*s != '\0' && space(*s))
			s++;
		tok[0] = s;
		while (*s != '\0' && !space(*s))
			s++;
		if (*s != '\0')
			*s++ = '\0';
		if (*tok[0] == '\0' || strchr(tok[0], '[') != NULL ||
		    !resolver_parse_literal(tok[0], &addr))
			continue;
		for (;;) {
			char lower[RESOLVER_NAME_MAX + 1];

			while (*s != '\0' && space(*s))
				s++;
			if (*s == '\0')
				break;
			tok[1] = s;
			while (*s != '\0' && !space(*s))
				s++;
			if (*s != '\0')
				*s++ = '\0';
			if (resolver_check_name(tok[1], lower) != NULL)
				continue;
			if (n == HOSTS_MAX_PAIRS) {
				snprintf(err, errlen, "hosts: more than %d "
				    "names", HOSTS_MAX_PAIRS);
				goto fail;
			}
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 64;
				struct hosts_pair *np = reallocarray(pairs,
				    ncap, sizeof(*np));

				if (np == NULL) {
					snprintf(err, errlen, "hosts: out of "
					    "memory");
					goto fail;
				}
				pairs = np;
				cap = ncap;
			}
			strcpy(tok[1], lower);	/* never longer */
			pairs[n].name = tok[1];
			pairs[n].seq = (uint32_t)n;
			pairs[n].addr = addr;
			n++;
		}
	}
	if (n > 0)
		qsort(pairs, n, sizeof(*pairs), pair_cmp);
	*textp = t;
	*pairsp = pairs;
	*npairs = n;
	return 0;
fail:
	free(pairs);
	free(t);
	return -1;
}

int
resolver_load_text(struct resolver *r, const char *resolv_conf,
    size_t resolv_len, const char *hosts, size_t hosts_len, char *err,
    size_t errlen)
{
	struct resolv_conf rc;
	struct hosts_pair *pairs;
	char *text;
	size_t npairs;
	uint16_t port = r->cfg.port ? r->cfg.port : 53;

	if (resolv_conf == NULL)
		resolv_conf = "", resolv_len = 0;
	if (hosts == NULL)
		hosts = "", hosts_len = 0;
	parse_resolv_conf(resolv_conf, resolv_len, port, &rc);
	if (parse_hosts(hosts, hosts_len, &text, &pairs, &npairs, err,
	    errlen) == -1)
		return -1;

	free(r->hosts_text);
	free(r->hosts);
	r->hosts_text = text;
	r->hosts = pairs;
	r->nhosts = npairs;
	memcpy(r->servers, rc.servers, sizeof(r->servers));
	r->nservers = rc.nservers;
	r->timeout = r->cfg.timeout > 0 ? r->cfg.timeout :
	    rc.timeout > 0 ? rc.timeout : DEFAULT_TIMEOUT;
	if (r->timeout > MAX_TIMEOUT)
		r->timeout = MAX_TIMEOUT;
	r->attempts = r->cfg.attempts > 0 ? r->cfg.attempts :
	    rc.attempts > 0 ? rc.attempts : DEFAULT_ATTEMPTS;
	if (r->attempts > MAX_ATTEMPTS)
		r->attempts = MAX_ATTEMPTS;
	r->loaded = true;
	for (size_t i = 0; i < r->cache_cap; i++)
		r->cache[i].name[0] = '\0';
	r->cached = 0;
	return 0;
}

/* The whole file into *buf (NUL-terminated); a missing file is empty. */
static int
read_file(const char *path, size_t max, char **buf, size_t *len, char *err,
    size_t errlen)
{
	size_t cap = 4096, n = 0;
	char *b;
	int fd;

	*buf = NULL;
	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1 &&
	    errno != ENOENT) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if ((b = malloc(cap)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	while (fd != -1) {
		ssize_t got;

		if (n + 1 == cap) {
			char *nb;

			if (cap > max) {
				snprintf(err, errlen, "%s: larger than %zu "
				    "bytes", path, max);
				goto fail;
			}
			if ((nb = realloc(b, cap * 2)) == NULL) {
				snprintf(err, errlen, "%s: out of memory",
				    path);
				goto fail;
			}
			b = nb;
			cap *= 2;
		}
		if ((got = read(fd, b + n, cap - 1 - n)) == -1) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	if (n > max) {
		snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
		goto fail;
	}
	if (fd != -1)
		close(fd);
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
fail:
	free(b);
	if (fd != -1)
		close(fd);
	return -1;
}

int
resolver_load(struct resolver *r, const char *resolv_conf, const char *hosts,
    char *err, size_t errlen)
{
	char *rtext = NULL, *htext = NULL;
	size_t rlen, hlen;
	int rv = -1;

	if (resolv_conf == NULL)
		resolv_conf = "/etc/resolv.conf";
	if (hosts == NULL)
		hosts = "/etc/hosts";
	if (read_file(resolv_conf, RESOLV_CONF_MAX, &rtext, &rlen, err,
	    errlen) == 0 &&
	    read_file(hosts, HOSTS_MAX, &htext, &hlen, err, errlen) == 0)
		rv = resolver_load_text(r, rtext, rlen, htext, hlen, err,
		    errlen);
	free(rtext);
	free(htext);
	return rv;
}

/* --- cache ---------------------------------------------------------------------- */

static struct cache_entry *
cache_get(struct resolver *r, const char *name)
{
	ev_tstamp now = ev_now(r->loop);

	for (size_t i = 0; i < r->cache_cap; i++) {
		struct cache_entry *c = &r->cache[i];

		if (c->name[0] != '\0' && strcmp(c->name, name) == 0) {
			if (c->expires > now)
				return c;
			c->name[0] = '\0';
			r->cached--;
			return NULL;
		}
	}
	return NULL;
}

static void
cache_put(struct resolver *r, const char *name, const struct resolver_result *res)
{
	ev_tstamp now = ev_now(r->loop);
	struct cache_entry *slot = NULL, *free_slot = NULL, *oldest = NULL;
	uint32_t ttl = res->ttl;

	if (r->cache_cap == 0 || ttl == 0)
		return;
	if (res->status == RESOLVER_OK && ttl > MAX_POSITIVE_TTL)
		ttl = MAX_POSITIVE_TTL;
	else if (res->status != RESOLVER_OK && ttl > MAX_NEGATIVE_TTL)
		ttl = MAX_NEGATIVE_TTL;
	/* the same name, else a free or stale slot, else the soonest stale */
	for (size_t i = 0; i < r->cache_cap; i++) {
		struct cache_entry *c = &r->cache[i];

		if (c->name[0] != '\0' && strcmp(c->name, name) == 0) {
			slot = c;
			break;
		}
		if (c->name[0] == '\0' || c->expires <= now) {
			if (free_slot == NULL)
				free_slot = c;
		} else if (oldest == NULL || c->expires < oldest->expires)
			oldest = c;
	}
	if (slot == NULL)
		slot = free_slot != NULL ? free_slot : oldest;
	if (slot->name[0] == '\0')
		r->cached++;
	snprintf(slot->name, sizeof(slot->name), "%s", name);
	slot->expires = now + ttl;
	slot->status = res->status;
	slot->naddrs = res->naddrs;
	memcpy(slot->addrs, res->addrs, sizeof(slot->addrs));
}

/* --- lookups --------------------------------------------------------------------- */

static void
close_try(struct resolver_query *q)
{
	struct ev_loop *loop = q->r->loop;

	ev_io_stop(loop, &q->io);
	if (q->fd != -1) {
		close(q->fd);
		q->fd = -1;
	}
}

static void
set_error(struct resolver_query *q, enum resolver_status st, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

static void
set_error(struct resolver_query *q, enum resolver_status st, const char *fmt,
    ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(q->errbuf, sizeof(q->errbuf), fmt, ap);
	va_end(ap);
	q->res.status = st;
	q->res.naddrs = 0;
	q->res.error = q->errbuf;
}

/* Remember why this try failed, for the final message. */
static void
note_failure(struct resolver_query *q, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
note_failure(struct resolver_query *q, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(q->fail, sizeof(q->fail), fmt, ap);
	va_end(ap);
	q->failed = true;
}

/* The callback, then the query is gone.  Nothing of r is touched after
 * the callback, which may free it. */
static void
finish(struct resolver_query *q)
{
	struct resolver *r = q->r;

	LIST_REMOVE(q, entry);
	ev_timer_stop(r->loop, &q->timer);
	close_try(q);
	if (q->dns) {
		r->pending--;
		if (q->res.status == RESOLVER_OK ||
		    q->res.status == RESOLVER_ERR_NOHOST ||
		    q->res.status == RESOLVER_ERR_NODATA)
			cache_put(r, q->name, &q->res);
	}
	q->res.name = q->given;
	if (q->res.status == RESOLVER_OK)
		q->res.error = NULL;
	q->cb(&q->res, q->arg);
	free(q->given);
	free(q);
}

/* Turn the two questions into the result, once nothing more will come. */
static void
finish_dns(struct resolver_query *q)
{
	struct resolver_result *res = &q->res;
	bool nxdomain = false, all_done = true;
	uint32_t ttl = UINT32_MAX, pttl = UINT32_MAX;

	res->source = RESOLVER_SRC_DNS;
	res->naddrs = 0;
	for (int i = 0; i < 2; i++) {
		struct question *t = &q->q[i];

		if (!t->wanted)
			continue;
		if (!t->done) {
			all_done = false;
			continue;
		}
		if (t->kind == RESOLVER_ANS_NXDOMAIN)
			nxdomain = true;
		for (size_t k = 0; k < t->naddrs; k++)
			addr_add(res->addrs, &res->naddrs, RESOLVER_MAX_ADDRS,
			    &t->addrs[k]);
		if (t->naddrs > 0 && t->ttl < pttl)
			pttl = t->ttl;
		if (t->ttl < ttl)
			ttl = t->ttl;
	}
	if (ttl == UINT32_MAX)
		ttl = 0;
	if (res->naddrs > 0) {
		res->status = RESOLVER_OK;
		res->ttl = pttl;
	} else if (nxdomain) {
		set_error(q, RESOLVER_ERR_NOHOST, "no such host");
		res->ttl = ttl;
	} else if (all_done) {
		set_error(q, RESOLVER_ERR_NODATA, "no address for host");
		res->ttl = ttl;
	} else if (!q->failed || q->timeouts == q->tries) {
		set_error(q, RESOLVER_ERR_TIMEOUT, "timed out after %d %s%s",
		    q->tries, q->tries == 1 ? "try" : "tries",
		    q->malformed ? " (malformed answers ignored)" : "");
	} else if (q->tries > 1)
		set_error(q, RESOLVER_ERR_SERVER, "%s, after %d tries",
		    q->fail, q->tries);
	else
		set_error(q, RESOLVER_ERR_SERVER, "%s", q->fail);
	finish(q);
}

static bool
has_addrs(const struct resolver_query *q)
{
	return (q->q[0].done && q->q[0].naddrs > 0) ||
	    (q->q[1].done && q->q[1].naddrs > 0);
}

/*
 * After an answer or a failure: finish when every question is answered or
 * the name does not exist; move to the next try when this one has nothing
 * more to wait for.  Once one family has addresses the other gets no
 * further try: a server that drops AAAA queries must not cost seconds.
 */
static void
settle(struct resolver_query *q)
{
	bool all_done = true, waiting = false;

	for (int i = 0; i < 2; i++) {
		struct question *t = &q->q[i];

		if (!t->wanted)
			continue;
		if (t->done && t->kind == RESOLVER_ANS_NXDOMAIN) {
			finish_dns(q);
			return;
		}
		if (!t->done) {
			all_done = false;
			if (!t->failed_try)
				waiting = true;
		}
	}
	if (all_done || (!waiting && has_addrs(q)))
		finish_dns(q);
	else if (!waiting)
		try_next(q);
}

static void
take_answer(struct resolver_query *q, struct question *t,
    const struct resolver_answer *ans)
{
	char sv[INET6_ADDRSTRLEN];
	const char *rc;

	switch (ans->kind) {
	case RESOLVER_ANS_IGNORE:
	case RESOLVER_ANS_MALFORMED:
		break;	/* callers handle them */
	case RESOLVER_ANS_ADDRS:
	case RESOLVER_ANS_NODATA:
	case RESOLVER_ANS_NXDOMAIN:
		t->done = true;
		t->kind = ans->kind;
		t->naddrs = ans->naddrs;
		memcpy(t->addrs, ans->addrs, sizeof(t->addrs));
		t->ttl = ans->ttl;
		break;
	case RESOLVER_ANS_TRUNCATED:
		t->failed_try = true;
		note_failure(q, "answer truncated, TCP not supported (from %s)",
		    server_str(&q->servers[q->server], sv, sizeof(sv)));
		break;
	case RESOLVER_ANS_SERVFAIL:
		t->failed_try = true;
		rc = dns_rcode_str(ans->rcode);
		if (ans->rcode == 2)
			note_failure(q, "server failure (SERVFAIL from %s)",
			    server_str(&q->servers[q->server], sv, sizeof(sv)));
		else if (rc != NULL)
			note_failure(q, "server error (%s from %s)", rc,
			    server_str(&q->servers[q->server], sv, sizeof(sv)));
		else
			note_failure(q, "server error (rcode %u from %s)",
			    ans->rcode,
			    server_str(&q->servers[q->server], sv, sizeof(sv)));
		break;
	}
}

/* This try is over for every question still open (socket error). */
static void
fail_try(struct resolver_query *q)
{
	for (int i = 0; i < 2; i++)
		q->q[i].failed_try = true;
	settle(q);
}

static void
io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct resolver_query *q = (struct resolver_query *)(void *)
	    ((char *)w - offsetof(struct resolver_query, io));
	struct resolver *r = q->r;
	char sv[INET6_ADDRSTRLEN];

	(void)loop;
	(void)revents;
	for (int n = 0; n < RX_BATCH; n++) {
		struct sockaddr_storage from;
		socklen_t fromlen = sizeof(from);
		struct resolver_answer ans;
		struct question *t = NULL;
		ssize_t got;

		got = recvfrom(q->fd, r->rx, sizeof(r->rx), MSG_TRUNC,
		    (struct sockaddr *)&from, &fromlen);
		if (got == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR)
				return;
			note_failure(q, "%s from %s", errno == ECONNREFUSED ?
			    "connection refused" : strerror(errno),
			    server_str(&q->servers[q->server], sv, sizeof(sv)));
			close_try(q);
			fail_try(q);
			return;
		}
		if ((size_t)got > sizeof(r->rx) ||
		    !same_sockaddr(&from, &q->servers[q->server].sa)) {
			r->stats.answers_ignored++;
			continue;
		}
		for (int i = 0; i < 2 && t == NULL; i++) {
			struct question *c = &q->q[i];

			if (!c->wanted || c->done || c->failed_try)
				continue;
			if (resolver_parse_answer(r->rx, (size_t)got, c->id,
			    q->name, c->qtype, &ans) != RESOLVER_ANS_IGNORE)
				t = c;
		}
		if (t == NULL || ans.kind == RESOLVER_ANS_MALFORMED) {
			r->stats.answers_ignored++;
			if (t != NULL)
				q->malformed++;
			log_debug("%s: answer from %s ignored: %s", q->name,
			    server_str(&q->servers[q->server], sv, sizeof(sv)),
			    t != NULL ? ans.why : "not ours");
			continue;
		}
		take_answer(q, t, &ans);
		settle(q);	/* may free q */
		return;
	}
}

static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct resolver_query *q = (struct resolver_query *)(void *)
	    ((char *)w - offsetof(struct resolver_query, timer));

	(void)loop;
	(void)revents;
	if (q->immediate) {
		finish(q);
		return;
	}
	if (!q->started) {
		q->started = true;
		try_next(q);
		return;
	}
	q->r->stats.timeouts++;
	q->timeouts++;
	close_try(q);
	if (has_addrs(q))
		finish_dns(q);
	else
		try_next(q);
}

static int
random_ids(uint16_t ids[2])
{
	uint8_t b[4];

	do {
		if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
			return -1;
		ids[0] = get16(b);
		ids[1] = get16(b + 2);
	} while (ids[0] == ids[1]);
	return 0;
}

/* Start the next try (next server), or finish when none is left. */
static void
try_next(struct resolver_query *q)
{
	struct resolver *r = q->r;
	char sv[INET6_ADDRSTRLEN];

	ev_timer_stop(r->loop, &q->timer);
	close_try(q);
	while (q->tries < q->max_tries) {
		const struct server *s;
		uint16_t ids[2];
		bool sent_all = true;

		q->server = (size_t)q->tries % q->nservers;
		q->tries++;
		s = &q->servers[q->server];
		if (random_ids(ids) == -1) {
			set_error(q, RESOLVER_ERR_SYSTEM, "getrandom: %s",
			    strerror(errno));
			finish(q);
			return;
		}
		q->fd = socket(s->sa.ss_family, SOCK_DGRAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (q->fd == -1) {
			set_error(q, RESOLVER_ERR_SYSTEM, "socket: %s",
			    strerror(errno));
			finish(q);
			return;
		}
		if (connect(q->fd, (const struct sockaddr *)&s->sa, s->len) ==
		    -1) {
			note_failure(q, "cannot reach %s: %s",
			    server_str(s, sv, sizeof(sv)), strerror(errno));
			close_try(q);
			continue;
		}
		for (int i = 0; i < 2; i++) {
			struct question *t = &q->q[i];
			uint8_t buf[QUERY_MAX];
			size_t len;

			t->failed_try = false;
			if (!t->wanted || t->done)
				continue;
			t->id = ids[i];
			len = resolver_build_query(buf, sizeof(buf), t->id,
			    q->name, t->qtype);
			if (len == 0 || send(q->fd, buf, len, 0) != (ssize_t)len) {
				/* an earlier query's ICMP error shows here */
				if (len > 0 && errno == ECONNREFUSED)
					note_failure(q, "connection refused "
					    "from %s", server_str(s, sv,
					    sizeof(sv)));
				else
					note_failure(q, "cannot send to %s: %s",
					    server_str(s, sv, sizeof(sv)),
					    len == 0 ? "bad name" :
					    strerror(errno));
				sent_all = false;
				break;
			}
			r->stats.queries_sent++;
		}
		if (!sent_all) {
			close_try(q);
			continue;
		}
		ev_io_init(&q->io, io_cb, q->fd, EV_READ);
		ev_io_start(r->loop, &q->io);
		ev_timer_set(&q->timer, q->timeout, 0.);
		ev_timer_start(r->loop, &q->timer);
		return;
	}
	finish_dns(q);
}

/*
 * hosts: every address of name of the families wanted, IPv4 first.  Returns
 * how many such entries matched; res->naddrs may still be 0 when all were
 * 0.0.0.0 or :: (a blocking entry).
 */
static size_t
hosts_find(struct resolver *r, const char *name, struct resolver_result *res)
{
	size_t lo = 0, hi = r->nhosts, matched = 0;
	struct flow_addr v6[RESOLVER_MAX_PER_FAMILY];
	size_t n4 = 0, n6 = 0;

	while (lo < hi) {	/* the first pair >= name */
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(r->hosts[mid].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < r->nhosts && strcmp(r->hosts[i].name, name) ==
	    0; i++) {
		const struct flow_addr *a = &r->hosts[i].addr;

		if (!family_wanted(r, a->family))
			continue;
		matched++;
		if (a->family == AF_INET)
			addr_add(res->addrs, &n4, RESOLVER_MAX_PER_FAMILY, a);
		else
			addr_add(v6, &n6, RESOLVER_MAX_PER_FAMILY, a);
	}
	memcpy(res->addrs + n4, v6, n6 * sizeof(v6[0]));
	res->naddrs = n4 + n6;
	return matched;
}

/* Decide what can be decided now; true if q->res is the answer. */
static bool
answer_now(struct resolver *r, struct resolver_query *q, const char *name)
{
	struct resolver_result *res = &q->res;
	struct cache_entry *c;
	const char *why;
	size_t len;

	if (resolver_parse_literal(name, &res->addrs[0])) {
		res->source = RESOLVER_SRC_LITERAL;
		if (addr_unspecified(&res->addrs[0]))
			set_error(q, RESOLVER_ERR_NODATA, "the unspecified "
			    "address is not a destination");
		else if (!family_wanted(r, res->addrs[0].family))
			set_error(q, RESOLVER_ERR_NODATA, "IPv%d is not "
			    "enabled", res->addrs[0].family == AF_INET ? 4 : 6);
		else
			res->naddrs = 1;
		return true;
	}
	if ((why = resolver_check_name(name, q->name)) != NULL) {
		set_error(q, RESOLVER_ERR_NAME, "invalid host name: %s", why);
		return true;
	}
	len = strlen(q->name);
	if (strcmp(q->name, "localhost") == 0 || (len > 10 &&
	    strcmp(q->name + len - 10, ".localhost") == 0)) {
		struct flow_addr lo4 = { .family = AF_INET,
		    .addr = { 127, 0, 0, 1 } };
		struct flow_addr lo6 = { .family = AF_INET6,
		    .addr = { [15] = 1 } };

		res->source = RESOLVER_SRC_LOCALHOST;
		if (family_wanted(r, AF_INET))
			res->addrs[res->naddrs++] = lo4;
		if (family_wanted(r, AF_INET6))
			res->addrs[res->naddrs++] = lo6;
		return true;
	}
	if (hosts_find(r, q->name, res) > 0) {
		res->source = RESOLVER_SRC_HOSTS;
		if (res->naddrs == 0)	/* "0.0.0.0 ads.example" */
			set_error(q, RESOLVER_ERR_NODATA, "blocked by the hosts "
			    "file (unspecified address)");
		return true;
	}
	if ((c = cache_get(r, q->name)) != NULL) {
		r->stats.cache_hits++;
		res->source = RESOLVER_SRC_CACHE;
		res->ttl = (uint32_t)(c->expires - ev_now(r->loop));
		if (c->status == RESOLVER_OK) {
			res->naddrs = c->naddrs;
			memcpy(res->addrs, c->addrs, sizeof(res->addrs));
		} else
			set_error(q, c->status, "%s", c->status ==
			    RESOLVER_ERR_NOHOST ? "no such host" :
			    "no address for host");
		return true;
	}
	if (!r->loaded || r->nservers == 0) {
		set_error(q, RESOLVER_ERR_NOSERVER, "no name server configured");
		return true;
	}
	if (r->pending >= r->max_pending) {
		set_error(q, RESOLVER_ERR_SYSTEM, "too many lookups in progress");
		return true;
	}
	return false;
}

struct resolver_query *
resolver_lookup(struct resolver *r, const char *name, resolver_cb cb,
    void *arg)
{
	struct resolver_query *q;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	if ((q->given = strdup(name != NULL ? name : "")) == NULL) {
		free(q);
		return NULL;
	}
	q->r = r;
	q->cb = cb;
	q->arg = arg;
	q->fd = -1;
	ev_timer_init(&q->timer, timer_cb, 0., 0.);
	ev_io_init(&q->io, io_cb, -1, EV_READ);
	LIST_INSERT_HEAD(&r->queries, q, entry);
	r->stats.lookups++;

	if (answer_now(r, q, q->given)) {
		q->immediate = true;
		ev_timer_start(r->loop, &q->timer);
		return q;
	}
	q->dns = true;
	r->pending++;
	memcpy(q->servers, r->servers, sizeof(q->servers));
	q->nservers = r->nservers;
	q->timeout = r->timeout;
	q->max_tries = r->attempts * (int)r->nservers;
	q->q[0].qtype = DNS_T_A;
	q->q[0].wanted = family_wanted(r, AF_INET);
	q->q[1].qtype = DNS_T_AAAA;
	q->q[1].wanted = family_wanted(r, AF_INET6);
	/* The first try starts from the loop too: a try can fail at once
	 * (no route, no socket) and finish the lookup. */
	ev_timer_start(r->loop, &q->timer);
	return q;
}

void
resolver_cancel(struct resolver_query *q)
{
	struct resolver *r;

	if (q == NULL)
		return;
	r = q->r;
	LIST_REMOVE(q, entry);
	ev_timer_stop(r->loop, &q->timer);
	close_try(q);
	if (q->dns)
		r->pending--;
	free(q->given);
	free(q);
}

struct resolver *
resolver_new(struct ev_loop *loop, const struct resolver_config *cfg)
{
	struct resolver *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->loop = loop;
	if (cfg != NULL)
		r->cfg = *cfg;
	r->timeout = r->cfg.timeout > 0 ? r->cfg.timeout : DEFAULT_TIMEOUT;
	if (r->timeout > MAX_TIMEOUT)
		r->timeout = MAX_TIMEOUT;
	r->attempts = r->cfg.attempts > 0 ? r->cfg.attempts : DEFAULT_ATTEMPTS;
	if (r->attempts > MAX_ATTEMPTS)
		r->attempts = MAX_ATTEMPTS;
	r->max_pending = r->cfg.max_pending > 0 ? (size_t)r->cfg.max_pending :
	    DEFAULT_PENDING;
	r->cache_cap = r->cfg.cache_entries > 0 ?
	    (size_t)r->cfg.cache_entries :
	    r->cfg.cache_entries == 0 ? DEFAULT_CACHE : 0;
	if (r->cache_cap > 0 &&
	    (r->cache = calloc(r->cache_cap, sizeof(*r->cache))) == NULL) {
		free(r);
		return NULL;
	}
	LIST_INIT(&r->queries);
	return r;
}

void
resolver_free(struct resolver *r)
{
	if (r == NULL)
		return;
	while (!LIST_EMPTY(&r->queries))
		resolver_cancel(LIST_FIRST(&r->queries));
	free(r->hosts_text);
	free(r->hosts);
	free(r->cache);
	free(r);
}

void
resolver_get_stats(const struct resolver *r, struct resolver_stats *st)
{
	*st = r->stats;
	st->pending = r->pending;
	st->cached = r->cached;
	st->servers = r->nservers;
	st->hosts_names = r->nhosts;
}
