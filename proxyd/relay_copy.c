/*
 * The TCP pump without splice(2), for systems that have none (macOS) and
 * the portable builds: relay_splice.c's interface, where no direction ever
 * moves to a pipe and every byte goes through the ring buffers, as with
 * `--no-splice` on Linux.  relay_splice.c is left out of those builds
 * (Makefile: PORTABLE_LINUX_ONLY); here it is the other way round.
 */
#include "plat.h"

#if !LC_PLAT_LINUX
#include <errno.h>
#include <string.h>

#include "proxyd/relay.h"
#include "proxyd/relay_int.h"

void
spipe_init(struct spipe *p)
{
	memset(p, 0, sizeof(*p));
	p->rd = p->wr = -1;
}

void
spipe_close(struct relay *r, struct spipe *p)
{
	(void)r;
	spipe_init(p);		/* never opened */
}

int
spipe_room(const struct relay *r, const struct rbuf *b, const struct spipe *p)
{
	(void)p;
	return b->len < (b->data != NULL ? b->cap : r->cfg.bufsize);
}

/* Never reached: the relay calls these only for a direction with a pipe. */
int
rflow_splice_in(struct rflow *f, struct side *s, struct spipe *p, int from_app)
{
	(void)s;
	(void)p;
	(void)from_app;
	rflow_end(f, FLOW_END_INTERNAL, EOPNOTSUPP);
	return -1;
}

int
rflow_splice_out(struct rflow *f, struct side *s, struct spipe *p, int to_app)
{
	(void)s;
	(void)p;
	(void)to_app;
	rflow_end(f, FLOW_END_INTERNAL, EOPNOTSUPP);
	return -1;
}

int
rflow_splice_maybe(struct rflow *f, int from_app)
{
	(void)f;
	(void)from_app;
	return 0;
}
#else
typedef int relay_copy_not_this_build;
#endif
