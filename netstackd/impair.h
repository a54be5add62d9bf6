/*
 * Network impairment at the TUN boundary: drop, duplicate, reorder and
 * delay packets with a seeded PRNG, in both directions, so the stack's
 * recovery (retransmission, SACK, reassembly) is exercised against the real
 * Linux stack, and people can see how captured programs fare on a poor
 * link.  A supported option (netstackd(8) --impair), off unless given;
 * test_ns_impair tests it alone.
 *
 * Pure like the stack: the caller passes time in and delivers what
 * impair_due() hands back.
 *
 *	spec: comma-separated  loss=P%  dup=P%  reorder=P%  delay=Nms  seed=N
 */
#ifndef NETSTACKD_IMPAIR_H
#define NETSTACKD_IMPAIR_H

#include <stddef.h>
#include <stdint.h>

#define IMPAIR_MAX_QUEUED	8192	/* packets held at once; more are dropped */

struct impair_pkt {
	struct impair_pkt *next;
	uint64_t	 due;		/* ms */
	int		 dir;		/* caller's: which way it was going */
	size_t		 len;
	uint8_t		 data[];
};

struct impair {
	uint32_t	 loss_ppm, dup_ppm, reorder_ppm;
	uint32_t	 delay_ms;
	uint64_t	 rng;
	struct impair_pkt *queue;	/* sorted by due, FIFO among equals */
	size_t		 queued;
	uint64_t	 dropped, duplicated, reordered, overflow;
};

/* 0, or -1 with a one-line reason in err. */
int	impair_parse(struct impair *, const char *spec, char *err, size_t errlen);

/*
 * Offer one packet going direction dir.  It is dropped, or queued (once or
 * twice) with a release time; packets due at once are released by the next
 * impair_due() call, which the caller makes right away.
 */
void	impair_offer(struct impair *, int dir, const uint8_t *pkt, size_t len,
	    uint64_t now);

/* The next packet due at now, or NULL; the caller frees it. */
struct impair_pkt *impair_due(struct impair *, uint64_t now);

/* When the next packet is due, or UINT64_MAX. */
uint64_t	impair_next(const struct impair *);

void	impair_free(struct impair *);

#endif
