/*
 * Detection: what a TCP flow's first bytes are.  A ClientHello goes to the
 * TLS layer (relay_tls.c) unless its host passes through; an HTTP/1
 * request on a plain flow gets the HTTP/1 protocol layer (layer_http1.c),
 * which then observes it; the HTTP/2 connection preface (prior-knowledge
 * h2c) gets the HTTP/2 layer, driven by relay_layer.c; anything else, or
 * an --ignore-hosts match, is relayed raw.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "proxyd/detect.h"
#include "proxyd/h2.h"
#include "proxyd/hostmatch.h"
#include "proxyd/layer.h"
#include "proxyd/mitm.h"
#include "proxyd/passmap.h"
#include "proxyd/relay.h"
#include "proxyd/relay_int.h"
#include "proxyd/tlshello.h"

/* --- the protocol layer of a plain flow ------------------------------------------ */

void
rflow_proto_start(struct rflow *f, const char *scheme, const char *host)
{
	struct layer_env env;

	if (!recorder_layer_env(f, &env, scheme, host))
		return;
	f->proto = layer_http1_new(&env);
	f->http_seen = f->proto != NULL;
}

/*
 * The HTTP/2 layer, for a flow whose both legs speak h2.  It terminates h2
 * on each leg, so it goes on whether or not there is a store to record
 * into; only out of memory leaves the flow to the raw relay (the two legs
 * agreed on h2, so relaying their bytes unchanged still works).
 */
void
rflow_proto_start_h2(struct rflow *f, const char *scheme, const char *host)
{
	struct layer_env env;

	if (!recorder_layer_env(f, &env, scheme, host)) {
		memset(&env, 0, sizeof(env));
		env.flow_id = f->rec.id;
		env.scheme = scheme;
		env.default_host = host;
	}
	f->proto = layer_h2_new(&env);
	f->http_seen = f->proto != NULL;
}

/* The layer stopped looking (bad input): the flow goes on raw. */
static void
proto_stop(struct rflow *f)
{
	f->proto->ops->free(f->proto, relay_realtime_us(), NULL);
	f->proto = NULL;
}

void
rflow_proto_observe(struct rflow *f, int from_app, const void *p, size_t n)
{
	if (f->proto != NULL && f->proto->ops->observe(f->proto, from_app ?
	    LAYER_CLIENT : LAYER_SERVER, p, n, relay_realtime_us()) == -1)
		proto_stop(f);
}

void
rflow_proto_observe_eof(struct rflow *f, int from_app)
{
	if (f->proto != NULL && f->proto->ops->observe_eof(f->proto, from_app ?
	    LAYER_CLIENT : LAYER_SERVER, relay_realtime_us()) == -1)
		proto_stop(f);
}

/* --- detection ------------------------------------------------------------------ */

/*
 * A plain (not TLS) flow's first bytes from the app are in a2u, nothing of
 * them sent yet: if they start like an HTTP/1.x request, observe the flow.
 * Looked at once; a server that spoke first is not answering HTTP.
 */
void
rflow_http_sniff(struct rflow *f)
{
	const uint8_t *p = f->a2u.data + f->a2u.head;
	size_t n = f->a2u.len;
	enum detect_proto d;
	char host[64];

	if (f->sniffed || f->detecting || f->m != NULL || n == 0)
		return;
	f->sniffed = 1;
	if (f->rec.protocol != NULL || f->rec.bytes_to_app > 0 ||
	    f->rec.bytes_from_app != n ||
	    f->a2u.head + n > f->a2u.cap)
		return;
	d = detect_tcp(p, n);
	if (d == DETECT_HTTP2) {
		/*
		 * Prior-knowledge h2c: the HTTP/2 layer re-frames, so the
		 * bytes go through it (relay_layer.c), the preface first.
		 */
		rflow_proto_start_h2(f, "http", f->rec.meta.host[0] != '\0' ?
		    f->rec.meta.host : flow_addr_str(&f->rec.meta.dst, host,
		    sizeof(host)));
		f->layer_pump = f->proto != NULL;
		return;
	}
	if (d != DETECT_HTTP1 && d != DETECT_NEED_MORE)
		return;
	rflow_proto_start(f, "http", f->rec.meta.host[0] != '\0' ? f->rec.meta.host :
	    flow_addr_str(&f->rec.meta.dst, host, sizeof(host)));
	rflow_proto_observe(f, 1, p, n);
}

