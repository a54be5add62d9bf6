/*
 * netstackd's TCP endpoint: one connection, passive open, RFC 9293
 * semantics, played on behalf of the original destination.
 *
 * The connection is pure state: it never reads a clock (every entry point
 * takes `now` in milliseconds), never allocates beyond its two lazily
 * allocated byte rings, and never does I/O.  Entry points are kept apart
 * (after smoltcp/lwIP):
 *
 *   segment input   tcp_input()                  (stack.c after IP + parse)
 *   application     tcp_send() tcp_recv() tcp_recv_peek()/tcp_recv_consume()
 *                   tcp_shutdown() tcp_abort()
 *   timers          tcp_on_timer(), next deadline from tcp_poll_at()
 *
 * Output: every segment is built as a complete IP packet in cfg->scratch
 * and handed synchronously to cfg->emit(); the packet is only valid for the
 * duration of that call (the caller copies it into its TUN write batch).
 * This keeps the connection free of output queues and their memory.
 *
 * What the application must know happened is accumulated as TCP_EV_* bits,
 * read and cleared with tcp_take_events(), so no callback ever re-enters
 * the connection while it is mid-update.
 *
 * Call chain inside tcp.c: tcp_input -> input_synchronized ->
 * {process_ack -> ack_new_data / ack_duplicate} -> process_data ->
 * tcp_output -> emit_segment.
 */
#ifndef NETSTACKD_TCP_H
#define NETSTACKD_TCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Sequence numbers are only ever compared through these (RFC 9293 §3.4):
 * modulo-2^32 arithmetic, valid while the two are < 2^31 apart. */
#define SEQ_DIFF(a, b)	((int32_t)((uint32_t)(a) - (uint32_t)(b)))
#define SEQ_LT(a, b)	(SEQ_DIFF(a, b) < 0)
#define SEQ_LEQ(a, b)	(SEQ_DIFF(a, b) <= 0)
#define SEQ_GT(a, b)	(SEQ_DIFF(a, b) > 0)
#define SEQ_GEQ(a, b)	(SEQ_DIFF(a, b) >= 0)
/* lo <= x <= hi */
#define SEQ_BETWEEN(lo, x, hi)	(SEQ_GEQ(x, lo) && SEQ_LEQ(x, hi))
#define SEQ_MAX(a, b)	(SEQ_GT(a, b) ? (a) : (b))
#define SEQ_MIN(a, b)	(SEQ_LT(a, b) ? (a) : (b))

#define TH_FIN	0x01
#define TH_SYN	0x02
#define TH_RST	0x04
#define TH_PSH	0x08
#define TH_ACK	0x10
#define TH_URG	0x20

#define TCP_HDR_LEN	20
#define TCP_MAX_OPT_LEN	40
#define TCP_NEVER	UINT64_MAX	/* "no deadline" for timers and poll_at */
/* Out-of-order ranges held in the receive ring (SACK blocks reported). */
#define TCP_MAX_OOO	8
/* Peer SACK ranges remembered for retransmission. */
#define TCP_MAX_SACKED	8
#define TCP_MAX_WSCALE	14

/* One state per RFC 9293.  SYN-SENT does not exist: we never open actively,
 * every connection starts in LISTEN and sees the application's SYN. */
enum tcp_state {
	TCP_CLOSED = 0,
	TCP_LISTEN,
	TCP_SYN_RCVD,
	TCP_ESTABLISHED,
	TCP_FIN_WAIT_1,
	TCP_FIN_WAIT_2,
	TCP_CLOSING,
	TCP_TIME_WAIT,
	TCP_CLOSE_WAIT,
	TCP_LAST_ACK,
};
const char	*tcp_state_name(enum tcp_state);

/* Events for the application, accumulated until tcp_take_events(). */
#define TCP_EV_ESTABLISHED	0x01	/* handshake done */
#define TCP_EV_READABLE		0x02	/* new in-order bytes to tcp_recv() */
#define TCP_EV_PEER_FIN		0x04	/* peer shut its write side (after the bytes) */
#define TCP_EV_WRITABLE		0x08	/* send ring space freed by an ACK */
#define TCP_EV_CLOSED		0x10	/* CLOSED or TIME_WAIT reached; see error */

