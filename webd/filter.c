/* The viewer's filter syntax (see filter.h). */
#include "webd/filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int
put(char *dst, size_t dstlen, const char *src, size_t n, const char *what,
    char *err, size_t errlen)
{
	if (n >= dstlen) {
		snprintf(err, errlen, "%s: too long (at most %zu bytes)", what,
		    dstlen - 1);
		return -1;
	}
	memcpy(dst, src, n);
	dst[n] = '\0';
	return 0;
}

int
web_filter_parse(const char *s, struct web_filter *f, char *err,
    size_t errlen)
{
	static const char *const keys[] = {
		"host:", "method:", "status:", "process:", "since:",
	};
	size_t tl = 0;

	memset(f, 0, sizeof(*f));
	if (s == NULL)
		return 0;
	for (;;) {
		const char *w, *v;
		size_t n, k, vn;
		int which = -1;

		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0')
			break;
		w = s;
		n = strcspn(w, " \t");
		s = w + n;
		for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			if (n > strlen(keys[k]) && strncasecmp(w, keys[k],
			    strlen(keys[k])) == 0) {
				which = (int)k;
				break;
			}
		if (which < 0) {
			/* Free text: the words, one space between. */
			if (tl + (tl ? 1 : 0) + n >= sizeof(f->text)) {
				snprintf(err, errlen, "text: too long (at most %zu "
				    "bytes)", sizeof(f->text) - 1);
				return -1;
			}
			if (tl)
				f->text[tl++] = ' ';
			memcpy(f->text + tl, w, n);
			tl += n;
			f->text[tl] = '\0';
			continue;
		}
		v = w + strlen(keys[which]);
		vn = n - strlen(keys[which]);
		switch (which) {
		case 0:
			if (put(f->host, sizeof(f->host), v, vn, "host", err,
			    errlen) == -1)
				return -1;
			break;
		case 1:
			if (put(f->method, sizeof(f->method), v, vn, "method",
			    err, errlen) == -1)
				return -1;
			break;
		case 2: {
			char num[8], *end;
			long st;

			if (vn >= sizeof(num)) {
				snprintf(err, errlen, "status: expected an HTTP "
				    "status such as 404");
				return -1;
			}
			memcpy(num, v, vn);
			num[vn] = '\0';
			st = strtol(num, &end, 10);
			if (*end != '\0' || st < 100 || st > 999) {
				snprintf(err, errlen, "status: expected an HTTP "
				    "status such as 404");
				return -1;
			}
			f->status = (int)st;
			break;
		}
		case 3:
			if (put(f->process, sizeof(f->process), v, vn, "process",
			    err, errlen) == -1)
				return -1;
			break;
		case 4:
			if (put(f->since, sizeof(f->since), v, vn, "since", err,
			    errlen) == -1)
				return -1;
			break;
		}
	}
	return 0;
}
