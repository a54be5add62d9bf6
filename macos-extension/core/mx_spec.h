/*
 * The intercept spec as the macOS core evaluates it: common/ispec.c's
 * syntax and ordered decision (the very code redirectord uses), with the
 * facts macOS gives about a process.  A name matches the executable's base
 * name exactly ("curl" matches /usr/bin/curl, not curl-config: mitmproxy's
 * macOS matcher uses a substring of the path, which captures more than
 * asked; Linux compares the whole comm, and so do we here).  pid, uid:N and
 * user:NAME mean what they mean on Linux; cgroup: and unit: are refused.
 */
#ifndef LOCALCAP_MX_SPEC_H
#define LOCALCAP_MX_SPEC_H

#include <stdbool.h>
#include <stdint.h>

#include "ispec.h"

struct mx_proc;

/* As many actions as the Linux BPF map holds, so a spec fits both. */
#define MX_SPEC_MAX_RULES	64
#define MX_SPEC_MAX_NAME	255

struct mx_rule {
	enum ispec_kind	kind;		/* ISPEC_PID, ISPEC_UID or ISPEC_NAME */
	bool		exclude;
	uint32_t	id;
	char		name[MX_SPEC_MAX_NAME + 1];
};

struct mx_spec {
	size_t		n;
	struct mx_rule	rules[MX_SPEC_MAX_RULES];
};

/*
 * Parse text (NULL or blank: capture nothing).  user_uid may be NULL for
 * getpwnam (ispec_user_uid).  0, or -1 with *err filled and *out empty.
 */
int	mx_spec_compile(const char *text, struct mx_spec *out,
	    int (*user_uid)(const char *name, uint32_t *uid),
	    struct ispec_error *err);

bool	mx_spec_captures(const struct mx_spec *, const struct mx_proc *);

#endif
