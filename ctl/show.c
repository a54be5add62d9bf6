/*
 * localcapctl show ID [--body] [--json]: one flow (ID "12") or one
 * exchange of it ("12.3") in full — the flow's addresses, process, TLS
 * and TCP facts, then each HTTP exchange (headers, bodies as text or a hex
 * dump, timings) or DNS message.  --body writes one response body raw to
 * stdout; --json prints storeread's detail object (the viewer's
 * /api/flows/ID).  Every recorded string is escaped for the terminal.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ctl/flowopts.h"
#include "ctl/flows.h"
#include "ctl/textout.h"
#include "utf8.h"

#define SHOW_MAX_TEXT		(64 * 1024)	/* body shown by show */

struct shower {
	struct sr_store	*st;
	int64_t		 flow;
};

static void
show_flow(void *ctx, const struct sr_flow *f)
{
	char t[40], d[24], src[128], dst[128];
	bool tcp = f->transport && strcmp(f->transport, "tcp") == 0;

	(void)ctx;
	fmt_addr(src, sizeof(src), f->src_addr, f->src_port);
	fmt_addr(dst, sizeof(dst), f->dst_addr, f->dst_port);
	printf("flow %lld  ", (long long)f->id);
	term_str(stdout, f->transport, "?");
	printf("  ");
	term_str(stdout, src, NULL);
	printf(" -> ");
	term_str(stdout, dst, NULL);
	printf("\nprocess    ");
	term_str(stdout, f->process, "?");
	printf(" (pid %lld, uid %lld, gid %lld)", (long long)f->pid,
	    (long long)f->uid, (long long)f->gid);
	if (f->cgroup && f->cgroup[0]) {
		printf(" cgroup ");
		term_str(stdout, f->cgroup, NULL);
	}
	putchar('\n');
	if (f->exe && f->exe[0]) {
		printf("executable ");
		term_str(stdout, f->exe, NULL);
		putchar('\n');
	}
	fmt_time(t, sizeof(t), f->start_us, true);
	printf("started    %s", t);
	if (f->end_us < 0)
		printf(", running\n");
	else {
		fmt_duration(d, sizeof(d), f->end_us - f->start_us);
		printf(", lasted %s, ended: ", d);
		term_str(stdout, f->end_reason, "?");
		putchar('\n');
	}
	if (f->error) {
		printf("error      ");
		term_str(stdout, f->error, NULL);
		putchar('\n');
	}
	printf("protocol   ");
	term_str(stdout, f->protocol, "not detected");
	putchar('\n');
	/* The name the client asked its proxy for (proxyd's --listen). */
	if (f->host) {
		printf("host       ");
		term_str(stdout, f->host, NULL);
		printf(" (asked of the proxy)\n");
	}
	if (f->bytes_up >= 0)
		printf("bytes      %lld up, %lld down\n", (long long)f->bytes_up,
		    (long long)f->bytes_down);
	if (f->packets_up >= 0 && !tcp)
		printf("datagrams  %lld up, %lld down\n",
		    (long long)f->packets_up, (long long)f->packets_down);
	/* What the source's TCP stack saw on the application's side. */
	if (tcp && (f->packets_up >= 0 || f->retransmits >= 0 ||
	    f->rtt_us >= 0)) {
		printf("tcp        ");
		if (f->packets_up >= 0)
			printf("%lld packets up, %lld down, ",
			    (long long)f->packets_up, (long long)f->packets_down);
		printf("%lld retransmits", (long long)(f->retransmits < 0 ? 0 :
		    f->retransmits));
		if (f->rtt_us >= 0) {
			fmt_duration(d, sizeof(d), f->rtt_us);
			printf(", rtt %s", d);
		}
		putchar('\n');
	}
	if (f->connect_us >= 0 || f->tls_handshake_us >= 0) {
		printf("timings   ");
		if (f->connect_us >= 0) {
			fmt_duration(d, sizeof(d), f->connect_us);
			printf(" connect %s", d);
		}
		if (f->tls_handshake_us >= 0) {
			fmt_duration(d, sizeof(d), f->tls_handshake_us);
			printf(" TLS handshake %s", d);
		}
		putchar('\n');
	}
	if (f->tls_version || f->sni) {
		printf("tls        client ");
		term_str(stdout, f->tls_version, "-");
		putchar(' ');
		term_str(stdout, f->tls_cipher, "");
		printf("%s", f->tls_resumed ? " (resumed)" : "");
		if (f->sni) {
			printf(" sni ");
			term_str(stdout, f->sni, NULL);
		}
		if (f->alpn && f->alpn[0]) {
			printf(" alpn ");
			term_str(stdout, f->alpn, NULL);
		}
		if (f->client_alpn_offer && f->client_alpn_offer[0]) {
			printf(" (offered ");
			term_str(stdout, f->client_alpn_offer, NULL);
			putchar(')');
		}
		putchar('\n');
		if (f->upstream_tls_version) {
			printf("           upstream ");
			term_str(stdout, f->upstream_tls_version, NULL);
			putchar(' ');
			term_str(stdout, f->upstream_tls_cipher, "");
			printf("%s\n", f->upstream_resumed ? " (resumed)" : "");
		}
	}
	if (f->cert_subject) {
		printf("server cert ");
		term_str(stdout, f->cert_subject, NULL);
		if (f->cert_issuer) {
			printf(", issuer ");
			term_str(stdout, f->cert_issuer, NULL);
		}
		if (f->cert_verified >= 0)
			printf(", %s", f->cert_verified ? "verified" :
			    "NOT verified");
		putchar('\n');
		if (f->cert_sha256) {
			printf("            sha256 ");
			term_str(stdout, f->cert_sha256, NULL);
			putchar('\n');
		}
	}
	if (f->passthrough_reason) {
		printf("passthrough ");
		term_str(stdout, f->passthrough_reason, NULL);
		putchar('\n');
	}
	if (f->first_up_len > 0) {
		printf("first bytes from the app:\n");
		hexdump(stdout, f->first_up, f->first_up_len);
	}
	if (f->first_down_len > 0) {
		printf("first bytes to the app:\n");
		hexdump(stdout, f->first_down, f->first_down_len);
	}
}

