/*
 * The impairment queue (see impair.h).  Delay gives every packet the same
 * release offset; reordering adds a random extra hold of up to three times
 * the delay (at least 3 ms), so a held packet is overtaken by later ones.
 */
#include "netstackd/impair.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* xorshift64*: small, seeded, good enough to pick packets. */
static uint64_t
next_rand(struct impair *im)
{
	im->rng ^= im->rng >> 12;
	im->rng ^= im->rng << 25;
	im->rng ^= im->rng >> 27;
	return im->rng * 2685821657736338717ull;
}

static int
chance(struct impair *im, uint32_t ppm)
{
	return ppm > 0 && (uint32_t)(next_rand(im) % 1000000) < ppm;
}

static int
parse_percent(const char *v, uint32_t *ppm)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(v, &end);
	if (errno || end == v || (*end != '%' && *end != '\0') ||
	    (*end == '%' && end[1] != '\0') || d < 0 || d > 50)
		return -1;
	*ppm = (uint32_t)(d * 10000 + 0.5);
	return 0;
}

int
impair_parse(struct impair *im, const char *spec, char *err, size_t errlen)
{
	char buf[256], *item, *save = NULL;

	memset(im, 0, sizeof(*im));
	im->rng = 0x9e3779b97f4a7c15ull;
	if (strlen(spec) >= sizeof(buf)) {
		snprintf(err, errlen, "impairment spec too long");
		return -1;
	}
	strcpy(buf, spec);
	for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '='), *end;
		unsigned long long n;

		if (eq == NULL)
			goto bad;
		*eq++ = '\0';
		if (strcmp(item, "loss") == 0) {
			if (parse_percent(eq, &im->loss_ppm) == -1)
				goto bad;
		} else if (strcmp(item, "dup") == 0) {
			if (parse_percent(eq, &im->dup_ppm) == -1)
				goto bad;
		} else if (strcmp(item, "reorder") == 0) {
			if (parse_percent(eq, &im->reorder_ppm) == -1)
				goto bad;
		} else if (strcmp(item, "delay") == 0) {
			n = strtoull(eq, &end, 10);
			if (end == eq || (strcmp(end, "ms") != 0 && *end != '\0') ||
			    n > 10000)
				goto bad;
			im->delay_ms = (uint32_t)n;
		} else if (strcmp(item, "seed") == 0) {
			n = strtoull(eq, &end, 10);
			if (end == eq || *end != '\0')
				goto bad;
			im->rng = n ? n : 1;
		} else
			goto bad;
		continue;
bad:
		snprintf(err, errlen, "bad impairment '%s%s%s' (want loss=P%%, "
		    "dup=P%%, reorder=P%% up to 50%%, delay=Nms, seed=N)", item,
		    eq ? "=" : "", eq ? eq : "");
		return -1;
	}
	return 0;
}

static void
enqueue(struct impair *im, int dir, const uint8_t *pkt, size_t len, uint64_t due)
{
	struct impair_pkt *p, **at;

	if (im->queued >= IMPAIR_MAX_QUEUED ||
	    (p = malloc(sizeof(*p) + len)) == NULL) {
		im->overflow++;
		return;
	}
	p->due = due;
	p->dir = dir;
	p->len = len;
	memcpy(p->data, pkt, len);
	/* After every packet due no later: equal times keep their order. */
	for (at = &im->queue; *at && (*at)->due <= due; at = &(*at)->next)
		;
	p->next = *at;
	*at = p;
	im->queued++;
}

void
impair_offer(struct impair *im, int dir, const uint8_t *pkt, size_t len,
    uint64_t now)
{
	uint64_t due = now + im->delay_ms;
	int copies = 1, i;

	if (chance(im, im->loss_ppm)) {
		im->dropped++;
		return;
	}
	if (chance(im, im->dup_ppm)) {
		im->duplicated++;
		copies = 2;
	}
	for (i = 0; i < copies; i++) {
		uint64_t at = due;

		if (chance(im, im->reorder_ppm)) {
			uint64_t hold = 3 * (uint64_t)im->delay_ms;

			im->reordered++;
			at += 1 + next_rand(im) % (hold > 3 ? hold : 3);
		}
		enqueue(im, dir, pkt, len, at);
	}
}

struct impair_pkt *
impair_due(struct impair *im, uint64_t now)
{
	struct impair_pkt *p = im->queue;

	if (p == NULL || p->due > now)
		return NULL;
	im->queue = p->next;
	im->queued--;
	return p;
}

uint64_t
impair_next(const struct impair *im)
{
	return im->queue ? im->queue->due : UINT64_MAX;
}

void
impair_free(struct impair *im)
{
	struct impair_pkt *p;

	while ((p = im->queue) != NULL) {
		im->queue = p->next;
		free(p);
	}
	im->queued = 0;
}
