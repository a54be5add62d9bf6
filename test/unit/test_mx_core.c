/*
 * Unit tests for the macOS extension's core that need no proxyd: the spec
 * as the core evaluates it (mitmproxy's cases, shared with test_rd_spec.c),
 * the decision (localcap's own processes never, an empty spec nothing,
 * fail-closed), the audit-token cache's bounds, mx_core_post from another
 * thread, and proxyd's reset marker on flow.sock against a stand-in proxyd
 * (common/ipc.c's listener).  The flow machines run against the real
 * proxyd in test/integration/macos_sim.sh.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "flow.pb-c.h"
#include "ipc.h"

#include "macos-extension/core/mx_core.h"
#include "macos-extension/core/mx_proc.h"
#include "macos-extension/core/mx_spec.h"
#include "spec_cases.h"

static struct mx_proc
mkproc(uint32_t pid, uint32_t uid, const char *path)
{
	struct mx_proc p;

	memset(&p, 0, sizeof(p));
	p.pid = p.pidversion = pid;
	p.uid = uid;
	snprintf(p.path, sizeof(p.path), "%s", path);
	return p;
}

static bool
captures(const char *text, const struct mx_proc *p)
{
	struct mx_spec spec;
	struct ispec_error err;

	if (mx_spec_compile(text, &spec, NULL, &err) != 0)
		fail_msg("'%s' refused: %s", text, err.msg);
	return mx_spec_captures(&spec, p);
}

static void
mitmproxy_cases_against_the_shared_matcher(void **state)
{
	struct mx_proc a = mkproc(1, 501, "/usr/local/bin/a");
	struct mx_proc b = mkproc(2242, 501,
	    "/Applications/mitmproxy.app/Contents/MacOS/mitmproxy");
	size_t i;

	(void)state;
	for (i = 0; i < MITMPROXY_TABLE_LEN; i++) {
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
names_match_the_executables_base_name(void **state)
{
	struct mx_proc curl = mkproc(10, 501, "/usr/bin/curl");
	struct mx_proc cfg = mkproc(11, 501, "/usr/bin/curl-config");
	struct mx_proc nopath = mkproc(12, 501, "");
	struct mx_proc longname = mkproc(13, 501,
	    "/opt/x/a-program-with-a-name-longer-than-fifteen");

	(void)state;
	assert_true(captures("curl", &curl));
	assert_false(captures("curl", &cfg));
	/* a directory of the path is not the name */
	assert_false(captures("bin", &curl));
	assert_false(captures("usr", &curl));
	/* an unknown path matches no name, but still a pid or uid */
	assert_false(captures("curl", &nopath));
	assert_true(captures("12", &nopath));
	assert_true(captures("uid:501", &nopath));
	assert_true(captures("!curl", &nopath));
	/* no 15-byte comm limit on macOS */
	assert_true(captures("a-program-with-a-name-longer-than-fifteen",
	    &longname));
	assert_false(captures("a-program-with-", &longname));
}

static int
fake_user(const char *name, uint32_t *uid)
{
	if (strcmp(name, "alice") == 0) {
		*uid = 1001;
		return 0;
	}
	errno = ENOENT;
	return -1;
}

static void
refusals_name_the_item(void **state)
{
	struct mx_spec spec;
	struct ispec_error err;
	struct mx_proc p = mkproc(5, 1001, "/bin/sh");

	(void)state;
	assert_int_equal(mx_spec_compile("curl,cgroup:/a", &spec, fake_user,
	    &err), -1);
	assert_int_equal(err.item, 2);
	assert_int_equal(err.offset, 5);
	assert_non_null(strstr(err.msg, "Linux-only"));
	assert_int_equal(spec.n, 0);
	assert_int_equal(mx_spec_compile("unit:a.service", &spec, fake_user,
	    &err), -1);
	assert_int_equal(mx_spec_compile("/usr/bin/curl", &spec, fake_user,
	    &err), -1);
	assert_non_null(strstr(err.msg, "base name"));
	assert_int_equal(mx_spec_compile("a,,b", &spec, fake_user, &err), -1);
	assert_non_null(strstr(err.msg, "empty item"));
	assert_int_equal(mx_spec_compile("user:bob", &spec, fake_user, &err),
	    -1);
	assert_non_null(strstr(err.msg, "no such user 'bob'"));
	assert_int_equal(mx_spec_compile("0", &spec, fake_user, &err), -1);
	assert_int_equal(mx_spec_compile("user:alice", &spec, fake_user, &err),
	    0);
	assert_true(mx_spec_captures(&spec, &p));
}