/* Connect failed and the client said nothing in time: not for a 502. */
void
rflow_grace_expired(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct rflow *f = w->data;

	(void)loop;
	(void)revents;
	if (f->detecting && f->a2u.len == 0)
		rflow_end(f, FLOW_END_CONNECT_FAILED, f->connect_err);
}

/*
 * The app's first bytes are in a2u (from offset 0: nothing has left it
 * yet).  Decide: a ClientHello goes to the engine, unless its host is being
 * passed through; anything else, or a hello that does not come complete
 * within the buffer, is relayed raw.  Non-TLS flows are decided on their
 * first byte, so a protocol that sends a few bytes and waits is not held.
 * -1 if the flow ended (freed).
 */
int
rflow_detect(struct rflow *f)
{
	struct relay *r = f->relay;
	const uint8_t *p = f->a2u.data;
	size_t n = f->a2u.len, full = f->a2u.data != NULL ? f->a2u.cap :
	    r->cfg.bufsize;
	struct tls_client_hello ch;
	enum tlshello_result hr;
	const char *ignored = NULL;
	char addr[64], *colon;

	if (n == 0 && !f->app.eof)
		return 0;
	/*
	 * The start of the HTTP/2 preface (prior-knowledge h2c) waits for the
	 * rest, so that rflow_http_sniff() sees it whole: split across reads,
	 * it would otherwise go out raw and never be looked at.
	 */
	if (n < H2_PREFACE_LEN && !f->app.eof && n < full &&
	    memcmp(p, H2_PREFACE, n) == 0)
		return 0;
	if (n == 0 || p[0] != 0x16)
		goto raw;
	switch (detect_tcp(p, n)) {
	case DETECT_NEED_MORE:
		if (!f->app.eof && n < full)
			return 0;
		goto raw;
	case DETECT_TLS:
		break;
	default:
		goto raw;
	}
	hr = tlshello_parse(p, n, &ch);
	if (hr == TLSHELLO_NEED_MORE && !f->app.eof && n < full) {
		tlshello_free(&ch);
		return 0;
	}
	/*
	 * The host a rejection is remembered by: the SNI, else the host the
	 * source knows (explicit proxy), else the address.
	 */
	if (hr == TLSHELLO_OK && ch.sni[0] != '\0')
		passmap_key(f->host, ch.sni);
	else if (f->rec.meta.host[0] != '\0')
		passmap_key(f->host, f->rec.meta.host);
	else {
		flow_addr_str(&f->rec.meta.dst, addr, sizeof(addr));
		if ((colon = strrchr(addr, ':')) != NULL)
			*colon = '\0';
		passmap_key(f->host, addr);
	}
	if (hr == TLSHELLO_OK && ch.sni[0] != '\0')
		ignored = hostmatch_find(r->cfg.ignore, ch.sni,
		    f->rec.meta.dst.port);
	tlshello_free(&ch);
	f->rec.protocol = "tls";
	f->detecting = 0;
	if (ignored != NULL)
		snprintf(f->pass_reason, sizeof(f->pass_reason),
		    "matches --ignore-hosts '%s'", ignored);
	else if (passmap_has(&r->pass, f->host, ev_now(r->loop)))
		snprintf(f->pass_reason, sizeof(f->pass_reason),
		    "client refused our certificate for this host earlier");
	if (f->pass_reason[0] != '\0') {
		f->rec.tls_passthrough = 1;
		snprintf(f->rec.tls_sni, sizeof(f->rec.tls_sni), "%s", f->host);
		r->stats.tls_passthrough++;
		goto decided;
	}
	return rflow_tls_start(f);

raw:
	f->detecting = 0;
decided:
	if (f->connect_err) {
		rflow_end(f, FLOW_END_CONNECT_FAILED, f->connect_err);
		return -1;
	}
	return 0;
}

/*
 * --ignore-hosts: the pattern a new flow's destination matches (the host
 * its source named, else its address), or NULL.
 */
const char *
rflow_ignore_match(const struct rflow *f)
{
	const struct flow_meta *m = &f->rec.meta;
	const char *pat = NULL;
	char addr[64], *colon;

	if (f->relay->cfg.ignore == NULL)
		return NULL;
	if (m->host[0] != '\0')
		pat = hostmatch_find(f->relay->cfg.ignore, m->host, m->dst.port);
	if (pat == NULL) {
		flow_addr_str(&m->dst, addr, sizeof(addr));
		if ((colon = strrchr(addr, ':')) != NULL)
			*colon = '\0';
		pat = hostmatch_find(f->relay->cfg.ignore, addr, m->dst.port);
	}
	return pat;
}

