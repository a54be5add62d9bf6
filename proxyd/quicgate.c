/*
 * The QUIC gate: refuse (or pass) a UDP flow that opens like QUIC, and say
 * what its Initials revealed.  See quicgate.h for the contract.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/quicgate.h"

int
quic_mode_parse(const char *s, enum quic_mode *out)
{
	if (strcmp(s, "fallback") == 0)
		*out = QUIC_MODE_FALLBACK;
	else if (strcmp(s, "pass") == 0)
		*out = QUIC_MODE_PASS;
	else
		return -1;
	return 0;
}

const char *
quic_mode_str(enum quic_mode m)
{
	return m == QUIC_MODE_PASS ? "pass" : "fallback";
}

void
qgate_init(struct qgate *g, enum quic_mode mode, const struct hostmatch *ignore,
    uint16_t dst_port)
{
	memset(g, 0, sizeof(*g));
	g->mode = mode;
	g->ignore = ignore;
	g->dst_port = dst_port;
	g->state = QGATE_S_START;
	g->parsed = QUIC_NEED_MORE;
	quic_initial_init(&g->qi);
}

void
qgate_drop_held(struct qgate *g)
{
	for (size_t i = 0; i < g->nheld; i++)
		free(g->held[i]);
	g->nheld = 0;
	g->held_bytes = 0;
}

void
qgate_free(struct qgate *g)
{
	qgate_drop_held(g);
	quic_initial_free(&g->qi);
}

void
qgate_shed(struct qgate *g)
{
	if (qgate_hello_final(g))
		quic_initial_shed(&g->qi);
}

static void
feed(struct qgate *g, const uint8_t *d, size_t len)
{
	if (g->parsed == QUIC_OK || g->parsed == QUIC_MALFORMED)
		return;
	g->parsed = quic_initial_feed(&g->qi, d, len);
	if (g->parsed == QUIC_OK) {
		const uint8_t *name;
		size_t n, o = 0;

		for (size_t i = 0; tlshello_alpn_at(&g->qi.hello, i, &name, &n);
		    i++) {
			if (o + n + 2 > sizeof(g->alpn_offer))
				break;
			if (o > 0)
				g->alpn_offer[o++] = ',';
			/* names are opaque bytes: keep the printable ones */
			for (size_t k = 0; k < n; k++)
				g->alpn_offer[o++] = name[k] >= 0x20 &&
				    name[k] < 0x7f && name[k] != ',' ?
				    (char)name[k] : '?';
		}
		g->alpn_offer[o] = '\0';
	}
}

static enum qgate_verdict
refuse(struct qgate *g, const char *why)
{
	g->state = QGATE_S_REFUSED;
	qgate_drop_held(g);
	snprintf(g->detail, sizeof(g->detail),
	    "QUIC %s refused with Version Negotiation (%s)",
	    qgate_version_str(g), why);
	return QGATE_REFUSE;
}

static bool
hold(struct qgate *g, const uint8_t *d, size_t len)
{
	uint8_t *copy;

	if (g->nheld >= QGATE_HOLD_MAX ||
	    len > QGATE_HOLD_MAX_BYTES - g->held_bytes ||
	    (copy = malloc(len > 0 ? len : 1)) == NULL)
		return false;
	memcpy(copy, d, len);
	g->held[g->nheld] = copy;
	g->held_len[g->nheld++] = len;
	g->held_bytes += len;
	return true;
}

/* Fallback mode, datagram d held: pass, refuse or keep waiting. */
static enum qgate_verdict
decide(struct qgate *g)
{
	const char *pat;

	switch (g->parsed) {
	case QUIC_OK:
		pat = g->qi.hello.sni[0] != '\0' ? hostmatch_find(g->ignore,
		    g->qi.hello.sni, g->dst_port) : NULL;
		if (pat != NULL) {
			g->state = QGATE_S_PASSING;
			snprintf(g->pass_reason, sizeof(g->pass_reason),
			    "matches --ignore-hosts '%s'", pat);
			return QGATE_RELEASE;
		}
		return refuse(g, "--quic fallback");
	case QUIC_NEED_MORE:
		g->state = QGATE_S_HOLDING;
		return QGATE_HOLD;
	case QUIC_MALFORMED:
		return refuse(g, quic_error_str(g->qi.error));
	case QUIC_NOT_QUIC:
	default:
		return refuse(g, "a version proxyd cannot read");
	}
}

enum qgate_verdict
qgate_datagram(struct qgate *g, const uint8_t *d, size_t len)
{
	switch (g->state) {
	case QGATE_S_NOT_QUIC:
		return QGATE_NOT_QUIC;
	case QGATE_S_REFUSED:
		feed(g, d, len);	/* late parts of the hello: the SNI */
		return QGATE_REFUSE;
	case QGATE_S_PASSING:
		feed(g, d, len);
		return QGATE_FORWARD;
	case QGATE_S_START:
		if (!quic_looks_like_client_initial(d, len)) {
			g->state = QGATE_S_NOT_QUIC;
			return QGATE_NOT_QUIC;
		}
		(void)quic_peek(d, len, &g->first);
		feed(g, d, len);
		if (g->mode == QUIC_MODE_PASS) {
			g->state = QGATE_S_PASSING;
			snprintf(g->pass_reason, sizeof(g->pass_reason),
			    "--quic pass");
			return QGATE_FORWARD;
		}
		break;
	case QGATE_S_HOLDING:
		feed(g, d, len);
		break;
	}
	if (!hold(g, d, len))
		return refuse(g, "too much held before the ClientHello was whole");
	return decide(g);
}

enum qgate_verdict
qgate_deadline(struct qgate *g)
{
	if (g->state != QGATE_S_HOLDING)
		return g->state == QGATE_S_REFUSED ? QGATE_REFUSE :
		    QGATE_FORWARD;
	return refuse(g, "ClientHello not whole in time");
}

size_t
qgate_nheld(const struct qgate *g)
{
	return g->nheld;
}

const uint8_t *
qgate_held(const struct qgate *g, size_t i, size_t *len)
{
	if (i >= g->nheld)
		return NULL;
	*len = g->held_len[i];
	return g->held[i];
}

size_t
qgate_reply(const struct qgate *g, uint8_t *out, size_t cap)
{
	static const uint32_t v[] = { QGATE_REFUSAL_VERSION };

	/* 0x40: the fixed bit, so demultiplexers see QUIC (RFC 9443) */
	return quic_build_version_negotiation(g->first.dcid, g->first.dcid_len,
	    g->first.scid, g->first.scid_len, v, 1, 0x40, out, cap);
}

bool
qgate_is_quic(const struct qgate *g)
{
	return g->state != QGATE_S_START && g->state != QGATE_S_NOT_QUIC;
}

bool
qgate_hello_final(const struct qgate *g)
{
	return g->parsed == QUIC_OK || g->parsed == QUIC_MALFORMED;
}

const char *
qgate_sni(const struct qgate *g)
{
	return g->parsed == QUIC_OK ? g->qi.hello.sni : "";
}

const char *
qgate_alpn_offer(const struct qgate *g)
{
	return g->alpn_offer;
}

const char *
qgate_pass_reason(const struct qgate *g)
{
	return g->state == QGATE_S_PASSING ? g->pass_reason : NULL;
}

const char *
qgate_detail(const struct qgate *g)
{
	return g->state == QGATE_S_REFUSED ? g->detail : NULL;
}

const char *
qgate_version_str(const struct qgate *g)
{
	return quic_version_str(g->first.version);
}
