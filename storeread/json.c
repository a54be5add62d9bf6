/*
 * JSON of entries and flows: what `localcapctl flows --json` and `show
 * --json` print and the viewer's API serves, written in one place so the
 * two stay byte for byte the same.  Every string goes through json_str_n
 * (always valid JSON, whatever bytes were recorded), and stored JSON lists
 * (headers, DNS answers) are re-encoded, not copied, so a damaged or
 * hostile store cannot break the output.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "storeread/internal.h"
#include "utf8.h"

/* --- small writers ------------------------------------------------------------------- */

static void
jstr(FILE *out, const char *s)
{
	if (s == NULL)
		fputs("null", out);
	else
		json_str_n(out, s, strlen(s));
}

/* ,"key":value — a string or null. */
static void
kstr(FILE *out, const char *key, const char *s)
{
	fprintf(out, ",\"%s\":", key);
	jstr(out, s);
}

/* ,"key":N — null when unknown (-1). */
static void
kint(FILE *out, const char *key, int64_t v)
{
	if (v < 0)
		fprintf(out, ",\"%s\":null", key);
	else
		fprintf(out, ",\"%s\":%" PRId64, key, v);
}

static void
kbool(FILE *out, const char *key, int v)
{
	fprintf(out, ",\"%s\":%s", key, v < 0 ? "null" : v ? "true" : "false");
}

static void
kaddr(FILE *out, const char *key, const char *addr, int port)
{
	char buf[128];

	if (addr == NULL) {
		fprintf(out, ",\"%s\":null", key);
		return;
	}
	sr_fmt_addr(buf, sizeof(buf), addr, port);
	kstr(out, key, buf);
}

struct jlist {
	FILE	*out;
	bool	 first;
};

static void
header_json(void *ctx, const char *name, size_t nl, const char *value,
    size_t vl)
{
	struct jlist *l = ctx;

	fputs(l->first ? "[" : ",[", l->out);
	l->first = false;
	json_str_n(l->out, name, nl);
	putc(',', l->out);
	json_str_n(l->out, value, vl);
	putc(']', l->out);
}

/* ,"key":[[name,value],…] re-encoded, or null. */
static void
kheaders(struct sr_store *st, FILE *out, const char *key, const char *json)
{
	struct jlist l = { out, true };

	fprintf(out, ",\"%s\":", key);
	if (json == NULL) {
		fputs("null", out);
		return;
	}
	putc('[', out);
	(void)sr_headers_each(st, json, header_json, &l);
	putc(']', out);
}

static void
answer_json(void *ctx, const char *name, const char *type, int64_t ttl,
    const char *data)
{
	struct jlist *l = ctx;

	fputs(l->first ? "{\"name\":" : ",{\"name\":", l->out);
	l->first = false;
	jstr(l->out, name);
	kstr(l->out, "type", type);
	kint(l->out, "ttl", ttl);
	kstr(l->out, "data", data);
	putc('}', l->out);
}

static void
kanswers(struct sr_store *st, FILE *out, const char *key, const char *json)
{
	struct jlist l = { out, true };

	fprintf(out, ",\"%s\":", key);
	if (json == NULL) {
		fputs("null", out);
		return;
	}
	putc('[', out);
	(void)sr_answers_each(st, json, answer_json, &l);
	putc(']', out);
}

static void
kblob(FILE *out, const char *key, const uint8_t *p, size_t n)
{
	fprintf(out, ",\"%s\":", key);
	if (p == NULL || n == 0) {
		fputs("null", out);
		return;
	}
	putc('"', out);
	sr_base64(out, p, n);
	putc('"', out);
}

/* ,"grpc":{"status","message","request_messages","response_messages"}|null */
static void
kgrpc(FILE *out, int64_t status, const char *message, int64_t req,
    int64_t resp)
{
	if (req < 0 && resp < 0 && status < 0 && message == NULL) {
		fputs(",\"grpc\":null", out);
		return;
	}
	fputs(",\"grpc\":{\"status\":", out);
	if (status < 0)
		fputs("null", out);
	else
		fprintf(out, "%" PRId64, status);
	kstr(out, "message", message);
	kint(out, "request_messages", req);
	kint(out, "response_messages", resp);
	putc('}', out);
}

/* --- flows and entries ------------------------------------------------------------------ */

