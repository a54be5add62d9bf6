/*
 * webd's routes: the page and its assets, and the JSON API over the flow
 * store (storeread/, the reader localcapctl uses), the process list, and
 * redirectord's attach/detach (ctlc.c).
 *
 *   GET  /, /app.js, /app.css          the page (assets.c)
 *   GET  /api/flows?filter=&limit=&before=ID&order=oldest
 *                                      a page of entries, newest first:
 *                                      {"flows":[…],"more":B,"before":ID,
 *                                      "serial":N}; each object as
 *                                      `localcapctl flows --json` prints it
 *   GET  /api/flows?since_serial=N     what completed after serial N
 *   GET  /api/flows/ID                 a flow (or exchange) in full
 *   GET  /api/flows/ID/body?side=req|resp
 *                                      one recorded body, raw bytes
 *   GET  /api/export.har?filter=&limit=
 *                                      HAR 1.2, as `export --har`
 *   GET  /api/processes                running processes (as `ps --json`)
 *                                      and the active spec
 *   POST /api/attach, /api/detach      {"spec":"…"} through ctl.sock
 *   GET  /api/events                   Server-Sent Events: "flows" with
 *                                      {"serial":N} when entries complete
 *
 * Filters come as filter=TEXT (the page's box, filter.h) and/or the
 * fields one by one (host=, method=, status=, process=, text=, since=).
 */
#include "webd/api.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "utf8.h"
#include "storeread/storeread.h"
#include "webd/assets.h"
#include "webd/filter.h"
#include "webd/ps.h"

#define API_PAGE_DEFAULT	100
#define API_PAGE_MAX		10000
#define API_HAR_DEFAULT		5000	/* newest exchanges in an API HAR */
#define API_HAR_MAX		100000

#define JSON_TYPE	"application/json"

/* --- the store ------------------------------------------------------------------ */

int
api_store_open(struct api *a)
{
	char err[512];
	enum sr_open_error why;

	if (a->store)
		return 0;
	if ((a->store = sr_open(a->state_dir, err, sizeof(err), &why)) == NULL) {
		a->store_why = why;
		if (strcmp(err, a->store_err) != 0)
			log_warnx("flow store: %s", err);
		snprintf(a->store_err, sizeof(a->store_err), "%s", err);
		return -1;
	}
	a->store_err[0] = '\0';
	a->store_why = SR_OPEN_OK;
	a->serial = sr_max_serial(a->store);
	if (a->serial < 0)
		a->serial = 0;
	log_info("flow store %s open (schema %d)", sr_path(a->store),
	    sr_schema_version(a->store));
	return 0;
}

static bool
need_store(struct api *a, struct web_conn *c)
{
	if (api_store_open(a) == 0)
		return true;
	web_respond_error(c, 503, a->store_err[0] ? a->store_err :
	    "no flow store");
	return false;
}

/* --- filters ------------------------------------------------------------------ */

struct api_filter {
	struct web_filter	 w;
	struct sr_filter	 sr;
};

/* "30s", "10m", "2h", "1d" before now: 0, or -1. */
static int
since_of(const char *s, int64_t *since_us)
{
	struct timespec ts;
	unsigned long long n;
	int64_t unit;
	char *end;

	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno || end == s || end[0] == '\0' || end[1] != '\0')
		return -1;
	switch (end[0]) {
	case 's': unit = 1; break;
	case 'm': unit = 60; break;
	case 'h': unit = 3600; break;
	case 'd': unit = 86400; break;
	default: return -1;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	if (n > (unsigned long long)ts.tv_sec / (unsigned long long)unit)
		return -1;
	*since_us = ((int64_t)ts.tv_sec - (int64_t)n * unit) * 1000000;
	if (*since_us == 0)
		*since_us = 1;
	return 0;
}

