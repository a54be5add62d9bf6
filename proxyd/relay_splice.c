/*
 * splice(2) for the TCP pump (relay.h "splice"): a direction in which
 * nothing looks at the bytes any more moves socket -> pipe -> socket
 * instead of through its ring buffer.  Transport only.
 */
#include <errno.h>
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
#include "proxyd/relay.h"
#include "proxyd/relay_int.h"

void
spipe_init(struct spipe *p)
{
	memset(p, 0, sizeof(*p));
	p->rd = p->wr = -1;
}

/* Bytes it held are dropped (the flow ends, or the direction is done). */
void
spipe_close(struct relay *r, struct spipe *p)
{
	if (p->rd == -1)
		return;
	r->stats.buffered -= p->len;
	close(p->rd);
	close(p->wr);
	spipe_init(p);
}

/*
 * A pipe for one direction, sized like its ring buffer.  -1 (counted; the
 * direction copies on) if there is none to have: out of descriptors, or of
 * the user's pipe pages, which leave new pipes too small to be worth it.
 */
static int
spipe_open(struct relay *r, struct spipe *p)
{
	int fds[2], sz;

	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1) {
		if (r->stats.splice_fallbacks++ == 0)
			log_info("no pipe for splice(2) (%s): those flows copy",
			    strerror(errno));
		return -1;
	}
	if ((sz = fcntl(fds[1], F_SETPIPE_SZ, (int)r->cfg.bufsize)) == -1)
		sz = fcntl(fds[1], F_GETPIPE_SZ);
	if (sz < (int)(r->cfg.bufsize < SPLICE_MIN_PIPE ? r->cfg.bufsize :
	    SPLICE_MIN_PIPE)) {
		if (r->stats.splice_fallbacks++ == 0)
			log_info("pipes for splice(2) only %d bytes: those flows "
			    "copy", sz);
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	p->rd = fds[0];
	p->wr = fds[1];
	p->len = 0;
	p->cap = (size_t)sz < r->cfg.bufsize ? (size_t)sz : r->cfg.bufsize;
	p->stalled = 0;
	r->stats.splice_dirs++;
	return 0;
}

/* Room for reading into a direction: its pipe's, or else its buffer's. */
int
spipe_room(const struct relay *r, const struct rbuf *b, const struct spipe *p)
{
	if (p->rd != -1)
		return p->len < p->cap && !p->stalled;
	return b->len < r->cfg.bufsize;
}

/*
 * Splice what s has into p, as much as p has room for: counted as a read
 * into the ring buffer is (its first bytes were kept before the direction
 * moved to the pipe).  0 to go on, -1 if the flow ended (f is freed).
 */
int
rflow_splice_in(struct rflow *f, struct side *s, struct spipe *p, int from_app)
{
	struct relay *r = f->relay;
	ssize_t n;

	if (p->len >= p->cap || p->stalled)
		return 0;
	n = splice(s->fd, NULL, p->wr, NULL, p->cap - p->len,
	    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n > 0) {
		if (from_app) {
			f->rec.bytes_from_app += (size_t)n;
			r->stats.bytes_from_app += (size_t)n;
		} else {
			f->rec.bytes_to_app += (size_t)n;
			r->stats.bytes_to_app += (size_t)n;
		}
		r->stats.bytes_spliced += (size_t)n;
		p->len += (size_t)n;
		r->stats.buffered += (size_t)n;
		if (p->len > r->stats.buffer_high_water)
			r->stats.buffer_high_water = p->len;
		dlist_touch(&r->tcp_idle, &f->idle_dl);
		return 0;
	}
	if (n == 0) {
		s->eof = 1;
		return 0;
	}
	if (errno == EAGAIN) {
		/*
		 * Called on readiness, so the socket has something: a pipe
		 * that holds bytes ran out of slots (one per page or
		 * fragment) before it ran out of room.  Read again once some
		 * went out, rather than spin on a readable socket.
		 */
		if (p->len > 0)
			p->stalled = 1;
		return 0;
	}
	if (errno == EINTR)
		return 0;
	rflow_end(f, from_app ? FLOW_END_APP_RESET : FLOW_END_UPSTREAM_RESET,
	    errno);
	return -1;
}

/* Splice what p holds to s.  0 to go on, -1 if the flow ended. */
int
rflow_splice_out(struct rflow *f, struct side *s, struct spipe *p, int to_app)
{
	struct relay *r = f->relay;
	ssize_t n;

	if (p->len == 0)
		return 0;
	n = splice(p->rd, NULL, s->fd, NULL, p->len,
	    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n > 0) {
		if ((size_t)n > p->len)		/* cannot be: we put it there */
			n = (ssize_t)p->len;
		p->len -= (size_t)n;
		r->stats.buffered -= (size_t)n;
		p->stalled = 0;
		dlist_touch(&r->tcp_idle, &f->idle_dl);
		return 0;
	}
	if (n == 0 || errno == EAGAIN || errno == EINTR || errno == ENOBUFS)
		return 0;
	rflow_end(f, to_app ? FLOW_END_APP_RESET : FLOW_END_UPSTREAM_RESET, errno);
	return -1;
}

/*
 * Whether one direction of a flow should move to a pipe: the mode says it
 * pays for this pair of sockets (relay.h), nothing looks at its bytes any
 * more or will (not TLS-intercepted, not observed as HTTP, detection and
 * sniffing over: a raw flow, a TLS passthrough, an --ignore-hosts one),
 * its first bytes are in the record, and enough went that way to be worth
 * a pipe.
 */
static int
splice_wanted(const struct rflow *f, int from_app)
{
	const struct relay *r = f->relay;
	const struct side *in = from_app ? &f->app : &f->up;
	const struct side *out = from_app ? &f->up : &f->app;
	uint64_t moved = from_app ? f->rec.bytes_from_app : f->rec.bytes_to_app;
	uint16_t first = from_app ? f->rec.first_from_app_len :
	    f->rec.first_to_app_len;

	if (r->cfg.splice == RELAY_SPLICE_OFF || (r->cfg.splice ==
	    RELAY_SPLICE_AUTO && (in->domain == AF_UNIX ||
	    out->domain != AF_UNIX)))
		return 0;
	/*
	 * Sniffing is over, or will decline: a flow whose server spoke
	 * first is never observed as HTTP (rflow_http_sniff).
	 */
	return !f->splice_failed && f->m == NULL && f->proto == NULL &&
	    (f->sniffed || f->rec.bytes_to_app > 0) && !f->detecting &&
	    !f->connecting && first >= FLOW_FIRST_BYTES &&
	    moved >= r->cfg.splice_after && in->fd != -1 && !in->eof &&
	    out->fd != -1 && !out->shut_wr;
}

/*
 * Move a direction to its pipe if it should.  The switch waits for its ring
 * buffer to be empty, so the stream's order holds: until then its side is
 * not read (1 is returned), and the buffer drains.
 */
int
rflow_splice_maybe(struct rflow *f, int from_app)
{
	struct relay *r = f->relay;
	struct spipe *p = from_app ? &f->pa2u : &f->pu2a;
	struct rbuf *b = from_app ? &f->a2u : &f->u2a;

	if (p->rd != -1 || !splice_wanted(f, from_app))
		return 0;
	if (b->len > 0)
		return 1;
	if (spipe_open(r, p) == -1) {
		f->splice_failed = 1;
		return 0;
	}
	r->stats.buffered -= rbuf_release(b);
	return 0;
}

