/*
 * proxyd's flow intake: the flow sources connected on flow.sock (netstackd,
 * the macOS backend) and what their messages do.  NewFlow + fd starts a flow
 * in the relay (relay.h); FlowClosed tells the relay the source's side ended;
 * ProxyStatus goes back to every source when the relay's figures change, at
 * most once per status interval.  proxyd.c owns the listener and passes
 * intake_accept / intake_callbacks to it; tests drive the same code with
 * their own listener.
 */
#ifndef LOCALCAP_PROXYD_INTAKE_H
#define LOCALCAP_PROXYD_INTAKE_H

#include <ev.h>

#include "flow.pb-c.h"
#include "ipc.h"
#include "proxyd/flow.h"
#include "proxyd/relay.h"

#define INTAKE_STATUS_INTERVAL	1.0	/* seconds between ProxyStatus */

struct intake;

/* The relay is the caller's and must outlive the intake. */
struct intake	*intake_new(struct ev_loop *, struct relay *);
/* Closes every source connection (their flows go on in the relay). */
void		 intake_free(struct intake *);

/* For ipc_listen: callbacks (set cfg.user to the intake) and on_accept. */
extern const struct ipc_callbacks intake_callbacks;
void		 intake_accept(struct ipc_listener *, struct ipc_peer *);

/* Close the sources now (shutdown); the intake stays valid. */
void		 intake_close_sources(struct intake *, const char *reason);
size_t		 intake_nsources(const struct intake *);

/* The explicit proxy's figures go into ProxyStatus too (NULL: none). */
struct plisten;
void		 intake_set_listener(struct intake *, const struct plisten *);

/*
 * Check a NewFlow and copy it into meta (strings duplicated).  0, or -1 with
 * one line for a log in err (meta left empty).  Refused: a transport other
 * than TCP/UDP, a missing endpoint, an address not 4 or 16 bytes, source and
 * destination of different families, a destination port of 0 or over 65535,
 * an unspecified destination address.
 */
int	flow_meta_from_newflow(struct flow_meta *, const Lc__NewFlow *,
	    char *err, size_t errlen);

/*
 * A NewFlow straight from a source: validated (a bad one is refused: one log
 * line, fd closed, 0 returned) and started in the relay (relay_start).
 */
uint64_t	 intake_new_flow(struct relay *, const void *source,
		    const Lc__NewFlow *, int fd);

/* NewFlows refused for a bad fd (a source bug; the source is dropped). */
uint64_t	 intake_bad_fds(const struct intake *);

#endif
