/*
 * Each message's encode and decode, side by side (msgcodec.h).  Ordered as
 * proto/ declares the channels: control, data, flow.
 */
#include "msgcodec.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* A peer's string into a bounded array: -1 ("" kept) if it would not fit whole. */
static int
copy_whole(char *dst, size_t cap, const char *src)
{
	if ((size_t)snprintf(dst, cap, "%s", src ? src : "") < cap)
		return 0;
	dst[0] = '\0';
	return -1;
}

static Lc__Transport
transport_to_pb(uint8_t ipproto)
{
	return ipproto == IPPROTO_UDP ? LC__TRANSPORT__TRANSPORT_UDP :
	    LC__TRANSPORT__TRANSPORT_TCP;
}

/* 0 for a transport that is neither. */
static uint8_t
transport_from_pb(Lc__Transport t)
{
	return t == LC__TRANSPORT__TRANSPORT_TCP ? IPPROTO_TCP :
	    t == LC__TRANSPORT__TRANSPORT_UDP ? IPPROTO_UDP : 0;
}

/* --- counters -------------------------------------------------------------------- */

int
msg_counters_add(struct msg_counters *cs, const char *name, uint64_t value)
{
	if (cs->n >= LC_STATUS_COUNTERS_MAX || name == NULL || name[0] == '\0' ||
	    copy_whole(cs->name[cs->n], LC_COUNTER_NAME_MAX, name) == -1)
		return -1;
	cs->value[cs->n++] = value;
	return 0;
}

Lc__Counter **
msg_counters_to_pb(const struct msg_counters *cs, struct msg_counters_pb *pb)
{
	size_t i;

	for (i = 0; i < cs->n; i++) {
		lc__counter__init(&pb->c[i]);
		pb->c[i].name = (char *)(uintptr_t)cs->name[i];
		pb->c[i].value = cs->value[i];
		pb->p[i] = &pb->c[i];
	}
	return pb->p;
}

int
msg_counters_from_pb(struct msg_counters *cs, Lc__Counter *const *c, size_t n,
    const char **why)
{
	size_t i;

	cs->n = 0;
	if ((*why = msg_check_counters(c, n)) != NULL)
		return -1;
	for (i = 0; i < n; i++)
		if (msg_counters_add(cs, c[i]->name, c[i]->value) == -1) {
			*why = "a counter name is empty or too long";
			return -1;
		}
	return 0;
}

/* --- control plane: CtlRequest ----------------------------------------------------- */

void
msg_ctl_request_to_pb(const struct msg_ctl_request *r, struct msg_ctl_request_pb *pb)
{
	lc__ctl_request__init(&pb->m);
	pb->m.request_id = r->id;
	switch (r->op) {
	case MSG_CTL_STATUS:
		lc__status_request__init(&pb->status);
		pb->m.request_case = LC__CTL_REQUEST__REQUEST_STATUS;
		pb->m.status = &pb->status;
		break;
	case MSG_CTL_ATTACH:
		lc__attach_request__init(&pb->attach);
		pb->attach.spec = (char *)(uintptr_t)(r->spec ? r->spec : "");
		pb->m.request_case = LC__CTL_REQUEST__REQUEST_ATTACH;
		pb->m.attach = &pb->attach;
		break;
	case MSG_CTL_DETACH:
		lc__detach_request__init(&pb->detach);
		pb->detach.spec = (char *)(uintptr_t)(r->spec ? r->spec : "");
		pb->detach.all = r->all;
		pb->m.request_case = LC__CTL_REQUEST__REQUEST_DETACH;
		pb->m.detach = &pb->detach;
		break;
	case MSG_CTL_RUN:
		lc__run_request__init(&pb->run);
		pb->run.pid = r->pid;
		pb->m.request_case = LC__CTL_REQUEST__REQUEST_RUN;
		pb->m.run = &pb->run;
		break;
	}
}

int
msg_ctl_request_from_pb(struct msg_ctl_request *r, const Lc__CtlRequest *pb,
    const char **why)
{
	memset(r, 0, sizeof(*r));
	r->id = pb->request_id;
	switch (pb->request_case) {
	case LC__CTL_REQUEST__REQUEST_STATUS:
		r->op = MSG_CTL_STATUS;
		return 0;
	case LC__CTL_REQUEST__REQUEST_ATTACH:
		r->op = MSG_CTL_ATTACH;
		r->spec = pb->attach->spec ? pb->attach->spec : "";
		return 0;
	case LC__CTL_REQUEST__REQUEST_DETACH:
		r->op = MSG_CTL_DETACH;
		r->spec = pb->detach->spec ? pb->detach->spec : "";
		r->all = pb->detach->all;
		return 0;
	case LC__CTL_REQUEST__REQUEST_RUN:
		r->op = MSG_CTL_RUN;
		r->pid = pb->run->pid;
		if (r->pid > INT32_MAX) {
			*why = "a pid out of range";
			return -1;
		}
		return 0;
	default:
		*why = "unknown or empty request";
		return -1;
	}
}

