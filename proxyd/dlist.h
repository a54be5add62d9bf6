/*
 * Deadline lists: libev's advice for many equal timeouts ("be smart about
 * timeouts").  Every entry of a list has the same duration and is only
 * ever moved to the tail when its clock restarts, so the list stays in
 * deadline order and one ev_timer, set for the head, serves them all.
 * The relay keeps one per kind (connect, TCP idle, UDP idle, DNS idle).
 */
#ifndef LOCALCAP_PROXYD_DLIST_H
#define LOCALCAP_PROXYD_DLIST_H

#include <sys/queue.h>

#include <ev.h>

struct dlist;

/* An owner's place in one list; embed it in the owner. */
struct dl_entry {
	TAILQ_ENTRY(dl_entry)	 e;
	struct dlist		*list;		/* NULL: in none */
	void			*owner;
	ev_tstamp		 stamp;		/* when the clock started */
};

/* Called for each entry whose time is up, already out of the list. */
typedef void	dlist_expired_fn(struct dlist *, struct dl_entry *);

/* Entries of equal duration, oldest stamp first, one timer for all. */
struct dlist {
	TAILQ_HEAD(, dl_entry)	 head;
	struct ev_loop		*loop;
	ev_tstamp		 timeout;	/* 0: list unused */
	int			 why;		/* the owner's: what expiry means */
	dlist_expired_fn	*expired;
	ev_timer		 timer;
};

void	dlist_init(struct dlist *, struct ev_loop *, double timeout, int why,
	    dlist_expired_fn *);
/* (Re)start d's clock in l; l unused (timeout 0) leaves d in no list. */
void	dlist_touch(struct dlist *l, struct dl_entry *d);
void	dlist_remove(struct dl_entry *d);
/* Stops the timer (the entries are the owners'). */
void	dlist_stop(struct dlist *l);

#endif
