/*
 * Unit tests for redirectord/spec.c: intercept spec parsing and the
 * reference evaluator the BPF program mirrors.
 *
 * The semantics table encodes mitmproxy's (mitmproxy_rs intercept_conf.rs
 * and its Linux eBPF matcher: ordered actions, default from the first
 * action, exact comparison with the 15-byte comm); then every refusal, with
 * the item and offset it must point at.  Names are resolved through an
 * injected resolver, and unit:/cgroup: against a fake cgroup tree in a
 * temporary directory, so nothing here depends on the host.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <linux/magic.h>
#include <cmocka.h>

#include "redirectord/spec.h"
#include "spec_cases.h"

/* --- an injected resolver: users, and a fake cgroup tree ---------------------- */

static char fake_root[64];

static int
fake_user(const char *name, uint32_t *uid, void *arg)
{
	(void)arg;
	if (strcmp(name, "alice") == 0) {
		*uid = 1001;
		return 0;
	}
	errno = ENOENT;
	return -1;
}

/* cgroup id of the fake tree: the directory's inode number. */
static int
fake_cgroup_id(const char *path, uint64_t *id, void *arg)
{
	struct stat st;

	(void)arg;
	if (stat(path, &st) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	*id = (uint64_t)st.st_ino;
	return 0;
}

static uint64_t
ino_of(const char *rel)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s%s", fake_root, rel);
	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_ino;
}

static const char *const fake_dirs[] = {
	"/system.slice",
	"/system.slice/foo.service",
	"/system.slice/foo.service/child",
	"/user.slice",
	"/user.slice/user-1000.slice",
	"/user.slice/user-1000.slice/user@1000.service",
	"/a",
	"/a/dup.service",
	"/b",
	"/b/dup.service",
	"/x",
};

static int
make_tree(void **state)
{
	char path[512];
	size_t i;

	(void)state;
	snprintf(fake_root, sizeof(fake_root), "/tmp/test_rd_spec.XXXXXX");
	if (mkdtemp(fake_root) == NULL)
		return -1;
	for (i = 0; i < sizeof(fake_dirs) / sizeof(fake_dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", fake_root, fake_dirs[i]);
		if (mkdir(path, 0755) < 0)
			return -1;
	}
	return 0;
}

static int
remove_tree(void **state)
{
	char path[512];
	size_t i;

	(void)state;
	for (i = sizeof(fake_dirs) / sizeof(fake_dirs[0]); i-- > 0;) {
		snprintf(path, sizeof(path), "%s%s", fake_root, fake_dirs[i]);
		rmdir(path);
	}
	return rmdir(fake_root);
}

static struct rd_spec_resolver
resolver(void)
{
	struct rd_spec_resolver r = {
		.cgroup_root = fake_root,
		.user_uid = fake_user,
		.cgroup_id = fake_cgroup_id,
	};
	return r;
}

static struct rd_proc
proc(uint32_t tgid, const char *comm, uint32_t uid)
{
	struct rd_proc p;

	memset(&p, 0, sizeof(p));
	p.tgid = tgid;
	p.uid = uid;
	/* the kernel keeps the first 15 bytes */
	memcpy(p.comm, comm, strnlen(comm, LC_COMM_LEN - 1));
	return p;
}

static bool
captures(const char *text, const struct rd_proc *p)
{
	struct rd_spec_resolver r = resolver();
	struct rd_spec spec;
	struct rd_spec_error err;

	if (rd_spec_parse(text, &r, &spec, &err) < 0)
		fail_msg("'%s' refused: %s", text, err.msg);
	return rd_spec_captures(&spec, p);
}

/* --- mitmproxy's semantics -------------------------------------------------------- */

/* mitmproxy's cases: a = pid 1 "a", b = pid 2242 "mitmproxy" (spec_cases.h). */
static void
mitmproxy_semantics_table(void **state)
{
	struct rd_proc a = proc(1, "a", 0), b = proc(2242, "mitmproxy", 0);
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(mitmproxy_table) / sizeof(mitmproxy_table[0]); i++) {
		const char *s = mitmproxy_table[i].spec;

		if (captures(s, &a) != mitmproxy_table[i].a)
			fail_msg("spec '%s', process a: expected %d", s,
			    mitmproxy_table[i].a);
		if (captures(s, &b) != mitmproxy_table[i].b)
			fail_msg("spec '%s', process mitmproxy: expected %d", s,
			    mitmproxy_table[i].b);
	}
}

