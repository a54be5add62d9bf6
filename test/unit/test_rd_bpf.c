/*
 * Unit tests for redirectord/bpf.c, the loader of the capture programs.
 *
 * These load the real programs (so the verifier checks them on every run)
 * and read the maps back through rd_bpf_live(): the double-buffered spec
 * publish, refusals that leave the live state alone, bounded exclusion
 * maps, and attach/detach as process-owned links on a child cgroup this
 * test creates and removes (never the root).  No traffic: that is
 * test/integration/ebpf_capture.sh.  Skipped without root or kernel BTF.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/capability.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <bpf/bpf.h>

#include "log.h"
#include "redirectord/bpf.h"
#include "redirectord/spec.h"

static struct rd_bpf *b;

static int
setup(void **state)
{
	(void)state;
	log_init("test_rd_bpf", 1, LOG_LEVEL_WARN);
	if (geteuid() != 0 || access("/sys/kernel/btf/vmlinux", R_OK) != 0)
		return 0;	/* every test skips */
	if (rd_bpf_open(&b) < 0)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	rd_bpf_destroy(b);
	b = NULL;
	return 0;
}

#define NEED_BPF() do { if (b == NULL) skip(); } while (0)

static void
parse(const char *text, struct rd_spec *spec)
{
	struct rd_spec_error err;

	if (rd_spec_parse(text, NULL, spec, &err) < 0)
		fail_msg("%s", err.msg);
}

static void
open_publishes_enabled_config_without_tun(void **state)
{
	struct lc_config cfg;
	struct lc_rule rules[4];
	size_t n;

	(void)state;
	NEED_BPF();
	assert_int_equal(rd_bpf_live(b, &cfg, rules, 4, &n), 0);
	assert_int_equal(cfg.enabled, 1);
	assert_int_equal(cfg.tun_ifindex, 0);	/* nothing captured yet */
	assert_int_equal(n, 0);
	assert_int_equal(cfg.generation, rd_bpf_generation(b));
	assert_false(rd_bpf_attached(b));
}

static void
set_spec_flips_half_and_bumps_generation(void **state)
{
	struct lc_config cfg;
	struct lc_rule rules[LC_MAX_RULES];
	struct rd_spec spec;
	uint64_t gen;
	__u32 half;
	size_t n;

	(void)state;
	NEED_BPF();
	gen = rd_bpf_generation(b);
	assert_int_equal(rd_bpf_live(b, &cfg, rules, LC_MAX_RULES, &n), 0);
	half = cfg.rules_half;

	parse("!curl,1234,uid:5", &spec);
	assert_int_equal(rd_bpf_set_spec(b, &spec), 0);
	assert_int_equal(rd_bpf_live(b, &cfg, rules, LC_MAX_RULES, &n), 0);
	assert_int_equal(cfg.rules_half, !half);
	assert_int_equal(cfg.generation, gen + 1);
	assert_int_equal(cfg.default_capture, 1);
	assert_int_equal(cfg.flags & ~LC_CFG_EXCL_CGROUP, LC_CFG_NEED_COMM);
	assert_int_equal(n, 3);
	assert_memory_equal(rules, spec.rules, 3 * sizeof(rules[0]));

	parse("curl", &spec);
	assert_int_equal(rd_bpf_set_spec(b, &spec), 0);
	assert_int_equal(rd_bpf_live(b, &cfg, rules, LC_MAX_RULES, &n), 0);
	assert_int_equal(cfg.rules_half, half);
	assert_int_equal(cfg.generation, gen + 2);
	assert_int_equal(cfg.default_capture, 0);
	assert_int_equal(n, 1);
	assert_string_equal(rules[0].comm, "curl");
	assert_int_equal(rules[0].exclude, 0);
}

static void
oversized_spec_refused_live_state_kept(void **state)
{
	struct lc_config before, after;
	struct lc_rule rules[LC_MAX_RULES];
	struct rd_spec spec;
	size_t n;

	(void)state;
	NEED_BPF();
	parse("curl", &spec);
	assert_int_equal(rd_bpf_set_spec(b, &spec), 0);
	assert_int_equal(rd_bpf_live(b, &before, rules, LC_MAX_RULES, &n), 0);
	spec.nrules = LC_MAX_RULES + 1;	/* only a bug could build this */
	assert_int_equal(rd_bpf_set_spec(b, &spec), -1);
	assert_int_equal(errno, E2BIG);
	assert_int_equal(rd_bpf_live(b, &after, rules, LC_MAX_RULES, &n), 0);
	assert_memory_equal(&before, &after, sizeof(before));
}

