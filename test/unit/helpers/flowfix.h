/*
 * Fixtures for tests of the flow store and its readers: a flow record as
 * a flow source would hand it to proxyd, and a DNS query's bytes.  (Linked
 * into every unit test, as each test/unit/helpers/ file is.)
 */
#ifndef LOCALCAP_TEST_FLOWFIX_H
#define LOCALCAP_TEST_FLOWFIX_H

#include <stddef.h>
#include <stdint.h>

#include "proxyd/flow.h"

/*
 * rec: flow id, transport, owner process name (copied) and pid (uid 1000,
 * cgroup "/test"), from 10.0.0.2:(40000 + id) to dst:port, starting at
 * start (µs, CLOCK_REALTIME).
 */
void	flowfix_record(struct flow_record *rec, uint64_t id,
	    enum flow_transport t, const char *name, uint32_t pid,
	    const char *dst, uint16_t port, int64_t start);

/*
 * A DNS query for example.com A, id 0x1234, and its answer (one A record,
 * 93.184.216.34, TTL 3600).  Sized, so sizeof works on them.
 */
#define FLOWFIX_DNS_QUERY_LEN	29
#define FLOWFIX_DNS_ANSWER_LEN	45
extern const uint8_t	flowfix_dns_query[FLOWFIX_DNS_QUERY_LEN];
extern const size_t	flowfix_dns_query_len;
extern const uint8_t	flowfix_dns_answer[FLOWFIX_DNS_ANSWER_LEN];

#endif
