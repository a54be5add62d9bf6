/*
 * Flow descriptions and records for proxyd (see flow.h): address
 * formatting, and the bounded ring of finished flows that the flow
 * store will later drain.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/flow.h"

void
flow_meta_clear(struct flow_meta *m)
{
	/* The owner is inline; only the executable's path is on the heap. */
	memset(&m->owner, 0, sizeof(m->owner));
	free(m->exe);
	m->exe = NULL;
}

socklen_t
flow_addr_sockaddr(const struct endpoint *fa, struct sockaddr_storage *ss)
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
flow_addr_str(const struct endpoint *fa, char *buf, size_t len)
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
	case FLOW_END_REFUSED:		return "refused";
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
		return 0;	/* keeps nothing: every push is dropped */
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
	struct flow_record *slot;

	if (r->cap == 0) {
		r->evicted++;
		return;
	}
	slot = &r->slots[r->head];
	if (r->count == r->cap) {
		flow_meta_clear(&slot->meta);
		r->evicted++;
	} else
		r->count++;
	*slot = *rec;
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
