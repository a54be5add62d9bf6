/*
 * netstackd's TCP connection (see tcp.h for the model and entry points).
 *
 * Call chain: tcp_input -> input_listen | input_synchronized ->
 *   check_acceptable -> process_ack (-> ack_new_data | ack_duplicate)
 *   -> process_data -> tcp_output -> emit_segment.
 * Timers: tcp_on_timer -> on_rto | on_persist | on_keepalive | delack.
 *
 * Everything is in milliseconds; the connection keeps no global state.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "netstackd/checksum.h"
#include "netstackd/ip.h"
#include "netstackd/tcp.h"

#define TCPOPT_EOL	0
#define TCPOPT_NOP	1
#define TCPOPT_MSS	2
#define TCPOPT_WSCALE	3
#define TCPOPT_SACK_PERM 4
#define TCPOPT_SACK	5
#define TCPOPT_TS	8

#define TS_OPT_LEN	12	/* NOP NOP TS(10): in every segment once negotiated */
#define CHACK_PER_SEC	10	/* challenge ACKs per connection per second */
#define DEFAULT_MSS_V4	536
#define DEFAULT_MSS_V6	1220

#define MIN(a, b)	((a) < (b) ? (a) : (b))
#define MAX(a, b)	((a) > (b) ? (a) : (b))

static void	tcp_output(struct tcp_conn *, uint64_t);

static const char *const state_names[] = {
	"CLOSED", "LISTEN", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1",
	"FIN-WAIT-2", "CLOSING", "TIME-WAIT", "CLOSE-WAIT", "LAST-ACK",
};

const char *
tcp_state_name(enum tcp_state s)
{
	if ((unsigned)s < sizeof(state_names) / sizeof(state_names[0]))
		return state_names[s];
	return "?";
}

static uint16_t
rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static void
wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* ------------------------------------------------------------------ parse */

int
tcp_parse(const uint8_t *l4, size_t len, struct tcp_seg *seg)
{
	size_t doff, i, olen;
	uint8_t kind;

	if (len < TCP_HDR_LEN)
		return -1;
	doff = (size_t)(l4[12] >> 4) * 4;
	if (doff < TCP_HDR_LEN || doff > len)
		return -1;
	memset(seg, 0, sizeof(*seg));
	seg->sport = rd16(l4);
	seg->dport = rd16(l4 + 2);
	seg->seq = rd32(l4 + 4);
	seg->ack = rd32(l4 + 8);
	seg->flags = l4[13] & 0x3f;
	seg->wnd = rd16(l4 + 14);
	seg->wscale = -1;
	seg->data = l4 + doff;
	seg->len = (uint32_t)(len - doff);

	for (i = TCP_HDR_LEN; i < doff;) {
		kind = l4[i];
		if (kind == TCPOPT_EOL)
			break;
		if (kind == TCPOPT_NOP) {
			i++;
			continue;
		}
		if (doff - i < 2)
			break;
		olen = l4[i + 1];
		if (olen < 2 || olen > doff - i)
			break;	/* lying option length: ignore the rest */
		switch (kind) {
		case TCPOPT_MSS:
			if (olen == 4)
				seg->mss = rd16(l4 + i + 2);
			break;
		case TCPOPT_WSCALE:
			if (olen == 3)
				seg->wscale = (int8_t)MIN(l4[i + 2], TCP_MAX_WSCALE);
			break;
		case TCPOPT_SACK_PERM:
			if (olen == 2)
				seg->sack_perm = true;
			break;
		case TCPOPT_TS:
			if (olen == 10) {
				seg->has_ts = true;
				seg->tsval = rd32(l4 + i + 2);
				seg->tsecr = rd32(l4 + i + 6);
			}
			break;
		case TCPOPT_SACK:
			if ((olen - 2) % 8 == 0) {
				size_t b, n = (olen - 2) / 8;

				for (b = 0; b < n && seg->nsack < 4; b++) {
					seg->sack[seg->nsack].start =
					    rd32(l4 + i + 2 + 8 * b);
					seg->sack[seg->nsack].end =
					    rd32(l4 + i + 6 + 8 * b);
					seg->nsack++;
				}
			}
			break;
		default:
			break;
		}
		i += olen;
	}
	return 0;
}

/* ------------------------------------------------------------------ config */

void
tcp_config_defaults(struct tcp_config *cfg)
{
	cfg->mtu = 1500;
	cfg->rcvbuf = 256 * 1024;
	cfg->sndbuf = 256 * 1024;
	cfg->rto_initial_ms = 1000;
	cfg->rto_min_ms = 200;
	cfg->rto_max_ms = 60000;
	cfg->max_retries = 15;
	cfg->max_syn_retries = 5;
	cfg->delack_ms = 40;
	cfg->time_wait_ms = 60000;
	cfg->fin_wait_2_ms = 0;
	cfg->keepalive_idle_ms = 0;
	cfg->keepalive_intvl_ms = 75000;
	cfg->keepalive_probes = 9;
	cfg->nagle = true;
}

/* ------------------------------------------------------------------ rings */

static bool
ring_ensure(struct tcp_conn *c, struct tcp_ring *r)
{
	struct tcp_mem *m = c->cfg->mem;

	if (r->buf != NULL)
		return true;
	if (m != NULL && m->used + r->cap > m->limit) {
		m->alloc_failures++;
		return false;
	}
	r->buf = malloc(r->cap);
	if (r->buf == NULL) {
		if (m != NULL)
			m->alloc_failures++;
		return false;
	}
	if (m != NULL)
		m->used += r->cap;
	return true;
}

/*
 * Rings are given back as soon as they are empty, so an idle connection
 * costs only its struct (the per-idle-connection budget), and
 * memory under the global cap goes to the connections that are moving
 * data.  glibc serves these sizes from its heap once the first one was
 * freed (its mmap threshold adapts), so the churn is a cheap free-list
 * operation, not an mmap/munmap pair.
 */
static void
ring_release(struct tcp_conn *c, struct tcp_ring *r)
{
	if (r->buf == NULL)
		return;
	free(r->buf);
	r->buf = NULL;
	if (c->cfg->mem != NULL)
		c->cfg->mem->used -= r->cap;
	r->head = r->len = 0;
}

/* Copy n bytes into the ring at offset off past the committed bytes.
 * Caller guarantees len + off + n <= cap. */
static void
ring_write_at(struct tcp_ring *r, uint32_t off, const uint8_t *src, uint32_t n)
{
	uint32_t pos = (uint32_t)(((uint64_t)r->head + r->len + off) % r->cap);
	uint32_t first = MIN(n, r->cap - pos);

	memcpy(r->buf + pos, src, first);
	memcpy(r->buf, src + first, n - first);
}

/* Copy n committed bytes starting off bytes after head. */
static void
ring_read_at(const struct tcp_ring *r, uint32_t off, uint8_t *dst, uint32_t n)
{
	uint32_t pos = (uint32_t)(((uint64_t)r->head + off) % r->cap);
	uint32_t first = MIN(n, r->cap - pos);

	memcpy(dst, r->buf + pos, first);
	memcpy(dst + first, r->buf, n - first);
}

static void
ring_consume(struct tcp_ring *r, uint32_t n)
{
	r->head = (uint32_t)(((uint64_t)r->head + n) % r->cap);
	/* head is not reset when the ring empties: out-of-order bytes may
	 * sit beyond len, at positions relative to head + len. */
	r->len -= n;
}

/* ------------------------------------------------------------------ init */