/* A parsed segment: pointers into the caller's packet. */
struct tcp_sack_block {
	uint32_t	start;		/* first sequence number covered */
	uint32_t	end;		/* one past the last */
};

struct tcp_seg {
	uint16_t	sport, dport;
	uint32_t	seq, ack;
	uint8_t		flags;
	uint16_t	wnd;		/* raw, unscaled */
	uint16_t	mss;		/* MSS option, 0 if absent */
	int8_t		wscale;		/* window-scale option, -1 if absent */
	bool		sack_perm;
	bool		has_ts;
	uint32_t	tsval, tsecr;
	uint8_t		nsack;		/* valid entries in sack[] */
	struct tcp_sack_block sack[4];
	const uint8_t	*data;
	uint32_t	len;		/* payload bytes (SYN/FIN not counted) */
};

/*
 * Parse a TCP header + options at l4[0..len).  Returns 0, or -1 when the
 * data offset lies (< 20 or past the segment).  A malformed option ends
 * option parsing (the rest is ignored) but not the segment, as Linux does.
 */
int	tcp_parse(const uint8_t *l4, size_t len, struct tcp_seg *seg);

/* Addresses of one connection.  "local" is the original destination we
 * impersonate; "remote" is the captured application. */
struct tcp_tuple {
	uint8_t		version;	/* 4 or 6 */
	uint8_t		laddr[16], raddr[16];	/* v4: first 4 bytes */
	uint16_t	lport, rport;	/* host order */
};

/* Buffer memory shared by every connection of a stack (global cap). */
struct tcp_mem {
	uint64_t	used;		/* bytes of ring buffers allocated */
	uint64_t	limit;		/* used never exceeds this */
	uint64_t	alloc_failures;	/* rings refused by the cap or malloc */
};

struct tcp_config {
	uint32_t	mtu;		/* TUN MTU, 576..65535: bounds our MSS */
	uint32_t	rcvbuf;		/* receive ring size, >= 1 MSS */
	uint32_t	sndbuf;		/* send ring size */
	uint32_t	rto_initial_ms;	/* RFC 6298: 1000 */
	uint32_t	rto_min_ms;	/* 200 (Linux); RFC 6298 says 1000 */
	uint32_t	rto_max_ms;	/* 60000 */
	uint32_t	max_retries;	/* retransmissions before abort (data) */
	uint32_t	max_syn_retries;/* SYN-ACK retransmissions before abort */
	uint32_t	delack_ms;	/* delayed-ACK timeout (<= 500, RFC 9293) */
	uint32_t	time_wait_ms;	/* 2*MSL */
	uint32_t	fin_wait_2_ms;	/* 0 = wait forever for the peer's FIN */
	uint32_t	keepalive_idle_ms;	/* 0 = keep-alive off */
	uint32_t	keepalive_intvl_ms;
	uint32_t	keepalive_probes;
	bool		nagle;		/* RFC 896 coalescing of small sends */
	struct tcp_mem	*mem;		/* may be NULL: no global cap */
	uint8_t		*scratch;	/* >= mtu bytes, packets are built here */
	void		(*emit)(void *ctx, const uint8_t *pkt, size_t len);
	/*
	 * Optional, for segments that carry data: the IP and TCP headers
	 * (contiguous, checksum filled in) and the payload as up to two
	 * slices of the send ring, for a writev() without the copy into
	 * scratch.  Valid during the call only.  NULL: emit() for all.
	 */
	void		(*emitv)(void *ctx, const uint8_t *hdr, size_t hdrlen,
			    const struct iovec *payload, int npayload);
	void		*emit_ctx;
};

/* Fill defaults for everything but mem/scratch/emit. */
void	tcp_config_defaults(struct tcp_config *cfg);

/* A byte ring.  Invariant: len <= cap; buf is NULL until first needed. */
struct tcp_ring {
	uint8_t		*buf;
	uint32_t	cap;		/* fixed at init */
	uint32_t	head;		/* index of the first byte, < cap */
	uint32_t	len;		/* committed bytes from head */
};

