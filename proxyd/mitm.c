/*
 * The TLS man-in-the-middle engine, one flow's half of it (see mitm.h for
 * the contract, docs/proxyd-mitm.md for the reasoning, mitm_int.h for how
 * the engine is spread over its files).
 *
 * Ciphertext passes through two bounded linear buffers per leg, filled and
 * drained by the caller and allocated only while they hold bytes; the BIO
 * callbacks only copy.  Plaintext goes through mbedTLS's read and write,
 * one record at a time, so the caller's flow control holds end to end.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/error.h>
#include <mbedtls/ssl.h>

#include "proxyd/certforge.h"
#include "proxyd/mitm.h"
#include "proxyd/mitm_int.h"

const char *
mitm_error_str(enum mitm_error e)
{
	switch (e) {
	case MITM_ERR_NONE:			return "none";
	case MITM_ERR_CLIENT_HELLO:		return "bad client hello";
	case MITM_ERR_CLIENT_REJECTED:		return "client rejected our certificate";
	case MITM_ERR_CLIENT_HANDSHAKE:		return "client handshake failed";
	case MITM_ERR_CLIENT_CLOSED:		return "client closed during handshake";
	case MITM_ERR_UPSTREAM_CONNECT:		return "upstream unreachable";
	case MITM_ERR_UPSTREAM_HANDSHAKE:	return "upstream handshake failed";
	case MITM_ERR_UPSTREAM_CERT:		return "upstream certificate not trusted";
	case MITM_ERR_FORGE:			return "certificate forging failed";
	case MITM_ERR_PROTOCOL:			return "TLS protocol error";
	case MITM_ERR_INTERNAL:			return "internal error";
	}
	return "unknown";
}

uint64_t
mitm_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* --- buffers and BIO ------------------------------------------------------- */

size_t
mitm_buf_len(const struct mitm_buf *b)
{
	return b->tail - b->head;
}

void
mitm_buf_compact(struct mitm_buf *b)
{
	if (b->head == b->tail) {
		b->head = b->tail = 0;
	} else if (b->head > 0) {
		memmove(b->data, b->data + b->head, b->tail - b->head);
		b->tail -= b->head;
		b->head = 0;
	}
}

/*
 * A buffer's memory exists only while it holds bytes (or the caller is about
 * to fill it): an idle keep-alive flow holds none of the ~100 KiB.
 */
static bool
buf_ensure(struct mitm_buf *b)
{
	if (b->data == NULL)
		b->data = malloc(b->cap);
	return b->data != NULL;
}

static void
buf_release_if_empty(struct mitm_buf *b)
{
	if (b->head == b->tail) {
		free(b->data);
		b->data = NULL;
		b->head = b->tail = 0;
	}
}

static size_t
buf_space(struct mitm_buf *b)
{
	if (b->head == b->tail || b->tail == b->cap)
		mitm_buf_compact(b);
	return b->cap - b->tail;
}

int
mitm_bio_send(void *p, const unsigned char *buf, size_t len)
{
	struct mitm_leg *leg = p;
	struct mitm_buf *b = &leg->out;
	size_t n;

	if (b->cap - b->tail < len)
		mitm_buf_compact(b);
	n = b->cap - b->tail;
	if (n == 0)
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	if (!buf_ensure(b))
		return MBEDTLS_ERR_SSL_ALLOC_FAILED;
	if (n > len)
		n = len;
	memcpy(b->data + b->tail, buf, n);
	b->tail += n;
	if (!leg->hs_done)
		leg->hs_bytes_out += n;
	return (int)n;
}

