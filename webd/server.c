/*
 * webd's HTTP/1.1 server (see server.h).
 *
 * Call chain: accept_cb -> conn_read_cb -> conn_process (parse, guard,
 * handler) -> web_respond -> conn_write_cb.  One request is handled at a
 * time per connection: the next pipelined one waits until the answer to
 * this one is queued.  Idle connections are found by one timer and a list
 * kept in order of last activity (style.md: "be smart about timeouts").
 */
#include "webd/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

/*
 * On every response.  The page needs nothing but its own script and
 * style, images from blob:/data: URLs it makes itself, and fetch() to its
 * own origin; nothing may frame it, nothing from elsewhere may run.
 */
#define SECURITY_HEADERS						\
	"Content-Security-Policy: default-src 'none'; script-src 'self'; "	\
	"style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; " \
	"frame-ancestors 'none'; base-uri 'none'; form-action 'none'\r\n" \
	"X-Content-Type-Options: nosniff\r\n"				\
	"X-Frame-Options: DENY\r\n"					\
	"Referrer-Policy: no-referrer\r\n"				\
	"Cross-Origin-Opener-Policy: same-origin\r\n"			\
	"Cross-Origin-Resource-Policy: same-origin\r\n"			\
	"Cache-Control: no-store\r\n"

#define CONN_BUF	(WEB_MAX_HEAD + 2 + WEB_MAX_BODY)

struct web_conn {
	struct web_server *srv;
	int		 fd;
	ev_io		 io;
	unsigned	 events;	/* what io watches now */
	ev_tstamp	 last_active;
	struct web_conn	*idle_prev, *idle_next;	/* not while an event stream */
	struct web_conn	*sse_prev, *sse_next;
	char		 local[INET6_ADDRSTRLEN];
	char		 peer[INET6_ADDRSTRLEN + 8];
	uint8_t		 in[CONN_BUF];
	size_t		 inlen;
	char		*out;
	size_t		 outlen, outoff, outcap;
	bool		 head_only;	/* the current request is HEAD */
	bool		 keep_alive;	/* of the current request */
	bool		 answered;	/* the current request has its answer */
	bool		 busy;		/* a request is in the handler or held */
	bool		 held, dead;
	bool		 in_handler;	/* a route runs now (it may answer and
					   release at once: the loop goes on) */
	bool		 sse;
	bool		 close_after;	/* once the output is written */
};

static void conn_process(struct web_conn *);
static void conn_close(struct web_conn *, const char *why);

/* --- lists ---------------------------------------------------------------- */

static void
idle_unlink(struct web_conn *c)
{
	struct web_server *s = c->srv;

	if (c->idle_prev)
		c->idle_prev->idle_next = c->idle_next;
	else if (s->idle_head == c)
		s->idle_head = c->idle_next;
	if (c->idle_next)
		c->idle_next->idle_prev = c->idle_prev;
	else if (s->idle_tail == c)
		s->idle_tail = c->idle_prev;
	c->idle_prev = c->idle_next = NULL;
}

/* Activity: to the tail of the list (the most recent). */
static void
idle_touch(struct web_conn *c)
{
	struct web_server *s = c->srv;

	c->last_active = ev_now(s->loop);
	if (c->sse || c->dead)
		return;
	idle_unlink(c);
	c->idle_prev = s->idle_tail;
	if (s->idle_tail)
		s->idle_tail->idle_next = c;
	else
		s->idle_head = c;
	s->idle_tail = c;
}

static void
sse_unlink(struct web_conn *c)
{
	struct web_server *s = c->srv;

	if (!c->sse)
		return;
	if (c->sse_prev)
		c->sse_prev->sse_next = c->sse_next;
	else
		s->sse_head = c->sse_next;
	if (c->sse_next)
		c->sse_next->sse_prev = c->sse_prev;
	c->sse_prev = c->sse_next = NULL;
	c->sse = false;
	s->nsse--;
}

static void
idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct web_server *s = w->data;
	ev_tstamp now = ev_now(loop);

	(void)revents;
	/* Held connections wait for redirectord, which has its own deadline. */
	while (s->idle_head && s->idle_head->last_active + WEB_IDLE_TIMEOUT <= now)
		conn_close(s->idle_head, "idle");
	w->repeat = s->idle_head ? s->idle_head->last_active + WEB_IDLE_TIMEOUT -
	    now + 0.01 : WEB_IDLE_TIMEOUT;
	ev_timer_again(loop, w);
}

