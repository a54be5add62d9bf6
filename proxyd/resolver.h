/*
 * proxyd's asynchronous stub resolver: host name -> addresses on libev,
 * without threads and without reading a file after start (proxyd's sandbox
 * forbids both), for the explicit HTTP proxy listener (CONNECT host:port,
 * GET http://host/...).  See docs/proxyd-resolver.md.
 *
 * Order of answers for one name:
 *	invalid name          -> RESOLVER_ERR_NAME, nothing sent
 *	IP literal            -> itself ("192.0.2.1", "2001:db8::1", "[::1]")
 *	localhost, *.localhost -> 127.0.0.1 and ::1 (RFC 6761)
 *	hosts file            -> its addresses (every line naming it)
 *	cache                 -> a positive or negative answer still fresh
 *	DNS                   -> A and AAAA over UDP to the name servers in turn
 *
 * Every lookup answers through its callback, called from the loop and never
 * from inside resolver_lookup(), exactly once unless cancelled first — even
 * a literal or a bad name.  Addresses come IPv4 first, then IPv6, each in
 * the order received, duplicates dropped, at most RESOLVER_MAX_PER_FAMILY of
 * each.  Names are absolute: no search domains are appended.
 *
 * Files are read only by resolver_load(), which proxyd calls before its
 * sandbox closes the filesystem; afterwards only sockets are used (socket,
 * connect, send, recvfrom, close, getrandom).
 */
#ifndef LOCALCAP_PROXYD_RESOLVER_H
#define LOCALCAP_PROXYD_RESOLVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "proxyd/flow.h"

#define RESOLVER_MAX_PER_FAMILY	8
#define RESOLVER_MAX_ADDRS	(2 * RESOLVER_MAX_PER_FAMILY)
#define RESOLVER_MAX_SERVERS	3	/* like glibc's MAXNS */
#define RESOLVER_NAME_MAX	253	/* presentation form, no final dot */
#define RESOLVER_ERR_LEN	160

struct resolver_config {
	/* Seconds to wait for one try; 0: resolv.conf's "options timeout:",
	 * else 5.  At most 30. */
	double	timeout;
	/* Rounds over the name server list; 0: resolv.conf's "options
	 * attempts:", else 2.  At most 5.  Tries = attempts x servers. */
	int	attempts;
	/* AF_UNSPEC (0): ask A and AAAA; AF_INET or AF_INET6: only that one
	 * (literals and hosts entries of the other family are dropped too). */
	int	family;
	/* Cached names (positive and negative answers); 0: 256; < 0: none. */
	int	cache_entries;
	/* Lookups waiting on DNS at once (each holds a socket); 0: 256. */
	int	max_pending;
	/* Name server port; 0: 53.  Lets the tests run their own server. */
	uint16_t port;
};

enum resolver_status {
	RESOLVER_OK = 0,
	RESOLVER_ERR_NAME,	/* not a valid host name */
	RESOLVER_ERR_NOHOST,	/* NXDOMAIN: "no such host" */
	RESOLVER_ERR_NODATA,	/* the name has no address (of the family) */
	RESOLVER_ERR_SERVER,	/* SERVFAIL, REFUSED, unusable or truncated
				 * answers, port unreachable */
	RESOLVER_ERR_TIMEOUT,	/* no answer from any server */
	RESOLVER_ERR_NOSERVER,	/* resolver_load() was never called */
	RESOLVER_ERR_SYSTEM,	/* socket, getrandom, memory, too many lookups */
};

enum resolver_source {
	RESOLVER_SRC_NONE = 0,	/* an error decided before any source */
	RESOLVER_SRC_LITERAL,
	RESOLVER_SRC_LOCALHOST,
	RESOLVER_SRC_HOSTS,
	RESOLVER_SRC_CACHE,
	RESOLVER_SRC_DNS,
};

/* What a callback gets; valid only while the callback runs. */
struct resolver_result {
	const char		*name;		/* as given to resolver_lookup */
	enum resolver_status	 status;
	enum resolver_source	 source;
	size_t			 naddrs;	/* 0 unless status is OK */
	struct endpoint	 addrs[RESOLVER_MAX_ADDRS];	/* port 0 */
	uint32_t		 ttl;		/* seconds the answer holds */
	/* NULL when OK; else one line for a log or an HTTP 502 body:
	 * "no such host", "server failure (SERVFAIL from 192.0.2.53)",
	 * "timed out after 3 tries", "invalid host name: label longer than
	 * 63 characters", ... */
	const char		*error;
};

struct resolver;
struct resolver_query;

/*
 * Called once per lookup, from the loop.  It may start lookups, cancel
 * other queries and even resolver_free() the resolver; its own query is
 * already gone (do not cancel it).
 */