static int
show_flow_cb(void *ctx, const struct sr_flow *f)
{
	show_flow(ctx, f);
	return 0;
}

static void
show_body(const char *what, const uint8_t *data, size_t n, int64_t size,
    bool truncated)
{
	char sz[32];

	if (size <= 0 && n == 0)
		return;
	fmt_size(sz, sizeof(sz), size);
	printf("\n%s body: %s%s", what, sz, truncated ? ", truncated" : "");
	if (truncated)
		printf(" (%zu bytes kept)", n);
	printf("\n");
	if (n == 0)
		return;
	if (utf8_is_text(data, n))
		term_lines(stdout, data, n > SHOW_MAX_TEXT ? SHOW_MAX_TEXT : n);
	else
		hexdump(stdout, data, n > SHOW_MAX_TEXT ? SHOW_MAX_TEXT : n);
	if (n > SHOW_MAX_TEXT)
		printf("\n… %zu more bytes (--body writes the response body "
		    "whole)\n", n - SHOW_MAX_TEXT);
	else
		putchar('\n');
}

static void
show_header(void *ctx, const char *name, size_t nl, const char *value,
    size_t vl)
{
	(void)ctx;
	printf("  ");
	term_text(stdout, name, nl);
	printf(": ");
	term_text(stdout, value, vl);
	putchar('\n');
}

static void
print_rel(const char *label, int64_t at, int64_t base)
{
	char d[24];

	if (at < 0)
		return;
	fmt_duration(d, sizeof(d), at - base);
	printf(" %s +%s", label, d);
}

