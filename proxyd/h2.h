/*
 * The HTTP/2 protocol layer of one intercepted connection (RFC 9113), as
 * nghttpx and mitmproxy build it: a libnghttp2 server session faces the
 * app (the client leg), a client session faces the origin (the upstream
 * leg), and every client stream is relayed as one upstream stream of its
 * own (stream ids remapped).  It is sans-I/O like the TLS engine: the
 * transport feeds it each leg's plaintext (h2_feed), writes what it has
 * for each leg (h2_output / h2_output_done), and passes the time in; it
 * never touches a socket or a clock.
 *
 * Back-pressure runs end to end (nghttpx's model): automatic WINDOW_UPDATE
 * is off, and the bytes a peer sent are handed back to its window
 * (nghttp2_session_consume) only once they have been written to the other
 * leg (h2_output_done), so what waits inside the layer is bounded by the
 * windows we advertise, and a slow reader slows the sender on the other
 * leg instead of growing proxyd's memory.  Every allocation, nghttp2's
 * own included, is capped per connection (mem_limit) and charged, exactly,
 * to proxyd's memory budget (cfg.budget, membudget.h).  When that budget
 * is tight, a leg whose DATA waits in the layer is not read until it has
 * gone out (h2_want_read), empty buffers are freed, and a body stops
 * being recorded, marked so: the flow slows down, nothing is dropped.
 *
 * Each stream is one exchange for the recorder (cfg.emit, the same
 * struct store_http HTTP/1 exchanges use, with http_version "HTTP/2.0",
 * trailers and a gRPC summary), emitted once both legs are done with it.
 *
 * After every call the caller should look at both legs' output: input on
 * one leg routinely produces output on both (a request goes upstream, a
 * WINDOW_UPDATE goes back).
 */
#ifndef LOCALCAP_PROXYD_H2_H
#define LOCALCAP_PROXYD_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxyd/store.h"

struct membudget;

enum h2_leg {
	H2_CLIENT = 0,		/* the app; proxyd is its server */
	H2_UPSTREAM = 1,	/* the origin; proxyd is its client */
};

/* The preface a prior-knowledge h2c client opens with (RFC 9113 §3.4). */
#define H2_PREFACE	"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN	24

#define H2_DEFAULT_MAX_STREAMS		100
#define H2_DEFAULT_STREAM_WINDOW	(1024 * 1024)
#define H2_DEFAULT_CONN_WINDOW		(2 * 1024 * 1024)
#define H2_DEFAULT_MAX_HEADER_LIST	(64 * 1024)
#define H2_DEFAULT_MAX_FIELDS		128
#define H2_DEFAULT_STALL_US		(60ULL * 1000 * 1000)
#define H2_DEFAULT_MEM_LIMIT		(24 * 1024 * 1024)
#define H2_DEFAULT_RECORD_BUDGET	(8 * 1024 * 1024)
/* Control frames (PING, SETTINGS, PRIORITY, empty DATA) a peer may send:
 * a burst, then so many per second. */
#define H2_DEFAULT_CTRL_BURST		1000
#define H2_DEFAULT_CTRL_RATE		100

struct h2_config {
	const char	*scheme;	/* when a request has no :scheme */
	const char	*default_authority;	/* …no :authority nor Host */
	uint64_t	 flow_id;	/* for log lines */
	size_t		 body_cap;	/* body bytes recorded per side */
	size_t		 record_budget;	/* body bytes recorded in all the
					 * connection's open streams */
	uint32_t	 max_streams;	/* concurrent streams of the client */
	uint32_t	 stream_window;	/* advertised on both legs */
	uint32_t	 conn_window;
	/* A header (or trailer) block counts 32 bytes per field plus its
	 * name and value (the HPACK accounting of RFC 9113 §6.5.2), so a
	 * block that decompresses to much more than it weighs on the wire
	 * is refused as soon as it crosses the limit. */
	size_t		 max_header_list;
	size_t		 max_fields;
	uint64_t	 stall_us;	/* a stream with data that cannot move
					 * for this long is reset */
	size_t		 mem_limit;	/* all of the connection's memory */
	/* proxyd's memory budget (borrowed; NULL: none): every byte the
	 * connection allocates is charged to it as well, recorded bodies
	 * at its soft tier. */
	struct membudget *budget;
	uint32_t	 ctrl_burst, ctrl_rate;
	/* Called once per stream; h and what it points to live only during
	 * the call. */
	void		(*emit)(void *arg, const struct store_http *h);
	void		*arg;
};