typedef void (*resolver_cb)(const struct resolver_result *, void *arg);

/* NULL on out of memory.  cfg may be NULL (all defaults). */
struct resolver *resolver_new(struct ev_loop *, const struct resolver_config *);

/*
 * Read resolv.conf ("nameserver" lines, at most 3; "options timeout:N
 * attempts:N"; everything else ignored) and the hosts file; NULL paths mean
 * /etc/resolv.conf and /etc/hosts.  A missing file counts as empty, and no
 * nameserver line means 127.0.0.1, as in glibc.  Either both files are
 * taken or, on failure (unreadable, too large, out of memory), -1 with the
 * reason in err and the previous state kept whole.  Success empties the
 * cache.  Lookups in flight finish with the servers they started with.
 */
int	resolver_load(struct resolver *, const char *resolv_conf,
	    const char *hosts, char *err, size_t errlen);
/* The same from text already in memory (tests, fuzzing); NULL is empty. */
int	resolver_load_text(struct resolver *, const char *resolv_conf,
	    size_t resolv_len, const char *hosts, size_t hosts_len, char *err,
	    size_t errlen);

/* NULL only when out of memory; every other failure reaches cb. */
struct resolver_query *resolver_lookup(struct resolver *, const char *name,
	    resolver_cb cb, void *arg);
/* The callback will not be called.  NULL is a no-op. */
void	resolver_cancel(struct resolver_query *);
/* Cancels every query (no callback) and frees. */
void	resolver_free(struct resolver *);

struct resolver_stats {
	uint64_t	lookups;
	uint64_t	cache_hits;
	uint64_t	queries_sent;	/* DNS messages sent */
	uint64_t	answers_ignored;	/* wrong id, question, malformed */
	uint64_t	timeouts;	/* tries that got no answer in time */
	size_t		pending;	/* lookups waiting on DNS now */
	size_t		cached;
	size_t		servers;
	size_t		hosts_names;	/* (name, address) pairs from hosts */
};
void	resolver_get_stats(const struct resolver *, struct resolver_stats *);

/* --- pure pieces, exposed for the tests and the fuzzer ---------------------- */

/*
 * Check a host name: 1..253 characters once one final dot is dropped, labels
 * of 1..63 letters, digits, '-' or '_', and a last label that is not all
 * digits (that is a malformed IPv4 address, not a name).  Writes the name in
 * lower case without the final dot into out (RESOLVER_NAME_MAX + 1 bytes).
 * NULL, or a static reason.
 */
const char *resolver_check_name(const char *name, char *out);

/* An IP literal ("192.0.2.1", "2001:db8::1", "[2001:db8::1]") into addr
 * (port 0).  No zone ids.  true if it was one. */
bool	resolver_parse_literal(const char *s, struct endpoint *addr);

/* Build a query (RD, one question, class IN, EDNS0 for 1232 bytes) for an
 * already checked name; returns its length, 0 if buf is too small. */
size_t	resolver_build_query(uint8_t *buf, size_t bufsz, uint16_t id,
	    const char *name, uint16_t qtype);

enum resolver_answer_kind {
	RESOLVER_ANS_IGNORE,	/* not the answer to this query: keep waiting */
	RESOLVER_ANS_MALFORMED,	/* our id, but not a usable DNS message */
	RESOLVER_ANS_ADDRS,	/* naddrs > 0 */
	RESOLVER_ANS_NODATA,	/* the name exists, no record of the type */
	RESOLVER_ANS_NXDOMAIN,
	RESOLVER_ANS_TRUNCATED,	/* TC and no address in what came */
	RESOLVER_ANS_SERVFAIL,	/* SERVFAIL, REFUSED, FORMERR, ...: next server */
};

struct resolver_answer {
	enum resolver_answer_kind kind;
	uint16_t	 rcode;
	size_t		 naddrs;
	struct endpoint addrs[RESOLVER_MAX_PER_FAMILY];
	uint32_t	 ttl;	/* min over the chain; negative: SOA's */
	const char	*why;	/* static: why ignored or malformed */
};

/*
 * Match one datagram against a query for (id, name, qtype, class IN): a
 * response, opcode QUERY, the same id, exactly one question equal to ours
 * (name compared case-insensitively).  Answers follow CNAMEs from name
 * (at most 8 hops, only records of class IN in the answer section) and keep
 * the addresses of the type asked owned by the end of the chain.
 */
enum resolver_answer_kind resolver_parse_answer(const uint8_t *msg,
	    size_t len, uint16_t id, const char *name, uint16_t qtype,
	    struct resolver_answer *out);

const char *resolver_status_str(enum resolver_status);

#endif
