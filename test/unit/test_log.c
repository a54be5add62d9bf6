/* Unit tests for common/log.c: level filtering and the errno suffix. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"

static char *
capture_stderr(void (*fn)(void))
{
	static char buf[4096];
	int pipefd[2], saved;
	ssize_t n;

	assert_int_equal(pipe(pipefd), 0);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	dup2(pipefd[1], STDERR_FILENO);
	fn();
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(pipefd[1]);
	n = read(pipefd[0], buf, sizeof(buf) - 1);
	close(pipefd[0]);
	buf[n < 0 ? 0 : n] = '\0';
	return buf;
}

static void
emit_some(void)
{
	log_debug("hidden %d", 1);
	log_info("shown %d", 2);
	errno = ENOENT;
	log_warn("with errno");
}

static void
log_filters_by_level_and_appends_errno(void **state)
{
	char *out;

	(void)state;
	log_init("test", 1, LOG_LEVEL_INFO);
	out = capture_stderr(emit_some);
	assert_null(strstr(out, "hidden"));
	assert_non_null(strstr(out, "info: emit_some: shown 2"));
	assert_non_null(strstr(out, "warn: emit_some: with errno: No such file or directory"));
}

static void
log_debug_shown_at_debug_level(void **state)
{
	char *out;

	(void)state;
	log_init("test", 1, LOG_LEVEL_DEBUG);
	out = capture_stderr(emit_some);
	assert_non_null(strstr(out, "debug: emit_some: hidden 1"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(log_filters_by_level_and_appends_errno),
		cmocka_unit_test(log_debug_shown_at_debug_level),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
