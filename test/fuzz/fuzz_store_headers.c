/*
 * libFuzzer harness for storeread's reading of stored header lists
 * (storeread/jsonparse.c: sr_headers_parse, sr_json_decode).  The store file is
 * written by proxyd, which parses network input, and read by root's
 * localcapctl: its bytes are untrusted.  The fast parser must never crash,
 * and whatever it accepts SQLite's JSON reading (the fallback, json_each)
 * must accept too, with the same names and values: a differential check.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "storeread/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct pairs {
	char	*buf;		/* name \0 value \0 … with lengths */
	size_t	 len, cap;
	size_t	 n;
};

static void
add(struct pairs *p, const char *s, size_t n)
{
	if (p->len + n + sizeof(size_t) > p->cap) {
		size_t cap = (p->len + n + sizeof(size_t)) * 2 + 64;

		if ((p->buf = realloc(p->buf, cap)) == NULL)
			abort();
		p->cap = cap;
	}
	memcpy(p->buf + p->len, &n, sizeof(n));
	memcpy(p->buf + p->len + sizeof(n), s, n);
	p->len += sizeof(n) + n;
}

static void
collect(void *ctx, const char *name, size_t nl, const char *value, size_t vl)
{
	struct pairs *p = ctx;

	add(p, name, nl);
	add(p, value, vl);
	p->n++;
}

/* The fallback's reading, as detail.c does it (SR_Q_HEADERS). */
static int
sqlite_pairs(const char *json, struct pairs *p)
{
	static sqlite3 *db;
	sqlite3_stmt *s;
	int rc;

	if (db == NULL && sqlite3_open(":memory:", &db) != SQLITE_OK)
		abort();
	if (sqlite3_prepare_v2(db, "SELECT value -> 0, value -> 1 FROM"
	    " json_each(iif(json_valid(?1), ?1, '[]')) WHERE type = 'array'"
	    " AND json_type(value, '$[0]') = 'text' AND"
	    " json_type(value, '$[1]') = 'text'", -1, &s, NULL) != SQLITE_OK)
		abort();
	sqlite3_bind_text(s, 1, json, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *a = (const char *)sqlite3_column_text(s, 0);
		const char *b = (const char *)sqlite3_column_text(s, 1);
		char *x = malloc(strlen(a) + 1), *y = malloc(strlen(b) + 1);

		if (x == NULL || y == NULL)
			abort();
		collect(p, x, sr_json_decode(a, strlen(a), x), y,
		    sr_json_decode(b, strlen(b), y));
		free(x);
		free(y);
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pairs fast = { 0 }, slow = { 0 };
	char *json = malloc(size + 1);

	if (json == NULL)
		return 0;
	memcpy(json, data, size);
	json[size] = '\0';
	/* A NUL inside is where a stored TEXT would end. */
	size = strlen(json);
	if (sr_headers_parse(json, size, collect, &fast) == 0) {
		if (sqlite_pairs(json, &slow) != 0 || fast.n != slow.n ||
		    fast.len != slow.len || (fast.len && memcmp(fast.buf,
		    slow.buf, fast.len) != 0)) {
			fprintf(stderr, "fast and SQLite readings differ: %zu vs "
			    "%zu pairs\n", fast.n, slow.n);
			abort();
		}
	}
	free(fast.buf);
	free(slow.buf);
	free(json);
	return 0;
}
