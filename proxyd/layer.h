/*
 * The protocol-layer seam: what sits between the TLS layer (or the plain
 * TCP pump) and the recorder.  See proxyd/README.md for the whole stack:
 *
 *   transport (relay.c: sockets, deadlines, ring buffers, splice)
 *     detect (relay_detect.c)
 *       TLS (relay_tls.c + the mitm engine: ciphertext <-> plaintext)
 *         protocol layer (this interface: layer_http1.c; HTTP/2 next)
 *           recorder (recorder.c -> store.c)
 *
 * A protocol layer is sans-I/O: it never touches a socket or reads a
 * clock (now_us is passed in, CLOCK_REALTIME microseconds, what the store
 * records), so it is unit-tested and fuzzed alone.  It takes the decrypted
 * bytes of each side, returns the bytes to send to each side (the same
 * ones for an observer such as HTTP/1, re-framed ones for HTTP/2, which
 * runs one nghttp2 session per leg: mem_recv on input, mem_send for
 * output), and reports each exchange it sees to the recorder.
 *
 * Back-pressure: a layer takes input only while it has room, and it has
 * room only while what it owes the other side has gone out (in_space
 * returns 0 otherwise).  The caller reads a side's plaintext only into
 * in_space, so a slow reader on one side stops the writer on the other end
 * to end, and a layer's memory is bounded by what it lets itself hold
 * (an HTTP/1 observer: one record per direction; HTTP/2: the flow-control
 * windows it grants, consuming input only once it went out on the other
 * leg).
 *
 * Driving a layer (relay_tls.c does exactly this, per side `from`, with
 * to = !from):
 *
 *	flush:  while ((p = out_peek(to, &len)), len > 0)
 *			out_consume(to, <what the TLS leg towards `to` took>)
 *	read:   while (out is flushed && (n = in_space(from, &p)) > 0)
 *			in_commit(from, <plaintext read into p, <= n>), flush
 *	end:    the TLS stream from `from` ended -> in_eof(from); once
 *		out_done(to), close_notify towards `to`.
 *
 * Any op returning -1 means the layer cannot go on (a peer broke the
 * protocol beyond repair): the flow ends, its reason in layer->why.  A
 * transparent observer never fails: bad input only stops its looking.
 */
#ifndef LOCALCAP_PROXYD_LAYER_H
#define LOCALCAP_PROXYD_LAYER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct membudget;
struct store_http;

enum layer_side {
	LAYER_CLIENT = 0,	/* the captured application (== MITM_CLIENT) */
	LAYER_SERVER = 1,	/* the real server (== MITM_UPSTREAM) */
};

/*
 * The recorder as a layer sees it: where exchanges go as they complete
 * (recorder.c writes them to the flow's row in the store).  Never blocks:
 * a store that cannot keep up drops, it does not stall the relay.
 */
struct layer_recorder {
	void	(*exchange)(void *arg, const struct store_http *);
	void	*arg;
};

/* What a protocol layer is created with (borrowed; strings copied). */
struct layer_env {
	uint64_t		 flow_id;	/* proxyd's, for logs */
	const char		*scheme;	/* "http", "https" */
	const char		*default_host;	/* a request without a host */
	size_t			 body_cap;	/* bytes of each body recorded */
	struct membudget	*budget;	/* body memory charged here */
	struct layer_recorder	 rec;
};

struct layer;

struct layer_ops {
	const char	*name;		/* "http/1" ... */
	/*
	 * Room for plaintext from `from`, at *p: 0 while the layer holds all
	 * it may (back-pressure).  Then commit how many bytes were put there
	 * (0: none came; the layer may give the room back).
	 */
	size_t	(*in_space)(struct layer *, enum layer_side from, uint8_t **p);
	int	(*in_commit)(struct layer *, enum layer_side from, size_t n,
		    uint64_t now_us);
	/* `from`'s stream ended (close_notify, or EOF). */
	int	(*in_eof)(struct layer *, enum layer_side from, uint64_t now_us);
	/* Bytes for `to`, then how many of them went out. */
	const uint8_t *(*out_peek)(struct layer *, enum layer_side to,
		    size_t *len);
	void	(*out_consume)(struct layer *, enum layer_side to, size_t n,
		    uint64_t now_us);
	/* The stream towards `to` is over and flushed: half-close it. */
	bool	(*out_done)(const struct layer *, enum layer_side to);
	/*
	 * A transparent layer (its output is its input, unchanged) also
	 * takes bytes to look at without holding them, as the plain TCP pump
	 * moves them through its own ring buffers.  -1: it stopped looking
	 * (bad input); the caller frees it and relays on.  NULL for layers
	 * that re-frame (HTTP/2): the pump must move their bytes through
	 * in_space/out_peek as relay_tls.c does.
	 */
	int	(*observe)(struct layer *, enum layer_side from, const uint8_t *p,
		    size_t n, uint64_t now_us);
	int	(*observe_eof)(struct layer *, enum layer_side from,
		    uint64_t now_us);
	/* Bytes held now, for proxyd's status and memory accounting. */
	size_t	(*held)(const struct layer *);
	/*
	 * The flow ends.  cut: NULL for an orderly end, else why it was cut
	 * (an unfinished exchange is recorded with it).  Frees the layer.
	 */
	void	(*free)(struct layer *, uint64_t now_us, const char *cut);
};

/* Every layer starts with this (embed it first; container via cast). */
struct layer {
	const struct layer_ops	*ops;
	char			 why[160];	/* after an op returned -1 */
};

/* layer_http1.c: HTTP/1.x observed (httpobs.c), bytes passed unchanged. */
struct layer	*layer_http1_new(const struct layer_env *);
/* layer_h2.c: HTTP/2 terminated on each leg, streams relayed (h2.c). */
struct layer	*layer_h2_new(const struct layer_env *);

#endif
