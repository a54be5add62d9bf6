/*
 * The macOS extension's core: everything the NETransparentProxyProvider
 * does that is not a call into Apple's frameworks, in portable C so that it
 * builds and is tested on Linux (test/integration/mx_sim.c drives it with a
 * simulated platform into the real proxyd).
 *
 * The core is a flow source, in netstackd's place: for each intercepted flow
 * it makes a socketpair, sends one end to proxyd with a NewFlow over
 * flow.sock (common/ipc.c, the contract netstackd uses), and pumps bytes
 * between the other end and the platform's flow object (an NEAppProxyFlow
 * on macOS).  A UDP flow is split per remote endpoint: each remote becomes
 * a flow of its own with one destination (mitmproxy #7866 is what happens
 * otherwise).
 *
 * Threads.  The core runs on one libev loop and is not thread-safe, except
 * for mx_core_decide(), mx_core_set_spec() and mx_core_post(), which may be
 * called from any thread.  The shim calls mx_core_decide() synchronously
 * from handleNewFlow: and posts everything else (the new flow, every
 * completion) to the loop with mx_core_post().
 *
 * Flow lifetime.  After mx_flow_take() the platform flow belongs to the core
 * until ops->release(): the core calls ops->shutdown() at most once per
 * direction and ops->release() exactly once, after the last completion it
 * was owed has arrived.  Each direction has at most one operation
 * outstanding (one read from the app, one write to the app), and the core
 * holds at most MX_CREDIT bytes per direction: that and the two socket
 * buffers (MX_SOCKBUF each) are all a flow can take while proxyd stalls.
 */
#ifndef LOCALCAP_MX_CORE_H
#define LOCALCAP_MX_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "ispec.h"

/* Bytes the core buffers per flow and direction (its byte credit). */
#define MX_CREDIT		(64u * 1024)
/* SO_SNDBUF/SO_RCVBUF asked for on the core's end of a flow socket. */
#define MX_SOCKBUF		(64 * 1024)
/* Seconds between reading proxyd's end of a flow (after the app's own end)
 * and telling the app, to learn whether proxyd died (then: an error, not an
 * end).  A full close while the app still sends is an error at once. */
#define MX_EOF_GRACE		0.02
/* Flows at once; over it a new flow is left to the system (counted). */
#define MX_MAX_FLOWS		8192
/* Remote endpoints one app UDP socket may reach through us at once. */
#define MX_UDP_MAX_REMOTES	64
/* Largest datagram carried. */
#define MX_DGRAM_MAX		65535
/* Datagrams handed to one ops->read completion at most. */
#define MX_UDP_BATCH		64
/* audit_token_t is eight 32-bit words. */
#define MX_AUDIT_TOKEN_LEN	32

enum mx_transport { MX_TCP = 1, MX_UDP = 2 };

struct mx_endpoint {
	uint8_t		family;		/* 4 or 6; 0: unknown */
	uint8_t		addr[16];	/* IPv4 in the first 4 bytes */
	uint16_t	port;		/* host order */
};

/* What the platform knows of the process behind an audit token. */
struct mx_proc {
	uint32_t	pid;
	uint32_t	pidversion;	/* tells a reused pid apart */
	uint32_t	uid;
	uint32_t	gid;
	char		path[1024];	/* executable path; "" if unknown */
	char		signing_id[256];/* code signing identifier; "" if none */
	/* Signed by localcap's team (the platform checks the signature,
	 * not just the identifier, which anyone may choose). */
	bool		localcap_signed;
};

struct mx_flow_meta {
	enum mx_transport	transport;
	uint8_t			audit_token[MX_AUDIT_TOKEN_LEN];
	struct mx_endpoint	local;	/* the app's end; TCP: often unknown */
	struct mx_endpoint	remote;	/* TCP: the destination; UDP: the first */
};

struct mx_dgram {
	const void		*data;
	size_t			 len;
	struct mx_endpoint	 remote;	/* where the app sent it */
};

struct mx_flow;

/*
 * The platform, as a table of functions (the shim's on macOS, the
 * simulator's on Linux).  pflow is the platform's flow object.  Every
 * operation completes later, through the entry point named, on the loop.
 */