static void
flow_json(FILE *out, const struct sr_flow *f, bool first_bytes)
{
	char iso[40];

	sr_fmt_iso(iso, sizeof(iso), f->start_us);
	fprintf(out, "{\"id\":%" PRId64, f->id);
	kstr(out, "transport", f->transport);
	kaddr(out, "src", f->src_addr, f->src_port);
	kaddr(out, "dst", f->dst_addr, f->dst_port);
	fprintf(out, ",\"pid\":%" PRId64, f->pid);
	kstr(out, "process", f->process);
	kstr(out, "exe", f->exe);
	kint(out, "uid", f->uid);
	kint(out, "gid", f->gid);
	kstr(out, "cgroup", f->cgroup);
	fprintf(out, ",\"start\":\"%s\",\"start_us\":%" PRId64, iso, f->start_us);
	kint(out, "end_us", f->end_us);
	kint(out, "duration_us", f->end_us >= f->start_us ?
	    f->end_us - f->start_us : -1);
	kstr(out, "end_reason", f->end_reason);
	kstr(out, "error", f->error);
	kstr(out, "protocol", f->protocol);
	kstr(out, "host", f->host);
	kint(out, "bytes_up", f->bytes_up);
	kint(out, "bytes_down", f->bytes_down);
	kint(out, "packets_up", f->packets_up);
	kint(out, "packets_down", f->packets_down);
	kint(out, "retransmits", f->retransmits);
	kint(out, "rtt_us", f->rtt_us);
	kint(out, "connect_us", f->connect_us);
	kint(out, "tls_handshake_us", f->tls_handshake_us);
	if (f->tls_version || f->sni || f->upstream_tls_version) {
		fputs(",\"tls\":{\"version\":", out);
		jstr(out, f->tls_version);
		kstr(out, "cipher", f->tls_cipher);
		kbool(out, "resumed", f->tls_resumed);
		kstr(out, "sni", f->sni);
		kstr(out, "alpn", f->alpn);
		kstr(out, "alpn_offered", f->client_alpn_offer);
		kstr(out, "upstream_version", f->upstream_tls_version);
		kstr(out, "upstream_cipher", f->upstream_tls_cipher);
		kbool(out, "upstream_resumed", f->upstream_resumed);
		putc('}', out);
	} else
		fputs(",\"tls\":null", out);
	if (f->cert_subject || f->cert_sha256) {
		fputs(",\"server_cert\":{\"subject\":", out);
		jstr(out, f->cert_subject);
		kstr(out, "issuer", f->cert_issuer);
		kstr(out, "sha256", f->cert_sha256);
		kbool(out, "verified", f->cert_verified);
		putc('}', out);
	} else
		fputs(",\"server_cert\":null", out);
	kstr(out, "passthrough_reason", f->passthrough_reason);
	kint(out, "done_serial", f->done_serial);
	if (first_bytes) {
		kblob(out, "first_up", f->first_up, f->first_up_len);
		kblob(out, "first_down", f->first_down, f->first_down_len);
	}
	putc('}', out);
}

void
sr_flow_json(FILE *out, const struct sr_flow *f)
{
	flow_json(out, f, true);
}

