/*
 * Flow descriptions and records for proxyd (see flow.h): NewFlow checking,
 * address formatting, and the bounded ring of finished flows that the flow
 * store will later drain.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/flow.h"

#define ERR(...)	do { snprintf(err, errlen, __VA_ARGS__); goto bad; } while (0)

static int
endpoint_addr(struct flow_addr *fa, const Lc__Endpoint *ep)
{
	if (ep->addr.len == 4)
		fa->family = AF_INET;
	else if (ep->addr.len == 16)
		fa->family = AF_INET6;
	else
		return -1;
	memcpy(fa->addr, ep->addr.data, ep->addr.len);
	return 0;
}

static int
addr_unspecified(const struct flow_addr *fa)
{
	static const uint8_t zero[16];

	return memcmp(fa->addr, zero, fa->family == AF_INET ? 4 : 16) == 0;
}

/* A copy of a peer-supplied string, cut at max bytes; "" for none. */
static char *
dup_bounded(const char *s, size_t max)
{
	return strndup(s ? s : "", max);
}

int
flow_meta_from_newflow(struct flow_meta *m, const Lc__NewFlow *nf, char *err,
    size_t errlen)
{
	memset(m, 0, sizeof(*m));
	if (nf->transport == LC__TRANSPORT__TRANSPORT_TCP)
		m->transport = FLOW_TCP;
	else if (nf->transport == LC__TRANSPORT__TRANSPORT_UDP)
		m->transport = FLOW_UDP;
	else
		ERR("transport %d is neither TCP nor UDP", (int)nf->transport);
	if (nf->src == NULL || nf->dst == NULL)
		ERR("source or destination missing");
	if (endpoint_addr(&m->src, nf->src) == -1)
		ERR("source address of %zu bytes", nf->src->addr.len);
	if (endpoint_addr(&m->dst, nf->dst) == -1)
		ERR("destination address of %zu bytes", nf->dst->addr.len);
	if (m->src.family != m->dst.family)
		ERR("source and destination of different address families");
	if (nf->src->port > 65535)
		ERR("source port %u", nf->src->port);
	if (nf->dst->port == 0 || nf->dst->port > 65535)
		ERR("destination port %u", nf->dst->port);
	/* connect() to 0.0.0.0 or :: reaches this host: never what was meant. */
	if (addr_unspecified(&m->dst))
		ERR("unspecified destination address");
	m->src.port = (uint16_t)nf->src->port;
	m->dst.port = (uint16_t)nf->dst->port;
	m->source_flow_id = nf->flow_id;
	m->start_us = nf->start_time_us;
	if (nf->owner) {
		m->owner.pid = nf->owner->pid;
		m->owner.uid = nf->owner->uid;
		m->owner.gid = nf->owner->gid;
		m->owner.cgroup_id = nf->owner->cgroup_id;
	}
	/* Bounded: a comm is 16 bytes, a cgroup path rarely over a few hundred. */
	m->owner.name = dup_bounded(nf->owner ? nf->owner->name : NULL, 255);
	m->owner.cgroup = dup_bounded(nf->owner ? nf->owner->cgroup : NULL, 4095);
	if (m->owner.name == NULL || m->owner.cgroup == NULL) {
		flow_meta_clear(m);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
bad:
	memset(m, 0, sizeof(*m));
	return -1;
}

void
flow_meta_clear(struct flow_meta *m)
{
	free(m->owner.name);
	free(m->owner.cgroup);
	m->owner.name = m->owner.cgroup = NULL;
}

socklen_t
flow_addr_sockaddr(const struct flow_addr *fa, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (fa->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(fa->port);
		memcpy(&sin->sin_addr, fa->addr, 4);
		return sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(fa->port);
		memcpy(&sin6->sin6_addr, fa->addr, 16);
		return sizeof(*sin6);
	}
}

const char *
flow_addr_str(const struct flow_addr *fa, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (fa->family != AF_INET && fa->family != AF_INET6) {
		snprintf(buf, len, "?");
		return buf;
	}
	inet_ntop(fa->family, fa->addr, a, sizeof(a));
	snprintf(buf, len, fa->family == AF_INET6 ? "[%s]:%u" : "%s:%u", a,
	    fa->port);
	return buf;
}

const char *
flow_end_str(enum flow_end e)
{
	switch (e) {
	case FLOW_END_NONE:		return "running";
	case FLOW_END_CLOSED:		return "closed";
	case FLOW_END_APP_RESET:	return "app reset";
	case FLOW_END_UPSTREAM_RESET:	return "upstream reset";
	case FLOW_END_CONNECT_FAILED:	return "connect failed";
	case FLOW_END_CONNECT_TIMEOUT:	return "connect timeout";
	case FLOW_END_IDLE:		return "idle";
	case FLOW_END_SOURCE_CLOSED:	return "closed by source";
	case FLOW_END_SHUTDOWN:		return "proxyd shutdown";
	case FLOW_END_INTERNAL:		return "internal error";
	}
	return "?";
}

const char *
flow_transport_str(enum flow_transport t)
{
	return t == FLOW_TCP ? "tcp" : t == FLOW_UDP ? "udp" : "?";
}

void
flow_keep_first(uint8_t *first, uint16_t *len, const void *data, size_t n)
{
	size_t room = FLOW_FIRST_BYTES - *len;

	if (n > room)
		n = room;
	memcpy(first + *len, data, n);
	*len += (uint16_t)n;
}

int
flow_ring_init(struct flow_ring *r, size_t cap)
{
	memset(r, 0, sizeof(*r));
	if (cap == 0)
		cap = 1;
	if ((r->slots = calloc(cap, sizeof(*r->slots))) == NULL)
		return -1;
	r->cap = cap;
	return 0;
}

void
flow_ring_free(struct flow_ring *r)
{
	size_t i;

	for (i = 0; i < r->cap && r->slots; i++)
		flow_meta_clear(&r->slots[i].meta);
	free(r->slots);
	memset(r, 0, sizeof(*r));
}

void
flow_ring_push(struct flow_ring *r, struct flow_record *rec)
{
	struct flow_record *slot = &r->slots[r->head];

	if (r->count == r->cap) {
		flow_meta_clear(&slot->meta);
		r->evicted++;
	} else
		r->count++;
	*slot = *rec;
	rec->meta.owner.name = rec->meta.owner.cgroup = NULL;
	r->head = (r->head + 1) % r->cap;
}

const struct flow_record *
flow_ring_get(const struct flow_ring *r, size_t i)
{
	if (i >= r->count)
		return NULL;
	return &r->slots[(r->head + r->cap - r->count + i) % r->cap];
}

struct flow_record *
flow_ring_find(struct flow_ring *r, uint64_t id)
{
	size_t i;

	for (i = 0; i < r->count; i++) {
		struct flow_record *rec =
		    &r->slots[(r->head + r->cap - 1 - i) % r->cap];

		if (rec->id == id)
			return rec;
	}
	return NULL;
}
