/*
 * common/owner.c: a flow owner and its endpoints survive the protobuf round
 * trip unchanged, a peer's oversized strings are cut (and said so), and an
 * endpoint is validated the one way redirectord and proxyd both use.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "owner.h"

static void
owner_round_trips_through_its_wire_form(void **state)
{
	struct owner a = { .pid = 4242, .uid = 1000, .gid = 100,
	    .cgroup_id = 77 }, b;
	Lc__Owner pb, *back;
	uint8_t buf[512];
	size_t n;

	(void)state;
	strcpy(a.process, "curl");
	strcpy(a.cgroup, "/user.slice/session-1.scope");
	owner_to_pb(&a, &pb);
	n = lc__owner__pack(&pb, buf);
	assert_non_null(back = lc__owner__unpack(NULL, n, buf));
	assert_int_equal(owner_from_pb(&b, back), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	lc__owner__free_unpacked(back, NULL);
	/* Nothing known: all zero, empty strings. */
	assert_int_equal(owner_from_pb(&b, NULL), 0);
	assert_int_equal(b.pid, 0);
	assert_string_equal(b.process, "");
}

static void
oversized_strings_are_cut_and_said_so(void **state)
{
	char name[300], cg[1000];
	Lc__Owner pb;
	struct owner o;

	(void)state;
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	memset(cg, 'c', sizeof(cg) - 1);
	cg[sizeof(cg) - 1] = '\0';
	lc__owner__init(&pb);
	pb.process = name;
	pb.cgroup = cg;
	assert_int_equal(owner_from_pb(&o, &pb), 1);
	assert_int_equal(strlen(o.process), OWNER_NAME_MAX - 1);
	assert_int_equal(strlen(o.cgroup), OWNER_CGROUP_MAX - 1);
	/* Exactly at the limit: whole. */
	name[OWNER_NAME_MAX - 1] = '\0';
	pb.cgroup = NULL;
	assert_int_equal(owner_from_pb(&o, &pb), 0);
	assert_string_equal(o.cgroup, "");
}

static void
endpoint_round_trips_and_is_validated(void **state)
{
	struct endpoint e = { .family = AF_INET6, .port = 443 }, d;
	Lc__Endpoint pb;
	uint8_t five[5] = { 0 };
	const char *why = NULL;

	(void)state;
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", e.addr), 1);
	endpoint_to_pb(&e, &pb);
	assert_int_equal(pb.addr.len, 16);
	assert_int_equal(endpoint_from_pb(&d, &pb, 0, &why), 0);
	assert_memory_equal(&e, &d, sizeof(e));

	e.family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, "192.0.2.1", e.addr), 1);
	memset(e.addr + 4, 0, 12);
	endpoint_to_pb(&e, &pb);
	assert_int_equal(pb.addr.len, 4);
	assert_int_equal(endpoint_from_pb(&d, &pb, 0, &why), 0);
	assert_memory_equal(&e, &d, sizeof(e));

	pb.port = 0;
	assert_int_equal(endpoint_from_pb(&d, &pb, 0, &why), ENDPOINT_BAD_PORT);
	assert_int_equal(endpoint_from_pb(&d, &pb, 1, &why), 0);
	pb.port = 65536;
	assert_int_equal(endpoint_from_pb(&d, &pb, 1, &why), ENDPOINT_BAD_PORT);
	assert_non_null(strstr(why, "65535"));
	pb.port = 1;
	pb.addr.data = five;
	pb.addr.len = 5;
	assert_int_equal(endpoint_from_pb(&d, &pb, 1, &why), ENDPOINT_BAD_ADDR);
	pb.addr.len = 0;
	assert_int_equal(endpoint_from_pb(&d, &pb, 1, &why), ENDPOINT_BAD_ADDR);
	assert_int_equal(endpoint_from_pb(&d, NULL, 1, &why), ENDPOINT_BAD_ADDR);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(owner_round_trips_through_its_wire_form),
		cmocka_unit_test(oversized_strings_are_cut_and_said_so),
		cmocka_unit_test(endpoint_round_trips_and_is_validated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
