/*
 * libFuzzer harness over netstackd's packet input path (ip.c, tcp.c,
 * stack.c).  The input is a script of operations so the fuzzer can reach
 * established, closing and timer states, not only the parsers:
 *
 *   op byte, 2-byte big-endian length, then for packet ops that many bytes
 *   op % 8 == 0..2   inject the bytes as one packet, as they are
 *   op % 8 == 3      inject with IPv4 header and L4 checksums fixed up, so
 *                    mutations reach TCP/UDP logic instead of dying on sums
 *   op % 8 == 4      the same, and for TCP to a known flow the seq and ack
 *                    fields are offsets from its rcv_nxt and snd_una, so
 *                    in-window segments are easy to reach
 *   op % 8 == 5      advance time by length ms and run the timers
 *   op % 8 == 6      play the application: read, echo, shut down, release
 *   op % 8 == 7      abort or release one flow, or answer UDP / refuse it
 *
 * Invariant checked on every packet we emit: it parses as valid IP with a
 * valid upper-layer checksum.  Everything is freed at the end (LSan).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "netstackd/checksum.h"
#include "netstackd/ip.h"
#include "netstackd/stack.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FLOWS 16

static struct ns_tcp_flow *flows[MAX_FLOWS];
static int nflows;

static void
check_output(void *ctx, const uint8_t *pkt, size_t len)
{
	struct ip_stats st;
	struct ip_pkt p;

	(void)ctx;
	memset(&st, 0, sizeof(st));
	if (ip_parse(pkt, len, &p, &st) != 0 || !ip_l4_csum_ok(&p))
		abort();
}

/* netstackd's writev path: headers + send-ring slices, put together and
 * checked the same way (the checksum summed over odd-offset slices). */
static void
check_outputv(void *ctx, const uint8_t *hdr, size_t hdrlen,
    const struct iovec *payload, int npayload)
{
	static uint8_t whole[65536 + 256];
	size_t len = hdrlen;

	if (npayload < 1 || npayload > 2 || hdrlen > sizeof(whole))
		abort();
	memcpy(whole, hdr, hdrlen);
	for (int i = 0; i < npayload; i++) {
		if (len + payload[i].iov_len > sizeof(whole))
			abort();
		memcpy(whole + len, payload[i].iov_base, payload[i].iov_len);
		len += payload[i].iov_len;
	}
	check_output(ctx, whole, len);
}

static void
fix_checksums(uint8_t *b, size_t len)
{
	struct ip_stats st;
	struct ip_pkt p;
	size_t ihl, off;
	uint32_t sum;
	uint16_t c;
	uint8_t *l4;

	if (len >= 20 && (b[0] >> 4) == 4) {
		ihl = (size_t)(b[0] & 0xf) * 4;
		if (ihl >= 20 && ihl <= len) {
			b[10] = b[11] = 0;
			c = csum_fold(csum_add(0, b, ihl));
			b[10] = (uint8_t)(c >> 8);
			b[11] = (uint8_t)c;
		}
	}
	memset(&st, 0, sizeof(st));
	if (ip_parse(b, len, &p, &st) != 0)
		return;
	off = p.proto == IPPROTO_NS_TCP ? 16 : p.proto == IPPROTO_NS_UDP ? 6 : 2;
	if (p.l4len < off + 2)
		return;
	l4 = b + (p.l4 - b);
	l4[off] = l4[off + 1] = 0;
	if (p.proto == IPPROTO_NS_ICMP)
		sum = 0;
	else if (p.version == 4)
		sum = csum_pseudo_v4(p.src, p.dst, p.proto, (uint32_t)p.l4len);
	else
		sum = csum_pseudo_v6(p.src, p.dst, p.proto, (uint32_t)p.l4len);
	c = csum_fold(csum_add(sum, l4, p.l4len));
	l4[off] = (uint8_t)(c >> 8);
	l4[off + 1] = (uint8_t)c;
}

static uint32_t
rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static void
wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Turn relative seq/ack into absolute ones for a known flow. */
static void
relative_seq(uint8_t *b, size_t len)
{
	struct ip_stats st;
	struct ip_pkt p;
	uint8_t *th;
	uint16_t sport, dport;
	int i;

	memset(&st, 0, sizeof(st));
	if (ip_parse(b, len, &p, &st) != 0 || p.proto != IPPROTO_NS_TCP ||
	    p.l4len < 20)
		return;
	th = b + (p.l4 - b);
	sport = (uint16_t)(th[0] << 8 | th[1]);
	dport = (uint16_t)(th[2] << 8 | th[3]);
	for (i = 0; i < nflows; i++) {
		const struct tcp_conn *c = &flows[i]->c;

		if (c->tuple.rport == sport && c->tuple.lport == dport &&
		    c->tuple.version == p.version &&
		    memcmp(c->tuple.raddr, p.src, 16) == 0) {
			wr32(th + 4, c->rcv_nxt + rd32(th + 4));
			wr32(th + 8, c->snd_una + rd32(th + 8));
			return;
		}
	}
}

