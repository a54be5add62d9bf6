/*
 * The stub resolver's insides, shared by its files (nothing else includes
 * this):
 *   resolver.c       lookups: sockets, timers, tries, the cache, hosts
 *   resolver_wire.c  names, literals, the query built, the answer parsed
 *   resolver_conf.c  resolv.conf and hosts, read and parsed
 */
#ifndef LOCALCAP_PROXYD_RESOLVER_INT_H
#define LOCALCAP_PROXYD_RESOLVER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <ev.h>

#include "proxyd/flow.h"
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
	struct endpoint	 addr;
};

struct cache_entry {
	char			 name[RESOLVER_NAME_MAX + 1];	/* "": free */
	ev_tstamp		 expires;
	enum resolver_status	 status;	/* OK, NOHOST or NODATA */
	size_t			 naddrs;
	struct endpoint	 addrs[RESOLVER_MAX_ADDRS];
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
	struct endpoint	 addrs[RESOLVER_MAX_PER_FAMILY];
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

static inline uint16_t
resolver_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void
resolver_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Append a to list (of cap) unless already there or unspecified. */
void	resolver_addr_add(struct endpoint *list, size_t *n, size_t cap,
	    const struct endpoint *a);

#endif
