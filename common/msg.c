/*
 * Which message may travel where, from whom, how large.  One row per
 * lc.MsgType (proto/common.proto); keep both in step (test_ipc checks).  A
 * type missing here is refused on every channel.
 *
 * Size limits are the largest a correct peer can produce with room to spare,
 * so that a peer writing garbage is stopped at the frame header, before its
 * payload is buffered: a spec or a path is bounded by PATH_MAX-sized parts,
 * a status by LC_STATUS_COUNTERS_MAX counters.  Only a status reply to
 * localcapctl (every daemon's counters plus the spec) may reach the framing
 * layer's own limit.
 */
#include "msg.h"

#include <string.h>

#include "ipc.h"
#include "common.pb-c.h"
#include "control.pb-c.h"
#include "data.pb-c.h"
#include "flow.pb-c.h"

#define ALL_CHANNELS	(IPC_CHAN_CTL | IPC_CHAN_DATA | IPC_CHAN_FLOW)
#define KiB		1024u

static const char *
check_counters(Lc__Counter *const *c, size_t n, size_t max)
{
	size_t i;

	if (n > max)
		return "more counters than a status may carry";
	for (i = 0; i < n; i++)
		if (c[i]->name == NULL || c[i]->name[0] == '\0' ||
		    strlen(c[i]->name) >= LC_COUNTER_NAME_MAX)
			return "a counter name is empty or too long";
	return NULL;
}

const char *
msg_check_counters(Lc__Counter *const *c, size_t n)
{
	return check_counters(c, n, LC_STATUS_COUNTERS_MAX);
}

static const char *
check_version(const char *v)
{
	if (v != NULL && strlen(v) >= LC_SOFTWARE_VERSION_MAX)
		return "software version string too long";
	return NULL;
}

static const char *
validate_hello(const ProtobufCMessage *m)
{
	return check_version(((const Lc__Hello *)(const void *)m)->software_version);
}

static const char *
validate_hello_reply(const ProtobufCMessage *m)
{
	return check_version(
	    ((const Lc__HelloReply *)(const void *)m)->software_version);
}

static const char *
validate_netstack_status(const ProtobufCMessage *m)
{
	const Lc__NetstackStatus *st = (const Lc__NetstackStatus *)(const void *)m;
	const char *why;

	if ((why = msg_check_counters(st->counters, st->n_counters)) != NULL ||
	    (why = msg_check_counters(st->proxyd_counters, st->n_proxyd_counters)) != NULL)
		return why;
	return check_version(st->proxyd_version);
}

static const char *
validate_proxy_status(const ProtobufCMessage *m)
{
	const Lc__ProxyStatus *ps = (const Lc__ProxyStatus *)(const void *)m;

	return msg_check_counters(ps->counters, ps->n_counters);
}

const char *
msg_status_reply_check(const Lc__StatusReply *st)
{
	size_t i;
	const char *why;

	if (st == NULL)
		return "a status reply without its status";
	if (st->n_daemons > LC_STATUS_DAEMONS_MAX)
		return "more daemons than a status may carry";
	for (i = 0; i < st->n_daemons; i++) {
		if (st->daemons[i]->name == NULL || st->daemons[i]->name[0] == '\0')
			return "a daemon without a name";
		if ((why = check_version(st->daemons[i]->software_version)) != NULL)
			return why;
		if ((why = check_counters(st->daemons[i]->counters,
		    st->daemons[i]->n_counters, LC_STATUS_ROW_COUNTERS_MAX)) != NULL)
			return why;
	}
	return NULL;
}

static const char *
validate_ctl_request(const ProtobufCMessage *m)
{
	const Lc__CtlRequest *r = (const Lc__CtlRequest *)(const void *)m;

	return r->request_case == LC__CTL_REQUEST__REQUEST__NOT_SET ?
	    "a request without a request" : NULL;
}

static const char *
validate_ctl_reply(const ProtobufCMessage *m)
{
	const Lc__CtlReply *r = (const Lc__CtlReply *)(const void *)m;

	if (r->reply_case == LC__CTL_REPLY__REPLY__NOT_SET)
		return "a reply without an answer";
	return r->reply_case == LC__CTL_REPLY__REPLY_STATUS ?
	    msg_status_reply_check(r->status) : NULL;
}