/* The request's filter: 0, or -1 after a 400. */
static int
filter_of(struct web_conn *c, const struct web_req *req, struct api_filter *f)
{
	char text[WEB_FILTER_MAX * 2], err[256], v[WEB_FILTER_MAX];
	struct {
		const char *name;
		char *dst;
		size_t len;
	} fields[] = {
		{ "host", f->w.host, sizeof(f->w.host) },
		{ "method", f->w.method, sizeof(f->w.method) },
		{ "process", f->w.process, sizeof(f->w.process) },
		{ "since", f->w.since, sizeof(f->w.since) },
		{ "text", f->w.text, sizeof(f->w.text) },
	};
	size_t i;
	int n;

	memset(f, 0, sizeof(*f));
	if ((n = web_query_get(req->query, "filter", text, sizeof(text))) == -2) {
		web_respond_error(c, 400, "filter: too long, or a bad escape");
		return -1;
	}
	if (web_filter_parse(n >= 0 ? text : NULL, &f->w, err, sizeof(err)) == -1) {
		web_respond_error(c, 400, err);
		return -1;
	}
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		n = web_query_get(req->query, fields[i].name, v, sizeof(v));
		if (n == -2 || (n >= 0 && (size_t)n >= fields[i].len)) {
			snprintf(err, sizeof(err), "%s: too long, or a bad escape",
			    fields[i].name);
			web_respond_error(c, 400, err);
			return -1;
		}
		if (n >= 0)
			memcpy(fields[i].dst, v, (size_t)n + 1);
	}
	if ((n = web_query_get(req->query, "status", v, sizeof(v))) >= 0) {
		char *end;
		long st = strtol(v, &end, 10);

		if (*end || end == v || st < 100 || st > 999) {
			web_respond_error(c, 400, "status: expected an HTTP status "
			    "such as 404");
			return -1;
		}
		f->w.status = (int)st;
	}
	f->sr.host_re = f->w.host[0] ? f->w.host : NULL;
	f->sr.method = f->w.method[0] ? f->w.method : NULL;
	f->sr.status = f->w.status;
	f->sr.process = f->w.process[0] ? f->w.process : NULL;
	f->sr.text = f->w.text[0] ? f->w.text : NULL;
	if (f->w.since[0] && since_of(f->w.since, &f->sr.since_us) == -1) {
		web_respond_error(c, 400, "since: expected a duration such as "
		    "30s, 10m, 2h, 1d");
		return -1;
	}
	if (sr_filter_check(&f->sr, err, sizeof(err)) == -1) {
		web_respond_error(c, 400, err);
		return -1;
	}
	return 0;
}

/* limit=N within [1, max]; def when absent.  -1 after a 400. */
static long
limit_of(struct web_conn *c, const struct web_req *req, long def, long max)
{
	char v[32], *end;
	long n;

	if (web_query_get(req->query, "limit", v, sizeof(v)) < 0)
		return def;
	n = strtol(v, &end, 10);
	if (*end || end == v || n < 1 || n > max) {
		char err[96];

		snprintf(err, sizeof(err), "limit: expected 1 to %ld", max);
		web_respond_error(c, 400, err);
		return -1;
	}
	return n;
}

/* --- /api/flows -------------------------------------------------------------------- */

struct list_ctx {
	struct sr_store	*store;
	FILE		*out;
	long		 n, want;
	struct sr_key	 last;
	char		 last_id[48];
	bool		 more;
};

static void
entry_id(const struct sr_key *k, char *buf, size_t len)
{
	if (k->seq)
		snprintf(buf, len, "%" PRId64 ".%" PRId64, k->flow, k->seq);
	else
		snprintf(buf, len, "%" PRId64, k->flow);
}

static int
list_cb(void *arg, const struct sr_entry *e)
{
	struct list_ctx *l = arg;

	if (l->want > 0 && l->n == l->want) {
		l->more = true;		/* the one past the page */
		return 1;
	}
	fputs(l->n ? "," : "", l->out);
	sr_entry_json(l->store, l->out, e);
	l->n++;
	l->last = e->key;
	entry_id(&e->key, l->last_id, sizeof(l->last_id));
	return 0;
}