static int
show_exchange(void *ctx, const struct sr_exchange *x)
{
	struct shower *s = ctx;
	char t[40];

	printf("\n--- %lld.%lld ---\n", (long long)x->flow, (long long)x->seq);
	fmt_time(t, sizeof(t), x->req_start_us, true);
	term_str(stdout, x->method, "?");
	putchar(' ');
	term_str(stdout, x->url, "");
	putchar(' ');
	term_str(stdout, x->http_version, "");
	putchar('\n');
	(void)sr_headers_each(s->st, x->req_headers, show_header, NULL);
	show_body("request", x->req_body, x->req_body_len, x->req_body_size,
	    x->req_truncated);
	if (x->req_trailers) {
		printf("request trailers:\n");
		(void)sr_headers_each(s->st, x->req_trailers, show_header, NULL);
	}
	if (x->status < 0)
		printf("\nno response");
	else {
		putchar('\n');
		term_str(stdout, x->http_version, "");
		printf(" %d ", x->status);
		term_str(stdout, x->reason, "");
		putchar('\n');
		(void)sr_headers_each(s->st, x->resp_headers, show_header, NULL);
		show_body("response", x->resp_body, x->resp_body_len,
		    x->resp_body_size, x->resp_truncated);
		if (x->resp_trailers) {
			printf("response trailers:\n");
			(void)sr_headers_each(s->st, x->resp_trailers, show_header,
			    NULL);
		}
	}
	/* A gRPC exchange: its messages each way and its status. */
	if (x->grpc_req_messages >= 0 || x->grpc_resp_messages >= 0) {
		printf("\ngrpc       %lld message(s) up, %lld down; status ",
		    (long long)(x->grpc_req_messages < 0 ? 0 :
		    x->grpc_req_messages), (long long)(x->grpc_resp_messages < 0 ?
		    0 : x->grpc_resp_messages));
		if (x->grpc_status < 0)
			printf("none");
		else
			printf("%lld", (long long)x->grpc_status);
		if (x->grpc_message) {
			putchar(' ');
			term_str(stdout, x->grpc_message, NULL);
		}
		putchar('\n');
	}
	if (x->error) {
		printf("\nerror: ");
		term_str(stdout, x->error, NULL);
	}
	printf("\ntimings    request at %s;", t);
	print_rel("sent", x->req_end_us, x->req_start_us);
	print_rel("response began", x->resp_start_us, x->req_start_us);
	print_rel("ended", x->resp_end_us, x->req_start_us);
	putchar('\n');
	return 0;
}

static void
show_answer(void *ctx, const char *name, const char *type, int64_t ttl,
    const char *data)
{
	(void)ctx;
	printf("  ");
	term_str(stdout, name, "");
	printf(" %lld ", (long long)ttl);
	term_str(stdout, type, "?");
	putchar(' ');
	term_str(stdout, data, "");
	putchar('\n');
}

static int
show_dns(void *ctx, const struct sr_dns *m)
{
	struct shower *s = ctx;
	char d[24];

	printf("\n--- %lld.%lld dns id %d ---\n", (long long)m->flow,
	    (long long)m->seq, m->msg_id);
	if (m->error) {
		term_str(stdout, m->error, NULL);
		putchar('\n');
		return 0;
	}
	printf("question   ");
	term_str(stdout, m->qname, "?");
	putchar(' ');
	term_str(stdout, m->qtype, "?");
	putchar('\n');
	if (m->response_us < 0) {
		printf("answer     none\n");
		return 0;
	}
	printf("answer     ");
	term_str(stdout, m->rcode, "?");
	if (m->query_us >= 0) {
		fmt_duration(d, sizeof(d), m->response_us - m->query_us);
		printf(" after %s", d);
	}
	putchar('\n');
	(void)sr_answers_each(s->st, m->answers, show_answer, NULL);
	return 0;
}

/* --body: the one response body, raw. */
struct body {
	int	 rc;
	size_t	 kept;
	int64_t	 size;
	bool	 truncated;
};

static int
body_cb(void *ctx, const struct sr_exchange *x)
{
	struct body *b = ctx;

	b->kept = x->resp_body_len;
	b->size = x->resp_body_size;
	b->truncated = x->resp_truncated;
	b->rc = 0;
	if (x->resp_body_len && (fwrite(x->resp_body, 1, x->resp_body_len,
	    stdout) != x->resp_body_len || fflush(stdout) == EOF)) {
		fprintf(stderr, "localcapctl: writing the body: %s\n",
		    strerror(errno));
		b->rc = 1;
	}
	return 0;
}