struct mx_platform {
	void	*ctx;
	/* audit token -> process; 0, or -1 if the process is gone. */
	int	(*proc_info)(void *ctx, const uint8_t *token, size_t len,
		    struct mx_proc *out);
	/* openWithLocalEndpoint: -> mx_flow_opened(). */
	void	(*open)(void *ctx, void *pflow, struct mx_flow *);
	/* One read from the app -> mx_tcp_read_done() (at most max bytes) or
	 * mx_udp_read_done() (datagrams). */
	void	(*read)(void *ctx, void *pflow, size_t max);
	/* One write to the app -> mx_write_done().  UDP: one datagram, from
	 * remote (as sentBy:). */
	void	(*write)(void *ctx, void *pflow, const void *data, size_t len,
		    const struct mx_endpoint *remote);
	/* closeReadWithError: (how MX_SHUT_RD) / closeWriteWithError:
	 * (MX_SHUT_WR); err 0 is an orderly close, else an errno. */
	void	(*shutdown)(void *ctx, void *pflow, int how, int err);
	/* The core is done with pflow: no call about it follows. */
	void	(*release)(void *ctx, void *pflow);
};

#define MX_SHUT_RD	1
#define MX_SHUT_WR	2

struct mx_config {
	const char	*flow_sock;	/* proxyd's flow.sock */
	bool		 fail_closed;	/* no proxyd: refuse, not pass */
	/* Never intercepted, whatever the spec: localcap's own users and
	 * processes (besides those signed by localcap and proxyd's pid, which
	 * the core learns from flow.sock). */
	const uint32_t	*own_uids;
	size_t		 n_own_uids;
	const uint32_t	*own_pids;
	size_t		 n_own_pids;
	size_t		 proc_cache_size;	/* 0: MX_PROC_CACHE_DEFAULT */
};

struct mx_stats {
	uint64_t	flows_seen;		/* mx_core_decide calls */
	uint64_t	flows_intercepted;
	uint64_t	flows_passed;		/* spec said no */
	uint64_t	flows_own;		/* localcap's own: never */
	uint64_t	flows_no_proxyd;	/* proxyd down: passed or refused */
	uint64_t	flows_no_process;	/* token unknown: passed */
	uint64_t	flows_over_limit;	/* MX_MAX_FLOWS reached */
	uint64_t	flows_active;		/* taken and not yet released */
	uint64_t	udp_subflows;		/* NewFlows made for UDP remotes */
	uint64_t	dgrams_dropped;
	uint64_t	bytes_from_app;
	uint64_t	bytes_to_app;
	uint64_t	buffered;		/* bytes held now, all flows */
	uint64_t	buffered_max;		/* the most ever held at once */
	uint64_t	flow_buffered_max;	/* the most one flow held */
	uint64_t	proc_cache_hits;
	uint64_t	proc_cache_misses;
	uint64_t	proxyd_losses;
	uint64_t	resets_from_proxyd;	/* FlowClosed "reset": the flow
						 * cut, the app told ECONNRESET */
};

struct mx_core;

/* NULL and errno on failure.  Connects to flow.sock at once and keeps
 * reconnecting (common/ipc.c's connector). */
struct mx_core	*mx_core_new(struct ev_loop *, const struct mx_platform *,
		    const struct mx_config *);
/* Aborts every flow (each still gets its release) and disconnects. */
void		 mx_core_free(struct mx_core *);

/* Replace the intercept spec (common/ispec.h; names match the executable's
 * base name).  0, or -1 with *err filled and the old spec kept.  Any
 * thread. */
int		 mx_core_set_spec(struct mx_core *, const char *text,
		    struct ispec_error *err);

/*
 * Should this flow be intercepted?  Any thread, synchronously (this is
 * handleNewFlow:'s answer).  1: yes, and *proc is filled (hand both to
 * mx_flow_take on the loop); 0: leave it to the system.  -1: refuse it
 * (fail-closed without proxyd): the platform closes it with an error.
 */
int		 mx_core_decide(struct mx_core *, const struct mx_flow_meta *,
		    struct mx_proc *proc);

/* Take a flow mx_core_decide() said yes to (loop thread).  From here on
 * the core owns pflow until ops->release(pflow), which it always calls,
 * possibly before returning. */
void		 mx_flow_take(struct mx_core *, void *pflow,
		    const struct mx_flow_meta *, const struct mx_proc *);

/* Completions (loop thread). */
void	mx_flow_opened(struct mx_flow *, int err);
/* len 0 and err 0: the app closed its write side (EOF). */
void	mx_tcp_read_done(struct mx_flow *, const void *data, size_t len,
	    int err);
/* n 0 and err 0: the app closed the socket. */
void	mx_udp_read_done(struct mx_flow *, const struct mx_dgram *, size_t n,
	    int err);
void	mx_write_done(struct mx_flow *, int err);

/* Run fn(core, arg) on the loop thread, soon.  Any thread.  -1 (ENOMEM)
 * if it could not be queued. */
int	mx_core_post(struct mx_core *, void (*fn)(struct mx_core *, void *),
	    void *arg);

const struct mx_stats	*mx_core_stats(const struct mx_core *);
/* proxyd connected and handshaken. */
bool			 mx_core_connected(const struct mx_core *);

#endif
