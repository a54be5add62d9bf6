/*
 * How a flow ends: its sockets closed (reset where the stream was cut),
 * its buffers and layers freed, its record pushed to the ring and its row
 * in the store completed (recorder.c).  And the source's side of it:
 * FlowClosed (relay_source_flow_closed) may come before or after proxyd's
 * end of the flow; the ended FIFO keeps the rows of flows that ended
 * first, so the source's figures still reach them.
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
#include "proxyd/layer.h"
#include "proxyd/membudget.h"
#include "proxyd/mitm.h"
#include "proxyd/relay.h"
#include "proxyd/relay_int.h"
#include "proxyd/store.h"

/*
 * Close a side so that its peer sees a reset rather than an orderly end.  A
 * TCP socket sends RST when closed with a zero linger.  A Unix stream socket
 * (a flow source's flow socket) has no reset.  netstackd's gets one
 * out-of-band byte, the reset marker (docs/proxyd-relay.md), which a reader
 * unaware of it never sees inline; the close that follows reads as EOF.
 * The macOS extension's cannot carry it (macOS's AF_UNIX has no MSG_OOB):
 * its source is told on flow.sock instead, before the close
 * (relay_set_on_source_reset), and so is it in the simulator on Linux.
 */
static void
side_abort(struct rflow *f, struct side *s)
{
	struct relay *r = f->relay;
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (s->fd == -1)
		return;
	if (s->domain == AF_INET || s->domain == AF_INET6)
		(void)setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	else if (s->domain == AF_UNIX && s->type == SOCK_STREAM) {
		if (s == &f->app && f->source != NULL &&
		    r->on_source_reset != NULL &&
		    r->on_source_reset(r->on_source_reset_arg, f->source,
		    f->rec.meta.source_flow_id))
			return;
		(void)send(s->fd, "R", 1, MSG_OOB | MSG_DONTWAIT | MSG_NOSIGNAL);
	}
}

void
rflow_side_close(struct relay *r, struct side *s)
{
	ev_io_stop(r->loop, &s->rd);
	ev_io_stop(r->loop, &s->wr);
	if (s->fd != -1)
		close(s->fd);
	s->fd = -1;
}

void
rflow_hash_remove(struct relay *r, struct rflow *f)
{
	struct rflow **pp;

	if (!f->hashed)
		return;
	for (pp = &r->hash[relay_hash_slot(f->source, f->rec.meta.source_flow_id)];
	    *pp; pp = &(*pp)->hnext) {
		if (*pp == f) {
			*pp = f->hnext;
			break;
		}
	}
	f->hashed = 0;
	f->hnext = NULL;
}

static void
log_end(const struct rflow *f)
{
	const struct flow_record *rec = &f->rec;
	char src[64], dst[64];

	log_debug("flow %llu %s %s -> %s (%s pid %u): %s%s%s%s, %llu bytes out, "
	    "%llu in, %.3f s", (unsigned long long)rec->id,
	    flow_transport_str(rec->meta.transport),
	    flow_addr_str(&rec->meta.src, src, sizeof(src)),
	    flow_addr_str(&rec->meta.dst, dst, sizeof(dst)),
	    rec->meta.owner.process[0] ?
	    rec->meta.owner.process : "?",
	    rec->meta.owner.pid, flow_end_str(rec->end),
	    rec->error ? " (" : "", rec->error ? strerror(rec->error) : "",
	    rec->error ? ")" : "", (unsigned long long)rec->bytes_from_app,
	    (unsigned long long)rec->bytes_to_app,
	    (double)(rec->end_us - rec->meta.start_us) / 1e6);
}

static struct ended *
ended_at(struct relay *r, size_t age)	/* 0: the oldest */
{
	return &r->ended[(r->ended_head + ENDED_MAX - r->ended_count + age) %
	    ENDED_MAX];
}

/* Complete e's row, with the source's figures if they came. */
static void
ended_finish(struct relay *r, struct ended *e, const struct flow_tcp_stats *tcp)
{
	struct flow_record *rec;

	if (e->held || tcp)
		(void)store_flow_finish(r->cfg.store, e->store_row, tcp, e->held);
	if (e->held)
		r->nheld--;
	e->held = 0;
	if (tcp && (rec = flow_ring_find(&r->ring, e->id)) != NULL) {
		rec->has_tcp_stats = 1;
		rec->tcp_stats = *tcp;
	}
}

