/* Flow store fixtures (flowfix.h). */
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include "flowfix.h"

void
flowfix_record(struct flow_record *rec, uint64_t id, enum flow_transport t,
    const char *name, uint32_t pid, const char *dst, uint16_t port,
    int64_t start)
{
	memset(rec, 0, sizeof(*rec));
	rec->id = id;
	rec->meta.transport = t;
	rec->meta.src.family = AF_INET;
	inet_pton(AF_INET, "10.0.0.2", rec->meta.src.addr);
	rec->meta.src.port = (uint16_t)(40000 + id);
	rec->meta.dst.family = AF_INET;
	inet_pton(AF_INET, dst, rec->meta.dst.addr);
	rec->meta.dst.port = port;
	rec->meta.owner.pid = pid;
	rec->meta.owner.uid = 1000;
	snprintf(rec->meta.owner.process, sizeof(rec->meta.owner.process), "%s", name);
	snprintf(rec->meta.owner.cgroup, sizeof(rec->meta.owner.cgroup), "/test");
	rec->meta.start_us = (uint64_t)start;
}

const uint8_t flowfix_dns_query[FLOWFIX_DNS_QUERY_LEN] = {
	0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0,
	0x00, 0x01, 0x00, 0x01,
};
const size_t flowfix_dns_query_len = sizeof(flowfix_dns_query);

const uint8_t flowfix_dns_answer[FLOWFIX_DNS_ANSWER_LEN] = {
	0x12, 0x34, 0x81, 0x80, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
	7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0,
	0x00, 0x01, 0x00, 0x01,
	0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x0e, 0x10, 0x00, 0x04,
	93, 184, 216, 34,
};
