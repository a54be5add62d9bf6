/*
 * The viewer's filter box: "host:example\.org method:POST status:404
 * process:curl since:10m some text" into the fields of a store filter
 * (storeread.h: struct sr_filter).  Words without a known prefix are the
 * free text (a substring of URL, host or process), joined by spaces.
 * Pure; unit-tested in test/unit/test_webd_http.c.
 */
#ifndef LOCALCAP_WEBD_FILTER_H
#define LOCALCAP_WEBD_FILTER_H

#include <stddef.h>
#include <stdint.h>

#define WEB_FILTER_MAX	512

struct web_filter {
	char	host[WEB_FILTER_MAX];		/* "" when not given */
	char	method[32];
	int	status;				/* 0: any */
	char	process[256];
	char	since[64];			/* as localcapctl's --since */
	char	text[WEB_FILTER_MAX];
};

/*
 * Parse s (NULL or "" is no filter) into f.  0, or -1 with one line for a
 * person in err (a bad status, a field too long).  A field given twice
 * takes the last value.
 */
int	web_filter_parse(const char *s, struct web_filter *f, char *err,
	    size_t errlen);

#endif
