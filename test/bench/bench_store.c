/*
 * Benchmark of the flow store's reading side at scale (not a test: it
 * prints figures).
 *
 *   bench_store [EXCHANGES [LOCALCAPCTL]]     (default 500000 exchanges)
 *
 * Builds a store through proxyd's own writer (store.h): 400 keep-alive
 * flows of 1,000 exchanges each and one-exchange flows for the rest,
 * plus 5,000 DNS queries and 5,000 raw flows, five busy processes and one
 * rare one, 10% of responses 404.  Then, on that store, times (best of 5)
 * what a person and the viewer ask for:
 *   - the pre-schema-4 reader's queries through the `entries` UNION ALL
 *     view (the baseline: sorted whole for every page);
 *   - storeread's keyset pages (newest page, filtered pages, a page deep
 *     in the list), one exchange in full, and a HAR of 100 exchanges;
 *   - the CLI itself (fork + exec of LOCALCAPCTL, start-up included).
 * Bounded: the store is at most EXCHANGES rows and is removed at the end.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <sqlite3.h>

#include "log.h"
#include "proxyd/store.h"
#include "storeread/storeread.h"

#define KEEPALIVE_FLOWS		400
#define PER_FLOW		1000
#define N_DNS			5000
#define N_RAW			5000
#define RUNS			5

static const char *const procs[] = { "curl", "wget", "firefox", "python3",
	"apt" };

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
record(struct flow_record *rec, uint64_t id, enum flow_transport t,
    const char *name, uint32_t pid, uint16_t port, int64_t start)
{
	memset(rec, 0, sizeof(*rec));
	rec->id = id;
	rec->meta.transport = t;
	rec->meta.src.family = AF_INET;
	inet_pton(AF_INET, "10.0.0.2", rec->meta.src.addr);
	rec->meta.src.port = (uint16_t)(1024 + id % 60000);
	rec->meta.dst.family = AF_INET;
	inet_pton(AF_INET, "192.0.2.7", rec->meta.dst.addr);
	rec->meta.dst.port = port;
	rec->meta.owner.pid = pid;
	rec->meta.owner.uid = 1000;
	snprintf(rec->meta.owner.process, sizeof(rec->meta.owner.process), "%s",
	    name);
	snprintf(rec->meta.owner.cgroup, sizeof(rec->meta.owner.cgroup), "/bench");
	rec->meta.start_us = (uint64_t)start;
}

static int64_t t_us;	/* the synthetic clock: 20 us per exchange */

static void
add_exchange(struct store *st, int64_t row, uint32_t seq, uint64_t n)
{
	static const struct http_field req[] = {
		{ "Host", 4, "example.org", 11 },
		{ "User-Agent", 10, "bench/1.0", 9 },
		{ "Accept", 6, "*/*", 3 },
	};
	static const struct http_field resp[] = {
		{ "Content-Type", 12, "text/plain", 10 },
		{ "Content-Length", 14, "64", 2 },
		{ "Server", 6, "bench", 5 },
	};
	static const char body[] = "0123456789abcdef0123456789abcdef"
	    "0123456789abcdef0123456789abcdef";
	char target[48], host[32];
	struct store_http h;

	memset(&h, 0, sizeof(h));
	snprintf(target, sizeof(target), "/item/%" PRIu64, n);
	snprintf(host, sizeof(host), "host%" PRIu64 ".example", n % 50);
	h.seq = seq;
	h.scheme = "https";
	h.method = n % 7 == 0 ? "POST" : "GET";
	h.target = target;
	h.host = host;
	h.version_minor = 1;
	h.status = n % 10 == 3 ? 404 : 200;
	h.reason = h.status == 404 ? "Not Found" : "OK";
	h.req_fields = req;
	h.n_req_fields = 3;
	h.resp_fields = resp;
	h.n_resp_fields = 3;
	h.resp_body = (const uint8_t *)body;
	h.resp_body_len = h.resp_body_size = 64;
	t_us += 20;
	h.req_start_us = (uint64_t)t_us;
	h.req_end_us = (uint64_t)t_us + 2;
	h.resp_start_us = (uint64_t)t_us + 10;
	h.resp_end_us = (uint64_t)t_us + 15;
	(void)store_http_add(st, row, &h);
}