static void
default_capture_follows_first_action(void **state)
{
	struct rd_spec_resolver r = resolver();
	struct rd_spec spec;

	(void)state;
	assert_int_equal(rd_spec_parse("!a,b", &r, &spec, NULL), 0);
	assert_true(spec.default_capture);
	assert_int_equal(spec.nrules, 2);
	assert_int_equal(rd_spec_parse("b,!a", &r, &spec, NULL), 0);
	assert_false(spec.default_capture);
	assert_int_equal(rd_spec_parse("", &r, &spec, NULL), 0);
	assert_false(spec.default_capture);
	assert_int_equal(spec.nrules, 0);
}

/* rd_spec_decide: the last matching rule decided (localcapctl ps). */
static void
decide_names_the_deciding_rule(void **state)
{
	struct rd_spec_resolver r = resolver();
	struct rd_spec spec;
	struct rd_proc curl = proc(10, "curl", 0), wget = proc(11, "wget", 0);
	struct rd_proc other = proc(12, "nginx", 0);
	bool c;

	(void)state;
	assert_int_equal(rd_spec_parse("curl,wget,!11", &r, &spec, NULL), 0);
	assert_int_equal(rd_spec_decide(&spec, &curl, &c), 0);
	assert_true(c);
	assert_int_equal(rd_spec_decide(&spec, &wget, &c), 2);
	assert_false(c);
	assert_int_equal(rd_spec_decide(&spec, &other, &c), -1);
	assert_false(c);
	/* The default decides when nothing matches. */
	assert_int_equal(rd_spec_parse("!curl", &r, &spec, NULL), 0);
	assert_int_equal(rd_spec_decide(&spec, &other, &c), -1);
	assert_true(c);
	assert_int_equal(rd_spec_decide(&spec, &curl, &c), 0);
	assert_false(c);
	/* And it agrees with rd_spec_captures on the mitmproxy table. */
	for (size_t i = 0; i < sizeof(mitmproxy_table) /
	    sizeof(mitmproxy_table[0]); i++) {
		struct rd_proc a = proc(1, "a", 0);

		assert_int_equal(rd_spec_parse(mitmproxy_table[i].spec, &r, &spec,
		    NULL), 0);
		(void)rd_spec_decide(&spec, &a, &c);
		assert_int_equal(c, rd_spec_captures(&spec, &a));
	}
}

/* --- names and comm ------------------------------------------------------------------- */

static void
long_name_compared_on_15_bytes(void **state)
{
	struct rd_spec_resolver r = resolver();
	struct rd_spec spec;
	/* what the kernel shows for /usr/lib/systemd/systemd-resolved */
	struct rd_proc p = proc(10, "systemd-resolved", 0);

	(void)state;
	assert_string_equal(p.comm, "systemd-resolve");
	assert_int_equal(rd_spec_parse("systemd-resolved", &r, &spec, NULL), 0);
	assert_true(spec.name_truncated[0]);
	assert_true(rd_spec_captures(&spec, &p));
	/* the 15-byte form itself is exact, not truncated */
	assert_int_equal(rd_spec_parse("systemd-resolve", &r, &spec, NULL), 0);
	assert_false(spec.name_truncated[0]);
	assert_true(rd_spec_captures(&spec, &p));
	/* a prefix is not enough */
	assert_int_equal(rd_spec_parse("systemd", &r, &spec, NULL), 0);
	assert_false(rd_spec_captures(&spec, &p));
}

