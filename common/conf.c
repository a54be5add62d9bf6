/*
 * Reader for localcap.conf (format in conf.h).  Strict on purpose: an unknown
 * section or key, a value of the wrong shape, a duplicate key or a line that
 * is not `key = value` is an error naming file and line, so a misspelt option
 * never silently does nothing.
 */
#include "conf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define CONF_MAX_LINE	1024
#define CONF_MAX_ITEMS	256

enum conf_type {
	CONF_PATH,	/* absolute path */
	CONF_LOG_LEVEL,
	CONF_IFNAME,	/* network interface name */
	CONF_UINT,	/* decimal, within [min, max] */
	CONF_BOOL,	/* yes/no, true/false, on/off, 1/0 */
	CONF_USER,	/* a user name */
	CONF_TEXT,	/* any text, checked by the daemon that reads it */
};

struct conf_key {
	const char	*key;
	enum conf_type	 type;
	const char	*sections;	/* where it may appear, comma-framed */
	unsigned long	 min, max;	/* CONF_UINT */
};

/* The schema.  A key is listed once, with every section it may appear in. */
static const struct conf_key conf_schema[] = {
	{ "runtime_dir",	CONF_PATH,	",global,redirectord,netstackd,proxyd,", 0, 0 },
	{ "log_level",		CONF_LOG_LEVEL,	",global,redirectord,netstackd,proxyd,", 0, 0 },
	{ "state_dir",		CONF_PATH,	",proxyd,", 0, 0 },
	{ "tun_name",		CONF_IFNAME,	",redirectord,", 0, 0 },
	{ "tun_mtu",		CONF_UINT,	",redirectord,", 1280, 65535 },
	{ "cgroup",		CONF_PATH,	",redirectord,", 0, 0 },
	{ "fail_closed",	CONF_BOOL,	",redirectord,", 0, 0 },
	{ "user",		CONF_USER,	",netstackd,proxyd,", 0, 0 },
	{ "netstack_user",	CONF_USER,	",redirectord,proxyd,", 0, 0 },
	{ "listen",		CONF_TEXT,	",proxyd,", 0, 0 },
	{ "ignore_hosts",	CONF_TEXT,	",proxyd,", 0, 0 },
	{ "upstream_ca",	CONF_PATH,	",proxyd,", 0, 0 },
	{ "body_cap",		CONF_TEXT,	",proxyd,", 0, 0 },
	{ "store_max",		CONF_TEXT,	",proxyd,", 0, 0 },
	{ "memory_budget",	CONF_TEXT,	",proxyd,", 0, 0 },
	{ "max_flows",		CONF_TEXT,	",proxyd,", 0, 0 },
	{ "max_flows_per_addr",	CONF_TEXT,	",proxyd,", 0, 0 },
	{ "idle_timeout",	CONF_TEXT,	",proxyd,", 0, 0 },
	{ "quic",		CONF_TEXT,	",proxyd,", 0, 0 },
};

static const char *conf_sections[] = { "redirectord", "netstackd", "proxyd" };

struct conf_item {
	char	*section;	/* "" for global */
	char	*key;
	char	*value;
};

struct conf {
	struct conf_item items[CONF_MAX_ITEMS];
	size_t		 n;
};

int
conf_parse_log_level(const char *s)
{
	static const char *names[] = { "warn", "info", "debug", "trace" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i]) == 0)
			return (int)i;
	return -1;
}

int
conf_parse_bool(const char *s)
{
	static const char *yes[] = { "yes", "true", "on", "1" };
	static const char *no[] = { "no", "false", "off", "0" };
	size_t i;

	for (i = 0; i < 4; i++) {
		if (strcmp(s, yes[i]) == 0)
			return 1;
		if (strcmp(s, no[i]) == 0)
			return 0;
	}
	return -1;
}

static char *
trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

static const struct conf_key *
schema_lookup(const char *key)
{
	size_t i;

	for (i = 0; i < sizeof(conf_schema) / sizeof(conf_schema[0]); i++)
		if (strcmp(conf_schema[i].key, key) == 0)
			return &conf_schema[i];
	return NULL;
}

static int
section_allows(const struct conf_key *k, const char *section)
{
	const char *name = section[0] ? section : "global";
	size_t len = strlen(name);
	const char *at;

	/* Look for ",name," in the comma-framed list. */
	for (at = strstr(k->sections, name); at; at = strstr(at + 1, name))
		if (at[-1] == ',' && at[len] == ',')
			return 1;
	return 0;
}

static int
known_section(const char *s)
{
	size_t i;

	for (i = 0; i < sizeof(conf_sections) / sizeof(conf_sections[0]); i++)
		if (strcmp(s, conf_sections[i]) == 0)
			return 1;
	return 0;
}

