/*
 * The HTTP/1.1 observer of one TCP flow: proxyd's HTTP/1 layer
 * (layer_http1.c) hands it a view of every byte that passes each way
 * (plain HTTP, or the plaintext of an intercepted TLS flow), and it
 * records each request with its response as one struct store_http.  It
 * never changes, holds back or produces a byte of the stream: observation
 * is a side line of the relay.
 *
 * Two incremental parsers (http.h), one per direction; requests wait in a
 * FIFO for their responses (keep-alive, pipelining), and the response
 * parser is told each request's method (HEAD, CONNECT change framing).
 * Anything the parsers refuse ends observation of the flow, never the flow:
 * what was pending is recorded with the reason and the relay carries on
 * byte for byte.  An Upgrade / CONNECT exchange is recorded, then nothing
 * after it is parsed.
 *
 * Memory per flow is bounded: the parsers' header limits, body_cap per
 * body kept, and at most max_pending requests waiting for a response.
 */
#ifndef LOCALCAP_PROXYD_HTTPOBS_H
#define LOCALCAP_PROXYD_HTTPOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxyd/store.h"

enum httpobs_dir {
	HTTPOBS_CLIENT = 0,	/* app -> server: requests */
	HTTPOBS_SERVER = 1,	/* server -> app: responses */
};

#define HTTPOBS_DEFAULT_MAX_PENDING	16

struct membudget;

struct httpobs_config {
	const char	*scheme;	/* "http" or "https" */
	const char	*default_host;	/* no Host field: SNI or "addr:port" */
	size_t		 body_cap;	/* body bytes kept per side */
	/*
	 * proxyd's memory budget (membudget.h), or NULL: body memory is
	 * charged to it as it grows; a body it has no room for is kept
	 * truncated and marked (store_http.*_body_budget_cut).
	 */
	struct membudget *budget;
	size_t		 max_pending;	/* requests awaiting a response */
	uint64_t	 flow_id;	/* for log lines */
	/* Called once per exchange; h and what it points to live only
	 * during the call. */
	void		(*emit)(void *arg, const struct store_http *h);
	void		*arg;
};

struct httpobs;

/* NULL when out of memory (the flow is then simply not observed). */
struct httpobs	*httpobs_new(const struct httpobs_config *cfg);
/*
 * Bytes that went from one side to the other, in order, in any split.
 * now_us is CLOCK_REALTIME.  0 while observing; -1 once observation has
 * stopped (a parse error, an upgrade): pending exchanges have been emitted
 * and every later call is a no-op returning -1.
 */
int		 httpobs_feed(struct httpobs *o, enum httpobs_dir dir,
		    const uint8_t *buf, size_t len, uint64_t now_us);
/* That side's stream ended (ends a read-until-close response).  As feed. */
int		 httpobs_eof(struct httpobs *o, enum httpobs_dir dir,
		    uint64_t now_us);
/* Exchanges emitted so far. */
uint32_t	 httpobs_count(const struct httpobs *o);
/* Whether observation has stopped. */
bool		 httpobs_stopped(const struct httpobs *o);
/*
 * The flow is over: what is still pending is emitted as incomplete, with
 * why (how the flow ended, e.g. "connect failed"; NULL: it closed), then
 * everything is freed.  NULL is fine.
 */
void		 httpobs_free(struct httpobs *o, uint64_t now_us,
		    const char *why);

#endif