void
tcp_conn_init(struct tcp_conn *c, const struct tcp_config *cfg,
    const struct tcp_tuple *tuple, uint32_t iss, uint64_t now)
{
	memset(c, 0, sizeof(*c));
	c->cfg = cfg;
	c->tuple = *tuple;
	c->state = TCP_LISTEN;
	c->iss = iss;
	c->snd_una = c->snd_nxt = c->snd_max = iss;
	c->sndbuf.cap = cfg->sndbuf;
	c->rcvbuf.cap = cfg->rcvbuf;
	/* TSval is a per-connection offset from our clock (RFC 7323 §5.4)
	 * so the clock is not exposed; derived from the (random) ISS. */
	c->ts_offset = iss * 2654435761u;
	c->rto = cfg->rto_initial_ms;
	c->t_rtx = c->t_persist = c->t_delack = c->t_keepalive = c->t_close =
	    c->t_tlp = TCP_NEVER;
	c->chack_epoch = now;
	c->ssthresh = UINT32_MAX;
	c->recover = iss;	/* RFC 6582: recover starts at the ISS */
}

void
tcp_conn_destroy(struct tcp_conn *c)
{
	ring_release(c, &c->sndbuf);
	ring_release(c, &c->rcvbuf);
}

unsigned
tcp_take_events(struct tcp_conn *c)
{
	unsigned ev = c->events;

	c->events = 0;
	return ev;
}

uint64_t
tcp_poll_at(const struct tcp_conn *c)
{
	uint64_t t = c->t_rtx;

	t = MIN(t, c->t_persist);
	t = MIN(t, c->t_delack);
	t = MIN(t, c->t_keepalive);
	t = MIN(t, c->t_close);
	t = MIN(t, c->t_tlp);
	return t;
}

static bool
synchronized(const struct tcp_conn *c)
{
	return c->state >= TCP_ESTABLISHED;
}

static void
enter_closed(struct tcp_conn *c, int error)
{
	c->state = TCP_CLOSED;
	c->error = error;
	c->t_rtx = c->t_persist = c->t_delack = c->t_keepalive = c->t_close =
	    c->t_tlp = TCP_NEVER;
	c->events |= TCP_EV_CLOSED;
}

static void
enter_time_wait(struct tcp_conn *c, uint64_t now)
{
	c->state = TCP_TIME_WAIT;
	c->t_rtx = c->t_persist = c->t_keepalive = c->t_tlp = TCP_NEVER;
	c->t_close = now + c->cfg->time_wait_ms;
	c->events |= TCP_EV_CLOSED;
}

/* ------------------------------------------------------------------ output */

static uint32_t
seg_overhead(const struct tcp_conn *c)
{
	return (uint32_t)ip_hdr_len(c->tuple.version) + TCP_HDR_LEN;
}

/* The window to advertise (unscaled field value) and rcv_adv update.
 * The right edge never retreats (RFC 9293 §3.8.6.2.2) and only advances
 * in steps of at least min(rcvbuf/2, smss): receiver-side SWS avoidance. */
static uint16_t
rcv_window(struct tcp_conn *c, bool syn)
{
	uint32_t free = c->rcvbuf.cap - c->rcvbuf.len;
	uint32_t edge, wnd, step;

	if (SEQ_LT(c->rcv_adv, c->rcv_nxt))
		c->rcv_adv = c->rcv_nxt;
	edge = c->rcv_nxt + free;
	step = MIN(c->rcvbuf.cap / 2, MAX(c->smss, 1));
	if (SEQ_LT(edge, c->rcv_adv) ||
	    (SEQ_GT(edge, c->rcv_adv) && edge - c->rcv_adv < step &&
	    c->rcv_adv != c->rcv_nxt))
		edge = c->rcv_adv;
	wnd = edge - c->rcv_nxt;
	if (syn)
		wnd = MIN(wnd, 65535);
	else
		wnd = MIN(wnd >> c->rcv_wscale, 65535);
	c->rcv_adv = c->rcv_nxt + (syn ? wnd : wnd << c->rcv_wscale);
	return (uint16_t)wnd;
}

/* Write our options for this segment; returns their length (multiple of 4). */
static size_t
write_options(struct tcp_conn *c, uint8_t *o, bool syn, uint64_t now)
{
	size_t n = 0, i, nb, maxb;
	uint8_t idx;

	if (syn) {
		uint32_t mss = c->cfg->mtu - seg_overhead(c);

		o[n++] = TCPOPT_MSS; o[n++] = 4;
		wr16(o + n, (uint16_t)MIN(mss, 65535)); n += 2;
		if (c->sack_ok) {
			o[n++] = TCPOPT_NOP; o[n++] = TCPOPT_NOP;
			o[n++] = TCPOPT_SACK_PERM; o[n++] = 2;
		}
		if (c->ws_ok) {
			o[n++] = TCPOPT_NOP;
			o[n++] = TCPOPT_WSCALE; o[n++] = 3; o[n++] = c->rcv_wscale;
		}
	}
	if (c->ts_ok) {
		o[n++] = TCPOPT_NOP; o[n++] = TCPOPT_NOP;
		o[n++] = TCPOPT_TS; o[n++] = 10;
		wr32(o + n, (uint32_t)now + c->ts_offset); n += 4;
		wr32(o + n, c->ts_recent); n += 4;
	}
	if (!syn && c->sack_ok && c->nooo > 0) {
		maxb = c->ts_ok ? 3 : 4;
		nb = MIN(c->nooo, maxb);
		o[n++] = TCPOPT_NOP; o[n++] = TCPOPT_NOP;
		o[n++] = TCPOPT_SACK; o[n++] = (uint8_t)(2 + 8 * nb);
		/* The block holding the latest segment goes first (RFC 2018). */
		for (i = 0; i < nb; i++) {
			idx = (uint8_t)((c->ooo_last + i) % c->nooo);
			wr32(o + n, c->ooo[idx].start); n += 4;
			wr32(o + n, c->ooo[idx].end); n += 4;
		}
	}
	return n;
}

/* Build and emit one segment carrying sndbuf bytes [off, off+len) at seq. */
static void
emit_segment(struct tcp_conn *c, uint32_t seq, uint8_t flags, uint32_t off,
    uint32_t len, uint64_t now)
{
	uint8_t *pkt = c->cfg->scratch, *th;
	size_t hl = ip_hdr_len(c->tuple.version), optlen, total;
	bool syn = (flags & TH_SYN) != 0;

	th = pkt + hl;
	optlen = write_options(c, th + TCP_HDR_LEN, syn, now);
	total = hl + TCP_HDR_LEN + optlen + len;
	ip_write_hdr(pkt, c->tuple.version, c->tuple.laddr, c->tuple.raddr,
	    IPPROTO_NS_TCP, TCP_HDR_LEN + optlen + len);
	wr16(th, c->tuple.lport);
	wr16(th + 2, c->tuple.rport);
	wr32(th + 4, seq);
	wr32(th + 8, (flags & TH_ACK) ? c->rcv_nxt : 0);
	th[12] = (uint8_t)(((TCP_HDR_LEN + optlen) / 4) << 4);
	th[13] = flags;
	wr16(th + 14, (flags & TH_RST) ? 0 : rcv_window(c, syn));
	wr16(th + 16, 0);
	wr16(th + 18, 0);
	if (flags & TH_ACK) {
		c->last_ack_sent = c->rcv_nxt;
		c->ack_now = false;
		c->unacked_segs = 0;
		c->t_delack = TCP_NEVER;
	}
	c->stats.segs_out++;
	if (len > 0 && c->cfg->emitv != NULL) {
		/* The payload straight from the ring: no copy of ours. */
		const struct tcp_ring *r = &c->sndbuf;
		uint32_t pos = (uint32_t)(((uint64_t)r->head + off) % r->cap);
		uint32_t first = MIN(len, r->cap - pos);
		struct iovec iov[2] = {
			{ .iov_base = r->buf + pos, .iov_len = first },
			{ .iov_base = r->buf, .iov_len = len - first },
		};
		int n = first < len ? 2 : 1;

		ip_set_l4_csum_iov(pkt, total - len, total, 16, iov, n);
		c->cfg->emitv(c->cfg->emit_ctx, pkt, total - len, iov, n);
		return;
	}
	if (len > 0)
		ring_read_at(&c->sndbuf, off, th + TCP_HDR_LEN + optlen, len);
	ip_set_l4_csum(pkt, total, 16);
	c->cfg->emit(c->cfg->emit_ctx, pkt, total);
}