static void
name_keeps_inner_spaces_and_colons(void **state)
{
	struct rd_proc web = proc(5, "Web Content", 0);
	struct rd_proc kw = proc(6, "kworker/0:1", 0);

	(void)state;
	assert_true(captures(" Web Content ", &web));
	assert_false(captures("Web", &web));
	assert_true(captures("kworker/0:1", &kw));
	/* only uid:, user:, cgroup:, unit:, name: are keywords */
	assert_true(captures("!kworker/0:1", &web));
}

/* name: makes anything a process name: one of digits, one like a keyword. */
static void
name_prefix_names_digit_and_keyword_processes(void **state)
{
	struct rd_proc digits = proc(77, "1234", 0), pid1234 = proc(1234, "x", 0);
	struct rd_proc kw = proc(8, "uid:5", 0);
	struct rd_spec_resolver r = resolver();
	struct rd_spec spec;
	struct rd_spec_error err;

	(void)state;
	assert_true(captures("name:1234", &digits));
	assert_false(captures("name:1234", &pid1234));
	assert_true(captures("1234", &pid1234));	/* plain digits: a pid */
	assert_false(captures("1234", &digits));
	assert_true(captures("!name:1234", &pid1234));
	assert_false(captures("!name:1234", &digits));
	assert_true(captures("name:uid:5", &kw));
	assert_false(captures("name: 1234", &digits));	/* the name " 1234" */
	assert_int_equal(rd_spec_parse("curl,name:", &r, &spec, &err), -1);
	assert_non_null(strstr(err.msg, "name: expects a process name"));
	assert_int_equal(err.offset, 5);
}

/* --- extensions ------------------------------------------------------------------------- */

static void
uid_and_user_match_uid(void **state)
{
	struct rd_proc root = proc(7, "curl", 0), alice = proc(8, "curl", 1001);

	(void)state;
	assert_true(captures("uid:1001", &alice));
	assert_false(captures("uid:1001", &root));
	assert_true(captures("user:alice", &alice));
	assert_false(captures("user:alice", &root));
	assert_true(captures("!uid:0", &alice));
	assert_false(captures("!uid:0", &root));
	assert_true(captures("uid:0,!curl", &root) == false);
	assert_true(captures("curl,!uid:1001", &root));
	assert_false(captures("curl,!uid:1001", &alice));
}

static void
cgroup_matches_itself_and_descendants(void **state)
{
	uint64_t foo = ino_of("/system.slice/foo.service");
	uint64_t child = ino_of("/system.slice/foo.service/child");
	uint64_t other = ino_of("/x");
	uint64_t in_foo[] = { 1, ino_of("/system.slice"), foo };
	uint64_t in_child[] = { 1, ino_of("/system.slice"), foo, child };
	uint64_t in_x[] = { 1, other };
	struct rd_proc p = proc(9, "nginx", 33);

	(void)state;
	p.cgroups = in_foo;
	p.ncgroups = 3;
	assert_true(captures("cgroup:/system.slice/foo.service", &p));
	assert_true(captures("cgroup:/system.slice/foo.service/", &p));
	assert_true(captures("cgroup://system.slice//foo.service", &p));
	assert_true(captures("cgroup:/system.slice", &p));
	assert_false(captures("cgroup:/system.slice/foo.service/child", &p));
	p.cgroups = in_child;
	p.ncgroups = 4;
	assert_true(captures("cgroup:/system.slice/foo.service", &p));
	assert_true(captures("unit:foo.service", &p));
	p.cgroups = in_x;
	p.ncgroups = 2;
	assert_false(captures("cgroup:/system.slice/foo.service", &p));
	assert_true(captures("!cgroup:/system.slice/foo.service", &p));
}

