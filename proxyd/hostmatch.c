/*
 * --ignore-hosts patterns (see hostmatch.h).
 */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/hostmatch.h"

struct pattern {
	char	*text;
	regex_t	 re;
};

struct hostmatch {
	struct pattern	*p;
	size_t		 n;
};

struct hostmatch *
hostmatch_new(void)
{
	return calloc(1, sizeof(struct hostmatch));
}

void
hostmatch_free(struct hostmatch *hm)
{
	size_t i;

	if (hm == NULL)
		return;
	for (i = 0; i < hm->n; i++) {
		regfree(&hm->p[i].re);
		free(hm->p[i].text);
	}
	free(hm->p);
	free(hm);
}

size_t
hostmatch_count(const struct hostmatch *hm)
{
	return hm ? hm->n : 0;
}

/* Length of the list item at s: up to a comma outside {} and []. */
static size_t
item_len(const char *s)
{
	int brace = 0, bracket = 0;
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] == '\\' && s[i + 1] != '\0') {
			i++;
			continue;
		}
		if (bracket) {
			if (s[i] == ']')
				bracket = 0;
			continue;
		}
		if (s[i] == '[')
			bracket = 1;
		else if (s[i] == '{')
			brace++;
		else if (s[i] == '}' && brace > 0)
			brace--;
		else if (s[i] == ',' && brace == 0)
			break;
	}
	return i;
}

int
hostmatch_add(struct hostmatch *hm, const char *list, char *err, size_t errlen)
{
	struct pattern *np;
	size_t first = hm->n, len, total = 0;
	const char *s;
	int rc;

	for (s = list; ; s += len + 1) {
		len = item_len(s);
		total++;
		if (s[len] == '\0')
			break;
	}
	if (hm->n + total > HOSTMATCH_MAX_PATTERNS) {
		snprintf(err, errlen, "more than %d patterns",
		    HOSTMATCH_MAX_PATTERNS);
		return -1;
	}
	if ((np = realloc(hm->p, (hm->n + total) * sizeof(*np))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	hm->p = np;
	for (s = list; ; s += len + 1) {
		struct pattern *p = &hm->p[hm->n];

		len = item_len(s);
		if (len == 0) {
			snprintf(err, errlen, "empty pattern in '%s'", list);
			goto undo;
		}
		if (len > HOSTMATCH_MAX_PATTERN) {
			snprintf(err, errlen, "pattern longer than %d bytes",
			    HOSTMATCH_MAX_PATTERN);
			goto undo;
		}
		if ((p->text = strndup(s, len)) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto undo;
		}
		if ((rc = regcomp(&p->re, p->text, REG_EXTENDED | REG_ICASE |
		    REG_NOSUB)) != 0) {
			char why[128];

			regerror(rc, &p->re, why, sizeof(why));
			snprintf(err, errlen, "bad pattern '%s': %s", p->text, why);
			free(p->text);
			goto undo;
		}
		hm->n++;
		if (s[len] == '\0')
			break;
	}
	return 0;

undo:
	while (hm->n > first) {
		hm->n--;
		regfree(&hm->p[hm->n].re);
		free(hm->p[hm->n].text);
	}
	return -1;
}

const char *
hostmatch_find(const struct hostmatch *hm, const char *host, uint16_t port)
{
	char subject[300];
	size_t i;

	if (hm == NULL || hm->n == 0 || host == NULL || host[0] == '\0')
		return NULL;
	if ((size_t)snprintf(subject, sizeof(subject), "%s:%u", host,
	    (unsigned)port) >= sizeof(subject))
		return NULL;	/* no DNS name is that long */
	for (i = 0; i < hm->n; i++)
		if (regexec(&hm->p[i].re, subject, 0, NULL, 0) == 0)
			return hm->p[i].text;
	return NULL;
}
