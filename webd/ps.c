/*
 * The processes tab (see ps.h): ctl/ps.c does the work, linked as it is;
 * here is only its JSON for /api/processes.  webd reads /proc with its own
 * rights: as nobody it sees every process and name but not another user's
 * executable (that field is then null).
 */
#include "webd/ps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ps.h"
#include "utf8.h"

static void
json_s(FILE *out, const char *s)
{
	if (s == NULL)
		fputs("null", out);
	else
		json_str_n(out, s, strlen(s));
}

char *
ps_json_for_api(const Lc__StatusReply *st, const char *why,
    struct sr_store *store, char *err, size_t errlen)
{
	struct ps_capture cap = { 0 };
	struct ps_proc *v = NULL;
	char *buf = NULL;
	size_t len = 0, n = 0, i;
	FILE *out;

	if (st)
		ps_capture_from_status(&cap, st);
	if (ps_collect(&cap, store, false, &v, &n, err, errlen) == -1) {
		ps_capture_free(&cap);
		return NULL;
	}
	if ((out = open_memstream(&buf, &len)) == NULL) {
		snprintf(err, errlen, "out of memory");
		ps_free(v, n);
		ps_capture_free(&cap);
		return NULL;
	}
	if (st) {
		fputs("{\"capture\":{\"spec\":", out);
		json_s(out, st->spec ? st->spec : "");
		fprintf(out, ",\"capturing\":%s,\"note\":", st->capturing ?
		    "true" : "false");
		json_s(out, st->note ? st->note : "");
		fputs("}", out);
	} else {
		fputs("{\"capture\":null,\"capture_error\":", out);
		json_s(out, why ? why : "redirectord did not answer");
	}
	fputs(",\"processes\":[", out);
	for (i = 0; i < n; i++) {
		if (i)
			fputc(',', out);
		ps_json(out, &v[i]);
	}
	fputs("]}\n", out);
	ps_free(v, n);
	ps_capture_free(&cap);
	if (fclose(out) != 0) {
		free(buf);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	return buf;
}