/* Follows record boundaries over bytes handed to mbedTLS (see plain_alert). */
static void
sniff_records(struct mitm_leg *leg, const unsigned char *p, size_t len)
{
	while (len > 0) {
		if (leg->rec_hdr_have < 5) {
			leg->rec_hdr[leg->rec_hdr_have++] = *p++;
			len--;
			if (leg->rec_hdr_have == 5) {
				leg->rec_body_left = (size_t)leg->rec_hdr[3] << 8 | leg->rec_hdr[4];
				leg->rec_is_alert = leg->rec_hdr[0] == MBEDTLS_SSL_MSG_ALERT &&
				    leg->rec_body_left == 2;
				leg->rec_alert_have = 0;
				if (leg->rec_body_left == 0)
					leg->rec_hdr_have = 0;
			}
			continue;
		}
		size_t take = len < leg->rec_body_left ? len : leg->rec_body_left;

		for (size_t i = 0; leg->rec_is_alert && i < take && leg->rec_alert_have < 2; i++)
			leg->rec_alert[leg->rec_alert_have++] = p[i];
		p += take;
		len -= take;
		leg->rec_body_left -= take;
		if (leg->rec_body_left == 0) {
			if (leg->rec_is_alert && leg->rec_alert_have == 2 &&
			    leg->rec_alert[0] == MBEDTLS_SSL_ALERT_LEVEL_FATAL)
				leg->plain_alert = leg->rec_alert[1];
			leg->rec_hdr_have = 0;
		}
	}
}

int
mitm_bio_recv(void *p, unsigned char *buf, size_t len)
{
	struct mitm_leg *leg = p;
	struct mitm_buf *b = &leg->in;
	size_t n = mitm_buf_len(b);

	if (n == 0) {
		if (leg->eof)
			return 0;
		leg->starved = true;
		return MBEDTLS_ERR_SSL_WANT_READ;
	}
	if (n > len)
		n = len;
	memcpy(buf, b->data + b->head, n);
	b->head += n;
	buf_release_if_empty(b);
	if (!leg->hs_done) {
		leg->hs_bytes_in += n;
		sniff_records(leg, buf, n);
	}
	return (int)n;
}

/* --- per-flow lifecycle ---------------------------------------------------- */

size_t
mitm_buffer_bytes(void)
{
	return 2 * (MITM_IN_CAP + MITM_OUT_CAP);	/* at most, all four full */
}

size_t
mitm_held_bytes(const struct mitm *m)
{
	size_t n = 0;

	for (int s = 0; s < 2; s++) {
		if (m->leg[s].in.data != NULL)
			n += m->leg[s].in.cap;
		if (m->leg[s].out.data != NULL)
			n += m->leg[s].out.cap;
	}
	return n;
}

struct mitm *
mitm_new(struct mitm_ctx *ctx, const unsigned char *dst_ip, size_t dst_ip_len,
    uint16_t dst_port)
{
	struct mitm *m;

	if (dst_ip_len != 4 && dst_ip_len != 16)
		return NULL;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	for (int s = 0; s < 2; s++) {
		m->leg[s].in.cap = MITM_IN_CAP;		/* allocated on first use */
		m->leg[s].out.cap = MITM_OUT_CAP;
	}
	m->ctx = ctx;
	memcpy(m->dst_ip, dst_ip, dst_ip_len);
	m->dst_ip_len = dst_ip_len;
	m->dst_port = dst_port;
	m->st = ST_HELLO;
	m->leg[MITM_CLIENT].plain_alert = m->leg[MITM_UPSTREAM].plain_alert = -1;
	return m;
}

void
mitm_set_host_hint(struct mitm *m, const char *host)
{
	snprintf(m->host_hint, sizeof(m->host_hint), "%s", host ? host : "");
}

const char *
mitm_server_name(const struct mitm *m)
{
	return m->info.sni[0] != '\0' ? m->info.sni : m->host_hint;
}

void
mitm_free(struct mitm *m)
{
	if (m == NULL)
		return;
	for (int s = 0; s < 2; s++) {
		if (m->leg[s].setup) {
			mbedtls_ssl_free(&m->leg[s].ssl);
			mbedtls_ssl_config_free(&m->leg[s].conf);
		}
	}
	if (m->fc != NULL)
		forged_cert_release(m->fc);
	if (m->ctx->current == m)
		m->ctx->current = NULL;
	for (int s = 0; s < 2; s++) {
		free(m->leg[s].in.data);
		free(m->leg[s].out.data);
	}
	free(m->cached_der);
	free(m->info.upstream_der);
	free(m);
}

const struct mitm_info *
mitm_get_info(const struct mitm *m)
{
	return &m->info;
}

