/*
 * The control-socket client: one request to redirectord over ctl.sock and
 * its one reply, on a private libev loop with a deadline.  localcapctl's
 * request commands (status, attach, detach, run) and the instance commands
 * that poll redirectord (up, ps: ctl_daemons_running, ctl_status_fetch in
 * ctl.h) all go through here.
 */
#ifndef LOCALCAP_CTLCLIENT_H
#define LOCALCAP_CTLCLIENT_H

#include <ev.h>

#include "msgcodec.h"

#define CTL_TIMEOUT	5.0	/* seconds for one request */

struct ctl {		/* one request */
	struct ev_loop		*loop;
	const char		*sock_path;
	const char		*runtime_dir;
	struct msg_ctl_request	 request;	/* encoded in msgcodec.c */
	int			 json;
	int			 exit_code;
	int			 done;
	ev_timer		 deadline;
	const char		*spec_text;	/* attach/detach: for error carets */
	int			 quiet;		/* no error lines (polling) */
	int			 running;	/* status: daemons reported running */
	/* The reply, of the kind the request asks for (checked). */
	void			(*print)(const struct ctl *,
				    const struct msg_ctl_reply *);
};

/*
 * Send ctl->request to ctl->sock_path and wait for the reply: an Error
 * reply is printed (with a caret under ctl->spec_text for ERR_BAD_SPEC)
 * unless quiet, anything else goes to ctl->print.  Returns the exit code:
 * 0, or 1 on any failure.
 */
int	ctl_request(struct ctl *);

#endif
