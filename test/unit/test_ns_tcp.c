/*
 * Unit tests for netstackd's TCP connection (netstackd/tcp.c): one small
 * test per (state, event).  The peer's segments are built from a template
 * (struct tcp_seg filled field by field), time is injected, and every packet
 * the connection emits is captured, re-parsed by ip_parse()/tcp_parse() and
 * checked (checksums included).  Teardown checks that no ring memory leaked.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "netstackd/ip.h"
#include "netstackd/tcp.h"

#define MAX_OUT	64
#define ISS	1000000u
#define IRS	5000u

struct out_pkt {
	uint8_t		buf[2048];
	size_t		len;
	struct tcp_seg	seg;
};

struct fx {
	struct tcp_config cfg;
	struct tcp_mem	mem;
	uint8_t		scratch[65536];
	struct tcp_tuple tuple;
	struct tcp_conn	c;
	struct out_pkt	out[MAX_OUT];
	int		nout;
	uint64_t	now;
};

static void
capture(void *ctx, const uint8_t *pkt, size_t len)
{
	struct fx *f = ctx;
	struct out_pkt *o;
	struct ip_stats st = { 0 };
	struct ip_pkt ip;

	assert_true(f->nout < MAX_OUT);
	o = &f->out[f->nout++];
	assert_true(len <= sizeof(o->buf));
	memcpy(o->buf, pkt, len);
	o->len = len;
	/* Everything we emit must be a valid packet. */
	assert_int_equal(ip_parse(o->buf, len, &ip, &st), 0);
	assert_int_equal(ip.proto, IPPROTO_NS_TCP);
	assert_true(ip_l4_csum_ok(&ip));
	assert_int_equal(tcp_parse(ip.l4, ip.l4len, &o->seg), 0);
	assert_int_equal(o->seg.sport, 443);
	assert_int_equal(o->seg.dport, 40000);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	static const uint8_t la[4] = { 93, 184, 216, 34 }, ra[4] = { 10, 0, 0, 1 };

	assert_non_null(f);
	tcp_config_defaults(&f->cfg);
	f->mem.limit = 64 * 1024 * 1024;
	f->cfg.mem = &f->mem;
	f->cfg.scratch = f->scratch;
	f->cfg.emit = capture;
	f->cfg.emit_ctx = f;
	f->cfg.rcvbuf = 64 * 1024;
	f->cfg.sndbuf = 64 * 1024;
	f->tuple.version = 4;
	memcpy(f->tuple.laddr, la, 4);
	memcpy(f->tuple.raddr, ra, 4);
	f->tuple.lport = 443;
	f->tuple.rport = 40000;
	f->now = 10000;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	tcp_conn_destroy(&f->c);
	assert_int_equal(f->mem.used, 0);	/* nothing leaked */
	free(f);
	return 0;
}

static void
init_conn(struct fx *f, uint32_t iss)
{
	tcp_conn_init(&f->c, &f->cfg, &f->tuple, iss, f->now);
}

static struct tcp_seg
seg_tmpl(uint8_t flags, uint32_t seq, uint32_t ack)
{
	struct tcp_seg s;

	memset(&s, 0, sizeof(s));
	s.sport = 40000;
	s.dport = 443;
	s.flags = flags;
	s.seq = seq;
	s.ack = ack;
	s.wnd = 65535;
	s.wscale = -1;
	return s;
}

static struct tcp_seg *
last(struct fx *f)
{
	assert_true(f->nout > 0);
	return &f->out[f->nout - 1].seg;
}

static void
input(struct fx *f, struct tcp_seg s)
{
	tcp_input(&f->c, &s, f->now);
}

/* SYN with MSS 1460, wscale 7, SACK-permitted, timestamps. */
static struct tcp_seg
syn_full(uint32_t irs)
{
	struct tcp_seg s = seg_tmpl(TH_SYN, irs, 0);

	s.mss = 1460;
	s.wscale = 7;
	s.sack_perm = true;
	s.has_ts = true;
	s.tsval = 100;
	return s;
}

/* Handshake; opts: 1 = full options, 0 = none.  Returns with nout = 0. */
static void
establish(struct fx *f, uint32_t iss, uint32_t irs, int opts)
{
	struct tcp_seg s;

	init_conn(f, iss);
	s = opts ? syn_full(irs) : seg_tmpl(TH_SYN, irs, 0);
	input(f, s);
	assert_int_equal(f->c.state, TCP_SYN_RCVD);
	s = seg_tmpl(TH_ACK, irs + 1, iss + 1);
	if (opts) {
		s.has_ts = true;
		s.tsval = 101;
		s.tsecr = last(f)->tsval;
		s.wnd = 1024;	/* << 7 = 128 KiB */
	}
	f->now += 1;
	input(f, s);
	assert_int_equal(f->c.state, TCP_ESTABLISHED);
	assert_int_equal(tcp_take_events(&f->c), TCP_EV_ESTABLISHED);
	f->nout = 0;
}

/* A data segment from the peer with timestamps when negotiated. */
static struct tcp_seg
data_seg(struct fx *f, uint32_t seq, const void *data, uint32_t len)
{
	struct tcp_seg s = seg_tmpl(TH_ACK, seq, f->c.snd_nxt);

	s.data = data;
	s.len = len;
	s.wnd = f->c.ws_ok ? 1024 : 65535;
	if (f->c.ts_ok) {
		s.has_ts = true;
		s.tsval = 200;
		s.tsecr = f->c.ts_recent;
	}
	return s;
}

static struct tcp_seg
ack_seg(struct fx *f, uint32_t ack)
{
	struct tcp_seg s = data_seg(f, f->c.rcv_nxt, NULL, 0);

	s.ack = ack;
	return s;
}

static uint8_t payload[256 * 1024];

static void
fill_payload(void)
{
	size_t i;

	for (i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7 + (i >> 9));
}

/* ------------------------------------------------------------ handshake */

static void
listen_syn_synack(void **state)
{
	struct fx *f = *state;
	struct tcp_seg *o;

	init_conn(f, ISS);
	input(f, syn_full(IRS));
	assert_int_equal(f->c.state, TCP_SYN_RCVD);
	assert_int_equal(f->nout, 1);
	o = last(f);
	assert_int_equal(o->flags, TH_SYN | TH_ACK);
	assert_int_equal(o->seq, ISS);
	assert_int_equal(o->ack, IRS + 1);
	assert_int_equal(o->mss, 1500 - 40);
	assert_int_equal(o->wscale, 1);	/* 65536 > 65535: one shift */
	assert_true(o->sack_perm);
	assert_true(o->has_ts);
	assert_int_equal(o->tsecr, 100);
	assert_int_equal(o->wnd, 65535);
	assert_int_equal(tcp_poll_at(&f->c), f->now + 1000);
}

static void
listen_syn_no_options_defaults(void **state)
{
	struct fx *f = *state;
	struct tcp_seg *o;

	init_conn(f, ISS);
	input(f, seg_tmpl(TH_SYN, IRS, 0));
	o = last(f);
	assert_int_equal(o->wscale, -1);
	assert_false(o->sack_perm);
	assert_false(o->has_ts);
	assert_int_equal(f->c.mss, 536);	/* RFC 9293 default for v4 */
}

static void
listen_large_mtu_mss_and_wscale(void **state)
{
	struct fx *f = *state;

	f->cfg.mtu = 65535;
	f->cfg.rcvbuf = 4 * 1024 * 1024;
	init_conn(f, ISS);
	struct tcp_seg s = syn_full(IRS);
	s.mss = 65495;
	input(f, s);
	assert_int_equal(last(f)->mss, 65535 - 40);
	assert_int_equal(last(f)->wscale, 7);	/* 4 MiB >> 7 = 32768 */
	assert_int_equal(f->c.mss, 65495);
}

static void
listen_ack_without_syn_refused(void **state)
{
	struct fx *f = *state;

	init_conn(f, ISS);
	input(f, seg_tmpl(TH_ACK, IRS, 77));
	assert_int_equal(f->c.state, TCP_CLOSED);
	assert_int_equal(f->nout, 0);
}

static void
syn_rcvd_ack_established(void **state)
{
	struct fx *f = *state;

	establish(f, ISS, IRS, 1);
	assert_int_equal(f->c.snd_una, ISS + 1);
	assert_int_equal(f->c.snd_wnd, 1024 << 7);
	assert_int_equal(tcp_poll_at(&f->c), TCP_NEVER);
	assert_int_equal(f->nout, 0);	/* the handshake ACK needs no reply */
}

static void
syn_rcvd_bad_ack_rst(void **state)
{
	struct fx *f = *state;

	init_conn(f, ISS);
	input(f, seg_tmpl(TH_SYN, IRS, 0));
	f->nout = 0;
	input(f, seg_tmpl(TH_ACK, IRS + 1, ISS + 50));
	assert_int_equal(f->nout, 1);
	assert_int_equal(last(f)->flags, TH_RST);
	assert_int_equal(last(f)->seq, ISS + 50);
	assert_int_equal(f->c.state, TCP_SYN_RCVD);
}

static void
syn_rcvd_rst(void **state)
{
	struct fx *f = *state;

	init_conn(f, ISS);
	input(f, seg_tmpl(TH_SYN, IRS, 0));
	input(f, seg_tmpl(TH_RST, IRS + 1, 0));
	assert_int_equal(f->c.state, TCP_CLOSED);
	assert_int_equal(f->c.error, ECONNRESET);
	assert_true(tcp_take_events(&f->c) & TCP_EV_CLOSED);
}