static void
forget(struct ns_tcp_flow *f)
{
	int i;

	for (i = 0; i < nflows; i++) {
		if (flows[i] == f) {
			flows[i] = flows[--nflows];
			return;
		}
	}
}

static void
drain_events(struct ns_stack *s, uint64_t now, int act)
{
	struct ns_event ev;
	uint8_t buf[2048];
	size_t n;

	while (ns_stack_next_event(s, &ev)) {
		if (ev.type != NS_EV_TCP)
			continue;
		if ((ev.tcp_events & NS_TCP_EV_NEW) && nflows < MAX_FLOWS)
			flows[nflows++] = ev.tcp;
		if (!act)
			continue;
		if (ev.id & 1) {
			const uint8_t *p;

			/* Zero-copy path: echo straight from the ring. */
			while ((n = ns_tcp_recv_peek(ev.tcp, &p)) > 0) {
				ssize_t w = ns_tcp_send(s, ev.tcp, p, n, now);

				ns_tcp_recv_consume(s, ev.tcp, w > 0 ? (size_t)w : n, now);
				if (w <= 0)
					break;
			}
		} else {
			while ((n = ns_tcp_recv(s, ev.tcp, buf, sizeof(buf), now)) > 0)
				(void)ns_tcp_send(s, ev.tcp, buf, n, now);
		}
		if (ev.tcp_events & TCP_EV_PEER_FIN)
			ns_tcp_shutdown(s, ev.tcp, now);
		if (ev.tcp_events & TCP_EV_CLOSED) {
			forget(ev.tcp);
			ns_tcp_release(s, ev.tcp, now);
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ns_stack_config cfg;
	struct ns_stack *s;
	struct ns_input res;
	uint8_t pkt[4096];
	uint64_t now = 1000;
	size_t len;
	uint8_t op;

	ns_stack_config_defaults(&cfg);
	cfg.max_tcp_flows = MAX_FLOWS;
	cfg.max_udp_flows = 8;
	cfg.max_time_wait = 4;
	cfg.tcp.rcvbuf = cfg.tcp.sndbuf = 4096;
	cfg.tcp.mtu = 1500;
	cfg.tcp.keepalive_idle_ms = 5000;
	cfg.tcp.keepalive_intvl_ms = 1000;
	cfg.tcp.keepalive_probes = 2;
	cfg.tcp.fin_wait_2_ms = 10000;
	cfg.secret = 42;
	/* Both Nagle settings get exercised without a format change. */
	cfg.tcp.nagle = (size & 1) != 0;
	cfg.output = check_output;
	/* And both output paths (netstackd uses outputv). */
	cfg.outputv = (size & 2) != 0 ? check_outputv : NULL;
	if ((s = ns_stack_new(&cfg)) == NULL)
		return 0;
	nflows = 0;

	while (size >= 3) {
		op = data[0];
		len = (size_t)data[1] << 8 | data[2];
		data += 3;
		size -= 3;
		switch (op % 8) {
		case 0: case 1: case 2: case 3: case 4:
			if (len > size)
				len = size;
			if (len > sizeof(pkt))
				len = sizeof(pkt);
			memcpy(pkt, data, len);
			data += len;
			size -= len;
			if (op % 8 == 4)
				relative_seq(pkt, len);
			if (op % 8 >= 3)
				fix_checksums(pkt, len);
			ns_stack_input(s, pkt, len, now, &res);
			if (res.kind == NS_IN_UDP && (op & 0x80))
				(void)ns_udp_send(s, res.udp, res.data, res.len, now);
			else if (res.kind == NS_IN_UDP && (op & 0x40))
				ns_udp_refuse(s, res.udp);
			drain_events(s, now, 0);
			break;
		case 5:
			now += len;
			if (ns_stack_poll_at(s) <= now)
				ns_stack_on_timer(s, now);
			drain_events(s, now, 0);
			break;
		case 6:
			drain_events(s, now, 1);
			break;
		case 7:
			if (nflows > 0) {
				struct ns_tcp_flow *f = flows[len % (size_t)nflows];

				if (op & 0x80) {
					forget(f);
					ns_tcp_release(s, f, now);
				} else if (op & 0x40) {
					ns_tcp_abort(s, f, now);
				} else {
					(void)ns_tcp_send(s, f, pkt, len % sizeof(pkt), now);
					ns_tcp_shutdown(s, f, now);
				}
			}
			drain_events(s, now, 0);
			break;
		}
	}
	ns_stack_free(s);
	nflows = 0;
	return 0;
}
