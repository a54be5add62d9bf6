/*
 * The macOS extension's core (see mx_core.h): the decision, flow.sock, and
 * the per-flow state machines.
 *
 * Call chains (everything but the first on the loop thread):
 *   handleNewFlow: -> mx_core_decide -> (post) -> mx_flow_take -> send_new_flow
 *                                                             -> ops.open
 *   TCP app -> proxyd: ops.read -> mx_tcp_read_done -> up buffer -> tcp_sock_writable
 *   TCP proxyd -> app: tcp_sock_readable -> ops.write -> mx_write_done
 *   UDP app -> proxyd: ops.read -> mx_udp_read_done -> subflow_for(remote) -> send
 *   UDP proxyd -> app: sub_readable -> ops.write(remote) -> mx_write_done
 * Every flow ends in flow_end() (orderly or not), which closes the socket,
 * tells the platform once per direction, and releases the platform flow as
 * soon as no completion is owed (flow_maybe_release).
 *
 * tcp_settle() alone decides which watchers run and which platform
 * operation to start next, from the flow's state: one place for flow
 * control, half-close and the end of the flow.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ipc.h"
#include "ipc_sys.h"
#include "log.h"
#include "flow.pb-c.h"
#include "macos-extension/core/mx_core.h"
#include "macos-extension/core/mx_proc.h"
#include "macos-extension/core/mx_spec.h"

/* No SIGPIPE, without blocking: MSG_NOSIGNAL on Linux; on macOS
 * SO_NOSIGPIPE on each socket (flow_socketpair). */
#define SEND_FLAGS	IPC_SEND_FLAGS

#define container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

struct subflow {
	struct mx_flow		*parent;
	uint64_t		 id;
	int			 fd;
	ev_io			 rio;
	struct mx_endpoint	 remote;
	uint64_t		 last_used;	/* parent's use counter */
	uint64_t		 bytes_up, bytes_down;
};

struct mx_flow {
	TAILQ_ENTRY(mx_flow)	 entry;
	struct mx_core		*core;
	void			*pflow;
	enum mx_transport	 transport;
	struct mx_flow_meta	 meta;
	struct mx_proc		 proc;
	uint64_t		 id;		/* TCP: its NewFlow's id */

	/* Platform operations owed a completion; at most one each. */
	bool			 open_pending, read_pending, write_pending;
	bool			 opened;
	bool			 shut_rd, shut_wr;	/* ops.shutdown done */
	bool			 ended;			/* flow_end() ran */
	size_t			 write_len;	/* bytes of the write in flight */

	/* TCP: the core's end of the socketpair. */
	int			 fd;
	ev_io			 rio, wio;
	uint8_t			*up;		/* app -> proxyd, not yet sent */
	size_t			 up_off, up_len;
	bool			 app_eof;	/* the app closed its write side */
	bool			 sock_wr_shut;	/* we shut the socket for writing */
	bool			 sock_eof;	/* proxyd shut its write side */
	bool			 eof_queued;	/* on core->eofs, see eof_grace */
	ev_tstamp		 eof_at;
	TAILQ_ENTRY(mx_flow)	 eof_entry;
	uint64_t		 bytes_up, bytes_down;
	size_t			 held_max;

	/* UDP: one subflow per remote endpoint. */
	struct subflow		*subs[MX_UDP_MAX_REMOTES];
	size_t			 nsubs;
	uint64_t		 use_counter;
};

struct post {
	struct post	*next;
	void		(*fn)(struct mx_core *, void *);
	void		*arg;
};

struct mx_core {
	struct ev_loop		*loop;
	struct mx_platform	 ops;
	bool			 fail_closed;
	uint32_t		*own_uids, *own_pids;
	size_t			 n_own_uids, n_own_pids;
	struct ipc_connector	*conn;
	uint64_t		 next_id;
	TAILQ_HEAD(, mx_flow)	 flows;
	TAILQ_HEAD(, mx_flow)	 eofs;		/* EOFs read, not yet acted on */
	ev_timer		 eof_timer;
	uint8_t			*scratch;	/* one read from a socket */

	/* The audit-token cache, apart: a miss asks the platform (proc_pidpath,
	 * the code signature), which must not hold up the loop's counters. */
	pthread_mutex_t		 cache_lock;
	struct mx_proc_cache	*cache;
	/* Shared with mx_core_decide/set_spec callers on other threads. */
	pthread_mutex_t		 lock;
	struct mx_spec		 spec;
	bool			 connected;
	uint32_t		 proxyd_pid;
	uint32_t		 proxyd_uid;
	struct mx_stats		 st;

	/* mx_core_post's queue. */
	pthread_mutex_t		 inbox_lock;
	struct post		*inbox_head, *inbox_tail;
	ev_async		 wake;
};

static void	flow_end(struct mx_flow *, int err, const char *reason);
static void	tcp_settle(struct mx_flow *);
static void	udp_settle(struct mx_flow *);

/* --- small helpers -------------------------------------------------------------- */