static void
syn_rcvd_dup_syn_resends_synack(void **state)
{
	struct fx *f = *state;

	init_conn(f, ISS);
	input(f, seg_tmpl(TH_SYN, IRS, 0));
	input(f, seg_tmpl(TH_SYN, IRS, 0));
	assert_int_equal(f->nout, 2);
	assert_int_equal(last(f)->flags, TH_SYN | TH_ACK);
	assert_int_equal(last(f)->seq, ISS);
}

static void
syn_rcvd_synack_backoff_then_abort(void **state)
{
	struct fx *f = *state;
	uint64_t start = f->now, expect = 1000, t = start;
	uint32_t i;

	init_conn(f, ISS);
	input(f, seg_tmpl(TH_SYN, IRS, 0));
	for (i = 0; i < f->cfg.max_syn_retries; i++) {
		t += expect;
		assert_int_equal(tcp_poll_at(&f->c), t);
		f->now = t - 1;
		tcp_on_timer(&f->c, f->now);	/* early: nothing */
		assert_int_equal(f->nout, 1 + (int)i);
		f->now = t;
		tcp_on_timer(&f->c, f->now);
		assert_int_equal(last(f)->flags, TH_SYN | TH_ACK);
		expect *= 2;
	}
	f->now = tcp_poll_at(&f->c);
	tcp_on_timer(&f->c, f->now);
	assert_int_equal(f->c.state, TCP_CLOSED);
	assert_int_equal(f->c.error, ETIMEDOUT);
	assert_true(last(f)->flags & TH_RST);
}

/* ------------------------------------------------------------ receiving */