static void
hold_rearm(struct relay *r)
{
	size_t i;

	ev_timer_stop(r->loop, &r->hold_timer);
	for (i = 0; i < r->ended_count && r->nheld > 0; i++) {
		struct ended *e = ended_at(r, i);
		ev_tstamp wait;

		if (!e->held)
			continue;
		wait = e->until - ev_now(r->loop);
		ev_timer_set(&r->hold_timer, wait > 0.001 ? wait : 0.001, 0);
		ev_timer_start(r->loop, &r->hold_timer);
		return;
	}
}

/* The oldest holds are over: their rows are complete without figures. */
void
relay_hold_expired(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct relay *r = (struct relay *)(void *)((char *)w -
	    offsetof(struct relay, hold_timer));
	size_t i;

	(void)revents;
	for (i = 0; i < r->ended_count && r->nheld > 0; i++) {
		struct ended *e = ended_at(r, i);

		if (!e->held)
			continue;
		if (e->until > ev_now(loop))
			break;
		ended_finish(r, e, NULL);
	}
	hold_rearm(r);
}

static void
ended_add(struct relay *r, const struct rflow *f, bool held)
{
	struct ended *e;

	if (r->ended_count == ENDED_MAX) {
		/* The oldest entry goes: whatever it waited for, it is over. */
		ended_finish(r, ended_at(r, 0), NULL);
		r->ended_count--;
	}
	e = &r->ended[r->ended_head];
	r->ended_head = (r->ended_head + 1) % ENDED_MAX;
	r->ended_count++;
	e->source = f->source;
	e->source_flow_id = f->rec.meta.source_flow_id;
	e->id = f->rec.id;
	e->store_row = f->store_row;
	e->until = ev_now(r->loop) + r->cfg.source_wait;
	e->held = held;
	if (held && r->nheld++ == 0)
		hold_rearm(r);
}

/* Newest first: a FlowClosed comes soon after the flow ended, if at all. */
static struct ended *
ended_find(struct relay *r, const void *source, uint64_t source_flow_id)
{
	size_t i;

	for (i = r->ended_count; i-- > 0; ) {
		struct ended *e = ended_at(r, i);

		if (e->source == source && e->source_flow_id == source_flow_id)
			return e;
	}
	return NULL;
}

/* Nothing more will come for these (a source gone, the store replaced). */
void
relay_ended_drop(struct relay *r, const void *source)
{
	size_t i;

	for (i = 0; i < r->ended_count; i++) {
		struct ended *e = ended_at(r, i);

		if (source == NULL || e->source == source) {
			ended_finish(r, e, NULL);
			e->source = NULL;
		}
	}
	hold_rearm(r);
}