/* --- control plane: CtlReply --------------------------------------------------------- */

void
msg_ctl_reply_to_pb(const struct msg_ctl_reply *r, struct msg_ctl_reply_pb *pb)
{
	lc__ctl_reply__init(&pb->m);
	pb->m.request_id = r->id;
	switch (r->answer) {
	case MSG_CTL_ERROR:
		lc__error__init(&pb->error);
		pb->error.code = r->code;
		pb->error.message = (char *)(uintptr_t)(r->message ? r->message : "");
		pb->error.offset = r->offset;
		pb->m.reply_case = LC__CTL_REPLY__REPLY_ERROR;
		pb->m.error = &pb->error;
		break;
	case MSG_CTL_STATUS_REPLY:
		pb->m.reply_case = LC__CTL_REPLY__REPLY_STATUS;
		pb->m.status = (Lc__StatusReply *)(uintptr_t)r->status;
		break;
	case MSG_CTL_SPEC:
		lc__spec_reply__init(&pb->spec);
		pb->spec.spec = (char *)(uintptr_t)(r->spec ? r->spec : "");
		pb->spec.runs = r->runs;
		pb->m.reply_case = LC__CTL_REPLY__REPLY_SPEC;
		pb->m.spec = &pb->spec;
		break;
	case MSG_CTL_RUN_REPLY:
		lc__run_reply__init(&pb->run);
		pb->run.cgroup = (char *)(uintptr_t)(r->cgroup ? r->cgroup : "");
		pb->m.reply_case = LC__CTL_REPLY__REPLY_RUN;
		pb->m.run = &pb->run;
		break;
	}
}

int
msg_ctl_reply_from_pb(struct msg_ctl_reply *r, const Lc__CtlReply *pb,
    const char **why)
{
	memset(r, 0, sizeof(*r));
	r->id = pb->request_id;
	switch (pb->reply_case) {
	case LC__CTL_REPLY__REPLY_ERROR:
		r->answer = MSG_CTL_ERROR;
		r->code = pb->error->code;
		r->message = pb->error->message ? pb->error->message : "";
		r->offset = pb->error->offset;
		return 0;
	case LC__CTL_REPLY__REPLY_STATUS:
		if ((*why = msg_status_reply_check(pb->status)) != NULL)
			return -1;
		r->answer = MSG_CTL_STATUS_REPLY;
		r->status = pb->status;
		return 0;
	case LC__CTL_REPLY__REPLY_SPEC:
		r->answer = MSG_CTL_SPEC;
		r->spec = pb->spec->spec ? pb->spec->spec : "";
		r->runs = pb->spec->runs;
		return 0;
	case LC__CTL_REPLY__REPLY_RUN:
		r->answer = MSG_CTL_RUN_REPLY;
		r->cgroup = pb->run->cgroup ? pb->run->cgroup : "";
		return 0;
	default:
		*why = "an empty or unknown reply";
		return -1;
	}
}

/* --- data plane: TunHandover --------------------------------------------------------- */

void
msg_tun_handover_to_pb(const struct msg_tun_handover *t, Lc__TunHandover *pb)
{
	lc__tun_handover__init(pb);
	pb->ifname = (char *)(uintptr_t)t->ifname;
	pb->ifindex = t->ifindex;
	pb->mtu = t->mtu;
}

int
msg_tun_handover_from_pb(struct msg_tun_handover *t, const Lc__TunHandover *pb,
    const char **why)
{
	memset(t, 0, sizeof(*t));
	if (copy_whole(t->ifname, sizeof(t->ifname), pb->ifname) == -1) {
		*why = "an interface name too long";
		return -1;
	}
	if (pb->mtu < MSG_TUN_MTU_MIN || pb->mtu > MSG_TUN_MTU_MAX) {
		*why = "an MTU outside 1280..65535";
		return -1;
	}
	t->ifindex = pb->ifindex;
	t->mtu = pb->mtu;
	return 0;
}

/* --- data plane: NetstackStatus ------------------------------------------------------ */