size_t
mitm_in_space(struct mitm *m, enum mitm_side side, unsigned char **p)
{
	struct mitm_leg *leg = &m->leg[side];
	size_t n;

	*p = NULL;
	if (leg->eof || m->st == ST_FAILED)
		return 0;
	n = buf_space(&leg->in);
	if (n == 0)
		return 0;
	if (!buf_ensure(&leg->in)) {
		mitm_fail(m, MITM_ERR_INTERNAL, "out of memory");
		return 0;
	}
	*p = leg->in.data + leg->in.tail;
	return n;
}

void
mitm_in_commit(struct mitm *m, enum mitm_side side, size_t n)
{
	struct mitm_leg *leg = &m->leg[side];

	if (leg->in.data == NULL)
		n = 0;				/* caller bug: no mitm_in_space */
	if (n > leg->in.cap - leg->in.tail)
		n = leg->in.cap - leg->in.tail;	/* caller bug; never overrun */
	leg->in.tail += n;
	if (n > 0)
		leg->fresh = true;
	else
		buf_release_if_empty(&leg->in);	/* the read found nothing */
}

size_t
mitm_feed(struct mitm *m, enum mitm_side side, const void *buf, size_t len)
{
	unsigned char *p;
	size_t n = mitm_in_space(m, side, &p);

	if (n > len)
		n = len;
	if (n > 0) {
		memcpy(p, buf, n);
		mitm_in_commit(m, side, n);
	}
	return n;
}

void
mitm_in_eof(struct mitm *m, enum mitm_side side)
{
	m->leg[side].eof = true;
	m->leg[side].fresh = true;
	buf_release_if_empty(&m->leg[side].in);
}

const unsigned char *
mitm_out_peek(const struct mitm *m, enum mitm_side side, size_t *len)
{
	const struct mitm_buf *b = &m->leg[side].out;

	*len = mitm_buf_len(b);
	return b->data != NULL ? b->data + b->head : (const unsigned char *)"";
}

void
mitm_out_consume(struct mitm *m, enum mitm_side side, size_t n)
{
	struct mitm_buf *b = &m->leg[side].out;

	if (n > mitm_buf_len(b))
		n = mitm_buf_len(b);
	b->head += n;
	buf_release_if_empty(b);
}

void
mitm_fail(struct mitm *m, enum mitm_error e, const char *fmt, ...)
{
	va_list ap;

	m->info.error = e;
	va_start(ap, fmt);
	vsnprintf(m->info.reason, sizeof(m->info.reason), fmt, ap);
	va_end(ap);
	m->st = ST_FAILED;
	m->leg[MITM_CLIENT].dead = true;
	m->leg[MITM_UPSTREAM].dead = true;
}

void
mitm_upstream_fail(struct mitm *m, enum mitm_error e, const char *fmt, ...)
{
	va_list ap;

	if (m->upstream_failed)
		return;
	m->upstream_failed = true;
	m->leg[MITM_UPSTREAM].dead = true;
	m->info.error = e;
	va_start(ap, fmt);
	vsnprintf(m->info.reason, sizeof(m->info.reason), fmt, ap);
	va_end(ap);
}

void
mitm_upstream_failed(struct mitm *m, const char *reason)
{
	if (m->st == ST_FAILED)
		return;
	if (m->st == ST_ESTABLISHED) {
		m->leg[MITM_UPSTREAM].dead = true;
		if (m->info.error == MITM_ERR_NONE) {
			m->info.error = MITM_ERR_UPSTREAM_CONNECT;
			snprintf(m->info.reason, sizeof(m->info.reason), "%s", reason);
		}
		return;
	}
	mitm_upstream_fail(m, MITM_ERR_UPSTREAM_CONNECT, "%s", reason);
}

static bool
leg_usable(const struct mitm *m, enum mitm_side side)
{
	if (m->leg[side].dead)
		return false;
	if (m->st == ST_ESTABLISHED)
		return true;
	return m->st == ST_UPSTREAM_FAILED && side == MITM_CLIENT;
}

