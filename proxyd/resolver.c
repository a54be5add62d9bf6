/*
 * proxyd's stub resolver (see resolver.h and docs/proxyd-resolver.md); its
 * wire format and configuration are in resolver_wire.c and resolver_conf.c.
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "plat.h"
#include "proxyd/dns.h"
#include "proxyd/resolver.h"
#include "proxyd/resolver_int.h"

static void	try_next(struct resolver_query *);
static void	finish(struct resolver_query *);

/* --- small helpers ----------------------------------------------------------- */

static bool
addr_unspecified(const struct endpoint *a)
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
void
resolver_addr_add(struct endpoint *list, size_t *n, size_t cap,
    const struct endpoint *a)
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
			resolver_addr_add(res->addrs, &res->naddrs, RESOLVER_MAX_ADDRS,
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
		if (plat_random(b, sizeof(b)) == -1)
			return -1;
		ids[0] = resolver_get16(b);
		ids[1] = resolver_get16(b + 2);
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
			set_error(q, RESOLVER_ERR_SYSTEM, "random: %s",
			    strerror(errno));
			finish(q);
			return;
		}
		q->fd = plat_socket(s->sa.ss_family, SOCK_DGRAM, 1);
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
	struct endpoint v6[RESOLVER_MAX_PER_FAMILY];
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
		const struct endpoint *a = &r->hosts[i].addr;

		if (!family_wanted(r, a->family))
			continue;
		matched++;
		if (a->family == AF_INET)
			resolver_addr_add(res->addrs, &n4, RESOLVER_MAX_PER_FAMILY, a);
		else
			resolver_addr_add(v6, &n6, RESOLVER_MAX_PER_FAMILY, a);
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
		struct endpoint lo4 = { .family = AF_INET,
		    .addr = { 127, 0, 0, 1 } };
		struct endpoint lo6 = { .family = AF_INET6,
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

