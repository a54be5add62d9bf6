/*
 * The HTTP/1.x protocol layer (layer.h): a transparent one.  Every byte
 * that comes in from one side goes out to the other unchanged; on the way
 * httpobs.c parses both directions and reports each exchange to the
 * recorder.  On plain TCP the pump's ring buffers hold the bytes and the
 * layer only observes them; behind TLS the plaintext passes through one
 * buffer per direction here, of one record (PLAIN_CHUNK) at most, and the
 * next is taken only once the last went out: memory exists only while a
 * record is on its way, and flow control stays end to end.
 *
 * Input the parser refuses stops observation (what was pending is recorded
 * with the reason), never the flow: the bytes keep flowing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/httpobs.h"
#include "proxyd/layer.h"

/* One TLS record's plaintext: what in_space offers at a time. */
#define PLAIN_CHUNK	16384

/* Bytes from one side on their way to the other. */
struct pbuf {
	uint8_t		*data;		/* PLAIN_CHUNK, only while it holds bytes */
	size_t		 off;		/* first byte not yet out */
	size_t		 len;		/* bytes left to go out */
};

struct http1 {
	struct layer	 l;		/* first */
	struct httpobs	*obs;		/* NULL once observation stopped */
	struct pbuf	 buf[2];	/* indexed by the side they came from */
	unsigned	 eof[2];	/* that side's stream ended */
};

static struct http1 *
h1(struct layer *l)
{
	return (struct http1 *)(void *)l;
}

static const struct http1 *
h1c(const struct layer *l)
{
	return (const struct http1 *)(const void *)l;
}

static enum httpobs_dir
dir(enum layer_side from)
{
	return from == LAYER_CLIENT ? HTTPOBS_CLIENT : HTTPOBS_SERVER;
}

/* Observation is over (bad input, an upgrade); the bytes go on. */
static void
stop(struct http1 *h, uint64_t now_us)
{
	httpobs_free(h->obs, now_us, NULL);
	h->obs = NULL;
}

static int
http1_observe(struct layer *l, enum layer_side from, const uint8_t *p,
    size_t n, uint64_t now_us)
{
	struct http1 *h = h1(l);

	if (h->obs == NULL)
		return -1;
	if (httpobs_feed(h->obs, dir(from), p, n, now_us) == -1) {
		stop(h, now_us);
		return -1;
	}
	return 0;
}

static int
http1_observe_eof(struct layer *l, enum layer_side from, uint64_t now_us)
{
	struct http1 *h = h1(l);

	if (h->obs == NULL)
		return -1;
	if (httpobs_eof(h->obs, dir(from), now_us) == -1) {
		stop(h, now_us);
		return -1;
	}
	return 0;
}

static size_t
http1_in_space(struct layer *l, enum layer_side from, uint8_t **p)
{
	struct pbuf *b = &h1(l)->buf[from];

	*p = NULL;
	if (b->len > 0 || h1(l)->eof[from])
		return 0;	/* the last record has not gone out yet */
	if (b->data == NULL && (b->data = malloc(PLAIN_CHUNK)) == NULL) {
		snprintf(l->why, sizeof(l->why), "out of memory");
		return 0;
	}
	b->off = 0;
	*p = b->data;
	return PLAIN_CHUNK;
}

static int
http1_in_commit(struct layer *l, enum layer_side from, size_t n,
    uint64_t now_us)
{
	struct http1 *h = h1(l);
	struct pbuf *b = &h->buf[from];

	if (b->data == NULL || n == 0 || n > PLAIN_CHUNK) {
		free(b->data);		/* nothing came: give the room back */
		b->data = NULL;
		b->off = b->len = 0;
		return 0;
	}
	(void)http1_observe(l, from, b->data, n, now_us);
	b->off = 0;
	b->len = n;
	return 0;
}

static int
http1_in_eof(struct layer *l, enum layer_side from, uint64_t now_us)
{
	h1(l)->eof[from] = 1;
	(void)http1_observe_eof(l, from, now_us);
	return 0;
}

static const uint8_t *
http1_out_peek(struct layer *l, enum layer_side to, size_t *len)
{
	struct pbuf *b = &h1(l)->buf[!to];

	*len = b->len;
	return b->len > 0 ? b->data + b->off : NULL;
}

static void
http1_out_consume(struct layer *l, enum layer_side to, size_t n,
    uint64_t now_us)
{
	struct pbuf *b = &h1(l)->buf[!to];

	(void)now_us;
	if (n > b->len)
		n = b->len;
	b->off += n;
	b->len -= n;
	if (b->len == 0) {
		free(b->data);
		b->data = NULL;
		b->off = 0;
	}
}

static bool
http1_out_done(const struct layer *l, enum layer_side to)
{
	const struct http1 *h = h1c(l);

	return h->eof[!to] && h->buf[!to].len == 0;
}

static size_t
http1_held(const struct layer *l)
{
	const struct http1 *h = h1c(l);

	return h->buf[0].len + h->buf[1].len;
}

static void
http1_free(struct layer *l, uint64_t now_us, const char *cut)
{
	struct http1 *h = h1(l);

	if (l == NULL)
		return;
	httpobs_free(h->obs, now_us, cut);
	free(h->buf[0].data);
	free(h->buf[1].data);
	free(h);
}

static const struct layer_ops http1_ops = {
	.name = "http/1",
	.in_space = http1_in_space,
	.in_commit = http1_in_commit,
	.in_eof = http1_in_eof,
	.out_peek = http1_out_peek,
	.out_consume = http1_out_consume,
	.out_done = http1_out_done,
	.observe = http1_observe,
	.observe_eof = http1_observe_eof,
	.held = http1_held,
	.free = http1_free,
};

struct layer *
layer_http1_new(const struct layer_env *env)
{
	struct httpobs_config c;
	struct http1 *h;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	memset(&c, 0, sizeof(c));
	c.scheme = env->scheme;
	c.default_host = env->default_host;
	/* httpobs takes 0 for its default: 1 byte is as good as none when
	 * the store keeps none. */
	c.body_cap = env->body_cap > 0 ? env->body_cap : 1;
	c.flow_id = env->flow_id;
	c.emit = env->rec.exchange;
	c.arg = env->rec.arg;
	if ((h->obs = httpobs_new(&c)) == NULL) {
		free(h);
		return NULL;
	}
	h->l.ops = &http1_ops;
	return &h->l;
}
