/*
 * What proxyd does with a UDP flow that opens like QUIC, I/O-free.
 *
 * proxyd cannot decrypt QUIC yet (docs/quic.md), so a QUIC connection
 * attempt must not pass unseen.  The relay hands the gate each datagram the
 * application sends (and tells it when the hold deadline passed); the gate
 * answers what to do with it:
 *
 *   --quic fallback (default): refuse the attempt so that the client falls
 *     back to TCP+TLS, which proxyd intercepts.  The refusal is a Version
 *     Negotiation packet listing only a reserved version (RFC 9000 §6,
 *     §15): every client abandons the attempt on it at once (measured,
 *     docs/quic.md).  The gate first holds the client's Initials until the
 *     ClientHello is whole (a big one spans two datagrams) or
 *     QGATE_HOLD_MS passed, so that the refusal is recorded with SNI and
 *     ALPN, and a host matching --ignore-hosts is let through instead.
 *   --quic pass: relay untouched, recorded as QUIC with SNI and ALPN.
 *
 * A flow whose first datagram is no QUIC client Initial is none of its
 * business (QGATE_NOT_QUIC).
 */
#ifndef LOCALCAP_PROXYD_QUICGATE_H
#define LOCALCAP_PROXYD_QUICGATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxyd/hostmatch.h"
#include "proxyd/quic.h"

enum quic_mode {
	QUIC_MODE_FALLBACK = 0,
	QUIC_MODE_PASS,
};

/* "fallback" / "pass"; -1 for anything else. */
int	 quic_mode_parse(const char *s, enum quic_mode *out);
const char *quic_mode_str(enum quic_mode);

#define QGATE_HOLD_MS		50	/* rest of a split ClientHello */
#define QGATE_HOLD_MAX		8	/* datagrams held at most */
#define QGATE_HOLD_MAX_BYTES	(32 * 1024)
/* The one version a refusal offers: reserved, no client speaks it. */
#define QGATE_REFUSAL_VERSION	0x5a6a7a8au

enum qgate_verdict {
	QGATE_NOT_QUIC,	/* relay it as any UDP flow; do not ask again */
	QGATE_FORWARD,	/* relay this datagram */
	QGATE_HOLD,	/* the gate keeps it: arm the QGATE_HOLD_MS deadline */
	QGATE_RELEASE,	/* relay every held datagram (this one is the last),
			 * then forward as they come */
	QGATE_REFUSE,	/* send qgate_reply() to the app, end the flow refused */
};

enum qgate_state {
	QGATE_S_START,
	QGATE_S_HOLDING,
	QGATE_S_PASSING,
	QGATE_S_REFUSED,
	QGATE_S_NOT_QUIC,
};

struct qgate {
	enum quic_mode		 mode;
	const struct hostmatch	*ignore;	/* borrowed; NULL: none */
	uint16_t		 dst_port;
	enum qgate_state	 state;
	struct quic_header	 first;		/* of the first datagram */
	struct quic_initial	 qi;
	enum quic_result	 parsed;	/* last verdict of qi */
	uint8_t			*held[QGATE_HOLD_MAX];
	size_t			 held_len[QGATE_HOLD_MAX];
	size_t			 nheld, held_bytes;
	char			 pass_reason[HOSTMATCH_MAX_PATTERN + 40];
	char			 alpn_offer[256];	/* "h3,h3-29" */
	char			 detail[128];	/* why refused, for a person */
};

void	 qgate_init(struct qgate *, enum quic_mode, const struct hostmatch *,
	    uint16_t dst_port);
void	 qgate_free(struct qgate *);
enum qgate_verdict qgate_datagram(struct qgate *, const uint8_t *dgram,
	    size_t len);
/* The hold deadline passed: QGATE_REFUSE (or QGATE_RELEASE). */
enum qgate_verdict qgate_deadline(struct qgate *);

/* Held datagrams, in arrival order, for QGATE_RELEASE; then drop them. */
size_t	 qgate_nheld(const struct qgate *);
const uint8_t *qgate_held(const struct qgate *, size_t i, size_t *len);
void	 qgate_drop_held(struct qgate *);

/* The refusal for the app (a Version Negotiation packet); its length. */
size_t	 qgate_reply(const struct qgate *, uint8_t *out, size_t cap);

bool	 qgate_is_quic(const struct qgate *);
/* The Initials were read to the end: the hello is whole or never will be. */
bool	 qgate_hello_final(const struct qgate *);
/* Once the hello is final: free what reading it took (the 16 KiB CRYPTO
 * reassembly buffer, its bitmap, the keys) for the rest of a passed flow;
 * what the recorder reads (SNI, ALPN, reasons) stays. */
void	 qgate_shed(struct qgate *);
/* "" when unknown (the hello was never whole). */
const char *qgate_sni(const struct qgate *);
const char *qgate_alpn_offer(const struct qgate *);
/* NULL unless passed: "--quic pass", "matches --ignore-hosts 'x'". */
const char *qgate_pass_reason(const struct qgate *);
/* NULL unless refused: one line on the refusal. */
const char *qgate_detail(const struct qgate *);
/* The client's QUIC version as text ("v1", "v2", "draft-29", "unknown"). */
const char *qgate_version_str(const struct qgate *);

#endif
