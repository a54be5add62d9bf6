/*
 * What the files of the HTTP/2 layer share (h2.h is the interface):
 *	h2.c		setup, the I/O entry points, deadlines
 *	h2_stream.c	streams: the nghttp2 callbacks of both sessions, the
 *			data provider, resets and GOAWAYs mapped across
 *	h2_util.c	the memory budget, header lists, buffers, gRPC
 *			framing and the record of a stream
 * Nothing here is for use outside them.
 */
#ifndef LOCALCAP_PROXYD_H2_INT_H
#define LOCALCAP_PROXYD_H2_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <nghttp2/nghttp2.h>

#include "proxyd/h2.h"

struct membudget;

#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST(head);					\
	    (var) && ((tvar) = TAILQ_NEXT(var, field), 1);		\
	    (var) = (tvar))
#endif

#define OUT_HIGH	(64 * 1024)	/* output kept ready per leg */
#define OUT_HIGH_TIGHT	(16 * 1024)	/* …while proxyd's budget is tight */
/*
 * An empty output buffer bigger than this is freed (smaller ones are kept
 * for the next bytes; a stream's, however large, until the stream ends),
 * and any empty buffer while proxyd's budget is tight.
 */
#define BUF_KEEP	(2 * OUT_HIGH)
/* "Tight": proxyd's budget could not take this much for buffers now. */
#define BUDGET_MARGIN	(64 * 1024)
/* Rapid reset (CVE-2023-44487): the client's RST_STREAMs nghttp2 takes
 * at once, then per second, before it ends the connection itself. */
#define RESET_BURST	1000
#define RESET_RATE	33

/*
 * The connection's memory, nghttp2's included: capped per connection
 * (limit), and every byte also charged to proxyd's memory budget, exactly
 * (the size of each allocation is kept in front of it).
 */
struct h2mem {
	size_t	used, peak, limit;
	struct membudget *budget;	/* proxyd's, or NULL */
	bool	refused;	/* an allocation went over the limit */
	bool	nomem;		/* malloc itself failed */
};

struct hlist {
	struct http_field	*f;	/* each name+value one allocation */
	size_t			 n, cap;
	size_t			 weight;	/* 32 + name + value, summed */
};

struct dbuf {
	uint8_t		*p;
	size_t		 off, len, cap;
};

/* What a side of a stream kept for the record (cap charged to the budget). */
struct rbody {
	uint8_t		*p;
	size_t		 len, cap;
	uint64_t	 size;
	bool		 budget_cut;	/* kept less: a memory budget was spent */
};

struct h2;

/*
 * Directions: UP is client -> upstream (the request), DOWN is upstream ->
 * client (the response).  Index 0/1 of the arrays below.
 */
enum { UP = 0, DOWN = 1 };

struct stream {
	TAILQ_ENTRY(stream)	 e;
	struct h2		*c;
	int32_t			 csid, usid;	/* 0: none (yet) */
	uint32_t		 seq;
	bool			 c_closed;	/* nghttp2 closed it on the client leg */
	bool			 u_closed;	/* …on the upstream leg (or never opened) */
	bool			 dead;		/* on the sweep list */
	bool			 emitted;

	struct hlist		 req, req_trl, resp, resp_trl;
	bool			 req_hdrs_done;	/* the request's block is complete */
	bool			 req_too_big, resp_too_big;
	bool			 answered;	/* proxyd answered the client itself */
	bool			 rst_done;	/* NO_ERROR reset sent after the end */
	bool			 resp_final;	/* final response headers came */
	bool			 resp_submitted;/* …and went to the client */
	bool			 resp_sent_end;	/* END_STREAM written to the client */
	bool			 req_sent_end;	/* END_STREAM written upstream */
	bool			 u_sent_headers;/* the request left for upstream */

	/* Per direction: the bytes waiting, the end seen, trailers to
	 * follow, the provider deferred, last time bytes moved on. */
	struct dbuf		 buf[2];
	bool			 end[2];
	bool			 deferred[2];
	bool			 has_provider[2];
	uint64_t		 moved_us[2];

	struct rbody		 rec[2];
	bool			 grpc;
	struct h2_grpc_frames	 gf[2];

	int			 status;
	uint64_t		 req_start_us, req_end_us;
	uint64_t		 resp_start_us, resp_end_us;
	char			 error[160];
};

TAILQ_HEAD(streamq, stream);

