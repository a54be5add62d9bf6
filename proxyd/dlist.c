/*
 * Deadline lists (dlist.h).
 */
#include <stddef.h>

#include "proxyd/dlist.h"

static void
dlist_arm(struct dlist *l)
{
	struct dl_entry *first = TAILQ_FIRST(&l->head);
	ev_tstamp after;

	ev_timer_stop(l->loop, &l->timer);
	if (first == NULL)
		return;
	after = first->stamp + l->timeout - ev_now(l->loop);
	ev_timer_set(&l->timer, after > 0 ? after : 0, 0);
	ev_timer_start(l->loop, &l->timer);
}

void
dlist_remove(struct dl_entry *d)
{
	struct dlist *l = d->list;
	int was_first;

	if (l == NULL)
		return;
	was_first = TAILQ_FIRST(&l->head) == d;
	TAILQ_REMOVE(&l->head, d, e);
	d->list = NULL;
	if (was_first)
		dlist_arm(l);
}

void
dlist_touch(struct dlist *l, struct dl_entry *d)
{
	ev_tstamp now = ev_now(l->loop);

	if (l->timeout <= 0)
		return;
	if (d->list == l) {
		/* The common case on a busy flow: cheap unless it was first. */
		if (d->stamp == now)
			return;
		if (TAILQ_NEXT(d, e) == NULL) {
			d->stamp = now;
			return;
		}
	}
	dlist_remove(d);
	d->stamp = now;
	d->list = l;
	TAILQ_INSERT_TAIL(&l->head, d, e);
	if (!ev_is_active(&l->timer))
		dlist_arm(l);
}

static void
dlist_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dlist *l = (struct dlist *)(void *)((char *)w -
	    offsetof(struct dlist, timer));
	struct dl_entry *d;
	ev_tstamp now = ev_now(loop);

	(void)revents;
	while ((d = TAILQ_FIRST(&l->head)) != NULL &&
	    d->stamp + l->timeout <= now + 0.0005) {
		TAILQ_REMOVE(&l->head, d, e);
		d->list = NULL;
		l->expired(l, d);
	}
	dlist_arm(l);
}

void
dlist_init(struct dlist *l, struct ev_loop *loop, double timeout, int why,
    dlist_expired_fn *expired)
{
	TAILQ_INIT(&l->head);
	l->loop = loop;
	l->timeout = timeout;
	l->why = why;
	l->expired = expired;
	ev_init(&l->timer, dlist_timer_cb);
}

void
dlist_stop(struct dlist *l)
{
	ev_timer_stop(l->loop, &l->timer);
}