static void
send_ack(struct tcp_conn *c, uint64_t now)
{
	emit_segment(c, c->snd_nxt, TH_ACK, 0, 0, now);
}

static void
send_rst(struct tcp_conn *c, uint64_t now)
{
	emit_segment(c, c->snd_max, TH_RST | TH_ACK, 0, 0, now);
}

/* RFC 5961 §7: challenge ACKs are rate limited so they cannot be used to
 * make us flood. */
static void
challenge_ack(struct tcp_conn *c, uint64_t now)
{
	if (now - c->chack_epoch >= 1000) {
		c->chack_epoch = now;
		c->chack_count = 0;
	}
	if (c->chack_count >= CHACK_PER_SEC)
		return;
	c->chack_count++;
	c->stats.challenge_acks++;
	send_ack(c, now);
}

static uint32_t
payload_max(const struct tcp_conn *c)
{
	/* Largest payload with our per-segment options: TS, plus SACK
	 * blocks while we hold out-of-order data. */
	uint32_t opt = c->ts_ok ? TS_OPT_LEN : 0;

	if (c->sack_ok && c->nooo > 0)
		opt += 4 + 8 * MIN(c->nooo, c->ts_ok ? 3u : 4u);
	return c->mss > opt ? c->mss - opt : 1;
}

/* Sequence number of the FIN (valid when fin_queued). */
static uint32_t
fin_seq(const struct tcp_conn *c)
{
	return c->snd_una + c->sndbuf.len;
}

static bool
fin_sent(const struct tcp_conn *c)
{
	return c->fin_queued && !c->fin_acked && SEQ_GT(c->snd_max, fin_seq(c));
}

static void
arm_rtx(struct tcp_conn *c, uint64_t now)
{
	uint64_t pto;

	c->t_rtx = now + c->rto;
	c->t_persist = TCP_NEVER;
	/* A tail loss probe at two smoothed RTTs turns a lost tail into
	 * SACK information (and so a fast retransmit) instead of waiting
	 * for the RTO.  Only useful with SACK, and not during recovery. */
	c->t_tlp = TCP_NEVER;
	if (c->sack_ok && !c->in_recovery && c->srtt_x8 != 0 &&
	    c->state >= TCP_ESTABLISHED) {
		pto = now + MAX(c->srtt_x8 / 4, 10u);
		if (pto < c->t_rtx)
			c->t_tlp = pto;
	}
}

/* Send the segment starting at seq (retransmission: snd_nxt untouched),
 * at most limit bytes; a FIN already sent is repeated when reached. */
static uint32_t
retransmit_at(struct tcp_conn *c, uint32_t seq, uint32_t limit, uint64_t now)
{
	uint32_t off = seq - c->snd_una, len = 0;
	uint8_t flags = TH_ACK;

	if (off < c->sndbuf.len)
		len = MIN(MIN(c->sndbuf.len - off, payload_max(c)), limit);
	if (c->fin_queued && off + len == c->sndbuf.len && fin_sent(c))
		flags |= TH_FIN;
	if (len == 0 && !(flags & TH_FIN))
		return 0;
	emit_segment(c, seq, flags | (len ? TH_PSH : 0), off, len, now);
	c->stats.retransmits++;
	if (seq == c->snd_una)
		c->una_rxt_at = now;
	return len + ((flags & TH_FIN) ? 1 : 0);
}

static void
send_synack(struct tcp_conn *c, uint64_t now)
{
	emit_segment(c, c->iss, TH_SYN | TH_ACK, 0, 0, now);
	if (SEQ_LEQ(c->snd_max, c->iss))
		c->snd_max = c->iss + 1;
	c->snd_nxt = c->iss + 1;
}

/*
 * When resending from snd_nxt < snd_max, step over SACKed ranges: move
 * snd_nxt past a block it sits in, report the SACKed bytes below it and
 * how far the next segment may go before the next block.
 */
static void
sack_skip(struct tcp_conn *c, uint32_t *sacked_below, uint32_t *limit)
{
	uint8_t i;

	for (i = 0; i < c->nsacked; i++) {
		uint32_t start = c->sacked[i].start, end = c->sacked[i].end;

		/* Only what lies above snd_una counts (a block the
		 * cumulative ACK reached may not be pruned yet). */
		if (SEQ_LEQ(end, c->snd_una))
			continue;
		start = SEQ_MAX(start, c->snd_una);
		if (SEQ_LEQ(end, c->snd_nxt)) {
			*sacked_below += end - start;
		} else if (SEQ_LEQ(start, c->snd_nxt)) {
			*sacked_below += end - start;
			c->snd_nxt = end;
		} else {
			*limit = start - c->snd_nxt;
			return;
		}
	}
}

/*
 * Send whatever the windows, Nagle and SWS avoidance allow, then a pure
 * ACK if one is owed and nothing else carried it.
 */
static void
tcp_output(struct tcp_conn *c, uint64_t now)
{
	uint32_t flight, wnd, usable, avail, data_end, len, pmax, sacked_below,
	    limit;
	bool fin;
	uint8_t flags;

	if (c->state == TCP_CLOSED || c->state == TCP_LISTEN)
		return;
	if (c->state == TCP_SYN_RCVD || c->state == TCP_TIME_WAIT) {
		if (c->ack_now)
			send_ack(c, now);
		return;
	}
	for (;;) {
		data_end = c->snd_una + c->sndbuf.len;
		/* Going back after an RTO: what the peer SACKed is not sent
		 * again, and does not count as in flight. */
		sacked_below = 0;
		limit = UINT32_MAX;
		if (SEQ_LT(c->snd_nxt, c->snd_max) && c->nsacked > 0)
			sack_skip(c, &sacked_below, &limit);
		flight = c->snd_nxt - c->snd_una;
		/* RFC 3042 limited transmit: the first two duplicate ACKs
		 * each let one new segment out, so a small window still
		 * collects the three that trigger fast retransmit. */
		wnd = c->cwnd;
		if (!c->in_recovery && c->dupacks > 0)
			wnd += MIN(c->dupacks, 2u) * c->smss;
		sacked_below = MIN(sacked_below, flight);
		usable = wnd > flight - sacked_below ?
		    wnd - (flight - sacked_below) : 0;
		usable = MIN(usable, c->snd_wnd > flight ? c->snd_wnd - flight : 0);
		avail = SEQ_LT(c->snd_nxt, data_end) ? data_end - c->snd_nxt : 0;
		pmax = payload_max(c);
		len = MIN(MIN(avail, usable), MIN(pmax, limit));
		fin = c->fin_queued && !c->fin_acked &&
		    c->snd_nxt + len == data_end &&
		    SEQ_LEQ(c->snd_nxt, data_end);
		if (len == 0 && !fin)
			break;
		if (len < pmax && len < avail && len < limit) {
			/* Window-limited runt: sender SWS avoidance (RFC 9293
			 * §3.8.6.2.1) unless it is half the largest window. */
			if (len == 0 || (len < c->max_snd_wnd / 2 &&
			    !c->sws_override))
				break;
		} else if (len < pmax && flight > 0 && c->cfg->nagle && !fin &&
		    len < limit) {
			break;	/* Nagle: one small segment in flight at a time */
		}
		flags = TH_ACK;
		if (len > 0 && len == avail)
			flags |= TH_PSH;
		if (fin)
			flags |= TH_FIN;
		emit_segment(c, c->snd_nxt, flags, c->snd_nxt - c->snd_una, len,
		    now);
		if (SEQ_GEQ(c->snd_nxt, c->snd_max)) {
			c->stats.bytes_out += len;
			if (!c->ts_ok && !c->rtt_timing && len > 0) {
				c->rtt_timing = true;
				c->rtt_seq = c->snd_nxt;
				c->rtt_start = now;
			}
		} else {
			c->stats.retransmits++;
		}
		c->snd_nxt += len + (fin ? 1 : 0);
		if (SEQ_GT(c->snd_nxt, c->snd_max))
			c->snd_max = c->snd_nxt;
		if (c->t_rtx == TCP_NEVER)
			arm_rtx(c, now);
		if (fin)
			break;
	}
	c->sws_override = false;
	/* Data waiting, nothing in flight to elicit an ACK: the window is
	 * zero, or too small for SWS avoidance to send into.  Only the
	 * persist timer can move things (probe, or send the runt anyway:
	 * RFC 9293's SWS override timeout). */
	if (SEQ_LT(c->snd_nxt, c->snd_una + c->sndbuf.len) &&
	    c->snd_nxt == c->snd_una && c->t_rtx == TCP_NEVER &&
	    c->t_persist == TCP_NEVER) {
		c->persist_backoff = 0;
		c->t_persist = now + MAX(c->rto, c->cfg->rto_min_ms);
	}
	if (c->ack_now)
		send_ack(c, now);
}