struct tcp_conn_stats {
	uint64_t	bytes_in;	/* in-order payload accepted */
	uint64_t	bytes_out;	/* new payload sent (retransmits excluded) */
	uint64_t	segs_in, segs_out;
	uint64_t	retransmits;	/* segments sent again (RTO, fast, SACK) */
	uint64_t	timeouts;	/* RTO expirations (each: cwnd to 1 MSS) */
	uint64_t	recoveries;	/* fast-recovery episodes entered */
	uint64_t	tail_probes;	/* TLPs sent */
	uint64_t	challenge_acks;
	uint64_t	dropped_segs;	/* unacceptable / PAWS / bad ACK */
};

struct tcp_conn {
	const struct tcp_config *cfg;
	struct tcp_tuple tuple;
	enum tcp_state	state;
	int		error;		/* why CLOSED: 0, ECONNRESET, ETIMEDOUT, ECONNABORTED */
	unsigned	events;		/* TCP_EV_* not yet taken */

	/* --- send side.  Invariant (synchronized states):
	 *     snd_una <= snd_nxt <= snd_max, all within 2^31;
	 *     sndbuf byte 0 has sequence number snd_una (iss+1 before the SYN
	 *     is acked); FIN, when queued, has seq snd_una + sndbuf.len. */
	uint32_t	iss;
	uint32_t	snd_una;	/* oldest unacknowledged */
	uint32_t	snd_nxt;	/* next to send (< snd_max after an RTO) */
	uint32_t	snd_max;	/* highest sequence sent + 1 */
	uint32_t	snd_wnd;	/* peer's window in bytes (already scaled) */
	uint32_t	max_snd_wnd;	/* largest snd_wnd seen (RFC 5961 §5) */
	uint32_t	snd_wl1, snd_wl2;	/* seq/ack of last window update */
	struct tcp_ring	sndbuf;		/* queued + unacknowledged bytes */
	bool		fin_queued;	/* application shut down writing */
	bool		fin_acked;	/* our FIN acknowledged: nothing left to send */
	uint32_t	mss;		/* max payload+options per segment */
	uint32_t	smss;		/* mss minus fixed options: cwnd unit */
	uint8_t		snd_wscale;	/* shift applied to the peer's window */
	uint8_t		rcv_wscale;	/* shift applied to ours */
	bool		ws_ok, ts_ok, sack_ok;	/* negotiated in the handshake */

	/* --- receive side.  Invariant: rcvbuf.len bytes starting at
	 *     rcv_nxt - rcvbuf.len are in-order and untaken; out-of-order
	 *     bytes sit in the ring beyond len at offset (seq - rcv_nxt),
	 *     and are described by ooo[] (sorted, disjoint, non-adjacent,
	 *     all after rcv_nxt, all within rcvbuf's free space). */
	uint32_t	irs;
	uint32_t	rcv_nxt;
	uint32_t	rcv_adv;	/* right edge last advertised; never retreats */
	struct tcp_ring	rcvbuf;
	struct tcp_sack_block ooo[TCP_MAX_OOO];
	uint8_t		nooo;
	uint8_t		ooo_last;	/* index of the latest range: first SACK block */
	bool		fin_rcvd;

	/* --- timestamps (RFC 7323) */
	uint32_t	ts_offset;	/* our TSval = now + ts_offset */
	uint32_t	ts_recent;	/* peer's TSval to echo, PAWS reference */
	uint32_t	last_ack_sent;	/* rcv_nxt in the last segment we sent */

	/* --- RTT/RTO (RFC 6298), all in ms */
	uint32_t	srtt_x8;	/* smoothed RTT * 8; 0 = no sample yet */
	uint32_t	rttvar_x4;	/* RTT variation * 4 */
	uint32_t	rto;		/* current timeout, backed off */
	bool		rtt_timing;	/* Karn: timing rtt_seq (no timestamps) */
	uint32_t	rtt_seq;
	uint64_t	rtt_start;
	uint32_t	retries;	/* consecutive RTO expirations */

	/* --- congestion control: NewReno (RFC 6582) with SACK-chosen holes */
	uint32_t	cwnd, ssthresh;	/* bytes */
	uint32_t	dupacks;
	bool		in_recovery;
	uint32_t	recover;	/* snd_max when recovery began */
	uint32_t	high_rxt;	/* retransmitted up to here in recovery */
	uint64_t	una_rxt_at;	/* when snd_una's segment was last resent, 0: not */
	struct tcp_sack_block sacked[TCP_MAX_SACKED];	/* peer's SACKs, sorted, > snd_una */
	uint8_t		nsacked;