void
msg_netstack_status_to_pb(const struct msg_netstack_status *s,
    struct msg_netstack_status_pb *pb)
{
	lc__netstack_status__init(&pb->m);
	pb->m.n_counters = s->counters.n;
	pb->m.counters = msg_counters_to_pb(&s->counters, &pb->counters);
	if (!s->proxyd_connected)
		return;
	pb->m.proxyd_connected = 1;
	pb->m.proxyd_pid = s->proxyd_pid;
	pb->m.proxyd_version = (char *)(uintptr_t)s->proxyd_version;
	pb->m.proxyd_flows_active = s->proxyd_flows_active;
	pb->m.n_proxyd_counters = s->proxyd_counters.n;
	pb->m.proxyd_counters = msg_counters_to_pb(&s->proxyd_counters,
	    &pb->proxyd_counters);
}

int
msg_netstack_status_from_pb(struct msg_netstack_status *s,
    const Lc__NetstackStatus *pb, const char **why)
{
	memset(s, 0, sizeof(*s));
	if (msg_counters_from_pb(&s->counters, pb->counters, pb->n_counters,
	    why) == -1)
		return -1;
	if (!pb->proxyd_connected)
		return 0;	/* the rest describes a proxyd that is not there */
	if (copy_whole(s->proxyd_version, sizeof(s->proxyd_version),
	    pb->proxyd_version) == -1) {
		*why = "software version string too long";
		return -1;
	}
	if (msg_counters_from_pb(&s->proxyd_counters, pb->proxyd_counters,
	    pb->n_proxyd_counters, why) == -1)
		return -1;
	s->proxyd_connected = 1;
	s->proxyd_pid = pb->proxyd_pid;
	s->proxyd_flows_active = pb->proxyd_flows_active;
	return 0;
}

/* --- data plane: OwnerQuery, OwnerReply ---------------------------------------------- */

void
msg_owner_query_to_pb(const struct msg_owner_query *q, struct msg_owner_query_pb *pb)
{
	lc__owner_query__init(&pb->m);
	endpoint_to_pb(&q->src, &pb->src);
	endpoint_to_pb(&q->dst, &pb->dst);
	pb->m.query_id = q->id;
	pb->m.transport = transport_to_pb(q->ipproto);
	pb->m.src = &pb->src;
	pb->m.dst = &pb->dst;
}

int
msg_owner_query_from_pb(struct msg_owner_query *q, const Lc__OwnerQuery *pb,
    const char **why)
{
	memset(q, 0, sizeof(*q));
	q->id = pb->query_id;
	if ((q->ipproto = transport_from_pb(pb->transport)) == 0) {
		*why = "a transport neither TCP nor UDP";
		return -1;
	}
	if (endpoint_from_pb(&q->src, pb->src, 1, why) != 0 ||
	    endpoint_from_pb(&q->dst, pb->dst, 1, why) != 0)
		return -1;
	if (q->src.family != q->dst.family) {
		*why = "endpoints of different address families";
		return -1;
	}
	return 0;
}

void
msg_owner_reply_to_pb(const struct msg_owner_reply *r, struct msg_owner_reply_pb *pb)
{
	lc__owner_reply__init(&pb->m);
	pb->m.query_id = r->id;
	if (r->found) {
		pb->m.found = 1;
		owner_to_pb(&r->owner, &pb->owner);
		pb->m.owner = &pb->owner;
	}
}

int
msg_owner_reply_from_pb(struct msg_owner_reply *r, const Lc__OwnerReply *pb,
    const char **why)
{
	memset(r, 0, sizeof(*r));
	r->id = pb->query_id;
	if (!pb->found)
		return 0;
	if (pb->owner == NULL) {
		*why = "found, but no owner";
		return -1;
	}
	if (owner_from_pb(&r->owner, pb->owner) != 0) {
		memset(&r->owner, 0, sizeof(r->owner));
		*why = "an owner's process name or cgroup too long";
		return -1;
	}
	r->found = 1;
	return 0;
}

/* --- flow plane: NewFlow --------------------------------------------------------------- */

void
msg_new_flow_to_pb(const struct msg_new_flow *f, struct msg_new_flow_pb *pb)
{
	lc__new_flow__init(&pb->m);
	endpoint_to_pb(&f->src, &pb->src);
	endpoint_to_pb(&f->dst, &pb->dst);
	owner_to_pb(&f->owner, &pb->owner);
	pb->m.flow_id = f->flow_id;
	pb->m.transport = transport_to_pb(f->ipproto);
	pb->m.src = &pb->src;
	pb->m.dst = &pb->dst;
	pb->m.owner = &pb->owner;
	pb->m.start_time_us = f->start_us;
	pb->owner.exe = (char *)(uintptr_t)f->exe;
}