/* --- output ---------------------------------------------------------------- */

static void
conn_watch(struct web_conn *c, unsigned events)
{
	if (c->dead || c->events == events)
		return;
	ev_io_stop(c->srv->loop, &c->io);
	c->events = events;
	if (events) {
		ev_io_set(&c->io, c->fd, (int)events);
		ev_io_start(c->srv->loop, &c->io);
	}
}

static int
out_append(struct web_conn *c, const void *p, size_t n)
{
	if (c->outoff > 0 && c->outoff == c->outlen)
		c->outoff = c->outlen = 0;
	if (c->outlen + n > c->outcap) {
		size_t cap = c->outcap ? c->outcap : 4096;
		char *nb;

		while (cap < c->outlen + n)
			cap *= 2;
		if ((nb = realloc(c->out, cap)) == NULL)
			return -1;
		c->out = nb;
		c->outcap = cap;
	}
	memcpy(c->out + c->outlen, p, n);
	c->outlen += n;
	return 0;
}

/* Write what we can now; 0, or -1 if the connection was closed. */
static int
conn_flush(struct web_conn *c)
{
	ssize_t n;

	while (c->outoff < c->outlen) {
		n = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			conn_close(c, "write failed");
			return -1;
		}
		c->outoff += (size_t)n;
		idle_touch(c);
	}
	if (c->outoff < c->outlen) {
		conn_watch(c, EV_READ | EV_WRITE);
		return 0;
	}
	c->outoff = c->outlen = 0;
	/* A large answer's buffer is not kept for the life of the connection. */
	if (c->outcap > 65536) {
		free(c->out);
		c->out = NULL;
		c->outcap = 0;
	}
	if (c->close_after) {
		conn_close(c, "answered");
		return -1;
	}
	conn_watch(c, c->busy && !c->sse ? 0 : EV_READ);
	return 0;
}

static const char *
reason_of(int status)
{
	switch (status) {
	case 200: return "OK";
	case 204: return "No Content";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default:  return "Status";
	}
}

/* After an answer: the next pipelined request, if any. */
static void
conn_next(struct web_conn *c)
{
	if (c->dead || c->held || c->sse)
		return;
	c->busy = false;
	if (conn_flush(c) == -1)
		return;
	conn_process(c);
}

void
web_respond(struct web_conn *c, int status, const char *ctype,
    const void *body, size_t len, const char *extra)
{
	char head[1024];
	int n;

	if (c->dead || c->answered)
		return;
	c->answered = true;
	if (status >= 400 && status != 401 && status != 403 && status != 404 &&
	    status != 405 && status != 502 && status != 503 && status != 504)
		c->close_after = true;	/* a malformed request: no second one */
	if (!c->keep_alive)
		c->close_after = true;
	n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\n" SECURITY_HEADERS
	    "Content-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n", status,
	    reason_of(status), ctype ? ctype : "application/octet-stream", len,
	    c->close_after ? "Connection: close\r\n" : "", extra ? extra : "");
	if (n < 0 || (size_t)n >= sizeof(head) || out_append(c, head,
	    (size_t)n) == -1 || (!c->head_only && len && out_append(c, body,
	    len) == -1)) {
		conn_close(c, "out of memory");
		return;
	}
	if (!c->held)
		return;		/* conn_process flushes after the handler */
	if (conn_flush(c) == 0)
		conn_next(c);
}

void
web_respond_take(struct web_conn *c, int status, const char *ctype,
    char *body, size_t len, const char *extra)
{
	web_respond(c, status, ctype, body, len, extra);
	free(body);
}

void
web_respond_error(struct web_conn *c, int status, const char *msg)
{
	char *body = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&body, &len);
	const char *p;

	if (f == NULL) {
		web_respond(c, status, "text/plain; charset=utf-8", msg,
		    strlen(msg), NULL);
		return;
	}
	fputs("{\"error\":\"", f);
	for (p = msg; *p; p++) {
		if (*p == '"' || *p == '\\')
			fputc('\\', f);
		if ((unsigned char)*p >= 0x20)
			fputc(*p, f);
	}
	fputs("\"}\n", f);
	fclose(f);
	web_respond_take(c, status, "application/json", body, len, NULL);
}

