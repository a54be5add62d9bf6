/*
 * libFuzzer harness for the macOS core's spec (macos-extension/core/mx_spec.c
 * over common/ispec.c): the spec reaches the extension from the host app's
 * message or its configuration.  Never a crash; a refusal names an offset
 * inside the text and leaves no rules; an accepted spec has at most
 * MX_SPEC_MAX_RULES rules, each of a kind the evaluator knows, and the
 * evaluation is the same whatever the process's path says beyond its base
 * name.  user: is resolved by a stub, so nothing touches the system.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "macos-extension/core/mx_core.h"
#include "macos-extension/core/mx_spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
fake_uid(const char *name, uint32_t *uid)
{
	if (strcmp(name, "alice") != 0) {
		errno = ENOENT;
		return -1;
	}
	*uid = 501;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mx_spec spec;
	static struct mx_proc a, b;
	struct ispec_error err;
	char *text;
	size_t i;

	if (size > ISPEC_MAX_TEXT + 16)
		return 0;
	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (mx_spec_compile(text, &spec, fake_uid, &err) == -1) {
		if (err.msg[0] == '\0' || err.offset > strlen(text) ||
		    spec.n != 0)
			__builtin_trap();
		free(text);
		return 0;
	}
	if (spec.n > MX_SPEC_MAX_RULES)
		__builtin_trap();
	for (i = 0; i < spec.n; i++)
		if (spec.rules[i].kind != ISPEC_PID &&
		    spec.rules[i].kind != ISPEC_UID &&
		    spec.rules[i].kind != ISPEC_NAME)
			__builtin_trap();
	/* Only the base name counts: two paths with one base name agree. */
	a.pid = b.pid = 42;
	a.uid = b.uid = 501;
	strcpy(a.path, "/usr/bin/curl");
	strcpy(b.path, "/opt/elsewhere/curl");
	if (mx_spec_captures(&spec, &a) != mx_spec_captures(&spec, &b))
		__builtin_trap();
	free(text);
	return 0;
}
