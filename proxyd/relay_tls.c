/*
 * The TLS layer of an intercepted flow: ciphertext between the flow's two
 * sockets and the mitm engine (sans-I/O, mitm.h), plaintext between the
 * engine and the protocol layer (layer.h), or straight across with
 * mitm_relay() for protocols no layer speaks.  Also what a client is told
 * when the upstream failed (a 502), and which clients refused our
 * certificate (their host passes through for a while).
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "proxyd/detect.h"
#include "proxyd/layer.h"
#include "proxyd/membudget.h"
#include "proxyd/mitm.h"
#include "proxyd/passmap.h"
#include "proxyd/relay.h"
#include "proxyd/relay_int.h"

static struct side *
tls_side(struct rflow *f, int s)
{
	return s == MITM_CLIENT ? &f->app : &f->up;
}

/* The end a broken leg gives: which side failed decides who is reset. */
static enum flow_end
tls_failure_end(const struct mitm_info *in)
{
	switch (in->error) {
	case MITM_ERR_UPSTREAM_CONNECT:
	case MITM_ERR_UPSTREAM_HANDSHAKE:
	case MITM_ERR_UPSTREAM_CERT:
		return FLOW_END_UPSTREAM_RESET;
	case MITM_ERR_FORGE:
	case MITM_ERR_INTERNAL:
		return FLOW_END_INTERNAL;
	case MITM_ERR_PROTOCOL:
		return strncmp(in->reason, "upstream", 8) == 0 ?
		    FLOW_END_UPSTREAM_RESET : FLOW_END_APP_RESET;
	default:
		return FLOW_END_APP_RESET;
	}
}

/*
 * The client leg failed (or the established flow broke).  A client that
 * refused our certificate makes its host pass through for a while: at once
 * when it said so with an alert, after PASSMAP_CLOSE_STRIKES silent closes
 * otherwise (passmap.h says why).
 */
static void
tls_fail(struct rflow *f)
{
	struct relay *r = f->relay;
	const struct mitm_info *in = mitm_get_info(f->m);
	unsigned need = in->rejected_by_alert ? 1 : PASSMAP_CLOSE_STRIKES;

	if (in->error == MITM_ERR_CLIENT_REJECTED) {
		r->stats.tls_client_rejected++;
		if (passmap_strike(&r->pass, f->host, ev_now(r->loop), need,
		    ev_now(r->loop) + r->cfg.passthrough_ttl))
			log_info("flow %llu: %s; passing %s through for %.0f s",
			    (unsigned long long)f->rec.id, in->reason, f->host,
			    r->cfg.passthrough_ttl);
		else if (!passmap_has(&r->pass, f->host, ev_now(r->loop)))
			log_info("flow %llu: %s; %s passes through if that "
			    "happens %u times in %d s", (unsigned long long)f->rec.id,
			    in->reason, f->host, need, PASSMAP_STRIKE_WINDOW);
	}
	rflow_end(f, tls_failure_end(in), 0);
}

/*
 * A socket of the flow failed (reset, EPIPE).  The engine is told it is
 * over, so that a client that left right after our certificate still
 * counts as a rejection; the other side is reset as in the raw relay.
 */
void
rflow_tls_side_broken(struct rflow *f, int s, int err)
{
	struct side *sd = tls_side(f, s);

	if (!sd->eof) {
		mitm_in_eof(f->m, (enum mitm_side)s);
		sd->eof = 1;
	}
	(void)mitm_step(f->m);
	f->rec.error = err;
	if (mitm_get_info(f->m)->error != MITM_ERR_NONE) {
		tls_fail(f);
		return;
	}
	rflow_end(f, s == MITM_CLIENT ? FLOW_END_APP_RESET :
	    FLOW_END_UPSTREAM_RESET, err);
}

/*
 * The upstream failed but the client's handshake with us completed
 * (MITM_UPSTREAM_FAILED).  Look at the client's first plaintext: an HTTP
 * request gets a 502 whose body is the reason, then close_notify; anything
 * else just the close_notify.  Returns whether anything moved.
 */
