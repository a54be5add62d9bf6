/*
 * localcap.conf: the one configuration file every daemon may be given.
 *
 *	# a comment (whole lines only)
 *	log_level = info            # keys before any [section] apply to all
 *	runtime_dir = /run/localcap
 *
 *	[proxyd]                    # keys for one daemon override the global ones
 *	log_level = debug
 *
 * Every key is checked against one schema (conf.c) when the file is read, by
 * every daemon, so a typo anywhere is an error naming the file and line.
 */
#ifndef LOCALCAP_CONF_H
#define LOCALCAP_CONF_H

#include <stddef.h>

#include "errmsg.h"

struct conf;

/* NULL with a one-line message ("FILE:LINE: what is wrong") in err. */
LC_MUST_CHECK
struct conf	*conf_load(const char *path, char *err, size_t errlen);
void		 conf_free(struct conf *);

/* The value for daemon's section, else the global one, else NULL. */
const char	*conf_get(const struct conf *, const char *daemon, const char *key);

/* yes/true/on/1 -> 1, no/false/off/0 -> 0, else -1. */
int		 conf_parse_bool(const char *);

/* "warn"/"info"/"debug"/"trace" -> enum log_level; -1 if none of them. */
int		 conf_parse_log_level(const char *);

#endif
