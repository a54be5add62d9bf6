/*
 * common/msgcodec.c: every message survives encode -> bytes -> decode with
 * its fields unchanged, and each decoder refuses the invalid fields it is
 * there to refuse (with a reason), so a daemon never sees them.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "msgcodec.h"

/* Through the wire: pack with the message's descriptor, unpack a copy. */
static void *
wire(const ProtobufCMessage *m)
{
	static uint8_t buf[64 * 1024];
	size_t n = protobuf_c_message_get_packed_size(m);
	void *back;

	assert_true(n <= sizeof(buf));
	assert_int_equal(protobuf_c_message_pack(m, buf), n);
	back = protobuf_c_message_unpack(m->descriptor, NULL, n, buf);
	assert_non_null(back);
	return back;
}

static void
unwire(void *m)
{
	protobuf_c_message_free_unpacked(m, NULL);
}

/* An owner with every byte set, padding too, so that memcmp compares. */
static void
set_owner(struct owner *o, uint32_t pid, const char *name, const char *cgroup)
{
	memset(o, 0, sizeof(*o));
	o->pid = pid;
	o->uid = 1000;
	o->gid = 100;
	o->cgroup_id = 4;
	strcpy(o->process, name);
	strcpy(o->cgroup, cgroup);
}

static struct endpoint
ep(const char *addr, uint16_t port)
{
	struct endpoint e = { .port = port };

	if (inet_pton(AF_INET, addr, e.addr) == 1)
		e.family = AF_INET;
	else {
		assert_int_equal(inet_pton(AF_INET6, addr, e.addr), 1);
		e.family = AF_INET6;
	}
	return e;
}

/* --- counters ------------------------------------------------------------------- */

static void
counters_refuse_what_would_be_cut(void **state)
{
	static struct msg_counters cs;
	char name[LC_COUNTER_NAME_MAX + 1];
	int i;

	(void)state;
	memset(&cs, 0, sizeof(cs));
	memset(name, 'a', sizeof(name));
	name[LC_COUNTER_NAME_MAX - 1] = '\0';	/* the longest that fits */
	assert_int_equal(msg_counters_add(&cs, name, 1), 0);
	name[LC_COUNTER_NAME_MAX - 1] = 'a';
	name[LC_COUNTER_NAME_MAX] = '\0';	/* one more */
	assert_int_equal(msg_counters_add(&cs, name, 1), -1);
	assert_int_equal(msg_counters_add(&cs, "", 1), -1);
	assert_int_equal(msg_counters_add(&cs, NULL, 1), -1);
	for (i = 1; i < LC_STATUS_COUNTERS_MAX; i++)
		assert_int_equal(msg_counters_add(&cs, "x", (uint64_t)i), 0);
	assert_int_equal(msg_counters_add(&cs, "one_too_many", 1), -1);
	assert_int_equal(cs.n, LC_STATUS_COUNTERS_MAX);
}

static void
proxy_status_round_trips(void **state)
{
	static struct msg_proxy_status a, b;
	static struct msg_proxy_status_pb pb;
	Lc__ProxyStatus *back;
	const char *why = NULL;

	(void)state;
	memset(&a, 0, sizeof(a));
	a.flows_active = 7;
	assert_int_equal(msg_counters_add(&a.counters, "flows_total", 99), 0);
	assert_int_equal(msg_counters_add(&a.counters, "bytes_to_app",
	    UINT64_MAX), 0);
	msg_proxy_status_to_pb(&a, &pb);
	back = wire(&pb.m.base);
	assert_int_equal(msg_proxy_status_from_pb(&b, back, &why), 0);
	assert_int_equal(b.flows_active, 7);
	assert_int_equal(b.counters.n, 2);
	assert_string_equal(b.counters.name[1], "bytes_to_app");
	assert_true(b.counters.value[1] == UINT64_MAX);
	/* A counter without a name: refused, said why. */
	back->counters[0]->name[0] = '\0';
	assert_int_equal(msg_proxy_status_from_pb(&b, back, &why), -1);
	assert_non_null(strstr(why, "counter name"));
	unwire(back);
}

/* --- control plane ------------------------------------------------------------------ */

