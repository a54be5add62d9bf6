/*
 * A bounded cache from audit token to process facts, so that a busy
 * process's every flow does not cost a proc_pidpath and a code-signature
 * check.  The key is the whole token, which holds the pid *and* its
 * pidversion: a reused pid, or the same pid after exec, is another key, so
 * an entry can never describe the wrong process.  At most `cap` entries;
 * the least recently used one goes first.  Not thread-safe (the core holds
 * its lock around it).
 */
#ifndef LOCALCAP_MX_PROC_H
#define LOCALCAP_MX_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macos-extension/core/mx_core.h"

#define MX_PROC_CACHE_DEFAULT	1024

struct mx_proc_cache;

struct mx_proc_cache	*mx_proc_cache_new(size_t cap);
void			 mx_proc_cache_free(struct mx_proc_cache *);

/*
 * The process behind token: from the cache, else from lookup (which
 * returns 0 or -1; failures are not cached).  *hit says which.  0 or -1.
 */
int	mx_proc_cache_get(struct mx_proc_cache *, const uint8_t *token,
	    size_t len, int (*lookup)(void *ctx, const uint8_t *token,
	    size_t len, struct mx_proc *out), void *ctx, struct mx_proc *out,
	    bool *hit);
size_t	mx_proc_cache_count(const struct mx_proc_cache *);

#endif