static void
api_flows(struct api *a, struct web_conn *c, const struct web_req *req)
{
	struct api_filter f;
	struct list_ctx l = { 0 };
	struct sr_page pg = { .newest_first = true };
	struct sr_key cursor;
	char v[64], *body = NULL;
	size_t len = 0;
	int64_t serial;
	long limit, rc;

	if (filter_of(c, req, &f) == -1 || !need_store(a, c))
		return;
	l.store = a->store;
	if ((l.out = open_memstream(&body, &len)) == NULL) {
		web_respond_error(c, 500, "out of memory");
		return;
	}
	fputs("{\"flows\":[", l.out);
	if (web_query_get(req->query, "since_serial", v, sizeof(v)) >= 0) {
		char *end;

		serial = strtoll(v, &end, 10);
		if (*end || end == v || serial < 0) {
			fclose(l.out);
			free(body);
			web_respond_error(c, 400, "since_serial: expected a number");
			return;
		}
		rc = sr_follow(a->store, &f.sr, &serial, list_cb, &l);
		if (rc < 0)
			goto sqlerr;
		fprintf(l.out, "],\"serial\":%" PRId64 "}\n", serial);
		goto done;
	}
	if ((limit = limit_of(c, req, API_PAGE_DEFAULT, API_PAGE_MAX)) < 0) {
		fclose(l.out);
		free(body);
		return;
	}
	if (web_query_get(req->query, "order", v, sizeof(v)) >= 0) {
		if (strcmp(v, "oldest") == 0)
			pg.newest_first = false;
		else if (strcmp(v, "newest") != 0) {
			fclose(l.out);
			free(body);
			web_respond_error(c, 400, "order: newest or oldest");
			return;
		}
	}
	/* Read before the list: what completes meanwhile is followed later. */
	serial = sr_max_serial(a->store);
	if (web_query_get(req->query, "before", v, sizeof(v)) >= 0) {
		int64_t flow, seq;

		if (sr_parse_id(v, &flow, &seq) == -1) {
			fclose(l.out);
			free(body);
			web_respond_error(c, 400, "before: expected an id such as "
			    "12 or 12.3");
			return;
		}
		if ((rc = sr_key_of(a->store, flow, seq, &cursor)) == 1) {
			fclose(l.out);
			free(body);
			web_respond_error(c, 404, "before: no such entry");
			return;
		}
		if (rc < 0)
			goto sqlerr;
		pg.cursor = &cursor;
	}
	l.want = limit;
	pg.limit = (size_t)limit + 1;
	if (sr_list(a->store, &f.sr, &pg, list_cb, &l) < 0)
		goto sqlerr;
	fprintf(l.out, "],\"more\":%s,\"before\":", l.more ? "true" : "false");
	if (l.n)
		fprintf(l.out, "\"%s\"", l.last_id);
	else
		fputs("null", l.out);
	fprintf(l.out, ",\"serial\":%" PRId64 "}\n", serial < 0 ? 0 : serial);
done:
	if (fclose(l.out) != 0) {
		free(body);
		web_respond_error(c, 500, "out of memory");
		return;
	}
	web_respond_take(c, 200, JSON_TYPE, body, len, NULL);
	return;
sqlerr:
	fclose(l.out);
	free(body);
	log_warnx("flow store: %s", sr_errmsg(a->store));
	web_respond_error(c, 500, sr_errmsg(a->store));
}

/* --- /api/flows/ID and its bodies ------------------------------------------------------ */

struct body_ctx {
	bool		 resp;
	long		 n;
	uint8_t		*data;
	size_t		 len;
	bool		 oom;
};

static int
body_cb(void *arg, const struct sr_exchange *x)
{
	struct body_ctx *b = arg;
	const uint8_t *p = b->resp ? x->resp_body : x->req_body;
	size_t n = b->resp ? x->resp_body_len : x->req_body_len;

	if (++b->n > 1)
		return 1;
	if (n && (b->data = malloc(n)) == NULL) {
		b->oom = true;
		return 1;
	}
	if (n)
		memcpy(b->data, p, n);
	b->len = n;
	return 0;
}

static void
api_body(struct api *a, struct web_conn *c, const struct web_req *req,
    int64_t flow, int64_t seq)
{
	struct body_ctx b = { 0 };
	char side[8];
	long rc;

	if (web_query_get(req->query, "side", side, sizeof(side)) < 0 ||
	    (strcmp(side, "req") != 0 && strcmp(side, "resp") != 0)) {
		web_respond_error(c, 400, "side: req or resp");
		return;
	}
	b.resp = side[1] == 'e' && side[2] == 's';
	if ((rc = sr_exchanges(a->store, flow, seq, true, body_cb, &b)) < 0) {
		free(b.data);
		web_respond_error(c, 500, sr_errmsg(a->store));
		return;
	}
	if (b.oom) {
		free(b.data);
		web_respond_error(c, 500, "out of memory");
		return;
	}
	if (b.n == 0) {
		web_respond_error(c, 404, "no such HTTP exchange");
		return;
	}
	if (b.n > 1) {
		free(b.data);
		web_respond_error(c, 400, "this flow has several exchanges: ask "
		    "for one (FLOW.SEQ)");
		return;
	}
	/*
	 * Never the recorded Content-Type: the bytes are the server's, and
	 * must not become a page of this origin.  The page decides how to
	 * show them.
	 */
	web_respond_take(c, 200, "application/octet-stream", (char *)b.data,
	    b.len, "Content-Disposition: attachment; filename=\"body.bin\"\r\n");
}