static void
tun_and_pause_are_published(void **state)
{
	struct lc_config cfg;
	struct lc_rule rules[1];
	size_t n;

	(void)state;
	NEED_BPF();
	assert_int_equal(rd_bpf_set_tun(b, 42, 0x1122334455667788ULL), 0);
	assert_int_equal(rd_bpf_set_enabled(b, false), 0);
	assert_int_equal(rd_bpf_live(b, &cfg, rules, 1, &n), 0);
	assert_int_equal(cfg.tun_ifindex, 42);
	assert_true(cfg.tun_netns_cookie == 0x1122334455667788ULL);
	assert_int_equal(cfg.enabled, 0);
	assert_int_equal(rd_bpf_set_enabled(b, true), 0);
	assert_int_equal(rd_bpf_set_tun(b, 0, 0), 0);
}

static void
exclusion_maps_are_bounded(void **state)
{
	uint32_t i;

	(void)state;
	NEED_BPF();
	for (i = 0; i < LC_MAX_EXCLUDED; i++)
		assert_int_equal(rd_bpf_exclude_uid(b, 60000 + i), 0);
	/* the same one again is an update, not a new entry */
	assert_int_equal(rd_bpf_exclude_uid(b, 60000), 0);
	assert_int_equal(rd_bpf_exclude_uid(b, 70000), -1);
	for (i = 0; i < LC_MAX_EXCLUDED; i++)
		assert_int_equal(rd_bpf_exclude_cgroup(b, 1000 + i), 0);
	assert_int_equal(rd_bpf_exclude_cgroup(b, 99999), -1);
	/* the program now reads cgroup ancestry, and a new spec keeps that */
	{
		struct lc_config cfg;
		struct lc_rule r[1];
		struct rd_spec spec;
		size_t n;

		assert_int_equal(rd_bpf_live(b, &cfg, r, 1, &n), 0);
		assert_true(cfg.flags & LC_CFG_EXCL_CGROUP);
		parse("1234", &spec);
		assert_int_equal(rd_bpf_set_spec(b, &spec), 0);
		assert_int_equal(rd_bpf_live(b, &cfg, r, 1, &n), 0);
		assert_int_equal(cfg.flags, LC_CFG_EXCL_CGROUP);
	}
}

static void
local_addrs_bounded_and_replaceable(void **state)
{
	static struct lc_addr_key many[LC_MAX_LOCAL_ADDRS + 1];
	struct lc_addr_key two[2];
	int i;

	(void)state;
	NEED_BPF();
	memset(two, 0, sizeof(two));
	two[0].family = 4;
	two[0].addr[0] = 10;
	two[1].family = 6;
	two[1].addr[0] = 0xfd;
	assert_int_equal(rd_bpf_set_local_addrs(b, two, 2), 0);
	assert_int_equal(rd_bpf_set_local_addrs(b, two + 1, 1), 0);
	assert_int_equal(rd_bpf_set_local_addrs(b, many, LC_MAX_LOCAL_ADDRS + 1),
	    -1);
	assert_int_equal(errno, E2BIG);
	/* a full map replaced by an entirely different full set */
	for (i = 0; i < LC_MAX_LOCAL_ADDRS; i++) {
		many[i].family = 4;
		many[i].addr[0] = 10;
		many[i].addr[3] = (__u8)i;
	}
	assert_int_equal(rd_bpf_set_local_addrs(b, many, LC_MAX_LOCAL_ADDRS), 0);
	for (i = 0; i < LC_MAX_LOCAL_ADDRS; i++)
		many[i].addr[1] = 1;
	assert_int_equal(rd_bpf_set_local_addrs(b, many, LC_MAX_LOCAL_ADDRS), 0);
	assert_int_equal(rd_bpf_load_local_addrs(b), 0);
}