static const struct msg_spec msg_table[] = {
	/* Handshake: roles are judged against the socket's accept_roles. */
	{ LC__MSG_TYPE__MSG_HELLO, "Hello", &lc__hello__descriptor,
	    ALL_CHANNELS, MSG_ROLES_ANY, 256, 0, validate_hello, 0 },
	{ LC__MSG_TYPE__MSG_HELLO_REPLY, "HelloReply", &lc__hello_reply__descriptor,
	    ALL_CHANNELS, MSG_ROLES_ANY, 256, 0, validate_hello_reply, 0 },
	{ LC__MSG_TYPE__MSG_ERROR, "Error", &lc__error__descriptor,
	    ALL_CHANNELS, MSG_ROLES_ANY, 4 * KiB, 0, NULL, 0 },

	/* ctl.sock: localcapctl (and webd, as localcapctl) <-> redirectord. */
	{ LC__MSG_TYPE__MSG_CTL_REQUEST, "CtlRequest", &lc__ctl_request__descriptor,
	    IPC_CHAN_CTL, MSG_ROLE(CTL), 64 * KiB, 0, validate_ctl_request, 0 },
	{ LC__MSG_TYPE__MSG_CTL_REPLY, "CtlReply", &lc__ctl_reply__descriptor,
	    IPC_CHAN_CTL, MSG_ROLE(REDIRECTORD), IPC_MAX_PAYLOAD, 0,
	    validate_ctl_reply, 0 },

	/* data.sock: redirectord <-> netstackd. */
	{ LC__MSG_TYPE__MSG_TUN_HANDOVER, "TunHandover", &lc__tun_handover__descriptor,
	    IPC_CHAN_DATA, MSG_ROLE(REDIRECTORD), 256, 1, NULL, 0 },
	{ LC__MSG_TYPE__MSG_NETSTACK_STATUS, "NetstackStatus",
	    &lc__netstack_status__descriptor,
	    IPC_CHAN_DATA, MSG_ROLE(NETSTACKD), 16 * KiB, 0,
	    validate_netstack_status, 0 },
	{ LC__MSG_TYPE__MSG_OWNER_QUERY, "OwnerQuery", &lc__owner_query__descriptor,
	    IPC_CHAN_DATA, MSG_ROLE(NETSTACKD), 256, 0, NULL, 0 },
	{ LC__MSG_TYPE__MSG_OWNER_REPLY, "OwnerReply", &lc__owner_reply__descriptor,
	    IPC_CHAN_DATA, MSG_ROLE(REDIRECTORD), 8 * KiB, 0, NULL, 0 },

	/* flow.sock: a flow source (netstackd, the macOS backend) <-> proxyd. */
	{ LC__MSG_TYPE__MSG_NEW_FLOW, "NewFlow", &lc__new_flow__descriptor,
	    IPC_CHAN_FLOW, MSG_ROLE(NETSTACKD) | MSG_ROLE(REDIRECTORD), 8 * KiB, 1,
	    NULL, 0 },
	/*
	 * FlowClosed: the source's end of a flow, to proxyd; and proxyd's
	 * reset marker where AF_UNIX has no MSG_OOB (reason "reset", to the
	 * macOS extension, which says redirectord: docs/proxyd-relay.md).
	 * netstackd gets its resets out of band and is never sent one.
	 */
	{ LC__MSG_TYPE__MSG_FLOW_CLOSED, "FlowClosed", &lc__flow_closed__descriptor,
	    IPC_CHAN_FLOW,
	    MSG_ROLE(NETSTACKD) | MSG_ROLE(REDIRECTORD) | MSG_ROLE(PROXYD),
	    1 * KiB, 0, NULL, MSG_ROLE(PROXYD) | MSG_ROLE(REDIRECTORD) },
	{ LC__MSG_TYPE__MSG_PROXY_STATUS, "ProxyStatus", &lc__proxy_status__descriptor,
	    IPC_CHAN_FLOW, MSG_ROLE(PROXYD), 8 * KiB, 0, validate_proxy_status, 0 },
};

const struct msg_spec *
msg_lookup(unsigned type)
{
	size_t i;

	for (i = 0; i < sizeof(msg_table) / sizeof(msg_table[0]); i++)
		if ((unsigned)msg_table[i].type == type)
			return &msg_table[i];
	return NULL;
}

int
msg_role_may_send(const struct msg_spec *spec, Lc__Role role)
{
	return role > 0 && role < 32 && (spec->senders & (1u << role)) != 0;
}

int
msg_may_travel(const struct msg_spec *spec, Lc__Role from, Lc__Role to)
{
	if (!msg_role_may_send(spec, from))
		return 0;
	if (spec->receivers == 0)
		return 1;
	return to > 0 && to < 32 && (spec->receivers & (1u << to)) != 0;
}
