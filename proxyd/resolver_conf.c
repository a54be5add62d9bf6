/*
 * The stub resolver's configuration (resolver.h): resolv.conf (nameserver,
 * options timeout/attempts) and the hosts file, read before the sandbox
 * and parsed into the resolver.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "proxyd/dns.h"
#include "proxyd/resolver.h"
#include "proxyd/resolver_int.h"

/* --- configuration -------------------------------------------------------------- */

/* "nameserver ADDR" with an optional %zone (IPv6); false if unusable. */
static bool
parse_server(const char *s, uint16_t port, struct server *out)
{
	char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
	struct sockaddr_in *sin = (struct sockaddr_in *)&out->sa;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->sa;
	char *zone;

	if (strlen(s) >= sizeof(buf))
		return false;
	strcpy(buf, s);
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, buf, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		out->len = sizeof(*sin);
		return true;
	}
	if ((zone = strchr(buf, '%')) != NULL)
		*zone++ = '\0';
	if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) != 1)
		return false;
	if (zone != NULL) {
		char *end;
		unsigned long idx = strtoul(zone, &end, 10);

		if (*zone == '\0' || *end != '\0')
			idx = if_nametoindex(zone);
		if (idx == 0 || idx > UINT32_MAX)
			return false;
		sin6->sin6_scope_id = (uint32_t)idx;
	}
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	out->len = sizeof(*sin6);
	return true;
}

/* "timeout:5" -> 5 (capped at 100); -1 if tok is not key followed by digits. */
static int
option_int(const char *tok, const char *key)
{
	size_t kl = strlen(key);
	int v = 0;

	if (strncmp(tok, key, kl) != 0 || tok[kl] == '\0')
		return -1;
	for (tok += kl; *tok != '\0'; tok++) {
		if (*tok < '0' || *tok > '9')
			return -1;
		if (v < 100)
			v = v * 10 + (*tok - '0');
	}
	return v > 100 ? 100 : v;
}

struct resolv_conf {
	struct server	servers[RESOLVER_MAX_SERVERS];
	size_t		nservers;
	int		timeout;	/* 0: not given */
	int		attempts;
};

static void
parse_resolv_conf(const char *text, size_t len, uint16_t port,
    struct resolv_conf *rc)
{
	size_t p = 0;

	memset(rc, 0, sizeof(*rc));
	while (p < len) {
		char line[512], *tok, *save;
		size_t e = p, n;

		while (e < len && text[e] != '\n')
			e++;
		n = e - p < sizeof(line) - 1 ? e - p : sizeof(line) - 1;
		memcpy(line, text + p, n);
		line[n] = '\0';
		p = e + 1;
		if (strlen(line) != n)
			continue;	/* a NUL inside: not a line we know */
		if ((tok = strtok_r(line, " \t\r", &save)) == NULL ||
		    tok[0] == '#' || tok[0] == ';')
			continue;
		if (strcmp(tok, "nameserver") == 0) {
			struct server s;

			if ((tok = strtok_r(NULL, " \t\r", &save)) == NULL ||
			    rc->nservers >= RESOLVER_MAX_SERVERS)
				continue;
			if (parse_server(tok, port, &s))
				rc->servers[rc->nservers++] = s;
			else
				log_warnx("resolv.conf: nameserver %.64s: not "
				    "an address; ignored", tok);
		} else if (strcmp(tok, "options") == 0) {
			while ((tok = strtok_r(NULL, " \t\r", &save)) != NULL) {
				int v;

				if ((v = option_int(tok, "timeout:")) > 0)
					rc->timeout = v;
				else if ((v = option_int(tok, "attempts:")) > 0)
					rc->attempts = v;
			}
		}
	}
	if (rc->nservers == 0) {	/* glibc's default */
		(void)parse_server("127.0.0.1", port, &rc->servers[0]);
		rc->nservers = 1;
	}
}

static int
pair_cmp(const void *a, const void *b)
{
	const struct hosts_pair *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c != 0)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static bool
space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\0';
}

/*
 * The hosts file: "ADDRESS NAME..." per line, '#' to the end of a line.
 * Bad addresses and bad names are skipped; the names are lowered in place
 * in a private copy of the text, which the pairs point into.
 */
static int
parse_hosts(const char *text, size_t len, char **textp,
    struct hosts_pair **pairsp, size_t *npairs, char *err, size_t errlen)
{
	struct hosts_pair *pairs = NULL;
	size_t n = 0, cap = 0, p = 0;
	char *t;