static void
unit_resolves_under_system_slice_then_searches(void **state)
{
	struct rd_spec_resolver r = resolver();
	struct rd_spec spec;
	struct rd_spec_error err;

	(void)state;
	assert_int_equal(rd_spec_parse("unit:foo.service", &r, &spec, &err), 0);
	assert_int_equal(spec.rules[0].kind, LC_RULE_CGROUP);
	assert_int_equal(spec.rules[0].cgroup_id,
	    ino_of("/system.slice/foo.service"));
	/* not under system.slice: found by searching the tree */
	assert_int_equal(rd_spec_parse("unit:user@1000.service", &r, &spec,
	    &err), 0);
	assert_int_equal(spec.rules[0].cgroup_id,
	    ino_of("/user.slice/user-1000.slice/user@1000.service"));
	assert_int_equal(rd_spec_parse("unit:user-1000.slice", &r, &spec,
	    &err), 0);
	assert_int_equal(spec.rules[0].cgroup_id,
	    ino_of("/user.slice/user-1000.slice"));
}

/* --- refusals: each names the item and its offset ------------------------------------ */

static const struct {
	const char	*spec;
	size_t		 item;
	size_t		 offset;
	const char	*says;
} refusals[] = {
	{ ",,", 1, 0, "empty item" },
	{ ",a", 1, 0, "empty item" },
	{ "a,,b", 2, 2, "empty item" },
	{ "a,", 2, 2, "empty item" },
	{ "a, ,b", 2, 2, "empty item" },
	{ "!", 1, 0, "nothing after '!'" },
	{ "a,  ! ", 2, 4, "nothing after '!'" },
	{ "0", 1, 0, "pid 0 is not a process" },
	{ "!000", 1, 0, "pid 0 is not a process" },
	{ "4294967296", 1, 0, "pid out of range" },
	{ "a, 99999999999999999999", 2, 3, "pid out of range" },
	{ "uid:", 1, 0, "uid: expects a decimal number" },
	{ "uid:abc", 1, 0, "uid: expects a decimal number" },
	{ "uid:-1", 1, 0, "uid: expects a decimal number" },
	{ "uid: 5", 1, 0, "uid: expects a decimal number" },
	{ "uid:4294967295", 1, 0, "uid out of range" },
	{ "user:", 1, 0, "user: expects a user name" },
	{ "curl,user:mallory", 2, 5, "no such user 'mallory'" },
	{ "cgroup:", 1, 0, "cgroup: expects a path" },
	{ "cgroup:system.slice", 1, 0, "absolute path" },
	{ "cgroup:/a/../b", 1, 0, "without '.' or '..'" },
	{ "cgroup:/a/./b", 1, 0, "without '.' or '..'" },
	{ "cgroup:/..", 1, 0, "without '.' or '..'" },
	{ "cgroup:/nope", 1, 0, "cannot use cgroup" },
	{ "unit:", 1, 0, "unit: expects a unit name" },
	{ "unit:foo", 1, 0, "unit: expects NAME.service" },
	{ "unit:.service", 1, 0, "unit: expects NAME.service" },
	{ "unit:a/b.service", 1, 0, "unit: expects NAME.service" },
	{ "unit:none.service", 1, 0, "has no cgroup" },
	{ "unit:dup.service", 1, 0, "ambiguous" },
};

static void
refusals_name_item_and_offset(void **state)
{
	struct rd_spec_resolver r = resolver();
	struct rd_spec spec;
	struct rd_spec_error err;
	char where[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		const char *s = refusals[i].spec;

		if (rd_spec_parse(s, &r, &spec, &err) == 0)
			fail_msg("'%s' accepted", s);
		if (err.item != refusals[i].item ||
		    err.offset != refusals[i].offset)
			fail_msg("'%s': item %zu offset %zu, expected %zu %zu "
			    "(%s)", s, err.item, err.offset, refusals[i].item,
			    refusals[i].offset, err.msg);
		if (strstr(err.msg, refusals[i].says) == NULL)
			fail_msg("'%s': message '%s' lacks '%s'", s, err.msg,
			    refusals[i].says);
		snprintf(where, sizeof(where), "item %zu at offset %zu",
		    refusals[i].item, refusals[i].offset);
		if (strstr(err.msg, where) == NULL)
			fail_msg("'%s': message '%s' lacks '%s'", s, err.msg,
			    where);
		/* a refused spec yields no rules at all */
		assert_int_equal(spec.nrules, 0);
	}
}

