/* Access checks for every webd request (see guard.h). */
#include "webd/guard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "webd/httpreq.h"

int
web_token_new(char out[WEB_TOKEN_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[WEB_TOKEN_BYTES];
	size_t i;

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return -1;
	for (i = 0; i < sizeof(raw); i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[WEB_TOKEN_LEN] = '\0';
	return 0;
}

bool
web_token_eq(const char *s, size_t n, const char *token)
{
	size_t tlen = strlen(token), i;
	unsigned char diff = 0;

	/* The length is no secret (always WEB_TOKEN_LEN); the bytes are. */
	if (n != tlen)
		return false;
	for (i = 0; i < n; i++)
		diff |= (unsigned char)(s[i] ^ token[i]);
	return diff == 0;
}

bool
web_host_ok(const char *host, const char *local_addr, unsigned port)
{
	char name[80];
	const char *colon;
	size_t n;
	unsigned long p = 80;
	char *end;

	if (host == NULL || local_addr == NULL)
		return false;
	if (host[0] == '[') {
		const char *rb = strchr(host, ']');

		if (rb == NULL || (rb[1] != '\0' && rb[1] != ':'))
			return false;
		n = (size_t)(rb - host - 1);
		if (n >= sizeof(name))
			return false;
		memcpy(name, host + 1, n);
		name[n] = '\0';
		/* A bracketed name must be the IPv6 address itself. */
		if (strchr(local_addr, ':') == NULL || strcasecmp(name,
		    local_addr) != 0)
			return false;
		colon = rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = strchr(host, ':');
		n = colon ? (size_t)(colon - host) : strlen(host);
		if (n == 0 || n >= sizeof(name))
			return false;
		memcpy(name, host, n);
		name[n] = '\0';
		if (strcasecmp(name, "localhost") != 0 &&
		    strcasecmp(name, "localhost.") != 0 &&
		    (strchr(local_addr, ':') != NULL ||
		    strcmp(name, local_addr) != 0))
			return false;
	}
	if (colon) {
		if (colon[1] < '0' || colon[1] > '9')
			return false;
		p = strtoul(colon + 1, &end, 10);
		if (*end != '\0' || end - colon - 1 > 5)
			return false;
	}
	return p == port;
}

bool
web_authorized(const char *authorization, const char *cookie,
    const char *token)
{
	char value[WEB_TOKEN_LEN + 2];
	int n;

	if (authorization) {
		if (strncasecmp(authorization, "Bearer ", 7) != 0)
			return false;
		return web_token_eq(authorization + 7, strlen(authorization + 7),
		    token);
	}
	if ((n = web_cookie_get(cookie, WEB_TOKEN_COOKIE, value,
	    sizeof(value))) < 0)
		return false;
	return web_token_eq(value, (size_t)n, token);
}

bool
web_post_ok(const char *origin, const char *sec_fetch_site,
    const char *content_type, const char *host)
{
	size_t n;

	if (content_type == NULL)
		return false;
	n = strcspn(content_type, "; \t");
	if (n != 16 || strncasecmp(content_type, "application/json", 16) != 0)
		return false;
	if (sec_fetch_site && strcmp(sec_fetch_site, "same-origin") != 0 &&
	    strcmp(sec_fetch_site, "none") != 0)
		return false;
	if (origin) {
		if (host == NULL || strncmp(origin, "http://", 7) != 0 ||
		    strcasecmp(origin + 7, host) != 0)
			return false;
	}
	return true;
}