/* NULL if the value fits its type, else what is wrong. */
static const char *
check_value(const struct conf_key *k, const char *v)
{
	switch (k->type) {
	case CONF_PATH:
		if (v[0] != '/')
			return "must be an absolute path";
		if (strlen(v) > 200)
			return "path too long (at most 200 bytes)";
		return NULL;
	case CONF_LOG_LEVEL:
		return conf_parse_log_level(v) < 0 ?
		    "must be one of warn, info, debug, trace" : NULL;
	case CONF_IFNAME:
		if (strlen(v) > 15 || strpbrk(v, "/% \t") != NULL)
			return "must be an interface name (at most 15 "
			    "characters, no '/', '%' or spaces)";
		return NULL;
	case CONF_USER:
		if (strlen(v) > 32 || strspn(v, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != strlen(v) ||
		    v[0] == '-')
			return "must be a user name (letters, digits, '_', '.', "
			    "'-'; at most 32)";
		return NULL;
	case CONF_BOOL:
		return conf_parse_bool(v) < 0 ?
		    "must be yes or no (true/false, on/off, 1/0)" : NULL;
	case CONF_UINT: {
		static char why[64];
		unsigned long n;
		char *end;

		errno = 0;
		n = strtoul(v, &end, 10);
		if (!isdigit((unsigned char)v[0]) || *end != '\0' || errno ||
		    n < k->min || n > k->max) {
			snprintf(why, sizeof(why), "must be a number from %lu to %lu",
			    k->min, k->max);
			return why;
		}
		return NULL;
	}
	case CONF_TEXT:
		return strlen(v) > 4096 ? "too long (at most 4096 bytes)" : NULL;
	}
	return "unknown type";
}

void
conf_free(struct conf *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->n; i++) {
		free(c->items[i].section);
		free(c->items[i].key);
		free(c->items[i].value);
	}
	free(c);
}

const char *
conf_get(const struct conf *c, const char *daemon, const char *key)
{
	const char *global = NULL;
	size_t i;

	if (c == NULL)
		return NULL;
	for (i = 0; i < c->n; i++) {
		if (strcmp(c->items[i].key, key) != 0)
			continue;
		if (daemon && strcmp(c->items[i].section, daemon) == 0)
			return c->items[i].value;
		if (c->items[i].section[0] == '\0')
			global = c->items[i].value;
	}
	return global;
}

struct conf *
conf_load(const char *path, char *err, size_t errlen)
{
	char line[CONF_MAX_LINE + 2], section[64] = "";
	struct conf *c;
	unsigned lineno = 0;
	FILE *f;

#define FAIL(...) do {							\
		int n_ = snprintf(err, errlen, "%s:%u: ", path, lineno); \
		if (n_ >= 0 && (size_t)n_ < errlen)			\
			snprintf(err + n_, errlen - (size_t)n_, __VA_ARGS__); \
		goto fail;						\
	} while (0)

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	if ((f = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		free(c);
		return NULL;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		const struct conf_key *k;
		const char *why;
		char *s, *eq, *key, *value;
		size_t i;

		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f))
			FAIL("line longer than %d bytes", CONF_MAX_LINE);
		s = trim(line);
		if (*s == '\0' || *s == '#')
			continue;
		if (*s == '[') {
			char *end = strchr(s, ']');

			if (end == NULL || end[1] != '\0')
				FAIL("malformed section header, expected [name]");
			*end = '\0';
			s = trim(s + 1);
			if (!known_section(s))
				FAIL("unknown section [%s] (known: redirectord, "
				    "netstackd, proxyd)", s);
			snprintf(section, sizeof(section), "%s", s);
			continue;
		}
		if ((eq = strchr(s, '=')) == NULL)
			FAIL("expected 'key = value'");
		*eq = '\0';
		key = trim(s);
		value = trim(eq + 1);
		if (*key == '\0')
			FAIL("missing key before '='");
		if ((k = schema_lookup(key)) == NULL)
			FAIL("unknown key '%s'", key);
		if (!section_allows(k, section))
			FAIL("key '%s' does not belong in %s%s%s", key,
			    section[0] ? "[" : "the global section",
			    section, section[0] ? "]" : "");
		if (*value == '\0')
			FAIL("missing value for '%s'", key);
		if ((why = check_value(k, value)) != NULL)
			FAIL("%s: %s", key, why);
		for (i = 0; i < c->n; i++)
			if (strcmp(c->items[i].key, key) == 0 &&
			    strcmp(c->items[i].section, section) == 0)
				FAIL("duplicate key '%s'", key);
		if (c->n == CONF_MAX_ITEMS)
			FAIL("too many settings (at most %d)", CONF_MAX_ITEMS);
		c->items[c->n].section = strdup(section);
		c->items[c->n].key = strdup(key);
		c->items[c->n].value = strdup(value);
		c->n++;
		if (!c->items[c->n - 1].section || !c->items[c->n - 1].key ||
		    !c->items[c->n - 1].value)
			FAIL("out of memory");
	}
	if (ferror(f))
		FAIL("read error: %s", strerror(errno));
	fclose(f);
	return c;
fail:
	fclose(f);
	conf_free(c);
	return NULL;
#undef FAIL
}
