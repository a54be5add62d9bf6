/*
 * Intercept specs: which processes' sockets are captured.
 *
 * The syntax and the ordered decision are common/ispec.c's, shared with
 * the macOS extension's core; this file adds what is Linux's.
 *
 * Syntax and ordered semantics follow mitmproxy's local mode
 * (mitmproxy_rs intercept_conf.rs): a comma-separated list of actions, each
 * trimmed of whitespace; `!X` excludes X, otherwise X is included; a
 * pattern of only digits is a pid, anything else a process name.  The
 * result starts as "capture" if the first action is an exclusion and
 * "don't" otherwise, then every action in order ORs in (include) or ANDs
 * out (exclude) its match.  An empty spec captures nothing.
 *
 * Extensions: `uid:N`, `user:NAME`, `cgroup:PATH` (as in /proc/PID/cgroup,
 * matching the cgroup and everything below it), `unit:NAME.service` (the
 * unit's cgroup), `name:NAME` (always a process name: for one that is all
 * digits, `name:1234`, or that starts like a keyword).  Names and cgroups are resolved at parse time into the
 * fixed-size rules the BPF program evaluates (struct lc_rule); a spec that
 * does not fit is refused, never truncated.  docs/capture.md has details.
 *
 * spec.c is portable (it builds for macOS, where cgroup: and unit: are
 * refused); the cgroup v2 functions below are cgroup_linux.c's.
 */
#ifndef LOCALCAP_REDIRECTORD_SPEC_H
#define LOCALCAP_REDIRECTORD_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
/* ebpf/capture.h's rules use the kernel's fixed-size types: Linux's own
 * header, or the same widths where there is none (macOS, and the portable
 * check build, which compiles what macOS does). */
#if defined(__linux__) && !defined(LC_PORTABLE_CHECK)
#include <linux/types.h>
#else
typedef uint8_t		__u8;
typedef uint16_t	__u16;
typedef uint32_t	__u32;
typedef uint64_t	__u64;
#endif

#include "ebpf/capture.h"
#include "ispec.h"

/* Longest spec text accepted (it arrives over the control socket). */
#define RD_SPEC_MAX_TEXT	ISPEC_MAX_TEXT

struct rd_spec {
	size_t		nrules;
	bool		default_capture;	/* first action is an exclusion */
	struct lc_rule	rules[LC_MAX_RULES];
	/* Where each rule came from in the text, and whether its process
	 * name was longer than a comm and so compared on 15 bytes. */
	uint32_t	src_offset[LC_MAX_RULES];
	uint32_t	src_len[LC_MAX_RULES];
	bool		name_truncated[LC_MAX_RULES];
};

struct rd_spec_error {
	size_t	offset;		/* byte offset of the bad item in the text */
	size_t	item;		/* 1-based item number; 0: the spec as a whole */
	char	msg[512];	/* complete message, naming item and offset */
};

/*
 * How names become ids.  Any member may be NULL/0 for the system default:
 * getpwnam_r for users; the cgroup v2 mount found in /proc/self/mountinfo;
 * rd_cgroup_id() for directory -> cgroup id.  Tests inject their own.
 */
struct rd_spec_resolver {
	const char *cgroup_root;
	int	(*user_uid)(const char *name, uint32_t *uid, void *arg);
	int	(*cgroup_id)(const char *abs_path, uint64_t *id, void *arg);
	void	*arg;
};

/* Returns 0, or -1 with *err filled (err may be NULL). */
int	rd_spec_parse(const char *text, const struct rd_spec_resolver *res,
	    struct rd_spec *out, struct rd_spec_error *err);

/* What a rule is matched against: the facts the BPF program reads. */
struct rd_proc {
	uint32_t	tgid;
	uint32_t	uid;
	char		comm[LC_COMM_LEN];	/* thread-group leader's */
	const uint64_t	*cgroups;		/* own cgroup and ancestors */
	size_t		ncgroups;
};

/* The reference evaluator; ebpf/capture.bpf.c implements the same. */
bool	rd_spec_captures(const struct rd_spec *spec, const struct rd_proc *p);
/*
 * The same, saying which rule decided (`localcapctl ps`): the index of the
 * last rule that matched p — a matching include sets the result, a
 * matching exclude clears it — or -1 when none did (the default decided:
 * captured if the first item is an exclusion).
 */
int	rd_spec_decide(const struct rd_spec *spec, const struct rd_proc *p,
	    bool *captured);

/* A canonical one-line rendering (for status / list spec). */
void	rd_spec_format(const struct rd_spec *spec, char *buf, size_t len);

/*
 * Linux's cgroup v2 (cgroup_linux.c, Linux-only; on macOS spec.c refuses
 * cgroup: and unit: and nothing calls these).
 */
/* The cgroup v2 mount point, from /proc/self/mountinfo. */
int	rd_cgroup2_root(char *buf, size_t len);
/* The cgroup id of a cgroup v2 directory (what bpf_get_current_cgroup_id
 * returns for tasks in it). */
int	rd_cgroup_id(const char *path, uint64_t *id);
/* The other way: the path of cgroup `id` relative to root ("/a/b"), by
 * walking the tree (for owner attribution; the cgroup may be gone: ENOENT). */
int	rd_cgroup_path(const char *root, uint64_t id, char *buf, size_t len);
/*
 * Every cgroup directory under root, root itself first ("/"), breadth-first
 * and bounded as rd_cgroup_path's walk: fn(path relative to root, its id,
 * arg).  Returns the number visited, or -1.  (cgcache.c fills from this.)
 */
int	rd_cgroup_foreach(const char *root,
	    int (*fn)(const char *rel, uint64_t id, void *arg), void *arg);
/* The cgroup directories under root named name (a unit outside
 * system.slice): how many (stopping at 2: ambiguous), the first in found;
 * -1 on error. */
int	rd_cgroup_find_unit(const char *root, const char *name, char *found,
	    size_t flen);

#endif
