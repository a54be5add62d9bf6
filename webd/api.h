/*
 * webd's routes (api.c): the page, the JSON API over the flow store, the
 * process list, attach/detach through ctl.sock, and the event stream.
 */
#ifndef LOCALCAP_WEBD_API_H
#define LOCALCAP_WEBD_API_H

#include <stdint.h>

#include <ev.h>

#include "storeread/storeread.h"
#include "webd/ctlc.h"
#include "webd/server.h"

#define API_POLL_INTERVAL	0.5	/* seconds between store polls, while
					   any event stream is open */

struct sr_store;

struct api {
	struct web_server *srv;
	struct ev_loop	*loop;
	const char	*state_dir;
	struct sr_store	*store;		/* NULL until it opens */
	char		 store_err[512];	/* why it did not (logged once) */
	enum sr_open_error store_why;	/* SR_OPEN_EMPTY: not made yet */
	int64_t		 serial;	/* greatest done_serial told so far */
	uint64_t	 polls;
	ev_timer	 poll;
	struct ctlc	 ctl;
};

/* Open the store if it is not: 0, or -1 (the reason in store_err). */
int	api_store_open(struct api *);
void	api_init(struct api *, struct web_server *, struct ev_loop *);
void	api_handle(struct web_server *, struct web_conn *,
	    const struct web_req *, void *arg);
void	api_stop(struct api *);

#endif