static void
build(const char *path, uint64_t total)
{
	static const uint8_t q[] = {
		0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0,
		0x00, 0x01, 0x00, 0x01,
	};
	struct store_config cfg;
	struct flow_record rec;
	struct store *st;
	char err[256];
	uint64_t n = 0, id = 1, i, keepalive;
	int64_t row;
	double t0 = now_s();

	store_config_default(&cfg);
	cfg.max_flows = 0;
	cfg.max_bytes = 0;
	if ((st = store_open(path, &cfg, err, sizeof(err))) == NULL) {
		fprintf(stderr, "bench_store: %s\n", err);
		exit(1);
	}
	t_us = (int64_t)time(NULL) * 1000000 - 3600LL * 1000000;
	/* The rare process: a few exchanges, first of all. */
	record(&rec, id++, FLOW_TCP, "rareproc", 4242, 443, t_us);
	row = store_flow_begin(st, &rec);
	for (i = 1; i <= 10; i++)
		add_exchange(st, row, (uint32_t)i, n++);
	rec.end = FLOW_END_CLOSED;
	rec.end_us = (uint64_t)t_us;
	(void)store_flow_end(st, row, &rec, NULL);

	keepalive = total / 5 * 4 / PER_FLOW;
	if (keepalive > KEEPALIVE_FLOWS)
		keepalive = KEEPALIVE_FLOWS;
	while (n < total) {
		bool ka = (id % 2 == 0 && keepalive > 0);
		uint64_t k = ka ? PER_FLOW : 1;
		const char *p = procs[id % 5];

		if (ka)
			keepalive--;
		record(&rec, id, FLOW_TCP, p, (uint32_t)(1000 + id % 5), 443,
		    t_us + 1);
		row = store_flow_begin(st, &rec);
		for (i = 1; i <= k && n < total; i++)
			add_exchange(st, row, (uint32_t)i, n++);
		rec.end = FLOW_END_CLOSED;
		rec.end_us = (uint64_t)t_us + 5;
		(void)store_flow_end(st, row, &rec, NULL);
		/* Now and then a DNS query and a raw flow in between. */
		if (id % ((total / N_DNS) / 2 + 1) == 0) {
			record(&rec, ++id, FLOW_UDP, "resolver", 53, 53, t_us + 2);
			row = store_flow_begin(st, &rec);
			(void)store_dns_add_wire(st, row, (uint64_t)t_us + 2, q,
			    sizeof(q));
			rec.end = FLOW_END_IDLE;
			rec.end_us = (uint64_t)t_us + 3;
			(void)store_flow_end(st, row, &rec, NULL);
			record(&rec, ++id, FLOW_TCP, "ssh", 22, 22, t_us + 3);
			row = store_flow_begin(st, &rec);
			rec.end = FLOW_END_CLOSED;
			rec.end_us = (uint64_t)t_us + 4;
			rec.bytes_from_app = rec.bytes_to_app = 100;
			(void)store_flow_end(st, row, &rec, NULL);
		}
		id++;
	}
	store_close(st);
	printf("store built through proxyd's writer: %" PRIu64 " exchanges,"
	    " %" PRIu64 " flows in %.1f s (%.0f exchanges/s)\n", n, id - 1,
	    now_s() - t0, (double)n / (now_s() - t0));
}

/* --- the baseline: the old reader's queries through the view ------------------- */

static double
time_sql(sqlite3 *db, const char *sql, long *rows)
{
	double best = 1e9;
	int r;

	for (r = 0; r < RUNS; r++) {
		sqlite3_stmt *s;
		double t = now_s();

		*rows = 0;
		if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
			fprintf(stderr, "bench_store: %s\n", sqlite3_errmsg(db));
			return -1;
		}
		while (sqlite3_step(s) == SQLITE_ROW)
			(*rows)++;
		sqlite3_finalize(s);
		t = now_s() - t;
		if (t < best)
			best = t;
	}
	return best;
}

/* --- storeread ------------------------------------------------------------------------ */

struct sink {
	struct sr_store	*st;
	FILE		*out;
	long		 n;
	struct sr_key	 last;
};