static void
stat_add(struct mx_core *c, uint64_t *field, int64_t delta)
{
	pthread_mutex_lock(&c->lock);
	*field = (uint64_t)((int64_t)*field + delta);
	if (field == &c->st.buffered && c->st.buffered > c->st.buffered_max)
		c->st.buffered_max = c->st.buffered;
	pthread_mutex_unlock(&c->lock);
}

/* Bytes a flow holds now: what waits for the socket, what the app is
 * being written. */
static size_t
flow_held(const struct mx_flow *f)
{
	return f->up_len + (f->write_pending ? f->write_len : 0);
}

static void
note_held(struct mx_flow *f)
{
	size_t h = flow_held(f);

	if (h > f->held_max) {
		f->held_max = h;
		pthread_mutex_lock(&f->core->lock);
		if (h > f->core->st.flow_buffered_max)
			f->core->st.flow_buffered_max = h;
		pthread_mutex_unlock(&f->core->lock);
	}
}

static int
set_nonblock_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		return -1;
	return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/* A socketpair for one flow: [0] ours (non-blocking, bounded buffers),
 * [1] for proxyd. */
static int
flow_socketpair(int type, int sv[2])
{
	int sz = MX_SOCKBUF;

	if (socketpair(AF_UNIX, type, 0, sv) == -1)
		return -1;
	if (set_nonblock_cloexec(sv[0]) == -1 || set_nonblock_cloexec(sv[1]) == -1)
		goto fail;
	(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	(void)setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
#ifdef SO_NOSIGPIPE
	{
		int one = 1;

		(void)setsockopt(sv[0], SOL_SOCKET, SO_NOSIGPIPE, &one,
		    sizeof(one));
	}
#endif
	return 0;
fail:
	close(sv[0]);
	close(sv[1]);
	return -1;
}

static void
fill_endpoint(Lc__Endpoint *e, const struct mx_endpoint *m, uint8_t family)
{
	static const uint8_t zero[16];

	lc__endpoint__init(e);
	if (m->family == 0) {
		/* Unknown (NE does not tell a TCP flow's local end): the
		 * unspecified address of the destination's family. */
		e->addr.data = (uint8_t *)(uintptr_t)zero;
		e->addr.len = family == 6 ? 16 : 4;
		e->port = 0;
		return;
	}
	e->addr.data = (uint8_t *)(uintptr_t)m->addr;
	e->addr.len = m->family == 6 ? 16 : 4;
	e->port = m->port;
}

static bool
endpoint_eq(const struct mx_endpoint *a, const struct mx_endpoint *b)
{
	return a->family == b->family && a->port == b->port &&
	    memcmp(a->addr, b->addr, a->family == 6 ? 16 : 4) == 0;
}

static bool
endpoint_usable(const struct mx_endpoint *e)
{
	return (e->family == 4 || e->family == 6) && e->port != 0;
}

static struct ipc_peer *
proxyd_peer(struct mx_core *c)
{
	return c->conn != NULL ? ipc_connector_peer(c->conn) : NULL;
}

/*
 * NewFlow + the socket's other end.  The framing layer sends a duplicate of
 * the fd, so ours is closed here whatever happens: this is the one place a
 * flow's proxyd end is closed.
 */
static int
send_new_flow(struct mx_core *c, uint64_t id, enum mx_transport t,
    const struct mx_endpoint *src, const struct mx_endpoint *dst,
    const struct mx_proc *p, int fd)
{
	struct ipc_peer *px = proxyd_peer(c);
	Lc__NewFlow nf;
	Lc__Endpoint esrc, edst;
	Lc__Owner owner;
	struct timespec ts;
	int rc = -1;

	if (px == NULL) {
		errno = ENOTCONN;
		goto out;
	}
	lc__new_flow__init(&nf);
	lc__owner__init(&owner);
	owner.pid = p->pid;
	owner.uid = p->uid;
	owner.gid = p->gid;
	/* The same form as Linux's comm: the executable's name; and its
	 * whole path beside it (proxyd's store: flows.exe). */
	owner.process = (char *)(uintptr_t)ispec_basename(p->path);
	owner.exe = (char *)(uintptr_t)p->path;
	fill_endpoint(&esrc, src, dst->family);
	fill_endpoint(&edst, dst, dst->family);
	clock_gettime(CLOCK_REALTIME, &ts);
	nf.flow_id = id;
	nf.transport = t == MX_TCP ? LC__TRANSPORT__TRANSPORT_TCP :
	    LC__TRANSPORT__TRANSPORT_UDP;
	nf.src = &esrc;
	nf.dst = &edst;
	nf.owner = &owner;
	nf.start_time_us = (uint64_t)ts.tv_sec * 1000000 +
	    (uint64_t)ts.tv_nsec / 1000;
	rc = ipc_send(px, LC__MSG_TYPE__MSG_NEW_FLOW, &nf.base, &fd, 1);
out:
	{
		int e = errno;

		close(fd);
		errno = e;
	}
	return rc;
}

static void
send_flow_closed(struct mx_core *c, uint64_t id, uint64_t up, uint64_t down,
    const char *reason)
{
	struct ipc_peer *px = proxyd_peer(c);
	Lc__FlowClosed fc;

	if (px == NULL)
		return;
	lc__flow_closed__init(&fc);
	fc.flow_id = id;
	fc.bytes_from_app = up;
	fc.bytes_to_app = down;
	fc.reason = (char *)(uintptr_t)reason;
	/* Best effort: under back-pressure the record is only less complete. */
	(void)ipc_send(px, LC__MSG_TYPE__MSG_FLOW_CLOSED, &fc.base, NULL, 0);
}

/* --- flow lifetime --------------------------------------------------------------- */

static void
platform_shut(struct mx_flow *f, int how, int err)
{
	if (how == MX_SHUT_RD) {
		if (f->shut_rd)
			return;
		f->shut_rd = true;
	} else {
		if (f->shut_wr)
			return;
		f->shut_wr = true;
	}
	f->core->ops.shutdown(f->core->ops.ctx, f->pflow, how, err);
}

/* The one place a flow is freed: once it has ended and nothing is owed. */
static void
flow_maybe_release(struct mx_flow *f)
{
	struct mx_core *c = f->core;

	if (!f->ended || f->open_pending || f->read_pending || f->write_pending)
		return;
	if (f->eof_queued)
		TAILQ_REMOVE(&c->eofs, f, eof_entry);
	TAILQ_REMOVE(&c->flows, f, entry);
	stat_add(c, &c->st.flows_active, -1);
	c->ops.release(c->ops.ctx, f->pflow);
	free(f->up);
	free(f);
}

static void
sub_close(struct subflow *s, const char *reason)
{
	struct mx_flow *f = s->parent;
	size_t i;

	ev_io_stop(f->core->loop, &s->rio);
	close(s->fd);
	if (reason != NULL)
		send_flow_closed(f->core, s->id, s->bytes_up, s->bytes_down,
		    reason);
	for (i = 0; i < f->nsubs; i++)
		if (f->subs[i] == s) {
			f->subs[i] = f->subs[--f->nsubs];
			break;
		}
	free(s);
}

/*
 * End a flow: err 0 is orderly (both directions already closed), anything
 * else is an abort that the platform sees as that error on both
 * directions.  reason goes to proxyd in FlowClosed (only "closed" is
 * orderly there: anything else resets the upstream).
 */
static void
flow_end(struct mx_flow *f, int err, const char *reason)
{
	struct mx_core *c = f->core;

	if (f->ended)
		return;
	f->ended = true;
	if (f->transport == MX_TCP) {
		if (f->fd != -1) {
			ev_io_stop(c->loop, &f->rio);
			ev_io_stop(c->loop, &f->wio);
			close(f->fd);
			f->fd = -1;
			send_flow_closed(c, f->id, f->bytes_up, f->bytes_down,
			    reason);
		}
		if (f->up_len > 0) {
			stat_add(c, &c->st.buffered, -(int64_t)f->up_len);
			f->up_len = 0;
		}
	} else {
		while (f->nsubs > 0)
			sub_close(f->subs[0], reason);
	}
	platform_shut(f, MX_SHUT_RD, err);
	platform_shut(f, MX_SHUT_WR, err);
	flow_maybe_release(f);
}

/* --- TCP ------------------------------------------------------------------------------ */

/* Send what the app gave us towards proxyd; -1 if the flow ended. */
static int
tcp_push_up(struct mx_flow *f)
{
	while (f->up_len > 0) {
		ssize_t n = send(f->fd, f->up + f->up_off, f->up_len,
		    SEND_FLAGS);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			flow_end(f, ECONNRESET, "aborted");
			return -1;
		}
		f->up_off += (size_t)n;
		f->up_len -= (size_t)n;
		stat_add(f->core, &f->core->st.buffered, -(int64_t)n);
	}
	f->up_off = 0;
	return 0;
}

