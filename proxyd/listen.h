/*
 * proxyd's explicit HTTP proxy listener (--listen ADDR:PORT): mitmproxy's
 * "regular mode".  A client configured to use proxyd as its HTTP proxy
 * sends either
 *
 *	CONNECT host:port HTTP/1.1	-> "200 Connection established", then
 *					   the tunnel is a flow like any other
 *					   (TLS intercepted, or relayed raw);
 *	GET http://host[:port]/p HTTP/1.1
 *					-> the request, rewritten to origin
 *					   form with "Connection: close", is
 *					   the first bytes of a flow to host.
 *
 * Either way the result is the same flow a captured program would make
 * (relay_start_prefixed), with the host name the client asked for.  Host
 * names are resolved without blocking through the resolve hook.  Anything
 * else gets a short HTTP error and the connection is closed.  See
 * docs/proxyd-listen.md.
 */
#ifndef LOCALCAP_PROXYD_LISTEN_H
#define LOCALCAP_PROXYD_LISTEN_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "proxyd/flow.h"

struct relay;

#define PLISTEN_MAX_HEAD	(16 * 1024)	/* the proxy request's head */
#define PLISTEN_HEAD_TIMEOUT	30.0		/* s to send it */
#define PLISTEN_FIRST_BYTE_TIMEOUT 5.0		/* s to send its first byte */
#define PLISTEN_MAX_PENDING	1024		/* connections before their flow */
/*
 * Connections one source address may have pending.  When a source (or the
 * whole listener) is at its limit, a new connection pushes out that
 * source's (or anyone's) oldest one still sending its head: a slow client
 * cannot keep others out by holding connections half-sent (slowloris).
 */
#define PLISTEN_MAX_PER_SOURCE	128

/*
 * Resolving a host name: resolve() starts a lookup and returns a handle
 * (NULL: it failed at once, done not called); done() is called exactly
 * once later with the addresses (port 0) or err, unless cancel() came
 * first.  Without a hook only address literals work.
 */
typedef void (*plisten_resolved)(void *arg, const struct endpoint *addrs,
	    size_t naddrs, const char *err);
struct plisten_resolver {
	void	*(*resolve)(void *ctx, const char *name, plisten_resolved done,
		    void *arg);
	void	 (*cancel)(void *handle);
	void	*ctx;
};

struct plisten_stats {
	uint64_t	accepted;
	uint64_t	tunnels;	/* CONNECT flows started */
	uint64_t	requests;	/* absolute-form flows started */
	uint64_t	refused;	/* bad or unsupported requests */
	uint64_t	resolve_failed;
	uint64_t	overloaded;	/* closed at once: too many pending */
	uint64_t	evicted;	/* oldest half-sent head closed for a new one */
};

struct plisten;
struct http_msg;

/*
 * What a proxy request asks for, decided from its parsed head (I/O-free,
 * for tests and fuzzing): status 0 and a host, port and the flow's first
 * bytes (prefix, malloc'd: the caller frees it), or the HTTP status to
 * answer with a reason phrase and a one-line explanation.
 */
struct plisten_req {
	int		 status;
	const char	*reason;
	char		 why[160];
	int		 tunnel;	/* CONNECT */
	char		 host[256];	/* a name or an address, no [] */
	uint16_t	 port;
	uint8_t		*prefix;
	size_t		 prefix_len;
};
/* buf[0..len): the head (head_len bytes, parsed into m) and what followed. */
void	plisten_decide(const struct http_msg *m, const uint8_t *buf,
	    size_t head_len, size_t len, struct plisten_req *r);

/*
 * Parse "192.0.2.1:8080" or "[::1]:8080" (an address, not a name: the
 * listener is bound before anything can be resolved).  -1 with err.
 */
int	plisten_parse_addr(const char *s, struct endpoint *out, char *err,
	    size_t errlen);

/* Binds and listens (before the sandbox).  NULL with err. */
struct plisten *plisten_new(struct ev_loop *, struct relay *,
	    const struct endpoint *bind_addr, char *err, size_t errlen);
/* Start accepting; hooks are borrowed (NULL resolver: literals only). */
void	plisten_start(struct plisten *, const struct plisten_resolver *);
void	plisten_free(struct plisten *);
const struct plisten_stats *plisten_stats(const struct plisten *);
/* The bound port (useful with port 0). */
uint16_t plisten_port(const struct plisten *);

#endif
