/*
 * libFuzzer harness for proxyd/quic.c.  The input is a flow's client
 * datagrams, each prefixed by its 16-bit big-endian length (a short last
 * prefix takes the rest).  Every datagram goes through quic_peek() and
 * quic_looks_like_client_initial(), then quic_initial_feed(); verdicts must
 * be sticky once final, and an OK hello must point inside itself and carry
 * a valid SNI.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/quic.h"
#include "proxyd/quicgate.h"

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
	struct quic_initial qi;
	struct quic_header h;
	enum quic_result r, final = QUIC_NEED_MORE;
	size_t off = 0;

	static const uint8_t dcid[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	bool plaintext = size > 0 && data[0] == 0xf1;
	unsigned pn = 0;

	struct qgate gates[2];
	bool refused[2] = { false, false };

	qgate_init(&gates[0], QUIC_MODE_FALLBACK, NULL, 443);
	qgate_init(&gates[1], QUIC_MODE_PASS, NULL, 443);
	quic_initial_init(&qi);
	if (plaintext)
		off = 1;
	while (off < size) {
		size_t n;
		uint8_t *dg;

		if (size - off >= 2) {
			n = (size_t)data[off] << 8 | data[off + 1];
			off += 2;
			if (n > size - off)
				n = size - off;
		} else {
			n = size - off;
		}
		/* an exact-size copy so ASan sees any over-read */
		if ((dg = malloc(n ? n : 1)) == NULL)
			abort();
		memcpy(dg, data + off, n);
		off += n;
		if (plaintext) {
			struct quic_initial_spec spec = {
				/* the sixth switches version */
				.version = pn == 5 ? QUIC_VERSION_2 :
				    QUIC_VERSION_1,
				.pn = pn,
				.key_dcid = dcid, .key_dcid_len = sizeof(dcid),
				.dcid = dcid, .dcid_len = sizeof(dcid),
				.pn_len = 2, .pad_to = 1200,
			};
			uint8_t *pkt = malloc(n + 1300);

			if (pkt == NULL)
				abort();
			pn++;
			n = quic_build_initial(&spec, dg, n, pkt, n + 1300);
			free(dg);
			dg = pkt;
			if (n == 0) {
				free(dg);
				continue;
			}
		}
		if (quic_peek(dg, n, &h) == QUIC_OK &&
		    (h.dcid_len > 255 || h.scid_len > 255))
			abort();
		(void)quic_looks_like_client_initial(dg, n);
		r = quic_initial_feed(&qi, dg, n);
		for (int k = 0; k < 2; k++) {
			enum qgate_verdict v = qgate_datagram(&gates[k], dg, n);
			uint8_t reply[600];

			if (refused[k] && v != QGATE_REFUSE)
				abort();
			if (v == QGATE_REFUSE) {
				refused[k] = true;
				if (qgate_reply(&gates[k], reply, sizeof(reply)) == 0 ||
				    qgate_nheld(&gates[k]) != 0 ||
				    qgate_detail(&gates[k]) == NULL)
					abort();
			}
			if (v != QGATE_HOLD && v != QGATE_RELEASE &&
			    qgate_nheld(&gates[k]) != 0)
				abort();
			if (qgate_nheld(&gates[k]) > QGATE_HOLD_MAX ||
			    (k == 1 && v != QGATE_FORWARD && v != QGATE_NOT_QUIC))
				abort();
			if (v == QGATE_RELEASE)
				qgate_drop_held(&gates[k]);
		}
		free(dg);
		if ((final == QUIC_OK || final == QUIC_MALFORMED) && r != final)
			abort();
		if (r == QUIC_OK || r == QUIC_MALFORMED)
			final = r;
		if (r == QUIC_MALFORMED &&
		    (qi.error == QUIC_ERR_NONE || qi.error >= QUIC_ERR__COUNT))
			abort();
	}
	if (final == QUIC_OK) {
		const struct tls_client_hello *ch = &qi.hello;
		const uint8_t *name;
		size_t n;

		if (ch->hello == NULL || ch->hello_len > QUIC_MAX_CRYPTO ||
		    qi.dcid_len > QUIC_MAX_CID || qi.npackets == 0 ||
		    !quic_version_known(qi.version))
			abort();
		check_inside(ch, ch->cipher_suites, 2 * ch->ncipher_suites);
		check_inside(ch, ch->extensions, ch->extensions_len);
		check_inside(ch, ch->alpn, ch->alpn_len);
		for (size_t i = 0; tlshello_alpn_at(ch, i, &name, &n); i++)
			check_inside(ch, name, n);
		if (ch->sni[0] != '\0' &&
		    !tls_valid_host_name((const uint8_t *)ch->sni,
		    strlen(ch->sni)))
			abort();
	}
	if (qgate_deadline(&gates[0]) == QGATE_HOLD)
		abort();
	qgate_free(&gates[0]);
	qgate_free(&gates[1]);
	quic_initial_free(&qi);
	return 0;
}
