/*
 * libFuzzer harness over common/msgcodec.c: the input is one message as a
 * peer would frame it, its lc.MsgType in the first byte and its protobuf
 * payload after.  It is unpacked with its permit-table row's descriptor,
 * checked with the row's validate, and decoded into its C form; what
 * decodes must encode and decode again to the same C form (the two halves
 * agree), and nothing may crash, leak or read out of bounds.  Seeds in
 * test/fuzz/corpus/msgcodec/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msgcodec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t wire_buf[1 << 20];

/* Pack m and unpack it again (the caller frees). */
static ProtobufCMessage *
rewire(const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);

	if (n > sizeof(wire_buf))
		abort();
	protobuf_c_message_pack(m, wire_buf);
	return protobuf_c_message_unpack(m->descriptor, NULL, n, wire_buf);
}

#define SAME(a, b)	do { if (memcmp(&(a), &(b), sizeof(a)) != 0) abort(); } while (0)

static void
decode(Lc__MsgType type, const ProtobufCMessage *m)
{
	static struct msg_netstack_status ns1, ns2;
	static struct msg_netstack_status_pb nspb;
	static struct msg_proxy_status ps1, ps2;
	static struct msg_proxy_status_pb pspb;
	const char *why;
	char err[128];
	ProtobufCMessage *back = NULL;

	switch (type) {
	case LC__MSG_TYPE__MSG_CTL_REQUEST: {
		struct msg_ctl_request a, b;
		struct msg_ctl_request_pb pb;

		if (msg_ctl_request_from_pb(&a, (const void *)m, &why) == 0) {
			msg_ctl_request_to_pb(&a, &pb);
			back = rewire(&pb.m.base);
			if (back == NULL ||
			    msg_ctl_request_from_pb(&b, (const void *)back, &why) != 0 ||
			    a.id != b.id || a.op != b.op || a.all != b.all ||
			    a.pid != b.pid || (a.spec && strcmp(a.spec, b.spec) != 0))
				abort();
		}
		break;
	}
	case LC__MSG_TYPE__MSG_CTL_REPLY: {
		struct msg_ctl_reply a, b;
		struct msg_ctl_reply_pb pb;

		if (msg_ctl_reply_from_pb(&a, (const void *)m, &why) == 0) {
			msg_ctl_reply_to_pb(&a, &pb);
			back = rewire(&pb.m.base);
			if (back == NULL ||
			    msg_ctl_reply_from_pb(&b, (const void *)back, &why) != 0 ||
			    a.id != b.id || a.answer != b.answer)
				abort();
		}
		break;
	}
	case LC__MSG_TYPE__MSG_TUN_HANDOVER: {
		struct msg_tun_handover a, b;
		Lc__TunHandover pb;

		if (msg_tun_handover_from_pb(&a, (const void *)m, &why) == 0) {
			msg_tun_handover_to_pb(&a, &pb);
			back = rewire(&pb.base);
			if (back == NULL ||
			    msg_tun_handover_from_pb(&b, (const void *)back, &why) != 0)
				abort();
			SAME(a, b);
		}
		break;
	}
	case LC__MSG_TYPE__MSG_NETSTACK_STATUS:
		if (msg_netstack_status_from_pb(&ns1, (const void *)m, &why) == 0) {
			msg_netstack_status_to_pb(&ns1, &nspb);
			back = rewire(&nspb.m.base);
			if (back == NULL || msg_netstack_status_from_pb(&ns2,
			    (const void *)back, &why) != 0)
				abort();
			SAME(ns1, ns2);
		}
		break;
	case LC__MSG_TYPE__MSG_OWNER_QUERY: {
		struct msg_owner_query a, b;
		struct msg_owner_query_pb pb;

		if (msg_owner_query_from_pb(&a, (const void *)m, &why) == 0) {
			msg_owner_query_to_pb(&a, &pb);
			back = rewire(&pb.m.base);
			if (back == NULL ||
			    msg_owner_query_from_pb(&b, (const void *)back, &why) != 0)
				abort();
			SAME(a, b);
		}
		break;
	}
	case LC__MSG_TYPE__MSG_OWNER_REPLY: {
		struct msg_owner_reply a, b;
		struct msg_owner_reply_pb pb;

		if (msg_owner_reply_from_pb(&a, (const void *)m, &why) == 0) {
			msg_owner_reply_to_pb(&a, &pb);
			back = rewire(&pb.m.base);
			if (back == NULL ||
			    msg_owner_reply_from_pb(&b, (const void *)back, &why) != 0)
				abort();
			SAME(a, b);
		}
		break;
	}
	case LC__MSG_TYPE__MSG_NEW_FLOW: {
		struct msg_new_flow a, b;
		struct msg_new_flow_pb pb;

		if (msg_new_flow_from_pb(&a, (const void *)m, err, sizeof(err)) == 0) {
			msg_new_flow_to_pb(&a, &pb);
			back = rewire(&pb.m.base);
			if (back == NULL || msg_new_flow_from_pb(&b, (const void *)back,
			    err, sizeof(err)) != 0)
				abort();
			SAME(a, b);
		}
		break;
	}
	case LC__MSG_TYPE__MSG_FLOW_CLOSED: {
		struct msg_flow_closed a, b;
		Lc__FlowClosed pb;

		if (msg_flow_closed_from_pb(&a, (const void *)m, &why) == 0) {
			msg_flow_closed_to_pb(&a, &pb);
			back = rewire(&pb.base);
			if (back == NULL ||
			    msg_flow_closed_from_pb(&b, (const void *)back, &why) != 0)
				abort();
			SAME(a, b);
		}
		break;
	}
	case LC__MSG_TYPE__MSG_PROXY_STATUS:
		if (msg_proxy_status_from_pb(&ps1, (const void *)m, &why) == 0) {
			msg_proxy_status_to_pb(&ps1, &pspb);
			back = rewire(&pspb.m.base);
			if (back == NULL || msg_proxy_status_from_pb(&ps2,
			    (const void *)back, &why) != 0)
				abort();
			SAME(ps1, ps2);
		}
		break;
	default:
		break;		/* the handshake's: ipc.c's own (fuzz_ipc) */
	}
	if (back)
		protobuf_c_message_free_unpacked(back, NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct msg_spec *spec;
	ProtobufCMessage *m;

	if (size < 1 || (spec = msg_lookup(data[0])) == NULL ||
	    size - 1 > spec->max_len)
		return 0;
	m = protobuf_c_message_unpack(spec->desc, NULL, size - 1, data + 1);
	if (m == NULL)
		return 0;
	/* The framing layer decodes only what its row's checks let through. */
	if (spec->validate == NULL || spec->validate(m) == NULL)
		decode(spec->type, m);
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}
