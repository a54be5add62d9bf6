/*
 * --ignore-hosts: which connections proxyd relays without looking inside.
 *
 * A pattern is a POSIX extended regular expression, matched without case
 * and unanchored (as mitmproxy's ignore_hosts: `example\.com` matches
 * "www.example.com:443"; anchor with ^...$ to be exact) against
 * "HOST:PORT", where HOST is a name (the TLS SNI, or the host an explicit
 * proxy client asked for) or an address ("192.0.2.1", "[2001:db8::1]").
 */
#ifndef LOCALCAP_PROXYD_HOSTMATCH_H
#define LOCALCAP_PROXYD_HOSTMATCH_H

#include <stddef.h>
#include <stdint.h>

#define HOSTMATCH_MAX_PATTERNS	256
#define HOSTMATCH_MAX_PATTERN	1024	/* bytes of one pattern */

struct hostmatch;

struct hostmatch *hostmatch_new(void);
void	hostmatch_free(struct hostmatch *);

/*
 * Add the patterns of a comma-separated list (a comma inside {} or [] is
 * part of its pattern).  -1 with a one-line reason in err, nothing added.
 */
int	hostmatch_add(struct hostmatch *, const char *list, char *err,
	    size_t errlen);
size_t	hostmatch_count(const struct hostmatch *);

/*
 * The first pattern that matches "host:port" (host as given: a name, an
 * IPv4 address or a bracketed IPv6 one), or NULL.  NULL hm matches nothing.
 */
const char *hostmatch_find(const struct hostmatch *, const char *host,
	    uint16_t port);

#endif
