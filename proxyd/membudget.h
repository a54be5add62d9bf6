/*
 * proxyd's memory budget: one per process, shared by everything whose
 * memory grows with traffic — the relay's ring buffers, captured HTTP
 * bodies, and a fixed charge per running flow for its state (the flow,
 * its parsers, a TLS engine), and the HTTP/2 layer's every allocation.  Like netstackd's mem_limit, but nothing is
 * dropped when it is reached: a ring buffer is allocated small (the flow
 * slows down), a body is recorded truncated and marked so, a flow's state
 * is charged anyway (the flow caps bound that).  So proxyd's memory stays
 * near `limit`, and no flow is cut for it.
 *
 * limit 0: no budget (everything is granted, still counted).
 */
#ifndef LOCALCAP_PROXYD_MEMBUDGET_H
#define LOCALCAP_PROXYD_MEMBUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * What proxyd needs besides what the budget counts (code, libraries,
 * SQLite's page cache, the trust store, the leaf cache): the configured
 * memory budget less this is what buffers and bodies may take.
 */
#define MEMBUDGET_PROCESS_RESERVE	(16u << 20)

struct membudget {
	size_t		limit;		/* 0: unlimited */
	size_t		used;		/* bytes charged now */
	size_t		high_water;
	uint64_t	refused;	/* requests turned down (truncation, small rings) */
};

/* A budget for a process whose memory should stay near total (0: none). */
void	membudget_init(struct membudget *, size_t total);
/*
 * Charge n if it fits under 7/8 of the limit; false (counted) if not.
 * NULL: true.  The last eighth is for what is charged anyway (flow
 * state, small rings: membudget_force), so that it too fits.
 */
bool	membudget_take(struct membudget *, size_t n);
/*
 * The same for memory that can stop growing without slowing anything
 * (captured bodies): up to 3/4 of the limit, so that the relay's buffers
 * keep room when bodies have taken all they may.
 */
bool	membudget_take_soft(struct membudget *, size_t n);
/*
 * Whether membudget_take(n) would charge n now, without charging or
 * counting anything: for memory that is held back rather than refused
 * (the HTTP/2 layer stops reading a leg whose DATA waits in proxyd).
 */
bool	membudget_can_take(const struct membudget *, size_t n);
/* Charge n whether or not it fits (state a flow cannot run without). */
void	membudget_force(struct membudget *, size_t n);
void	membudget_give(struct membudget *, size_t n);

#endif