static int
addr_unspecified(const struct endpoint *e)
{
	static const uint8_t zero[16];

	return memcmp(e->addr, zero, e->family == AF_INET ? 4 : 16) == 0;
}

#define REFUSE(...)	do {						\
		snprintf(err, errlen, __VA_ARGS__);			\
		goto bad;						\
	} while (0)

int
msg_new_flow_from_pb(struct msg_new_flow *f, const Lc__NewFlow *pb, char *err,
    size_t errlen)
{
	const char *why;

	memset(f, 0, sizeof(*f));
	if ((f->ipproto = transport_from_pb(pb->transport)) == 0)
		REFUSE("transport %d is neither TCP nor UDP", (int)pb->transport);
	if (pb->src == NULL || pb->dst == NULL)
		REFUSE("source or destination missing");
	switch (endpoint_from_pb(&f->src, pb->src, 1, &why)) {
	case ENDPOINT_BAD_ADDR:
		REFUSE("source address of %zu bytes", pb->src->addr.len);
	case ENDPOINT_BAD_PORT:
		REFUSE("source port %u", pb->src->port);
	}
	switch (endpoint_from_pb(&f->dst, pb->dst, 0, &why)) {
	case ENDPOINT_BAD_ADDR:
		REFUSE("destination address of %zu bytes", pb->dst->addr.len);
	case ENDPOINT_BAD_PORT:
		REFUSE("destination port %u", pb->dst->port);
	}
	if (f->src.family != f->dst.family)
		REFUSE("source and destination of different address families");
	/* connect() to 0.0.0.0 or :: reaches this host: never what was meant. */
	if (addr_unspecified(&f->dst))
		REFUSE("unspecified destination address");
	f->flow_id = pb->flow_id;
	f->start_us = pb->start_time_us;
	/* Bounded by the struct: a name or path longer than it is cut. */
	(void)owner_from_pb(&f->owner, pb->owner);
	/* The executable's path whole or not at all: a cut path names
	 * another file. */
	if (pb->owner != NULL)
		(void)copy_whole(f->exe, sizeof(f->exe), pb->owner->exe);
	return 0;
bad:
	memset(f, 0, sizeof(*f));
	return -1;
}

#undef REFUSE

/* --- flow plane: FlowClosed, ProxyStatus ------------------------------------------------ */

void
msg_flow_closed_to_pb(const struct msg_flow_closed *c, Lc__FlowClosed *pb)
{
	lc__flow_closed__init(pb);
	pb->flow_id = c->flow_id;
	pb->bytes_from_app = c->bytes_from_app;
	pb->bytes_to_app = c->bytes_to_app;
	pb->packets_from_app = c->packets_from_app;
	pb->packets_to_app = c->packets_to_app;
	pb->retransmits = c->retransmits;
	pb->rtt_us = c->rtt_us;
	pb->reason = (char *)(uintptr_t)c->reason;
}

int
msg_flow_closed_from_pb(struct msg_flow_closed *c, const Lc__FlowClosed *pb,
    const char **why)
{
	memset(c, 0, sizeof(*c));
	if (copy_whole(c->reason, sizeof(c->reason), pb->reason) == -1) {
		*why = "a reason too long";
		return -1;
	}
	c->flow_id = pb->flow_id;
	c->bytes_from_app = pb->bytes_from_app;
	c->bytes_to_app = pb->bytes_to_app;
	c->packets_from_app = pb->packets_from_app;
	c->packets_to_app = pb->packets_to_app;
	c->retransmits = pb->retransmits;
	c->rtt_us = pb->rtt_us;
	return 0;
}

void
msg_proxy_status_to_pb(const struct msg_proxy_status *s,
    struct msg_proxy_status_pb *pb)
{
	lc__proxy_status__init(&pb->m);
	pb->m.flows_active = s->flows_active;
	pb->m.n_counters = s->counters.n;
	pb->m.counters = msg_counters_to_pb(&s->counters, &pb->counters);
}

int
msg_proxy_status_from_pb(struct msg_proxy_status *s, const Lc__ProxyStatus *pb,
    const char **why)
{
	memset(s, 0, sizeof(*s));
	if (msg_counters_from_pb(&s->counters, pb->counters, pb->n_counters,
	    why) == -1)
		return -1;
	s->flows_active = pb->flows_active;
	return 0;
}