static int
tls_answer(struct rflow *f)
{
	const struct mitm_info *in = mitm_get_info(f->m);
	char page[768], body[300];
	uint8_t sink[4096];
	enum detect_proto d;
	int progress = 0;
	ssize_t n;

	if (f->answered) {
		/* What the client still sends is for no one. */
		while ((n = mitm_read(f->m, MITM_CLIENT, sink, sizeof(sink))) > 0)
			progress = 1;
		return progress;
	}
	while (!f->client_done && f->probe_len < sizeof(f->probe)) {
		n = mitm_read(f->m, MITM_CLIENT, f->probe + f->probe_len,
		    sizeof(f->probe) - f->probe_len);
		if (n == MITM_AGAIN)
			break;
		progress = 1;
		if (n <= 0)
			f->client_done = 1;
		else
			f->probe_len += (size_t)n;
	}
	d = f->probe_len > 0 ? detect_tcp(f->probe, f->probe_len) :
	    DETECT_NEED_MORE;
	if (d == DETECT_NEED_MORE && !f->client_done &&
	    f->probe_len < sizeof(f->probe))
		return progress;
	/* A request line longer than the probe is still HTTP-shaped. */
	if (d == DETECT_HTTP1 || (d == DETECT_NEED_MORE && !f->client_done)) {
		snprintf(body, sizeof(body), "localcap: %s\n", in->reason);
		snprintf(page, sizeof(page), "HTTP/1.1 502 Bad Gateway\r\n"
		    "Content-Type: text/plain; charset=utf-8\r\n"
		    "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
		    strlen(body), body);
		if (mitm_write(f->m, MITM_CLIENT, page, strlen(page)) <= 0)
			return progress;	/* no room yet: next time */
	}
	f->answered = 1;
	f->tls_shut[MITM_CLIENT] = 1;
	(void)mitm_shutdown(f->m, MITM_CLIENT);
	return 1;
}

/*
 * The handshakes are done: a flow whose ALPN is http/1.1, or none (an
 * HTTP/1 client that offered nothing), is observed as HTTPS; h2 (both legs
 * agreed on it: the client leg mirrors the server's choice) gets the
 * HTTP/2 layer.  Other ALPN protocols stay with mitm_relay(), decrypted but
 * raw.
 */
static void
tls_observe_start(struct rflow *f)
{
	const struct mitm_info *in = mitm_get_info(f->m);
	char addr[64];
	const char *host = in->sni[0] != '\0' ? in->sni :
	    f->rec.meta.host[0] != '\0' ? f->rec.meta.host :
	    flow_addr_str(&f->rec.meta.dst, addr, sizeof(addr));

	f->tls_checked = 1;
	if (strcmp(in->alpn, "h2") == 0) {
		rflow_proto_start_h2(f, "https", host);
		return;
	}
	if (in->alpn[0] != '\0' && strcmp(in->alpn, "http/1.1") != 0)
		return;
	rflow_proto_start(f, "https", host);
}

/*
 * mitm_relay() for a flow with a protocol layer (layer.h): the plaintext
 * passes through the layer, which observes it (HTTP/1) or re-frames it.
 * A leg's plaintext is read only into the room the layer offers, and the
 * layer offers room only once what it owes the other leg went out, so
 * flow control stays end to end.  A stream's end is reported (bit in
 * *eof_from) once the layer says everything towards the other side is out.
 */