static void
refusal_message_cannot_forge_log_lines(void **state)
{
	struct rd_spec_resolver r = resolver();
	struct rd_spec spec;
	struct rd_spec_error err;
	const char *p;

	(void)state;
	assert_int_equal(rd_spec_parse("a,uid:x\nfatal: forged\x1b[2J", &r,
	    &spec, &err), -1);
	assert_non_null(strstr(err.msg, "'uid:x\\x0afatal: forged\\x1b[2J'"));
	assert_int_equal(rd_spec_parse("user:bad\nname", &r, &spec, &err), -1);
	assert_non_null(strstr(err.msg, "no such user 'bad?name'"));
	for (p = err.msg; *p != '\0'; p++)
		assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
}

static void
too_many_rules_refused_whole(void **state)
{
	struct rd_spec_resolver r = resolver();
	char text[LC_MAX_RULES * 8 + 16];
	struct rd_spec spec;
	struct rd_spec_error err;
	size_t used = 0;
	int i;

	(void)state;
	for (i = 1; i <= LC_MAX_RULES; i++)
		used += (size_t)snprintf(text + used, sizeof(text) - used,
		    "%s%d", i > 1 ? "," : "", 1000 + i);
	assert_int_equal(rd_spec_parse(text, &r, &spec, &err), 0);
	assert_int_equal(spec.nrules, LC_MAX_RULES);
	assert_int_equal(spec.rules[LC_MAX_RULES - 1].id, 1000 + LC_MAX_RULES);

	snprintf(text + used, sizeof(text) - used, ",%d", 1000 + i);
	assert_int_equal(rd_spec_parse(text, &r, &spec, &err), -1);
	assert_int_equal(spec.nrules, 0);
	assert_int_equal(err.item, 0);
	assert_int_equal(err.offset, used + 1);	/* where rule 65 starts */
	assert_non_null(strstr(err.msg, "65 rules"));
	assert_non_null(strstr(err.msg, "at most 64"));
}

static void
overlong_cgroup_path_refused(void **state)
{
	struct rd_spec_resolver r = resolver();
	struct rd_spec spec;
	struct rd_spec_error err;
	char text[8000];
	size_t i, n = 0;

	(void)state;
	n += (size_t)snprintf(text, sizeof(text), "cgroup:");
	for (i = 0; i < 1100; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "/abc");
	assert_int_equal(rd_spec_parse(text, &r, &spec, &err), -1);
	assert_int_equal(err.item, 1);
	assert_non_null(strstr(err.msg, "path too long"));

	/* short path, long root: the joined path would not fit either */
	memset(text, 'x', 4080);
	text[0] = '/';
	text[4080] = '\0';
	r.cgroup_root = text;
	assert_int_equal(rd_spec_parse("cgroup:/system.slice/a.service", &r,
	    &spec, &err), -1);
	assert_non_null(strstr(err.msg, "path too long"));
	assert_int_equal(rd_spec_parse("unit:a.service", &r, &spec, &err), -1);
	assert_non_null(strstr(err.msg, "path too long"));
}

static void
oversized_text_refused(void **state)
{
	struct rd_spec spec;
	struct rd_spec_error err;
	char *big = malloc(RD_SPEC_MAX_TEXT + 2);

	(void)state;
	assert_non_null(big);
	memset(big, 'a', RD_SPEC_MAX_TEXT + 1);
	big[RD_SPEC_MAX_TEXT + 1] = '\0';
	assert_int_equal(rd_spec_parse(big, NULL, &spec, &err), -1);
	assert_non_null(strstr(err.msg, "longer than 8192 bytes"));
	free(big);
}

static void
null_text_and_null_error_are_fine(void **state)
{
	struct rd_spec spec;

	(void)state;
	assert_int_equal(rd_spec_parse(NULL, NULL, &spec, NULL), 0);
	assert_int_equal(spec.nrules, 0);
	assert_int_equal(rd_spec_parse(",", NULL, &spec, NULL), -1);
}