static void
tcp_sock_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mx_flow *f = container_of(w, struct mx_flow, wio);

	(void)loop;
	(void)revents;
	if (tcp_push_up(f) == 0)
		tcp_settle(f);
}

/* Both directions of the peer gone (close(2), not shutdown(SHUT_WR)). */
static bool
peer_closed(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN, .revents = 0 };

	return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLERR));
}

static void
tcp_sock_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mx_flow *f = container_of(w, struct mx_flow, rio);
	struct mx_core *c = f->core;
	ssize_t n;

	(void)loop;
	(void)revents;
	if (f->write_pending)
		goto settle;
	/* proxyd's reset marker comes on flow.sock, not out of band: macOS's
	 * AF_UNIX has no MSG_OOB (proxyd_flow_reset). */
	n = recv(f->fd, c->scratch, MX_CREDIT, MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		flow_end(f, ECONNRESET, "aborted");
		return;
	}
	if (n == 0) {
		/*
		 * proxyd ends a stream orderly with shutdown(SHUT_WR), and
		 * closes the socket only once both directions are done
		 * (docs/proxyd-relay.md).  So a full close while we still
		 * send is proxyd cutting the flow, or proxyd gone: the app
		 * gets an error, not a clean end of a cut-off stream.
		 */
		if (!f->sock_wr_shut && peer_closed(f->fd)) {
			flow_end(f, ECONNRESET, "proxyd closed the flow");
			return;
		}
		/*
		 * Otherwise the end of the server's stream, or a reset whose
		 * FlowClosed{reset} is still on its way on flow.sock
		 * (proxyd_flow_reset), or (our side done too) proxyd dying,
		 * whose exit closes flow.sock as well, in some order.  Acted
		 * on MX_EOF_GRACE later (one timer, the list in arrival
		 * order), so that a reset or a dead proxyd is seen as what it
		 * is.
		 */
		ev_io_stop(c->loop, &f->rio);
		if (!f->eof_queued) {
			f->eof_queued = true;
			f->eof_at = ev_now(c->loop);
			TAILQ_INSERT_TAIL(&c->eofs, f, eof_entry);
			if (!ev_is_active(&c->eof_timer)) {
				ev_timer_set(&c->eof_timer, MX_EOF_GRACE, 0);
				ev_timer_start(c->loop, &c->eof_timer);
			}
		}
		return;
	}
	f->bytes_down += (uint64_t)n;
	stat_add(c, &c->st.bytes_to_app, n);
	stat_add(c, &c->st.buffered, n);
	f->write_pending = true;
	f->write_len = (size_t)n;
	note_held(f);
	c->ops.write(c->ops.ctx, f->pflow, c->scratch, (size_t)n, NULL);