/* ------------------------------------------------------------------ RTT */

static void
rtt_sample(struct tcp_conn *c, uint32_t r)
{
	uint32_t delta, rto;

	if (c->srtt_x8 == 0) {
		c->srtt_x8 = MAX(r, 1) * 8;
		c->rttvar_x4 = r * 2;	/* rttvar = r/2 */
	} else {
		uint32_t srtt = c->srtt_x8 / 8;

		delta = srtt > r ? srtt - r : r - srtt;
		c->rttvar_x4 = c->rttvar_x4 - c->rttvar_x4 / 4 + delta;
		c->srtt_x8 = c->srtt_x8 - c->srtt_x8 / 8 + r;
	}
	rto = c->srtt_x8 / 8 + MAX(1u, c->rttvar_x4);
	c->rto = MIN(MAX(rto, c->cfg->rto_min_ms), c->cfg->rto_max_ms);
}

/* ------------------------------------------------------------------ input */

static void
take_peer_window(struct tcp_conn *c, const struct tcp_seg *seg)
{
	uint32_t w = (uint32_t)seg->wnd << (seg->flags & TH_SYN ? 0 : c->snd_wscale);

	if (c->snd_wnd == 0 && w > 0) {
		c->t_persist = TCP_NEVER;
		c->persist_backoff = 0;
	}
	c->snd_wnd = w;
	c->snd_wl1 = seg->seq;
	c->snd_wl2 = seg->ack;
	if (w > c->max_snd_wnd)
		c->max_snd_wnd = w;
}

static void
input_listen(struct tcp_conn *c, const struct tcp_seg *seg, uint64_t now)
{
	uint32_t peer_mss, our_mss;

	if (seg->flags & TH_RST)
		return;
	if ((seg->flags & TH_ACK) || !(seg->flags & TH_SYN)) {
		/* Not a fresh open: the stack answers with a RST. */
		c->stats.dropped_segs++;
		enter_closed(c, ECONNREFUSED);
		return;
	}
	c->irs = seg->seq;
	c->rcv_nxt = seg->seq + 1;
	c->rcv_adv = c->rcv_nxt;
	c->ws_ok = seg->wscale >= 0;
	c->ts_ok = seg->has_ts;
	c->sack_ok = seg->sack_perm;
	if (c->ws_ok) {
		c->snd_wscale = (uint8_t)seg->wscale;
		while (c->rcv_wscale < TCP_MAX_WSCALE &&
		    (c->rcvbuf.cap >> c->rcv_wscale) > 65535)
			c->rcv_wscale++;
	}
	if (c->ts_ok)
		c->ts_recent = seg->tsval;
	our_mss = c->cfg->mtu - seg_overhead(c);
	peer_mss = seg->mss ? seg->mss :
	    (c->tuple.version == 4 ? DEFAULT_MSS_V4 : DEFAULT_MSS_V6);
	c->mss = MAX(MIN(peer_mss, our_mss), 64);
	c->smss = c->mss - (c->ts_ok ? TS_OPT_LEN : 0);
	/* RFC 5681 §3.1 initial window; RFC 6928's 10 segments. */
	c->cwnd = 10 * c->smss;
	c->snd_wnd = seg->wnd;	/* SYN windows are never scaled */
	c->max_snd_wnd = c->snd_wnd;
	c->snd_wl1 = seg->seq;
	c->snd_wl2 = c->iss;
	c->state = TCP_SYN_RCVD;
	c->t_keepalive = TCP_NEVER;
	send_synack(c, now);
	arm_rtx(c, now);
}

/*
 * RFC 9293 §3.10.7.4 acceptability, with our receive window being the
 * actual free space in the ring.  Returns false if the segment must be
 * dropped (after an ACK, unless it is a RST).
 */
static bool
check_acceptable(struct tcp_conn *c, const struct tcp_seg *seg, uint32_t seglen)
{
	uint32_t wnd = c->rcvbuf.cap - c->rcvbuf.len;

	if (seglen == 0) {
		if (wnd == 0)
			return seg->seq == c->rcv_nxt;
		return SEQ_GEQ(seg->seq, c->rcv_nxt) &&
		    SEQ_LT(seg->seq, c->rcv_nxt + wnd);
	}
	if (wnd == 0)
		return false;
	return (SEQ_GEQ(seg->seq, c->rcv_nxt) &&
	    SEQ_LT(seg->seq, c->rcv_nxt + wnd)) ||
	    (SEQ_GEQ(seg->seq + seglen - 1, c->rcv_nxt) &&
	    SEQ_LT(seg->seq + seglen - 1, c->rcv_nxt + wnd));
}

static uint64_t
sacked_bytes(const struct tcp_conn *c)
{
	uint64_t n = 0;
	uint8_t i;

	for (i = 0; i < c->nsacked; i++)
		n += c->sacked[i].end - c->sacked[i].start;
	return n;
}

/* Merge the peer's SACK blocks into the scoreboard; true if they covered
 * bytes not SACKed before. */
static bool
sack_update(struct tcp_conn *c, const struct tcp_seg *seg)
{
	uint64_t before;
	uint8_t i, j;

	/* Drop what the cumulative ACK now covers. */
	for (i = 0, j = 0; i < c->nsacked; i++) {
		if (SEQ_LEQ(c->sacked[i].end, c->snd_una))
			continue;
		if (SEQ_LT(c->sacked[i].start, c->snd_una))
			c->sacked[i].start = c->snd_una;
		c->sacked[j++] = c->sacked[i];
	}
	c->nsacked = j;
	before = sacked_bytes(c);
	for (i = 0; i < seg->nsack; i++) {
		struct tcp_sack_block b = seg->sack[i];
		uint8_t k, n;

		/* Only blocks inside what we sent, above the ACK (D-SACKs
		 * and lies are ignored). */
		if (!SEQ_LT(b.start, b.end) || SEQ_LEQ(b.start, c->snd_una) ||
		    SEQ_GT(b.end, c->snd_max))
			continue;
		/* Insert sorted, then merge overlaps/adjacency. */
		for (k = 0; k < c->nsacked && SEQ_LT(c->sacked[k].start, b.start); k++)
			;
		if (c->nsacked == TCP_MAX_SACKED) {
			if (k == TCP_MAX_SACKED)
				continue;	/* keep the lowest: they matter first */
			c->nsacked--;
		}
		memmove(&c->sacked[k + 1], &c->sacked[k],
		    (size_t)(c->nsacked - k) * sizeof(c->sacked[0]));
		c->sacked[k] = b;
		c->nsacked++;
		for (n = 0, k = 0; k < c->nsacked; k++) {
			if (n > 0 && SEQ_LEQ(c->sacked[k].start, c->sacked[n - 1].end)) {
				c->sacked[n - 1].end = SEQ_MAX(c->sacked[n - 1].end,
				    c->sacked[k].end);
				continue;
			}
			c->sacked[n++] = c->sacked[k];
		}
		c->nsacked = n;
	}
	return sacked_bytes(c) > before;
}

