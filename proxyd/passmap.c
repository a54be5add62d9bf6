/*
 * The bounded host -> deadline map behind automatic TLS passthrough (see
 * passmap.h).  A flat array: it is small, bounded and consulted once per
 * new TLS flow.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/passmap.h"

int
passmap_init(struct passmap *m, size_t cap)
{
	memset(m, 0, sizeof(*m));
	if (cap == 0)
		return 0;
	if ((m->e = calloc(cap, sizeof(*m->e))) == NULL)
		return -1;
	m->cap = cap;
	return 0;
}

void
passmap_free(struct passmap *m)
{
	free(m->e);
	memset(m, 0, sizeof(*m));
}

void
passmap_key(char *out, const char *host)
{
	size_t i;

	for (i = 0; host[i] != '\0' && i < PASSMAP_KEY_MAX - 1; i++)
		out[i] = (char)tolower((unsigned char)host[i]);
	out[i] = '\0';
}

static struct passmap_entry *
find(struct passmap *m, const char *key)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		if (strcmp(m->e[i].key, key) == 0)
			return &m->e[i];
	return NULL;
}

void
passmap_add(struct passmap *m, const char *key, double until)
{
	struct passmap_entry *e;
	size_t i;

	if (m->cap == 0 || key[0] == '\0')
		return;
	if ((e = find(m, key)) != NULL) {
		if (until > e->until)
			e->until = until;
		return;
	}
	if (m->n < m->cap)
		e = &m->e[m->n++];
	else {
		/* Full: the entry that would expire first makes room. */
		e = &m->e[0];
		for (i = 1; i < m->n; i++)
			if (m->e[i].until < e->until)
				e = &m->e[i];
	}
	passmap_key(e->key, key);
	e->until = until;
}

bool
passmap_has(struct passmap *m, const char *key, double now)
{
	struct passmap_entry *e;

	if (m->n == 0 || (e = find(m, key)) == NULL)
		return false;
	if (e->until > now)
		return true;
	/* Expired: the last entry takes its place. */
	*e = m->e[--m->n];
	return false;
}