	/* --- timers: absolute deadlines (ms), TCP_NEVER when off */
	uint64_t	t_rtx;		/* retransmission (also SYN-ACK) */
	uint64_t	t_persist;	/* zero-window probe */
	uint64_t	t_delack;	/* delayed ACK */
	uint64_t	t_keepalive;
	uint64_t	t_close;	/* TIME_WAIT end, FIN_WAIT_2 limit */
	uint64_t	t_tlp;		/* tail loss probe (RFC 8985 §7), < t_rtx */
	uint32_t	persist_backoff;
	bool		sws_override;	/* persist expired: send a runt once */
	uint32_t	ka_probes;	/* unanswered keep-alive probes */
	uint32_t	unacked_segs;	/* segments received since our last ACK */
	bool		ack_now;	/* an ACK must go out in this call */
	uint64_t	chack_epoch;	/* challenge-ACK rate limit window start */
	uint32_t	chack_count;

	struct tcp_conn_stats stats;
};

/* A fresh connection in LISTEN for tuple; iss must be unpredictable. */
void	tcp_conn_init(struct tcp_conn *c, const struct tcp_config *cfg,
	    const struct tcp_tuple *tuple, uint32_t iss, uint64_t now);
/* Release the rings (the connection itself belongs to the caller). */
void	tcp_conn_destroy(struct tcp_conn *c);

/* Segment input (already IP-validated, checksum-checked and parsed). */
void	tcp_input(struct tcp_conn *c, const struct tcp_seg *seg, uint64_t now);

/* Queue bytes to send.  Returns bytes accepted (0: ring full; wait for
 * TCP_EV_WRITABLE), -1 if writing is over (shut down or not open). */
ssize_t	tcp_send(struct tcp_conn *c, const void *data, size_t len, uint64_t now);
/* Room in the send ring. */
size_t	tcp_send_space(const struct tcp_conn *c);
/*
 * tcp_send() without the copy, for a caller that reads straight into the
 * send ring: its free room as up to two iovecs (the ring is allocated
 * now), 0 if there is none (full, or no memory: use tcp_send), -1 if
 * writing is over.  Then tcp_send_commit() the bytes put there, 0 if
 * none (an empty ring is given back).
 */
int	tcp_send_room(struct tcp_conn *c, struct iovec iov[2]);
void	tcp_send_commit(struct tcp_conn *c, size_t n, uint64_t now);
/* Take up to len received in-order bytes; opens the window. */
size_t	tcp_recv(struct tcp_conn *c, void *buf, size_t len, uint64_t now);
/* Zero-copy variant: contiguous received bytes at *p, then consume n.
 * *p is valid until the next call on c (an emptied ring is freed). */
size_t	tcp_recv_peek(const struct tcp_conn *c, const uint8_t **p);
void	tcp_recv_consume(struct tcp_conn *c, size_t n, uint64_t now);
size_t	tcp_recv_avail(const struct tcp_conn *c);
/* Send FIN after the queued bytes (half-close of our write side). */
void	tcp_shutdown(struct tcp_conn *c, uint64_t now);
/* RST the peer and go to CLOSED with error ECONNABORTED. */
void	tcp_abort(struct tcp_conn *c, uint64_t now);

void	tcp_on_timer(struct tcp_conn *c, uint64_t now);
uint64_t tcp_poll_at(const struct tcp_conn *c);
unsigned tcp_take_events(struct tcp_conn *c);

/* Build a bare segment (no options, no payload) from t's local side to its
 * remote side: RSTs and TIME_WAIT ACKs for tuples without a connection.
 * Returns the packet length, 0 if cap is too small. */
size_t	tcp_build_bare(const struct tcp_tuple *t, uint32_t seq, uint32_t ack,
	    uint8_t flags, uint16_t wnd, uint8_t *out, size_t cap);

/*
 * Build the RST answering seg (from the packet whose addresses are in t,
 * local = destination of seg) for a tuple with no connection: RFC 9293
 * §3.10.7.1.  Returns the packet length in out, 0 if seg is itself a RST.
 */
size_t	tcp_build_rst_reply(const struct tcp_tuple *t, const struct tcp_seg *seg,
	    uint8_t *out, size_t cap);

#endif