static int
write_body(struct sr_store *st, int64_t flow, int64_t seq, const char *id)
{
	struct body b = { .rc = 1 };
	long n;

	/* Exactly one exchange, or nothing is written. */
	if ((n = sr_exchanges(st, flow, seq, false, NULL, NULL)) < 0)
		goto sqlerr;
	if (n == 0) {
		fprintf(stderr, "localcapctl: %s has no HTTP exchange\n", id);
		return 1;
	}
	if (n > 1) {
		fprintf(stderr, "localcapctl: flow %s has several exchanges: pick "
		    "one (%s.1, %s.2, …)\n", id, id, id);
		return 2;
	}
	if (sr_exchanges(st, flow, seq, true, body_cb, &b) < 0)
		goto sqlerr;
	if (b.rc == 0 && b.truncated)
		fprintf(stderr, "localcapctl: the body was truncated: %zu of "
		    "%" PRId64 " bytes were recorded\n", b.kept, b.size);
	return b.rc;
sqlerr:
	fprintf(stderr, "localcapctl: %s: %s\n", sr_path(st), sr_errmsg(st));
	return 1;
}

int
ctl_show(const char *state_dir, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "state-dir",	required_argument,	NULL, OPT_STATE_DIR },
		{ "body",	no_argument,		NULL, 'b' },
		{ "json",	no_argument,		NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct shower s = { 0 };
	const char *state_opt = NULL, *id;
	int64_t flow, seq;
	bool body = false, json = false;
	long nx, nd;
	int c, rc;

	/* 0, not 1: glibc then forgets the "+" (stop at the first
	 * non-option) of localcapctl's own parse, so options may follow
	 * the ID. */
	optind = 0;
	while ((c = getopt_long(argc, argv, "bj", longopts, NULL)) != -1) {
		switch (c) {
		case 'b': body = true; break;
		case 'j': json = true; break;
		case OPT_STATE_DIR: state_opt = optarg; break;
		default: return 2;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: localcapctl show ID [--body] [--json]\n");
		return 2;
	}
	id = argv[optind];
	if (sr_parse_id(id, &flow, &seq) == -1) {
		fprintf(stderr, "localcapctl: bad id '%s': expected a flow (12) or "
		    "an exchange (12.3), as listed by flows\n", id);
		return 2;
	}
	if ((s.st = ctl_store_open(ctl_state_dir(state_opt, state_dir))) ==
	    NULL)
		return 1;
	s.flow = flow;
	if (json) {
		rc = sr_detail_json(s.st, stdout, flow, seq, body);
		if (rc == 0)
			putchar('\n');
		else if (rc == 1 && seq == 0)
			fprintf(stderr, "localcapctl: no flow %lld in %s\n",
			    (long long)flow, sr_path(s.st));
		else
			fprintf(stderr, "localcapctl: %s: %s\n", sr_path(s.st),
			    sr_errmsg(s.st));
		rc = rc == 0 && fflush(stdout) == 0 ? 0 : 1;
		sr_close(s.st);
		return rc;
	}
	rc = sr_flow_get(s.st, flow, body ? NULL : show_flow_cb, &s);
	if (rc == 1) {
		fprintf(stderr, "localcapctl: no flow %lld in %s\n",
		    (long long)flow, sr_path(s.st));
		sr_close(s.st);
		return 1;
	}
	if (rc == 0 && body) {
		rc = write_body(s.st, flow, seq, id);
		sr_close(s.st);
		return rc;
	}
	nx = rc == 0 ? sr_exchanges(s.st, flow, seq, true, show_exchange, &s) :
	    -1;
	nd = nx >= 0 ? sr_dns_list(s.st, flow, seq, show_dns, &s) : -1;
	rc = 0;
	if (nx < 0 || nd < 0) {
		fprintf(stderr, "localcapctl: %s: %s\n", sr_path(s.st),
		    sr_errmsg(s.st));
		rc = 1;
	} else if (seq && nx + nd == 0) {
		fprintf(stderr, "localcapctl: flow %lld has no exchange %lld\n",
		    (long long)flow, (long long)seq);
		rc = 1;
	}
	fflush(stdout);
	sr_close(s.st);
	return rc;
}