struct h2_stats {
	uint64_t	 streams;	/* client streams opened */
	uint64_t	 emitted;	/* exchanges recorded */
	uint64_t	 refused;	/* streams refused or reset by proxyd */
	uint64_t	 stalled;	/* streams reset for a stalled window */
	uint64_t	 throttled;	/* times a leg was left unread because
					 * proxyd's memory budget was tight */
	uint64_t	 budget_cut;	/* bodies recorded truncated for a
					 * memory budget */
	uint32_t	 active;	/* streams now open */
	uint32_t	 max_active;
	size_t		 mem;		/* bytes allocated now */
	size_t		 mem_peak;
	size_t		 buffered;	/* DATA bytes waiting for the other leg */
	size_t		 buffered_peak;
};

struct h2;

/* Fills in the defaults. */
void		 h2_config_default(struct h2_config *cfg);
/*
 * A new connection; zero fields of cfg take the defaults.  NULL (with a
 * line in err) when out of memory.  The client leg's SETTINGS are held
 * back until the upstream's arrive, so that what we advertise (extended
 * CONNECT) can follow the origin's.
 */
struct h2	*h2_new(const struct h2_config *cfg, char *err, size_t errlen);
/*
 * Plaintext that arrived on a leg, all of it consumed (flow control bounds
 * what a peer may send).  0, or -1 once the connection is failing (a peer
 * broke the protocol or flooded us): what is still in the output (GOAWAY)
 * should be written, then the flow closed; h2_error() says why.
 */
int		 h2_feed(struct h2 *c, enum h2_leg from, const uint8_t *buf,
		    size_t len, uint64_t now_us);
/* That leg's peer closed its side (or the transport failed it). */
void		 h2_eof(struct h2 *c, enum h2_leg from, uint64_t now_us);
/*
 * What should be written to a leg now: *p and the length (0: nothing).
 * Valid until the next call on c.  Tell how much was written with
 * h2_output_done().
 */
size_t		 h2_output(struct h2 *c, enum h2_leg to, const uint8_t **p);
void		 h2_output_done(struct h2 *c, enum h2_leg to, size_t n,
		    uint64_t now_us);
/*
 * Whether the layer wants more input from a leg now.  False too while
 * proxyd's memory budget is tight and DATA from that leg waits in the
 * layer, none the other way (so the other leg is read, and the window
 * updates that drain it keep coming): it turns true again once those
 * bytes went out, or DATA waits for that leg, through calls on c.
 */
bool		 h2_want_read(struct h2 *c, enum h2_leg from);
/* Both legs are finished and their output written: close the flow. */
bool		 h2_done(const struct h2 *c);
/*
 * Nothing more will ever be written to that leg (its session is over, or
 * its peer or the connection failed) and its output is out: half-close it.
 */
bool		 h2_out_done(struct h2 *c, enum h2_leg to);
/* Bytes the layer holds now (DATA waiting, output ready). */
size_t		 h2_held(const struct h2 *c);
/* When h2_tick() should run next (0: no deadline). */
uint64_t	 h2_next_deadline(const struct h2 *c);
/* Reaps streams stalled past their deadline. */
void		 h2_tick(struct h2 *c, uint64_t now_us);
/* Why the connection failed, or NULL. */
const char	*h2_error(const struct h2 *c);
/* Whether the upstream advertised extended CONNECT (RFC 8441). */
bool		 h2_upstream_connect_protocol(const struct h2 *c);
void		 h2_get_stats(const struct h2 *c, struct h2_stats *st);
/*
 * The flow is over: streams still open are recorded as incomplete with
 * why (NULL: "connection closed"), then everything is freed.  NULL is
 * fine.
 */
void		 h2_free(struct h2 *c, uint64_t now_us, const char *why);

/*
 * gRPC message framing (5 bytes: compressed flag, 32-bit length), tracked
 * over a body fed in any split.  Exposed for tests.
 */
#define H2_GRPC_SIZES	16
struct h2_grpc_frames {
	uint64_t	 messages;	/* complete or started */
	uint64_t	 compressed;
	uint32_t	 sizes[H2_GRPC_SIZES];	/* of the first messages */
	uint8_t		 hdr[5];
	uint8_t		 hdr_len;
	uint64_t	 remaining;	/* payload bytes of the current one */
};
void		 h2_grpc_feed(struct h2_grpc_frames *g, const uint8_t *p,
		    size_t len);
/* Whether the body ended cleanly between messages. */
bool		 h2_grpc_complete(const struct h2_grpc_frames *g);

#endif
