/*
 * Host names as they reach certificate forging: the client's SNI, an upstream
 * certificate's subjectAltName entries, a Host header.  All of them are peer
 * input, so before a name goes into a certificate we sign it is classified and
 * normalised here: a DNS name (lower case, LDH labels, optional leading "*."
 * for names copied from an upstream certificate) or an IPv4/IPv6 literal.
 * Shared by certforge.c (proxyd side) and signer.c (which re-checks every
 * request, since it will sit behind a process boundary).
 */
#ifndef LOCALCAP_PROXYD_CERTNAME_H
#define LOCALCAP_PROXYD_CERTNAME_H

#include <stdbool.h>
#include <stddef.h>

#define CERTNAME_DNS_MAX	253	/* RFC 1035 presentation form, no final dot */
#define CERTNAME_LABEL_MAX	63

enum certname_kind {
	CERTNAME_INVALID = 0,
	CERTNAME_DNS,
	CERTNAME_IPV4,
	CERTNAME_IPV6,
};

struct certname {
	enum certname_kind kind;
	char		text[CERTNAME_DNS_MAX + 1];	/* normalised, NUL-terminated */
	size_t		textlen;
	unsigned char	ip[16];				/* network order; 4 or 16 used */
	size_t		iplen;
};

/*
 * Classifies len bytes of name (not necessarily NUL-terminated).  DNS names
 * are lower-cased and lose one trailing dot; an all-numeric last label that is
 * not a valid IPv4 literal is rejected so "1.2.3" can never be mistaken for
 * an address.  allow_wildcard accepts a leading "*." label (upstream SANs
 * only: a client never asks for a wildcard).  Returns the kind, and fills out
 * (which may be NULL) unless the result is CERTNAME_INVALID.
 */
enum certname_kind certname_parse(const char *name, size_t len, bool allow_wildcard,
	    struct certname *out);

/* Formats an IPv4 (4 bytes) or IPv6 (16 bytes) address; false on bad length. */
bool	certname_ip_to_text(const unsigned char *ip, size_t iplen, char *buf,
	    size_t bufsize);

#endif