void
sr_entry_json(struct sr_store *st, FILE *out, const struct sr_entry *e)
{
	const struct sr_flow *f = &e->flow;
	bool http = e->kind && strcmp(e->kind, "http") == 0;
	bool dns = e->kind && strcmp(e->kind, "dns") == 0;
	char iso[40], dst[128];

	/* The fields localcapctl printed before schema 4 come first. */
	sr_fmt_iso(iso, sizeof(iso), e->key.start_us);
	if (e->key.seq)
		fprintf(out, "{\"id\":\"%" PRId64 ".%" PRId64 "\",\"flow\":%"
		    PRId64 ",\"seq\":%" PRId64, e->key.flow, e->key.seq,
		    e->key.flow, e->key.seq);
	else
		fprintf(out, "{\"id\":\"%" PRId64 "\",\"flow\":%" PRId64
		    ",\"seq\":null", e->key.flow, e->key.flow);
	kstr(out, "kind", e->kind);
	fprintf(out, ",\"start\":\"%s\",\"start_us\":%" PRId64, iso,
	    e->key.start_us);
	kint(out, "duration_us", e->end_us >= e->key.start_us ?
	    e->end_us - e->key.start_us : -1);
	fprintf(out, ",\"pid\":%" PRId64, f->pid);
	kstr(out, "process", f->process);
	kstr(out, "proto", e->proto);
	kstr(out, "method", http ? e->method : NULL);
	kstr(out, "host", e->host);
	kstr(out, "path", e->path);
	kstr(out, "url", e->url);
	if (dns)
		kstr(out, "qtype", e->method);
	if (e->status < 0)
		fputs(",\"status\":null", out);
	else
		fprintf(out, ",\"status\":%d", e->status);
	kstr(out, "result", e->result);
	if (e->bytes_up < 0)
		fputs(",\"bytes_up\":null,\"bytes_down\":null", out);
	else {
		kint(out, "bytes_up", e->bytes_up);
		kint(out, "bytes_down", e->bytes_down);
	}
	if (f->dst_addr) {
		sr_fmt_addr(dst, sizeof(dst), f->dst_addr, f->dst_port);
		kstr(out, "dst", dst);
	} else
		fputs(",\"dst\":null", out);
	/* The source's TCP figures of the entry's flow, or null. */
	if (f->transport && strcmp(f->transport, "tcp") == 0 &&
	    f->retransmits >= 0) {
		fputs(",\"tcp\":{\"packets_up\":", out);
		if (f->packets_up < 0)
			fputs("null,\"packets_down\":null", out);
		else
			fprintf(out, "%" PRId64 ",\"packets_down\":%" PRId64,
			    f->packets_up, f->packets_down);
		fprintf(out, ",\"retransmits\":%" PRId64, f->retransmits);
		kint(out, "rtt_us", f->rtt_us);
		putc('}', out);
	} else
		fputs(",\"tcp\":null", out);

	/* Schema 4: everything show prints of the entry and its flow. */
	kstr(out, "error", e->error);
	kstr(out, "http_version", http ? e->http_version : NULL);
	kstr(out, "reason", e->reason);
	kint(out, "req_end_us", e->req_end_us);
	kint(out, "resp_start_us", e->resp_start_us);
	kint(out, "resp_end_us", e->resp_end_us);
	if (http) {
		kbool(out, "req_body_truncated", e->req_truncated);
		kbool(out, "resp_body_truncated", e->resp_truncated);
	}
	kheaders(st, out, "request_headers", http ? e->req_headers : NULL);
	kheaders(st, out, "response_headers", http ? e->resp_headers : NULL);
	if (http) {
		kheaders(st, out, "request_trailers", e->req_trailers);
		kheaders(st, out, "response_trailers", e->resp_trailers);
		kgrpc(out, e->grpc_status, e->grpc_message,
		    e->grpc_req_messages, e->grpc_resp_messages);
	}
	if (dns)
		kanswers(st, out, "answers", e->answers);
	kint(out, "done_serial", e->done_serial);
	/* A flow's own entry carries its first bytes, as show prints them. */
	fputs(",\"conn\":", out);
	flow_json(out, f, !http && !dns);
	putc('}', out);
}

/* --- one flow in full ---------------------------------------------------------------------- */

struct detail {
	struct sr_store	*st;
	FILE		*out;
	bool		 first, bodies, found;
	struct sr_flow	 flow;	/* (copied only to say it exists) */
};

static int
detail_flow(void *ctx, const struct sr_flow *f)
{
	struct detail *d = ctx;

	fputs("{\"flow\":", d->out);
	flow_json(d->out, f, true);
	return 0;
}

static void
kbody(FILE *out, const char *key, const uint8_t *p, size_t n)
{
	fprintf(out, ",\"%s\":", key);
	if (p == NULL && n == 0) {
		fputs("null", out);
		return;
	}
	if (utf8_is_text(p, n)) {
		fputs("{\"text\":", out);
		json_str_n(out, p, n);
	} else {
		fputs("{\"base64\":\"", out);
		sr_base64(out, p, n);
		putc('"', out);
	}
	putc('}', out);
}