unsigned
mitm_wants(const struct mitm *m)
{
	unsigned w = 0;

	for (int s = 0; s < 2; s++) {
		const struct mitm_leg *leg = &m->leg[s];
		bool reading;

		if (mitm_buf_len(&leg->out) > 0)
			w |= MITM_WANT_WRITE(s);
		switch (m->st) {
		case ST_HELLO:
			reading = s == MITM_CLIENT;
			break;
		case ST_UPSTREAM_HS:
		case ST_CLIENT_HS:
			reading = !leg->dead;
			break;
		case ST_ESTABLISHED:
		case ST_UPSTREAM_FAILED:
			reading = leg_usable(m, s) && !leg->read_eof;
			break;
		default:
			reading = false;
		}
		if (reading && !leg->eof &&
		    (leg->in.tail < leg->in.cap || leg->in.head > 0))
			w |= MITM_WANT_READ(s);
		if (leg_usable(m, s) && !leg->read_eof &&
		    (leg->fresh || mbedtls_ssl_get_bytes_avail(&leg->ssl) > 0))
			w |= MITM_READABLE(s);
	}
	return w;
}

/* --- plaintext ------------------------------------------------------------- */

static ssize_t
leg_error(struct mitm *m, enum mitm_side side, int ret)
{
	char ebuf[128];
	int a = ret == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE ? mitm_peer_alert(&m->leg[side].ssl) : -1;

	m->leg[side].dead = true;
	if (m->info.error == MITM_ERR_NONE) {
		m->info.error = MITM_ERR_PROTOCOL;
		if (a >= 0)
			snprintf(m->info.reason, sizeof(m->info.reason), "%s sent alert %d (%s)",
			    side == MITM_CLIENT ? "client" : "upstream", a, mitm_alert_name(a));
		else {
			(void)tls_strerror(ret, ebuf, sizeof(ebuf));
			snprintf(m->info.reason, sizeof(m->info.reason), "%s: %s",
			    side == MITM_CLIENT ? "client" : "upstream", ebuf);
		}
	}
	return MITM_ERROR;
}

ssize_t
mitm_read(struct mitm *m, enum mitm_side side, void *buf, size_t len)
{
	struct mitm_leg *leg = &m->leg[side];
	int ret;

	if (!leg_usable(m, side))
		return m->st == ST_HELLO || m->st == ST_UPSTREAM_HS || m->st == ST_CLIENT_HS ?
		    MITM_AGAIN : MITM_ERROR;
	if (leg->read_eof)
		return 0;
	if (len > INT32_MAX)
		len = INT32_MAX;
	for (int spins = 0;; spins++) {
		leg->starved = false;
		ret = mbedtls_ssl_read(&leg->ssl, buf, len);
		if (ret == MBEDTLS_ERR_SSL_WANT_READ && !leg->starved && spins < 64)
			continue;
		if (ret > 0)
			return ret;
		if (ret == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {
			mitm_session_save(m);
			continue;
		}
		if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
			leg->fresh = false;
			return MITM_AGAIN;
		}
		if (ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
			if (side == MITM_CLIENT)
				m->info.client_close_notify = true;
			else
				m->info.upstream_close_notify = true;
			leg->read_eof = true;
			return 0;
		}
		if (ret == 0 || ret == MBEDTLS_ERR_SSL_CONN_EOF) {
			/* EOF without close_notify (mbedTLS says 0): a truncation,
			 * which the record shows */
			leg->read_eof = true;
			return 0;
		}
		return leg_error(m, side, ret);
	}
}

static size_t
max_payload(struct mitm_leg *leg)
{
	int n = mbedtls_ssl_get_max_out_record_payload(&leg->ssl);

	return n > 0 && n < MITM_MAX_RECORD ? (size_t)n : MITM_MAX_RECORD;
}

/* Room for a whole record of n plaintext bytes in side's out buffer. */
static bool
out_room(struct mitm_leg *leg, size_t n)
{
	int exp = mbedtls_ssl_get_record_expansion(&leg->ssl);
	size_t need = n + (exp > 0 ? (size_t)exp : 1024);

	if (leg->out.cap - leg->out.tail < need)
		mitm_buf_compact(&leg->out);
	return leg->out.cap - leg->out.tail >= need;
}