settle:
	tcp_settle(f);
}

static void
tcp_settle(struct mx_flow *f)
{
	struct mx_core *c = f->core;

	if (f->ended) {
		flow_maybe_release(f);
		return;
	}
	if (!f->opened)
		return;

	/* app -> proxyd: the socket's writer while bytes wait, else one
	 * read from the app at a time, and only with the whole credit free. */
	if (f->up_len > 0)
		ev_io_start(c->loop, &f->wio);
	else
		ev_io_stop(c->loop, &f->wio);
	if (f->up_len == 0 && f->app_eof && !f->sock_wr_shut) {
		(void)shutdown(f->fd, SHUT_WR);
		f->sock_wr_shut = true;
	}
	if (f->up_len == 0 && !f->app_eof && !f->read_pending) {
		f->read_pending = true;
		c->ops.read(c->ops.ctx, f->pflow, MX_CREDIT);
	}

	/* proxyd -> app: read the socket only with no write to the app in
	 * flight; its EOF becomes closeWriteWithError(nil) once written. */
	if (!f->sock_eof && !f->eof_queued && !f->write_pending)
		ev_io_start(c->loop, &f->rio);
	else
		ev_io_stop(c->loop, &f->rio);
	if (f->sock_eof && !f->write_pending)
		platform_shut(f, MX_SHUT_WR, 0);

	if (f->app_eof && f->sock_wr_shut && f->sock_eof && !f->write_pending)
		flow_end(f, 0, "closed");
}

void
mx_tcp_read_done(struct mx_flow *f, const void *data, size_t len, int err)
{
	struct mx_core *c = f->core;
	size_t sent = 0;

	f->read_pending = false;
	if (f->ended) {
		flow_maybe_release(f);
		return;
	}
	if (err != 0) {
		flow_end(f, err, "reset by the application");
		return;
	}
	if (len == 0) {
		f->app_eof = true;
		platform_shut(f, MX_SHUT_RD, 0);
		tcp_settle(f);
		return;
	}
	if (len > MX_CREDIT) {
		/* The platform broke its side of the credit: a bug there. */
		log_warnx("flow %llu: the platform read %zu bytes of %u allowed",
		    (unsigned long long)f->id, len, MX_CREDIT);
		flow_end(f, EMSGSIZE, "aborted");
		return;
	}
	f->bytes_up += len;
	stat_add(c, &c->st.bytes_from_app, (int64_t)len);
	/* Straight to the socket; only what does not fit is kept. */
	while (sent < len) {
		ssize_t n = send(f->fd, (const uint8_t *)data + sent, len - sent,
		    SEND_FLAGS);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			flow_end(f, ECONNRESET, "aborted");
			return;
		}
		sent += (size_t)n;
	}
	if (sent < len) {
		if (f->up == NULL && (f->up = malloc(MX_CREDIT)) == NULL) {
			flow_end(f, ENOMEM, "aborted");
			return;
		}
		memcpy(f->up, (const uint8_t *)data + sent, len - sent);
		f->up_off = 0;
		f->up_len = len - sent;
		stat_add(c, &c->st.buffered, (int64_t)f->up_len);
		note_held(f);
	}
	tcp_settle(f);
}

/* Has proxyd hung up flow.sock (not yet read by the framing layer)? */
static bool
proxyd_hung_up(struct mx_core *c)
{
	struct ipc_peer *px = proxyd_peer(c);
	struct pollfd pfd;

	if (px == NULL)
		return true;
	pfd.fd = ipc_peer_fd(px);
	pfd.events = POLLIN;
	pfd.revents = 0;
	return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLERR));
}

