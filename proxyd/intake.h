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

#include "ipc.h"
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

/* NewFlows refused for a bad fd (a source bug; the source is dropped). */
uint64_t	 intake_bad_fds(const struct intake *);

#endif