static void
ctl_request_round_trips_each_op(void **state)
{
	const struct msg_ctl_request reqs[] = {
		{ .id = 1, .op = MSG_CTL_STATUS },
		{ .id = 2, .op = MSG_CTL_ATTACH, .spec = "curl,!1234" },
		{ .id = 3, .op = MSG_CTL_DETACH, .spec = "", .all = 1 },
		{ .id = 4, .op = MSG_CTL_RUN, .pid = 4242 },
	};
	struct msg_ctl_request_pb pb;
	struct msg_ctl_request b;
	const char *why = NULL;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		Lc__CtlRequest *back;

		msg_ctl_request_to_pb(&reqs[i], &pb);
		back = wire(&pb.m.base);
		assert_null(msg_lookup(LC__MSG_TYPE__MSG_CTL_REQUEST)->validate(
		    &back->base));
		assert_int_equal(msg_ctl_request_from_pb(&b, back, &why), 0);
		assert_true(b.id == reqs[i].id);
		assert_int_equal(b.op, reqs[i].op);
		assert_int_equal(b.all, reqs[i].all);
		assert_int_equal(b.pid, reqs[i].pid);
		if (reqs[i].spec)
			assert_string_equal(b.spec, reqs[i].spec);
		unwire(back);
	}
}

static void
ctl_request_invalid_is_refused(void **state)
{
	Lc__CtlRequest pb;
	Lc__RunRequest run;
	struct msg_ctl_request r;
	const char *why = NULL;

	(void)state;
	lc__ctl_request__init(&pb);
	assert_int_equal(msg_ctl_request_from_pb(&r, &pb, &why), -1);
	assert_non_null(why);
	/* The permit table closes a peer sending it. */
	assert_non_null(msg_lookup(LC__MSG_TYPE__MSG_CTL_REQUEST)->validate(
	    &pb.base));
	lc__run_request__init(&run);
	run.pid = 0x80000000u;
	pb.request_case = LC__CTL_REQUEST__REQUEST_RUN;
	pb.run = &run;
	assert_int_equal(msg_ctl_request_from_pb(&r, &pb, &why), -1);
	assert_non_null(strstr(why, "pid"));
}

static void
ctl_reply_round_trips_each_answer(void **state)
{
	Lc__StatusReply st;
	Lc__DaemonStatus ds, *dsp = &ds;
	const struct msg_ctl_reply replies[] = {
		{ .id = 1, .answer = MSG_CTL_ERROR,
		    .code = LC__ERROR_CODE__ERR_BAD_SPEC, .message = "bad item",
		    .offset = 5 },
		{ .id = 2, .answer = MSG_CTL_STATUS_REPLY, .status = &st },
		{ .id = 3, .answer = MSG_CTL_SPEC, .spec = "curl", .runs = 2 },
		{ .id = 4, .answer = MSG_CTL_RUN_REPLY, .cgroup = "/lc/run-1" },
	};
	struct msg_ctl_reply_pb pb;
	struct msg_ctl_reply b;
	const char *why = NULL;
	size_t i;

	(void)state;
	lc__status_reply__init(&st);
	lc__daemon_status__init(&ds);
	ds.name = (char *)(uintptr_t)"redirectord";
	st.n_daemons = 1;
	st.daemons = &dsp;
	st.spec = (char *)(uintptr_t)"curl";
	for (i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
		Lc__CtlReply *back;

		msg_ctl_reply_to_pb(&replies[i], &pb);
		back = wire(&pb.m.base);
		assert_null(msg_lookup(LC__MSG_TYPE__MSG_CTL_REPLY)->validate(
		    &back->base));
		assert_int_equal(msg_ctl_reply_from_pb(&b, back, &why), 0);
		assert_true(b.id == replies[i].id);
		assert_int_equal(b.answer, replies[i].answer);
		switch (b.answer) {
		case MSG_CTL_ERROR:
			assert_int_equal(b.code, LC__ERROR_CODE__ERR_BAD_SPEC);
			assert_string_equal(b.message, "bad item");
			assert_int_equal(b.offset, 5);
			break;
		case MSG_CTL_STATUS_REPLY:
			assert_string_equal(b.status->spec, "curl");
			assert_string_equal(b.status->daemons[0]->name,
			    "redirectord");
			break;
		case MSG_CTL_SPEC:
			assert_string_equal(b.spec, "curl");
			assert_int_equal(b.runs, 2);
			break;
		case MSG_CTL_RUN_REPLY:
			assert_string_equal(b.cgroup, "/lc/run-1");
			break;
		}
		unwire(back);
	}
}

