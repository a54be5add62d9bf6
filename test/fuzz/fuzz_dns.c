/*
 * libFuzzer harness for proxyd/dns.c.  Byte 0 selects UDP (one message) or
 * TCP (a stream of length-prefixed messages).  Everything a successful parse
 * hands out is read back (names, rdata, formatted text) so that ASan sees
 * any pointer outside the message or the arena.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink;

static void
touch(const char *s)
{
	if (s != NULL)
		sink += strlen(s);
}

static void
one(const uint8_t *msg, size_t len)
{
	struct dns_msg m;
	char text[512];

	if (dns_parse(msg, len, &m) == DNS_OK) {
		if (m.nquestions > m.qdcount || m.nrrs > DNS_MAX_STORED_RRS)
			abort();
		for (size_t i = 0; i < m.nquestions; i++)
			touch(m.questions[i].name);
		for (size_t i = 0; i < m.nrrs; i++) {
			const struct dns_rr *rr = &m.rrs[i];

			touch(rr->name);
			if (strlen(rr->name) >= DNS_NAME_TEXT_MAX)
				abort();
			if (rr->rdlength > 0 && (rr->rdata < msg ||
			    rr->rdata + rr->rdlength > msg + len))
				abort();
			touch(dns_rr_format(rr, text, sizeof(text)));
		}
	}
	dns_msg_free(&m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *msg;
	size_t mlen, used;
	enum dns_error err;

	if (size < 1)
		return 0;
	if ((data[0] & 1) == 0) {
		one(data + 1, size - 1);
		return 0;
	}
	data++;
	size--;
	while (dns_tcp_frame(data, size, &msg, &mlen, &used, &err) == 1) {
		if (used > size || mlen + 2 != used)
			abort();
		one(msg, mlen);
		data += used;
		size -= used;
	}
	return 0;
}