/* Random bytes and random mixes of the grammar's pieces: never a crash,
 * always either rules within bounds or a message. */
static void
random_input_never_crashes(void **state)
{
	static const char *const pieces[] = {
		",", "!", " ", "\t", "uid:", "user:", "cgroup:", "unit:", "/",
		"..", "0", "9", "4294967296", "a", "alice", ".service", "x",
		"\xff", "system.slice",
	};
	struct rd_spec_resolver r = resolver();
	struct rd_spec spec;
	struct rd_spec_error err;
	char text[256];
	unsigned seed = 12345;
	int iter;

	(void)state;
	for (iter = 0; iter < 20000; iter++) {
		size_t used = 0;
		int n = (int)(rand_r(&seed) % 12);

		while (n-- > 0 && used < sizeof(text) - 32) {
			if (rand_r(&seed) % 4 == 0) {
				char ch = (char)(rand_r(&seed) % 255 + 1);
				text[used++] = ch;
			} else {
				const char *p = pieces[rand_r(&seed) %
				    (sizeof(pieces) / sizeof(pieces[0]))];
				size_t pl = strlen(p);

				memcpy(text + used, p, pl);
				used += pl;
			}
		}
		text[used] = '\0';
		if (rd_spec_parse(text, &r, &spec, &err) == 0)
			assert_true(spec.nrules <= LC_MAX_RULES);
		else
			assert_true(err.msg[0] != '\0');
	}
}

/* --- rendering and the real system ----------------------------------------------------- */

static void
format_renders_canonical_spec(void **state)
{
	struct rd_spec_resolver r = resolver();
	struct rd_spec spec;
	char buf[256];

	(void)state;
	assert_int_equal(rd_spec_parse(" !curl , 1234,uid:5, user:alice ", &r,
	    &spec, NULL), 0);
	rd_spec_format(&spec, buf, sizeof(buf));
	assert_string_equal(buf, "!curl,1234,uid:5,uid:1001");
	assert_int_equal(rd_spec_parse("name:1234,1234,name:curl", &r, &spec,
	    NULL), 0);
	rd_spec_format(&spec, buf, sizeof(buf));
	assert_string_equal(buf, "name:1234,1234,curl");
	/* truncation of the output never overruns */
	rd_spec_format(&spec, buf, 4);
	assert_int_equal(strlen(buf), 3);
}

/* What status shows parses back to the same rules (names, pids, uids). */
static void
format_parses_back_to_the_same_rules(void **state)
{
	static const char *const specs[] = {
		"1,2,3", "!1234", "mitmproxy", "!a,a", " a , mitmproxy ",
		"! a", "0001", "!!x", "uid:0,!uid:65534,curl",
		"systemd-resolved,!kworker/0:1", "Web Content,!2242",
		"name:1234,!name:0", "name:uid:5,name:name:x",
	};
	struct rd_spec_resolver r = resolver();
	struct rd_spec a, b;
	char buf[1024];
	size_t i, k;

	(void)state;
	for (i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		assert_int_equal(rd_spec_parse(specs[i], &r, &a, NULL), 0);
		rd_spec_format(&a, buf, sizeof(buf));
		if (rd_spec_parse(buf, &r, &b, NULL) < 0)
			fail_msg("'%s' formats as '%s', which does not parse",
			    specs[i], buf);
		assert_int_equal(a.nrules, b.nrules);
		assert_int_equal(a.default_capture, b.default_capture);
		for (k = 0; k < a.nrules; k++)
			assert_memory_equal(&a.rules[k], &b.rules[k],
			    sizeof(a.rules[k]));
	}
}

static void
system_resolver_finds_root_user(void **state)
{
	struct rd_spec spec;
	struct rd_spec_error err;

	(void)state;
	assert_int_equal(rd_spec_parse("user:root", NULL, &spec, &err), 0);
	assert_int_equal(spec.rules[0].kind, LC_RULE_UID);
	assert_int_equal(spec.rules[0].id, 0);
	assert_int_equal(rd_spec_parse("user:no-such-user-lc", NULL, &spec,
	    &err), -1);
	assert_non_null(strstr(err.msg, "no such user 'no-such-user-lc'"));
}

