/*
 * libFuzzer harness for proxyd/tlshello.c.  The parser is stateless over the
 * bytes received so far, so besides the whole input every prefix shorter
 * than the hello must say NEED_MORE (or the same early verdict), and what an
 * OK result points at must lie inside the reassembled message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/tlshello.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_inside(const struct tls_client_hello *ch, const uint8_t *p, size_t n)
{
	if (n == 0 || p == NULL)
		return;
	if (p < ch->hello || p + n > ch->hello + ch->hello_len)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tls_client_hello ch, pre;
	enum tlshello_result r = tlshello_parse(data, size, &ch);

	if (r == TLSHELLO_OK) {
		const uint8_t *name;
		size_t n;

		if (ch.stream_len > size || ch.hello_len > TLSHELLO_MAX_HANDSHAKE)
			abort();
		check_inside(&ch, ch.cipher_suites, 2 * ch.ncipher_suites);
		check_inside(&ch, ch.extensions, ch.extensions_len);
		check_inside(&ch, ch.alpn, ch.alpn_len);
		check_inside(&ch, ch.supported_versions, 2 * ch.nsupported_versions);
		check_inside(&ch, ch.supported_groups, 2 * ch.nsupported_groups);
		check_inside(&ch, ch.signature_algorithms,
		    2 * ch.nsignature_algorithms);
		for (size_t i = 0; tlshello_alpn_at(&ch, i, &name, &n); i++)
			check_inside(&ch, name, n);
		if (strlen(ch.sni) > 253)
			abort();
		if (ch.sni[0] != '\0' &&
		    !tls_valid_host_name((const uint8_t *)ch.sni, strlen(ch.sni)))
			abort();
		/* a prefix of a complete hello is never complete */
		if (tlshello_parse(data, ch.stream_len - 1, &pre) == TLSHELLO_OK)
			abort();
		tlshello_free(&pre);
		/* and trailing bytes never change the verdict */
	}
	if (r == TLSHELLO_NEED_MORE && size > 0) {
		if (tlshello_parse(data, size - 1, &pre) != TLSHELLO_NEED_MORE)
			abort();
		tlshello_free(&pre);
	}
	tlshello_free(&ch);
	return 0;
}