/* --- the decision ------------------------------------------------------------------- */

static int lookups;

static int
fake_proc_info(void *ctx, const uint8_t *token, size_t len, struct mx_proc *out)
{
	(void)ctx;
	(void)len;
	lookups++;
	if (token[0] == 0xff)
		return -1;	/* the process is gone */
	/* token: pid in byte 0..1, uid in byte 2, flags in byte 3 */
	out->pid = (uint32_t)token[0] | (uint32_t)token[1] << 8;
	out->pidversion = token[4];
	out->uid = token[2];
	out->localcap_signed = (token[3] & 1) != 0;
	snprintf(out->path, sizeof(out->path), "/usr/bin/%s",
	    (token[3] & 2) ? "proxyd" : "curl");
	return 0;
}

static void noop_open(void *c, void *p, struct mx_flow *f) { (void)c; (void)p; (void)f; }
static void noop_read(void *c, void *p, size_t m) { (void)c; (void)p; (void)m; }
static void noop_write(void *c, void *p, const void *d, size_t l,
    const struct mx_endpoint *e) { (void)c; (void)p; (void)d; (void)l; (void)e; }
static void noop_shutdown(void *c, void *p, int h, int e) { (void)c; (void)p; (void)h; (void)e; }
static void noop_release(void *c, void *p) { (void)c; (void)p; }

static const struct mx_platform fake_platform = {
	.proc_info = fake_proc_info,
	.open = noop_open,
	.read = noop_read,
	.write = noop_write,
	.shutdown = noop_shutdown,
	.release = noop_release,
};

static struct mx_flow_meta
meta(uint16_t pid, uint8_t uid, uint8_t flags)
{
	struct mx_flow_meta m;

	memset(&m, 0, sizeof(m));
	m.transport = MX_TCP;
	m.audit_token[0] = (uint8_t)pid;
	m.audit_token[1] = (uint8_t)(pid >> 8);
	m.audit_token[2] = uid;
	m.audit_token[3] = flags;
	m.remote.family = 4;
	m.remote.addr[0] = 192;
	m.remote.addr[3] = 1;
	m.remote.port = 443;
	return m;
}

static struct mx_core *
fail_closed_core(struct ev_loop *loop, const uint32_t *uids, size_t nuids,
    const uint32_t *pids, size_t npids)
{
	struct mx_config cfg = {
		.flow_sock = "/nonexistent/localcap-test/flow.sock",
		.fail_closed = true,
		.own_uids = uids, .n_own_uids = nuids,
		.own_pids = pids, .n_own_pids = npids,
	};

	return mx_core_new(loop, &fake_platform, &cfg);
}

/*
 * Fail-closed and without proxyd, the decision tells "would intercept"
 * (-1: refuse) from "never" (0: leave to the system).
 */