/* Largest plaintext that fits in the out buffer as one record right now. */
static size_t
out_fit(struct mitm_leg *leg)
{
	int exp = mbedtls_ssl_get_record_expansion(&leg->ssl);
	size_t e = exp > 0 ? (size_t)exp : 1024, space;

	mitm_buf_compact(&leg->out);
	space = leg->out.cap - leg->out.tail;
	if (space <= e)
		return 0;
	space -= e;
	return space > max_payload(leg) ? max_payload(leg) : space;
}

static int
flush_pending(struct mitm_leg *leg)
{
	int ret;

	if (!leg->flush_pending)
		return 0;
	/* mbedTLS flushes the record it already built and returns 0 */
	ret = mbedtls_ssl_write(&leg->ssl, (const unsigned char *)"", 0);
	if (ret == MBEDTLS_ERR_SSL_WANT_WRITE)
		return ret;
	leg->flush_pending = false;
	return ret < 0 ? ret : 0;
}

ssize_t
mitm_write(struct mitm *m, enum mitm_side side, const void *buf, size_t len)
{
	struct mitm_leg *leg = &m->leg[side];
	int ret;

	if (!leg_usable(m, side) || leg->shut)
		return m->st == ST_HELLO || m->st == ST_UPSTREAM_HS || m->st == ST_CLIENT_HS ?
		    MITM_AGAIN : MITM_ERROR;
	if ((ret = flush_pending(leg)) == MBEDTLS_ERR_SSL_WANT_WRITE)
		return MITM_AGAIN;
	if (ret != 0)
		return leg_error(m, side, ret);
	if (len == 0)
		return 0;
	if (len > max_payload(leg))
		len = max_payload(leg);
	if (!out_room(leg, len))
		return MITM_AGAIN;
	ret = mbedtls_ssl_write(&leg->ssl, buf, len);
	if (ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
		/* The record is built and partly in out: the bytes are taken. */
		leg->flush_pending = true;
		return (ssize_t)len;
	}
	if (ret < 0)
		return leg_error(m, side, ret);
	return ret;
}

int
mitm_shutdown(struct mitm *m, enum mitm_side side)
{
	struct mitm_leg *leg = &m->leg[side];
	int ret;

	if (!leg->setup || !leg->hs_done || leg->dead)
		return MITM_ERROR;
	if (leg->shut)
		return 0;
	if (flush_pending(leg) != 0)
		return MITM_ERROR;
	ret = mbedtls_ssl_close_notify(&leg->ssl);
	if (ret != 0 && ret != MBEDTLS_ERR_SSL_WANT_WRITE)
		return MITM_ERROR;
	leg->shut = true;
	return 0;
}

ssize_t
mitm_relay(struct mitm *m, unsigned *eof_from)
{
	unsigned char tmp[MITM_MAX_RECORD];
	ssize_t total = 0;

	*eof_from = 0;
	if (m->st != ST_ESTABLISHED)
		return m->st == ST_FAILED || m->st == ST_UPSTREAM_FAILED ? MITM_ERROR : 0;
	for (int from = 0; from < 2; from++) {
		struct mitm_leg *to = &m->leg[!from];

		if (m->leg[from].read_eof) {
			*eof_from |= 1u << from;
			continue;
		}
		for (;;) {
			size_t fit;
			ssize_t n, w;

			if (to->dead || to->shut)
				break;
			if (flush_pending(to) != 0)
				break;
			if ((fit = out_fit(to)) == 0)
				break;
			n = mitm_read(m, (enum mitm_side)from, tmp, fit);
			if (n == MITM_AGAIN)
				break;
			if (n == MITM_ERROR)
				return MITM_ERROR;
			if (n == 0) {
				*eof_from |= 1u << from;
				break;
			}
			w = mitm_write(m, (enum mitm_side)!from, tmp, (size_t)n);
			if (w != n)	/* cannot happen: fit said it fits */
				return leg_error(m, (enum mitm_side)!from,
				    MBEDTLS_ERR_SSL_INTERNAL_ERROR);
			total += n;
		}
	}
	return total;
}