/* Next un-SACKed sequence >= from below the highest SACK, and the length
 * of that hole.  Without SACK information the only known hole is snd_una. */
static bool
next_hole(const struct tcp_conn *c, uint32_t from, uint32_t *start, uint32_t *len)
{
	uint8_t i;

	if (c->nsacked == 0) {
		if (from != c->snd_una)
			return false;
		*start = from;
		*len = UINT32_MAX;
		return true;
	}
	for (i = 0; i < c->nsacked; i++) {
		if (SEQ_LT(from, c->sacked[i].start)) {
			*start = from;
			*len = c->sacked[i].start - from;
			return true;
		}
		if (SEQ_LT(from, c->sacked[i].end))
			from = c->sacked[i].end;
	}
	return false;
}

static void
enter_recovery(struct tcp_conn *c, uint64_t now)
{
	uint32_t flight = c->snd_max - c->snd_una, h, hl;

	c->ssthresh = MAX(flight / 2, 2 * c->smss);
	c->cwnd = c->ssthresh + 3 * c->smss;
	c->in_recovery = true;
	c->stats.recoveries++;
	c->recover = c->snd_max;
	c->high_rxt = c->snd_una;
	if (next_hole(c, c->snd_una, &h, &hl))
		c->high_rxt = h + retransmit_at(c, h, hl, now);
	arm_rtx(c, now);
}

static void
ack_duplicate(struct tcp_conn *c, uint64_t now)
{
	uint32_t h, hl;

	c->dupacks++;
	if (!c->in_recovery) {
		/* RFC 6582 §3.2 step 1: no new recovery for losses from
		 * before the previous one.  Besides three duplicate ACKs, a
		 * hole below SACKs that reach the end of our data is lost:
		 * no further ACKs will come to count (RFC 5827's early
		 * retransmit, as RACK would decide after a tail probe). */
		if (SEQ_GEQ(c->snd_una, c->recover) && (c->dupacks == 3 ||
		    (c->nsacked > 0 && c->snd_nxt == c->snd_max &&
		    SEQ_GEQ(c->sacked[c->nsacked - 1].end,
		    c->snd_una + c->sndbuf.len))))
			enter_recovery(c, now);
		return;
	}
	c->cwnd += c->smss;
	/* A duplicate ACK more than a round trip (plus a quarter for
	 * reordering) after we resent snd_una's segment was sent by data
	 * that left after the retransmission: the retransmission itself was
	 * lost.  Resend it now rather than waiting for the RTO (the idea of
	 * RACK, RFC 8985, for the one hole that blocks everything). */
	if (c->una_rxt_at != 0 && c->srtt_x8 != 0 &&
	    now - c->una_rxt_at > c->srtt_x8 / 8 + c->srtt_x8 / 32 + 2 &&
	    next_hole(c, c->snd_una, &h, &hl)) {
		(void)retransmit_at(c, h, hl, now);
		return;
	}
	/* With SACK information, fill the next hole at once instead of
	 * waiting a round trip per loss. */
	if (c->nsacked > 0 && next_hole(c, SEQ_MAX(c->high_rxt, c->snd_una), &h, &hl))
		c->high_rxt = h + retransmit_at(c, h, hl, now);
}

static void
ack_new_data(struct tcp_conn *c, const struct tcp_seg *seg, uint64_t now)
{
	uint32_t acked = seg->ack - c->snd_una, data, h, hl;

	/* FIN is the last sequence number; it has no byte in the ring. */
	data = MIN(acked, c->sndbuf.len);
	if (data > 0) {
		ring_consume(&c->sndbuf, data);
		c->events |= TCP_EV_WRITABLE;
		/* Idle connections hold no ring memory (see ring_release). */
		if (c->sndbuf.len == 0)
			ring_release(c, &c->sndbuf);
	}
	c->snd_una = seg->ack;
	c->una_rxt_at = 0;
	if (SEQ_LT(c->snd_nxt, c->snd_una))
		c->snd_nxt = c->snd_una;
	/* RTT: timestamps give a sample per ACK even across retransmits
	 * (RFC 7323 §4); otherwise Karn's rule via rtt_timing. */
	if (c->ts_ok && seg->has_ts && seg->tsecr != 0)
		rtt_sample(c, (uint32_t)now + c->ts_offset - seg->tsecr);
	else if (c->rtt_timing && SEQ_GT(seg->ack, c->rtt_seq)) {
		rtt_sample(c, (uint32_t)(now - c->rtt_start));
		c->rtt_timing = false;
	}
	c->retries = 0;
	if (c->in_recovery) {
		if (SEQ_GEQ(seg->ack, c->recover)) {
			/* Full ACK: deflate (RFC 6582 §3.2 step 3). */
			c->in_recovery = false;
			c->cwnd = MIN(c->ssthresh,
			    MAX(c->snd_max - c->snd_una, c->smss) + c->smss);
		} else {
			/* Partial ACK: the next hole is lost too. */
			if (next_hole(c, SEQ_MAX(c->snd_una, c->high_rxt), &h, &hl) ||
			    (c->nsacked == 0 && next_hole(c, c->snd_una, &h, &hl)))
				c->high_rxt = h + retransmit_at(c, h, hl, now);
			c->cwnd = c->cwnd > acked ? c->cwnd - acked : 0;
			c->cwnd += c->smss;
		}
	} else if (c->cwnd < c->ssthresh) {
		c->cwnd += MIN(acked, c->smss);		/* slow start */
	} else {
		c->cwnd += MAX(1u, (uint32_t)((uint64_t)c->smss * c->smss / c->cwnd));
	}
	c->dupacks = 0;
	if (c->snd_una == c->snd_max)
		c->t_rtx = c->t_tlp = TCP_NEVER;
	else
		arm_rtx(c, now);
}

/* Returns false if processing must stop (segment dropped or closed). */
static bool
process_ack(struct tcp_conn *c, const struct tcp_seg *seg, uint32_t seglen,
    uint64_t now)
{
	bool fin_was_sent = fin_sent(c), sack_new = false;
	uint32_t old_wnd = c->snd_wnd, fseq = fin_seq(c);

	/* RFC 5961 §5.2: an ACK older than what the peer could have seen
	 * is a blind injection attempt. */
	if (SEQ_LT(seg->ack, c->snd_una - c->max_snd_wnd)) {
		challenge_ack(c, now);
		c->stats.dropped_segs++;
		return false;
	}
	if (SEQ_GT(seg->ack, c->snd_max)) {
		/* Acks something never sent. */
		send_ack(c, now);
		c->stats.dropped_segs++;
		return false;
	}
	if (c->sack_ok && seg->nsack > 0)
		sack_new = sack_update(c, seg);
	if (SEQ_GT(seg->ack, c->snd_una)) {
		ack_new_data(c, seg, now);
	} else if (seg->ack == c->snd_una && seglen == 0 &&
	    !(seg->flags & (TH_SYN | TH_FIN)) && c->snd_max != c->snd_una &&
	    (((uint32_t)seg->wnd << c->snd_wscale) == old_wnd || sack_new)) {
		/* RFC 5681 §2, or RFC 6675's "ACK with new SACK information":
		 * a receiver whose application is reading changes its window
		 * in every ACK, and must not hide losses from us that way. */
		ack_duplicate(c, now);
	}
	/* Window update from a newer segment (RFC 9293 SND.WL1/WL2). */
	if (SEQ_LT(c->snd_wl1, seg->seq) ||
	    (c->snd_wl1 == seg->seq && SEQ_LEQ(c->snd_wl2, seg->ack)))
		take_peer_window(c, seg);
	if (c->nsacked > 0) {
		/* Prune below the new snd_una (no new blocks: nsack 0). */
		struct tcp_seg none = { .nsack = 0 };

		(void)sack_update(c, &none);
	}

	if (fin_was_sent && SEQ_GT(seg->ack, fseq)) {
		/* Our FIN is acknowledged. */
		c->fin_acked = true;
		switch (c->state) {
		case TCP_FIN_WAIT_1:
			c->state = TCP_FIN_WAIT_2;
			if (c->cfg->fin_wait_2_ms)
				c->t_close = now + c->cfg->fin_wait_2_ms;
			break;
		case TCP_CLOSING:
			enter_time_wait(c, now);
			return false;
		case TCP_LAST_ACK:
			enter_closed(c, 0);
			return false;
		default:
			break;
		}
	}
	return true;
}

