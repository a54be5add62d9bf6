/*
 * webd's HTTP/1.1 server on libev: listening sockets, connections (keep-
 * alive, pipelined requests answered in order), one idle timer for all
 * of them, Server-Sent Event streams, and the checks of guard.h before a
 * request reaches a route (api.c).
 *
 * A connection reads into a fixed buffer (one request head and body at
 * most), parses with httpreq.c, and answers through web_respond*(); a
 * route that must wait (attach/detach go to redirectord) calls
 * web_conn_hold() and answers later, and the connection reads nothing
 * more meanwhile.  Every response carries the same security headers
 * (server.c: SECURITY_HEADERS).
 */
#ifndef LOCALCAP_WEBD_SERVER_H
#define LOCALCAP_WEBD_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "webd/guard.h"
#include "webd/httpreq.h"

#define WEB_MAX_CONNS		512
#define WEB_MAX_SSE		256
#define WEB_IDLE_TIMEOUT	30.0	/* seconds without a byte either way */
#define WEB_SSE_PING		15.0	/* comment line to keep a stream open */
#define WEB_SSE_MAX_QUEUED	(1024 * 1024)	/* a stream that falls behind
						   this far is closed */
#define WEB_MAX_LISTEN		4

struct web_conn;
struct web_server;

/* The route table: one request; answer now or hold the connection. */
typedef void	(*web_handler_fn)(struct web_server *, struct web_conn *,
		    const struct web_req *, void *arg);

struct web_server {
	struct ev_loop	*loop;
	char		 token[WEB_TOKEN_LEN + 1];
	unsigned	 port;		/* the port every listener shares */
	int		 lfd[WEB_MAX_LISTEN];
	ev_io		 lio[WEB_MAX_LISTEN];
	size_t		 nlisten;
	web_handler_fn	 handler;
	void		*handler_arg;
	/* Connections, least recently active first (the idle timer's list). */
	struct web_conn	*idle_head, *idle_tail;
	ev_timer	 idle_timer;
	size_t		 nconns;
	/* Event streams. */
	struct web_conn	*sse_head;
	size_t		 nsse;
	ev_timer	 ping_timer;
	/* Figures, for the log and the tests. */
	uint64_t	 requests, refused_401, refused_403, bad_requests;
};

/*
 * Listen on addr ("127.0.0.1:8081", "[::1]:0"; port 0: any).  Returns 0,
 * or -1 with a message in err.  The chosen port is in srv->port.
 */
int	web_server_listen(struct web_server *, const char *addr, char *err,
	    size_t errlen);
void	web_server_start(struct web_server *, struct ev_loop *,
	    web_handler_fn, void *arg);
void	web_server_stop(struct web_server *);

/* The address the connection came in on, numeric ("127.0.0.1"). */
const char *web_conn_local(const struct web_conn *);

/*
 * Answer the current request: status, Content-Type, body.  extra: more
 * header lines, each ending in CRLF, or NULL.  HEAD requests get the
 * headers only.
 */
void	web_respond(struct web_conn *, int status, const char *ctype,
	    const void *body, size_t len, const char *extra);
/* A JSON error body {"error": msg}. */
void	web_respond_error(struct web_conn *, int status, const char *msg);
/*
 * Answer with a body the caller malloc'd (open_memstream's): taken over
 * and freed.
 */
void	web_respond_take(struct web_conn *, int status, const char *ctype,
	    char *body, size_t len, const char *extra);

/* The route answers later (web_respond* on the held connection). */
void	web_conn_hold(struct web_conn *);
/* A held connection whose peer went away: the route's answer is dropped. */
bool	web_conn_gone(const struct web_conn *);
/* The route holds its pointer no more (after its answer, or when gone). */
void	web_conn_release(struct web_conn *);

/* Turn this request's connection into an event stream. */
void	web_sse_begin(struct web_conn *);
/* Send "event: EVENT\ndata: DATA\n\n" to every stream. */
void	web_sse_broadcast(struct web_server *, const char *event,
	    const char *data);

#endif