static void
api_flow(struct api *a, struct web_conn *c, const struct web_req *req,
    const char *rest)
{
	char id[64], *slash, *body = NULL;
	int64_t flow, seq;
	size_t len = 0;
	FILE *out;
	bool bodies;
	int rc;

	if (strlen(rest) >= sizeof(id)) {
		web_respond_error(c, 404, "no such flow");
		return;
	}
	memcpy(id, rest, strlen(rest) + 1);
	if ((slash = strchr(id, '/')) != NULL)
		*slash++ = '\0';
	if (sr_parse_id(id, &flow, &seq) == -1 || (slash &&
	    strcmp(slash, "body") != 0)) {
		web_respond_error(c, 404, "no such flow: ids look like 12 or 12.3");
		return;
	}
	if (!need_store(a, c))
		return;
	if (slash) {
		api_body(a, c, req, flow, seq);
		return;
	}
	bodies = web_query_get(req->query, "bodies", id, sizeof(id)) >= 0 &&
	    strcmp(id, "1") == 0;
	if ((out = open_memstream(&body, &len)) == NULL) {
		web_respond_error(c, 500, "out of memory");
		return;
	}
	rc = sr_detail_json(a->store, out, flow, seq, bodies);
	fputc('\n', out);
	if (fclose(out) != 0)
		rc = -1;
	if (rc == 0) {
		web_respond_take(c, 200, JSON_TYPE, body, len, NULL);
		return;
	}
	free(body);
	if (rc == 1)
		web_respond_error(c, 404, "no such flow or exchange");
	else
		web_respond_error(c, 500, sr_errmsg(a->store));
}

/* --- /api/export.har ---------------------------------------------------------------- */

static void
api_har(struct api *a, struct web_conn *c, const struct web_req *req)
{
	struct api_filter f;
	char *body = NULL;
	size_t len = 0;
	long limit;
	FILE *out;
	int rc;

	if (filter_of(c, req, &f) == -1)
		return;
	if ((limit = limit_of(c, req, API_HAR_DEFAULT, API_HAR_MAX)) < 0 ||
	    !need_store(a, c))
		return;
	f.sr.http_only = true;
	if ((out = open_memstream(&body, &len)) == NULL) {
		web_respond_error(c, 500, "out of memory");
		return;
	}
	rc = sr_export_har(a->store, &f.sr, (size_t)limit, out);
	if (fclose(out) != 0)
		rc = -1;
	if (rc != 0) {
		free(body);
		web_respond_error(c, 500, sr_errmsg(a->store));
		return;
	}
	web_respond_take(c, 200, JSON_TYPE, body, len,
	    "Content-Disposition: attachment; filename=\"localcap.har\"\r\n");
}

/* --- attach / detach / processes --------------------------------------------------------- */

struct ctl_wait {
	struct web_conn	*conn;
	struct api	*api;
	enum ctlc_op	 op;
};

static void
ctl_done(void *arg, bool ok, const char *text, long offset)
{
	struct ctl_wait *w = arg;
	struct web_conn *c = w->conn;
	char *body = NULL;
	size_t len = 0;
	FILE *out;

	if (web_conn_gone(c))
		goto out;
	if ((out = open_memstream(&body, &len)) == NULL) {
		web_respond_error(c, 500, "out of memory");
		goto out;
	}
	if (ok) {
		fputs("{\"spec\":", out);
		json_str_n(out, text, strlen(text));
		fputs("}\n", out);
	} else {
		fputs("{\"error\":", out);
		json_str_n(out, text, strlen(text));
		if (offset >= 0)
			fprintf(out, ",\"offset\":%ld", offset);
		fputs("}\n", out);
	}
	if (fclose(out) != 0) {
		free(body);
		web_respond_error(c, 500, "out of memory");
		goto out;
	}
	/* Refused by redirectord: 400; not reached at all: 502. */
	web_respond_take(c, ok ? 200 : strstr(text, "not running") ||
	    strstr(text, "no answer") || strstr(text, "closed the connection") ?
	    502 : 400, JSON_TYPE, body, len, NULL);
out:
	web_conn_release(c);
	free(w);
}

static void
api_spec_change(struct api *a, struct web_conn *c, const struct web_req *req,
    enum ctlc_op op)
{
	struct ctl_wait *w;
	char spec[1024];
	int n;

	n = web_json_string(req->body, req->body_len, "spec", spec, sizeof(spec));
	if (n < 0 || (n == 0 && op == CTLC_ATTACH)) {
		web_respond_error(c, 400, "expected {\"spec\": \"ITEM[,ITEM…]\"}");
		return;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		web_respond_error(c, 500, "out of memory");
		return;
	}
	w->conn = c;
	w->api = a;
	w->op = op;
	web_conn_hold(c);
	log_info("%s %s asked by the viewer", op == CTLC_ATTACH ? "attach" :
	    "detach", spec);
	ctlc_request(&a->ctl, op, spec, ctl_done, w);
}

