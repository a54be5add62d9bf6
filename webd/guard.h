/*
 * Who may talk to webd: the checks every request passes before any route
 * sees it (mitmweb's CVE-2025-23217 was an unauthenticated API; its DNS-
 * rebinding hole a Host header nobody looked at).  Pure functions, unit-
 * tested in test/unit/test_webd_http.c.
 *
 *   - the Host header names the address the connection reached (an IP
 *     literal) or localhost, with the port listened on: a page from
 *     another origin whose name was re-pointed at 127.0.0.1 sends its own
 *     name and gets 403;
 *   - an access token, random per start: a cookie (set when the URL with
 *     ?token= is opened) or Authorization: Bearer; compared in constant
 *     time; without it 401;
 *   - state-changing requests (POST) also need a same-origin Origin, when
 *     the browser sends one, and a JSON body (a plain HTML form cannot send
 *     application/json, so no cross-site form posts).
 */
#ifndef LOCALCAP_WEBD_GUARD_H
#define LOCALCAP_WEBD_GUARD_H

#include <stdbool.h>
#include <stddef.h>

#define WEB_TOKEN_BYTES		32
#define WEB_TOKEN_LEN		(2 * WEB_TOKEN_BYTES)	/* hex */
#define WEB_TOKEN_COOKIE	"localcap_token"

/* A fresh token (getrandom): WEB_TOKEN_LEN hex digits and a NUL.  0 / -1. */
int	web_token_new(char out[WEB_TOKEN_LEN + 1]);

/* s[0..n) equals token, in time independent of where they differ. */
bool	web_token_eq(const char *s, size_t n, const char *token);

/*
 * host: the Host header.  local_addr: the numeric address the connection
 * was accepted on ("127.0.0.1", "::1"), port: the listening port.  True
 * if host is "localhost", "localhost.", or local_addr (IPv6 in brackets),
 * with ":port" (or no port when port is 80).
 */
bool	web_host_ok(const char *host, const char *local_addr, unsigned port);

/*
 * The token the request carries, from "Authorization: Bearer T", else the
 * cookie: true if it is ours.
 */
bool	web_authorized(const char *authorization, const char *cookie,
	    const char *token);

/*
 * A POST may change something: its Origin (if sent) must be
 * http://HOST (the Host already checked), Sec-Fetch-Site (if sent)
 * same-origin, and its Content-Type application/json.
 */
bool	web_post_ok(const char *origin, const char *sec_fetch_site,
	    const char *content_type, const char *host);

#endif