static void
established_data_delayed_ack(void **state)
{
	struct fx *f = *state;
	uint8_t buf[16];

	establish(f, ISS, IRS, 1);
	input(f, data_seg(f, IRS + 1, "hello", 5));
	assert_int_equal(f->nout, 0);
	assert_true(tcp_take_events(&f->c) & TCP_EV_READABLE);
	assert_int_equal(tcp_poll_at(&f->c), f->now + 40);
	f->now += 40;
	tcp_on_timer(&f->c, f->now);
	assert_int_equal(f->nout, 1);
	assert_int_equal(last(f)->ack, IRS + 6);
	assert_int_equal(tcp_recv(&f->c, buf, sizeof(buf), f->now), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(tcp_poll_at(&f->c), TCP_NEVER);
}

static void
established_second_segment_acked_at_once(void **state)
{
	struct fx *f = *state;

	establish(f, ISS, IRS, 1);
	input(f, data_seg(f, IRS + 1, payload, 1000));
	input(f, data_seg(f, IRS + 1001, payload + 1000, 1000));
	assert_int_equal(f->nout, 1);
	assert_int_equal(last(f)->ack, IRS + 2001);
	assert_int_equal(tcp_poll_at(&f->c), TCP_NEVER);
}

static void
established_ooo_fill(void **state)
{
	struct fx *f = *state;
	uint8_t buf[3000];

	establish(f, ISS, IRS, 1);
	input(f, data_seg(f, IRS + 1001, payload + 1000, 1000));
	/* Immediate duplicate ACK carrying the SACK block. */
	assert_int_equal(f->nout, 1);
	assert_int_equal(last(f)->ack, IRS + 1);
	assert_int_equal(last(f)->nsack, 1);
	assert_int_equal(last(f)->sack[0].start, IRS + 1001);
	assert_int_equal(last(f)->sack[0].end, IRS + 2001);
	assert_int_equal(tcp_recv_avail(&f->c), 0);
	input(f, data_seg(f, IRS + 1, payload, 1000));
	assert_int_equal(f->nout, 2);
	assert_int_equal(last(f)->ack, IRS + 2001);
	assert_int_equal(last(f)->nsack, 0);
	assert_int_equal(tcp_recv(&f->c, buf, sizeof(buf), f->now), 2000);
	assert_memory_equal(buf, payload, 2000);
}

static void
established_ooo_overlaps_and_limit(void **state)
{
	struct fx *f = *state;
	uint8_t buf[20000];
	int i;

	establish(f, ISS, IRS, 1);
	/* 9 disjoint ranges: the 9th does not fit the list and is dropped. */
	for (i = 0; i < 9; i++)
		input(f, data_seg(f, IRS + 1 + 200 + 400 * (uint32_t)i,
		    payload + 200 + 400 * i, 100));
	assert_int_equal(f->c.nooo, TCP_MAX_OOO);
	/* Overlapping duplicates merge. */
	input(f, data_seg(f, IRS + 1 + 150, payload + 150, 200));
	assert_int_equal(f->c.nooo, TCP_MAX_OOO);
	/* Fill everything up to the 9th range's start. */
	for (i = 0; i < 9; i++)
		input(f, data_seg(f, IRS + 1 + 400 * (uint32_t)i,
		    payload + 400 * i, 400));
	assert_int_equal(f->c.nooo, 0);
	assert_int_equal(f->c.rcv_nxt, IRS + 1 + 3600);
	assert_int_equal(tcp_recv(&f->c, buf, sizeof(buf), f->now), 3600);
	assert_memory_equal(buf, payload, 3600);
}

static void
established_duplicate_data_reacked(void **state)
{
	struct fx *f = *state;

	establish(f, ISS, IRS, 1);
	input(f, data_seg(f, IRS + 1, payload, 1000));
	input(f, data_seg(f, IRS + 1, payload, 1000));
	assert_int_equal(f->nout, 1);
	assert_int_equal(last(f)->ack, IRS + 1001);
	assert_int_equal(tcp_recv_avail(&f->c), 1000);
	/* Partly old, partly new: only the new part is kept. */
	input(f, data_seg(f, IRS + 501, payload + 500, 1000));
	assert_int_equal(tcp_recv_avail(&f->c), 1500);
}

static void
seq_wraparound_data(void **state)
{
	struct fx *f = *state;
	uint8_t buf[4096];
	uint32_t irs = 0xfffffc00u, iss = 0xfffffe00u;
	uint32_t off = 0;
	ssize_t n;

	establish(f, iss, irs, 1);
	while (off < 3000) {
		input(f, data_seg(f, irs + 1 + off, payload + off, 500));
		off += 500;
	}
	assert_int_equal(f->c.rcv_nxt, irs + 1 + 3000);
	assert_true(f->c.rcv_nxt < 4096);	/* wrapped */
	assert_int_equal(tcp_recv(&f->c, buf, sizeof(buf), f->now), 3000);
	assert_memory_equal(buf, payload, 3000);
	/* And sending across the wrap, acked in pieces. */
	n = tcp_send(&f->c, payload, 2000, f->now);
	assert_int_equal(n, 2000);
	input(f, ack_seg(f, iss + 1 + 1000));
	assert_int_equal(f->c.snd_una, iss + 1001);
	/* Nagle held the 552-byte tail until the full segment is acked. */
	assert_int_equal(f->c.snd_max, iss + 1 + 1448);
	input(f, ack_seg(f, iss + 1 + 1448));
	assert_int_equal(f->c.snd_max, iss + 1 + 2000);
	input(f, ack_seg(f, iss + 1 + 2000));
	assert_int_equal(f->c.snd_una, iss + 2001);
	assert_true(f->c.snd_una < 4096);
	assert_int_equal(tcp_poll_at(&f->c), TCP_NEVER);	/* all acked both ways */
}

static void
receive_window_is_free_space(void **state)
{
	struct fx *f = *state;
	uint32_t off = 0;
	uint8_t buf[65536];

	f->cfg.rcvbuf = 8192;
	establish(f, ISS, IRS, 0);
	while (off < 8192) {
		input(f, data_seg(f, IRS + 1 + off, payload + off, 1024));
		off += 1024;
	}
	assert_int_equal(last(f)->wnd, 0);
	assert_int_equal(last(f)->ack, IRS + 1 + 8192);
	/* Data beyond a zero window is not taken, but ACKed. */
	f->nout = 0;
	input(f, data_seg(f, IRS + 1 + 8192, payload, 100));
	assert_int_equal(f->nout, 1);
	assert_int_equal(last(f)->ack, IRS + 1 + 8192);
	assert_int_equal(tcp_recv_avail(&f->c), 8192);
	/* Reading opens the window and announces it. */
	f->nout = 0;
	assert_int_equal(tcp_recv(&f->c, buf, 6000, f->now), 6000);
	assert_int_equal(f->nout, 1);
	assert_int_equal(last(f)->wnd, 6000);
}

static void
window_scaling_applied_both_ways(void **state)
{
	struct fx *f = *state;

	f->cfg.rcvbuf = 1024 * 1024;
	establish(f, ISS, IRS, 1);
	assert_int_equal(f->c.rcv_wscale, 5);
	assert_int_equal(f->c.snd_wscale, 7);
	assert_int_equal(f->c.snd_wnd, 1024u << 7);
	input(f, data_seg(f, IRS + 1, payload, 1000));
	input(f, data_seg(f, IRS + 1001, payload, 1000));
	/* Free space (1 MiB - 2000) scaled down by 2^5. */
	assert_int_equal(last(f)->wnd, (1024 * 1024 - 2000) >> 5);
	/* Peer's window change is scaled by 7: 10 << 7 = 1280 bytes. */
	struct tcp_seg s = ack_seg(f, ISS + 1);
	s.wnd = 10;
	s.seq = f->c.rcv_nxt;
	input(f, s);
	assert_int_equal(f->c.snd_wnd, 1280);
}

/* ------------------------------------------------------------ sending */

static void
established_send_and_ack(void **state)
{
	struct fx *f = *state;

	establish(f, ISS, IRS, 1);
	assert_int_equal(tcp_send(&f->c, "abc", 3, f->now), 3);
	assert_int_equal(f->nout, 1);
	assert_int_equal(last(f)->flags, TH_ACK | TH_PSH);
	assert_int_equal(last(f)->seq, ISS + 1);
	assert_int_equal(last(f)->len, 3);
	assert_memory_equal(last(f)->data, "abc", 3);
	assert_int_not_equal(tcp_poll_at(&f->c), TCP_NEVER);
	input(f, ack_seg(f, ISS + 4));
	assert_true(tcp_take_events(&f->c) & TCP_EV_WRITABLE);
	assert_int_equal(tcp_poll_at(&f->c), TCP_NEVER);
	assert_int_equal(f->c.stats.bytes_out, 3);
}

static void
send_segments_respect_mss_and_cwnd(void **state)
{
	struct fx *f = *state;
	int i;

	establish(f, ISS, IRS, 1);
	assert_int_equal(tcp_send(&f->c, payload, 60000, f->now), 60000);
	/* Initial window: 10 segments of 1460 - 12 (timestamps). */
	assert_int_equal(f->nout, 10);
	for (i = 0; i < 10; i++) {
		assert_int_equal(f->out[i].seg.len, 1448);
		assert_int_equal(f->out[i].seg.seq, ISS + 1 + 1448 * (uint32_t)i);
	}
	/* Slow start: each ACK opens the window by one segment more. */
	f->nout = 0;
	input(f, ack_seg(f, ISS + 1 + 1448));
	assert_int_equal(f->nout, 2);
}

static void
nagle_holds_small_segment(void **state)
{
	struct fx *f = *state;

	establish(f, ISS, IRS, 0);
	tcp_send(&f->c, "a", 1, f->now);
	tcp_send(&f->c, "b", 1, f->now);
	tcp_send(&f->c, "c", 1, f->now);
	assert_int_equal(f->nout, 1);	/* "a" in flight, "bc" held */
	input(f, ack_seg(f, ISS + 2));
	assert_int_equal(f->nout, 2);
	assert_int_equal(last(f)->len, 2);
	assert_memory_equal(last(f)->data, "bc", 2);
}

static void
nagle_off_sends_each_write(void **state)
{
	struct fx *f = *state;

	f->cfg.nagle = false;
	establish(f, ISS, IRS, 0);
	tcp_send(&f->c, "a", 1, f->now);
	tcp_send(&f->c, "b", 1, f->now);
	assert_int_equal(f->nout, 2);
}

static void
send_ring_full_returns_zero(void **state)
{
	struct fx *f = *state;

	establish(f, ISS, IRS, 1);
	assert_int_equal(tcp_send(&f->c, payload, 100000, f->now), 65536);
	assert_int_equal(tcp_send(&f->c, payload, 10, f->now), 0);
	assert_int_equal(tcp_send_space(&f->c), 0);
}

/*
 * Ack what was sent until `total` bytes from the start of the stream are
 * acknowledged, checking every segment's bytes against payload.
 */
static void
ack_all_checking(struct fx *f, uint32_t total)
{
	for (int rounds = 0; f->c.snd_una != ISS + 1 + total; rounds++) {
		uint32_t hi = f->c.snd_una;

		assert_true(rounds < 1000);
		for (int i = 0; i < f->nout; i++) {
			const struct tcp_seg *sg = &f->out[i].seg;
			uint32_t off = sg->seq - (ISS + 1);

			assert_true(off + sg->len <= total);
			assert_memory_equal(sg->data, payload + off, sg->len);
			if (SEQ_GT(sg->seq + sg->len, hi))
				hi = sg->seq + sg->len;
		}
		f->nout = 0;
		f->now += 1;
		input(f, ack_seg(f, hi));
	}
}

/* Reading straight into the send ring (tcp_send_room): the free room
 * wraps around the ring's end as two iovecs, and what is committed goes
 * out byte for byte as if tcp_send had copied it. */
static void
send_room_wraps_and_commits(void **state)
{
	struct fx *f = *state;
	struct iovec iov[2];
	uint32_t first, second;

	establish(f, ISS, IRS, 1);
	assert_int_equal(tcp_send(&f->c, payload, 60000, f->now), 60000);
	/* Ack the initial window: the ring's head moves to 14480. */
	f->nout = 0;
	input(f, ack_seg(f, ISS + 1 + 14480));
	assert_int_equal(tcp_send_room(&f->c, iov), 2);
	first = (uint32_t)iov[0].iov_len;
	second = (uint32_t)iov[1].iov_len;
	assert_int_equal(first, 65536 - 60000);
	assert_int_equal(second, 14480);
	assert_int_equal(first + second, tcp_send_space(&f->c));
	memcpy(iov[0].iov_base, payload + 60000, first);
	/* Commit in two steps, the second after a partial read. */
	tcp_send_commit(&f->c, first, f->now);
	assert_int_equal(tcp_send_room(&f->c, iov), 1);
	assert_int_equal(iov[0].iov_len, second);
	memcpy(iov[0].iov_base, payload + 60000 + first, 1000);
	tcp_send_commit(&f->c, 1000, f->now);
	assert_int_equal(tcp_send_space(&f->c), second - 1000);
	ack_all_checking(f, 60000 + first + 1000);
	/* All acked: the ring went back. */
	assert_int_equal(f->mem.used, 0);
}

/* Nothing read after all (EAGAIN, EOF): commit 0 gives the ring back. */
static void
send_room_commit_nothing_releases_ring(void **state)
{
	struct fx *f = *state;
	struct iovec iov[2];

	establish(f, ISS, IRS, 1);
	assert_int_equal(tcp_send_room(&f->c, iov), 1);
	assert_int_equal(iov[0].iov_len, 65536);
	assert_int_equal(f->mem.used, 65536);
	tcp_send_commit(&f->c, 0, f->now);
	assert_int_equal(f->mem.used, 0);
	assert_int_equal(f->nout, 0);
	/* A commit larger than the room is clipped, never an overrun. */
	assert_int_equal(tcp_send_room(&f->c, iov), 1);
	memcpy(iov[0].iov_base, payload, 65536);
	tcp_send_commit(&f->c, 70000, f->now);
	assert_int_equal(tcp_send_space(&f->c), 0);
	assert_int_equal(tcp_send_room(&f->c, iov), 0);	/* full */
}

/* No room when the memory budget is spent (the caller falls back to
 * tcp_send and its own buffer), none once writing is over. */
static void
send_room_without_memory_or_after_fin(void **state)
{
	struct fx *f = *state;
	struct iovec iov[2];

	establish(f, ISS, IRS, 1);
	f->mem.limit = 1000;
	assert_int_equal(tcp_send_room(&f->c, iov), 0);
	assert_true(f->mem.alloc_failures > 0);
	f->mem.limit = 64 * 1024 * 1024;
	tcp_shutdown(&f->c, f->now);
	assert_int_equal(tcp_send_room(&f->c, iov), -1);
	assert_int_equal(f->mem.used, 0);
}

/* emitv (netstackd's writev to the TUN): headers and ring slices, each
 * segment flattened here and checked like any other (capture). */
static int g_v_two_slices, g_v_odd_first;

static void
capture_v(void *ctx, const uint8_t *hdr, size_t hdrlen,
    const struct iovec *slices, int npayload)
{
	uint8_t whole[70000];
	size_t len = hdrlen;

	assert_true(npayload == 1 || npayload == 2);
	memcpy(whole, hdr, hdrlen);
	for (int i = 0; i < npayload; i++) {
		assert_true(len + slices[i].iov_len <= sizeof(whole));
		memcpy(whole + len, slices[i].iov_base, slices[i].iov_len);
		len += slices[i].iov_len;
	}
	if (npayload == 2) {
		g_v_two_slices++;
		if (slices[0].iov_len & 1)
			g_v_odd_first++;
	}
	capture(ctx, whole, len);	/* parses it, checks the checksum */
}

/*
 * 200,000 bytes through a 16 KiB ring with an MSS that makes every
 * segment odd-sized (989 bytes of payload): segments cross the ring's end
 * as two slices, some of them with an odd first slice, whose checksum
 * must still come out right (capture checks it) and whose bytes must be
 * the stream's.  Acks are partial, so the ring never empties (and never
 * starts again at offset 0).
 */
static void
emitv_sends_ring_slices_with_right_checksums(void **state)
{
	struct fx *f = *state;
	const uint32_t total = 200000;
	struct tcp_seg s;
	uint32_t sent = 0;

	f->cfg.emitv = capture_v;
	f->cfg.sndbuf = 16 * 1024;	/* a dozen trips round the ring */
	g_v_two_slices = g_v_odd_first = 0;
	init_conn(f, ISS);
	s = syn_full(IRS);
	s.mss = 1001;
	input(f, s);
	s = seg_tmpl(TH_ACK, IRS + 1, ISS + 1);
	s.has_ts = true;
	s.tsval = 101;
	s.tsecr = last(f)->tsval;
	s.wnd = 1024;
	f->now += 1;
	input(f, s);
	assert_int_equal(f->c.state, TCP_ESTABLISHED);
	(void)tcp_take_events(&f->c);
	f->nout = 0;
	for (int rounds = 0; f->c.snd_una != ISS + 1 + total; rounds++) {
		uint32_t acked = f->c.snd_una - (ISS + 1), hi = f->c.snd_una;
		uint32_t room = 12000 - (sent - acked);
		ssize_t n;

		assert_true(rounds < 5000);
		if (sent < total && room > 0) {
			n = tcp_send(&f->c, payload + sent,
			    room < total - sent ? room : total - sent, f->now);
			assert_true(n >= 0);
			sent += (uint32_t)n;
		}
		for (int i = 0; i < f->nout; i++) {
			const struct tcp_seg *sg = &f->out[i].seg;
			uint32_t off = sg->seq - (ISS + 1);

			assert_true(off + sg->len <= total);
			assert_memory_equal(sg->data, payload + off, sg->len);
			if (SEQ_GT(sg->seq + sg->len, hi))
				hi = sg->seq + sg->len;
		}
		f->nout = 0;
		f->now += 1;
		/* Half of what is out, all of it once everything is sent. */
		if (sent < total && hi - f->c.snd_una > 1)
			hi = f->c.snd_una + (hi - f->c.snd_una) / 2;
		input(f, ack_seg(f, hi));
	}
	assert_true(g_v_two_slices > 0);
	assert_true(g_v_odd_first > 0);
}

static void
rtt_sample_sets_rto(void **state)
{
	struct fx *f = *state;
	struct tcp_seg s;

	establish(f, ISS, IRS, 1);
	tcp_send(&f->c, "x", 1, f->now);
	s = ack_seg(f, ISS + 2);
	s.tsecr = last(f)->tsval;
	f->now += 300;
	input(f, s);
	/* Handshake sample: R=1 -> srtt=1, rttvar=0.5.  Then R=300:
	 * rttvar = 3/4*0.5 + 299/4, srtt = 7/8*1 + 300/8 (RFC 6298 2.3). */
	assert_int_equal(f->c.srtt_x8, 8 - 1 + 300);
	assert_int_equal(f->c.rttvar_x4, 2 - 0 + 299);
	assert_int_equal(f->c.rto, 307 / 8 + 301);
	/* A tiny RTT is clamped to rto_min. */
	tcp_send(&f->c, "y", 1, f->now);
	for (int i = 0; i < 30; i++) {
		s = ack_seg(f, f->c.snd_una);
		s.tsecr = last(f)->tsval;
		input(f, s);
	}
	tcp_send(&f->c, "z", 1, f->now);
	s = ack_seg(f, f->c.snd_max);
	s.tsecr = last(f)->tsval;
	input(f, s);
	assert_true(f->c.rto >= f->cfg.rto_min_ms);
}

static void
retransmit_backoff_doubles(void **state)
{
	struct fx *f = *state;
	uint64_t deadline, prev_gap = 0, gap;
	uint32_t i;

	f->cfg.max_retries = 5;
	establish(f, ISS, IRS, 0);
	tcp_send(&f->c, "data", 4, f->now);
	for (i = 0; i < 5; i++) {
		deadline = tcp_poll_at(&f->c);
		gap = deadline - f->now;
		if (prev_gap)
			assert_int_equal(gap, prev_gap * 2);
		prev_gap = gap;
		f->nout = 0;
		f->now = deadline;
		tcp_on_timer(&f->c, f->now);
		assert_int_equal(f->nout, 1);
		assert_int_equal(last(f)->seq, ISS + 1);
		assert_int_equal(last(f)->len, 4);
		assert_int_equal(f->c.cwnd, f->c.smss);
	}
	f->now = tcp_poll_at(&f->c);
	tcp_on_timer(&f->c, f->now);
	assert_int_equal(f->c.state, TCP_CLOSED);
	assert_int_equal(f->c.error, ETIMEDOUT);
	assert_true(last(f)->flags & TH_RST);
	assert_int_equal(f->c.stats.retransmits, 5);
}

static void
retransmit_rto_capped_at_max(void **state)
{
	struct fx *f = *state;
	int i;

	f->cfg.rto_max_ms = 5000;
	establish(f, ISS, IRS, 0);
	tcp_send(&f->c, "data", 4, f->now);
	for (i = 0; i < 6; i++) {
		f->now = tcp_poll_at(&f->c);
		tcp_on_timer(&f->c, f->now);
	}
	assert_int_equal(tcp_poll_at(&f->c) - f->now, 5000);
}

/* Send n full segments; returns the segment size. */
static uint32_t
send_n_segments(struct fx *f, int n)
{
	uint32_t sz;

	establish(f, ISS, IRS, 1);
	sz = f->c.smss;
	tcp_send(&f->c, payload, (size_t)sz * (size_t)n, f->now);
	assert_int_equal(f->nout, n);
	f->nout = 0;
	return sz;
}

static void
fast_retransmit_three_dupacks(void **state)
{
	struct fx *f = *state;
	uint32_t sz = send_n_segments(f, 10);

	input(f, ack_seg(f, ISS + 1 + sz));	/* seg 1 acked, seg 2 lost */
	f->nout = 0;
	input(f, ack_seg(f, ISS + 1 + sz));
	input(f, ack_seg(f, ISS + 1 + sz));
	assert_int_equal(f->nout, 0);
	input(f, ack_seg(f, ISS + 1 + sz));
	assert_int_equal(f->nout, 1);
	assert_int_equal(last(f)->seq, ISS + 1 + sz);
	assert_int_equal(last(f)->len, sz);
	assert_true(f->c.in_recovery);
	assert_int_equal(f->c.stats.retransmits, 1);
	/* Full ACK ends recovery with cwnd = ssthresh (deflated). */
	input(f, ack_seg(f, f->c.snd_max));
	assert_false(f->c.in_recovery);
	assert_true(f->c.cwnd <= f->c.ssthresh);
}

static void
newreno_partial_ack_retransmits_next(void **state)
{
	struct fx *f = *state;
	uint32_t sz = send_n_segments(f, 10);
	int i;

	for (i = 0; i < 4; i++)
		input(f, ack_seg(f, ISS + 1));	/* segs 1 and 3 lost */
	assert_int_equal(last(f)->seq, ISS + 1);
	f->nout = 0;
	input(f, ack_seg(f, ISS + 1 + 2 * sz));	/* partial: seg 3 missing */
	assert_true(f->c.in_recovery);
	assert_int_equal(f->out[0].seg.seq, ISS + 1 + 2 * sz);
	assert_int_equal(f->c.stats.retransmits, 2);
}

static void
sack_retransmits_each_hole(void **state)
{
	struct fx *f = *state;
	uint32_t sz = send_n_segments(f, 10), base = ISS + 1;

	/* Segment 9 is still in flight (not SACKed): three duplicate ACKs
	 * are needed before the holes count as lost. */
	struct tcp_seg s;
	int i;

	/* Segments 0 and 3 lost: peer SACKs 1-2 and 4-9. */
	for (i = 0; i < 3; i++) {
		s = ack_seg(f, base);
		s.nsack = 2;
		s.sack[0] = (struct tcp_sack_block){ base + 4 * sz, base + 9 * sz };
		s.sack[1] = (struct tcp_sack_block){ base + sz, base + 3 * sz };
		input(f, s);
		assert_int_equal(f->nout, i == 2 ? 1 : 0);
	}
	assert_int_equal(f->nout, 1);
	assert_int_equal(last(f)->seq, base);
	/* The next duplicate ACK fills the second hole at once. */
	input(f, s);
	assert_int_equal(f->out[1].seg.seq, base + 3 * sz);
	assert_int_equal(f->out[1].seg.len, sz);
	assert_int_equal(f->c.nsacked, 2);
	assert_int_equal(f->c.stats.retransmits, 2);
}

static void
sack_to_end_of_data_retransmits_at_once(void **state)
{
	struct fx *f = *state;
	uint32_t sz = send_n_segments(f, 4), base = ISS + 1;
	struct tcp_seg s = ack_seg(f, base);

	/* Only segment 0 lost: the other three are SACKed, and no more
	 * duplicate ACKs can come.  Waiting for three would mean an RTO. */
	s.nsack = 1;
	s.sack[0] = (struct tcp_sack_block){ base + sz, base + 4 * sz };
	input(f, s);
	assert_int_equal(f->nout, 1);
	assert_int_equal(last(f)->seq, base);
	assert_true(f->c.in_recovery);
}

static void
lost_retransmission_resent_after_a_round_trip(void **state)
{
	struct fx *f = *state;
	uint32_t sz = send_n_segments(f, 10), base = ISS + 1;
	struct tcp_seg s;
	int i;

	/* Segment 0 lost; segments 1..8 SACKed one by one (9 in flight). */
	for (i = 1; i <= 3; i++) {
		s = ack_seg(f, base);
		s.nsack = 1;
		s.sack[0] = (struct tcp_sack_block){ base + sz, base + (uint32_t)(i + 1) * sz };
		input(f, s);
	}
	assert_true(f->c.in_recovery);
	assert_int_equal(f->nout, 1);
	assert_int_equal(last(f)->seq, base);
	/* Within a round trip (srtt 1 ms here), more duplicates are the
	 * ones already on their way: no second copy. */
	s.sack[0].end = base + 5 * sz;
	input(f, s);
	assert_int_equal(f->c.stats.retransmits, 1);
	/* Well after a round trip the hole is still there: the
	 * retransmission was lost, send it again before the RTO. */
	f->now += 10;
	s.sack[0].end = base + 6 * sz;
	input(f, s);
	assert_int_equal(f->c.stats.retransmits, 2);
	assert_int_equal(last(f)->seq, base);
	assert_int_equal(f->c.stats.timeouts, 0);
}

static void
rto_go_back_skips_sacked_data(void **state)
{
	struct fx *f = *state;
	uint32_t sz = send_n_segments(f, 6), base = ISS + 1;
	struct tcp_seg s = ack_seg(f, base);

	/* Segments 2-3 SACKed, 0-1 and 4-5 missing: one duplicate ACK,
	 * not enough for recovery; the RTO fires. */
	s.nsack = 1;
	s.sack[0] = (struct tcp_sack_block){ base + 2 * sz, base + 4 * sz };
	input(f, s);
	assert_false(f->c.in_recovery);
	f->nout = 0;
	f->now = f->c.t_rtx;
	tcp_on_timer(&f->c, f->now);
	assert_int_equal(f->c.stats.timeouts, 1);
	assert_int_equal(f->nout, 1);
	assert_int_equal(last(f)->seq, base);
	/* Slow start resends the hole, then jumps over the SACKed block. */
	f->nout = 0;
	s = ack_seg(f, base + sz);
	s.nsack = 1;
	s.sack[0] = (struct tcp_sack_block){ base + 2 * sz, base + 4 * sz };
	input(f, s);
	assert_int_equal(f->nout, 2);
	assert_int_equal(f->out[0].seg.seq, base + sz);
	assert_int_equal(f->out[0].seg.len, sz);
	assert_int_equal(f->out[1].seg.seq, base + 4 * sz);
	/* A cumulative ACK over the block (no SACK option) prunes it and
	 * nothing stalls: the last segment goes out. */
	f->nout = 0;
	input(f, ack_seg(f, base + 5 * sz));
	assert_int_equal(f->c.nsacked, 0);
	assert_int_equal(last(f)->seq, base + 5 * sz);
	input(f, ack_seg(f, base + 6 * sz));
	assert_int_equal(f->c.snd_una, f->c.snd_max);
}

static void
tail_loss_probe_resends_last_segment(void **state)
{
	struct fx *f = *state;
	uint32_t sz = send_n_segments(f, 4), base = ISS + 1;
	struct tcp_seg s;

	/* RTT sample of 1 ms from the handshake: PTO = max(2 srtt, 10). */
	assert_int_equal(tcp_poll_at(&f->c), f->now + 10);
	f->now += 10;
	tcp_on_timer(&f->c, f->now);
	assert_int_equal(f->nout, 1);
	assert_int_equal(last(f)->seq, base + 3 * sz);
	assert_int_equal(last(f)->len, sz);
	assert_int_equal(f->c.stats.tail_probes, 1);
	/* The RTO is still armed; the probe is not repeated. */
	assert_int_equal(tcp_poll_at(&f->c), f->c.t_rtx);
	/* The probe's SACK shows the first three lost: recovery at once. */
	s = ack_seg(f, base);
	s.nsack = 1;
	s.sack[0] = (struct tcp_sack_block){ base + 3 * sz, base + 4 * sz };
	input(f, s);
	assert_true(f->c.in_recovery);
	assert_int_equal(f->out[1].seg.seq, base);
}

static void
sack_blocks_outside_window_ignored(void **state)
{
	struct fx *f = *state;
	uint32_t sz = send_n_segments(f, 4), base = ISS + 1;
	struct tcp_seg s = ack_seg(f, base);

	s.nsack = 3;
	s.sack[0] = (struct tcp_sack_block){ base + 100 * sz, base + 101 * sz };
	s.sack[1] = (struct tcp_sack_block){ base - 5000, base };
	s.sack[2] = (struct tcp_sack_block){ base + 3 * sz, base + sz };
	input(f, s);
	assert_int_equal(f->c.nsacked, 0);
}

static void
zero_window_probe(void **state)
{
	struct fx *f = *state;
	struct tcp_seg s;
	uint64_t t1, t2;

	establish(f, ISS, IRS, 0);
	s = ack_seg(f, ISS + 1);
	s.wnd = 0;
	s.seq = IRS + 1;
	input(f, s);
	assert_int_equal(f->c.snd_wnd, 0);
	assert_int_equal(tcp_send(&f->c, "waiting", 7, f->now), 7);
	assert_int_equal(f->nout, 0);
	t1 = tcp_poll_at(&f->c);
	assert_int_not_equal(t1, TCP_NEVER);
	f->now = t1;
	tcp_on_timer(&f->c, f->now);
	assert_int_equal(f->nout, 1);
	assert_int_equal(last(f)->seq, ISS);	/* snd_una - 1: elicits an ACK */
	assert_int_equal(last(f)->len, 0);
	t2 = tcp_poll_at(&f->c);
	assert_int_equal(t2 - t1, 2 * 1000);	/* backed off */
	/* The window opens: data flows and the persist timer stops. */
	s.wnd = 1000;
	input(f, s);
	assert_int_equal(last(f)->len, 7);
	assert_int_equal(f->c.t_persist, TCP_NEVER);
}

static void
small_peer_window_runt_sent_by_persist(void **state)
{
	struct fx *f = *state;
	struct tcp_seg s;

	establish(f, ISS, IRS, 0);
	s = ack_seg(f, ISS + 1);
	s.wnd = 100;	/* far below half the largest window seen */
	input(f, s);
	tcp_send(&f->c, payload, 1000, f->now);
	assert_int_equal(f->nout, 0);	/* sender SWS avoidance */
	f->now = tcp_poll_at(&f->c);
	tcp_on_timer(&f->c, f->now);
	assert_int_equal(f->nout, 1);
	assert_int_equal(last(f)->len, 100);
	assert_int_equal(last(f)->seq, ISS + 1);
	assert_int_equal(f->c.t_persist, TCP_NEVER);
	assert_int_not_equal(f->c.t_rtx, TCP_NEVER);
}

static void
zero_window_receiver_probe_acked(void **state)
{
	struct fx *f = *state;

	f->cfg.rcvbuf = 2048;
	establish(f, ISS, IRS, 0);
	input(f, data_seg(f, IRS + 1, payload, 1024));
	input(f, data_seg(f, IRS + 1025, payload, 1024));
	f->nout = 0;
	/* Peer's 1-byte probe into our zero window. */
	input(f, data_seg(f, IRS + 2049, "p", 1));
	assert_int_equal(f->nout, 1);
	assert_int_equal(last(f)->ack, IRS + 2049);
	assert_int_equal(last(f)->wnd, 0);
	assert_int_equal(tcp_recv_avail(&f->c), 2048);
}

/* ------------------------------------------------------------ closing */

static void
close_wait_on_peer_fin_then_last_ack(void **state)
{
	struct fx *f = *state;
	struct tcp_seg s;

	establish(f, ISS, IRS, 1);
	s = data_seg(f, IRS + 1, "bye", 3);
	s.flags |= TH_FIN;
	input(f, s);
	assert_int_equal(f->c.state, TCP_CLOSE_WAIT);
	assert_int_equal(tcp_take_events(&f->c), TCP_EV_READABLE | TCP_EV_PEER_FIN);
	assert_int_equal(last(f)->ack, IRS + 5);
	/* Half-close: we can still send. */
	assert_int_equal(tcp_send(&f->c, "reply", 5, f->now), 5);
	tcp_shutdown(&f->c, f->now);
	assert_int_equal(f->c.state, TCP_LAST_ACK);
	assert_true(last(f)->flags & TH_FIN);
	assert_int_equal(last(f)->seq + last(f)->len, ISS + 6);
	input(f, ack_seg(f, ISS + 7));
	assert_int_equal(f->c.state, TCP_CLOSED);
	assert_int_equal(f->c.error, 0);
	assert_true(tcp_take_events(&f->c) & TCP_EV_CLOSED);
}

static void
active_close_fin_wait_to_time_wait(void **state)
{
	struct fx *f = *state;
	struct tcp_seg s;

	establish(f, ISS, IRS, 1);
	tcp_send(&f->c, "req", 3, f->now);
	tcp_shutdown(&f->c, f->now);
	assert_int_equal(f->c.state, TCP_FIN_WAIT_1);
	assert_int_equal(tcp_send(&f->c, "more", 4, f->now), -1);
	/* Nagle lets the FIN ride with... a second segment after "req". */
	assert_true(last(f)->flags & TH_FIN);
	input(f, ack_seg(f, ISS + 5));
	assert_int_equal(f->c.state, TCP_FIN_WAIT_2);
	/* Peer keeps sending (half-close), then FINs. */
	input(f, data_seg(f, IRS + 1, "resp", 4));
	s = data_seg(f, IRS + 5, NULL, 0);
	s.flags |= TH_FIN;
	input(f, s);
	assert_int_equal(f->c.state, TCP_TIME_WAIT);
	assert_int_equal(last(f)->ack, IRS + 6);
	assert_true(tcp_take_events(&f->c) & TCP_EV_CLOSED);
	assert_int_equal(tcp_poll_at(&f->c), f->now + f->cfg.time_wait_ms);
	f->now += f->cfg.time_wait_ms;
	tcp_on_timer(&f->c, f->now);
	assert_int_equal(f->c.state, TCP_CLOSED);
	assert_int_equal(tcp_poll_at(&f->c), TCP_NEVER);
}

static void
simultaneous_close(void **state)
{
	struct fx *f = *state;
	struct tcp_seg s;

	establish(f, ISS, IRS, 0);
	tcp_shutdown(&f->c, f->now);
	assert_int_equal(last(f)->flags, TH_ACK | TH_FIN);
	/* Peer's FIN crosses ours: it does not ack our FIN. */
	s = data_seg(f, IRS + 1, NULL, 0);
	s.ack = ISS + 1;
	s.flags |= TH_FIN;
	input(f, s);
	assert_int_equal(f->c.state, TCP_CLOSING);
	assert_int_equal(last(f)->ack, IRS + 2);
	input(f, ack_seg(f, ISS + 2));
	assert_int_equal(f->c.state, TCP_TIME_WAIT);
}

static void
fin_retransmitted_on_rto(void **state)
{
	struct fx *f = *state;

	establish(f, ISS, IRS, 0);
	tcp_shutdown(&f->c, f->now);
	f->nout = 0;
	f->now = tcp_poll_at(&f->c);
	tcp_on_timer(&f->c, f->now);
	assert_int_equal(f->nout, 1);
	assert_int_equal(last(f)->flags, TH_ACK | TH_FIN);
	assert_int_equal(last(f)->seq, ISS + 1);
}

static void
time_wait_fin_retransmission_reacked(void **state)
{
	struct fx *f = *state;
	struct tcp_seg s;

	establish(f, ISS, IRS, 0);
	tcp_shutdown(&f->c, f->now);
	s = data_seg(f, IRS + 1, NULL, 0);
	s.ack = ISS + 2;
	s.flags |= TH_FIN;
	input(f, s);
	assert_int_equal(f->c.state, TCP_TIME_WAIT);
	f->nout = 0;
	input(f, s);	/* our ACK was lost */
	assert_int_equal(f->nout, 1);
	assert_int_equal(last(f)->ack, IRS + 2);
	assert_int_equal(f->c.state, TCP_TIME_WAIT);
}

static void
fin_wait_2_timeout_aborts(void **state)
{
	struct fx *f = *state;

	f->cfg.fin_wait_2_ms = 30000;
	establish(f, ISS, IRS, 0);
	tcp_shutdown(&f->c, f->now);
	input(f, ack_seg(f, ISS + 2));
	assert_int_equal(f->c.state, TCP_FIN_WAIT_2);
	f->now = tcp_poll_at(&f->c);
	tcp_on_timer(&f->c, f->now);
	assert_int_equal(f->c.state, TCP_CLOSED);
	assert_int_equal(f->c.error, ETIMEDOUT);
}

static void
shutdown_in_syn_rcvd_fins_after_handshake(void **state)
{
	struct fx *f = *state;

	init_conn(f, ISS);
	input(f, seg_tmpl(TH_SYN, IRS, 0));
	assert_int_equal(tcp_send(&f->c, "banner", 6, f->now), 6);
	tcp_shutdown(&f->c, f->now);
	assert_int_equal(f->nout, 1);	/* only the SYN-ACK so far */
	input(f, seg_tmpl(TH_ACK, IRS + 1, ISS + 1));
	assert_int_equal(f->c.state, TCP_FIN_WAIT_1);
	assert_int_equal(last(f)->flags, TH_ACK | TH_PSH | TH_FIN);
	assert_int_equal(last(f)->len, 6);
}

static void
fin_wait_1_peer_data_still_received(void **state)
{
	struct fx *f = *state;
	uint8_t buf[8];

	establish(f, ISS, IRS, 1);
	tcp_shutdown(&f->c, f->now);
	assert_int_equal(f->c.state, TCP_FIN_WAIT_1);
	/* Half-close: the peer keeps sending and we keep taking it. */
	struct tcp_seg s = data_seg(f, IRS + 1, "late", 4);
	s.ack = ISS + 1;	/* our FIN not acked yet */
	input(f, s);
	assert_int_equal(tcp_recv(&f->c, buf, sizeof(buf), f->now), 4);
	assert_memory_equal(buf, "late", 4);
	assert_int_equal(f->c.state, TCP_FIN_WAIT_1);
}

static void
close_wait_more_data_only_reacked(void **state)
{
	struct fx *f = *state;
	struct tcp_seg s;

	establish(f, ISS, IRS, 0);
	s = data_seg(f, IRS + 1, NULL, 0);
	s.flags |= TH_FIN;
	input(f, s);
	assert_int_equal(f->c.state, TCP_CLOSE_WAIT);
	f->nout = 0;
	/* Data "after" the FIN is a lie or a retransmission: not taken. */
	input(f, data_seg(f, IRS + 2, "zz", 2));
	assert_int_equal(tcp_recv_avail(&f->c), 0);
	assert_int_equal(f->nout, 1);
	assert_int_equal(last(f)->ack, IRS + 2);
}

static void
last_ack_fin_retransmitted_then_closed(void **state)
{
	struct fx *f = *state;
	struct tcp_seg s;

	establish(f, ISS, IRS, 0);
	s = data_seg(f, IRS + 1, NULL, 0);
	s.flags |= TH_FIN;
	input(f, s);
	tcp_shutdown(&f->c, f->now);
	assert_int_equal(f->c.state, TCP_LAST_ACK);
	f->nout = 0;
	f->now = tcp_poll_at(&f->c);
	tcp_on_timer(&f->c, f->now);
	assert_int_equal(f->nout, 1);
	assert_int_equal(last(f)->flags, TH_ACK | TH_FIN);
	input(f, ack_seg(f, ISS + 2));
	assert_int_equal(f->c.state, TCP_CLOSED);
	assert_int_equal(f->c.error, 0);
}

static void
closing_rst_closes(void **state)
{
	struct fx *f = *state;
	struct tcp_seg s;

	establish(f, ISS, IRS, 0);
	tcp_shutdown(&f->c, f->now);
	s = data_seg(f, IRS + 1, NULL, 0);
	s.ack = ISS + 1;
	s.flags |= TH_FIN;
	input(f, s);
	assert_int_equal(f->c.state, TCP_CLOSING);
	input(f, seg_tmpl(TH_RST, IRS + 2, 0));
	assert_int_equal(f->c.state, TCP_CLOSED);
	assert_int_equal(f->c.error, ECONNRESET);
}

static void
syn_rcvd_ack_with_data_delivered(void **state)
{
	struct fx *f = *state;
	struct tcp_seg s;

	init_conn(f, ISS);
	input(f, seg_tmpl(TH_SYN, IRS, 0));
	s = seg_tmpl(TH_ACK | TH_PSH, IRS + 1, ISS + 1);
	s.data = (const uint8_t *)"GET /";
	s.len = 5;
	input(f, s);
	assert_int_equal(f->c.state, TCP_ESTABLISHED);
	assert_int_equal(tcp_take_events(&f->c),
	    TCP_EV_ESTABLISHED | TCP_EV_READABLE);
	assert_int_equal(tcp_recv_avail(&f->c), 5);
}

static void
established_ooo_fin_ignored_until_in_order(void **state)
{
	struct fx *f = *state;
	struct tcp_seg s;

	establish(f, ISS, IRS, 1);
	s = data_seg(f, IRS + 101, payload + 100, 100);
	s.flags |= TH_FIN;
	input(f, s);
	assert_int_equal(f->c.state, TCP_ESTABLISHED);
	/* The hole is filled, the FIN was dropped: the peer resends it. */
	input(f, data_seg(f, IRS + 1, payload, 100));
	assert_int_equal(f->c.state, TCP_ESTABLISHED);
	assert_int_equal(f->c.rcv_nxt, IRS + 201);
	s = data_seg(f, IRS + 201, NULL, 0);
	s.flags |= TH_FIN;
	input(f, s);
	assert_int_equal(f->c.state, TCP_CLOSE_WAIT);
}

static void
window_update_is_not_a_dupack(void **state)
{
	struct fx *f = *state;
	uint32_t sz = f->c.smss;
	struct tcp_seg s;
	int i;

	establish(f, ISS, IRS, 1);
	sz = f->c.smss;
	tcp_send(&f->c, payload, 4 * (size_t)sz, f->now);
	for (i = 0; i < 5; i++) {
		s = ack_seg(f, ISS + 1);
		s.wnd = (uint16_t)(1024 + i + 1);	/* growing window each time */
		input(f, s);
	}
	assert_int_equal(f->c.dupacks, 0);
	assert_false(f->c.in_recovery);
}

static void
sack_blocks_reported_latest_first(void **state)
{
	struct fx *f = *state;

	establish(f, ISS, IRS, 1);
	input(f, data_seg(f, IRS + 1001, payload, 100));
	input(f, data_seg(f, IRS + 2001, payload, 100));
	input(f, data_seg(f, IRS + 3001, payload, 100));
	input(f, data_seg(f, IRS + 4001, payload, 100));
	/* With timestamps, three blocks fit; the newest range comes first. */
	assert_int_equal(last(f)->nsack, 3);
	assert_int_equal(last(f)->sack[0].start, IRS + 4001);
	assert_int_equal(last(f)->sack[0].end, IRS + 4101);
	/* Data segments carrying SACK blocks shrink to keep within the MSS. */
	tcp_send(&f->c, payload, 3000, f->now);
	assert_int_equal(f->out[f->nout - 2].seg.len, 1460 - 12 - 28);
}

static void
seq_wraparound_ooo_reassembly(void **state)
{
	struct fx *f = *state;
	uint32_t irs = 0xffffff00u;
	uint8_t buf[1024];

	establish(f, ISS, irs, 1);
	/* Second half (past the wrap) first, then the first half. */
	input(f, data_seg(f, irs + 1 + 400, payload + 400, 400));
	assert_int_equal(f->c.nooo, 1);
	input(f, data_seg(f, irs + 1, payload, 400));
	assert_int_equal(f->c.nooo, 0);
	assert_int_equal(f->c.rcv_nxt, irs + 801);
	assert_int_equal(tcp_recv(&f->c, buf, sizeof(buf), f->now), 800);
	assert_memory_equal(buf, payload, 800);
}

static void
recv_peek_consume_zero_copy(void **state)
{
	struct fx *f = *state;
	const uint8_t *p;
	size_t n;

	f->cfg.rcvbuf = 4096;
	establish(f, ISS, IRS, 0);
	input(f, data_seg(f, IRS + 1, payload, 3000));
	tcp_recv_consume(&f->c, 2500, f->now);
	/* Wraps in the ring: the peek returns the contiguous part. */
	input(f, data_seg(f, IRS + 3001, payload + 3000, 2000));
	n = tcp_recv_peek(&f->c, &p);
	assert_int_equal(n, 4096 - 2500);
	assert_memory_equal(p, payload + 2500, n);
	tcp_recv_consume(&f->c, n, f->now);
	n = tcp_recv_peek(&f->c, &p);
	assert_int_equal(n, 500 + 2000 - (4096 - 2500));
	assert_memory_equal(p, payload + 4096, n);
}

static void
delayed_ack_piggybacks_on_data(void **state)
{
	struct fx *f = *state;

	establish(f, ISS, IRS, 0);
	input(f, data_seg(f, IRS + 1, "q", 1));
	assert_int_equal(f->nout, 0);
	tcp_send(&f->c, "answer", 6, f->now);
	assert_int_equal(f->nout, 1);
	assert_int_equal(last(f)->ack, IRS + 2);
	assert_int_equal(last(f)->len, 6);
	assert_int_equal(f->c.t_delack, TCP_NEVER);
}

static void
persist_backoff_capped_and_never_aborts(void **state)
{
	struct fx *f = *state;
	struct tcp_seg s;
	int i;

	f->cfg.rto_max_ms = 8000;
	f->cfg.max_retries = 3;
	establish(f, ISS, IRS, 0);
	s = ack_seg(f, ISS + 1);
	s.wnd = 0;
	input(f, s);
	tcp_send(&f->c, "x", 1, f->now);
	for (i = 0; i < 20; i++) {
		f->now = tcp_poll_at(&f->c);
		tcp_on_timer(&f->c, f->now);
		input(f, s);	/* the peer answers: still zero */
	}
	assert_int_equal(f->c.state, TCP_ESTABLISHED);
	assert_int_equal(tcp_poll_at(&f->c) - f->now, 8000);
}

static void
rto_into_zero_window_switches_to_persist(void **state)
{
	struct fx *f = *state;
	struct tcp_seg s;
	int i;

	f->cfg.max_retries = 2;
	establish(f, ISS, IRS, 0);
	tcp_send(&f->c, payload, 1000, f->now);
	/* The peer takes nothing and closes its window. */
	s = ack_seg(f, ISS + 1);
	s.wnd = 0;
	input(f, s);
	for (i = 0; i < 10; i++) {
		f->now = tcp_poll_at(&f->c);
		tcp_on_timer(&f->c, f->now);
		input(f, s);
	}
	assert_int_equal(f->c.state, TCP_ESTABLISHED);
	/* Window opens: the data goes again. */
	s.wnd = 5000;
	f->nout = 0;
	input(f, s);
	assert_int_equal(last(f)->seq, ISS + 1);
	assert_int_equal(last(f)->len, 536);
}

/* ------------------------------------------------------------ RST, RFC 5961 */

static void
established_rst_exact_resets(void **state)
{
	struct fx *f = *state;

	establish(f, ISS, IRS, 1);
	input(f, seg_tmpl(TH_RST, IRS + 1, 0));
	assert_int_equal(f->c.state, TCP_CLOSED);
	assert_int_equal(f->c.error, ECONNRESET);
	assert_int_equal(f->nout, 0);
}

static void
rst_in_window_challenge_ack(void **state)
{
	struct fx *f = *state;

	establish(f, ISS, IRS, 1);
	input(f, seg_tmpl(TH_RST, IRS + 100, 0));
	assert_int_equal(f->c.state, TCP_ESTABLISHED);
	assert_int_equal(f->nout, 1);
	assert_int_equal(last(f)->flags, TH_ACK);
	assert_int_equal(last(f)->ack, IRS + 1);
	assert_int_equal(f->c.stats.challenge_acks, 1);
}

static void
rst_out_of_window_dropped(void **state)
{
	struct fx *f = *state;

	establish(f, ISS, IRS, 1);
	input(f, seg_tmpl(TH_RST, IRS + 1 + 10 * 1024 * 1024, 0));
	input(f, seg_tmpl(TH_RST, IRS - 10, 0));
	assert_int_equal(f->c.state, TCP_ESTABLISHED);
	assert_int_equal(f->nout, 0);
}

static void
syn_in_established_challenge_ack(void **state)
{
	struct fx *f = *state;

	establish(f, ISS, IRS, 0);
	input(f, seg_tmpl(TH_SYN, IRS + 1, 0));
	assert_int_equal(f->c.state, TCP_ESTABLISHED);
	assert_int_equal(f->nout, 1);
	assert_int_equal(last(f)->flags, TH_ACK);
	assert_int_equal(f->c.stats.challenge_acks, 1);
}

static void
challenge_acks_rate_limited(void **state)
{
	struct fx *f = *state;
	int i;

	establish(f, ISS, IRS, 0);
	for (i = 0; i < 50; i++)
		input(f, seg_tmpl(TH_RST, IRS + 100 + (uint32_t)i, 0));
	assert_int_equal(f->nout, 10);
	f->now += 1000;
	input(f, seg_tmpl(TH_RST, IRS + 100, 0));
	assert_int_equal(f->nout, 11);
}

static void
ack_too_old_challenge_ack(void **state)
{
	struct fx *f = *state;

	establish(f, ISS, IRS, 0);
	input(f, ack_seg(f, ISS - 200000));
	assert_int_equal(f->c.stats.challenge_acks, 1);
	assert_int_equal(f->c.stats.dropped_segs, 1);
}

static void
ack_of_unsent_data_dropped(void **state)
{
	struct fx *f = *state;

	establish(f, ISS, IRS, 0);
	input(f, data_seg(f, IRS + 1, "zz", 2));
	f->nout = 0;
	struct tcp_seg s = data_seg(f, IRS + 3, "yy", 2);
	s.ack = ISS + 500;
	input(f, s);
	assert_int_equal(f->nout, 1);
	assert_int_equal(last(f)->ack, IRS + 3);	/* data not taken */
	assert_int_equal(tcp_recv_avail(&f->c), 2);
}

static void
paws_old_timestamp_dropped(void **state)
{
	struct fx *f = *state;
	struct tcp_seg s;

	establish(f, ISS, IRS, 1);
	input(f, data_seg(f, IRS + 1, "new", 3));	/* ts_recent = 200 */
	assert_int_equal(f->c.ts_recent, 200);
	f->nout = 0;
	s = data_seg(f, IRS + 4, "old", 3);
	s.tsval = 150;
	input(f, s);
	assert_int_equal(f->nout, 1);
	assert_int_equal(tcp_recv_avail(&f->c), 3);
	assert_int_equal(f->c.stats.dropped_segs, 1);
	/* Timestamps compare modulo 2^32: a wrapped newer value passes. */
	f->c.ts_recent = 0xfffffff0u;
	s.tsval = 5;
	input(f, s);
	assert_int_equal(tcp_recv_avail(&f->c), 6);
}

static void
abort_sends_rst(void **state)
{
	struct fx *f = *state;

	establish(f, ISS, IRS, 0);
	tcp_send(&f->c, "x", 1, f->now);
	tcp_abort(&f->c, f->now);
	assert_true(last(f)->flags & TH_RST);
	assert_int_equal(last(f)->seq, ISS + 2);
	assert_int_equal(f->c.state, TCP_CLOSED);
	assert_int_equal(f->c.error, ECONNABORTED);
	assert_int_equal(tcp_poll_at(&f->c), TCP_NEVER);
}

static void
keepalive_probes_then_abort(void **state)
{
	struct fx *f = *state;
	uint32_t i;

	f->cfg.keepalive_idle_ms = 7200;
	f->cfg.keepalive_intvl_ms = 75;
	f->cfg.keepalive_probes = 3;
	establish(f, ISS, IRS, 0);
	assert_int_equal(tcp_poll_at(&f->c), f->now + 7200);
	for (i = 0; i < 3; i++) {
		f->now = tcp_poll_at(&f->c);
		tcp_on_timer(&f->c, f->now);
		assert_int_equal(last(f)->seq, ISS);
		assert_int_equal(last(f)->len, 0);
	}
	/* An answer resets the count; silence after that aborts. */
	input(f, ack_seg(f, ISS + 1));
	assert_int_equal(f->c.ka_probes, 0);
	for (i = 0; i < 4; i++) {
		f->now = tcp_poll_at(&f->c);
		tcp_on_timer(&f->c, f->now);
	}
	assert_int_equal(f->c.state, TCP_CLOSED);
	assert_int_equal(f->c.error, ETIMEDOUT);
}

static void
mem_cap_refuses_rings(void **state)
{
	struct fx *f = *state;

	f->mem.limit = 64 * 1024 + 10;	/* room for one ring only */
	establish(f, ISS, IRS, 0);
	assert_int_equal(tcp_send(&f->c, "x", 1, f->now), 1);
	struct tcp_seg s = data_seg(f, IRS + 1, "y", 1);
	s.ack = ISS + 1;	/* "x" stays unacknowledged: its ring stays */
	input(f, s);
	assert_int_equal(tcp_recv_avail(&f->c), 0);
	assert_int_equal(f->mem.alloc_failures, 1);
	assert_int_equal(f->mem.used, 64 * 1024);
}

static void
idle_connection_holds_no_ring_memory(void **state)
{
	struct fx *f = *state;
	uint8_t buf[64];

	establish(f, ISS, IRS, 1);
	assert_int_equal(f->mem.used, 0);	/* lazily allocated */
	tcp_send(&f->c, "ping", 4, f->now);
	struct tcp_seg s = data_seg(f, IRS + 1, "pong", 4);
	s.ack = ISS + 1;
	input(f, s);
	assert_int_equal(f->mem.used, 2 * 64 * 1024);
	input(f, ack_seg(f, ISS + 5));
	assert_int_equal(f->mem.used, 64 * 1024);	/* all acked: send ring gone */
	assert_int_equal(tcp_recv(&f->c, buf, sizeof(buf), f->now), 4);
	assert_int_equal(f->mem.used, 0);	/* all read: receive ring gone */
	/* And the connection keeps working. */
	input(f, data_seg(f, IRS + 5, "again", 5));
	assert_int_equal(tcp_recv(&f->c, buf, sizeof(buf), f->now), 5);
	assert_memory_equal(buf, "again", 5);
}

/* ------------------------------------------------------------ parsing */

static void
tcp_parse_data_offset_lies(void **state)
{
	uint8_t h[40] = { 0 };
	struct tcp_seg s;

	(void)state;
	h[12] = 0x40;	/* 16 bytes < 20 */
	assert_int_equal(tcp_parse(h, 40, &s), -1);
	h[12] = 0xf0;	/* 60 bytes > 40 */
	assert_int_equal(tcp_parse(h, 40, &s), -1);
	assert_int_equal(tcp_parse(h, 19, &s), -1);
	h[12] = 0x50;
	assert_int_equal(tcp_parse(h, 40, &s), 0);
	assert_int_equal(s.len, 20);
}

static void
tcp_parse_option_lengths_lie(void **state)
{
	uint8_t h[32] = { 0 };
	struct tcp_seg s;

	(void)state;
	h[12] = 0x80;
	/* MSS with length 0, then garbage: options ignored, segment kept. */
	h[20] = 2; h[21] = 0;
	assert_int_equal(tcp_parse(h, 32, &s), 0);
	assert_int_equal(s.mss, 0);
	/* Length running past the header. */
	h[20] = 8; h[21] = 200;
	assert_int_equal(tcp_parse(h, 32, &s), 0);
	assert_false(s.has_ts);
	/* Wrong fixed lengths are ignored; a valid one after is used. */
	h[20] = 2; h[21] = 3; h[22] = 0x05;
	h[23] = 3; h[24] = 3; h[25] = 99;	/* wscale capped at 14 */
	h[26] = 5; h[27] = 10;			/* SACK with 8n+2 = 10 */
	assert_int_equal(tcp_parse(h, 32, &s), 0);
	assert_int_equal(s.mss, 0);
	assert_int_equal(s.wscale, 14);
	assert_int_equal(s.nsack, 0);	/* runs past the header: ignored */
}

static void
rst_reply_for_unknown_tuple(void **state)
{
	struct fx *f = *state;
	struct tcp_seg s = seg_tmpl(TH_ACK, 100, 777), r;
	uint8_t out[128];
	struct ip_stats st = { 0 };
	struct ip_pkt ip;
	size_t n;

	s.len = 10;
	n = tcp_build_rst_reply(&f->tuple, &s, out, sizeof(out));
	assert_int_equal(ip_parse(out, n, &ip, &st), 0);
	assert_true(ip_l4_csum_ok(&ip));
	assert_int_equal(tcp_parse(ip.l4, ip.l4len, &r), 0);
	assert_int_equal(r.flags, TH_RST);
	assert_int_equal(r.seq, 777);
	s = seg_tmpl(TH_SYN | TH_FIN, 100, 0);
	s.len = 10;
	n = tcp_build_rst_reply(&f->tuple, &s, out, sizeof(out));
	assert_int_equal(ip_parse(out, n, &ip, &st), 0);
	assert_int_equal(tcp_parse(ip.l4, ip.l4len, &r), 0);
	assert_int_equal(r.flags, TH_RST | TH_ACK);
	assert_int_equal(r.ack, 112);
	s.flags = TH_RST;
	assert_int_equal(tcp_build_rst_reply(&f->tuple, &s, out, sizeof(out)), 0);
}

#define T(fn)	cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(listen_syn_synack),
		T(listen_syn_no_options_defaults),
		T(listen_large_mtu_mss_and_wscale),
		T(listen_ack_without_syn_refused),
		T(syn_rcvd_ack_established),
		T(syn_rcvd_bad_ack_rst),
		T(syn_rcvd_rst),
		T(syn_rcvd_dup_syn_resends_synack),
		T(syn_rcvd_synack_backoff_then_abort),
		T(established_data_delayed_ack),
		T(established_second_segment_acked_at_once),
		T(established_ooo_fill),
		T(established_ooo_overlaps_and_limit),
		T(established_duplicate_data_reacked),
		T(seq_wraparound_data),
		T(receive_window_is_free_space),
		T(window_scaling_applied_both_ways),
		T(established_send_and_ack),
		T(send_segments_respect_mss_and_cwnd),
		T(nagle_holds_small_segment),
		T(nagle_off_sends_each_write),
		T(send_ring_full_returns_zero),
		T(send_room_wraps_and_commits),
		T(send_room_commit_nothing_releases_ring),
		T(send_room_without_memory_or_after_fin),
		T(emitv_sends_ring_slices_with_right_checksums),
		T(rtt_sample_sets_rto),
		T(retransmit_backoff_doubles),
		T(retransmit_rto_capped_at_max),
		T(fast_retransmit_three_dupacks),
		T(newreno_partial_ack_retransmits_next),
		T(sack_retransmits_each_hole),
		T(sack_to_end_of_data_retransmits_at_once),
		T(tail_loss_probe_resends_last_segment),
		T(rto_go_back_skips_sacked_data),
		T(lost_retransmission_resent_after_a_round_trip),
		T(sack_blocks_outside_window_ignored),
		T(zero_window_probe),
		T(small_peer_window_runt_sent_by_persist),
		T(zero_window_receiver_probe_acked),
		T(close_wait_on_peer_fin_then_last_ack),
		T(active_close_fin_wait_to_time_wait),
		T(simultaneous_close),
		T(fin_retransmitted_on_rto),
		T(time_wait_fin_retransmission_reacked),
		T(fin_wait_2_timeout_aborts),
		T(shutdown_in_syn_rcvd_fins_after_handshake),
		T(fin_wait_1_peer_data_still_received),
		T(close_wait_more_data_only_reacked),
		T(last_ack_fin_retransmitted_then_closed),
		T(closing_rst_closes),
		T(syn_rcvd_ack_with_data_delivered),
		T(established_ooo_fin_ignored_until_in_order),
		T(window_update_is_not_a_dupack),
		T(sack_blocks_reported_latest_first),
		T(seq_wraparound_ooo_reassembly),
		T(recv_peek_consume_zero_copy),
		T(delayed_ack_piggybacks_on_data),
		T(persist_backoff_capped_and_never_aborts),
		T(rto_into_zero_window_switches_to_persist),
		T(established_rst_exact_resets),
		T(rst_in_window_challenge_ack),
		T(rst_out_of_window_dropped),
		T(syn_in_established_challenge_ack),
		T(challenge_acks_rate_limited),
		T(ack_too_old_challenge_ack),
		T(ack_of_unsent_data_dropped),
		T(paws_old_timestamp_dropped),
		T(abort_sends_rst),
		T(keepalive_probes_then_abort),
		T(mem_cap_refuses_rings),
		T(idle_connection_holds_no_ring_memory),
		T(tcp_parse_data_offset_lies),
		T(tcp_parse_option_lengths_lie),
		T(rst_reply_for_unknown_tuple),
	};

	fill_payload();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
