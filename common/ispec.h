/*
 * Intercept specs, the platform-free part: syntax and ordered semantics
 * shared by redirectord (Linux: compiled into BPF rules, redirectord/spec.c)
 * and the macOS extension's core (macos-extension/core/mx_spec.c), so that
 * one spec means the same on both.
 *
 * The language is mitmproxy's local mode (mitmproxy_rs intercept_conf.rs):
 * a comma-separated list of actions, each trimmed of ASCII whitespace; `!X`
 * excludes X, otherwise X is included; a pattern of only digits is a pid,
 * anything else a process name.  The decision starts as "capture" if the
 * first action is an exclusion and "don't" otherwise; then every action in
 * order ORs in (include) or ANDs out (exclude) its match.  An empty spec
 * captures nothing.  localcap's extensions: `uid:N`, `user:NAME`,
 * `cgroup:PATH`, `unit:NAME` (these two only mean something on Linux), and
 * `name:NAME` — always a process name, for one of only digits (`name:1234`)
 * or one that starts like a keyword.
 *
 * This file splits and classifies the text, checks what can be checked
 * without the system (numbers, empty items), and renders refusals that name
 * the item and its byte offset; what a name, user or cgroup resolves to is
 * the caller's business.  Nothing here allocates or touches the system
 * except ispec_user_uid().
 */
#ifndef LOCALCAP_ISPEC_H
#define LOCALCAP_ISPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest spec text accepted (it arrives over a control socket). */
#define ISPEC_MAX_TEXT	8192

enum ispec_kind {
	ISPEC_PID = 1,		/* id */
	ISPEC_NAME,		/* arg: a process name */
	ISPEC_UID,		/* id */
	ISPEC_USER,		/* arg: a user name, < 256 bytes */
	ISPEC_CGROUP,		/* arg: a cgroup path (unchecked) */
	ISPEC_UNIT,		/* arg: a unit name (unchecked) */
};

struct ispec_item {
	enum ispec_kind	kind;
	bool		exclude;
	uint32_t	id;		/* ISPEC_PID, ISPEC_UID */
	size_t		off, len;	/* the whole item, trimmed, in the text */
	size_t		arg_off, arg_len; /* the pattern after '!' and prefix */
};

struct ispec_error {
	size_t	offset;		/* byte offset of the bad item in the text */
	size_t	item;		/* 1-based item number; 0: the spec as a whole */
	char	msg[512];	/* complete message, naming item and offset */
};

/*
 * Split text (NULL reads as "") into at most max items.  Returns the number
 * of items (0: the spec is empty and captures nothing), or -1 with *err
 * filled (err may be NULL).  More than max items is refused as a whole, the
 * message saying they do not fit "in <where>".
 */
int	ispec_split(const char *text, struct ispec_item *items, size_t max,
	    const char *where, struct ispec_error *err);

/*
 * Fill *err for item (1-based; 0 for the spec as a whole) at [off, off+len)
 * of text: "intercept spec item N at offset O ('ITEM'): REASON".  The item
 * is quoted so that a spec cannot forge log lines.  Always returns -1.
 */
int	ispec_fail(const char *text, struct ispec_error *err, size_t item,
	    size_t off, size_t len, const char *fmt, ...)
	    __attribute__((format(printf, 6, 7)));

/*
 * The ordered decision.  match(i, arg) says whether action i matches the
 * process; exclude[i] whether it is an exclusion.  Every evaluator of a
 * spec (redirectord's reference, the macOS core) goes through this.
 */
bool	ispec_decide(size_t n, bool (*match)(size_t i, bool *exclude,
	    void *arg), void *arg);
/* The same, and *decided = the index of the last action that matched (a
 * matching include makes the answer true, a matching exclude false), or
 * -1 when none did and the default stood. */
bool	ispec_decide_which(size_t n, bool (*match)(size_t i, bool *exclude,
	    void *arg), void *arg, int *decided);

/* The base name of an executable path ("/usr/bin/curl" -> "curl"). */
const char	*ispec_basename(const char *path);

/* getpwnam_r with a growing buffer: 0, or -1 with errno (ENOENT: none). */
int	ispec_user_uid(const char *name, uint32_t *uid);

#endif
