/* A flow's owner and endpoints, and their protobuf forms (owner.h). */
#include "owner.h"

#include <string.h>

static int
copy_bounded(char *dst, size_t cap, const char *src)
{
	size_t n = src ? strlen(src) : 0;
	int cut = n >= cap;

	if (cut)
		n = cap - 1;
	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
	return cut;
}

void
owner_to_pb(const struct owner *o, Lc__Owner *pb)
{
	lc__owner__init(pb);
	pb->pid = o->pid;
	pb->uid = o->uid;
	pb->gid = o->gid;
	pb->cgroup_id = o->cgroup_id;
	pb->process = (char *)(uintptr_t)o->process;
	pb->cgroup = (char *)(uintptr_t)o->cgroup;
}

int
owner_from_pb(struct owner *o, const Lc__Owner *pb)
{
	int cut;

	memset(o, 0, sizeof(*o));
	if (pb == NULL)
		return 0;
	o->pid = pb->pid;
	o->uid = pb->uid;
	o->gid = pb->gid;
	o->cgroup_id = pb->cgroup_id;
	cut = copy_bounded(o->process, sizeof(o->process), pb->process);
	cut |= copy_bounded(o->cgroup, sizeof(o->cgroup), pb->cgroup);
	return cut;
}

void
endpoint_to_pb(const struct endpoint *e, Lc__Endpoint *pb)
{
	lc__endpoint__init(pb);
	pb->addr.data = (uint8_t *)(uintptr_t)e->addr;
	pb->addr.len = e->family == AF_INET ? 4 : 16;
	pb->port = e->port;
}

int
endpoint_from_pb(struct endpoint *e, const Lc__Endpoint *pb, int port_zero_ok,
    const char **why)
{
	memset(e, 0, sizeof(*e));
	if (pb == NULL) {
		*why = "missing";
		return ENDPOINT_BAD_ADDR;
	}
	if (pb->addr.len == 4)
		e->family = AF_INET;
	else if (pb->addr.len == 16)
		e->family = AF_INET6;
	else {
		*why = "an address of neither 4 nor 16 bytes";
		return ENDPOINT_BAD_ADDR;
	}
	if (pb->port > 65535 || (pb->port == 0 && !port_zero_ok)) {
		*why = pb->port ? "a port over 65535" : "port 0";
		return ENDPOINT_BAD_PORT;
	}
	memcpy(e->addr, pb->addr.data, pb->addr.len);
	e->port = (uint16_t)pb->port;
	return 0;
}
