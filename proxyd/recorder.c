/*
 * The recorder: what the flow store learns about a flow, from the relay's
 * side.  A row at the flow's start, exchanges as the protocol layer
 * reports them (layer.h: layer_recorder), DNS messages as they pass, and
 * the flow's facts (protocol, TLS handshakes, certificate) at its end.
 * Never blocks the relay: the store's writes are its own concern.
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
#include "proxyd/layer.h"
#include "proxyd/mitm.h"
#include "proxyd/relay.h"
#include "proxyd/relay_int.h"
#include "proxyd/store.h"

/* An exchange from the flow's protocol layer. */
static void
exchange(void *arg, const struct store_http *h)
{
	struct rflow *f = arg;

	(void)store_http_add(f->relay->cfg.store, f->store_row, h);
}

/*
 * What the store learns about a flow as it ends: its protocol, and for TLS
 * the handshakes' facts.  UDP to port 53 is DNS: its messages were
 * recorded as such (udp_pump).
 */
static const struct store_flow_facts *
flow_facts(struct rflow *f, struct store_flow_facts *fa)
{
	const struct mitm_info *in;

	if (f->refused[0] != '\0') {
		memset(fa, 0, sizeof(*fa));
		fa->error = f->refused;
		return fa;
	}

	if (f->ignored) {
		memset(fa, 0, sizeof(*fa));
		fa->protocol = "raw";
		fa->passthrough_reason = f->pass_reason;
		return fa;
	}
	if (f->quic != NULL && qgate_is_quic(f->quic)) {
		memset(fa, 0, sizeof(*fa));
		fa->protocol = "quic";
		fa->sni = qgate_sni(f->quic)[0] ? qgate_sni(f->quic) : NULL;
		fa->client_alpn_offer = qgate_alpn_offer(f->quic)[0] ?
		    qgate_alpn_offer(f->quic) : NULL;
		fa->passthrough_reason = qgate_pass_reason(f->quic);
		fa->error = qgate_detail(f->quic);
		return fa;
	}
	if (f->rec.meta.transport == FLOW_UDP) {
		if (f->rec.meta.dst.port != 53)
			return NULL;
		memset(fa, 0, sizeof(*fa));
		fa->protocol = "dns";
		return fa;
	}
	if (f->m == NULL && !f->rec.tls_passthrough) {
		if (!f->http_seen)
			return NULL;
		memset(fa, 0, sizeof(*fa));
		fa->protocol = "http";
		return fa;
	}
	memset(fa, 0, sizeof(*fa));
	fa->protocol = "tls";
	if (f->m == NULL) {
		fa->sni = f->rec.tls_sni[0] ? f->rec.tls_sni : NULL;
		fa->passthrough_reason = f->pass_reason;
		return fa;
	}
	in = mitm_get_info(f->m);
	snprintf(f->rec.tls_sni, sizeof(f->rec.tls_sni), "%s", in->sni);
	f->rec.tls_version = in->client_version;
	f->rec.upstream_tls_version = in->upstream_version;
	f->rec.tls_upstream_verified = in->upstream_verified;
	f->rec.tls_error = (int)in->error;
	fa->tls_version = in->client_version;
	fa->tls_cipher = in->client_cipher;
	fa->tls_resumed = in->client_resumed;
	fa->upstream_tls_version = in->upstream_version;
	fa->upstream_tls_cipher = in->upstream_cipher;
	fa->upstream_resumed = in->upstream_resumed;
	fa->sni = in->sni[0] ? in->sni : NULL;
	fa->alpn = in->alpn[0] ? in->alpn : NULL;
	fa->client_alpn_offer = in->client_alpn_offer[0] ?
	    in->client_alpn_offer : NULL;
	if (in->upstream_der != NULL) {
		fa->server_cert_subject = in->upstream_subject;
		fa->server_cert_issuer = in->upstream_issuer;
		fa->server_cert_sha256 = in->upstream_sha256;
		fa->server_cert_der = in->upstream_der;
		fa->server_cert_der_len = in->upstream_der_len;
		fa->server_cert_verified = in->upstream_verified ? 1 : -1;
	}
	fa->error = in->error != MITM_ERR_NONE ? in->reason :
	    f->proto_why[0] != '\0' ? f->proto_why : NULL;
	fa->tls_handshake_us = in->handshake_us;
	return fa;
}

/* In the store from its start, so `localcapctl flows` can see it. */
void
recorder_flow_begin(struct rflow *f)
{
	f->store_row = store_flow_begin(f->relay->cfg.store, &f->rec);
}

bool
recorder_layer_env(struct rflow *f, struct layer_env *env, const char *scheme,
    const char *host)
{
	struct store *st = f->relay->cfg.store;

	if (st == NULL || f->store_row <= 0)
		return false;
	memset(env, 0, sizeof(*env));
	env->flow_id = f->rec.id;
	env->scheme = scheme;
	env->default_host = host;
	env->body_cap = store_body_cap(st);	/* what the store keeps */
	env->budget = f->relay->cfg.budget;
	env->rec.exchange = exchange;
	env->rec.arg = f;
	return true;
}

void
recorder_flow_end(struct rflow *f, bool hold)
{
	struct store *st = f->relay->cfg.store;
	struct store_flow_facts facts;
	const struct store_flow_facts *fp = flow_facts(f, &facts);

	if (hold)
		(void)store_flow_end_held(st, f->store_row, &f->rec, fp);
	else
		(void)store_flow_end(st, f->store_row, &f->rec, fp);
}

/* DNS is recorded message by message, both ways. */
void
recorder_dns(struct rflow *f, const void *msg, size_t len)
{
	(void)store_dns_add_wire(f->relay->cfg.store, f->store_row,
	    relay_realtime_us(), msg, len);
}