/* The status came (or not): the list, with the capture decided from it. */
static void
processes_done(void *arg, const Lc__StatusReply *st, const char *why)
{
	struct ctl_wait *w = arg;
	struct web_conn *c = w->conn;
	struct api *a = w->api;
	char err[256], *body;

	if (web_conn_gone(c))
		goto out;
	(void)api_store_open(a);	/* without one, flows are unknown */
	if ((body = ps_json_for_api(st, why, a->store, err, sizeof(err))) ==
	    NULL) {
		web_respond_error(c, 500, err);
		goto out;
	}
	web_respond_take(c, 200, JSON_TYPE, body, strlen(body), NULL);
out:
	web_conn_release(c);
	free(w);
}

static void
api_processes(struct api *a, struct web_conn *c)
{
	struct ctl_wait *w;

	if ((w = calloc(1, sizeof(*w))) == NULL) {
		web_respond_error(c, 500, "out of memory");
		return;
	}
	w->conn = c;
	w->api = a;
	w->op = CTLC_STATUS;
	web_conn_hold(c);
	ctlc_status(&a->ctl, processes_done, w);
}

/* --- live updates ------------------------------------------------------------------------ */

/*
 * One store query per tick, whatever the number of streams: the greatest
 * done_serial.  Each stream is told when it moves; pages then ask for what
 * completed (since_serial), each with its own filter.
 */
static void
poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct api *a = w->data;
	char data[64];
	int64_t s;

	(void)loop;
	(void)revents;
	if (a->srv->nsse == 0)
		return;
	if (api_store_open(a) == -1)
		return;
	a->polls++;
	if ((s = sr_max_serial(a->store)) < 0) {
		log_warnx("flow store: %s", sr_errmsg(a->store));
		return;
	}
	if (s == a->serial)
		return;
	a->serial = s;
	snprintf(data, sizeof(data), "{\"serial\":%" PRId64 "}", s);
	web_sse_broadcast(a->srv, "flows", data);
}

/* A page learns the serial it starts from with its first list. */
static void
api_events(struct web_conn *c)
{
	web_sse_begin(c);
}

/* --- the route table ------------------------------------------------------------------- */

void
api_handle(struct web_server *srv, struct web_conn *c,
    const struct web_req *req, void *arg)
{
	struct api *a = arg;
	const char *p = req->path;
	bool get = strcmp(req->method, "GET") == 0 ||
	    strcmp(req->method, "HEAD") == 0;
	bool post = strcmp(req->method, "POST") == 0;
	const struct web_asset *asset;

	(void)srv;
	if (strncmp(p, "/api/", 5) != 0) {
		if ((asset = web_asset_find(p)) == NULL) {
			web_respond_error(c, 404, "not found");
			return;
		}
		if (!get) {
			web_respond(c, 405, "text/plain", "", 0, "Allow: GET, HEAD\r\n");
			return;
		}
		web_respond(c, 200, asset->type, asset->data, asset->len, NULL);
		return;
	}
	p += 5;
	if (strcmp(p, "attach") == 0 || strcmp(p, "detach") == 0) {
		if (!post) {
			web_respond(c, 405, "text/plain", "", 0, "Allow: POST\r\n");
			return;
		}
		api_spec_change(a, c, req, p[0] == 'a' ? CTLC_ATTACH : CTLC_DETACH);
		return;
	}
	if (!get) {
		web_respond(c, 405, "text/plain", "", 0, "Allow: GET, HEAD\r\n");
		return;
	}
	if (strcmp(p, "flows") == 0)
		api_flows(a, c, req);
	else if (strncmp(p, "flows/", 6) == 0)
		api_flow(a, c, req, p + 6);
	else if (strcmp(p, "export.har") == 0)
		api_har(a, c, req);
	else if (strcmp(p, "processes") == 0)
		api_processes(a, c);
	else if (strcmp(p, "events") == 0)
		api_events(c);
	else
		web_respond_error(c, 404, "no such API");
}

void
api_init(struct api *a, struct web_server *srv, struct ev_loop *loop)
{
	a->srv = srv;
	a->loop = loop;
	ev_timer_init(&a->poll, poll_cb, API_POLL_INTERVAL, API_POLL_INTERVAL);
	a->poll.data = a;
	ev_timer_start(loop, &a->poll);
}

void
api_stop(struct api *a)
{
	ev_timer_stop(a->loop, &a->poll);
	sr_close(a->store);
	a->store = NULL;
}