/* Insert [start,end) into the out-of-order list; false if it is full. */
static bool
ooo_insert(struct tcp_conn *c, uint32_t start, uint32_t end)
{
	struct tcp_sack_block tmp[TCP_MAX_OOO + 1];
	uint8_t i, n = 0, at = 0;
	bool placed = false;

	for (i = 0; i <= c->nooo; i++) {
		if (!placed && (i == c->nooo || SEQ_LT(start, c->ooo[i].start))) {
			tmp[n++] = (struct tcp_sack_block){ start, end };
			placed = true;
		}
		if (i < c->nooo)
			tmp[n++] = c->ooo[i];
	}
	/* Merge overlapping or adjacent ranges. */
	c->nooo = 0;
	for (i = 0; i < n; i++) {
		if (c->nooo > 0 && SEQ_LEQ(tmp[i].start, c->ooo[c->nooo - 1].end)) {
			c->ooo[c->nooo - 1].end = SEQ_MAX(c->ooo[c->nooo - 1].end,
			    tmp[i].end);
		} else {
			if (c->nooo == TCP_MAX_OOO)
				return false;	/* cannot happen: checked below */
			c->ooo[c->nooo++] = tmp[i];
		}
		if (SEQ_BETWEEN(c->ooo[c->nooo - 1].start, start,
		    c->ooo[c->nooo - 1].end))
			at = (uint8_t)(c->nooo - 1);
	}
	c->ooo_last = at;
	return true;
}

/* Would inserting [start,end) need a new slot when the list is full? */
static bool
ooo_fits(const struct tcp_conn *c, uint32_t start, uint32_t end)
{
	uint8_t i;

	if (c->nooo < TCP_MAX_OOO)
		return true;
	for (i = 0; i < c->nooo; i++)
		if (SEQ_LEQ(start, c->ooo[i].end) && SEQ_GEQ(end, c->ooo[i].start))
			return true;
	return false;
}

static void
deliver_fin(struct tcp_conn *c, uint64_t now)
{
	c->rcv_nxt++;
	c->fin_rcvd = true;
	c->ack_now = true;
	c->events |= TCP_EV_PEER_FIN;
	switch (c->state) {
	case TCP_ESTABLISHED:
		c->state = TCP_CLOSE_WAIT;
		break;
	case TCP_FIN_WAIT_1:
		/* Simultaneous close: our FIN is not acked yet. */
		c->state = TCP_CLOSING;
		break;
	case TCP_FIN_WAIT_2:
		enter_time_wait(c, now);
		break;
	default:
		break;
	}
}

static void
process_data(struct tcp_conn *c, const struct tcp_seg *seg, uint64_t now)
{
	const uint8_t *data = seg->data;
	uint32_t seq = seg->seq, len = seg->len, room, off, skip;
	bool fin = (seg->flags & TH_FIN) != 0;

	if (c->state != TCP_ESTABLISHED && c->state != TCP_FIN_WAIT_1 &&
	    c->state != TCP_FIN_WAIT_2) {
		/* Peer already sent its FIN: a retransmission of it (or of
		 * data before it) only needs our ACK again. */
		if (len > 0 || fin) {
			c->ack_now = true;
			if (c->state == TCP_TIME_WAIT)
				c->t_close = now + c->cfg->time_wait_ms;
		}
		return;
	}
	if (SEQ_LT(seq, c->rcv_nxt)) {
		skip = c->rcv_nxt - seq;
		if (skip > len) {	/* FIN (already counted) or pure dup */
			if (len > 0 || fin)
				c->ack_now = true;
			return;
		}
		data += skip;
		len -= skip;
		seq = c->rcv_nxt;
		if (len == 0 && !fin) {
			c->ack_now = true;	/* duplicate: tell the peer */
			return;
		}
	}
	room = c->rcvbuf.cap - c->rcvbuf.len;
	off = seq - c->rcv_nxt;
	if (len > 0) {
		if (off >= room || !ring_ensure(c, &c->rcvbuf)) {
			c->ack_now = true;
			return;
		}
		if (len > room - off) {
			len = room - off;
			fin = false;	/* the FIN lies beyond the window */
		}
	}
	if (off > 0) {
		/* Out of order: store in place, remember the range, ACK at
		 * once so the peer's fast retransmit can start. */
		c->ack_now = true;
		if (len == 0 || !ooo_fits(c, seq, seq + len))
			return;
		ring_write_at(&c->rcvbuf, off, data, len);
		ooo_insert(c, seq, seq + len);
		/* An out-of-order FIN is dropped: the peer retransmits it
		 * with the data before it. */
		return;
	}
	if (len > 0) {
		ring_write_at(&c->rcvbuf, 0, data, len);
		c->rcvbuf.len += len;
		c->rcv_nxt += len;
		c->stats.bytes_in += len;
		c->events |= TCP_EV_READABLE;
		/* Pull in out-of-order ranges the new bytes reach. */
		if (c->nooo > 0) {
			c->ack_now = true;	/* a hole was filled */
			while (c->nooo > 0 && SEQ_LEQ(c->ooo[0].start, c->rcv_nxt)) {
				uint32_t add = SEQ_GT(c->ooo[0].end, c->rcv_nxt) ?
				    c->ooo[0].end - c->rcv_nxt : 0;

				c->rcvbuf.len += add;
				c->rcv_nxt += add;
				c->stats.bytes_in += add;
				memmove(&c->ooo[0], &c->ooo[1],
				    (size_t)(c->nooo - 1) * sizeof(c->ooo[0]));
				c->nooo--;
			}
			c->ooo_last = 0;
		}
		/* RFC 9293 §3.8.6.3 / RFC 1122: ACK at least every second
		 * full-size segment, else delay. */
		if (++c->unacked_segs >= 2)
			c->ack_now = true;
		else if (c->t_delack == TCP_NEVER)
			c->t_delack = now + c->cfg->delack_ms;
	}
	/* The FIN counts only where it sits: right after this segment's
	 * data, with nothing out of order beyond it. */
	if (fin && c->nooo == 0 && seq + len == c->rcv_nxt)
		deliver_fin(c, now);
}