void
web_conn_hold(struct web_conn *c)
{
	c->held = true;
}

bool
web_conn_gone(const struct web_conn *c)
{
	return c->dead;
}

void
web_conn_release(struct web_conn *c)
{
	c->held = false;
	if (c->in_handler)
		return;		/* conn_process goes on (or frees) after it */
	if (c->dead) {
		free(c->out);
		free(c);
		return;
	}
	conn_next(c);
}

const char *
web_conn_local(const struct web_conn *c)
{
	return c->local;
}

/* --- event streams ------------------------------------------------------------ */

void
web_sse_begin(struct web_conn *c)
{
	struct web_server *s = c->srv;
	static const char head[] = "HTTP/1.1 200 OK\r\n" SECURITY_HEADERS
	    "Content-Type: text/event-stream\r\n\r\n"
	    "retry: 2000\n\n";

	if (c->dead || c->answered)
		return;
	if (s->nsse >= WEB_MAX_SSE) {
		web_respond_error(c, 503, "too many event streams");
		return;
	}
	c->answered = true;
	if (out_append(c, head, sizeof(head) - 1) == -1) {
		conn_close(c, "out of memory");
		return;
	}
	idle_unlink(c);
	c->sse = true;
	c->sse_prev = NULL;
	c->sse_next = s->sse_head;
	if (s->sse_head)
		s->sse_head->sse_prev = c;
	s->sse_head = c;
	s->nsse++;
}

static void
sse_send(struct web_conn *c, const char *text, size_t n)
{
	if (c->outlen - c->outoff > WEB_SSE_MAX_QUEUED) {
		conn_close(c, "event stream fell behind");
		return;
	}
	if (out_append(c, text, n) == -1) {
		conn_close(c, "out of memory");
		return;
	}
	conn_flush(c);
}

void
web_sse_broadcast(struct web_server *s, const char *event, const char *data)
{
	struct web_conn *c, *next;
	char msg[512];
	int n;

	n = snprintf(msg, sizeof(msg), "event: %s\ndata: %s\n\n", event, data);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return;
	for (c = s->sse_head; c; c = next) {
		next = c->sse_next;
		sse_send(c, msg, (size_t)n);
	}
}

static void
ping_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct web_server *s = w->data;
	struct web_conn *c, *next;

	(void)loop;
	(void)revents;
	for (c = s->sse_head; c; c = next) {
		next = c->sse_next;
		sse_send(c, ": ping\n\n", 8);
	}
}

/* --- requests ---------------------------------------------------------------- */

static void
conn_close(struct web_conn *c, const char *why)
{
	struct web_server *s = c->srv;

	if (c->dead)
		return;
	log_debug("%s: closed: %s", c->peer, why);
	sse_unlink(c);
	idle_unlink(c);
	ev_io_stop(s->loop, &c->io);
	close(c->fd);
	c->fd = -1;
	c->dead = true;
	s->nconns--;
	if (c->held || c->in_handler)
		return;		/* freed by web_conn_release or conn_process */
	free(c->out);
	free(c);
}

/* Before any route: the Host, then the token.  True if the request may go on. */
static bool
guard(struct web_server *s, struct web_conn *c, const struct web_req *req)
{
	char tok[WEB_TOKEN_LEN + 2];
	int n;

	if (!web_host_ok(req->host, c->local, s->port)) {
		s->refused_403++;
		log_info("%s: refused: Host '%.80s' is not this viewer's address",
		    c->peer, req->host ? req->host : "(none)");
		web_respond_error(c, 403, "this viewer answers to its own address "
		    "and localhost only");
		return false;
	}
	/*
	 * Opening the URL with ?token=T sets the cookie and sends the browser
	 * to the page without the token in its address bar (the fragment, the
	 * page's state, is kept by the browser).  The API takes the cookie or
	 * a Bearer header only: a token in an API URL ends up in histories.
	 */
	if (strcmp(req->method, "GET") == 0 && strncmp(req->path, "/api/", 5) != 0 &&
	    (n = web_query_get(req->query, "token", tok, sizeof(tok))) >= 0) {
		char extra[256];

		if (!web_token_eq(tok, (size_t)n, s->token)) {
			s->refused_401++;
			web_respond_error(c, 401, "wrong access token");
			return false;
		}
		snprintf(extra, sizeof(extra), "Set-Cookie: " WEB_TOKEN_COOKIE
		    "=%s; Path=/; HttpOnly; SameSite=Strict\r\nLocation: /\r\n",
		    s->token);
		web_respond(c, 303, "text/plain; charset=utf-8", "", 0, extra);
		return false;
	}
	if (!web_authorized(req->authorization, req->cookie, s->token)) {
		s->refused_401++;
		web_respond_error(c, 401, "open the URL with the access token that "
		    "'localcapctl web' printed (or send Authorization: Bearer)");
		return false;
	}
	if (strcmp(req->method, "POST") == 0 && !web_post_ok(req->origin,
	    req->sec_fetch_site, req->content_type, req->host)) {
		s->refused_403++;
		web_respond_error(c, 403, "a POST must come from this page, "
		    "with a JSON body");
		return false;
	}
	return true;
}