static void
own_processes_never_and_empty_spec_nothing(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const uint32_t uids[] = { 77 }, pids[] = { 4242 };
	struct mx_core *c = fail_closed_core(loop, uids, 1, pids, 1);
	struct mx_flow_meta m;
	struct mx_proc p;
	struct ispec_error err;

	(void)state;
	assert_non_null(c);
	/* The empty spec, as at start: nothing. */
	m = meta(100, 10, 0);
	assert_int_equal(mx_core_decide(c, &m, &p), 0);
	assert_int_equal(mx_core_set_spec(c, "  ", &err), 0);
	assert_int_equal(mx_core_decide(c, &m, &p), 0);

	/* Everything ("!1" captures all but pid 1)... */
	assert_int_equal(mx_core_set_spec(c, "!1", &err), 0);
	assert_int_equal(mx_core_decide(c, &m, &p), -1);
	assert_int_equal(p.pid, 100);
	/* ...but never localcap's own: signed by localcap, its users, its
	 * pids, the extension itself. */
	m = meta(101, 10, 1);
	assert_int_equal(mx_core_decide(c, &m, &p), 0);
	m = meta(102, 77, 0);
	assert_int_equal(mx_core_decide(c, &m, &p), 0);
	m = meta(4242, 10, 0);
	assert_int_equal(mx_core_decide(c, &m, &p), 0);
	m = meta((uint16_t)getpid(), 10, 0);
	if ((uint32_t)getpid() <= 0xffff)
		assert_int_equal(mx_core_decide(c, &m, &p), 0);
	/* even when the spec names them */
	assert_int_equal(mx_core_set_spec(c, "proxyd,77,uid:77", &err), 0);
	m = meta(4242, 77, 3);
	assert_int_equal(mx_core_decide(c, &m, &p), 0);
	assert_true(mx_core_stats(c)->flows_own >= 4);

	/* A refused spec keeps the old one. */
	assert_int_equal(mx_core_set_spec(c, "curl", &err), 0);
	assert_int_equal(mx_core_set_spec(c, "cgroup:/x", &err), -1);
	m = meta(103, 10, 0);
	assert_int_equal(mx_core_decide(c, &m, &p), -1);

	/* A gone process is left alone, and a TCP flow without a usable
	 * destination too. */
	m = meta(0xff, 10, 0);
	assert_int_equal(mx_core_decide(c, &m, &p), 0);
	assert_int_equal(mx_core_stats(c)->flows_no_process, 1);
	m = meta(104, 10, 0);
	m.remote.port = 0;
	assert_int_equal(mx_core_decide(c, &m, &p), 0);
	assert_int_equal(mx_core_stats(c)->flows_active, 0);
	mx_core_free(c);
	ev_loop_destroy(loop);
}

static void
proc_cache_is_bounded_and_keyed_by_the_whole_token(void **state)
{
	struct mx_proc_cache *pc = mx_proc_cache_new(4);
	uint8_t tok[MX_AUDIT_TOKEN_LEN];
	struct mx_proc p;
	bool hit;
	int i;

	(void)state;
	assert_non_null(pc);
	lookups = 0;
	for (i = 1; i <= 10; i++) {
		memset(tok, 0, sizeof(tok));
		tok[0] = (uint8_t)i;
		assert_int_equal(mx_proc_cache_get(pc, tok, sizeof(tok),
		    fake_proc_info, NULL, &p, &hit), 0);
		assert_false(hit);
		assert_int_equal(p.pid, i);
		assert_true(mx_proc_cache_count(pc) <= 4);
	}
	assert_int_equal(lookups, 10);
	/* 7..10 are cached; 10 is used again: a hit, no lookup */
	tok[0] = 10;
	assert_int_equal(mx_proc_cache_get(pc, tok, sizeof(tok), fake_proc_info,
	    NULL, &p, &hit), 0);
	assert_true(hit);
	assert_int_equal(lookups, 10);
	/* 1 was evicted first */
	tok[0] = 1;
	assert_int_equal(mx_proc_cache_get(pc, tok, sizeof(tok), fake_proc_info,
	    NULL, &p, &hit), 0);
	assert_false(hit);
	/* the same pid with another pidversion is another process */
	tok[4] = 9;
	assert_int_equal(mx_proc_cache_get(pc, tok, sizeof(tok), fake_proc_info,
	    NULL, &p, &hit), 0);
	assert_false(hit);
	assert_int_equal(p.pidversion, 9);
	/* failures are not cached */
	memset(tok, 0, sizeof(tok));
	tok[0] = 0xff;
	assert_int_equal(mx_proc_cache_get(pc, tok, sizeof(tok), fake_proc_info,
	    NULL, &p, &hit), -1);
	assert_int_equal(mx_proc_cache_get(pc, tok, sizeof(tok), fake_proc_info,
	    NULL, &p, &hit), -1);
	assert_int_equal(mx_proc_cache_count(pc), 4);
	/* a token of a wrong size is refused, not read past */
	assert_int_equal(mx_proc_cache_get(pc, tok, MX_AUDIT_TOKEN_LEN + 1,
	    fake_proc_info, NULL, &p, &hit), -1);
	mx_proc_cache_free(pc);
}

