/*
 * HAR 1.2 of recorded HTTP exchanges (`localcapctl export --har`, the
 * viewer's /api/export.har).  Bodies go in as text when they are text,
 * else base64; localcap's own facts under "_localcap".
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "storeread/internal.h"
#include "utf8.h"

#ifndef LOCALCAP_VERSION
#define LOCALCAP_VERSION "0"
#endif

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decoded (and '+' as space) JSON string of s[0..n). */
static void
json_urldecoded(FILE *out, const char *s, size_t n)
{
	char *buf = malloc(n + 1);
	size_t i, k = 0;

	if (buf == NULL) {
		json_str_n(out, s, n);
		return;
	}
	for (i = 0; i < n; i++) {
		if (s[i] == '+')
			buf[k++] = ' ';
		else if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 &&
		    hexval(s[i + 2]) >= 0) {
			buf[k++] = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
			i += 2;
		} else
			buf[k++] = s[i];
	}
	json_str_n(out, buf, k);
	free(buf);
}

static void
har_query(FILE *out, const char *url)
{
	const char *q = url ? strchr(url, '?') : NULL, *end, *amp, *eq;
	bool first = true;

	fputc('[', out);
	if (q) {
		q++;
		end = q + strcspn(q, "#");
		while (q < end) {
			amp = memchr(q, '&', (size_t)(end - q));
			if (amp == NULL)
				amp = end;
			if (amp > q) {
				eq = memchr(q, '=', (size_t)(amp - q));
				fputs(first ? "{\"name\":" : ",{\"name\":", out);
				first = false;
				json_urldecoded(out, q, (size_t)((eq ? eq : amp) - q));
				fputs(",\"value\":", out);
				if (eq)
					json_urldecoded(out, eq + 1,
					    (size_t)(amp - eq - 1));
				else
					fputs("\"\"", out);
				fputc('}', out);
			}
			q = amp + 1;
		}
	}
	fputc(']', out);
}

struct har_headers {
	FILE	*out;
	bool	 first;
	char	 ctype[256];
};

static void
har_header(void *ctx, const char *name, size_t nl, const char *value,
    size_t vl)
{
	struct har_headers *h = ctx;

	fputs(h->first ? "{\"name\":" : ",{\"name\":", h->out);
	h->first = false;
	json_str_n(h->out, name, nl);
	fputs(",\"value\":", h->out);
	json_str_n(h->out, value, vl);
	fputc('}', h->out);
	if (nl == 12 && strncasecmp(name, "content-type", 12) == 0 &&
	    !h->ctype[0] && vl < sizeof(h->ctype) && memchr(value, 0, vl) == NULL)
		memcpy(h->ctype, value, vl + 1);
}

/* HAR headers of a stored list; the Content-Type value into h->ctype. */
static void
har_headers(struct sr_store *st, struct har_headers *h, const char *json)
{
	h->first = true;
	h->ctype[0] = '\0';
	fputc('[', h->out);
	(void)sr_headers_each(st, json, har_header, h);
	fputc(']', h->out);
}

/* content.text / postData.text: text as is, anything else base64. */
static void
har_text(FILE *out, const uint8_t *p, size_t n)
{
	bool b64 = n > 0 && !utf8_is_text(p, n);

	fputs(",\"text\":", out);
	if (b64) {
		fputc('"', out);
		sr_base64(out, p, n);
		fputs("\",\"encoding\":\"base64\"", out);
	} else
		json_str_n(out, p, n);
}

static void
jstr(FILE *out, const char *s)
{
	if (s == NULL)
		fputs("null", out);
	else
		json_str_n(out, s, strlen(s));
}

static double
ms_between(int64_t from, int64_t to)
{
	if (from < 0 || to < 0 || to < from)
		return 0;
	return (double)(to - from) / 1000.0;
}

struct har {
	struct sr_store		*st;
	FILE			*out;
	bool			 first;
	const struct sr_entry	*entry;
	int			 failed;
};