static void
conn_process(struct web_conn *c)
{
	struct web_server *s = c->srv;
	static struct web_req req;	/* one at a time; 20 KiB off the stack */
	size_t used = 0;
	enum web_parse r;

	while (!c->dead && !c->busy && !c->close_after && c->inlen > 0) {
		r = web_req_parse(&req, c->in, c->inlen, &used);
		if (r == WEB_PARSE_MORE)
			return;
		c->busy = true;
		c->answered = false;
		c->head_only = false;
		c->keep_alive = false;
		if (r == WEB_PARSE_ERROR) {
			s->bad_requests++;
			log_info("%s: bad request: %s", c->peer, req.error);
			web_respond_error(c, req.error_status, req.error);
			conn_flush(c);
			return;
		}
		s->requests++;
		c->keep_alive = req.keep_alive;
		c->head_only = strcmp(req.method, "HEAD") == 0;
		c->in_handler = true;
		if (guard(s, c, &req))
			s->handler(s, c, &req, s->handler_arg);
		c->in_handler = false;
		if (c->dead) {
			if (!c->held) {
				free(c->out);
				free(c);
			}
			return;
		}
		if (!c->answered && !c->held)
			web_respond_error(c, 500, "no answer");
		/* The request's bytes are done with (the handler copied what
		 * it keeps). */
		memmove(c->in, c->in + used, c->inlen - used);
		c->inlen -= used;
		if (c->held || c->sse) {
			conn_flush(c);
			return;
		}
		c->busy = false;
		if (conn_flush(c) == -1)
			return;
	}
}

static void
conn_read(struct web_conn *c)
{
	ssize_t n;

	if (c->inlen == sizeof(c->in)) {
		/* Only a request larger than any we accept fills it. */
		conn_watch(c, c->outoff < c->outlen ? EV_WRITE : 0);
		return;
	}
	n = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
	if (n < 0 && (errno == EAGAIN || errno == EINTR || errno == EWOULDBLOCK))
		return;
	if (n <= 0) {
		conn_close(c, n == 0 ? "peer closed" : "read failed");
		return;
	}
	c->inlen += (size_t)n;
	idle_touch(c);
	if (c->sse) {
		c->inlen = 0;	/* a stream's client has nothing more to say */
		return;
	}
	conn_process(c);
}

static void
conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct web_conn *c = w->data;

	(void)loop;
	if ((revents & EV_WRITE) && conn_flush(c) == -1)
		return;
	if ((revents & EV_READ) && !c->dead)
		conn_read(c);
}

static void
addr_text(const struct sockaddr_storage *ss, char *buf, size_t len,
    unsigned *port)
{
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, buf, (socklen_t)len);
		*port = ntohs(s6->sin6_port);
	} else {
		const struct sockaddr_in *s4 = (const void *)ss;

		inet_ntop(AF_INET, &s4->sin_addr, buf, (socklen_t)len);
		*port = ntohs(s4->sin_port);
	}
}