static void
unknown_owner_is_enoent(void **state)
{
	struct lc_flow_key k;
	struct lc_owner o;

	(void)state;
	NEED_BPF();
	memset(&k, 0, sizeof(k));
	k.family = 4;
	k.proto = 6;
	assert_int_equal(rd_bpf_owner_by_flow(b, &k, &o), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(rd_bpf_owner_by_cookie(b, 12345, &o), -1);
	assert_int_equal(errno, ENOENT);
}

static void
counters_read_and_named(void **state)
{
	uint64_t c[LC_CNT_MAX];
	int i;

	(void)state;
	NEED_BPF();
	assert_int_equal(rd_bpf_counters(b, c), 0);
	for (i = 0; i < LC_CNT_MAX; i++)
		assert_string_not_equal(rd_bpf_counter_name(i), "unknown");
	assert_string_equal(rd_bpf_counter_name(LC_CNT_MAX), "unknown");
}

static int
link_exists(uint32_t id)
{
	int fd = bpf_link_get_fd_by_id(id);

	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

static void
attach_detach_on_a_child_cgroup(void **state)
{
	char root[4096], dir[4200];
	uint32_t ids[16];
	size_t n, i;
	int tries;

	(void)state;
	NEED_BPF();
	if (rd_cgroup2_root(root, sizeof(root)) < 0)
		skip();
	snprintf(dir, sizeof(dir), "%s/localcap-unit-%d", root, (int)getpid());
	assert_int_equal(mkdir(dir, 0755), 0);

	if (rd_bpf_attach_cgroup(b, dir) < 0) {
		rmdir(dir);
		fail_msg("attach: %s", strerror(errno));
	}
	assert_true(rd_bpf_attached(b));
	n = rd_bpf_link_ids(b, ids, 16);
	assert_int_equal(n, 9);
	for (i = 0; i < n; i++)
		assert_true(link_exists(ids[i]));
	/* twice is refused, the first attachment stays */
	assert_int_equal(rd_bpf_attach_cgroup(b, dir), -1);
	assert_int_equal(errno, EALREADY);
	assert_int_equal(rd_bpf_link_ids(b, ids, 16), 9);

	rd_bpf_detach(b);
	assert_false(rd_bpf_attached(b));
	assert_int_equal(rd_bpf_link_ids(b, ids + 9, 1), 0);
	for (i = 0; i < n; i++) {
		for (tries = 0; tries < 100 && link_exists(ids[i]); tries++) {
			struct timespec ts = { 0, 10 * 1000 * 1000 };

			nanosleep(&ts, NULL);
		}
		assert_false(link_exists(ids[i]));
	}
	assert_int_equal(rmdir(dir), 0);
}

/* What rd_bpf_open falls back to where the kernel refuses optional hooks. */
static void
optional_groups_can_be_skipped(void **state)
{
	char root[4096], dir[4200];
	struct rd_bpf *lean = NULL;
	uint32_t ids[16];

	(void)state;
	NEED_BPF();
	assert_int_equal(rd_bpf_skipped(b), 0);
	if (rd_cgroup2_root(root, sizeof(root)) < 0)
		skip();
	assert_int_equal(rd_bpf_open_skipping(&lean,
	    RD_BPF_OPT_SENDMSG | RD_BPF_OPT_SERVERS), 0);
	assert_int_equal(rd_bpf_skipped(lean),
	    RD_BPF_OPT_SENDMSG | RD_BPF_OPT_SERVERS);
	snprintf(dir, sizeof(dir), "%s/localcap-unit-lean-%d", root,
	    (int)getpid());
	assert_int_equal(mkdir(dir, 0755), 0);
	if (rd_bpf_attach_cgroup(lean, dir) < 0) {
		rd_bpf_destroy(lean);
		rmdir(dir);
		fail_msg("attach: %s", strerror(errno));
	}
	/* sock_create, connect4/6, egress: 9 - 2 sendmsg - 3 server hooks */
	assert_int_equal(rd_bpf_link_ids(lean, ids, 16), 4);
	rd_bpf_destroy(lean);
	assert_int_equal(rmdir(dir), 0);
}

/* A /proc/self/status field in KiB, or -1. */
static long
status_kib(const char *field)
{
	char line[256];
	size_t n = strlen(field);
	long v = -1;
	FILE *f;

	if ((f = fopen("/proc/self/status", "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, field, n) == 0 && line[n] == ':')
			v = strtol(line + n + 1, NULL, 10);
	fclose(f);
	return v;
}

static int
count_fds(void)
{
	struct dirent *e;
	DIR *d;
	int n = 0;

	if ((d = opendir("/proc/self/fd")) == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/*
 * The load runs in a child (bpf.c): libbpf's parse of the kernel BTF
 * (~12 MiB) must not raise our peak, the child must be reaped, and every
 * descriptor it sent must be ours to close.
 */
static void
load_peak_stays_in_the_child(void **state)
{
	struct rd_bpf *other = NULL;
	long rss, hwm;
	int fds, fd, status;

	(void)state;
	NEED_BPF();
	fds = count_fds();
	/* "5" resets VmHWM to the current RSS (proc(5), clear_refs). */
	if ((fd = open("/proc/self/clear_refs", O_WRONLY)) < 0 ||
	    write(fd, "5", 1) != 1) {
		if (fd >= 0)
			close(fd);
		skip();
	}
	close(fd);
	rss = status_kib("VmRSS");
	assert_int_equal(rd_bpf_open(&other), 0);
	hwm = status_kib("VmHWM");
	assert_true(rss > 0 && hwm > 0);
	if (hwm - rss >= 4096)
		fail_msg("VmHWM rose by %ld KiB over the load", hwm - rss);
	assert_int_equal(waitpid(-1, &status, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	assert_int_equal(rd_bpf_skipped(other), 0);
	assert_true(count_fds() > fds);
	rd_bpf_destroy(other);
	assert_int_equal(count_fds(), fds);
}

/*
 * The loader's failure path: without capabilities the child's load fails,
 * its errno comes back, and nothing is left behind (no child, no fd).  Run
 * in a forked process so that this test's own capabilities stay.
 */
static void
load_failure_comes_back_cleanly(void **state)
{
	pid_t pid;
	int status;

	(void)state;
	NEED_BPF();
	if ((pid = fork()) == 0) {
		struct rd_bpf *none = NULL;
		cap_t caps = cap_init();	/* all clear */
		int fds = count_fds(), rc, err, st;

		if (caps == NULL || cap_set_proc(caps) != 0)
			_exit(10);
		cap_free(caps);
		rc = rd_bpf_open(&none);
		err = errno;
		if (rc != -1 || none != NULL)
			_exit(11);
		if (err != EPERM && err != EACCES)
			_exit(12);
		if (waitpid(-1, &st, WNOHANG) != -1 || errno != ECHILD)
			_exit(13);
		if (count_fds() != fds)
			_exit(14);
		_exit(0);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void
attach_to_missing_cgroup_fails_cleanly(void **state)
{
	(void)state;
	NEED_BPF();
	assert_int_equal(rd_bpf_attach_cgroup(b, "/nonexistent/cgroup"), -1);
	assert_false(rd_bpf_attached(b));
	/* a directory that is not a cgroup: the kernel refuses */
	assert_int_equal(rd_bpf_attach_cgroup(b, "/tmp"), -1);
	assert_false(rd_bpf_attached(b));
}

static void
netns_cookie_is_stable(void **state)
{
	uint64_t a, c;

	(void)state;
	assert_int_equal(rd_netns_cookie(&a), 0);
	assert_int_equal(rd_netns_cookie(&c), 0);
	assert_true(a != 0);
	assert_true(a == c);
}

static void
preflight_passes_where_the_programs_load(void **state)
{
	char why[512] = "unset";

	(void)state;
	NEED_BPF();
	assert_int_equal(rd_bpf_preflight(why, sizeof(why)), 0);
	assert_string_equal(why, "");
}

static void
destroy_null_is_fine(void **state)
{
	(void)state;
	rd_bpf_destroy(NULL);
	rd_bpf_detach(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(open_publishes_enabled_config_without_tun),
		cmocka_unit_test(set_spec_flips_half_and_bumps_generation),
		cmocka_unit_test(oversized_spec_refused_live_state_kept),
		cmocka_unit_test(tun_and_pause_are_published),
		cmocka_unit_test(exclusion_maps_are_bounded),
		cmocka_unit_test(local_addrs_bounded_and_replaceable),
		cmocka_unit_test(unknown_owner_is_enoent),
		cmocka_unit_test(counters_read_and_named),
		cmocka_unit_test(attach_detach_on_a_child_cgroup),
		cmocka_unit_test(optional_groups_can_be_skipped),
		cmocka_unit_test(load_peak_stays_in_the_child),
		cmocka_unit_test(load_failure_comes_back_cleanly),
		cmocka_unit_test(attach_to_missing_cgroup_fails_cleanly),
		cmocka_unit_test(netns_cookie_is_stable),
		cmocka_unit_test(preflight_passes_where_the_programs_load),
		cmocka_unit_test(destroy_null_is_fine),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