static int
to_json(void *ctx, const struct sr_entry *e)
{
	struct sink *k = ctx;

	sr_entry_json(k->st, k->out, e);
	fputc('\n', k->out);
	k->n++;
	k->last = e->key;
	return 0;
}

static double
time_list(struct sr_store *st, const struct sr_filter *f, size_t limit,
    const struct sr_key *cursor, long *rows, struct sr_key *last)
{
	struct sr_page pg = { .newest_first = true, .limit = limit,
	    .cursor = cursor };
	double best = 1e9;
	int r;

	for (r = 0; r < RUNS; r++) {
		struct sink k = { st, fopen("/dev/null", "w"), 0, { 0, 0, 0 } };
		double t = now_s();

		if (sr_list(st, f, &pg, to_json, &k) < 0)
			fprintf(stderr, "bench_store: %s\n", sr_errmsg(st));
		t = now_s() - t;
		fclose(k.out);
		*rows = k.n;
		if (last)
			*last = k.last;
		if (t < best)
			best = t;
	}
	return best;
}

/* The CLI, start-up included: best wall time of RUNS runs. */
static double
time_cli(const char *ctl, const char *state, char *const args[])
{
	char *argv[16];
	double best = 1e9;
	int r, i, status;

	argv[0] = (char *)(uintptr_t)ctl;
	for (i = 0; args[i] && i < 12; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = (char *)(uintptr_t)"--state-dir";
	argv[i + 2] = (char *)(uintptr_t)state;
	argv[i + 3] = NULL;
	fflush(stdout);
	for (r = 0; r < RUNS; r++) {
		double t = now_s();
		pid_t pid = fork();

		if (pid == 0) {
			if (freopen("/dev/null", "w", stdout) == NULL)
				_exit(127);
			execv(ctl, argv);
			_exit(127);
		}
		if (pid < 0 || waitpid(pid, &status, 0) != pid ||
		    !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "bench_store: %s %s failed\n", ctl, args[0]);
			return -1;
		}
		t = now_s() - t;
		if (t < best)
			best = t;
	}
	return best;
}

