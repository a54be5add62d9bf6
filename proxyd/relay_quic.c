/*
 * QUIC on a UDP flow (docs/quic.md): the app's datagrams go through the
 * QUIC gate (quicgate.c) until it knows what the flow is; the gate's
 * verdicts become socket actions here — forward, hold (with a deadline),
 * release what was held, or refuse with a Version Negotiation and end the
 * flow.  What the Initials revealed reaches the store through recorder.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "proxyd/quicgate.h"
#include "proxyd/relay.h"
#include "proxyd/relay_int.h"

/* Datagram towards a side; a side that cannot take it loses it. */
static void
udp_out(struct rflow *f, struct side *out, const void *d, size_t n)
{
	struct relay *r = f->relay;

	if (send(out->fd, d, n, MSG_DONTWAIT | MSG_NOSIGNAL) == -1) {
		f->rec.dgrams_dropped++;
		r->stats.dgrams_dropped++;
		if (errno != EAGAIN && errno != ENOBUFS && errno != EMSGSIZE &&
		    errno != ECONNREFUSED)
			f->rec.error = errno;
	}
}

/* One line per QUIC attempt: "QUIC v1 refused ...", "QUIC v1 passed (...)". */
static void
log_verdict(struct rflow *f)
{
	char dst[64], what[HOSTMATCH_MAX_PATTERN + 80];
	const char *sni = qgate_sni(f->quic);

	snprintf(f->rec.tls_sni, sizeof(f->rec.tls_sni), "%s", sni);
	if (qgate_detail(f->quic) != NULL)
		snprintf(what, sizeof(what), "%s", qgate_detail(f->quic));
	else
		snprintf(what, sizeof(what), "QUIC %s passed (%s)",
		    qgate_version_str(f->quic), qgate_pass_reason(f->quic) ?
		    qgate_pass_reason(f->quic) : "?");
	log_info("flow %llu -> %s (%s pid %u): %s%s%s",
	    (unsigned long long)f->rec.id,
	    flow_addr_str(&f->rec.meta.dst, dst, sizeof(dst)),
	    f->rec.meta.owner.process[0] ? f->rec.meta.owner.process : "?",
	    f->rec.meta.owner.pid, what, sni[0] ? ", SNI " : "", sni);
}

/* Refuse: the Version Negotiation to the app, then the flow ends. */
static void
refuse(struct rflow *f)
{
	uint8_t vn[7 + 2 * 255 + 4];
	size_t n = qgate_reply(f->quic, vn, sizeof(vn));

	if (n > 0) {
		udp_out(f, &f->app, vn, n);
		f->rec.dgrams_to_app++;
		f->rec.bytes_to_app += n;
		f->relay->stats.bytes_to_app += n;
		if (f->rec.first_to_app_len == 0)
			flow_keep_first(f->rec.first_to_app,
			    &f->rec.first_to_app_len, vn, n);
	}
	f->relay->stats.quic_refused++;
	log_verdict(f);
	rflow_end(f, FLOW_END_REFUSED, 0);
}

static void
release(struct rflow *f)
{
	const uint8_t *d;
	size_t n;

	for (size_t i = 0; (d = qgate_held(f->quic, i, &n)) != NULL; i++)
		udp_out(f, &f->up, d, n);
	qgate_drop_held(f->quic);
}

static void
hold_expired(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct rflow *f = w->data;

	(void)loop;
	(void)revents;
	switch (qgate_deadline(f->quic)) {
	case QGATE_REFUSE:
		refuse(f);
		break;
	case QGATE_RELEASE:
		f->quic_done = 1;
		f->relay->stats.quic_passed++;
		log_verdict(f);
		release(f);
		break;
	default:
		break;
	}
}

int
rflow_quic_datagram(struct rflow *f, const uint8_t *d, size_t n)
{
	struct relay *r = f->relay;
	enum qgate_verdict v;

	if (f->quic_done)
		return 0;
	if (f->quic == NULL) {
		const char *pat;

		/* DNS is DNS; everything else may open like QUIC. */
		if (f->rec.meta.dst.port == 53) {
			f->quic_done = 1;
			return 0;
		}
		/* --ignore-hosts by address: not looked into, as for TCP */
		if ((pat = rflow_ignore_match(f)) != NULL) {
			f->ignored = 1;
			snprintf(f->pass_reason, sizeof(f->pass_reason),
			    "matches --ignore-hosts '%s'", pat);
			f->quic_done = 1;
			return 0;
		}
		if ((f->quic = malloc(sizeof(*f->quic))) == NULL) {
			f->quic_done = 1;
			return 0;
		}
		qgate_init(f->quic, r->cfg.quic, r->cfg.ignore,
		    f->rec.meta.dst.port);
		ev_timer_init(&f->quic_hold, hold_expired,
		    QGATE_HOLD_MS / 1000.0, 0);
		f->quic_hold.data = f;
	}
	v = qgate_datagram(f->quic, d, n);
	if (qgate_is_quic(f->quic))
		f->rec.protocol = "quic";
	switch (v) {
	case QGATE_NOT_QUIC:
		rflow_quic_free(f);
		f->quic_done = 1;
		return 0;
	case QGATE_FORWARD:
		/* passed: once the hello is read, nothing more to look at */
		if (qgate_hello_final(f->quic)) {
			f->quic_done = 1;
			r->stats.quic_passed++;
			log_verdict(f);
			qgate_shed(f->quic);
		}
		return 0;
	case QGATE_HOLD:
		if (!ev_is_active(&f->quic_hold))
			ev_timer_start(r->loop, &f->quic_hold);
		return 1;
	case QGATE_RELEASE:
		ev_timer_stop(r->loop, &f->quic_hold);
		f->quic_done = 1;
		r->stats.quic_passed++;
		log_verdict(f);
		release(f);
		qgate_shed(f->quic);
		return 1;
	case QGATE_REFUSE:
	default:
		ev_timer_stop(r->loop, &f->quic_hold);
		refuse(f);
		return -1;
	}
}

void
rflow_quic_free(struct rflow *f)
{
	if (f->quic == NULL)
		return;
	ev_timer_stop(f->relay->loop, &f->quic_hold);
	qgate_free(f->quic);
	free(f->quic);
	f->quic = NULL;
}