static void
input_synchronized(struct tcp_conn *c, const struct tcp_seg *seg, uint64_t now)
{
	uint32_t seglen = seg->len + ((seg->flags & TH_SYN) ? 1 : 0) +
	    ((seg->flags & TH_FIN) ? 1 : 0);
	struct tcp_seg trimmed;

	/* A retransmitted SYN while our SYN-ACK is outstanding. */
	if (c->state == TCP_SYN_RCVD && (seg->flags & (TH_SYN | TH_ACK | TH_RST)) ==
	    TH_SYN && seg->seq == c->irs) {
		send_synack(c, now);
		return;
	}
	/* PAWS (RFC 7323 §5.3): an old timestamp marks an old duplicate. */
	if (c->ts_ok && seg->has_ts && !(seg->flags & TH_RST) &&
	    SEQ_LT(seg->tsval, c->ts_recent)) {
		c->stats.dropped_segs++;
		send_ack(c, now);
		return;
	}
	if (!check_acceptable(c, seg, seglen)) {
		/* Zero window: a probe at rcv_nxt is still ACK-processed. */
		if (seg->len > 0 && seg->seq == c->rcv_nxt &&
		    c->rcvbuf.len == c->rcvbuf.cap && !(seg->flags & (TH_RST | TH_SYN))) {
			trimmed = *seg;
			trimmed.len = 0;
			trimmed.flags &= (uint8_t)~TH_FIN;
			c->ack_now = true;
			if ((seg->flags & TH_ACK) && c->state != TCP_SYN_RCVD)
				process_ack(c, &trimmed, 0, now);
			tcp_output(c, now);
			return;
		}
		c->stats.dropped_segs++;
		if (!(seg->flags & TH_RST))
			send_ack(c, now);
		return;
	}
	if (seg->flags & TH_RST) {
		/* RFC 5961 §3.2: only an exact match resets. */
		if (seg->seq == c->rcv_nxt)
			enter_closed(c, ECONNRESET);
		else
			challenge_ack(c, now);
		return;
	}
	if (seg->flags & TH_SYN) {
		/* RFC 5961 §4: any SYN in a synchronized state. */
		challenge_ack(c, now);
		return;
	}
	if (!(seg->flags & TH_ACK)) {
		c->stats.dropped_segs++;
		return;
	}
	/* Our timestamps echo the latest in-window TSval (RFC 7323 §4.3). */
	if (c->ts_ok && seg->has_ts && SEQ_LEQ(seg->seq, c->last_ack_sent))
		c->ts_recent = seg->tsval;
	if (c->cfg->keepalive_idle_ms) {
		c->t_keepalive = now + c->cfg->keepalive_idle_ms;
		c->ka_probes = 0;
	}

	if (c->state == TCP_SYN_RCVD) {
		if (!SEQ_BETWEEN(c->iss + 1, seg->ack, c->snd_max)) {
			emit_segment(c, seg->ack, TH_RST, 0, 0, now);
			return;
		}
		c->state = TCP_ESTABLISHED;
		c->snd_una = c->iss + 1;
		c->retries = 0;
		c->t_rtx = TCP_NEVER;
		c->rto = c->cfg->rto_initial_ms;
		if (c->ts_ok && seg->has_ts && seg->tsecr != 0)
			rtt_sample(c, (uint32_t)now + c->ts_offset - seg->tsecr);
		take_peer_window(c, seg);
		c->events |= TCP_EV_ESTABLISHED;
		if (c->fin_queued)
			c->state = TCP_FIN_WAIT_1;
	}
	if (!process_ack(c, seg, seg->len, now))
		return;
	process_data(c, seg, now);
	tcp_output(c, now);
}

void
tcp_input(struct tcp_conn *c, const struct tcp_seg *seg, uint64_t now)
{
	c->stats.segs_in++;
	switch (c->state) {
	case TCP_CLOSED:
		return;	/* the stack answers for closed tuples */
	case TCP_LISTEN:
		input_listen(c, seg, now);
		return;
	default:
		input_synchronized(c, seg, now);
		return;
	}
}

/* ------------------------------------------------------------------ app */

ssize_t
tcp_send(struct tcp_conn *c, const void *data, size_t len, uint64_t now)
{
	uint32_t n;

	if (c->fin_queued || (c->state != TCP_SYN_RCVD &&
	    c->state != TCP_ESTABLISHED && c->state != TCP_CLOSE_WAIT))
		return -1;
	n = (uint32_t)MIN(len, (size_t)(c->sndbuf.cap - c->sndbuf.len));
	if (n == 0 || !ring_ensure(c, &c->sndbuf))
		return 0;
	ring_write_at(&c->sndbuf, 0, data, n);
	c->sndbuf.len += n;
	if (synchronized(c))
		tcp_output(c, now);
	return n;
}

int
tcp_send_room(struct tcp_conn *c, struct iovec iov[2])
{
	struct tcp_ring *r = &c->sndbuf;
	uint32_t pos, room, first;

	if (c->fin_queued || (c->state != TCP_SYN_RCVD &&
	    c->state != TCP_ESTABLISHED && c->state != TCP_CLOSE_WAIT))
		return -1;
	if ((room = r->cap - r->len) == 0 || !ring_ensure(c, r))
		return 0;
	pos = (uint32_t)(((uint64_t)r->head + r->len) % r->cap);
	first = MIN(room, r->cap - pos);
	iov[0].iov_base = r->buf + pos;
	iov[0].iov_len = first;
	if (first == room)
		return 1;
	iov[1].iov_base = r->buf;
	iov[1].iov_len = room - first;
	return 2;
}

void
tcp_send_commit(struct tcp_conn *c, size_t n, uint64_t now)
{
	struct tcp_ring *r = &c->sndbuf;

	if (r->buf == NULL)
		return;
	if (n > r->cap - r->len)
		n = r->cap - r->len;	/* caller bug; never overrun */
	r->len += (uint32_t)n;
	if (r->len == 0) {
		ring_release(c, r);
		return;
	}
	if (n > 0 && synchronized(c))
		tcp_output(c, now);
}

size_t
tcp_send_space(const struct tcp_conn *c)
{
	if (c->fin_queued)
		return 0;
	return c->sndbuf.cap - c->sndbuf.len;
}

size_t
tcp_recv_avail(const struct tcp_conn *c)
{
	return c->rcvbuf.len;
}

size_t
tcp_recv_peek(const struct tcp_conn *c, const uint8_t **p)
{
	const struct tcp_ring *r = &c->rcvbuf;

	if (r->len == 0) {
		*p = NULL;
		return 0;
	}
	*p = r->buf + r->head;
	return MIN(r->len, r->cap - r->head);
}

void
tcp_recv_consume(struct tcp_conn *c, size_t n, uint64_t now)
{
	uint32_t before, after;

	if (n > c->rcvbuf.len)
		n = c->rcvbuf.len;
	if (n == 0)
		return;
	/* The ring moves; out-of-order offsets are relative to rcv_nxt,
	 * which does not, so they stay valid. */
	before = c->rcv_adv - c->rcv_nxt;
	ring_consume(&c->rcvbuf, (uint32_t)n);
	if (c->rcvbuf.len == 0 && c->nooo == 0)
		ring_release(c, &c->rcvbuf);
	if (c->state == TCP_CLOSED || c->state == TCP_SYN_RCVD ||
	    c->state == TCP_TIME_WAIT)
		return;
	/* Window update when the edge can move by at least the SWS step,
	 * or reopening a (nearly) closed window. */
	after = c->rcvbuf.cap - c->rcvbuf.len;
	if (after - MIN(after, before) >= MIN(c->rcvbuf.cap / 2, 2 * c->smss) ||
	    (before < c->smss && after >= c->smss)) {
		c->ack_now = true;
		tcp_output(c, now);
	}
}

size_t
tcp_recv(struct tcp_conn *c, void *buf, size_t len, uint64_t now)
{
	uint32_t n = (uint32_t)MIN(len, (size_t)c->rcvbuf.len);

	if (n == 0)
		return 0;
	ring_read_at(&c->rcvbuf, 0, buf, n);
	tcp_recv_consume(c, n, now);
	return n;
}