static void
eof_grace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mx_core *c = container_of(w, struct mx_core, eof_timer);
	struct mx_flow *f;

	(void)revents;
	if (!TAILQ_EMPTY(&c->eofs) && proxyd_hung_up(c)) {
		struct ipc_peer *px = proxyd_peer(c);

		/* Every flow ends now, as an error (proxyd_close). */
		if (px != NULL)
			ipc_close(px, "proxyd hung up");
		return;
	}
	while ((f = TAILQ_FIRST(&c->eofs)) != NULL) {
		if (f->eof_at + MX_EOF_GRACE > ev_now(loop)) {
			ev_timer_set(w, f->eof_at + MX_EOF_GRACE - ev_now(loop),
			    0);
			ev_timer_start(loop, w);
			return;
		}
		TAILQ_REMOVE(&c->eofs, f, eof_entry);
		f->eof_queued = false;
		f->sock_eof = true;
		tcp_settle(f);
	}
}

/* --- UDP ------------------------------------------------------------------------------ */

static void
sub_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct subflow *s = container_of(w, struct subflow, rio);
	struct mx_flow *f = s->parent;
	struct mx_core *c = f->core;
	ssize_t n;

	(void)loop;
	(void)revents;
	if (f->write_pending) {
		/* One datagram to the app at a time; udp_settle restarts us. */
		ev_io_stop(c->loop, &s->rio);
		return;
	}
	n = recv(s->fd, c->scratch, MX_DGRAM_MAX, MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		sub_close(s, NULL);	/* proxyd ended it */
		return;
	}
	if (n == 0)
		return;		/* an empty datagram: nothing to carry */
	s->bytes_down += (uint64_t)n;
	s->last_used = ++f->use_counter;
	stat_add(c, &c->st.bytes_to_app, n);
	f->write_pending = true;
	f->write_len = (size_t)n;
	stat_add(c, &c->st.buffered, n);
	note_held(f);
	c->ops.write(c->ops.ctx, f->pflow, c->scratch, (size_t)n, &s->remote);
	udp_settle(f);
}

