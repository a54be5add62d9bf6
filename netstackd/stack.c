/*
 * netstackd's stack: connection tables, demultiplexing and timers over
 * ip.c and tcp.c (see stack.h for the model).
 *
 * Input path: ns_stack_input -> ip_parse -> {tcp_demux | udp_demux |
 * ip_handle_icmp}; tcp_demux -> table hit: tcp_input | TIME_WAIT entry |
 * SYN: new flow | else RST.  After anything touched a connection,
 * flow_after() refiles its deadline in the heap and queues its events.
 */
#include <stdlib.h>
#include <string.h>

#include "netstackd/checksum.h"
#include "netstackd/stack.h"

#define HEAP_NONE	UINT32_MAX

/* A released connection in TIME_WAIT, shrunk to what answering needs. */
struct ns_tw {
	struct tcp_tuple tuple;
	uint32_t	snd_nxt;	/* our sequence after the FIN */
	uint32_t	rcv_nxt;	/* after the peer's FIN */
	uint64_t	expires;
	struct ns_tw	*hnext;
	struct ns_tw	*fifo_prev, *fifo_next;	/* oldest first */
};

struct ns_stack {
	struct ns_stack_config cfg;
	struct tcp_mem	mem;
	struct ns_stack_stats stats;
	uint8_t		*scratch;	/* cfg.tcp.mtu bytes: every packet we build */
	uint64_t	next_id;

	/* Tables: chained hashes, nbuckets a power of two. */
	uint32_t	nbuckets;
	struct ns_tcp_flow **tcp_tab;
	struct ns_udp_flow **udp_tab;
	struct ns_tw	**tw_tab;

	/* Deadline heap of TCP flows with a deadline (min at [0]). */
	struct ns_tcp_flow **heap;
	uint32_t	heap_len, heap_cap;

	struct ns_tcp_flow *ready_head, *ready_tail;	/* pending events */
	struct ns_udp_flow *lru_head, *lru_tail;	/* least recently active first */
	struct ns_udp_flow *expired;	/* expired, event not yet taken (via hnext) */
	struct ns_tw	*tw_head, *tw_tail;
};

void
ns_stack_config_defaults(struct ns_stack_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	tcp_config_defaults(&cfg->tcp);
	/* We relay proxyd's writes, which its socket already coalesced;
	 * Nagle on top would hold a response's second piece until the
	 * application's (delayed) ACK: up to 40 ms per exchange. */
	cfg->tcp.nagle = false;
	cfg->max_tcp_flows = 4096;
	cfg->max_time_wait = 4096;
	cfg->max_udp_flows = 4096;
	cfg->udp_idle_ms = 60000;
	cfg->mem_limit = 512ull * 1024 * 1024;
}

/* ------------------------------------------------------------ hashing */