/* Bytes to hand back to a session's window once the output is written. */
struct giveback {
	uint64_t	 at;		/* output offset; UINT64_MAX: pending */
	int32_t		 sid;		/* on the other session */
	uint32_t	 n;
};

struct leg {
	nghttp2_session		*s;
	struct dbuf		 out;
	uint64_t		 appended, written;
	struct giveback		*gb;
	size_t			 gb_head, gb_len, gb_cap;
	bool			 failed;	/* fatal error: only flush */
	bool			 eof;		/* its peer closed */
	bool			 goaway_in;	/* received a GOAWAY */
	/* control-frame token bucket */
	uint64_t		 tokens_milli;
	uint64_t		 tokens_us;
	uint64_t		 rst_in;	/* RST_STREAMs it sent us */
	char			 liberr[120];	/* nghttp2's last complaint */
};

struct h2 {
	struct h2_config	 cfg;
	char			 scheme[8];
	char			 default_authority[300];
	struct h2mem		 mem;
	nghttp2_mem		 ngmem;
	struct leg		 leg[2];
	struct streamq		 streams;	/* open, in client order */
	struct streamq		 dead;
	uint32_t		 nstreams, next_seq;
	int32_t			 last_csid;	/* the client's newest stream */
	bool			 client_settings_sent;
	bool			 up_settings_seen;
	bool			 up_connect_protocol;
	bool			 failed_all;	/* h2_fail_both ran: streams are
						 * freed by h2_free only */
	size_t			 recorded;	/* body bytes kept by open streams */
	size_t			 waiting[2];	/* DATA bytes in stream buffers, per
						 * direction (UP, DOWN) */
	bool			 throttled[2];	/* a leg not read for the budget */
	uint64_t		 now_us;
	char			 error[200];
	struct h2_stats		 st;
};

extern const char *const h2_leg_name[2];

/* h2_util.c */
void	 h2_mem_init(struct h2mem *m, nghttp2_mem *ng, size_t limit,
	    struct membudget *budget);
bool	 h2_budget_tight(const struct h2 *c);
void	*h2_mem_alloc(struct h2mem *m, size_t n);
void	 h2_mem_free(struct h2mem *m, void *ptr);
void	*h2_mem_calloc(struct h2mem *m, size_t nmemb, size_t size);
void	*h2_mem_realloc(struct h2mem *m, void *ptr, size_t n);
void	 h2_fail_conn(struct h2 *c, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	 h2_set_error(struct stream *s, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
const char *h2_code_name(uint32_t code);
void	 h2_hlist_clear(struct h2 *c, struct hlist *h);
int	 h2_hlist_add(struct h2 *c, struct hlist *h, const uint8_t *name,
	    size_t nlen, const uint8_t *value, size_t vlen);
const struct http_field *h2_hlist_get(const struct hlist *h, const char *name);
nghttp2_nv *h2_hlist_nv(struct h2 *c, const struct hlist *h);
void	 h2_dbuf_free(struct h2 *c, struct dbuf *b);
int	 h2_dbuf_add(struct h2 *c, struct dbuf *b, const uint8_t *p, size_t n);
void	 h2_dbuf_take(struct dbuf *b, size_t n);
void	 h2_dbuf_trim(struct h2 *c, struct dbuf *b, size_t keep);
void	 h2_buffered_add(struct h2 *c, int dir, size_t n);
void	 h2_buffered_sub(struct h2 *c, int dir, size_t n);
void	 h2_rec_add(struct h2 *c, struct stream *s, int dir, const uint8_t *p,
	    size_t n);
void	 h2_rec_free(struct h2 *c, struct rbody *b);
const char *h2_pseudo(const struct hlist *h, const char *name);
void	 h2_emit(struct h2 *c, struct stream *s);

/* h2_stream.c */
void	 h2_set_callbacks(nghttp2_session_callbacks *cb, enum h2_leg leg);
void	 h2_discard(struct h2 *c, struct stream *s, int dir);
void	 h2_settle(struct h2 *c, struct stream *s);
void	 h2_stream_free(struct h2 *c, struct stream *s);
void	 h2_sweep(struct h2 *c);
void	 h2_rst_client(struct h2 *c, struct stream *s, uint32_t code);
void	 h2_rst_upstream(struct h2 *c, struct stream *s, uint32_t code);
void	 h2_answer_client(struct h2 *c, struct stream *s, int status);
void	 h2_fail_both(struct h2 *c, enum h2_leg culprit, uint32_t code);

#endif
