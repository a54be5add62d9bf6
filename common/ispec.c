/*
 * Intercept specs, the platform-free part (see ispec.h).  Moved here from
 * redirectord/spec.c so that the macOS extension's core parses and decides
 * with the very same code; redirectord keeps what is Linux's (BPF rules,
 * cgroups, the 15-byte comm).
 */
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ispec.h"

/*
 * The item as it may appear in a log line: at most 60 bytes, anything but
 * printable ASCII (newlines, escapes, UTF-8) as \xNN, so that a spec cannot
 * forge log lines.
 */
static void
quote_item(const char *s, size_t len, char *out, size_t outlen)
{
	size_t i, o = 0;

	for (i = 0; i < len && i < 60 && o + 5 < outlen; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch >= 0x20 && ch < 0x7f && ch != '\\')
			out[o++] = (char)ch;
		else
			o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", ch);
	}
	if (i < len && o + 4 < outlen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

int
ispec_fail(const char *text, struct ispec_error *err, size_t item, size_t off,
    size_t len, const char *fmt, ...)
{
	char what[200], quoted[128], *p;
	va_list ap;

	if (err == NULL)
		return -1;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	/* Reasons may quote names and paths from the spec: same rule. */
	for (p = what; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	err->item = item;
	err->offset = off;
	if (item == 0)
		snprintf(err->msg, sizeof(err->msg), "intercept spec: %s", what);
	else {
		quote_item(text + off, len, quoted, sizeof(quoted));
		snprintf(err->msg, sizeof(err->msg),
		    "intercept spec item %zu at offset %zu ('%s'): %s", item,
		    off, quoted, what);
	}
	return -1;
}

/* ASCII whitespace only: the C locale's isspace. */
static int
is_ws(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ||
	    ch == '\v' || ch == '\f';
}

static int
all_digits(const char *s, size_t n)
{
	size_t i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* Decimal digits to a value <= max; -1 on overflow. */
static int
parse_u32(const char *s, size_t n, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > max)
			return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

static int
has_prefix(const char *s, size_t n, const char *prefix)
{
	size_t pn = strlen(prefix);

	return n >= pn && memcmp(s, prefix, pn) == 0;
}

/* Classify one pattern (after any '!'): pid, uid:, user:, cgroup:, unit:,
 * name:, else a name. */
static int
classify(const char *text, struct ispec_error *err, size_t item,
    struct ispec_item *it)
{
	const char *pat = text + it->arg_off;
	size_t plen = it->arg_len;
	static const struct {
		const char	*prefix;
		enum ispec_kind	 kind;
		const char	*empty;
	} prefixed[] = {
		{ "user:", ISPEC_USER, "user: expects a user name" },
		{ "cgroup:", ISPEC_CGROUP, "cgroup: expects a path" },
		{ "unit:", ISPEC_UNIT, "unit: expects a unit name" },
		/* Always a name: for one of only digits, or like a keyword. */
		{ "name:", ISPEC_NAME, "name: expects a process name" },
	};
	size_t i;

	if (all_digits(pat, plen)) {
		if (parse_u32(pat, plen, UINT32_MAX, &it->id) < 0)
			return ispec_fail(text, err, item, it->off, it->len,
			    "pid out of range");
		if (it->id == 0)
			return ispec_fail(text, err, item, it->off, it->len,
			    "pid 0 is not a process");
		it->kind = ISPEC_PID;
		return 0;
	}
	if (has_prefix(pat, plen, "uid:")) {
		pat += 4;
		plen -= 4;
		if (!all_digits(pat, plen))
			return ispec_fail(text, err, item, it->off, it->len,
			    "uid: expects a decimal number");
		/* (uid_t)-1 means "no uid" to the kernel */
		if (parse_u32(pat, plen, UINT32_MAX - 1, &it->id) < 0)
			return ispec_fail(text, err, item, it->off, it->len,
			    "uid out of range");
		it->kind = ISPEC_UID;
		it->arg_off += 4;
		it->arg_len = plen;
		return 0;
	}
	for (i = 0; i < sizeof(prefixed) / sizeof(prefixed[0]); i++) {
		size_t n = strlen(prefixed[i].prefix);

		if (!has_prefix(pat, plen, prefixed[i].prefix))
			continue;
		if (plen == n || (prefixed[i].kind == ISPEC_USER &&
		    plen - n >= 256))
			return ispec_fail(text, err, item, it->off, it->len,
			    "%s", prefixed[i].empty);
		it->kind = prefixed[i].kind;
		it->arg_off += n;
		it->arg_len -= n;
		return 0;
	}
	it->kind = ISPEC_NAME;
	return 0;
}

int
ispec_split(const char *text, struct ispec_item *items, size_t max,
    const char *where, struct ispec_error *err)
{
	size_t len, start, end, pos, n, item;

	if (text == NULL)
		text = "";
	if (err != NULL)
		memset(err, 0, sizeof(*err));
	len = strnlen(text, ISPEC_MAX_TEXT + 1);
	if (len > ISPEC_MAX_TEXT)
		return ispec_fail(text, err, 0, 0, 0, "longer than %d bytes",
		    ISPEC_MAX_TEXT);
	start = 0;
	end = len;
	while (start < end && is_ws(text[start]))
		start++;
	while (end > start && is_ws(text[end - 1]))
		end--;
	if (start == end)
		return 0;	/* capture nothing */

	/* Count first, so that an oversized spec is refused as a whole. */
	n = 1;
	for (pos = start; pos < end; pos++)
		if (text[pos] == ',')
			n++;
	if (n > max) {
		size_t k = 0;

		for (pos = start; pos < end && k < max; pos++)
			if (text[pos] == ',')
				k++;
		return ispec_fail(text, err, 0, pos, 0,
		    "%zu rules, but at most %zu fit in %s (rule %zu starts at "
		    "offset %zu)", n, max, where, max + 1, pos);
	}

	pos = start;
	for (item = 1; item <= n; item++) {
		const char *comma = memchr(text + pos, ',', end - pos);
		size_t iend = comma != NULL ? (size_t)(comma - text) : end;
		size_t s = pos, e = iend, ps;
		struct ispec_item *it = &items[item - 1];

		memset(it, 0, sizeof(*it));
		while (s < e && is_ws(text[s]))
			s++;
		while (e > s && is_ws(text[e - 1]))
			e--;
		if (s == e)
			return ispec_fail(text, err, item, pos, 0, "empty item");
		ps = s;
		if (text[s] == '!') {
			it->exclude = true;
			ps++;
			while (ps < e && is_ws(text[ps]))
				ps++;
			if (ps == e)
				return ispec_fail(text, err, item, s, e - s,
				    "nothing after '!'");
		}
		it->off = s;
		it->len = e - s;
		it->arg_off = ps;
		it->arg_len = e - ps;
		if (classify(text, err, item, it) < 0)
			return -1;
		pos = iend + 1;
	}
	return (int)n;
}

bool
ispec_decide(size_t n, bool (*match)(size_t i, bool *exclude, void *arg),
    void *arg)
{
	int decided;

	return ispec_decide_which(n, match, arg, &decided);
}

bool
ispec_decide_which(size_t n, bool (*match)(size_t i, bool *exclude,
    void *arg), void *arg, int *decided)
{
	bool capture = false;
	size_t i;

	*decided = -1;
	for (i = 0; i < n; i++) {
		bool exclude = false;
		bool m = match(i, &exclude, arg);

		/* mitmproxy: the first action's kind sets the default. */
		if (i == 0)
			capture = exclude;
		if (exclude)
			capture = capture && !m;
		else
			capture = capture || m;
		if (m)
			*decided = (int)i;
	}
	return capture;
}

const char *
ispec_basename(const char *path)
{
	const char *slash;

	if (path == NULL)
		return "";
	slash = strrchr(path, '/');
	return slash != NULL ? slash + 1 : path;
}

int
ispec_user_uid(const char *name, uint32_t *uid)
{
	struct passwd pw, *found = NULL;
	size_t size = 4096;
	char *buf = NULL;
	int rc;

	/* ERANGE: an entry bigger than the buffer (LDAP, long gecos). */
	do {
		char *nbuf = realloc(buf, size);

		if (nbuf == NULL) {
			free(buf);
			return -1;
		}
		buf = nbuf;
		rc = getpwnam_r(name, &pw, buf, size, &found);
		size *= 4;
	} while (rc == ERANGE && size <= 1024 * 1024);
	free(buf);
	if (rc != 0) {
		errno = rc;
		return -1;
	}
	if (found == NULL) {
		errno = ENOENT;
		return -1;
	}
	*uid = (uint32_t)pw.pw_uid;
	return 0;
}
