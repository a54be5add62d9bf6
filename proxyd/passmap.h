/*
 * Automatic TLS passthrough: the hosts whose clients refused our forged
 * certificate (certificate pinning, our CA not installed), each remembered
 * until a deadline.  While a host is in the map, new TLS flows to it are
 * relayed without decryption and recorded as passthrough flows, the way
 * mitmproxy's tls_passthrough example does it.
 *
 * Keys are what the relay derives from a ClientHello: the SNI lower-cased,
 * or the destination address when there is none.  The map is bounded (the
 * entry closest to its deadline is replaced when full), since the names
 * come from application traffic.  Lookups are linear: at most cap short
 * string compares per new TLS flow, nothing next to a handshake.
 */
#ifndef LOCALCAP_PROXYD_PASSMAP_H
#define LOCALCAP_PROXYD_PASSMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PASSMAP_KEY_MAX		256	/* bytes, NUL included */
#define PASSMAP_DEFAULT_CAP	1024
#define PASSMAP_DEFAULT_TTL	3600	/* seconds */

struct passmap_entry {
	char		key[PASSMAP_KEY_MAX];
	double		until;		/* the caller's clock */
};

struct passmap {
	struct passmap_entry	*e;
	size_t			 cap;
	size_t			 n;
};

/* 0, or -1 out of memory.  cap 0 keeps nothing (passthrough off). */
int	passmap_init(struct passmap *, size_t cap);
void	passmap_free(struct passmap *);
/* Remember key until `until`; an existing entry gets the later deadline. */
void	passmap_add(struct passmap *, const char *key, double until);
/* Whether key is remembered at time now (expired entries are dropped). */
bool	passmap_has(struct passmap *, const char *key, double now);

/* The key for a host name or address text: lower-cased, clipped. */
void	passmap_key(char *out, const char *host);

#endif
