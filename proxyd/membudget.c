/*
 * proxyd's memory budget (membudget.h).
 */
#include "proxyd/membudget.h"

void
membudget_init(struct membudget *b, size_t total)
{
	b->used = b->high_water = 0;
	b->refused = 0;
	if (total == 0)
		b->limit = 0;
	else if (total > 2 * MEMBUDGET_PROCESS_RESERVE)
		b->limit = total - MEMBUDGET_PROCESS_RESERVE;
	else
		b->limit = total / 2;	/* a tiny budget: half for each */
}

static void
charge(struct membudget *b, size_t n)
{
	b->used += n;
	if (b->used > b->high_water)
		b->high_water = b->used;
}

/* Whether n fits with used under limit less limit/keep (keep 0: the limit). */
static bool
fits_under(const struct membudget *b, size_t n, unsigned keep)
{
	size_t under;

	if (b == NULL || b->limit == 0)
		return true;
	under = keep ? b->limit - b->limit / keep : b->limit;
	return b->used <= under && n <= under - b->used;
}

static bool
take_under(struct membudget *b, size_t n, unsigned keep)
{
	if (b == NULL)
		return true;
	if (!fits_under(b, n, keep)) {
		b->refused++;
		return false;
	}
	charge(b, n);
	return true;
}

bool
membudget_take(struct membudget *b, size_t n)
{
	return take_under(b, n, 8);
}

bool
membudget_take_soft(struct membudget *b, size_t n)
{
	return take_under(b, n, 4);
}

bool
membudget_can_take(const struct membudget *b, size_t n)
{
	return fits_under(b, n, 8);
}

void
membudget_force(struct membudget *b, size_t n)
{
	if (b != NULL)
		charge(b, n);
}

void
membudget_give(struct membudget *b, size_t n)
{
	if (b == NULL)
		return;
	b->used = n > b->used ? 0 : b->used - n;
}