/* A new subflow: its own socketpair and NewFlow, one destination. */
static struct subflow *
sub_new(struct mx_flow *f, const struct mx_endpoint *remote)
{
	struct mx_core *c = f->core;
	struct subflow *s;
	int sv[2];

	if (f->nsubs == MX_UDP_MAX_REMOTES) {
		/* Full: the least recently used remote makes room. */
		struct subflow *lru = f->subs[0];
		size_t i;

		for (i = 1; i < f->nsubs; i++)
			if (f->subs[i]->last_used < lru->last_used)
				lru = f->subs[i];
		sub_close(lru, "idle");
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	if (flow_socketpair(SOCK_DGRAM, sv) == -1) {
		free(s);
		return NULL;
	}
	s->parent = f;
	s->id = ++c->next_id;
	s->fd = sv[0];
	s->remote = *remote;
	if (send_new_flow(c, s->id, MX_UDP, &f->meta.local, remote, &f->proc,
	    sv[1]) == -1) {
		close(sv[0]);
		free(s);
		return NULL;
	}
	ev_io_init(&s->rio, sub_readable, s->fd, EV_READ);
	f->subs[f->nsubs++] = s;
	stat_add(c, &c->st.udp_subflows, 1);
	return s;
}

static struct subflow *
sub_find(struct mx_flow *f, const struct mx_endpoint *remote)
{
	size_t i;

	for (i = 0; i < f->nsubs; i++)
		if (endpoint_eq(&f->subs[i]->remote, remote))
			return f->subs[i];
	return NULL;
}

/* One datagram from the app towards its remote's subflow. */
static void
udp_forward(struct mx_flow *f, const struct mx_dgram *d)
{
	struct mx_core *c = f->core;
	struct subflow *s;
	int attempt;

	if (!endpoint_usable(&d->remote) || d->len > MX_DGRAM_MAX) {
		stat_add(c, &c->st.dgrams_dropped, 1);
		return;
	}
	for (attempt = 0; attempt < 2; attempt++) {
		if ((s = sub_find(f, &d->remote)) == NULL &&
		    (s = sub_new(f, &d->remote)) == NULL)
			break;
		if (send(s->fd, d->data, d->len, SEND_FLAGS) ==
		    (ssize_t)d->len) {
			s->bytes_up += d->len;
			s->last_used = ++f->use_counter;
			stat_add(c, &c->st.bytes_from_app, (int64_t)d->len);
			/* No settle here: the next read is asked for once the
			 * whole batch is through (mx_udp_read_done), while the
			 * platform's datagrams are still ours to read. */
			return;
		}
		/* Full (proxyd behind): the datagram is lost, as on any UDP
		 * path, never buffered.  Refused: proxyd ended this subflow
		 * (a datagram socket learns that only now); a new one. */
		if (errno != ECONNREFUSED && errno != ENOTCONN &&
		    errno != ECONNRESET && errno != EPIPE)
			break;
		sub_close(s, NULL);
	}
	stat_add(c, &c->st.dgrams_dropped, 1);
}

void
mx_udp_read_done(struct mx_flow *f, const struct mx_dgram *d, size_t n,
    int err)
{
	size_t i;

	f->read_pending = false;
	if (f->ended) {
		flow_maybe_release(f);
		return;
	}
	if (err != 0) {
		flow_end(f, err, "aborted");
		return;
	}
	if (n == 0) {
		flow_end(f, 0, "closed");
		return;
	}
	for (i = 0; i < n && i < MX_UDP_BATCH && !f->ended; i++)
		udp_forward(f, &d[i]);
	if (n > MX_UDP_BATCH)
		stat_add(f->core, &f->core->st.dgrams_dropped,
		    (int64_t)(n - MX_UDP_BATCH));
	udp_settle(f);
}

static void
udp_settle(struct mx_flow *f)
{
	struct mx_core *c = f->core;
	size_t i;

	if (f->ended) {
		flow_maybe_release(f);
		return;
	}
	if (!f->opened)
		return;
	/* The app is read continuously: datagrams are never held here. */
	if (!f->read_pending) {
		f->read_pending = true;
		c->ops.read(c->ops.ctx, f->pflow, MX_CREDIT);
	}
	for (i = 0; i < f->nsubs; i++) {
		if (f->write_pending)
			ev_io_stop(c->loop, &f->subs[i]->rio);
		else
			ev_io_start(c->loop, &f->subs[i]->rio);
	}
}

/* --- completions shared by both transports --------------------------------------- */

static void
settle(struct mx_flow *f)
{
	if (f->transport == MX_TCP)
		tcp_settle(f);
	else
		udp_settle(f);
}

void
mx_flow_opened(struct mx_flow *f, int err)
{
	f->open_pending = false;
	if (f->ended) {
		flow_maybe_release(f);
		return;
	}
	if (err != 0) {
		flow_end(f, err, "aborted");
		return;
	}
	f->opened = true;
	settle(f);
}

void
mx_write_done(struct mx_flow *f, int err)
{
	struct mx_core *c = f->core;

	f->write_pending = false;
	stat_add(c, &c->st.buffered, -(int64_t)f->write_len);
	f->write_len = 0;
	if (f->ended) {
		flow_maybe_release(f);
		return;
	}
	if (err != 0) {
		/* UDP: a lost datagram is no reason to end the socket. */
		if (f->transport == MX_UDP)
			stat_add(c, &c->st.dgrams_dropped, 1);
		else {
			flow_end(f, err, "reset by the application");
			return;
		}
	}
	settle(f);
}

/* --- the decision ------------------------------------------------------------------- */

static bool
own_process(const struct mx_core *c, const struct mx_proc *p)
{
	size_t i;

	if (p->localcap_signed || p->pid == (uint32_t)getpid() ||
	    (c->proxyd_pid != 0 && p->pid == c->proxyd_pid))
		return true;
	for (i = 0; i < c->n_own_pids; i++)
		if (p->pid == c->own_pids[i])
			return true;
	for (i = 0; i < c->n_own_uids; i++)
		if (p->uid == c->own_uids[i])
			return true;
	return false;
}

int
mx_core_decide(struct mx_core *c, const struct mx_flow_meta *m,
    struct mx_proc *proc)
{
	bool hit = false;
	int rc = 0, found;

	if ((m->transport != MX_TCP && m->transport != MX_UDP) ||
	    (m->transport == MX_TCP && !endpoint_usable(&m->remote))) {
		pthread_mutex_lock(&c->lock);
		c->st.flows_seen++;
		c->st.flows_passed++;
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	pthread_mutex_lock(&c->cache_lock);
	found = mx_proc_cache_get(c->cache, m->audit_token,
	    sizeof(m->audit_token), c->ops.proc_info, c->ops.ctx, proc, &hit);
	pthread_mutex_unlock(&c->cache_lock);

	pthread_mutex_lock(&c->lock);
	c->st.flows_seen++;
	if (found == -1) {
		c->st.flows_no_process++;
		goto out;
	}
	if (hit)
		c->st.proc_cache_hits++;
	else
		c->st.proc_cache_misses++;
	if (own_process(c, proc)) {
		c->st.flows_own++;
		goto out;
	}
	if (!mx_spec_captures(&c->spec, proc)) {
		c->st.flows_passed++;
		goto out;
	}
	if (!c->connected) {
		c->st.flows_no_proxyd++;
		rc = c->fail_closed ? -1 : 0;
		goto out;
	}
	if (c->st.flows_active >= MX_MAX_FLOWS) {
		c->st.flows_over_limit++;
		goto out;
	}
	c->st.flows_intercepted++;
	/* Counted now, so that racing decisions respect the limit. */
	c->st.flows_active++;
	rc = 1;
out:
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int
mx_core_set_spec(struct mx_core *c, const char *text, struct ispec_error *err)
{
	struct mx_spec *spec;

	/* Parsed outside the lock (user: may ask the directory service). */
	if ((spec = malloc(sizeof(*spec))) == NULL) {
		if (err != NULL)
			snprintf(err->msg, sizeof(err->msg), "out of memory");
		return -1;
	}
	if (mx_spec_compile(text, spec, NULL, err) == -1) {
		free(spec);
		return -1;
	}
	pthread_mutex_lock(&c->lock);
	c->spec = *spec;
	pthread_mutex_unlock(&c->lock);
	free(spec);
	return 0;
}

void
mx_flow_take(struct mx_core *c, void *pflow, const struct mx_flow_meta *m,
    const struct mx_proc *p)
{
	struct mx_flow *f;
	int sv[2];

	if ((f = calloc(1, sizeof(*f))) == NULL) {
		c->ops.shutdown(c->ops.ctx, pflow, MX_SHUT_RD, ENOMEM);
		c->ops.shutdown(c->ops.ctx, pflow, MX_SHUT_WR, ENOMEM);
		c->ops.release(c->ops.ctx, pflow);
		stat_add(c, &c->st.flows_active, -1);
		return;
	}
	f->core = c;
	f->pflow = pflow;
	f->transport = m->transport;
	f->meta = *m;
	f->proc = *p;
	f->fd = -1;
	TAILQ_INSERT_TAIL(&c->flows, f, entry);
	if (m->transport == MX_TCP) {
		f->id = ++c->next_id;
		if (flow_socketpair(SOCK_STREAM, sv) == -1) {
			flow_end(f, errno, "aborted");
			return;
		}
		if (send_new_flow(c, f->id, MX_TCP, &m->local, &m->remote, p,
		    sv[1]) == -1) {
			/* proxyd gone or not reading: the app sees a refusal. */
			close(sv[0]);
			flow_end(f, ECONNREFUSED, "aborted");
			return;
		}
		f->fd = sv[0];
		ev_io_init(&f->rio, tcp_sock_readable, f->fd, EV_READ);
		ev_io_init(&f->wio, tcp_sock_writable, f->fd, EV_WRITE);
	}
	f->open_pending = true;
	c->ops.open(c->ops.ctx, pflow, f);
}

/* --- proxyd (flow.sock) ----------------------------------------------------------- */

static void
proxyd_ready(struct ipc_peer *peer)
{
	struct mx_core *c = ipc_user(peer);
	const struct ipc_cred *cred = ipc_cred(peer);

	pthread_mutex_lock(&c->lock);
	c->connected = true;
	c->proxyd_pid = (uint32_t)cred->pid;
	c->proxyd_uid = (uint32_t)cred->uid;
	pthread_mutex_unlock(&c->lock);
	log_info("proxyd connected (pid %d, version %s)", (int)cred->pid,
	    ipc_peer_version(peer));
}

/*
 * proxyd's reset marker (docs/proxyd-relay.md): proxyd cut a TCP flow
 * towards the app (the server reset it, an idle flow, proxyd stopping...)
 * and says so here, before it closes the flow socket, because macOS's
 * AF_UNIX has no out-of-band byte to carry it.  The flow ends as a reset
 * whether its EOF is already held (MX_EOF_GRACE) or not yet read: the app
 * gets ECONNRESET, not a clean end of a cut-off stream, as netstackd's
 * apps get a RST.  A flow already over (its id no longer here) needs
 * nothing.  A linear search: resets are rare next to reads, and flows are
 * at most MX_MAX_FLOWS.
 */
static void
proxyd_flow_reset(struct mx_core *c, const Lc__FlowClosed *fc)
{
	struct mx_flow *f;

	if (fc->reason == NULL || strcmp(fc->reason, "reset") != 0) {
		log_debug("FlowClosed %llu from proxyd: reason \"%s\" ignored",
		    (unsigned long long)fc->flow_id,
		    fc->reason ? fc->reason : "");
		return;
	}
	TAILQ_FOREACH(f, &c->flows, entry)
		if (f->transport == MX_TCP && f->id == fc->flow_id)
			break;
	if (f == NULL || f->ended)
		return;
	stat_add(c, &c->st.resets_from_proxyd, 1);
	flow_end(f, ECONNRESET, "reset by proxyd");
}

static void
proxyd_message(struct ipc_peer *peer, Lc__MsgType type,
    const ProtobufCMessage *msg, int *fds, size_t nfds)
{
	struct mx_core *c = ipc_user(peer);

	(void)fds;
	(void)nfds;
	switch (type) {
	case LC__MSG_TYPE__MSG_PROXY_STATUS:
		break;
	case LC__MSG_TYPE__MSG_FLOW_CLOSED:
		if (c != NULL)
			proxyd_flow_reset(c,
			    (const Lc__FlowClosed *)(const void *)msg);
		break;
	default:
		ipc_close(peer, "unexpected message from proxyd");
	}
}

static void
proxyd_close(struct ipc_peer *peer, const char *reason)
{
	struct mx_core *c = ipc_user(peer);
	struct mx_flow *f, *next;
	bool was;

	(void)reason;
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	was = c->connected;
	c->connected = false;
	c->proxyd_pid = 0;
	if (was)
		c->st.proxyd_losses++;
	pthread_mutex_unlock(&c->lock);
	/* proxyd held the other ends: every flow is cut, and the apps see it
	 * as an error rather than a clean end. */
	for (f = TAILQ_FIRST(&c->flows); f != NULL; f = next) {
		next = TAILQ_NEXT(f, entry);
		flow_end(f, ECONNRESET, "proxyd gone");
	}
}

static const struct ipc_callbacks proxyd_callbacks = {
	.on_ready = proxyd_ready,
	.on_message = proxyd_message,
	.on_close = proxyd_close,
};

/* --- posting from other threads ------------------------------------------------------- */

int
mx_core_post(struct mx_core *c, void (*fn)(struct mx_core *, void *), void *arg)
{
	struct post *p;

	if ((p = malloc(sizeof(*p))) == NULL)
		return -1;
	p->next = NULL;
	p->fn = fn;
	p->arg = arg;
	pthread_mutex_lock(&c->inbox_lock);
	if (c->inbox_tail != NULL)
		c->inbox_tail->next = p;
	else
		c->inbox_head = p;
	c->inbox_tail = p;
	pthread_mutex_unlock(&c->inbox_lock);
	ev_async_send(c->loop, &c->wake);
	return 0;
}

static void
inbox_run(struct ev_loop *loop, ev_async *w, int revents)
{
	struct mx_core *c = container_of(w, struct mx_core, wake);
	struct post *p;

	(void)loop;
	(void)revents;
	pthread_mutex_lock(&c->inbox_lock);
	p = c->inbox_head;
	c->inbox_head = c->inbox_tail = NULL;
	pthread_mutex_unlock(&c->inbox_lock);
	while (p != NULL) {
		struct post *next = p->next;

		p->fn(c, p->arg);
		free(p);
		p = next;
	}
}

/* --- the core ------------------------------------------------------------------------ */

struct mx_core *
mx_core_new(struct ev_loop *loop, const struct mx_platform *ops,
    const struct mx_config *cfg)
{
	struct ipc_peer_config pc = {
		.channel = IPC_CHAN_FLOW,
		.self_role = LC__ROLE__ROLE_REDIRECTORD,
		.accept_roles = 1u << LC__ROLE__ROLE_PROXYD,
		.cb = &proxyd_callbacks,
		.name = "flow.sock",
	};
	struct mx_core *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->loop = loop;
	c->ops = *ops;
	c->fail_closed = cfg->fail_closed;
	TAILQ_INIT(&c->flows);
	TAILQ_INIT(&c->eofs);
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->cache_lock, NULL);
	pthread_mutex_init(&c->inbox_lock, NULL);
	if (cfg->n_own_uids > 0) {
		c->own_uids = calloc(cfg->n_own_uids, sizeof(uint32_t));
		if (c->own_uids == NULL)
			goto fail;
		memcpy(c->own_uids, cfg->own_uids,
		    cfg->n_own_uids * sizeof(uint32_t));
		c->n_own_uids = cfg->n_own_uids;
	}
	if (cfg->n_own_pids > 0) {
		c->own_pids = calloc(cfg->n_own_pids, sizeof(uint32_t));
		if (c->own_pids == NULL)
			goto fail;
		memcpy(c->own_pids, cfg->own_pids,
		    cfg->n_own_pids * sizeof(uint32_t));
		c->n_own_pids = cfg->n_own_pids;
	}
	if ((c->scratch = malloc(MX_DGRAM_MAX > MX_CREDIT ? MX_DGRAM_MAX :
	    MX_CREDIT)) == NULL)
		goto fail;
	if ((c->cache = mx_proc_cache_new(cfg->proc_cache_size)) == NULL)
		goto fail;
	ev_async_init(&c->wake, inbox_run);
	ev_async_start(loop, &c->wake);
	ev_init(&c->eof_timer, eof_grace_cb);
	pc.user = c;
	if ((c->conn = ipc_connector_new(loop, cfg->flow_sock, &pc)) == NULL) {
		ev_async_stop(loop, &c->wake);
		goto fail;
	}
	return c;
fail:
	mx_proc_cache_free(c->cache);
	free(c->scratch);
	free(c->own_uids);
	free(c->own_pids);
	free(c);
	errno = ENOMEM;
	return NULL;
}

void
mx_core_free(struct mx_core *c)
{
	struct mx_flow *f, *next;

	if (c == NULL)
		return;
	inbox_run(c->loop, &c->wake, 0);
	for (f = TAILQ_FIRST(&c->flows); f != NULL; f = next) {
		next = TAILQ_NEXT(f, entry);
		flow_end(f, ECONNABORTED, "aborted");
	}
	/* Flows still owed a completion are released now: the platform
	 * drops completions for a released flow. */
	while ((f = TAILQ_FIRST(&c->flows)) != NULL) {
		f->open_pending = f->read_pending = f->write_pending = false;
		flow_maybe_release(f);
	}
	ipc_connector_free(c->conn);
	ev_async_stop(c->loop, &c->wake);
	ev_timer_stop(c->loop, &c->eof_timer);
	mx_proc_cache_free(c->cache);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->cache_lock);
	pthread_mutex_destroy(&c->inbox_lock);
	free(c->scratch);
	free(c->own_uids);
	free(c->own_pids);
	free(c);
}

const struct mx_stats *
mx_core_stats(const struct mx_core *c)
{
	return &c->st;
}

bool
mx_core_connected(const struct mx_core *c)
{
	return c->connected;
}
