/*
 * libFuzzer harness for proxyd/resolver.c's untrusted-input paths.  Byte 0
 * selects:
 *   0  an answer datagram (byte 1: which name and type we asked; bit 7 asks
 *      with another id), matched and parsed by resolver_parse_answer
 *   1  a host name or literal from the rest (name check, literal parser,
 *      query builder, whose output must parse back to the same name)
 *   2  resolv.conf text, a NUL, hosts text: loaded, then looked up
 * Lookups are cancelled before the loop ever runs, so nothing is sent.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proxyd/dns.h"
#include "proxyd/resolver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = {
	"example.com", "www.github.com", "nonexistent.example.com",
	"cloudflare.com",
};

static void
answer(const uint8_t *data, size_t size)
{
	struct resolver_answer ans;
	const char *name;
	uint16_t qtype, id;
	enum resolver_answer_kind k;

	if (size < 1)
		return;
	name = names[(data[0] & 0x0f) % (sizeof(names) / sizeof(names[0]))];
	qtype = (data[0] & 0x10) ? DNS_T_AAAA : DNS_T_A;
	data++;
	size--;
	id = size >= 2 ? (uint16_t)(data[0] << 8 | data[1]) : 0;
	if (data[-1] & 0x80)
		id ^= 1;
	k = resolver_parse_answer(data, size, id, name, qtype, &ans);
	if (k != ans.kind || ans.ttl > 0x7fffffff)
		abort();
	if (k == RESOLVER_ANS_ADDRS) {
		if (ans.naddrs == 0 || ans.naddrs > RESOLVER_MAX_PER_FAMILY)
			abort();
		for (size_t i = 0; i < ans.naddrs; i++) {
			size_t alen = qtype == DNS_T_A ? 4 : 16;

			if (ans.addrs[i].family != (qtype == DNS_T_A ?
			    AF_INET : AF_INET6) || ans.addrs[i].port != 0)
				abort();
			/* every address came from the message */
			if (memmem(data, size, ans.addrs[i].addr, alen) == NULL)
				abort();
		}
	} else if (ans.naddrs != 0)
		abort();
	if ((k == RESOLVER_ANS_IGNORE || k == RESOLVER_ANS_MALFORMED) &&
	    ans.why == NULL)
		abort();
	if (k != RESOLVER_ANS_IGNORE && (size < 2 ||
	    id != (uint16_t)(data[0] << 8 | data[1])))
		abort();
}

static void
name(const uint8_t *data, size_t size)
{
	char in[320], out[RESOLVER_NAME_MAX + 1];
	uint8_t q[512];
	struct endpoint a;
	struct dns_msg m;
	size_t n;

	if (size >= sizeof(in))
		size = sizeof(in) - 1;
	memcpy(in, data, size);
	in[size] = '\0';
	if (resolver_parse_literal(in, &a)) {
		char s[INET6_ADDRSTRLEN];

		if ((a.family != AF_INET && a.family != AF_INET6) ||
		    inet_ntop(a.family, a.addr, s, sizeof(s)) == NULL)
			abort();
	}
	if (resolver_check_name(in, out) != NULL) {
		if (out[0] != '\0')
			abort();
		return;
	}
	if (strlen(out) > RESOLVER_NAME_MAX)
		abort();
	for (const char *p = out; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			abort();
	n = resolver_build_query(q, sizeof(q), 0x4242, out, DNS_T_A);
	if (n == 0)
		abort();
	if (dns_parse(q, n, &m) != DNS_OK || m.nquestions != 1 ||
	    strcmp(m.questions[0].name, out) != 0)
		abort();
	dns_msg_free(&m);
}

static void
ignore_cb(const struct resolver_result *res, void *arg)
{
	(void)res;
	(void)arg;
	abort();	/* the loop never runs */
}

static void
config(const uint8_t *data, size_t size)
{
	static struct ev_loop *loop;
	struct resolver_config cfg = { .timeout = 1, .attempts = 1,
	    .cache_entries = 4 };
	struct resolver_stats st;
	const uint8_t *nul = memchr(data, 0, size);
	size_t rlen = nul ? (size_t)(nul - data) : size;
	struct resolver *r;
	char err[128];

	if (loop == NULL && (loop = ev_loop_new(EVFLAG_AUTO)) == NULL)
		abort();
	if ((r = resolver_new(loop, &cfg)) == NULL)
		abort();
	if (resolver_load_text(r, (const char *)data, rlen,
	    nul ? (const char *)nul + 1 : "", nul ? size - rlen - 1 : 0,
	    err, sizeof(err)) == 0) {
		resolver_get_stats(r, &st);
		if (st.servers < 1 || st.servers > RESOLVER_MAX_SERVERS)
			abort();
		/* lookups decided now: hosts; the rest is cancelled unsent */
		for (size_t i = 0; i < 3; i++) {
			static const char *const q[] = {
				"myhost", "a.test", "localhost",
			};

			if (resolver_lookup(r, q[i], ignore_cb, NULL) == NULL)
				abort();
		}
	}
	resolver_free(r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;

	if (!init) {
		log_init("fuzz_resolver", 1, LOG_LEVEL_WARN - 1);
		init = 1;
	}
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		answer(data + 1, size - 1);
		break;
	case 1:
		name(data + 1, size - 1);
		break;
	default:
		config(data + 1, size - 1);
		break;
	}
	return 0;
}