struct post_arg {
	struct mx_core	*core;
	struct ev_loop	*loop;
	int		 ran;
	pthread_t	 ran_on;
};

static void
posted(struct mx_core *c, void *arg)
{
	struct post_arg *pa = arg;

	assert_ptr_equal(c, pa->core);
	pa->ran++;
	pa->ran_on = pthread_self();
	ev_break(pa->loop, EVBREAK_ALL);
}

static void *
poster(void *arg)
{
	struct post_arg *pa = arg;

	assert_int_equal(mx_core_post(pa->core, posted, pa), 0);
	return NULL;
}

static void
guard_expired(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

static void
post_from_another_thread_runs_on_the_loop(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct mx_core *c = fail_closed_core(loop, NULL, 0, NULL, 0);
	struct post_arg pa = { c, loop, 0, 0 };
	ev_timer guard;
	pthread_t t;

	(void)state;
	assert_non_null(c);
	ev_timer_init(&guard, guard_expired, 5, 0);
	ev_timer_start(loop, &guard);
	assert_int_equal(pthread_create(&t, NULL, poster, &pa), 0);
	ev_run(loop, 0);
	pthread_join(t, NULL);
	ev_timer_stop(loop, &guard);
	assert_int_equal(pa.ran, 1);
	assert_true(pthread_equal(pa.ran_on, pthread_self()));
	mx_core_free(c);
	ev_loop_destroy(loop);
}

/* --- proxyd's reset marker (FlowClosed "reset" on flow.sock) --------------------- */

/* A stand-in proxyd: takes each NewFlow's socket, sends what the test says. */
struct fake_px {
	struct ipc_listener	*l;
	struct ipc_peer		*peer;
	int			 fd[4];
	uint64_t		 id[4];
	size_t			 n;
	char			 last_reason[32];	/* of the core's FlowClosed */
};

static void
fpx_message(struct ipc_peer *peer, Lc__MsgType type, const ProtobufCMessage *msg,
    int *fds, size_t nfds)
{
	struct fake_px *px = ipc_user(peer);

	if (type == LC__MSG_TYPE__MSG_NEW_FLOW && nfds == 1 && px->n < 4) {
		px->id[px->n] = ((const Lc__NewFlow *)(const void *)msg)->flow_id;
		px->fd[px->n++] = fds[0];
		fds[0] = -1;
	} else if (type == LC__MSG_TYPE__MSG_FLOW_CLOSED) {
		const Lc__FlowClosed *fc = (const Lc__FlowClosed *)(const void *)msg;

		snprintf(px->last_reason, sizeof(px->last_reason), "%s",
		    fc->reason ? fc->reason : "");
	}
}

static const struct ipc_callbacks fpx_callbacks = { .on_message = fpx_message };

static void
fpx_accept(struct ipc_listener *l, struct ipc_peer *peer)
{
	struct fake_px *px = ipc_listener_user(l);

	px->peer = peer;
}

/* What the platform was told about one app flow. */
struct rec_flow {
	struct mx_flow	*f;
	int		 reads;
	int		 shut_rd, shut_wr;	/* calls */
	int		 rd_err, wr_err;
	int		 released;
};

static void rec_open(void *c, void *p, struct mx_flow *f)
{ (void)c; ((struct rec_flow *)p)->f = f; }
static void rec_read(void *c, void *p, size_t m)
{ (void)c; (void)m; ((struct rec_flow *)p)->reads++; }
static void rec_shutdown(void *c, void *p, int how, int err)
{
	struct rec_flow *r = p;

	(void)c;
	if (how == MX_SHUT_RD) {
		r->shut_rd++;
		r->rd_err = err;
	} else {
		r->shut_wr++;
		r->wr_err = err;
	}
}
static void rec_release(void *c, void *p) { (void)c; ((struct rec_flow *)p)->released++; }

static const struct mx_platform rec_platform = {
	.proc_info = fake_proc_info,
	.open = rec_open,
	.read = rec_read,
	.write = noop_write,
	.shutdown = rec_shutdown,
	.release = rec_release,
};

/* Run the loop for about ms milliseconds. */
static void
spin_ms(struct ev_loop *loop, int ms)
{
	struct timespec t0, t;
	long el;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		ev_run(loop, EVRUN_NOWAIT);
		(void)poll(NULL, 0, 1);
		clock_gettime(CLOCK_MONOTONIC, &t);
		el = (t.tv_sec - t0.tv_sec) * 1000 +
		    (t.tv_nsec - t0.tv_nsec) / 1000000;
	} while (el < ms);
}