static int
har_exchange(void *ctx, const struct sr_exchange *x)
{
	struct har *h = ctx;
	const struct sr_flow *f = &h->entry->flow;
	FILE *out = h->out;
	struct har_headers hh = { .out = out };
	char iso[40];
	double send = ms_between(x->req_start_us, x->req_end_us), wait, recv;
	const char *ver = x->http_version ? x->http_version : "HTTP/1.1";

	/* No end of request recorded: the wait runs from its start. */
	wait = ms_between(x->req_end_us < 0 ? x->req_start_us : x->req_end_us,
	    x->resp_start_us);
	recv = ms_between(x->resp_start_us, x->resp_end_us);
	sr_fmt_iso(iso, sizeof(iso), x->req_start_us);
	fprintf(out, "%s{\"startedDateTime\":\"%s\",\"time\":%.3f,"
	    "\"request\":{\"method\":", h->first ? "" : ",", iso,
	    send + wait + recv);
	h->first = false;
	jstr(out, x->method ? x->method : "GET");
	fputs(",\"url\":", out);
	jstr(out, x->url ? x->url : "");
	fputs(",\"httpVersion\":", out);
	jstr(out, ver);
	fputs(",\"cookies\":[],\"headers\":", out);
	har_headers(h->st, &hh, x->req_headers);
	fputs(",\"queryString\":", out);
	har_query(out, x->url);
	if (x->req_body_size > 0) {
		fputs(",\"postData\":{\"mimeType\":", out);
		jstr(out, hh.ctype);
		har_text(out, x->req_body, x->req_body_len);
		fputs(",\"params\":[]}", out);
	}
	fprintf(out, ",\"headersSize\":-1,\"bodySize\":%" PRId64 "},",
	    x->req_body_size < 0 ? 0 : x->req_body_size);
	fprintf(out, "\"response\":{\"status\":%d,\"statusText\":",
	    x->status < 0 ? 0 : x->status);
	jstr(out, x->reason ? x->reason : x->error ? x->error : "");
	fputs(",\"httpVersion\":", out);
	jstr(out, x->status < 0 ? "" : ver);
	fputs(",\"cookies\":[],\"headers\":", out);
	har_headers(h->st, &hh, x->resp_headers);
	fprintf(out, ",\"content\":{\"size\":%" PRId64 ",\"mimeType\":",
	    x->resp_body_size < 0 ? 0 : x->resp_body_size);
	jstr(out, hh.ctype[0] ? hh.ctype : "x-unknown");
	har_text(out, x->resp_body, x->resp_body_len);
	if (x->resp_truncated)
		fputs(",\"comment\":\"truncated by localcap\"", out);
	fprintf(out, "},\"redirectURL\":\"\",\"headersSize\":-1,"
	    "\"bodySize\":%" PRId64 "},", x->status < 0 ? -1 :
	    x->resp_body_size < 0 ? 0 : x->resp_body_size);
	fprintf(out, "\"cache\":{},\"timings\":{\"blocked\":-1,\"dns\":-1,"
	    "\"connect\":-1,\"ssl\":-1,\"send\":%.3f,\"wait\":%.3f,"
	    "\"receive\":%.3f},\"serverIPAddress\":", send, wait, recv);
	jstr(out, f->dst_addr ? f->dst_addr : "");
	fprintf(out, ",\"connection\":\"%" PRId64 "\",\"_localcap\":{\"id\":"
	    "\"%" PRId64 ".%" PRId64 "\",\"process\":", f->id, f->id, x->seq);
	jstr(out, f->process);
	fprintf(out, ",\"pid\":%" PRId64, f->pid);
	/* The connection's figures: on its first exchange. */
	if (x->seq == 1 && f->connect_us >= 0)
		fprintf(out, ",\"connect_ms\":%.3f", (double)f->connect_us / 1000);
	if (x->seq == 1 && f->tls_handshake_us >= 0)
		fprintf(out, ",\"ssl_ms\":%.3f", (double)f->tls_handshake_us /
		    1000);
	if (x->seq == 1 && f->rtt_us >= 0)
		fprintf(out, ",\"rtt_ms\":%.3f", (double)f->rtt_us / 1000);
	if (x->seq == 1 && f->retransmits >= 0)
		fprintf(out, ",\"retransmits\":%" PRId64, f->retransmits);
	if (x->error) {
		fputs(",\"error\":", out);
		jstr(out, x->error);
	}
	/* HAR has no trailers: ours, and gRPC's status from them. */
	if (x->resp_trailers) {
		struct har_headers th = { .out = out };

		fputs(",\"trailers\":", out);
		har_headers(h->st, &th, x->resp_trailers);
	}
	if (x->grpc_status >= 0)
		fprintf(out, ",\"grpc_status\":%" PRId64, x->grpc_status);
	if (x->grpc_message) {
		fputs(",\"grpc_message\":", out);
		jstr(out, x->grpc_message);
	}
	fputs("}}", out);
	return 0;
}

static int
har_entry(void *ctx, const struct sr_entry *e)
{
	struct har *h = ctx;

	h->entry = e;
	if (sr_exchanges(h->st, e->key.flow, e->key.seq, true, har_exchange,
	    h) < 0) {
		h->failed = 1;
		return 1;
	}
	return ferror(h->out) ? 1 : 0;
}

int
sr_export_har(struct sr_store *st, const struct sr_filter *f, size_t limit,
    FILE *out)
{
	struct sr_filter hf = *f;
	struct sr_page pg = { .newest_first = true, .limit = limit,
	    .reversed = true };
	struct har h = { .st = st, .out = out, .first = true };

	hf.http_only = true;
	fprintf(out, "{\"log\":{\"version\":\"1.2\",\"creator\":{\"name\":"
	    "\"localcap\",\"version\":\"%s\"},\"pages\":[],\"entries\":[",
	    LOCALCAP_VERSION);
	if (sr_list(st, &hf, &pg, har_entry, &h) < 0 || h.failed)
		return -1;
	fputs("]}}\n", out);
	if (ferror(out)) {
		sr_seterr(st, "writing the HAR failed");
		return -1;
	}
	return 0;
}
