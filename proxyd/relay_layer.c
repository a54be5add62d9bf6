/*
 * A plain TCP flow whose protocol layer re-frames its bytes (HTTP/2 with
 * prior knowledge, h2c): the sockets' bytes go through the layer
 * (layer.h), read only into the room it offers and written from what it
 * owes each side, exactly as relay_tls.c drives it behind TLS, minus the
 * engine.  The ring buffers are not used, except that the bytes detection
 * held back in a2u (the connection preface) go into the layer first.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "log.h"
#include "proxyd/layer.h"
#include "proxyd/relay.h"
#include "proxyd/relay_int.h"

static struct side *
side_of(struct rflow *f, int s)
{
	return s == LAYER_CLIENT ? &f->app : &f->up;
}

/* The held-back first bytes into the layer.  Progress made. */
static int
feed_held(struct rflow *f)
{
	struct relay *r = f->relay;
	struct layer *l = f->proto;
	struct iovec iov[2];
	uint8_t *p;
	size_t space, k;

	if (f->a2u.len == 0 || rbuf_data(&f->a2u, iov) == 0)
		return 0;
	if ((space = l->ops->in_space(l, LAYER_CLIENT, &p)) == 0)
		return 0;
	k = iov[0].iov_len < space ? iov[0].iov_len : space;
	memcpy(p, iov[0].iov_base, k);
	(void)l->ops->in_commit(l, LAYER_CLIENT, k, relay_realtime_us());
	rbuf_consume(&f->a2u, k);
	r->stats.buffered -= k;
	if (f->a2u.len == 0)
		rflow_ring_release(r, &f->a2u);
	return 1;
}

/* What the layer owes side `to`, onto its socket.  -1: the flow ended. */
static int
flush(struct rflow *f, int to, int *progress)
{
	struct relay *r = f->relay;
	struct layer *l = f->proto;
	struct side *sd = side_of(f, to);
	const uint8_t *p;
	size_t len;
	ssize_t n;

	if (sd->fd == -1 || (to == LAYER_SERVER && f->connecting))
		return 0;
	while ((p = l->ops->out_peek(l, (enum layer_side)to, &len)) != NULL &&
	    len > 0) {
		n = send(sd->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n <= 0) {
			if (n == -1 && errno != EAGAIN && errno != EINTR &&
			    errno != ENOBUFS) {
				rflow_end(f, to == LAYER_CLIENT ?
				    FLOW_END_APP_RESET : FLOW_END_UPSTREAM_RESET,
				    errno);
				return -1;
			}
			return 0;
		}
		if (to == LAYER_CLIENT) {
			f->rec.bytes_to_app += (size_t)n;
			r->stats.bytes_to_app += (size_t)n;
			flow_keep_first(f->rec.first_to_app,
			    &f->rec.first_to_app_len, p, (size_t)n);
		}
		l->ops->out_consume(l, (enum layer_side)to, (size_t)n,
		    relay_realtime_us());
		dlist_touch(&r->tcp_idle, &f->idle_dl);
		*progress = 1;
	}
	if (!sd->shut_wr && l->ops->out_done(l, (enum layer_side)to)) {
		(void)shutdown(sd->fd, SHUT_WR);
		sd->shut_wr = 1;
		*progress = 1;
	}
	return 0;
}

/* A side's bytes into the layer.  -1: the flow ended. */
static int
fill(struct rflow *f, int from, int *progress)
{
	struct relay *r = f->relay;
	struct layer *l = f->proto;
	struct side *sd = side_of(f, from);
	uint8_t *p;
	size_t space;
	ssize_t n;

	if (sd->fd == -1 || sd->eof || (from == LAYER_SERVER && f->connecting) ||
	    (from == LAYER_CLIENT && f->a2u.len > 0))
		return 0;
	if ((space = l->ops->in_space(l, (enum layer_side)from, &p)) == 0)
		return 0;
	n = recv(sd->fd, p, space, MSG_DONTWAIT);
	if (n > 0) {
		if (from == LAYER_CLIENT) {
			f->rec.bytes_from_app += (size_t)n;
			r->stats.bytes_from_app += (size_t)n;
			flow_keep_first(f->rec.first_from_app,
			    &f->rec.first_from_app_len, p, (size_t)n);
		}
		(void)l->ops->in_commit(l, (enum layer_side)from, (size_t)n,
		    relay_realtime_us());
		dlist_touch(&r->tcp_idle, &f->idle_dl);
		*progress = 1;
		return 0;
	}
	(void)l->ops->in_commit(l, (enum layer_side)from, 0, relay_realtime_us());
	if (n == 0) {
		sd->eof = 1;
		(void)l->ops->in_eof(l, (enum layer_side)from,
		    relay_realtime_us());
		*progress = 1;
		return 0;
	}
	if (errno == EAGAIN || errno == EINTR)
		return 0;
	rflow_end(f, from == LAYER_CLIENT ? FLOW_END_APP_RESET :
	    FLOW_END_UPSTREAM_RESET, errno);
	return -1;
}

/*
 * Move bytes between the sockets and the layer until nothing moves, then
 * set the watchers.  -1 if the flow ended (freed).
 */
int
rflow_layer_run(struct rflow *f)
{
	struct relay *r = f->relay;
	struct layer *l = f->proto;
	const uint8_t *p;
	size_t lc = 0, lu = 0;
	uint8_t *ip;
	int round, s, progress, want[2];

	for (round = 0; round < 64; round++) {
		progress = feed_held(f);
		for (s = 0; s < 2; s++)
			if (flush(f, s, &progress) == -1 ||
			    fill(f, s, &progress) == -1)
				return -1;
		if (!progress)
			break;
	}
	if (f->app.shut_wr && f->up.shut_wr) {
		rflow_end(f, FLOW_END_CLOSED, 0);
		return -1;
	}
	/* A side is read while the layer has room for it. */
	for (s = 0; s < 2; s++) {
		want[s] = l->ops->in_space(l, (enum layer_side)s, &ip) > 0;
		(void)l->ops->in_commit(l, (enum layer_side)s, 0,
		    relay_realtime_us());
	}
	if ((p = l->ops->out_peek(l, LAYER_CLIENT, &lc)) == NULL)
		lc = 0;
	if ((p = l->ops->out_peek(l, LAYER_SERVER, &lu)) == NULL)
		lu = 0;
	relay_watch(r->loop, &f->app.rd, f->app.fd != -1 && !f->app.eof &&
	    want[LAYER_CLIENT]);
	relay_watch(r->loop, &f->app.wr, f->app.fd != -1 && lc > 0);
	relay_watch(r->loop, &f->up.rd, f->up.fd != -1 && !f->connecting &&
	    !f->up.eof && want[LAYER_SERVER]);
	relay_watch(r->loop, &f->up.wr, f->up.fd != -1 &&
	    (f->connecting || lu > 0));
	return 0;
}
