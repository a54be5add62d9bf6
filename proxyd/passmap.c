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

/* The moment an entry stops mattering: passing over and strikes expired. */
static double
expiry(const struct passmap_entry *e)
{
	return e->until > e->strikes_until ? e->until : e->strikes_until;
}

/* The entry for key, made (or taking the place of the one that matters
 * least) when absent; NULL when the map keeps nothing. */
static struct passmap_entry *
slot(struct passmap *m, const char *key)
{
	struct passmap_entry *e;
	size_t i;

	if (m->cap == 0 || key[0] == '\0')
		return NULL;
	if ((e = find(m, key)) != NULL)
		return e;
	if (m->n < m->cap)
		e = &m->e[m->n++];
	else {
		/* Full: the entry that would expire first makes room. */
		e = &m->e[0];
		for (i = 1; i < m->n; i++)
			if (expiry(&m->e[i]) < expiry(e))
				e = &m->e[i];
	}
	memset(e, 0, sizeof(*e));
	passmap_key(e->key, key);
	return e;
}

void
passmap_add(struct passmap *m, const char *key, double until)
{
	struct passmap_entry *e;

	if ((e = slot(m, key)) != NULL && until > e->until)
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
	/* Expired (strikes too): the last entry takes its place. */
	if (e->strikes_until <= now)
		*e = m->e[--m->n];
	return false;
}

bool
passmap_strike(struct passmap *m, const char *key, double now, unsigned need,
    double until)
{
	struct passmap_entry *e;

	if ((e = slot(m, key)) == NULL || e->until > now)
		return false;
	if (e->strikes_until <= now) {	/* a first strike, or the old ones expired */
		e->strikes = 0;
		e->strikes_until = now + PASSMAP_STRIKE_WINDOW;
	}
	if (++e->strikes < (need > 0 ? need : 1))
		return false;
	e->strikes = 0;
	e->strikes_until = 0;
	e->until = until;
	return true;
}

void
passmap_forgive(struct passmap *m, const char *key)
{
	struct passmap_entry *e;

	if (m->n > 0 && (e = find(m, key)) != NULL) {
		e->strikes = 0;
		e->strikes_until = 0;
	}
}