static uint64_t
mix64(uint64_t x)
{
	/* splitmix64 finaliser: a bijection with good avalanche. */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

/* Keyed hash of a tuple: applications may choose their ports, so the
 * bucket must not be predictable without the secret. */
static uint64_t
tuple_hash(const struct ns_stack *s, const struct tcp_tuple *t)
{
	uint64_t h = s->cfg.secret ^ t->version, w;
	int i;

	for (i = 0; i < 16; i += 8) {
		memcpy(&w, t->laddr + i, 8);
		h = mix64(h ^ w);
		memcpy(&w, t->raddr + i, 8);
		h = mix64(h ^ w);
	}
	return mix64(h ^ ((uint64_t)t->lport << 16 | t->rport));
}

static bool
tuple_eq(const struct tcp_tuple *a, const struct tcp_tuple *b)
{
	return a->version == b->version && a->lport == b->lport &&
	    a->rport == b->rport && memcmp(a->laddr, b->laddr, 16) == 0 &&
	    memcmp(a->raddr, b->raddr, 16) == 0;
}

/* ------------------------------------------------------------ output */

static void
stack_emit(void *ctx, const uint8_t *pkt, size_t len)
{
	struct ns_stack *s = ctx;

	s->stats.packets_out++;
	s->cfg.output(s->cfg.output_ctx, pkt, len);
}

static void
stack_emitv(void *ctx, const uint8_t *hdr, size_t hdrlen,
    const struct iovec *payload, int npayload)
{
	struct ns_stack *s = ctx;

	s->stats.packets_out++;
	s->cfg.outputv(s->cfg.output_ctx, hdr, hdrlen, payload, npayload);
}

/* ------------------------------------------------------------ lifecycle */

struct ns_stack *
ns_stack_new(const struct ns_stack_config *cfg)
{
	struct ns_stack *s;
	uint32_t n = 64, most;

	if (cfg->output == NULL || cfg->tcp.mtu < 576 || cfg->tcp.mtu > 65535 ||
	    cfg->max_tcp_flows == 0)
		return NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->cfg = *cfg;
	s->mem.limit = cfg->mem_limit;
	most = cfg->max_tcp_flows;
	if (cfg->max_udp_flows > most)
		most = cfg->max_udp_flows;
	if (cfg->max_time_wait > most)
		most = cfg->max_time_wait;
	while (n < most && n < (1u << 24))
		n <<= 1;
	s->nbuckets = n;
	s->scratch = malloc(cfg->tcp.mtu);
	s->tcp_tab = calloc(n, sizeof(*s->tcp_tab));
	s->udp_tab = calloc(n, sizeof(*s->udp_tab));
	s->tw_tab = calloc(n, sizeof(*s->tw_tab));
	s->heap_cap = cfg->max_tcp_flows;
	s->heap = calloc(s->heap_cap, sizeof(*s->heap));
	if (s->scratch == NULL || s->tcp_tab == NULL || s->udp_tab == NULL ||
	    s->tw_tab == NULL || s->heap == NULL) {
		ns_stack_free(s);
		return NULL;
	}
	s->cfg.tcp.mem = &s->mem;
	s->cfg.tcp.scratch = s->scratch;
	s->cfg.tcp.emit = stack_emit;
	s->cfg.tcp.emitv = cfg->outputv != NULL ? stack_emitv : NULL;
	s->cfg.tcp.emit_ctx = s;
	return s;
}

void
ns_stack_free(struct ns_stack *s)
{
	uint32_t i;

	if (s == NULL)
		return;
	for (i = 0; s->tcp_tab != NULL && i < s->nbuckets; i++) {
		while (s->tcp_tab[i] != NULL) {
			struct ns_tcp_flow *f = s->tcp_tab[i];

			s->tcp_tab[i] = f->hnext;
			tcp_conn_destroy(&f->c);
			free(f);
		}
	}
	for (i = 0; s->udp_tab != NULL && i < s->nbuckets; i++) {
		while (s->udp_tab[i] != NULL) {
			struct ns_udp_flow *u = s->udp_tab[i];

			s->udp_tab[i] = u->hnext;
			free(u);
		}
	}
	while (s->expired != NULL) {
		struct ns_udp_flow *u = s->expired;

		s->expired = u->hnext;
		free(u);
	}
	while (s->tw_head != NULL) {
		struct ns_tw *t = s->tw_head;

		s->tw_head = t->fifo_next;
		free(t);
	}
	free(s->heap);
	free(s->tw_tab);
	free(s->udp_tab);
	free(s->tcp_tab);
	free(s->scratch);
	free(s);
}

const struct ns_stack_stats *
ns_stack_stats(const struct ns_stack *s)
{
	return &s->stats;
}

uint64_t
ns_stack_mem_used(const struct ns_stack *s)
{
	return s->mem.used;
}

/* ------------------------------------------------------------ heap */

static void
heap_swap(struct ns_stack *s, uint32_t a, uint32_t b)
{
	struct ns_tcp_flow *t = s->heap[a];

	s->heap[a] = s->heap[b];
	s->heap[b] = t;
	s->heap[a]->heap_idx = a;
	s->heap[b]->heap_idx = b;
}

static void
heap_up(struct ns_stack *s, uint32_t i)
{
	while (i > 0 && s->heap[(i - 1) / 2]->deadline > s->heap[i]->deadline) {
		heap_swap(s, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
heap_down(struct ns_stack *s, uint32_t i)
{
	uint32_t l, m;

	for (;;) {
		l = 2 * i + 1;
		m = i;
		if (l < s->heap_len && s->heap[l]->deadline < s->heap[m]->deadline)
			m = l;
		if (l + 1 < s->heap_len &&
		    s->heap[l + 1]->deadline < s->heap[m]->deadline)
			m = l + 1;
		if (m == i)
			return;
		heap_swap(s, i, m);
		i = m;
	}
}

static void
heap_remove(struct ns_stack *s, struct ns_tcp_flow *f)
{
	uint32_t i = f->heap_idx;

	if (i == HEAP_NONE)
		return;
	s->heap_len--;
	if (i != s->heap_len) {
		s->heap[i] = s->heap[s->heap_len];
		s->heap[i]->heap_idx = i;
		heap_down(s, i);
		heap_up(s, i);
	}
	f->heap_idx = HEAP_NONE;
}

/* Refile f under its current deadline (or take it out: no deadline). */
static void
heap_update(struct ns_stack *s, struct ns_tcp_flow *f)
{
	uint64_t d = tcp_poll_at(&f->c);

	if (d == TCP_NEVER) {
		heap_remove(s, f);
		f->deadline = d;
		return;
	}
	if (f->heap_idx == HEAP_NONE) {
		/* heap_cap == max_tcp_flows: every flow fits. */
		f->deadline = d;
		f->heap_idx = s->heap_len;
		s->heap[s->heap_len++] = f;
		heap_up(s, f->heap_idx);
		return;
	}
	if (d == f->deadline)
		return;
	f->deadline = d;
	heap_down(s, f->heap_idx);
	heap_up(s, f->heap_idx);
}

/* ------------------------------------------------------------ TCP table */

static struct ns_tcp_flow *
tcp_lookup(struct ns_stack *s, const struct tcp_tuple *t, uint32_t b)
{
	struct ns_tcp_flow *f;

	for (f = s->tcp_tab[b]; f != NULL; f = f->hnext)
		if (tuple_eq(&f->c.tuple, t))
			return f;
	return NULL;
}

static void
tcp_unlink(struct ns_stack *s, struct ns_tcp_flow *f)
{
	uint32_t b = (uint32_t)tuple_hash(s, &f->c.tuple) & (s->nbuckets - 1);
	struct ns_tcp_flow **pp, *r, *prev = NULL;

	for (pp = &s->tcp_tab[b]; *pp != NULL; pp = &(*pp)->hnext) {
		if (*pp == f) {
			*pp = f->hnext;
			break;
		}
	}
	heap_remove(s, f);
	if (f->ready) {
		for (r = s->ready_head; r != NULL; prev = r, r = r->rnext) {
			if (r != f)
				continue;
			if (prev != NULL)
				prev->rnext = f->rnext;
			else
				s->ready_head = f->rnext;
			if (s->ready_tail == f)
				s->ready_tail = prev;
			break;
		}
		f->ready = false;
	}
	s->stats.tcp_flows_active--;
}

/* After anything touched f: deadline and events. */
static void
flow_after(struct ns_stack *s, struct ns_tcp_flow *f)
{
	/* The stack's totals follow each connection's as they grow. */
	s->stats.tcp_retransmits += f->c.stats.retransmits - f->rtx_counted;
	f->rtx_counted = f->c.stats.retransmits;
	s->stats.tcp_timeouts += f->c.stats.timeouts - f->timeouts_counted;
	f->timeouts_counted = f->c.stats.timeouts;
	heap_update(s, f);
	if ((f->c.events || f->is_new) && !f->ready) {
		f->ready = true;
		f->rnext = NULL;
		if (s->ready_tail != NULL)
			s->ready_tail->rnext = f;
		else
			s->ready_head = f;
		s->ready_tail = f;
	}
}

static uint32_t
make_iss(struct ns_stack *s, const struct tcp_tuple *t, uint64_t now)
{
	/* RFC 6528: a clock (4 µs ticks) plus a keyed hash of the tuple. */
	return (uint32_t)(now * 250) + (uint32_t)mix64(tuple_hash(s, t) ^
	    0x6a09e667f3bcc908ull);
}

static struct ns_tcp_flow *
tcp_create(struct ns_stack *s, const struct tcp_tuple *t, uint32_t b,
    uint64_t now)
{
	struct ns_tcp_flow *f;

	if (s->stats.tcp_flows_active >= s->cfg.max_tcp_flows) {
		s->stats.tcp_refused_limit++;
		return NULL;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL) {
		s->stats.tcp_refused_limit++;
		return NULL;
	}
	tcp_conn_init(&f->c, &s->cfg.tcp, t, make_iss(s, t, now), now);
	f->id = ++s->next_id;
	f->heap_idx = HEAP_NONE;
	f->deadline = TCP_NEVER;
	f->is_new = true;
	f->hnext = s->tcp_tab[b];
	s->tcp_tab[b] = f;
	s->stats.tcp_flows_created++;
	s->stats.tcp_flows_active++;
	return f;
}

/* ------------------------------------------------------------ TIME_WAIT */

static struct ns_tw *
tw_lookup(struct ns_stack *s, const struct tcp_tuple *t, uint32_t b)
{
	struct ns_tw *w;

	for (w = s->tw_tab[b]; w != NULL; w = w->hnext)
		if (tuple_eq(&w->tuple, t))
			return w;
	return NULL;
}

static void
tw_remove(struct ns_stack *s, struct ns_tw *w)
{
	uint32_t b = (uint32_t)tuple_hash(s, &w->tuple) & (s->nbuckets - 1);
	struct ns_tw **pp;

	for (pp = &s->tw_tab[b]; *pp != NULL; pp = &(*pp)->hnext) {
		if (*pp == w) {
			*pp = w->hnext;
			break;
		}
	}
	if (w->fifo_prev != NULL)
		w->fifo_prev->fifo_next = w->fifo_next;
	else
		s->tw_head = w->fifo_next;
	if (w->fifo_next != NULL)
		w->fifo_next->fifo_prev = w->fifo_prev;
	else
		s->tw_tail = w->fifo_prev;
	s->stats.tcp_time_wait_entries--;
	free(w);
}

static void
tw_add(struct ns_stack *s, const struct tcp_conn *c)
{
	uint32_t b = (uint32_t)tuple_hash(s, &c->tuple) & (s->nbuckets - 1);
	struct ns_tw *w;

	if (s->cfg.max_time_wait == 0)
		return;
	if (s->stats.tcp_time_wait_entries >= s->cfg.max_time_wait) {
		/* Bounded: the oldest entry has the least time left. */
		tw_remove(s, s->tw_head);
		s->stats.tcp_time_wait_evicted++;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return;
	w->tuple = c->tuple;
	w->snd_nxt = c->snd_max;
	w->rcv_nxt = c->rcv_nxt;
	w->expires = c->t_close;
	w->hnext = s->tw_tab[b];
	s->tw_tab[b] = w;
	/* Entries share one lifetime, so appending keeps expiry order
	 * (a connection released late may carry an earlier expiry; it
	 * then lingers a little, which is harmless). */
	w->fifo_prev = s->tw_tail;
	if (s->tw_tail != NULL)
		s->tw_tail->fifo_next = w;
	else
		s->tw_head = w;
	s->tw_tail = w;
	s->stats.tcp_time_wait_entries++;
}

/* A segment for a tuple in TIME_WAIT.  Returns true if consumed; false if
 * the entry was removed and the SYN should open a new connection. */
static bool
tw_input(struct ns_stack *s, struct ns_tw *w, const struct tcp_seg *seg)
{
	size_t n;

	/* RFC 1337: RSTs in TIME_WAIT are ignored (no assassination). */
	if (seg->flags & TH_RST)
		return true;
	/* A new SYN above the old sequence space reopens the tuple
	 * (RFC 9293 §3.10.7.4, as BSD does). */
	if ((seg->flags & (TH_SYN | TH_ACK)) == TH_SYN &&
	    SEQ_GT(seg->seq, w->rcv_nxt)) {
		tw_remove(s, w);
		return false;
	}
	n = tcp_build_bare(&w->tuple, w->snd_nxt, w->rcv_nxt, TH_ACK, 0,
	    s->scratch, s->cfg.tcp.mtu);
	if (n > 0)
		stack_emit(s, s->scratch, n);
	return true;
}

/* ------------------------------------------------------------ input */

static bool
unicast_dst(const struct ip_pkt *p)
{
	static const uint8_t zero[16];

	/* Replies are sent from the destination: it must be a unicast
	 * address we can speak as (ip_parse() already vetted the source). */
	if (p->version == 4)
		return p->dst[0] != 0 && p->dst[0] < 224;
	return p->dst[0] != 0xff && memcmp(p->dst, zero, 16) != 0;
}

static void
fill_tuple(struct tcp_tuple *t, const struct ip_pkt *p, uint16_t sport,
    uint16_t dport)
{
	memset(t, 0, sizeof(*t));
	t->version = p->version;
	memcpy(t->laddr, p->dst, 16);
	memcpy(t->raddr, p->src, 16);
	t->lport = dport;
	t->rport = sport;
}

static void
tcp_demux(struct ns_stack *s, const struct ip_pkt *p, uint64_t now,
    struct ns_input *res)
{
	struct tcp_seg seg;
	struct tcp_tuple t;
	struct ns_tcp_flow *f;
	struct ns_tw *w;
	uint32_t b;
	size_t n;

	if (tcp_parse(p->l4, p->l4len, &seg) != 0) {
		s->stats.tcp_malformed++;
		return;
	}
	if (!ip_l4_csum_ok(p)) {
		s->stats.tcp_bad_csum++;
		return;
	}
	if (seg.sport == 0 || seg.dport == 0) {
		s->stats.drop_multicast_dst++;
		return;
	}
	res->kind = NS_IN_CONSUMED;
	fill_tuple(&t, p, seg.sport, seg.dport);
	b = (uint32_t)tuple_hash(s, &t) & (s->nbuckets - 1);
	if ((f = tcp_lookup(s, &t, b)) != NULL) {
		tcp_input(&f->c, &seg, now);
		flow_after(s, f);
		return;
	}
	if ((w = tw_lookup(s, &t, b)) != NULL && tw_input(s, w, &seg))
		return;
	if ((seg.flags & (TH_SYN | TH_ACK | TH_RST | TH_FIN)) == TH_SYN &&
	    (f = tcp_create(s, &t, b, now)) != NULL) {
		tcp_input(&f->c, &seg, now);
		flow_after(s, f);
		return;
	}
	/* Unknown tuple, or no room for it: RST (RFC 9293 §3.10.7.1). */
	n = tcp_build_rst_reply(&t, &seg, s->scratch, s->cfg.tcp.mtu);
	if (n > 0) {
		s->stats.tcp_rst_unknown++;
		stack_emit(s, s->scratch, n);
	}
}

static void
lru_unlink(struct ns_stack *s, struct ns_udp_flow *u)
{
	if (u->lru_prev != NULL)
		u->lru_prev->lru_next = u->lru_next;
	else
		s->lru_head = u->lru_next;
	if (u->lru_next != NULL)
		u->lru_next->lru_prev = u->lru_prev;
	else
		s->lru_tail = u->lru_prev;
	u->lru_prev = u->lru_next = NULL;
}

static void
lru_append(struct ns_stack *s, struct ns_udp_flow *u)
{
	u->lru_prev = s->lru_tail;
	u->lru_next = NULL;
	if (s->lru_tail != NULL)
		s->lru_tail->lru_next = u;
	else
		s->lru_head = u;
	s->lru_tail = u;
}

static void
udp_unlink(struct ns_stack *s, struct ns_udp_flow *u)
{
	uint32_t b = (uint32_t)tuple_hash(s, &u->tuple) & (s->nbuckets - 1);
	struct ns_udp_flow **pp;

	for (pp = &s->udp_tab[b]; *pp != NULL; pp = &(*pp)->hnext) {
		if (*pp == u) {
			*pp = u->hnext;
			break;
		}
	}
	lru_unlink(s, u);
	s->stats.udp_flows_active--;
}

static void
udp_touch(struct ns_stack *s, struct ns_udp_flow *u, uint64_t now)
{
	u->last_active = now;
	if (s->lru_tail != u) {
		lru_unlink(s, u);
		lru_append(s, u);
	}
}

static void
udp_demux(struct ns_stack *s, const struct ip_pkt *p, uint64_t now,
    struct ns_input *res)
{
	struct tcp_tuple t;
	struct ns_udp_flow *u;
	size_t ulen;
	uint32_t b;

	if (p->l4len < 8) {
		s->stats.udp_malformed++;
		return;
	}
	ulen = (size_t)(p->l4[4] << 8 | p->l4[5]);
	if (ulen < 8 || ulen > p->l4len) {
		s->stats.udp_malformed++;
		return;
	}
	if (!ip_l4_csum_ok(p)) {
		s->stats.udp_bad_csum++;
		return;
	}
	fill_tuple(&t, p, (uint16_t)(p->l4[0] << 8 | p->l4[1]),
	    (uint16_t)(p->l4[2] << 8 | p->l4[3]));
	if (t.lport == 0 || t.rport == 0) {
		s->stats.drop_multicast_dst++;
		return;
	}
	b = (uint32_t)tuple_hash(s, &t) & (s->nbuckets - 1);
	for (u = s->udp_tab[b]; u != NULL; u = u->hnext)
		if (tuple_eq(&u->tuple, &t))
			break;
	if (u == NULL) {
		if (s->stats.udp_flows_active >= s->cfg.max_udp_flows ||
		    (u = calloc(1, sizeof(*u))) == NULL) {
			s->stats.udp_refused_limit++;
			return;
		}
		u->tuple = t;
		u->id = ++s->next_id;
		u->hnext = s->udp_tab[b];
		s->udp_tab[b] = u;
		lru_append(s, u);
		s->stats.udp_flows_created++;
		s->stats.udp_flows_active++;
		res->udp_new = true;
	}
	udp_touch(s, u, now);
	u->packets_in++;
	u->bytes_in += ulen - 8;
	res->kind = NS_IN_UDP;
	res->udp = u;
	res->data = p->l4 + 8;
	res->len = ulen - 8;
}

void
ns_stack_input(struct ns_stack *s, const uint8_t *pkt, size_t len,
    uint64_t now, struct ns_input *res)
{
	struct ip_pkt p;
	size_t outlen;

	memset(res, 0, sizeof(*res));
	if (ip_parse(pkt, len, &p, &s->stats.ip) != 0)
		return;
	if (!unicast_dst(&p)) {
		s->stats.drop_multicast_dst++;
		return;
	}
	switch (p.proto) {
	case IPPROTO_NS_TCP:
		tcp_demux(s, &p, now, res);
		break;
	case IPPROTO_NS_UDP:
		udp_demux(s, &p, now, res);
		break;
	default:	/* ICMP / ICMPv6, as ip_parse() allows */
		if (ip_handle_icmp(&p, s->scratch, s->cfg.tcp.mtu, &outlen,
		    &s->stats.ip)) {
			stack_emit(s, s->scratch, outlen);
			res->kind = NS_IN_CONSUMED;
		}
		break;
	}
}

/* ------------------------------------------------------------ timers */

uint64_t
ns_stack_poll_at(const struct ns_stack *s)
{
	uint64_t t = TCP_NEVER;

	if (s->heap_len > 0)
		t = s->heap[0]->deadline;
	if (s->lru_head != NULL && s->lru_head->last_active + s->cfg.udp_idle_ms < t)
		t = s->lru_head->last_active + s->cfg.udp_idle_ms;
	if (s->tw_head != NULL && s->tw_head->expires < t)
		t = s->tw_head->expires;
	if (s->ready_head != NULL || s->expired != NULL)
		t = 0;	/* events are waiting: run now */
	return t;
}

void
ns_stack_on_timer(struct ns_stack *s, uint64_t now)
{
	struct ns_tcp_flow *f;
	struct ns_udp_flow *u;
	uint32_t guard = s->heap_len;

	/* Each flow runs at most once per tick: a timer that re-arms for
	 * "now" waits for the next tick instead of spinning. */
	while (s->heap_len > 0 && s->heap[0]->deadline <= now && guard-- > 0) {
		f = s->heap[0];
		tcp_on_timer(&f->c, now);
		flow_after(s, f);
	}
	while ((u = s->lru_head) != NULL &&
	    u->last_active + s->cfg.udp_idle_ms <= now) {
		udp_unlink(s, u);
		s->stats.udp_flows_expired++;
		u->hnext = s->expired;
		s->expired = u;
	}
	while (s->tw_head != NULL && s->tw_head->expires <= now)
		tw_remove(s, s->tw_head);
}

int
ns_stack_next_event(struct ns_stack *s, struct ns_event *ev)
{
	struct ns_tcp_flow *f;
	struct ns_udp_flow *u;

	memset(ev, 0, sizeof(*ev));
	if ((f = s->ready_head) != NULL) {
		s->ready_head = f->rnext;
		if (s->ready_head == NULL)
			s->ready_tail = NULL;
		f->ready = false;
		ev->type = NS_EV_TCP;
		ev->tcp = f;
		ev->tcp_events = tcp_take_events(&f->c) |
		    (f->is_new ? NS_TCP_EV_NEW : 0);
		f->is_new = false;
		ev->id = f->id;
		ev->user = f->user;
		return 1;
	}
	if ((u = s->expired) != NULL) {
		s->expired = u->hnext;
		ev->type = NS_EV_UDP_EXPIRED;
		ev->id = u->id;
		ev->user = u->user;
		free(u);
		return 1;
	}
	return 0;
}

/* ------------------------------------------------------------ app: TCP */

ssize_t
ns_tcp_send(struct ns_stack *s, struct ns_tcp_flow *f, const void *data,
    size_t len, uint64_t now)
{
	ssize_t n = tcp_send(&f->c, data, len, now);

	flow_after(s, f);
	return n;
}

size_t
ns_tcp_recv(struct ns_stack *s, struct ns_tcp_flow *f, void *buf, size_t len,
    uint64_t now)
{
	size_t n = tcp_recv(&f->c, buf, len, now);

	flow_after(s, f);
	return n;
}

size_t
ns_tcp_send_space(const struct ns_tcp_flow *f)
{
	return tcp_send_space(&f->c);
}

int
ns_tcp_send_room(struct ns_tcp_flow *f, struct iovec iov[2])
{
	return tcp_send_room(&f->c, iov);
}

void
ns_tcp_send_commit(struct ns_stack *s, struct ns_tcp_flow *f, size_t n,
    uint64_t now)
{
	tcp_send_commit(&f->c, n, now);
	flow_after(s, f);
}

size_t
ns_tcp_recv_peek(struct ns_tcp_flow *f, const uint8_t **p)
{
	return tcp_recv_peek(&f->c, p);
}

void
ns_tcp_recv_consume(struct ns_stack *s, struct ns_tcp_flow *f, size_t n,
    uint64_t now)
{
	tcp_recv_consume(&f->c, n, now);
	flow_after(s, f);
}

void
ns_tcp_shutdown(struct ns_stack *s, struct ns_tcp_flow *f, uint64_t now)
{
	tcp_shutdown(&f->c, now);
	flow_after(s, f);
}

void
ns_tcp_abort(struct ns_stack *s, struct ns_tcp_flow *f, uint64_t now)
{
	tcp_abort(&f->c, now);
	flow_after(s, f);
}

void
ns_tcp_release(struct ns_stack *s, struct ns_tcp_flow *f, uint64_t now)
{
	if (f->c.state != TCP_CLOSED && f->c.state != TCP_TIME_WAIT)
		tcp_abort(&f->c, now);
	tcp_unlink(s, f);
	if (f->c.state == TCP_TIME_WAIT)
		tw_add(s, &f->c);
	tcp_conn_destroy(&f->c);
	free(f);
}

/* ------------------------------------------------------------ app: UDP */

int
ns_udp_send(struct ns_stack *s, struct ns_udp_flow *u, const void *data,
    size_t len, uint64_t now)
{
	size_t hl = ip_hdr_len(u->tuple.version), total = hl + 8 + len;
	uint8_t *pkt = s->scratch;

	if (total > s->cfg.tcp.mtu) {
		s->stats.udp_too_big++;
		return -1;
	}
	ip_write_hdr(pkt, u->tuple.version, u->tuple.laddr, u->tuple.raddr,
	    IPPROTO_NS_UDP, 8 + len);
	pkt[hl] = (uint8_t)(u->tuple.lport >> 8);
	pkt[hl + 1] = (uint8_t)u->tuple.lport;
	pkt[hl + 2] = (uint8_t)(u->tuple.rport >> 8);
	pkt[hl + 3] = (uint8_t)u->tuple.rport;
	pkt[hl + 4] = (uint8_t)((8 + len) >> 8);
	pkt[hl + 5] = (uint8_t)(8 + len);
	memcpy(pkt + hl + 8, data, len);
	ip_set_l4_csum(pkt, total, 6);
	u->packets_out++;
	u->bytes_out += len;
	udp_touch(s, u, now);
	stack_emit(s, pkt, total);
	return 0;
}

void
ns_udp_refuse(struct ns_stack *s, struct ns_udp_flow *u)
{
	/* Quote a synthesised copy of the app's datagram header: the kernel
	 * matches the error to its socket by these addresses and ports. */
	uint8_t orig[IPV6_HDR_LEN + 8], out[IPV6_HDR_LEN + 8 + sizeof(orig)];
	size_t hl = ip_hdr_len(u->tuple.version), n;
	struct ip_pkt p;

	ip_write_hdr(orig, u->tuple.version, u->tuple.raddr, u->tuple.laddr,
	    IPPROTO_NS_UDP, 8);
	orig[hl] = (uint8_t)(u->tuple.rport >> 8);
	orig[hl + 1] = (uint8_t)u->tuple.rport;
	orig[hl + 2] = (uint8_t)(u->tuple.lport >> 8);
	orig[hl + 3] = (uint8_t)u->tuple.lport;
	orig[hl + 4] = 0;
	orig[hl + 5] = 8;
	ip_set_l4_csum(orig, hl + 8, 6);
	memset(&p, 0, sizeof(p));
	p.version = u->tuple.version;
	p.proto = IPPROTO_NS_UDP;
	memcpy(p.src, u->tuple.raddr, 16);
	memcpy(p.dst, u->tuple.laddr, 16);
	p.l3 = orig;
	p.l3len = hl + 8;
	p.l4 = orig + hl;
	p.l4len = 8;
	n = icmp_build_unreach(&p, ICMP_UNREACH_PORT, out, sizeof(out));
	if (n > 0) {
		s->stats.ip.icmp_unreach_sent++;
		stack_emit(s, out, n);
	}
	ns_udp_close(s, u);
}

void
ns_udp_close(struct ns_stack *s, struct ns_udp_flow *u)
{
	udp_unlink(s, u);
	free(u);
}
