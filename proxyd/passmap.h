/*
 * Automatic TLS passthrough: the hosts whose clients refused our forged
 * certificate (certificate pinning, our CA not installed), each remembered
 * until a deadline.  While a host is in the map, new TLS flows to it are
 * relayed without decryption and recorded as passthrough flows, the way
 * mitmproxy's tls_passthrough example does it.
 *
 * How sure a refusal is decides how soon a host passes: a certificate
 * alert (unknown_ca, bad_certificate, ...) is the client saying so, and one
 * is enough.  A client that only closed after our certificate may have
 * refused it silently (many pinning apps do), or may have gone for reasons
 * of its own: a browser dropping a preconnect or reacting to a network
 * change, a user giving up.  Those are strikes; PASSMAP_CLOSE_STRIKES of
 * them within PASSMAP_STRIKE_WINDOW seconds make the host pass, and a
 * client that accepts our certificate for the host clears them.
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
#define PASSMAP_CLOSE_STRIKES	3	/* silent closes that make a host pass */
#define PASSMAP_STRIKE_WINDOW	120	/* seconds from a host's first strike */

struct passmap_entry {
	char		key[PASSMAP_KEY_MAX];
	double		until;		/* passing until (the caller's clock), 0 not */
	double		strikes_until;	/* strikes count until then */
	unsigned	strikes;
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
/*
 * One refusal of our certificate for key at time now; `need` refusals
 * within PASSMAP_STRIKE_WINDOW make it pass until `until` (need 1: at
 * once).  Returns whether this refusal made it pass.
 */
bool	passmap_strike(struct passmap *, const char *key, double now,
	    unsigned need, double until);
/* A client accepted our certificate for key: its strikes are forgotten. */
void	passmap_forgive(struct passmap *, const char *key);

/* The key for a host name or address text: lower-cased, clipped. */
void	passmap_key(char *out, const char *host);

#endif