static void
system_cgroup2_root_found_and_identified(void **state)
{
	char root[4096];
	struct statfs sfs;
	uint64_t id;

	(void)state;
	if (rd_cgroup2_root(root, sizeof(root)) < 0)
		skip();
	assert_int_equal(statfs(root, &sfs), 0);
	assert_true(sfs.f_type == CGROUP2_SUPER_MAGIC);
	/* Only the hierarchy's real root has id 1; in a cgroup namespace
	 * the mount may be a subtree. */
	assert_int_equal(rd_cgroup_id(root, &id), 0);
	assert_true(id >= 1);
	/* not a cgroup v2 directory */
	assert_int_equal(rd_cgroup_id("/tmp", &id), -1);
	assert_int_equal(errno, EMEDIUMTYPE);
}

static int
count_visit(const char *rel, uint64_t id, void *arg)
{
	const struct { const char *rel; uint64_t id; int *seen; } *want = arg;

	if (strcmp(rel, want->rel) == 0 && id == want->id)
		(*want->seen)++;
	return 0;
}

/* The id <-> path mapping owner attribution relies on, on real cgroupfs. */
static void
cgroup_id_path_and_walk_on_a_real_child_cgroup(void **state)
{
	char root[4096], dir[4200], rel[4200];
	uint64_t id;
	int seen = 0;
	struct { const char *rel; uint64_t id; int *seen; } want;

	(void)state;
	if (rd_cgroup2_root(root, sizeof(root)) < 0 || geteuid() != 0)
		skip();
	snprintf(dir, sizeof(dir), "%s/localcap-spec-%d", root, (int)getpid());
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(rd_cgroup_id(dir, &id), 0);
	assert_int_equal(rd_cgroup_path(root, id, rel, sizeof(rel)), 0);
	assert_string_equal(rel, dir + strlen(root));
	/* The walk the owner-path cache fills from sees it, with its id. */
	want.rel = dir + strlen(root);
	want.id = id;
	want.seen = &seen;
	assert_true(rd_cgroup_foreach(root, count_visit, &want) >= 2);
	assert_int_equal(seen, 1);
	assert_int_equal(rmdir(dir), 0);
	/* gone: the walk says so */
	assert_int_equal(rd_cgroup_path(root, id, rel, sizeof(rel)), -1);
	assert_int_equal(errno, ENOENT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(mitmproxy_semantics_table),
		cmocka_unit_test(default_capture_follows_first_action),
		cmocka_unit_test(decide_names_the_deciding_rule),
		cmocka_unit_test(long_name_compared_on_15_bytes),
		cmocka_unit_test(name_keeps_inner_spaces_and_colons),
		cmocka_unit_test(name_prefix_names_digit_and_keyword_processes),
		cmocka_unit_test(uid_and_user_match_uid),
		cmocka_unit_test(cgroup_matches_itself_and_descendants),
		cmocka_unit_test(unit_resolves_under_system_slice_then_searches),
		cmocka_unit_test(refusals_name_item_and_offset),
		cmocka_unit_test(refusal_message_cannot_forge_log_lines),
		cmocka_unit_test(too_many_rules_refused_whole),
		cmocka_unit_test(overlong_cgroup_path_refused),
		cmocka_unit_test(oversized_text_refused),
		cmocka_unit_test(null_text_and_null_error_are_fine),
		cmocka_unit_test(random_input_never_crashes),
		cmocka_unit_test(format_renders_canonical_spec),
		cmocka_unit_test(format_parses_back_to_the_same_rules),
		cmocka_unit_test(system_resolver_finds_root_user),
		cmocka_unit_test(system_cgroup2_root_found_and_identified),
		cmocka_unit_test(cgroup_id_path_and_walk_on_a_real_child_cgroup),
	};
	return cmocka_run_group_tests(tests, make_tree, remove_tree);
}
