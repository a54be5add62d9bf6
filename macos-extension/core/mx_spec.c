/*
 * The macOS core's spec (see mx_spec.h): compiled from ispec_split()'s items,
 * decided by ispec_decide().
 */
#include <errno.h>
#include <string.h>

#include "macos-extension/core/mx_core.h"
#include "macos-extension/core/mx_spec.h"

int
mx_spec_compile(const char *text, struct mx_spec *out,
    int (*user_uid)(const char *name, uint32_t *uid), struct ispec_error *err)
{
	struct ispec_item items[MX_SPEC_MAX_RULES];
	int n, i;

	memset(out, 0, sizeof(*out));
	if (text == NULL)
		text = "";
	n = ispec_split(text, items, MX_SPEC_MAX_RULES, "an intercept spec",
	    err);
	if (n < 0)
		return -1;
	for (i = 0; i < n; i++) {
		const struct ispec_item *it = &items[i];
		struct mx_rule *r = &out->rules[i];
		char user[256];

		r->exclude = it->exclude;
		switch (it->kind) {
		case ISPEC_PID:
		case ISPEC_UID:
			r->kind = it->kind;
			r->id = it->id;
			break;
		case ISPEC_USER:
			/* ispec_split keeps user names under 256 bytes */
			memcpy(user, text + it->arg_off, it->arg_len);
			user[it->arg_len] = '\0';
			if ((user_uid != NULL ? user_uid(user, &r->id) :
			    ispec_user_uid(user, &r->id)) < 0) {
				int e = errno;

				ispec_fail(text, err, (size_t)i + 1, it->off,
				    it->len, "no such user '%s'%s%s", user,
				    e == ENOENT ? "" : ": ",
				    e == ENOENT ? "" : strerror(e));
				goto fail;
			}
			r->kind = ISPEC_UID;
			break;
		case ISPEC_CGROUP:
		case ISPEC_UNIT:
			ispec_fail(text, err, (size_t)i + 1, it->off, it->len,
			    "%s is Linux-only (macOS has no cgroups)",
			    it->kind == ISPEC_CGROUP ? "cgroup:" : "unit:");
			goto fail;
		case ISPEC_NAME:
		default:
			if (it->arg_len > MX_SPEC_MAX_NAME) {
				ispec_fail(text, err, (size_t)i + 1, it->off,
				    it->len, "process name longer than %d bytes",
				    MX_SPEC_MAX_NAME);
				goto fail;
			}
			if (memchr(text + it->arg_off, '/', it->arg_len) != NULL) {
				ispec_fail(text, err, (size_t)i + 1, it->off,
				    it->len, "a process name is an executable's "
				    "base name, without '/'");
				goto fail;
			}
			r->kind = ISPEC_NAME;
			memcpy(r->name, text + it->arg_off, it->arg_len);
			break;
		}
		out->n++;
	}
	return 0;
fail:
	memset(out, 0, sizeof(*out));
	return -1;
}

struct eval_arg {
	const struct mx_spec	*spec;
	const struct mx_proc	*p;
	const char		*base;
};

static bool
rule_matches(size_t i, bool *exclude, void *arg)
{
	const struct eval_arg *ea = arg;
	const struct mx_rule *r = &ea->spec->rules[i];

	*exclude = r->exclude;
	switch (r->kind) {
	case ISPEC_PID:
		return r->id == ea->p->pid;
	case ISPEC_UID:
		return r->id == ea->p->uid;
	case ISPEC_NAME:
		/* An unknown path matches no name. */
		return ea->base[0] != '\0' && strcmp(r->name, ea->base) == 0;
	default:
		return false;
	}
}

bool
mx_spec_captures(const struct mx_spec *spec, const struct mx_proc *p)
{
	struct eval_arg ea = { spec, p, ispec_basename(p->path) };

	return ispec_decide(spec->n, rule_matches, &ea);
}
