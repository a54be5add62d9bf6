/*
 * Unit tests for redirectord/capture.c, the capture state the control
 * requests act on: attach/detach as item lists (order kept, errors placed
 * in the caller's own spec, the active spec untouched by a refusal), the
 * spec as people wrote it without run sessions' items, run cgroups made
 * inside the caller's cgroup and reaped when they empty, fail-open pausing,
 * and the owner lookup's refusals.
 *
 * With root and kernel BTF the real programs are loaded and attached to a
 * child cgroup this test creates (never the root) and removes with
 * everything under it; the programs stay paused (no chain), and the only
 * process moved in is a sleeping child of ours.  No traffic: that is
 * test/integration/ebpf_capture.sh.  Without root or BTF only the checks
 * that come before loading run.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"
#include "redirectord/capture.h"
#include "redirectord/spec.h"
#include "redirectord/tun.h"

static char dir[600];		/* the attach point this test made */
static struct capture cap;
static int have_cap;
static pid_t child = -1;

static int
bpf_possible(void)
{
	return geteuid() == 0 && access("/sys/kernel/btf/vmlinux", R_OK) == 0;
}

/* Move pid into the cgroup directory d. */
static int
move_to(const char *d, pid_t pid)
{
	char procs[700], buf[32];
	int fd, n, rc;

	snprintf(procs, sizeof(procs), "%s/cgroup.procs", d);
	n = snprintf(buf, sizeof(buf), "%d\n", (int)pid);
	if ((fd = open(procs, O_WRONLY | O_CLOEXEC)) == -1)
		return -1;
	rc = write(fd, buf, (size_t)n) == n ? 0 : -1;
	close(fd);
	return rc;
}

static void
stop_child(void)
{
	if (child > 0) {
		kill(child, SIGKILL);
		(void)waitpid(child, NULL, 0);
		child = -1;
	}
}

static int
setup(void **state)
{
	/* A fake TUN: the programs are told of it, nothing is sent to it. */
	const struct tun tun = { .fd = -1, .ifindex = 1, .mtu = 1500 };
	char root[400], err[256];

	(void)state;
	log_init("test_rd_capture", 1, LOG_LEVEL_WARN);
	if (!bpf_possible() || rd_cgroup2_root(root, sizeof(root)) == -1)
		return 0;	/* the tests that need it skip */
	snprintf(dir, sizeof(dir), "%s/localcap-unit-capture-%d", root,
	    (int)getpid());
	if (mkdir(dir, 0755) == -1)
		return -1;
	if (capture_init(&cap, dir, &tun, false, err, sizeof(err)) == -1) {
		rmdir(dir);
		dir[0] = '\0';
		fprintf(stderr, "capture_init: %s\n", err);
		return -1;
	}
	have_cap = 1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	stop_child();		/* first: its run cgroup is then empty */
	if (have_cap)
		capture_close(&cap);	/* detaches, rmdirs the run cgroups */
	have_cap = 0;
	if (dir[0] && rmdir(dir) == -1)
		fprintf(stderr, "test_rd_capture: rmdir %s: %s\n", dir,
		    strerror(errno));
	dir[0] = '\0';
	return 0;
}

#define NEED_CAPTURE()	do { if (!have_cap) skip(); } while (0)

/* --- without the programs ------------------------------------------------------ */