static void
accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct web_server *s = w->data;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct web_conn *c;
	unsigned port;
	int fd;

	(void)revents;
	if ((fd = accept4(w->fd, (struct sockaddr *)&ss, &sl,
	    SOCK_NONBLOCK | SOCK_CLOEXEC)) == -1) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			log_warn("accept");
		return;
	}
	if (s->nconns >= WEB_MAX_CONNS || (c = calloc(1, sizeof(*c))) == NULL) {
		log_warnx("too many connections (%zu): one refused", s->nconns);
		close(fd);
		return;
	}
	c->srv = s;
	c->fd = fd;
	{
		char a[INET6_ADDRSTRLEN] = "?";

		addr_text(&ss, a, sizeof(a), &port);
		snprintf(c->peer, sizeof(c->peer), "%s:%u", a, port);
	}
	sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		addr_text(&ss, c->local, sizeof(c->local), &port);
	s->nconns++;
	ev_io_init(&c->io, conn_io_cb, fd, EV_READ);
	c->io.data = c;
	c->events = EV_READ;
	ev_io_start(loop, &c->io);
	idle_touch(c);
}

/* --- listening ------------------------------------------------------------------- */

int
web_server_listen(struct web_server *s, const char *addr, char *err,
    size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon, *h;
	unsigned long port;
	char *end;
	size_t hl;
	int fd, one = 1;

	if (s->nlisten >= WEB_MAX_LISTEN) {
		snprintf(err, errlen, "at most %d listen addresses",
		    WEB_MAX_LISTEN);
		return -1;
	}
	memset(&ss, 0, sizeof(ss));
	if (addr[0] == '[') {
		colon = strstr(addr, "]:");
		h = addr + 1;
		hl = colon ? (size_t)(colon - h) : 0;
		colon = colon ? colon + 1 : NULL;
	} else {
		colon = strrchr(addr, ':');
		h = addr;
		hl = colon ? (size_t)(colon - addr) : 0;
	}
	if (colon == NULL || hl == 0 || hl >= sizeof(host)) {
		snprintf(err, errlen, "'%s': expected ADDR:PORT (127.0.0.1:8081, "
		    "[::1]:8081)", addr);
		return -1;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || port > 65535) {
		snprintf(err, errlen, "'%s': bad port", addr);
		return -1;
	}
	if (s->nlisten > 0 && port == 0)
		port = s->port;
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
		sl = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, host,
	    &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
		sl = sizeof(struct sockaddr_in6);
	} else {
		snprintf(err, errlen, "'%s': the address must be numeric "
		    "(127.0.0.1, ::1): a viewer never resolves names", host);
		return -1;
	}
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) == -1 || listen(fd, 128) == -1) {
		snprintf(err, errlen, "%s: %s", addr, strerror(errno));
		close(fd);
		return -1;
	}
	sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == -1) {
		snprintf(err, errlen, "getsockname: %s", strerror(errno));
		close(fd);
		return -1;
	}
	s->port = ss.ss_family == AF_INET6 ?
	    ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) :
	    ntohs(((struct sockaddr_in *)&ss)->sin_port);
	s->lfd[s->nlisten++] = fd;
	return 0;
}

void
web_server_start(struct web_server *s, struct ev_loop *loop,
    web_handler_fn handler, void *arg)
{
	size_t i;

	s->loop = loop;
	s->handler = handler;
	s->handler_arg = arg;
	for (i = 0; i < s->nlisten; i++) {
		ev_io_init(&s->lio[i], accept_cb, s->lfd[i], EV_READ);
		s->lio[i].data = s;
		ev_io_start(loop, &s->lio[i]);
	}
	ev_init(&s->idle_timer, idle_cb);
	s->idle_timer.repeat = WEB_IDLE_TIMEOUT;
	s->idle_timer.data = s;
	ev_timer_again(loop, &s->idle_timer);
	ev_timer_init(&s->ping_timer, ping_cb, WEB_SSE_PING, WEB_SSE_PING);
	s->ping_timer.data = s;
	ev_timer_start(loop, &s->ping_timer);
}

void
web_server_stop(struct web_server *s)
{
	size_t i;

	for (i = 0; i < s->nlisten; i++) {
		ev_io_stop(s->loop, &s->lio[i]);
		close(s->lfd[i]);
	}
	s->nlisten = 0;
	while (s->sse_head)
		conn_close(s->sse_head, "shutting down");
	while (s->idle_head)
		conn_close(s->idle_head, "shutting down");
	ev_timer_stop(s->loop, &s->idle_timer);
	ev_timer_stop(s->loop, &s->ping_timer);
}
