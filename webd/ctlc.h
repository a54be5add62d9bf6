/*
 * webd's client of redirectord's ctl.sock: attach, detach and status, as
 * localcapctl sends them, on webd's own loop.
 *
 * The viewer has no authority of its own over capture: redirectord vets
 * every ctl.sock caller by SO_PEERCRED.  webd connects once when it
 * starts, before it drops to its unprivileged user, so its requests carry
 * the identity of whoever started it (`localcapctl web` as an admin, or
 * the unit's user); if that connection is lost it connects again as what
 * it is then, and redirectord decides as for anyone else.
 */
#ifndef LOCALCAP_WEBD_CTLC_H
#define LOCALCAP_WEBD_CTLC_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

#include "control.pb-c.h"

#define CTLC_TIMEOUT	5.0	/* seconds for one answer */
#define CTLC_MAX_PENDING 32
/*
 * redirectord closes a control connection idle for 60 s, and once webd has
 * dropped to its own user it may not open another: a status request this
 * often keeps the one it opened as its starter alive.
 */
#define CTLC_KEEPALIVE	20.0

struct ipc_peer;

enum ctlc_op { CTLC_ATTACH, CTLC_DETACH, CTLC_STATUS };

/*
 * An answer: ok with the active spec (attach/detach) or the status as
 * JSON text (status); or not ok with one line for a person and the byte
 * offset of a bad spec item (-1: none).
 */
typedef void	(*ctlc_done_fn)(void *arg, bool ok, const char *text,
		    long offset);
/* A status answer: the reply, or NULL with one line for a person. */
typedef void	(*ctlc_status_fn)(void *arg, const Lc__StatusReply *,
		    const char *error);

struct ctlc_pending {
	uint64_t	 id;
	enum ctlc_op	 op;
	ctlc_done_fn	 done;
	ctlc_status_fn	 status;	/* CTLC_STATUS: the reply itself */
	void		*arg;
	ev_tstamp	 deadline;
	bool		 sent;		/* else waiting for the handshake */
	char		 spec[1024];
};

struct ctlc {
	struct ev_loop	*loop;
	char		 path[300];
	struct ipc_peer	*peer;		/* NULL: not connected */
	bool		 ready;		/* handshake done */
	uint64_t	 next_id;
	struct ctlc_pending pending[CTLC_MAX_PENDING];
	ev_timer	 timer;
	ev_tstamp	 last_sent;	/* the last request went out */
};

/* Connect now (before the privilege drop); failure is not fatal. */
void	ctlc_init(struct ctlc *, struct ev_loop *, const char *sock_path);
/*
 * Send one request; done is called exactly once, possibly before this
 * returns (no connection, queue full).
 */
void	ctlc_request(struct ctlc *, enum ctlc_op, const char *spec,
	    ctlc_done_fn done, void *arg);
/* Ask for the status; done is called exactly once, as for ctlc_request. */
void	ctlc_status(struct ctlc *, ctlc_status_fn done, void *arg);
void	ctlc_free(struct ctlc *);

#endif
