/*
 * The HTTP/2 protocol layer (layer.h) over h2.c: a re-framing one.  Each
 * leg's plaintext goes into its own nghttp2 session (h2_feed); what the
 * layer owes each leg comes out of h2_output.  See docs/proxyd-h2.md.
 *
 * Back-pressure: a leg is read only while the layer wants its input and
 * what the layer owes each leg is below one output chunk; beyond that,
 * HTTP/2 flow control bounds what the peers may send (the layer hands
 * window back only once the bytes went out on the other leg).  Its memory
 * is charged to proxyd's budget (env->budget); while that is tight the
 * layer does not want a leg whose DATA waits in it (h2_want_read).
 *
 * A peer that breaks the protocol or floods ends the connection in order:
 * the layer writes its GOAWAYs, then says both legs are done; the reason
 * stays in layer->why for the flow's record, and every stream still open
 * is recorded with it.  Stalled streams are reaped whenever the layer is
 * called past its deadline (an idle connection is the transport's idle
 * timeout's).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proxyd/h2.h"
#include "proxyd/layer.h"
#include "proxyd/membudget.h"

/* The plaintext of one TLS record: what in_space offers at a time. */
#define H2_IN_CHUNK	16384
/* What the layer may owe a leg before it stops reading either. */
#define H2_OUT_LIMIT	(256 * 1024)

struct layer_h2 {
	struct layer	 l;		/* first */
	struct h2	*c;
	struct membudget *budget;	/* charged with this struct */
	uint64_t	 flow_id;
	uint64_t	 next_check_us;	/* stalled streams looked for next */
	uint8_t		 in[H2_IN_CHUNK];
	bool		 logged;
};

static struct layer_h2 *
lh(struct layer *l)
{
	return (struct layer_h2 *)(void *)l;
}

static enum h2_leg
leg(enum layer_side s)
{
	return s == LAYER_CLIENT ? H2_CLIENT : H2_UPSTREAM;
}

/* Note why the connection failed, once; reap stalled streams. */
static void
h2_layer_after(struct layer_h2 *h, uint64_t now_us)
{
	const char *e = h2_error(h->c);
	uint64_t dl;

	/* A walk over the streams: ten times a second is plenty for a
	 * deadline of a minute. */
	if (now_us >= h->next_check_us) {
		h->next_check_us = now_us + 100000;
		if ((dl = h2_next_deadline(h->c)) != 0 && dl <= now_us)
			h2_tick(h->c, now_us);
	}
	if (e != NULL && !h->logged) {
		h->logged = true;
		snprintf(h->l.why, sizeof(h->l.why), "HTTP/2: %s", e);
		log_info("flow %llu: %s", (unsigned long long)h->flow_id,
		    h->l.why);
	}
}

static size_t
h2l_in_space(struct layer *l, enum layer_side from, uint8_t **p)
{
	struct layer_h2 *h = lh(l);
	const uint8_t *o;

	*p = NULL;
	/* Outputs first: filling them moves waiting DATA out (h2_want_read). */
	if (h2_output(h->c, H2_CLIENT, &o) >= H2_OUT_LIMIT ||
	    h2_output(h->c, H2_UPSTREAM, &o) >= H2_OUT_LIMIT ||
	    !h2_want_read(h->c, leg(from)))
		return 0;
	*p = h->in;
	return sizeof(h->in);
}

static int
h2l_in_commit(struct layer *l, enum layer_side from, size_t n,
    uint64_t now_us)
{
	struct layer_h2 *h = lh(l);

	if (n > 0)
		(void)h2_feed(h->c, leg(from), h->in, n, now_us);
	h2_layer_after(h, now_us);
	/* A failure is not -1: the GOAWAYs go out first (out_done). */
	return 0;
}

static int
h2l_in_eof(struct layer *l, enum layer_side from, uint64_t now_us)
{
	struct layer_h2 *h = lh(l);

	h2_eof(h->c, leg(from), now_us);
	h2_layer_after(h, now_us);
	return 0;
}

static const uint8_t *
h2l_out_peek(struct layer *l, enum layer_side to, size_t *len)
{
	const uint8_t *p;

	*len = h2_output(lh(l)->c, leg(to), &p);
	return *len > 0 ? p : NULL;
}

static void
h2l_out_consume(struct layer *l, enum layer_side to, size_t n,
    uint64_t now_us)
{
	struct layer_h2 *h = lh(l);

	h2_output_done(h->c, leg(to), n, now_us);
	h2_layer_after(h, now_us);
}

static bool
h2l_out_done(const struct layer *l, enum layer_side to)
{
	/* (const in the seam; asking fills the output, which is ours) */
	return h2_out_done(((struct layer_h2 *)(uintptr_t)l)->c, leg(to));
}

static size_t
h2l_held(const struct layer *l)
{
	return h2_held(((const struct layer_h2 *)(const void *)l)->c);
}

static void
h2l_free(struct layer *l, uint64_t now_us, const char *cut)
{
	struct layer_h2 *h;

	if (l == NULL)
		return;
	h = lh(l);
	h2_free(h->c, now_us, cut);
	membudget_give(h->budget, sizeof(*h));
	free(h);
}

static const struct layer_ops h2_ops = {
	.name = "h2",
	.in_space = h2l_in_space,
	.in_commit = h2l_in_commit,
	.in_eof = h2l_in_eof,
	.out_peek = h2l_out_peek,
	.out_consume = h2l_out_consume,
	.out_done = h2l_out_done,
	.observe = NULL,		/* re-frames: no transparent path */
	.observe_eof = NULL,
	.held = h2l_held,
	.free = h2l_free,
};

struct layer *
layer_h2_new(const struct layer_env *env)
{
	struct h2_config cfg;
	struct layer_h2 *h;
	char err[128];

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	h2_config_default(&cfg);
	cfg.scheme = env->scheme;
	cfg.default_authority = env->default_host;
	cfg.flow_id = env->flow_id;
	cfg.body_cap = env->body_cap > 0 ? env->body_cap : 1;
	cfg.emit = env->rec.exchange;
	cfg.arg = env->rec.arg;
	cfg.budget = env->budget;
	if ((h->c = h2_new(&cfg, err, sizeof(err))) == NULL) {
		log_warnx("flow %llu: %s", (unsigned long long)env->flow_id, err);
		free(h);
		return NULL;
	}
	h->flow_id = env->flow_id;
	h->l.ops = &h2_ops;
	/* Charged whatever the budget's room, like the rest of a flow's
	 * state; the layer holds back reading instead (h2_want_read). */
	h->budget = env->budget;
	membudget_force(h->budget, sizeof(*h));
	return &h->l;
}