	*textp = NULL;
	*pairsp = NULL;
	*npairs = 0;
	if ((t = malloc(len + 1)) == NULL) {
		snprintf(err, errlen, "hosts: out of memory");
		return -1;
	}
	memcpy(t, text, len);
	t[len] = '\0';
	while (p < len) {
		size_t e = p;
		char *tok[2] = { NULL, NULL };
		struct endpoint addr;
		char *s;

		while (e < len && t[e] != '\n')
			e++;
		t[e] = '\0';	/* (t[len] is already) */
		if ((s = memchr(t + p, '#', e - p)) != NULL)
			*s = '\0';
		s = t + p;
		p = e + 1;
		/* first token: the address */
		while (*s != '\0' && space(*s))
			s++;
		tok[0] = s;
		while (*s != '\0' && !space(*s))
			s++;
		if (*s != '\0')
			*s++ = '\0';
		if (*tok[0] == '\0' || strchr(tok[0], '[') != NULL ||
		    !resolver_parse_literal(tok[0], &addr))
			continue;
		for (;;) {
			char lower[RESOLVER_NAME_MAX + 1];

			while (*s != '\0' && space(*s))
				s++;
			if (*s == '\0')
				break;
			tok[1] = s;
			while (*s != '\0' && !space(*s))
				s++;
			if (*s != '\0')
				*s++ = '\0';
			if (resolver_check_name(tok[1], lower) != NULL)
				continue;
			if (n == HOSTS_MAX_PAIRS) {
				snprintf(err, errlen, "hosts: more than %d "
				    "names", HOSTS_MAX_PAIRS);
				goto fail;
			}
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 64;
				struct hosts_pair *np = reallocarray(pairs,
				    ncap, sizeof(*np));

				if (np == NULL) {
					snprintf(err, errlen, "hosts: out of "
					    "memory");
					goto fail;
				}
				pairs = np;
				cap = ncap;
			}
			strcpy(tok[1], lower);	/* never longer */
			pairs[n].name = tok[1];
			pairs[n].seq = (uint32_t)n;
			pairs[n].addr = addr;
			n++;
		}
	}
	if (n > 0)
		qsort(pairs, n, sizeof(*pairs), pair_cmp);
	*textp = t;
	*pairsp = pairs;
	*npairs = n;
	return 0;
fail:
	free(pairs);
	free(t);
	return -1;
}

int
resolver_load_text(struct resolver *r, const char *resolv_conf,
    size_t resolv_len, const char *hosts, size_t hosts_len, char *err,
    size_t errlen)
{
	struct resolv_conf rc;
	struct hosts_pair *pairs;
	char *text;
	size_t npairs;
	uint16_t port = r->cfg.port ? r->cfg.port : 53;

	if (resolv_conf == NULL)
		resolv_conf = "", resolv_len = 0;
	if (hosts == NULL)
		hosts = "", hosts_len = 0;
	parse_resolv_conf(resolv_conf, resolv_len, port, &rc);
	if (parse_hosts(hosts, hosts_len, &text, &pairs, &npairs, err,
	    errlen) == -1)
		return -1;

	free(r->hosts_text);
	free(r->hosts);
	r->hosts_text = text;
	r->hosts = pairs;
	r->nhosts = npairs;
	memcpy(r->servers, rc.servers, sizeof(r->servers));
	r->nservers = rc.nservers;
	r->timeout = r->cfg.timeout > 0 ? r->cfg.timeout :
	    rc.timeout > 0 ? rc.timeout : DEFAULT_TIMEOUT;
	if (r->timeout > MAX_TIMEOUT)
		r->timeout = MAX_TIMEOUT;
	r->attempts = r->cfg.attempts > 0 ? r->cfg.attempts :
	    rc.attempts > 0 ? rc.attempts : DEFAULT_ATTEMPTS;
	if (r->attempts > MAX_ATTEMPTS)
		r->attempts = MAX_ATTEMPTS;
	r->loaded = true;
	for (size_t i = 0; i < r->cache_cap; i++)
		r->cache[i].name[0] = '\0';
	r->cached = 0;
	return 0;
}

/* The whole file into *buf (NUL-terminated); a missing file is empty. */
static int
read_file(const char *path, size_t max, char **buf, size_t *len, char *err,
    size_t errlen)
{
	size_t cap = 4096, n = 0;
	char *b;
	int fd;

	*buf = NULL;
	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1 &&
	    errno != ENOENT) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if ((b = malloc(cap)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	while (fd != -1) {
		ssize_t got;

		if (n + 1 == cap) {
			char *nb;

			if (cap > max) {
				snprintf(err, errlen, "%s: larger than %zu "
				    "bytes", path, max);
				goto fail;
			}
			if ((nb = realloc(b, cap * 2)) == NULL) {
				snprintf(err, errlen, "%s: out of memory",
				    path);
				goto fail;
			}
			b = nb;
			cap *= 2;
		}
		if ((got = read(fd, b + n, cap - 1 - n)) == -1) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	if (n > max) {
		snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
		goto fail;
	}
	if (fd != -1)
		close(fd);
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
fail:
	free(b);
	if (fd != -1)
		close(fd);
	return -1;
}

int
resolver_load(struct resolver *r, const char *resolv_conf, const char *hosts,
    char *err, size_t errlen)
{
	char *rtext = NULL, *htext = NULL;
	size_t rlen, hlen;
	int rv = -1;

	if (resolv_conf == NULL)
		resolv_conf = "/etc/resolv.conf";
	if (hosts == NULL)
		hosts = "/etc/hosts";
	if (read_file(resolv_conf, RESOLV_CONF_MAX, &rtext, &rlen, err,
	    errlen) == 0 &&
	    read_file(hosts, HOSTS_MAX, &htext, &hlen, err, errlen) == 0)
		rv = resolver_load_text(r, rtext, rlen, htext, hlen, err,
		    errlen);
	free(rtext);
	free(htext);
	return rv;
}