int
main(int argc, char **argv)
{
	uint64_t total = argc > 1 ? strtoull(argv[1], NULL, 10) : 500000;
	const char *ctl = argc > 2 ? argv[2] : NULL;
	char dir[] = "/tmp/bench_store.XXXXXX", path[256], cmd[300], e[512];
	struct sr_store *st;
	struct sr_key deep;
	sqlite3 *db;
	long rows;
	double base_page, base_status, base_process, t;
	struct stat sb;
	int i;

	log_init("bench_store", 1, LOG_LEVEL_WARN);
	if (total < 1000 || total > 5000000) {
		fprintf(stderr, "usage: bench_store [EXCHANGES (1000-5000000)] "
		    "[LOCALCAPCTL]\n");
		return 2;
	}
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/%s", dir, STORE_DIR_NAME);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/%s/%s", dir, STORE_DIR_NAME,
	    STORE_DB_NAME);
	build(path, total);
	if (stat(path, &sb) == 0)
		printf("store file: %.0f MB\n", (double)sb.st_size / 1e6);

	/* Baseline: how localcapctl read the store until schema 4. */
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		return 1;
	base_page = time_sql(db, "SELECT * FROM (SELECT * FROM entries ORDER BY"
	    " start_us DESC, flow_id DESC, seq DESC LIMIT 20) ORDER BY start_us,"
	    " flow_id, seq", &rows);
	printf("\nbaseline (the entries view, as before schema 4), best of %d:\n",
	    RUNS);
	printf("  newest 20                        %8.1f ms  (%ld rows)\n",
	    base_page * 1e3, rows);
	base_status = time_sql(db, "SELECT * FROM (SELECT * FROM entries WHERE"
	    " status = 404 ORDER BY start_us DESC, flow_id DESC, seq DESC"
	    " LIMIT 20) ORDER BY start_us, flow_id, seq", &rows);
	printf("  newest 20 with status 404        %8.1f ms\n", base_status * 1e3);
	base_process = time_sql(db, "SELECT * FROM (SELECT * FROM entries WHERE"
	    " process = 'wget' ORDER BY start_us DESC, flow_id DESC, seq DESC"
	    " LIMIT 20) ORDER BY start_us, flow_id, seq", &rows);
	printf("  newest 20 of process wget        %8.1f ms\n",
	    base_process * 1e3);
	sqlite3_close(db);

	if ((st = sr_open(dir, e, sizeof(e), NULL)) == NULL) {
		fprintf(stderr, "bench_store: %s\n", e);
		return 1;
	}
	printf("\nstoreread (keyset pages, JSON written), best of %d:\n", RUNS);
	{
		struct sr_filter f = { 0 };

		t = time_list(st, &f, 20, NULL, &rows, NULL);
		printf("  newest 20                        %8.2f ms  (%.0fx faster)\n",
		    t * 1e3, base_page / t);
		/* 50 pages down, by cursor. */
		time_list(st, &f, 1000, NULL, &rows, &deep);
		t = time_list(st, &f, 20, &deep, &rows, NULL);
		printf("  20 after the first 1000          %8.2f ms\n", t * 1e3);
	}
	{
		struct sr_filter f = { .status = 404 };

		t = time_list(st, &f, 20, NULL, &rows, NULL);
		printf("  newest 20 with status 404        %8.2f ms  (%.0fx faster)\n",
		    t * 1e3, base_status / t);
	}
	{
		struct sr_filter f = { .process = "wget" };

		t = time_list(st, &f, 20, NULL, &rows, NULL);
		printf("  newest 20 of process wget        %8.2f ms  (%.0fx faster)\n",
		    t * 1e3, base_process / t);
	}
	{
		struct sr_filter f = { .host_re = "^host7\\." };

		t = time_list(st, &f, 20, NULL, &rows, NULL);
		printf("  newest 20, --host '^host7\\.'     %8.2f ms\n", t * 1e3);
	}
	{
		struct sr_filter f = { .method = "POST", .status = 404 };

		t = time_list(st, &f, 20, NULL, &rows, NULL);
		printf("  newest 20 POST with status 404   %8.2f ms\n", t * 1e3);
	}
	{
		struct sr_filter f = { .process = "rareproc" };

		t = time_list(st, &f, 20, NULL, &rows, NULL);
		printf("  rare process (10 oldest entries) %8.2f ms  (%ld rows)\n",
		    t * 1e3, rows);
	}
	{
		double best = 1e9;

		for (i = 0; i < RUNS; i++) {
			FILE *out = fopen("/dev/null", "w");

			t = now_s();
			sr_detail_json(st, out, 2, 500, true);
			t = now_s() - t;
			fclose(out);
			if (t < best)
				best = t;
		}
		printf("  one exchange in full (2.500)     %8.2f ms\n", best * 1e3);
	}
	{
		struct sr_filter f = { 0 };
		double best = 1e9;

		for (i = 0; i < RUNS; i++) {
			FILE *out = fopen("/dev/null", "w");

			t = now_s();
			sr_export_har(st, &f, 100, out);
			t = now_s() - t;
			fclose(out);
			if (t < best)
				best = t;
		}
		printf("  HAR of the newest 100            %8.2f ms\n", best * 1e3);
	}
	sr_close(st);

	if (ctl) {
		printf("\nthe CLI (fork + exec, start-up included), best of %d:\n",
		    RUNS);
		t = time_cli(ctl, dir, (char *[]){ "flows", "--limit", "20", NULL });
		printf("  flows --limit 20                 %8.2f ms  (baseline"
		    " query alone %.0f ms)\n", t * 1e3, base_page * 1e3);
		t = time_cli(ctl, dir, (char *[]){ "flows", "--json", "--status",
		    "404", "--limit", "20", NULL });
		printf("  flows --json --status 404 --limit 20 %4.2f ms\n", t * 1e3);
		t = time_cli(ctl, dir, (char *[]){ "flows", "--process", "wget",
		    "--limit", "20", NULL });
		printf("  flows --process wget --limit 20  %8.2f ms\n", t * 1e3);
		t = time_cli(ctl, dir, (char *[]){ "show", "2.500", NULL });
		printf("  show 2.500                       %8.2f ms\n", t * 1e3);
	}
	if (getenv("BENCH_STORE_KEEP")) {
		printf("kept: %s\n", dir);
		return 0;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : 1;
}