static void
init_refuses_an_attach_point_outside_the_hierarchy(void **state)
{
	const struct tun tun = { .fd = -1, .ifindex = 1 };
	struct capture c;
	char root[400], err[256];

	(void)state;
	if (rd_cgroup2_root(root, sizeof(root)) == -1)
		skip();
	assert_int_equal(capture_init(&c, "/tmp", &tun, false, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "not a directory of the cgroup v2"));
	assert_int_equal(capture_init(&c, "/nonexistent/cg", &tun, false, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/cg"));
	assert_null(c.bpf);
	assert_null(c.cgroups);
}

static void
no_programs_no_owner_and_not_active(void **state)
{
	struct capture c;
	struct owner o;
	const uint8_t a[16] = { 10, 0, 0, 1 };

	(void)state;
	memset(&c, 0, sizeof(c));
	c.enabled = true;
	assert_int_equal(capture_owner(&c, 4, 6, a, 1000, a, 80, &o), -1);
	assert_false(capture_active(&c));
	capture_chain(&c, true);	/* no programs: only remembered */
	assert_true(c.chain_up);
}

static void
written_spec_leaves_out_run_items(void **state)
{
	struct capture c;
	char buf[RD_SPEC_MAX_TEXT];
	uint32_t runs = 99;

	(void)state;
	memset(&c, 0, sizeof(c));
	snprintf(c.spec, sizeof(c.spec), "curl,cgroup:/a/localcap-run.7, wget,"
	    "cgroup:/a/localcap-run.8");
	snprintf(c.runs[0].item, sizeof(c.runs[0].item),
	    "cgroup:/a/localcap-run.7");
	snprintf(c.runs[1].item, sizeof(c.runs[1].item),
	    "cgroup:/a/localcap-run.8");
	snprintf(c.runs[2].item, sizeof(c.runs[2].item),
	    "cgroup:/a/localcap-run.9");	/* not in the spec (detached) */
	c.nruns = 3;
	capture_written_spec(&c, buf, sizeof(buf), &runs);
	assert_string_equal(buf, "curl,wget");
	assert_int_equal(runs, 2);
	c.nruns = 0;
	capture_written_spec(&c, buf, sizeof(buf), &runs);
	assert_int_equal(runs, 0);
	assert_non_null(strstr(buf, "localcap-run.8"));
}

/* --- with the programs ---------------------------------------------------------- */

static void
attach_appends_items_in_order(void **state)
{
	char err[256];
	uint32_t off = 0;

	(void)state;
	NEED_CAPTURE();
	assert_int_equal(capture_attach(&cap, "curl", err, sizeof(err), &off), 0);
	assert_string_equal(cap.spec, "curl");
	assert_int_equal(capture_attach(&cap, "wget,!1234", err, sizeof(err),
	    &off), 0);
	assert_string_equal(cap.spec, "curl,wget,!1234");
	assert_non_null(cap.published);
	assert_int_equal(cap.published->nrules, 3);
}

static void
attach_refusal_names_the_callers_offset_and_keeps_the_spec(void **state)
{
	char err[256];
	uint32_t off = 0;

	(void)state;
	NEED_CAPTURE();
	assert_int_equal(capture_attach(&cap, "curl", err, sizeof(err), &off), 0);
	/* The bad item is at offset 5 of what the caller wrote. */
	assert_int_equal(capture_attach(&cap, "wget,uid:notanumber", err,
	    sizeof(err), &off), -1);
	assert_int_equal(off, 5);
	assert_true(err[0] != '\0');
	assert_string_equal(cap.spec, "curl");
	assert_int_equal(capture_attach(&cap, "", err, sizeof(err), &off), -1);
	assert_non_null(strstr(err, "empty"));
	assert_int_equal(capture_attach(&cap, NULL, err, sizeof(err), &off), -1);
	assert_string_equal(cap.spec, "curl");
}

static void
attach_refuses_a_spec_that_would_grow_too_long(void **state)
{
	static char half[RD_SPEC_MAX_TEXT], before[RD_SPEC_MAX_TEXT];
	char err[256];
	size_t n = 0;
	int i;

	(void)state;
	NEED_CAPTURE();
	/* 30 long process names (matched on 15 bytes): over half the limit. */
	for (i = 0; i < 30; i++)
		n += (size_t)snprintf(half + n, sizeof(half) - n, "%sp%0149d",
		    i ? "," : "", i);
	assert_true(2 * n >= RD_SPEC_MAX_TEXT);
	assert_int_equal(capture_attach(&cap, half, err, sizeof(err), NULL), 0);
	snprintf(before, sizeof(before), "%s", cap.spec);
	assert_int_equal(capture_attach(&cap, half, err, sizeof(err), NULL), -1);
	assert_non_null(strstr(err, "exceed"));
	assert_string_equal(cap.spec, before);
}

static void
detach_removes_exactly_those_items(void **state)
{
	char err[256];

	(void)state;
	NEED_CAPTURE();
	assert_int_equal(capture_attach(&cap, "curl, wget, curl, !1", err,
	    sizeof(err), NULL), 0);
	/* The first equal item goes; spaces around items do not matter. */
	assert_int_equal(capture_detach(&cap, " curl ", false, err, sizeof(err)),
	    0);
	assert_string_equal(cap.spec, "wget,curl,!1");
	/* All of them or none. */
	assert_int_equal(capture_detach(&cap, "wget,nope", false, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "'nope' is not attached"));
	assert_string_equal(cap.spec, "wget,curl,!1");
	assert_int_equal(capture_detach(&cap, "", false, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "nothing to detach"));
	assert_int_equal(capture_detach(&cap, NULL, true, err, sizeof(err)), 0);
	assert_string_equal(cap.spec, "");
}

static void
fail_open_pauses_until_the_chain_is_up(void **state)
{
	(void)state;
	NEED_CAPTURE();
	/* Attached, but nothing downstream yet: paused (fail-open). */
	assert_false(capture_active(&cap));
	capture_chain(&cap, true);
	assert_true(capture_active(&cap));
	capture_chain(&cap, false);
	assert_false(capture_active(&cap));
}

static void
owner_of_an_unknown_flow_is_not_found(void **state)
{
	const uint8_t a[16] = { 192, 0, 2, 1 }, b[16] = { 192, 0, 2, 2 };
	struct owner o;

	(void)state;
	NEED_CAPTURE();
	assert_int_equal(capture_owner(&cap, 4, 6, a, 40000, b, 443, &o), -1);
}

static void
run_makes_a_cgroup_inside_the_callers_and_reaps_it(void **state)
{
	char cgroup[512], err[256], path[800], buf[RD_SPEC_MAX_TEXT];
	uint32_t runs;
	struct stat st;

	(void)state;
	NEED_CAPTURE();
	if ((child = fork()) == 0) {
		pause();
		_exit(0);
	}
	assert_true(child > 0);
	/* Outside the attach point (where this test runs): refused. */
	assert_int_equal(capture_run(&cap, child, cgroup, sizeof(cgroup), err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "outside the attach point"));
	assert_int_equal(cap.nruns, 0);
	/* No such process. */
	assert_int_equal(capture_run(&cap, 0x7ffffff0, cgroup, sizeof(cgroup), err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "no process"));

	assert_int_equal(move_to(dir, child), 0);
	assert_int_equal(capture_attach(&cap, "curl", err, sizeof(err), NULL), 0);
	assert_int_equal(capture_run(&cap, child, cgroup, sizeof(cgroup), err,
	    sizeof(err)), 0);
	assert_int_equal(cap.nruns, 1);
	snprintf(path, sizeof(path), "%s/localcap-run.%d", dir, (int)child);
	assert_int_equal(stat(path, &st), 0);
	assert_non_null(strstr(path, cgroup));	/* cgroup is relative */
	assert_non_null(strstr(cap.spec, "cgroup:"));
	capture_written_spec(&cap, buf, sizeof(buf), &runs);
	assert_string_equal(buf, "curl");
	assert_int_equal(runs, 1);

	/* Still running: reaping keeps it. */
	capture_reap(&cap);
	assert_int_equal(cap.nruns, 1);
	stop_child();
	/* The kernel reports the cgroup empty shortly after the exit. */
	{
		int tries;

		for (tries = 0; tries < 200 && cap.nruns > 0; tries++) {
			usleep(10000);
			capture_reap(&cap);
		}
	}
	assert_int_equal(cap.nruns, 0);
	assert_int_equal(stat(path, &st), -1);
	assert_string_equal(cap.spec, "curl");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(init_refuses_an_attach_point_outside_the_hierarchy),
		cmocka_unit_test(no_programs_no_owner_and_not_active),
		cmocka_unit_test(written_spec_leaves_out_run_items),
		cmocka_unit_test_setup_teardown(attach_appends_items_in_order,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    attach_refusal_names_the_callers_offset_and_keeps_the_spec,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    attach_refuses_a_spec_that_would_grow_too_long, setup, teardown),
		cmocka_unit_test_setup_teardown(detach_removes_exactly_those_items,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(fail_open_pauses_until_the_chain_is_up,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(owner_of_an_unknown_flow_is_not_found,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    run_makes_a_cgroup_inside_the_callers_and_reaps_it, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