static void
ctl_reply_invalid_is_refused(void **state)
{
	Lc__CtlReply pb;
	Lc__StatusReply st;
	Lc__DaemonStatus ds[LC_STATUS_DAEMONS_MAX + 1], *dsp[LC_STATUS_DAEMONS_MAX + 1];
	struct msg_ctl_reply r;
	const char *why = NULL;
	size_t i;

	(void)state;
	lc__ctl_reply__init(&pb);
	assert_int_equal(msg_ctl_reply_from_pb(&r, &pb, &why), -1);
	assert_non_null(msg_lookup(LC__MSG_TYPE__MSG_CTL_REPLY)->validate(&pb.base));

	lc__status_reply__init(&st);
	for (i = 0; i <= LC_STATUS_DAEMONS_MAX; i++) {
		lc__daemon_status__init(&ds[i]);
		ds[i].name = (char *)(uintptr_t)"d";
		dsp[i] = &ds[i];
	}
	pb.reply_case = LC__CTL_REPLY__REPLY_STATUS;
	pb.status = &st;
	st.daemons = dsp;
	st.n_daemons = LC_STATUS_DAEMONS_MAX;
	assert_int_equal(msg_ctl_reply_from_pb(&r, &pb, &why), 0);
	st.n_daemons = LC_STATUS_DAEMONS_MAX + 1;
	assert_int_equal(msg_ctl_reply_from_pb(&r, &pb, &why), -1);
	assert_non_null(strstr(why, "daemons"));
	st.n_daemons = 2;
	ds[1].name = (char *)(uintptr_t)"";
	assert_int_equal(msg_ctl_reply_from_pb(&r, &pb, &why), -1);
	assert_non_null(strstr(why, "name"));
	assert_non_null(msg_lookup(LC__MSG_TYPE__MSG_CTL_REPLY)->validate(&pb.base));
}

/* --- data plane ------------------------------------------------------------------- */