static ssize_t
tls_layer_relay(struct rflow *f, unsigned *eof_from)
{
	struct layer *l = f->proto;
	struct mitm *m = f->m;
	ssize_t total = 0, n, w;
	const uint8_t *op;
	uint8_t *ip;
	size_t len, space;
	int from;

	*eof_from = 0;
	for (from = 0; from < 2; from++) {
		enum mitm_side to = (enum mitm_side)!from;

		for (;;) {
			/* What the other leg could not take last time goes first. */
			len = 0;
			while ((op = l->ops->out_peek(l, (enum layer_side)to,
			    &len)) != NULL && len > 0) {
				if ((w = mitm_write(m, to, op, len)) == MITM_AGAIN)
					break;
				if (w < 0)
					return MITM_ERROR;
				l->ops->out_consume(l, (enum layer_side)to,
				    (size_t)w, relay_realtime_us());
				total += w;
			}
			if (op != NULL && len > 0)
				break;		/* the other leg is full */
			if (l->ops->out_done(l, (enum layer_side)to)) {
				*eof_from |= 1u << from;
				break;
			}
			if ((space = l->ops->in_space(l, (enum layer_side)from,
			    &ip)) == 0) {
				if (l->why[0] != '\0')
					return MITM_ERROR;
				break;
			}
			n = mitm_read(m, (enum mitm_side)from, ip, space);
			if (n == MITM_AGAIN || n == MITM_ERROR) {
				(void)l->ops->in_commit(l, (enum layer_side)from,
				    0, relay_realtime_us());
				if (n == MITM_ERROR)
					return MITM_ERROR;
				break;
			}
			if (n == 0) {
				(void)l->ops->in_commit(l, (enum layer_side)from,
				    0, relay_realtime_us());
				if (l->ops->in_eof(l, (enum layer_side)from,
				    relay_realtime_us()) == -1)
					return MITM_ERROR;
				continue;
			}
			if (l->ops->in_commit(l, (enum layer_side)from,
			    (size_t)n, relay_realtime_us()) == -1)
				return MITM_ERROR;
		}
	}
	return total;
}

/*
 * The engine's ciphertext buffers are charged to the memory budget as they
 * are held (they exist only while they hold bytes; several records each
 * way on a bulk flow, none on an idle one), and given back with the rest
 * of the flow's charge when it ends.
 */
static void
tls_charge_buffers(struct rflow *f)
{
	struct relay *r = f->relay;
	size_t now = mitm_held_bytes(f->m);

	if (now > f->tls_held)
		membudget_force(r->cfg.budget, now - f->tls_held);
	else if (now < f->tls_held)
		membudget_give(r->cfg.budget, f->tls_held - now);
	f->charged = f->charged - f->tls_held + now;
	f->tls_held = now;
}

/*
 * Move ciphertext between the sockets and the engine, and plaintext across
 * (mitm_relay: bounded by the engine's buffers, so a slow reader stops the
 * writer end to end, as in the raw relay), until nothing moves; then set
 * the watchers from what the engine wants.  -1 if the flow ended (freed).
 *
 * A socket that gave less than the room offered is drained, and one that
 * took less than it was given is full: neither is tried again in this run
 * (that recv would only say EAGAIN — on a keep-alive flow two of them per
 * request).  The watchers are level-triggered, so bytes that arrive
 * meanwhile wake the flow again.
 */
int
rflow_tls_run(struct rflow *f)
{
	return rflow_tls_run_woken(f, -1);
}

/*
 * rflow_tls_run for a flow woken because side `readable` is (-1: no side
 * in particular).  The other side is not tried first if its read watcher
 * is on: were it readable, libev would run its callback too (in this loop
 * iteration or the next), so a recv there would most likely say EAGAIN —
 * on a keep-alive flow, once per request each way.
 */
