/*
 * netstackd's stack: turns packets from the TUN into flows and back.
 *
 * Owns the TCP connection table (hash by 4-tuple, v4 and v6), a bounded
 * TIME_WAIT table of compact entries, and the UDP flow table with idle
 * expiry.  Like tcp.c it is pure: no I/O, no clock, no libev.  The daemon
 * (netstackd.c) drives it:
 *
 *   packet in     ns_stack_input()   (one packet; UDP payloads come back
 *                                     in struct ns_input, zero-copy)
 *   packets out   cfg.output()       (synchronous; copy into the TUN batch)
 *   app actions   ns_tcp_send/recv/shutdown/abort/release, ns_udp_send,
 *                 ns_udp_refuse, ns_udp_close
 *   events        ns_stack_next_event() until it returns 0, after every
 *                 input/timer/app call
 *   timer         ns_stack_poll_at() -> arm one ev_timer ->
 *                 ns_stack_on_timer()
 *
 * Deadlines of all TCP connections sit in one binary min-heap; UDP flows in
 * an LRU list (equal idle timeouts, so the head expires first) and TIME_WAIT
 * entries in a FIFO (equal lifetimes) — so poll_at is O(1) and a timer tick
 * touches only what expired.
 *
 * Lifetime of a TCP flow: created on a SYN for an unknown tuple (event with
 * NS_TCP_EV_NEW), then TCP_EV_* events; after TCP_EV_CLOSED the
 * application calls ns_tcp_release() and must forget the pointer.  Release
 * before that aborts the connection (RST).  A released TIME_WAIT
 * connection shrinks to a TIME_WAIT entry.
 */
#ifndef NETSTACKD_STACK_H
#define NETSTACKD_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netstackd/ip.h"
#include "netstackd/tcp.h"

#define NS_TCP_EV_NEW	0x100	/* with TCP_EV_*: a new flow for the app */

struct ns_stack_config {
	struct tcp_config tcp;		/* per-connection settings; mem,
					 * scratch and emit are set by the stack */
	uint32_t	max_tcp_flows;	/* SYNs beyond this are refused (RST) */
	uint32_t	max_time_wait;	/* oldest entry evicted beyond this */
	uint32_t	max_udp_flows;	/* new UDP tuples beyond this: dropped */
	uint32_t	udp_idle_ms;	/* UDP flow expires after this silence */
	uint64_t	mem_limit;	/* all TCP rings together */
	uint64_t	secret;		/* keys ISNs and hashes: random per run */
	void		(*output)(void *ctx, const uint8_t *pkt, size_t len);
	/*
	 * Optional: TCP segments with data as headers + payload slices
	 * (tcp_config.emitv), for a writev() to the TUN.  NULL: output().
	 */
	void		(*outputv)(void *ctx, const uint8_t *hdr, size_t hdrlen,
			    const struct iovec *payload, int npayload);
	void		*output_ctx;
};
void	ns_stack_config_defaults(struct ns_stack_config *cfg);

struct ns_stack_stats {
	struct ip_stats	ip;
	uint64_t	packets_out;
	uint64_t	tcp_malformed;		/* data offset lies */
	uint64_t	tcp_bad_csum;
	uint64_t	tcp_flows_created;
	uint64_t	tcp_flows_active;
	uint64_t	tcp_refused_limit;	/* SYN refused: max_tcp_flows */
	uint64_t	tcp_rst_unknown;	/* RST sent for an unknown tuple */
	uint64_t	tcp_time_wait_entries;
	uint64_t	tcp_time_wait_evicted;
	uint64_t	tcp_retransmits;	/* segments sent again, all flows */
	uint64_t	tcp_timeouts;		/* RTO expirations, all flows */
	uint64_t	udp_malformed;		/* length field lies */
	uint64_t	udp_bad_csum;
	uint64_t	udp_flows_created;
	uint64_t	udp_flows_active;
	uint64_t	udp_flows_expired;
	uint64_t	udp_refused_limit;
	uint64_t	udp_too_big;		/* ns_udp_send over the MTU */
	uint64_t	drop_multicast_dst;	/* not a unicast destination, or port 0 */
};

struct ns_tcp_flow {
	struct tcp_conn	c;		/* first: the heap and table find flows by it */
	uint64_t	id;		/* unique per stack, never reused */
	void		*user;		/* the application's */
	struct ns_tcp_flow *hnext;	/* hash chain */
	struct ns_tcp_flow *rnext;	/* ready list (events pending) */
	uint32_t	heap_idx;	/* position in the deadline heap */
	uint64_t	deadline;	/* tcp_poll_at() as last filed in the heap */
	bool		ready;		/* on the ready list */
	bool		is_new;		/* NS_TCP_EV_NEW not yet reported */
	uint64_t	rtx_counted;	/* c.stats.retransmits in the totals */
	uint64_t	timeouts_counted;	/* c.stats.timeouts in the totals */
};