static void
tun_handover_round_trips_and_checks_mtu(void **state)
{
	static struct msg_tun_handover a = { .ifname = "lc0", .ifindex = 9,
	    .mtu = 1500 }, b;
	Lc__TunHandover pb, *back;
	const char *why = NULL;

	(void)state;
	msg_tun_handover_to_pb(&a, &pb);
	back = wire(&pb.base);
	assert_int_equal(msg_tun_handover_from_pb(&b, back, &why), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	back->mtu = 1279;
	assert_int_equal(msg_tun_handover_from_pb(&b, back, &why), -1);
	assert_non_null(strstr(why, "MTU"));
	back->mtu = 65536;
	assert_int_equal(msg_tun_handover_from_pb(&b, back, &why), -1);
	unwire(back);
	pb.ifname = (char *)(uintptr_t)"sixteen-chars-ab";	/* IFNAMSIZ: 15 */
	assert_int_equal(msg_tun_handover_from_pb(&b, &pb, &why), -1);
	assert_non_null(strstr(why, "interface name"));
}

static void
netstack_status_round_trips(void **state)
{
	static struct msg_netstack_status a, b;
	static struct msg_netstack_status_pb pb;
	Lc__NetstackStatus *back;
	char version[LC_SOFTWARE_VERSION_MAX + 1];
	const char *why = NULL;

	(void)state;
	memset(&a, 0, sizeof(a));
	assert_int_equal(msg_counters_add(&a.counters, "packets_in", 5), 0);
	a.proxyd_connected = 1;
	a.proxyd_pid = 77;
	strcpy(a.proxyd_version, "0.1.0");
	a.proxyd_flows_active = 3;
	assert_int_equal(msg_counters_add(&a.proxyd_counters, "flows_total", 8), 0);
	msg_netstack_status_to_pb(&a, &pb);
	back = wire(&pb.m.base);
	assert_int_equal(msg_netstack_status_from_pb(&b, back, &why), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	unwire(back);

	/* Without proxyd, what is said of it is not kept. */
	pb.m.proxyd_connected = 0;
	assert_int_equal(msg_netstack_status_from_pb(&b, &pb.m, &why), 0);
	assert_int_equal(b.proxyd_pid, 0);
	assert_int_equal(b.proxyd_counters.n, 0);
	assert_int_equal(b.counters.n, 1);

	pb.m.proxyd_connected = 1;
	memset(version, 'v', sizeof(version) - 1);
	version[sizeof(version) - 1] = '\0';
	pb.m.proxyd_version = version;
	assert_int_equal(msg_netstack_status_from_pb(&b, &pb.m, &why), -1);
	assert_non_null(strstr(why, "version"));
	pb.m.proxyd_version = (char *)(uintptr_t)"0.1.0";
	pb.m.n_counters = LC_STATUS_COUNTERS_MAX + 1;
	assert_int_equal(msg_netstack_status_from_pb(&b, &pb.m, &why), -1);
	assert_non_null(strstr(why, "more counters"));
}

static void
owner_query_round_trips_and_checks_endpoints(void **state)
{
	static struct msg_owner_query a = { .id = 12, .ipproto = IPPROTO_UDP }, b;
	struct msg_owner_query_pb pb;
	Lc__OwnerQuery *back;
	const char *why = NULL;

	(void)state;
	a.src = ep("2001:db8::5", 0);	/* a UDP source may have no port */
	a.dst = ep("2001:db8::53", 53);
	msg_owner_query_to_pb(&a, &pb);
	back = wire(&pb.m.base);
	assert_int_equal(msg_owner_query_from_pb(&b, back, &why), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	unwire(back);

	a.dst = ep("192.0.2.1", 53);
	msg_owner_query_to_pb(&a, &pb);
	assert_int_equal(msg_owner_query_from_pb(&b, &pb.m, &why), -1);
	assert_non_null(strstr(why, "families"));
	a.src = ep("192.0.2.9", 40000);
	msg_owner_query_to_pb(&a, &pb);
	pb.m.transport = LC__TRANSPORT__TRANSPORT_UNSPECIFIED;
	assert_int_equal(msg_owner_query_from_pb(&b, &pb.m, &why), -1);
	assert_non_null(strstr(why, "transport"));
	pb.m.transport = LC__TRANSPORT__TRANSPORT_TCP;
	pb.src.addr.len = 5;
	assert_int_equal(msg_owner_query_from_pb(&b, &pb.m, &why), -1);
	pb.m.src = NULL;
	assert_int_equal(msg_owner_query_from_pb(&b, &pb.m, &why), -1);
}

static void
owner_reply_round_trips_and_refuses_cut_owners(void **state)
{
	static struct msg_owner_reply a = { .id = 5, .found = 1 }, b;
	struct msg_owner_reply_pb pb;
	Lc__OwnerReply *back;
	char name[OWNER_NAME_MAX + 1];
	const char *why = NULL;

	(void)state;
	set_owner(&a.owner, 100, "curl", "/user.slice");
	msg_owner_reply_to_pb(&a, &pb);
	back = wire(&pb.m.base);
	assert_int_equal(msg_owner_reply_from_pb(&b, back, &why), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	unwire(back);

	a.found = 0;
	msg_owner_reply_to_pb(&a, &pb);
	assert_null(pb.m.owner);
	assert_int_equal(msg_owner_reply_from_pb(&b, &pb.m, &why), 0);
	assert_int_equal(b.found, 0);
	assert_int_equal(b.owner.pid, 0);

	pb.m.found = 1;		/* found, but nothing said of whom */
	assert_int_equal(msg_owner_reply_from_pb(&b, &pb.m, &why), -1);
	a.found = 1;
	msg_owner_reply_to_pb(&a, &pb);
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	pb.owner.process = name;
	assert_int_equal(msg_owner_reply_from_pb(&b, &pb.m, &why), -1);
	assert_non_null(strstr(why, "too long"));
	assert_int_equal(b.found, 0);
}

/* --- flow plane ------------------------------------------------------------------- */

static void
new_flow_round_trips(void **state)
{
	static struct msg_new_flow a = { .flow_id = 31, .ipproto = IPPROTO_TCP,
	    .start_us = 1700000000000000ull }, b;
	struct msg_new_flow_pb pb;
	Lc__NewFlow *back;
	char err[128];

	(void)state;
	a.src = ep("10.0.0.2", 51000);
	a.dst = ep("93.184.216.34", 443);
	set_owner(&a.owner, 9, "wget", "/a");
	msg_new_flow_to_pb(&a, &pb);
	back = wire(&pb.m.base);
	assert_int_equal(msg_new_flow_from_pb(&b, back, err, sizeof(err)), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	assert_string_equal(b.exe, "");		/* netstackd's: not known */
	unwire(back);

	/* The macOS extension's: the executable's path too. */
	snprintf(a.exe, sizeof(a.exe), "/usr/local/bin/wget");
	msg_new_flow_to_pb(&a, &pb);
	back = wire(&pb.m.base);
	assert_int_equal(msg_new_flow_from_pb(&b, back, err, sizeof(err)), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	unwire(back);
}

/* A path too long for OWNER_EXE_MAX is dropped whole (a cut one names
 * another file); the flow and the rest of its owner stay. */
static void
new_flow_exe_too_long_is_dropped(void **state)
{
	static struct msg_new_flow a = { .flow_id = 32, .ipproto = IPPROTO_TCP },
	    b;
	static char longpath[OWNER_EXE_MAX + 1];
	struct msg_new_flow_pb pb;
	char err[128];

	(void)state;
	a.src = ep("10.0.0.2", 51001);
	a.dst = ep("93.184.216.34", 443);
	set_owner(&a.owner, 10, "longpath", "");
	msg_new_flow_to_pb(&a, &pb);
	memset(longpath, 'p', OWNER_EXE_MAX);	/* one byte over, with the NUL */
	longpath[0] = '/';
	pb.owner.exe = longpath;
	assert_int_equal(msg_new_flow_from_pb(&b, &pb.m, err, sizeof(err)), 0);
	assert_string_equal(b.exe, "");
	assert_string_equal(b.owner.process, "longpath");
	assert_int_equal(b.owner.pid, 10);
	longpath[OWNER_EXE_MAX - 1] = '\0';	/* exactly the limit: kept */
	assert_int_equal(msg_new_flow_from_pb(&b, &pb.m, err, sizeof(err)), 0);
	assert_int_equal(strlen(b.exe), OWNER_EXE_MAX - 1);
}

static void
new_flow_invalid_fields_are_refused(void **state)
{
	struct msg_new_flow a = { .flow_id = 1, .ipproto = IPPROTO_UDP }, b;
	struct msg_new_flow_pb pb;
	char err[128];

	(void)state;
	a.src = ep("10.0.0.2", 0);	/* a source port of 0 is allowed */
	a.dst = ep("10.0.0.1", 53);
	msg_new_flow_to_pb(&a, &pb);
	assert_int_equal(msg_new_flow_from_pb(&b, &pb.m, err, sizeof(err)), 0);

#define REFUSED(what) do {						\
		assert_int_equal(msg_new_flow_from_pb(&b, &pb.m, err,	\
		    sizeof(err)), -1);					\
		assert_non_null(strstr(err, what));			\
		assert_int_equal(b.flow_id, 0);				\
		msg_new_flow_to_pb(&a, &pb);				\
	} while (0)
	pb.m.transport = (Lc__Transport)7;
	REFUSED("neither TCP nor UDP");
	pb.m.dst = NULL;
	REFUSED("missing");
	pb.dst.port = 0;
	REFUSED("destination port 0");
	pb.dst.port = 70000;
	REFUSED("destination port 70000");
	pb.src.addr.len = 3;
	REFUSED("source address of 3 bytes");
	pb.dst.addr.len = 16;
	REFUSED("different address families");
	a.dst = ep("0.0.0.0", 53);
	msg_new_flow_to_pb(&a, &pb);
	REFUSED("unspecified");
	a.src = ep("::1", 5000);
	a.dst = ep("::", 53);
	msg_new_flow_to_pb(&a, &pb);
	REFUSED("unspecified");
#undef REFUSED
}

static void
flow_closed_round_trips_and_bounds_reason(void **state)
{
	static struct msg_flow_closed a = { .flow_id = 3, .bytes_from_app = 10,
	    .bytes_to_app = 20, .packets_from_app = 4, .packets_to_app = 5,
	    .retransmits = 1, .rtt_us = 250, .reason = "reset by the application" };
	struct msg_flow_closed b;
	Lc__FlowClosed pb, *back;
	char reason[MSG_REASON_MAX + 1];
	const char *why = NULL;

	(void)state;
	msg_flow_closed_to_pb(&a, &pb);
	back = wire(&pb.base);
	assert_int_equal(msg_flow_closed_from_pb(&b, back, &why), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	unwire(back);
	memset(reason, 'r', sizeof(reason) - 1);
	reason[sizeof(reason) - 1] = '\0';
	pb.reason = reason;
	assert_int_equal(msg_flow_closed_from_pb(&b, &pb, &why), -1);
	assert_non_null(strstr(why, "reason"));
	pb.reason = NULL;
	assert_int_equal(msg_flow_closed_from_pb(&b, &pb, &why), 0);
	assert_string_equal(b.reason, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(counters_refuse_what_would_be_cut),
		cmocka_unit_test(proxy_status_round_trips),
		cmocka_unit_test(ctl_request_round_trips_each_op),
		cmocka_unit_test(ctl_request_invalid_is_refused),
		cmocka_unit_test(ctl_reply_round_trips_each_answer),
		cmocka_unit_test(ctl_reply_invalid_is_refused),
		cmocka_unit_test(tun_handover_round_trips_and_checks_mtu),
		cmocka_unit_test(netstack_status_round_trips),
		cmocka_unit_test(owner_query_round_trips_and_checks_endpoints),
		cmocka_unit_test(owner_reply_round_trips_and_refuses_cut_owners),
		cmocka_unit_test(new_flow_round_trips),
		cmocka_unit_test(new_flow_exe_too_long_is_dropped),
		cmocka_unit_test(new_flow_invalid_fields_are_refused),
		cmocka_unit_test(flow_closed_round_trips_and_bounds_reason),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