int
rflow_tls_run_woken(struct rflow *f, int readable)
{
	struct relay *r = f->relay;
	struct mitm *m = f->m;
	enum mitm_status st = MITM_HANDSHAKING;
	bool drained[2] = { false, false }, full[2] = { false, false };
	size_t lc, lu;
	unsigned w;
	int round, s;

	for (s = 0; s < 2 && readable >= 0; s++)
		drained[s] = s != readable && ev_is_active(&tls_side(f, s)->rd);

	for (round = 0; round < 64; round++) {
		int progress = 0;

		w = mitm_wants(m);
		for (s = 0; s < 2; s++) {
			struct side *sd = tls_side(f, s);
			unsigned char *p;
			size_t space;
			ssize_t n;

			if (sd->fd == -1 || sd->eof || !(w & MITM_WANT_READ(s)) ||
			    (s == MITM_UPSTREAM && f->connecting))
				continue;
			if (s == MITM_CLIENT && f->a2u.len > 0) {
				/* The bytes detection held back go first. */
				size_t k = mitm_feed(m, MITM_CLIENT, f->a2u.data +
				    f->a2u.head, f->a2u.len);

				rbuf_consume(&f->a2u, k);
				r->stats.buffered -= k;
				if (f->a2u.len == 0)
					rflow_ring_release(r, &f->a2u);
				progress |= k > 0;
				continue;
			}
			if (drained[s] ||
			    (space = mitm_in_space(m, (enum mitm_side)s, &p)) == 0)
				continue;
			n = recv(sd->fd, p, space, MSG_DONTWAIT);
			if (n > 0) {
				drained[s] = (size_t)n < space;
				mitm_in_commit(m, (enum mitm_side)s, (size_t)n);
				if (s == MITM_CLIENT) {
					f->rec.bytes_from_app += (size_t)n;
					r->stats.bytes_from_app += (size_t)n;
					flow_keep_first(f->rec.first_from_app,
					    &f->rec.first_from_app_len, p, (size_t)n);
				}
				dlist_touch(&r->tcp_idle, &f->idle_dl);
				progress = 1;
			} else if (n == 0) {
				mitm_in_commit(m, (enum mitm_side)s, 0);
				mitm_in_eof(m, (enum mitm_side)s);
				sd->eof = 1;
				progress = 1;
			} else {
				mitm_in_commit(m, (enum mitm_side)s, 0);
				drained[s] = errno == EAGAIN;
				if (errno != EAGAIN && errno != EINTR) {
					rflow_tls_side_broken(f, s, errno);
					return -1;
				}
			}
		}
		st = mitm_step(m);
		if (st == MITM_ESTABLISHED) {
			unsigned eofs = 0;
			ssize_t n;

			if (!f->tls_checked) {
				/* the client took our certificate */
				passmap_forgive(&r->pass, f->host);
				tls_observe_start(f);
			}
			n = f->proto != NULL ? tls_layer_relay(f, &eofs) :
			    mitm_relay(m, &eofs);

			if (n == MITM_ERROR) {
				tls_fail(f);
				return -1;
			}
			progress |= n > 0;
			for (s = 0; s < 2; s++) {
				if ((eofs & (1u << s)) && !f->tls_shut[!s]) {
					f->tls_shut[!s] = 1;
					(void)mitm_shutdown(m, (enum mitm_side)!s);
					progress = 1;
				}
			}
		} else if (st == MITM_UPSTREAM_FAILED)
			progress |= tls_answer(f);
		for (s = 0; s < 2; s++) {
			struct side *sd = tls_side(f, s);
			const unsigned char *p;
			size_t len;
			ssize_t n;

			p = mitm_out_peek(m, (enum mitm_side)s, &len);
			if (len == 0 || sd->fd == -1 || full[s] ||
			    (s == MITM_UPSTREAM && f->connecting))
				continue;
			n = send(sd->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n > 0) {
				full[s] = (size_t)n < len;
				if (s == MITM_CLIENT) {
					f->rec.bytes_to_app += (size_t)n;
					r->stats.bytes_to_app += (size_t)n;
					flow_keep_first(f->rec.first_to_app,
					    &f->rec.first_to_app_len, p, (size_t)n);
				}
				mitm_out_consume(m, (enum mitm_side)s, (size_t)n);
				dlist_touch(&r->tcp_idle, &f->idle_dl);
				progress = 1;
			} else if (n == -1 && errno != EAGAIN && errno != EINTR &&
			    errno != ENOBUFS) {
				rflow_tls_side_broken(f, s, errno);
				return -1;
			} else if (n == -1)
				full[s] = errno != EINTR;
		}
		if (!progress)
			break;
	}

	/* A TLS half-close reaches the wire once its close_notify is out. */
	for (s = 0; s < 2; s++) {
		struct side *sd = tls_side(f, s);
		size_t len;

		(void)mitm_out_peek(m, (enum mitm_side)s, &len);
		if (f->tls_shut[s] && len == 0 && sd->fd != -1 && !sd->shut_wr) {
			(void)shutdown(sd->fd, SHUT_WR);
			sd->shut_wr = 1;
		}
	}
	(void)mitm_out_peek(m, MITM_CLIENT, &lc);
	(void)mitm_out_peek(m, MITM_UPSTREAM, &lu);
	switch (st) {
	case MITM_FAILED:
		/* Flush the alert to the client first, if it can take it. */
		if (lc == 0 || f->app.fd == -1 || f->app.eof) {
			tls_fail(f);
			return -1;
		}
		break;
	case MITM_UPSTREAM_FAILED:
		if (f->answered && lc == 0) {
			const struct mitm_info *in = mitm_get_info(f->m);

			r->stats.tls_upstream_failed++;
			/* An orderly close: the 502 must not be cut by a reset. */
			rflow_side_close(r, &f->app);
			rflow_end(f, in->error == MITM_ERR_UPSTREAM_CONNECT ?
			    FLOW_END_CONNECT_FAILED : FLOW_END_UPSTREAM_RESET, 0);
			return -1;
		}
		break;
	case MITM_ESTABLISHED:
		if (f->app.shut_wr && f->up.shut_wr) {
			rflow_end(f, FLOW_END_CLOSED, 0);
			return -1;
		}
		break;
	case MITM_HANDSHAKING:
		break;
	}
	/*
	 * What the protocol layer still owes a leg counts as pending too:
	 * when the rounds above ran out with the engine's ciphertext all sent
	 * but the layer holding more (an HTTP/2 window that opened in the
	 * last round), nothing else would wake the flow, and both peers
	 * would wait for each other.  The socket is writable: the next run
	 * comes at once.
	 */
	if (f->proto != NULL && st == MITM_ESTABLISHED) {
		size_t pc = 0, pu = 0;

		(void)f->proto->ops->out_peek(f->proto, LAYER_CLIENT, &pc);
		(void)f->proto->ops->out_peek(f->proto, LAYER_SERVER, &pu);
		lc += pc;
		lu += pu;
	}
	tls_charge_buffers(f);
	w = mitm_wants(m);
	relay_watch(r->loop, &f->app.rd, f->app.fd != -1 && !f->app.eof &&
	    (w & MITM_WANT_READ_CLIENT));
	relay_watch(r->loop, &f->app.wr, f->app.fd != -1 && lc > 0);
	relay_watch(r->loop, &f->up.rd, f->up.fd != -1 && !f->connecting &&
	    !f->up.eof && (w & MITM_WANT_READ_UPSTREAM));
	relay_watch(r->loop, &f->up.wr, f->up.fd != -1 && (f->connecting || lu > 0));
	return 0;
}

