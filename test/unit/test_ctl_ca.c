/*
 * Tests for ctl/ca.c's check of what `ca uninstall`, run as root, may
 * remove: only the file `ca install` itself creates, whatever a record
 * names (a record an older localcapctl kept in the state dir, which
 * proxyd's user can rewrite, once let that user delete any file as root).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ctl/ctl.h"

static void
the_file_install_creates_is_accepted(void **state)
{
	(void)state;
	assert_true(ctl_ca_installed_file_ok("",
	    "/usr/local/share/ca-certificates/localcap-0123abcd.crt"));
	assert_true(ctl_ca_installed_file_ok("/tmp/root",
	    "/tmp/root/usr/local/share/ca-certificates/localcap-ffffffff.crt"));
}

static void
anything_else_is_refused(void **state)
{
	static const char *const bad[] = {
		"/etc/shadow",
		"/usr/local/share/ca-certificates/other.crt",
		"/usr/local/share/ca-certificates/localcap-0123abcd.crt.bak",
		"/usr/local/share/ca-certificates/localcap-0123abc.crt",
		"/usr/local/share/ca-certificates/localcap-0123ABCD.crt",
		"/usr/local/share/ca-certificates/localcap-0123abcg.crt",
		"/usr/local/share/ca-certificates/../../../../etc/passwd",
		"/usr/local/share/ca-certificates/x/localcap-0123abcd.crt",
		"/usr/local/share/ca-certificates/../localcap-0123abcd.crt",
		"/usr/local/share/ca-certificateslocalcap-0123abcd.crt",
		"usr/local/share/ca-certificates/localcap-0123abcd.crt",
		"",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (ctl_ca_installed_file_ok("", bad[i])) {
			print_error("accepted: '%s'\n", bad[i]);
			fail();
		}
	/* Another trust root's file is not this one's. */
	assert_false(ctl_ca_installed_file_ok("/tmp/root",
	    "/usr/local/share/ca-certificates/localcap-0123abcd.crt"));
	assert_false(ctl_ca_installed_file_ok("/tmp/root",
	    "/tmp/rootX/usr/local/share/ca-certificates/localcap-0123abcd.crt"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_file_install_creates_is_accepted),
		cmocka_unit_test(anything_else_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
