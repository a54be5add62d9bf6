/*
 * libFuzzer harness for redirectord/spec.c: intercept specs arrive over the
 * control socket from any member of the localcap group.  The parser must
 * never crash, must either refuse with a message naming an offset inside
 * the text or produce rules the evaluator and the formatter accept, and a
 * formatted spec (without cgroup rules) must parse back to the same rules.  Name and cgroup
 * resolution are stubbed so the fuzzer never touches the system.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redirectord/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
fake_uid(const char *name, uint32_t *uid, void *arg)
{
	(void)arg;
	if (strcmp(name, "alice") != 0)
		return -1;
	*uid = 1000;
	return 0;
}

static int
fake_cgroup(const char *path, uint64_t *id, void *arg)
{
	(void)arg;
	*id = 1000 + strlen(path);	/* any directory "exists" */
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct rd_spec_resolver res = {
		.cgroup_root = "/sys/fs/cgroup",
		.user_uid = fake_uid,
		.cgroup_id = fake_cgroup,
	};
	static struct rd_spec spec, again;
	struct rd_spec_error err;
	char *text, formatted[RD_SPEC_MAX_TEXT * 2];
	uint64_t cgroups[2] = { 1001, 1 };
	struct rd_proc proc = { .tgid = 42, .uid = 1000, .comm = "curl",
	    .cgroups = cgroups, .ncgroups = 2 };

	if (size > RD_SPEC_MAX_TEXT + 16)
		return 0;
	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (rd_spec_parse(text, &res, &spec, &err) == -1) {
		/* A refusal points inside the text and says something. */
		if (err.msg[0] == '\0' || err.offset > strlen(text))
			__builtin_trap();
	} else {
		size_t i;
		int has_cgroup = 0;

		(void)rd_spec_captures(&spec, &proc);
		rd_spec_format(&spec, formatted, sizeof(formatted));
		for (i = 0; i < spec.nrules; i++) {
			const struct lc_rule *r = &spec.rules[i];

			has_cgroup |= r->kind == LC_RULE_CGROUP;
			/*
			 * A name cut to 15 bytes may be all digits (a pid's
			 * syntax) or end in a space (trimmed when parsed).
			 */
			if (r->kind == LC_RULE_COMM) {
				size_t n = strnlen(r->comm, LC_COMM_LEN);

				has_cgroup |= strspn(r->comm, "0123456789") == n ||
				    (n > 0 && (strchr(" \t\n\v\f\r", r->comm[n - 1]) ||
				    strchr(" \t\n\v\f\r!", r->comm[0])));
			}
		}
		/*
		 * What the formatter shows must mean the same rules (cgroup
		 * rules show as "cgroup-id:N", which is not spec syntax, and a
		 * name of digits cannot be written as a name).
		 */
		if (!has_cgroup && (rd_spec_parse(formatted, &res, &again, &err) == -1 ||
		    again.nrules != spec.nrules ||
		    again.default_capture != spec.default_capture ||
		    memcmp(again.rules, spec.rules,
		    spec.nrules * sizeof(spec.rules[0])) != 0))
			__builtin_trap();
	}
	free(text);
	return 0;
}