/* The upstream could not be reached: the engine tells the client.  -1 if
 * the flow ended. */
int
rflow_tls_connect_failed(struct rflow *f, int err)
{
	char why[160], dst[64];

	f->connecting = 0;
	f->rec.error = err;
	dlist_remove(&f->connect_dl);
	rflow_side_close(f->relay, &f->up);
	snprintf(why, sizeof(why), "connect to %s: %s",
	    flow_addr_str(&f->rec.meta.dst, dst, sizeof(dst)), strerror(err));
	mitm_upstream_failed(f->m, why);
	return rflow_tls_run(f);
}

/*
 * Detection found a ClientHello whose host does not pass through: the
 * engine takes the flow.  -1 if the flow ended (freed).
 */
int
rflow_tls_start(struct rflow *f)
{
	struct relay *r = f->relay;

	if ((f->m = mitm_new(r->cfg.mitm, f->rec.meta.dst.addr,
	    f->rec.meta.dst.family == AF_INET ? 4 : 16,
	    f->rec.meta.dst.port)) == NULL) {
		rflow_end(f, FLOW_END_INTERNAL, ENOMEM);
		return -1;
	}
	mitm_set_host_hint(f->m, f->rec.meta.host);
	r->stats.tls_intercepted++;
	f->charged += TLS_FLOW_COST;
	membudget_force(r->cfg.budget, TLS_FLOW_COST);
	if (f->connect_err)
		return rflow_tls_connect_failed(f, f->connect_err);
	return rflow_tls_run(f);
}
