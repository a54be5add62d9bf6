/*
 * proxyd's raw relay: each flow's socket (handed over by a flow source) is
 * joined to a new upstream socket to the flow's original destination, and
 * bytes are pumped both ways on libev until both sides are done.
 *
 * This is what every non-TLS, non-HTTP flow keeps doing, and the path the
 * TLS and HTTP handlers will plug into (they will take over a flow after its
 * first bytes).  TCP: bounded buffers per direction and reading a side only
 * while the other side's buffer has room, so a slow peer slows the other end
 * to end; half-closes and resets propagated; connect and idle timeouts.  UDP:
 * one datagram per message on the flow socket, relayed over a connected UDP
 * socket, expired when idle.  Finished flows are kept as flow_records in a
 * bounded ring (flow.h).  See docs/proxyd-relay.md.
 *
 * Upstream sockets are plain sockets of proxyd's: the capture side must
 * exclude proxyd (by uid/cgroup) so they are never captured again.
 */
#ifndef LOCALCAP_PROXYD_RELAY_H
#define LOCALCAP_PROXYD_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "proxyd/flow.h"
#include "proxyd/quicgate.h"

struct store;
struct membudget;
struct mitm_ctx;
struct hostmatch;

struct relay_config {
	double	connect_timeout;	/* seconds; default 10 */
	double	tcp_idle_timeout;	/* seconds without a byte; default
					 * RELAY_DEFAULT_TCP_IDLE, 0: never */
	double	udp_idle_timeout;	/* default 60 */
	double	dns_idle_timeout;	/* UDP to port 53; default 30 */
	size_t	bufsize;		/* bytes buffered per direction; 128 KiB */
	/*
	 * Finished flows kept in memory (relay_ring), for tests and tools
	 * that look at records without a store; default 0, none: the flow
	 * store has every flow, and 1,024 kept records were 1.6 MiB of
	 * proxyd's resident memory.
	 */
	size_t	ring_size;
	/*
	 * Flows running at once: in all, and from one source address (the
	 * application's, or the explicit-proxy client's).  A flow over
	 * either is refused: its socket reset (closed for UDP), recorded
	 * with end "refused" and the cap it hit.  0: no cap.
	 */
	size_t	max_flows;		/* default RELAY_DEFAULT_MAX_FLOWS */
	size_t	max_flows_per_addr;	/* default RELAY_DEFAULT_MAX_PER_ADDR */
	/*
	 * proxyd's memory budget (membudget.h), borrowed, or NULL: ring
	 * buffers, splice pipes, captured bodies and each flow's state are
	 * charged to it.  When it is spent a ring buffer is RING_SMALL, a
	 * direction copies instead of splicing, a body is recorded
	 * truncated; no flow is cut for it.
	 */
	struct membudget *budget;
	struct store *store;		/* the flow store, or NULL: not recorded */
	/*
	 * TLS interception: with an engine context, a TCP flow whose first
	 * bytes are a ClientHello is decrypted (mitm.h); NULL: every flow is
	 * relayed raw.  A host whose client refused our certificate passes
	 * through for passthrough_ttl seconds (passthrough_max hosts kept).
	 */
	struct mitm_ctx *mitm;
	size_t	passthrough_max;	/* default PASSMAP_DEFAULT_CAP */
	double	passthrough_ttl;	/* default PASSMAP_DEFAULT_TTL */
	/*
	 * --ignore-hosts (hostmatch.h), borrowed: a TCP flow whose address or
	 * host matches is relayed raw from its first byte; a TLS flow whose
	 * SNI matches passes through undecrypted.  NULL: none.
	 */
	const struct hostmatch *ignore;
	/*
	 * A UDP flow that opens with a QUIC client Initial (quicgate.h):
	 * QUIC_MODE_FALLBACK (the default) refuses it with a Version
	 * Negotiation, so that the client falls back to TCP, unless its SNI
	 * matches ignore; QUIC_MODE_PASS relays it.  Both record it as "quic"
	 * with SNI and ALPN.
	 */
	enum quic_mode quic;
	/*
	 * A TCP flow of a source that ends on proxyd's side before the
	 * source's FlowClosed: how long (s) its row waits, not yet marked
	 * complete, for the source's figures; default 2, 0: not at all (they
	 * are still added when they come, while the flow is among the last
	 * 1024 so ended).
	 */
	double	source_wait;
	/*
	 * splice(2): a TCP direction in which nothing is parsed any more (a
	 * raw flow, a TLS passthrough, an --ignore-hosts flow), once its
	 * first bytes are recorded and splice_after bytes have gone that way,
	 * can move socket -> pipe -> socket instead of through its ring
	 * buffer (a pipe of bufsize per such direction: two descriptors more).
	 * RELAY_SPLICE_AUTO (the default) splices only where it measured
	 * faster than copying: from a TCP socket to a Unix one (a download to
	 * netstackd); see docs/proxyd-relay.md.  splice(2) cannot be told
	 * MSG_NOSIGNAL, so relay_new() with splice on ignores SIGPIPE if
	 * nothing handles it.
	 */
	enum relay_splice {
		RELAY_SPLICE_OFF,	/* always copy */
		RELAY_SPLICE_AUTO,	/* TCP -> Unix only */
		RELAY_SPLICE_ALL,	/* every direction that qualifies */
	}	splice;
	size_t	splice_after;		/* bytes one way first; 64 KiB */
};