/* A TCP flow of curl, taken, opened, the app's side ended (its EOF read):
 * from here on only proxyd's side is open.  Returns its index at px. */
static size_t
flow_app_done(struct ev_loop *loop, struct mx_core *c, struct fake_px *px,
    struct rec_flow *r, uint16_t pid)
{
	struct mx_flow_meta m = meta(pid, 10, 0);
	struct mx_proc p;
	size_t n = px->n;
	int i;

	assert_int_equal(mx_core_decide(c, &m, &p), 1);
	mx_flow_take(c, r, &m, &p);
	for (i = 0; i < 2000 && px->n == n; i++)
		spin_ms(loop, 1);
	assert_int_equal(px->n, n + 1);
	assert_non_null(r->f);
	mx_flow_opened(r->f, 0);
	assert_int_equal(r->reads, 1);
	mx_tcp_read_done(r->f, NULL, 0, 0);	/* the app's EOF */
	assert_int_equal(r->shut_rd, 1);
	assert_int_equal(r->rd_err, 0);
	return n;
}

/*
 * macOS's AF_UNIX has no MSG_OOB, so proxyd cuts a flow towards the app by
 * FlowClosed{reason "reset"} on flow.sock, then closes the flow socket.
 * With the app's side already ended the close alone reads as an orderly end
 * (held MX_EOF_GRACE): the marker, before or after the close, makes it a
 * reset.  Without it, the end stays orderly; another reason, or an id the
 * core does not know, changes nothing.
 */