void
tcp_shutdown(struct tcp_conn *c, uint64_t now)
{
	if (c->fin_queued)
		return;
	switch (c->state) {
	case TCP_SYN_RCVD:
		c->fin_queued = true;	/* FIN-WAIT-1 once established */
		return;
	case TCP_ESTABLISHED:
		c->fin_queued = true;
		c->state = TCP_FIN_WAIT_1;
		break;
	case TCP_CLOSE_WAIT:
		c->fin_queued = true;
		c->state = TCP_LAST_ACK;
		break;
	default:
		return;
	}
	tcp_output(c, now);
}

void
tcp_abort(struct tcp_conn *c, uint64_t now)
{
	if (c->state == TCP_CLOSED)
		return;
	if (c->state != TCP_LISTEN && c->state != TCP_TIME_WAIT)
		send_rst(c, now);
	enter_closed(c, ECONNABORTED);
}

/* ------------------------------------------------------------------ timers */

static void
on_rto(struct tcp_conn *c, uint64_t now)
{
	uint32_t flight = c->snd_max - c->snd_una;

	c->t_rtx = TCP_NEVER;
	c->retries++;
	c->stats.timeouts++;
	c->rto = MIN(c->rto * 2, c->cfg->rto_max_ms);	/* RFC 6298 5.5 */
	if (c->state == TCP_SYN_RCVD) {
		if (c->retries > c->cfg->max_syn_retries) {
			send_rst(c, now);
			enter_closed(c, ETIMEDOUT);
			return;
		}
		send_synack(c, now);
		c->stats.retransmits++;
		arm_rtx(c, now);
		return;
	}
	if (c->retries > c->cfg->max_retries) {
		send_rst(c, now);
		enter_closed(c, ETIMEDOUT);
		return;
	}
	/* RFC 5681 §3.1 eq. 4; then go back N from snd_una. */
	c->ssthresh = MAX(flight / 2, 2 * c->smss);
	c->cwnd = c->smss;
	c->in_recovery = false;
	c->recover = c->snd_max;
	c->dupacks = 0;
	/* Going back N skips what the peer SACKed (as Linux does).  RFC 2018
	 * allows a receiver to renege, so a second timeout in a row drops
	 * the scoreboard and resends everything. */
	if (c->retries > 1)
		c->nsacked = 0;
	c->rtt_timing = false;
	c->snd_nxt = c->snd_una;
	if (c->snd_wnd == 0) {
		/* The peer closed its window: it is alive and said so, so
		 * probe it from the persist timer instead of counting
		 * retries towards an abort. */
		c->retries = 0;
		c->persist_backoff = 0;
		c->t_persist = now + c->rto;
		if (c->fin_queued && c->sndbuf.len == 0)
			tcp_output(c, now);	/* a lone FIN needs no window */
		return;
	}
	tcp_output(c, now);
}

/* Tail loss probe: resend the last segment once; its SACK (or ACK) tells
 * what is missing.  The RTO stays armed as it was. */
static void
on_tlp(struct tcp_conn *c, uint64_t now)
{
	uint32_t data_end = c->snd_una + c->sndbuf.len, len, start;

	c->t_tlp = TCP_NEVER;
	if (c->snd_una == c->snd_max || c->snd_nxt != c->snd_max ||
	    c->in_recovery)
		return;
	/* The last data segment (with the FIN, if sent, riding on it). */
	len = MIN(SEQ_LT(data_end, c->snd_max) ? data_end - c->snd_una :
	    c->snd_max - c->snd_una, payload_max(c));
	start = (SEQ_LT(data_end, c->snd_max) ? data_end : c->snd_max) - len;
	if (retransmit_at(c, start, len ? len : 1, now) > 0)
		c->stats.tail_probes++;
}

static void
on_persist(struct tcp_conn *c, uint64_t now)
{
	uint32_t backoff;

	if (c->snd_wnd > 0) {
		/* A window too small for SWS avoidance: send into it now. */
		c->t_persist = TCP_NEVER;
		c->sws_override = true;
		tcp_output(c, now);
		return;
	}
	/* A segment just below the window elicits an ACK carrying the
	 * current window (RFC 9293 §3.8.6.1); it consumes no sequence
	 * space, so it never needs retransmission. */
	emit_segment(c, c->snd_una - 1, TH_ACK, 0, 0, now);
	if (c->persist_backoff < 16)
		c->persist_backoff++;
	backoff = (uint32_t)MIN((uint64_t)MAX(c->rto, c->cfg->rto_min_ms) <<
	    c->persist_backoff, (uint64_t)c->cfg->rto_max_ms);
	c->t_persist = now + backoff;
}

static void
on_keepalive(struct tcp_conn *c, uint64_t now)
{
	if (c->state != TCP_ESTABLISHED && c->state != TCP_CLOSE_WAIT) {
		c->t_keepalive = TCP_NEVER;
		return;
	}
	if (c->ka_probes >= c->cfg->keepalive_probes) {
		send_rst(c, now);
		enter_closed(c, ETIMEDOUT);
		return;
	}
	c->ka_probes++;
	emit_segment(c, c->snd_una - 1, TH_ACK, 0, 0, now);
	c->t_keepalive = now + c->cfg->keepalive_intvl_ms;
}

void
tcp_on_timer(struct tcp_conn *c, uint64_t now)
{
	if (c->t_close <= now) {
		c->t_close = TCP_NEVER;
		if (c->state == TCP_TIME_WAIT) {
			c->state = TCP_CLOSED;
			c->t_rtx = c->t_persist = c->t_delack = c->t_keepalive =
			    TCP_NEVER;
			return;
		}
		if (c->state == TCP_FIN_WAIT_2) {
			send_rst(c, now);
			enter_closed(c, ETIMEDOUT);
			return;
		}
	}
	if (c->t_rtx <= now) {
		on_rto(c, now);
		if (c->state == TCP_CLOSED)
			return;
	}
	if (c->t_tlp <= now)
		on_tlp(c, now);
	if (c->t_persist <= now)
		on_persist(c, now);
	if (c->t_keepalive <= now) {
		on_keepalive(c, now);
		if (c->state == TCP_CLOSED)
			return;
	}
	if (c->t_delack <= now) {
		c->t_delack = TCP_NEVER;
		send_ack(c, now);
	}
}

/* ------------------------------------------------------------------ RST */

size_t
tcp_build_bare(const struct tcp_tuple *t, uint32_t seq, uint32_t ack,
    uint8_t flags, uint16_t wnd, uint8_t *out, size_t cap)
{
	size_t hl = ip_hdr_len(t->version), total = hl + TCP_HDR_LEN;
	uint8_t *th = out + hl;

	if (cap < total)
		return 0;
	ip_write_hdr(out, t->version, t->laddr, t->raddr, IPPROTO_NS_TCP,
	    TCP_HDR_LEN);
	memset(th, 0, TCP_HDR_LEN);
	wr16(th, t->lport);
	wr16(th + 2, t->rport);
	wr32(th + 4, seq);
	wr32(th + 8, (flags & TH_ACK) ? ack : 0);
	th[12] = 5 << 4;
	th[13] = flags;
	wr16(th + 14, wnd);
	ip_set_l4_csum(out, total, 16);
	return total;
}

size_t
tcp_build_rst_reply(const struct tcp_tuple *t, const struct tcp_seg *seg,
    uint8_t *out, size_t cap)
{
	uint32_t seglen;

	if (seg->flags & TH_RST)
		return 0;
	if (seg->flags & TH_ACK)
		return tcp_build_bare(t, seg->ack, 0, TH_RST, 0, out, cap);
	seglen = seg->len + ((seg->flags & TH_SYN) ? 1 : 0) +
	    ((seg->flags & TH_FIN) ? 1 : 0);
	return tcp_build_bare(t, 0, seg->seq + seglen, TH_RST | TH_ACK, 0, out,
	    cap);
}