#define RELAY_DEFAULT_TCP_IDLE		600	/* s: a silent flow's memory comes back */
#define RELAY_DEFAULT_MAX_FLOWS		8192
#define RELAY_DEFAULT_MAX_PER_ADDR	4096

struct relay_stats {
	uint64_t	flows_active;
	uint64_t	flows_total;		/* started */
	uint64_t	flows_refused;		/* bad NewFlow, no upstream socket,
						 * or over a cap */
	uint64_t	flows_over_cap;		/* ... over max_flows(_per_addr) */
	uint64_t	small_rings;		/* ring buffers cut to RING_SMALL
						 * by the memory budget */
	uint64_t	bytes_from_app;		/* of finished and running flows */
	uint64_t	bytes_to_app;
	uint64_t	connect_failed;		/* includes timeouts */
	uint64_t	connect_timeouts;
	uint64_t	resets_from_app;
	uint64_t	resets_from_upstream;
	uint64_t	idle_expired;
	uint64_t	dgrams_dropped;
	size_t		buffered;		/* bytes held now, all flows
						 * (ring buffers and pipes) */
	size_t		buffer_high_water;	/* most one direction ever held */
	uint64_t	tls_intercepted;	/* TLS flows handed to the engine */
	uint64_t	tls_passthrough;	/* TLS flows relayed undecrypted */
	uint64_t	tls_client_rejected;	/* clients that refused our leaf */
	uint64_t	tls_upstream_failed;	/* answered with a 502 or closed */
	uint64_t	splice_dirs;		/* directions moved to a pipe */
	uint64_t	splice_fallbacks;	/* ... that got no pipe: copied on */
	uint64_t	bytes_spliced;		/* both ways, through pipes */
	uint64_t	quic_refused;		/* QUIC attempts refused */
	uint64_t	quic_passed;		/* ... relayed (pass, ignore-hosts) */
};

struct relay;

void	relay_config_default(struct relay_config *);

/* NULL on allocation failure.  The config is copied. */
struct relay	*relay_new(struct ev_loop *, const struct relay_config *);
/* Record flows in this store from now on (NULL: stop recording). */
void		 relay_set_store(struct relay *, struct store *);
/* Intercept TLS with this engine context from now on (NULL: raw only). */
void		 relay_set_mitm(struct relay *, struct mitm_ctx *);
/* Ends every flow (recorded as FLOW_END_SHUTDOWN) and frees. */
void		 relay_free(struct relay *);

/* Called (at most once per loop iteration's worth of events) when the stats change. */
void	relay_set_on_change(struct relay *, void (*)(void *), void *);

/*
 * Asked when a TCP flow is cut towards its application through a Unix
 * stream socket, before that socket is closed: 1 if the flow's source was
 * told of the reset another way (intake.c: FlowClosed{reason "reset"} on
 * flow.sock to the macOS extension, whose AF_UNIX has no MSG_OOB), 0 to
 * send the out-of-band reset marker (netstackd).  docs/proxyd-relay.md.
 */
void	relay_set_on_source_reset(struct relay *,
	    int (*)(void *, const void *source, uint64_t source_flow_id),
	    void *);

/*
 * Start relaying a flow.  Takes fd (a SOCK_STREAM socket for TCP, a
 * SOCK_DGRAM/SOCK_SEQPACKET one for UDP) in every case and the meta's
 * strings.  source identifies the flow source (its flow ids are unique per
 * source) for relay_source_flow_closed().  Returns proxyd's flow id, or 0 if
 * the flow could not be started (logged, counted, fd closed).
 */
uint64_t	relay_start(struct relay *, const void *source,
		    struct flow_meta *, int fd);
/*
 * The same, for a TCP flow of which prefix[0..len) was already read from
 * the application (an explicit-proxy request, rewritten): it goes upstream
 * first and is looked at (TLS, HTTP) as if it had just arrived.
 */
uint64_t	relay_start_prefixed(struct relay *, const void *source,
		    struct flow_meta *, int fd, const void *prefix, size_t len);

/*
 * Refuse a flow before it started (its description was bad): one log line
 * (at most one a second, the next says how many were not logged), fd
 * closed, counted in flows_refused.
 */
void	relay_refuse(struct relay *, int fd, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));


/*
 * The source says a flow ended on its side (FlowClosed).  A UDP flow ends.
 * A TCP flow whose reason is not an orderly one ("closed", "fin" or empty)
 * had its application side cut (reset, timed out...): the upstream is reset.
 * An orderly TCP end needs nothing: the flow socket carries its EOF.  tcp
 * (NULL: the source gave none) are the source's figures of a TCP flow: they
 * go into its record whether it is still running or already ended.
 */
void	relay_source_flow_closed(struct relay *, const void *source,
	    uint64_t source_flow_id, const char *reason,
	    const struct flow_tcp_stats *tcp);

/* The source connection is gone; its flows live on without it. */
void	relay_source_gone(struct relay *, const void *source);

const struct relay_stats	*relay_stats(const struct relay *);
/* Bytes the running TLS flows' engines hold (not in stats.buffered). */
size_t				 relay_tls_held_bytes(const struct relay *);
const struct flow_ring		*relay_ring(const struct relay *);
/* The live record of a running flow, or NULL (for tests and status). */
const struct flow_record	*relay_flow_record(const struct relay *, uint64_t id);

#endif