static void
reset_marker_on_flow_sock_turns_the_end_into_a_reset(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct fake_px px;
	char dir[] = "/tmp/lc-mxreset.XXXXXX", path[64];
	struct ipc_peer_config pcfg = {
		.channel = IPC_CHAN_FLOW,
		.self_role = LC__ROLE__ROLE_PROXYD,
		.accept_roles = 1u << LC__ROLE__ROLE_REDIRECTORD,
		.cb = &fpx_callbacks,
		.user = &px,
		.name = "flow.sock",
	};
	struct mx_config cfg = { .flow_sock = path };
	struct rec_flow orderly = { 0 }, after = { 0 }, before = { 0 },
	    other = { 0 };
	struct ispec_error err;
	struct mx_core *c;
	Lc__FlowClosed fc;
	size_t i;
	int k;

	(void)state;
	memset(&px, 0, sizeof(px));
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/flow.sock", dir);
	px.l = ipc_listen(loop, path, 0600, &pcfg, NULL, fpx_accept);
	assert_non_null(px.l);
	c = mx_core_new(loop, &rec_platform, &cfg);
	assert_non_null(c);
	for (k = 0; k < 3000 && !mx_core_connected(c); k++)
		spin_ms(loop, 1);
	assert_true(mx_core_connected(c));
	assert_int_equal(mx_core_set_spec(c, "curl", &err), 0);
	lc__flow_closed__init(&fc);
	fc.reason = (char *)(uintptr_t)"reset";

	/* No marker: proxyd's close after the app's end is an orderly end. */
	i = flow_app_done(loop, c, &px, &orderly, 100);
	close(px.fd[i]);
	spin_ms(loop, 100);
	assert_int_equal(orderly.released, 1);
	assert_int_equal(orderly.shut_wr, 1);
	assert_int_equal(orderly.wr_err, 0);
	assert_string_equal(px.last_reason, "closed");

	/* The close first, the marker within MX_EOF_GRACE: the held EOF
	 * becomes a reset. */
	i = flow_app_done(loop, c, &px, &after, 101);
	close(px.fd[i]);
	spin_ms(loop, 5);
	assert_int_equal(after.shut_wr, 0);	/* still held */
	fc.flow_id = px.id[i];
	assert_int_equal(ipc_send(px.peer, LC__MSG_TYPE__MSG_FLOW_CLOSED,
	    &fc.base, NULL, 0), 0);
	spin_ms(loop, 100);
	assert_int_equal(after.released, 1);
	assert_int_equal(after.shut_wr, 1);
	assert_int_equal(after.wr_err, ECONNRESET);
	assert_int_equal(after.shut_rd, 1);	/* once, and not again */
	assert_string_equal(px.last_reason, "reset by proxyd");

	/* The marker first (its flow socket still open): a reset at once. */
	i = flow_app_done(loop, c, &px, &before, 102);
	fc.flow_id = px.id[i];
	assert_int_equal(ipc_send(px.peer, LC__MSG_TYPE__MSG_FLOW_CLOSED,
	    &fc.base, NULL, 0), 0);
	spin_ms(loop, 20);
	assert_int_equal(before.shut_wr, 1);
	assert_int_equal(before.wr_err, ECONNRESET);
	assert_int_equal(before.released, 1);
	close(px.fd[i]);

	/* Another reason from proxyd, or an unknown id: nothing happens. */
	i = flow_app_done(loop, c, &px, &other, 103);
	fc.flow_id = px.id[i];
	fc.reason = (char *)(uintptr_t)"closed";
	assert_int_equal(ipc_send(px.peer, LC__MSG_TYPE__MSG_FLOW_CLOSED,
	    &fc.base, NULL, 0), 0);
	fc.flow_id = 999999;
	fc.reason = (char *)(uintptr_t)"reset";
	assert_int_equal(ipc_send(px.peer, LC__MSG_TYPE__MSG_FLOW_CLOSED,
	    &fc.base, NULL, 0), 0);
	spin_ms(loop, 20);
	assert_int_equal(other.shut_wr, 0);
	assert_int_equal(other.released, 0);
	close(px.fd[i]);
	spin_ms(loop, 100);
	assert_int_equal(other.wr_err, 0);
	assert_int_equal(other.released, 1);

	assert_int_equal(mx_core_stats(c)->resets_from_proxyd, 2);
	assert_true(mx_core_connected(c));	/* flow.sock itself untouched */
	assert_int_equal(mx_core_stats(c)->flows_active, 0);
	mx_core_free(c);
	ipc_listener_free(px.l);
	if (px.peer != NULL)
		ipc_close(px.peer, "test done");
	spin_ms(loop, 5);
	rmdir(dir);
	ev_loop_destroy(loop);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(mitmproxy_cases_against_the_shared_matcher),
		cmocka_unit_test(names_match_the_executables_base_name),
		cmocka_unit_test(refusals_name_the_item),
		cmocka_unit_test(own_processes_never_and_empty_spec_nothing),
		cmocka_unit_test(proc_cache_is_bounded_and_keyed_by_the_whole_token),
		cmocka_unit_test(post_from_another_thread_runs_on_the_loop),
		cmocka_unit_test(reset_marker_on_flow_sock_turns_the_end_into_a_reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