struct ns_udp_flow {
	struct tcp_tuple tuple;		/* same shape: local = original destination */
	uint64_t	id;
	void		*user;
	uint64_t	last_active;	/* ms; LRU order follows it */
	struct ns_udp_flow *hnext;
	struct ns_udp_flow *lru_prev, *lru_next;
	uint64_t	packets_in, bytes_in, packets_out, bytes_out;
};

/* What one input packet turned out to be, for the caller. */
enum ns_input_kind {
	NS_IN_DROPPED = 0,	/* malformed or unwanted: see stats */
	NS_IN_CONSUMED,		/* handled inside (TCP, ICMP echo, ...) */
	NS_IN_UDP,		/* a datagram for udp: data[0..len) */
};

struct ns_input {
	enum ns_input_kind kind;
	struct ns_udp_flow *udp;
	bool		udp_new;	/* the flow was created by this packet */
	const uint8_t	*data;		/* points into the input packet */
	size_t		len;
};

enum ns_event_type {
	NS_EV_TCP = 1,		/* tcp_events on flow tcp */
	NS_EV_UDP_EXPIRED,	/* id/user: the flow is already freed */
};

struct ns_event {
	enum ns_event_type type;
	struct ns_tcp_flow *tcp;
	unsigned	tcp_events;	/* TCP_EV_* | NS_TCP_EV_NEW */
	uint64_t	id;
	void		*user;
};

struct ns_stack;

struct ns_stack *ns_stack_new(const struct ns_stack_config *cfg);
/* Frees everything (flows included) without sending anything. */
void	ns_stack_free(struct ns_stack *s);
const struct ns_stack_stats *ns_stack_stats(const struct ns_stack *s);
/* Bytes of TCP rings allocated now. */
uint64_t ns_stack_mem_used(const struct ns_stack *s);

void	ns_stack_input(struct ns_stack *s, const uint8_t *pkt, size_t len,
	    uint64_t now, struct ns_input *res);
uint64_t ns_stack_poll_at(const struct ns_stack *s);
void	ns_stack_on_timer(struct ns_stack *s, uint64_t now);
/* Returns 1 and fills *ev while events are pending, then 0. */
int	ns_stack_next_event(struct ns_stack *s, struct ns_event *ev);

ssize_t	ns_tcp_send(struct ns_stack *s, struct ns_tcp_flow *f, const void *data,
	    size_t len, uint64_t now);
size_t	ns_tcp_recv(struct ns_stack *s, struct ns_tcp_flow *f, void *buf,
	    size_t len, uint64_t now);
/* Zero-copy reading: contiguous bytes at *p (valid until the next call
 * on f), then consume what the flow socket took; opens the window. */
size_t	ns_tcp_recv_peek(struct ns_tcp_flow *f, const uint8_t **p);
/* Bytes ns_tcp_send() would take now (0 once our FIN is queued): read no
 * more than this from the flow socket and nothing has to wait outside. */
size_t	ns_tcp_send_space(const struct ns_tcp_flow *f);
/* ns_tcp_send() without the copy: read straight into the send ring
 * (tcp_send_room/tcp_send_commit). */
int	ns_tcp_send_room(struct ns_tcp_flow *f, struct iovec iov[2]);
void	ns_tcp_send_commit(struct ns_stack *s, struct ns_tcp_flow *f, size_t n,
	    uint64_t now);
void	ns_tcp_recv_consume(struct ns_stack *s, struct ns_tcp_flow *f, size_t n,
	    uint64_t now);
void	ns_tcp_shutdown(struct ns_stack *s, struct ns_tcp_flow *f, uint64_t now);
void	ns_tcp_abort(struct ns_stack *s, struct ns_tcp_flow *f, uint64_t now);
/* The application is done with f (see lifetime above). */
void	ns_tcp_release(struct ns_stack *s, struct ns_tcp_flow *f, uint64_t now);

/* Send a datagram from the flow's original destination to the app.
 * Returns 0, or -1 if it does not fit the MTU (we never fragment). */
int	ns_udp_send(struct ns_stack *s, struct ns_udp_flow *u, const void *data,
	    size_t len, uint64_t now);
/* proxyd refused the flow: ICMP port unreachable to the app, flow freed. */
void	ns_udp_refuse(struct ns_stack *s, struct ns_udp_flow *u);
/* Forget the flow (no event). */
void	ns_udp_close(struct ns_stack *s, struct ns_udp_flow *u);

#endif