void
rflow_end(struct rflow *f, enum flow_end end, int error)
{
	struct relay *r = f->relay;
	int tcp = f->rec.meta.transport == FLOW_TCP;
	bool hold;

	f->rec.end = end;
	if (error)
		f->rec.error = error;
	f->rec.end_us = relay_realtime_us();
	if (f->rec.end_us < f->rec.meta.start_us)
		f->rec.end_us = f->rec.meta.start_us;
	switch (end) {
	case FLOW_END_APP_RESET:
		r->stats.resets_from_app++;
		if (tcp)
			side_abort(f, &f->up);
		break;
	case FLOW_END_CONNECT_TIMEOUT:
	case FLOW_END_CONNECT_FAILED:
		r->stats.connect_failed++;
		if (end == FLOW_END_CONNECT_TIMEOUT)
			r->stats.connect_timeouts++;
		if (tcp)
			side_abort(f, &f->app);
		break;
	case FLOW_END_UPSTREAM_RESET:
		r->stats.resets_from_upstream++;
		if (tcp)
			side_abort(f, &f->app);
		break;
	case FLOW_END_IDLE:
	case FLOW_END_SHUTDOWN:
	case FLOW_END_INTERNAL:
	case FLOW_END_REFUSED:
		if (end == FLOW_END_IDLE)
			r->stats.idle_expired++;
		/* Neither side may take a cut-off stream for a complete one. */
		if (tcp) {
			side_abort(f, &f->app);
			side_abort(f, &f->up);
		}
		break;
	case FLOW_END_NONE:
	case FLOW_END_CLOSED:
	case FLOW_END_SOURCE_CLOSED:
		break;
	}
	ev_timer_stop(r->loop, &f->grace);
	if (f->quic != NULL)
		ev_timer_stop(r->loop, &f->quic_hold);
	rflow_side_close(r, &f->app);
	rflow_side_close(r, &f->up);
	rflow_ring_release(r, &f->a2u);
	rflow_ring_release(r, &f->u2a);
	spipe_close(r, &f->pa2u);
	spipe_close(r, &f->pu2a);
	dlist_remove(&f->connect_dl);
	dlist_remove(&f->idle_dl);
	rflow_hash_remove(r, f);
	rflow_addr_uncount(f);
	membudget_give(r->cfg.budget, f->charged);
	f->charged = 0;
	TAILQ_REMOVE(&r->flows, f, all);
	r->stats.flows_active--;
	/* Exchanges first: the flow's row is complete once it ends. */
	if (f->proto != NULL && f->proto->why[0] != '\0')
		snprintf(f->proto_why, sizeof(f->proto_why), "%s",
		    f->proto->why);
	if (f->proto != NULL)
		f->proto->ops->free(f->proto, f->rec.end_us,
		    end == FLOW_END_CLOSED || end == FLOW_END_SOURCE_CLOSED ?
		    NULL : flow_end_str(end));
	f->proto = NULL;
	if (tcp && f->source != NULL && !f->closed_seen) {
		/* Its FlowClosed, with the source's figures, is yet to come. */
		hold = f->store_row > 0 && r->cfg.source_wait > 0;
		recorder_flow_end(f, hold);
		ended_add(r, f, hold);
	} else
		recorder_flow_end(f, false);
	log_end(f);
	rflow_quic_free(f);
	mitm_free(f->m);
	f->m = NULL;
	flow_ring_push(&r->ring, &f->rec);
	f->rec.meta.exe = NULL;		/* the ring's now */
	flow_meta_clear(&f->rec.meta);
	free(f);
	relay_changed(r);
}

/*
 * A TCP FlowClosed reason that means the application's side ended in
 * order.  Anything else ("reset by the application", "rst from app",
 * "application timed out", "aborted"...) means its stream was cut, and the
 * server must not take what it got for the whole of it.  The reason is the
 * source's free text: naming the orderly ones keeps a new wording safe.
 */
static int
tcp_reason_orderly(const char *reason)
{
	return reason == NULL || reason[0] == '\0' ||
	    strcmp(reason, "closed") == 0 || strcmp(reason, "fin") == 0;
}

void
relay_source_flow_closed(struct relay *r, const void *source,
    uint64_t source_flow_id, const char *reason,
    const struct flow_tcp_stats *tcp)
{
	struct rflow *f;
	struct ended *e;

	if (source == NULL)
		return;
	for (f = r->hash[relay_hash_slot(source, source_flow_id)]; f; f = f->hnext)
		if (f->source == source &&
		    f->rec.meta.source_flow_id == source_flow_id)
			break;
	if (f == NULL) {
		/* Already over on our side: only its record is left to finish. */
		if ((e = ended_find(r, source, source_flow_id)) != NULL) {
			ended_finish(r, e, tcp);
			e->source = NULL;
			hold_rearm(r);
		}
		return;
	}
	f->closed_seen = 1;
	if (tcp && f->rec.meta.transport == FLOW_TCP) {
		f->rec.has_tcp_stats = 1;
		f->rec.tcp_stats = *tcp;
	}
	if (reason)
		snprintf(f->rec.source_reason, sizeof(f->rec.source_reason),
		    "%s", reason);
	if (f->rec.meta.transport == FLOW_UDP)
		rflow_end(f, FLOW_END_SOURCE_CLOSED, 0);
	else if (!tcp_reason_orderly(reason)) {
		if (f->m != NULL) {
			/*
			 * The reset may overtake what the client sent before it
			 * (an alert after our certificate): take that first, so
			 * a client that rejected us is known as such and its
			 * host passes through from now on.
			 */
			if (rflow_tls_run(f) == -1)
				return;
			rflow_tls_side_broken(f, MITM_CLIENT, ECONNRESET);
			return;
		}
		rflow_end(f, FLOW_END_APP_RESET, ECONNRESET);
	}
}

void
relay_source_gone(struct relay *r, const void *source)
{
	struct rflow *f;

	TAILQ_FOREACH(f, &r->flows, all) {
		if (f->source == source) {
			rflow_hash_remove(r, f);
			f->source = NULL;
		}
	}
	relay_ended_drop(r, source);
}

