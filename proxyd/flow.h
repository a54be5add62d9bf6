/*
 * What proxyd knows about one flow, and the ring of finished flows.
 *
 * A flow source (netstackd, the macOS backend, later proxyd's own
 * explicit-proxy listener) describes a flow with a NewFlow; flow_meta is that
 * description once checked.  While a flow runs, its handler (the raw relay in
 * relay.c, TLS/HTTP) fills a flow_record; when it ends the flow store has
 * it, and a bounded in-memory ring keeps a copy where one is configured
 * (tests).  Plain fields, no pointers into live state.
 */
#ifndef LOCALCAP_PROXYD_FLOW_H
#define LOCALCAP_PROXYD_FLOW_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "owner.h"


/* How many of the first bytes of each direction a record keeps. */
#define FLOW_FIRST_BYTES	256

enum flow_transport {
	FLOW_TCP = 1,
	FLOW_UDP = 2,
};

/* Why a flow ended; one per record. */
enum flow_end {
	FLOW_END_NONE = 0,		/* still running */
	FLOW_END_CLOSED,		/* both sides finished cleanly */
	FLOW_END_APP_RESET,		/* the application reset or failed */
	FLOW_END_UPSTREAM_RESET,	/* the server reset or failed */
	FLOW_END_CONNECT_FAILED,	/* error says why (ECONNREFUSED...) */
	FLOW_END_CONNECT_TIMEOUT,
	FLOW_END_IDLE,			/* idle timeout */
	FLOW_END_SOURCE_CLOSED,		/* the source ended it (FlowClosed) */
	FLOW_END_SHUTDOWN,		/* proxyd stopping */
	FLOW_END_INTERNAL,		/* proxyd could not go on (memory...) */
	FLOW_END_REFUSED,		/* proxyd refused it: over a flow cap, or a
					 * QUIC attempt (--quic fallback) */
};

/* A flow as its source described it, validated. */
struct flow_meta {
	uint64_t		source_flow_id;	/* unique per source connection */
	enum flow_transport	transport;
	struct endpoint	src;		/* the application */
	struct endpoint	dst;		/* where it meant to go */
	struct owner		owner;		/* common/owner.h */
	uint64_t		start_us;	/* CLOCK_REALTIME */
	/*
	 * The host name the application asked for, when its source knows
	 * one (proxyd's explicit-proxy listener: CONNECT's or the URL's
	 * host); "" otherwise.  Used where a TLS client sends no SNI.
	 */
	char			host[256];
	/*
	 * The executable's path, when its source knows it (the macOS
	 * extension: NewFlow.owner.exe), on the heap; NULL otherwise.  The
	 * meta owns it: relay_start takes it, the ring keeps it, and
	 * flow_meta_clear frees it.
	 */
	char			*exe;
};

/*
 * A TCP flow as the source's own stack saw it on the application's side,
 * from its FlowClosed.  Packets are segments of any kind (handshake, pure
 * ACKs, the app's own retransmissions included); retransmits are the
 * segments the source had to send the app again.
 */
struct flow_tcp_stats {
	uint64_t	packets_from_app;
	uint64_t	packets_to_app;
	uint64_t	retransmits;
	uint32_t	rtt_us;		/* smoothed RTT to the app; 0: no sample */
};

struct flow_record {
	uint64_t	id;		/* proxyd's, unique per process run */
	struct flow_meta meta;
	uint64_t	end_us;		/* CLOCK_REALTIME; 0 while running */
	uint64_t	connect_us;	/* upstream connect duration; 0 if none */
	uint64_t	bytes_from_app;
	uint64_t	bytes_to_app;
	uint64_t	dgrams_from_app;	/* UDP only */
	uint64_t	dgrams_to_app;
	uint64_t	dgrams_dropped;		/* UDP: a side would block */
	uint16_t	first_from_app_len;
	uint16_t	first_to_app_len;
	uint8_t		first_from_app[FLOW_FIRST_BYTES];
	uint8_t		first_to_app[FLOW_FIRST_BYTES];
	enum flow_end	end;
	int		error;		/* errno behind end, 0 if none */
	char		source_reason[32];	/* FlowClosed's reason, if any */
	/* TCP: what the source reported when the flow closed, if it did. */
	unsigned	has_tcp_stats:1;
	struct flow_tcp_stats tcp_stats;
	/*
	 * TLS, for the ring (the flow store gets every fact): what the flow
	 * was once detected, its SNI, the versions each leg negotiated
	 * (static strings), whether it passed through undecrypted, and the
	 * MITM engine's error (enum mitm_error, 0 none).
	 */
	const char	*protocol;	/* NULL (raw, not inspected), "tls", "dns",
					 * "quic" */
	char		tls_sni[256];
	const char	*tls_version;
	const char	*upstream_tls_version;
	unsigned	tls_passthrough:1;
	unsigned	tls_upstream_verified:1;
	int		tls_error;
};

void	flow_meta_clear(struct flow_meta *);

/* dst as a sockaddr for connect(2); returns its length. */
socklen_t	flow_addr_sockaddr(const struct endpoint *, struct sockaddr_storage *);
/* "192.0.2.1:80", "[2001:db8::1]:443" into buf (always terminated). */
const char	*flow_addr_str(const struct endpoint *, char *buf, size_t len);
const char	*flow_end_str(enum flow_end);
const char	*flow_transport_str(enum flow_transport);

/* Append up to what is left of FLOW_FIRST_BYTES to a record's first bytes. */
void	flow_keep_first(uint8_t *first, uint16_t *len, const void *data, size_t n);

/*
 * Finished flows, oldest evicted first.  flow_ring_push copies a record in.
 * A ring of capacity 0 (proxyd's own: the flow store has every flow) keeps
 * nothing and holds no memory; its pushes count as evicted.
 */
struct flow_ring {
	struct flow_record	*slots;
	size_t			 cap;
	size_t			 head;		/* next slot written */
	size_t			 count;
	uint64_t		 evicted;
};

int	flow_ring_init(struct flow_ring *, size_t cap);
void	flow_ring_free(struct flow_ring *);
void	flow_ring_push(struct flow_ring *, struct flow_record *);
/* i = 0 is the oldest kept; NULL past the end. */
const struct flow_record *flow_ring_get(const struct flow_ring *, size_t i);
/* The kept record of proxyd's flow id, newest first; NULL if evicted. */
struct flow_record *flow_ring_find(struct flow_ring *, uint64_t id);

#endif