static int
detail_exchange(void *ctx, const struct sr_exchange *x)
{
	struct detail *d = ctx;
	FILE *out = d->out;

	fprintf(out, "%s{\"id\":\"%" PRId64 ".%" PRId64 "\",\"seq\":%" PRId64,
	    d->first ? "" : ",", x->flow, x->seq, x->seq);
	d->first = false;
	kstr(out, "scheme", x->scheme);
	kstr(out, "method", x->method);
	kstr(out, "target", x->target);
	kstr(out, "url", x->url);
	kstr(out, "host", x->host);
	kstr(out, "http_version", x->http_version);
	if (x->status < 0)
		fputs(",\"status\":null", out);
	else
		fprintf(out, ",\"status\":%d", x->status);
	kstr(out, "reason", x->reason);
	kheaders(d->st, out, "request_headers", x->req_headers);
	kheaders(d->st, out, "response_headers", x->resp_headers);
	kheaders(d->st, out, "request_trailers", x->req_trailers);
	kheaders(d->st, out, "response_trailers", x->resp_trailers);
	kgrpc(out, x->grpc_status, x->grpc_message, x->grpc_req_messages,
	    x->grpc_resp_messages);
	kint(out, "req_body_size", x->req_body_size);
	kint(out, "resp_body_size", x->resp_body_size);
	kint(out, "req_body_kept", (int64_t)x->req_body_len);
	kint(out, "resp_body_kept", (int64_t)x->resp_body_len);
	kbool(out, "req_body_truncated", x->req_truncated);
	kbool(out, "resp_body_truncated", x->resp_truncated);
	kint(out, "req_start_us", x->req_start_us);
	kint(out, "req_end_us", x->req_end_us);
	kint(out, "resp_start_us", x->resp_start_us);
	kint(out, "resp_end_us", x->resp_end_us);
	kstr(out, "error", x->error);
	kint(out, "done_serial", x->done_serial);
	if (d->bodies) {
		kbody(out, "req_body", x->req_body, x->req_body_len);
		kbody(out, "resp_body", x->resp_body, x->resp_body_len);
	}
	putc('}', out);
	return 0;
}

static int
detail_dns(void *ctx, const struct sr_dns *m)
{
	struct detail *d = ctx;
	FILE *out = d->out;

	fprintf(out, "%s{\"id\":\"%" PRId64 ".%" PRId64 "\",\"seq\":%" PRId64,
	    d->first ? "" : ",", m->flow, m->seq, m->seq);
	d->first = false;
	fprintf(out, ",\"msg_id\":%d", m->msg_id);
	kstr(out, "qname", m->qname);
	kstr(out, "qtype", m->qtype);
	kint(out, "query_us", m->query_us);
	kint(out, "response_us", m->response_us);
	kstr(out, "rcode", m->rcode);
	kanswers(d->st, out, "answers", m->answers);
	kstr(out, "error", m->error);
	putc('}', out);
	return 0;
}

static int
count_cb(void *ctx, const void *unused)
{
	(void)unused;
	(*(long *)ctx)++;
	return 0;
}

static int
count_x(void *ctx, const struct sr_exchange *x)
{
	return count_cb(ctx, x);
}

static int
count_d(void *ctx, const struct sr_dns *m)
{
	return count_cb(ctx, m);
}

static int
flow_seen(void *ctx, const struct sr_flow *f)
{
	(void)f;
	*(bool *)ctx = true;
	return 0;
}

int
sr_detail_json(struct sr_store *st, FILE *out, int64_t flow, int64_t seq,
    bool bodies)
{
	struct detail d = { .st = st, .out = out, .bodies = bodies };
	bool exists = false;
	long nx = 0, nd = 0;
	int rc;

	/* Check first, so that nothing is written for a missing id. */
	if ((rc = sr_flow_get(st, flow, flow_seen, &exists)) != 0)
		return rc;
	if (seq) {
		if (sr_exchanges(st, flow, seq, false, count_x, &nx) < 0 ||
		    sr_dns_list(st, flow, seq, count_d, &nd) < 0)
			return -1;
		if (nx + nd == 0) {
			sr_seterr(st, "flow %" PRId64 " has no exchange %" PRId64,
			    flow, seq);
			return 1;
		}
	}
	if ((rc = sr_flow_get(st, flow, detail_flow, &d)) != 0)
		return rc;
	fputs(",\"exchanges\":[", out);
	d.first = true;
	if (sr_exchanges(st, flow, seq, bodies, detail_exchange, &d) < 0)
		return -1;
	fputs("],\"dns\":[", out);
	d.first = true;
	if (sr_dns_list(st, flow, seq, detail_dns, &d) < 0)
		return -1;
	fputs("]}", out);
	return 0;
}
