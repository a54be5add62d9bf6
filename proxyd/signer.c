/*
 * Leaf signing with the CA key (interface and policy in signer.h), and the
 * signer process proxyd forks to hold that key.
 *
 *   proxyd: certforge -> signer_sign_leaf -> sign_remote
 *	-> LeafRequest, one record (recchan.h) -> signer process:
 *	   serve -> request_from_msg -> sign_local (check_request, mbedTLS)
 *	<- LeafResponse, one record <-
 *
 * Why a bare record channel and not common/ipc.c: both ends are the same
 * binary, forked, so ipc.c's handshake, versioning, fd passing, stream
 * reassembly and libev buy nothing, and would put an event loop and a
 * reassembly buffer into the process that holds the key.  On Linux the
 * channel is a SOCK_SEQPACKET socketpair: the kernel keeps record
 * boundaries and MSG_TRUNC reports a record's true size, so an oversized
 * one is seen as such and never half-read.  macOS has no SOCK_SEQPACKET for
 * AF_UNIX: there a record is its length and its bytes on a stream, and an
 * oversized length is seen before anything is read (recchan.c).  The signer
 * only does recv, sign, send.
 *
 * Nothing here may assume the request came from trusted code: every name is
 * re-parsed with certname_parse() and must already be in normal form, sizes
 * and validity are bounded, and the CA's own public key is refused.  In the
 * signer process a request that breaks the policy gets an error answer; a
 * record that is oversized or does not decode ends the process (its only
 * peer is the proxyd that forked it, so that peer is broken).
 *
 * The leaf public key is the same for every request (certforge shares one
 * leaf key per process), so the last parsed SubjectPublicKeyInfo is kept and
 * only re-parsed when the bytes change: parsing checks the EC point, which
 * is not free.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/asn1.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/psa_util.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

#include "proxyd/tlserr.h"
#include "errmsg.h"
#include "log.h"
#include "plat.h"
#include "sandbox.h"
#include "proxyd/ca.h"
#include "proxyd/recchan.h"
#include "proxyd/certname.h"
#include "proxyd/signer.h"
#include "proxyd/x509util.h"
#include "signer.pb-c.h"

/* The signer process's end of the socket, once it tidied its descriptors. */
#define SIGNER_CHILD_FD	3

struct signer {
	/* proxyd's end of a spawned signer (remote); then nothing below it. */
	bool			remote;
	int			fd;		/* -1: gone */
	pid_t			pid;
	uint64_t		next_id;
	unsigned char		*buf;		/* SIGNER_MSG_MAX */
	void			(*lost_cb)(void *);
	void			*lost_arg;
	/* In-process, and in the signer process: */
	struct ca		*ca;
	char			issuer[512];	/* CA subject, string form */
	unsigned char		ca_spki[SIGNER_MAX_SPKI];
	size_t			ca_spki_len;
	mbedtls_pk_context	leaf_pk;	/* parsed from last_spki */
	unsigned char		last_spki[SIGNER_MAX_SPKI];
	size_t			last_spki_len;	/* 0: leaf_pk not set up */
	uint64_t		signatures;
	/* The signer process only: the pinned leaf key and the rate limit. */
	bool			pin_spki;
	unsigned char		pinned_spki[SIGNER_MAX_SPKI];
	size_t			pinned_spki_len;	/* 0: not pinned yet */
	double			tokens;		/* leaves it may sign now */
	double			rate_burst, rate_per_s;	/* 0: no limit */
	struct timespec		refilled;
	bool			limited;	/* refusing: logged once a series */
};

static unsigned rate_burst = SIGNER_RATE_BURST, rate_per_s = SIGNER_RATE_PER_S;

void
signer_set_rate_limit(unsigned burst, unsigned per_second)
{
	rate_burst = burst;
	rate_per_s = per_second;
}

/* SubjectPublicKeyInfo DER of pk into out; its length, or 0 on failure. */
static size_t
spki_of(const mbedtls_pk_context *pk, unsigned char *out, size_t cap)
{
	int n = mbedtls_pk_write_pubkey_der(pk, out, cap);

	if (n <= 0)
		return 0;
	/* Written at the end of the buffer: move it to the front. */
	memmove(out, out + cap - (size_t)n, (size_t)n);
	return (size_t)n;
}

struct signer *
signer_new(struct ca *ca)
{
	struct signer *s;
	const mbedtls_x509_crt *crt;

	if (psa_crypto_init() != PSA_SUCCESS)
		return NULL;
	if (ca_private_key(ca) == NULL)
		return NULL;	/* this process forgot it: there is a signer process */
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->fd = -1;
	s->pid = -1;
	s->ca = ca;
	mbedtls_pk_init(&s->leaf_pk);
	crt = ca_cert(ca);
	if (mbedtls_x509_dn_gets(s->issuer, sizeof(s->issuer), &crt->subject) < 0 ||
	    (s->ca_spki_len = spki_of(&crt->pk, s->ca_spki, sizeof(s->ca_spki))) == 0) {
		signer_free(s);
		return NULL;
	}
	return s;
}

void
signer_free(struct signer *s)
{
	int status;

	if (s == NULL)
		return;
	if (s->remote) {
		if (s->fd != -1)
			close(s->fd);	/* the signer sees EOF and exits */
		/* ECHILD: a SIGCHLD handler (daemon.c) reaped it already. */
		while (s->pid > 0 && waitpid(s->pid, &status, 0) == -1 && errno == EINTR)
			;
		free(s->buf);
	}
	mbedtls_pk_free(&s->leaf_pk);
	free(s);
}

uint64_t
signer_signatures(const struct signer *s)
{
	return s->signatures;
}

/* A DNS SAN or CN must be exactly what certname_parse would produce. */
static bool
name_is_normal(const char *name, size_t len, enum certname_kind *kind)
{
	struct certname cn;

	*kind = certname_parse(name, len, true, &cn);
	if (*kind == CERTNAME_INVALID)
		return false;
	return cn.textlen == len && memcmp(cn.text, name, len) == 0;
}

static enum signer_status
check_request(struct signer *s, const struct leaf_request *req, char *err, size_t errlen)
{
	enum certname_kind kind;
	size_t i, dns_bytes = 0;
	int64_t now = (int64_t)time(NULL);
	int ret;

	if (req->subject_cn == NULL ||
	    !name_is_normal(req->subject_cn, strnlen(req->subject_cn, CERTNAME_DNS_MAX + 1),
	    &kind)) {
		seterr(err, errlen, "subject CN is not a normalised host name or address");
		return SIGNER_BAD_REQUEST;
	}
	if (req->nsans == 0 || req->nsans > SIGNER_MAX_SANS || req->sans == NULL) {
		seterr(err, errlen, "%zu subjectAltNames (1..%d allowed)", req->nsans,
		    SIGNER_MAX_SANS);
		return SIGNER_BAD_REQUEST;
	}
	for (i = 0; i < req->nsans; i++) {
		const struct leaf_san *san = &req->sans[i];

		switch (san->type) {
		case LEAF_SAN_DNS:
			if (san->value == NULL ||
			    !name_is_normal((const char *)san->value, san->len, &kind) ||
			    kind != CERTNAME_DNS) {
				seterr(err, errlen, "subjectAltName %zu: bad DNS name", i);
				return SIGNER_BAD_REQUEST;
			}
			dns_bytes += san->len;
			break;
		case LEAF_SAN_IP:
			if (san->value == NULL || (san->len != 4 && san->len != 16)) {
				seterr(err, errlen, "subjectAltName %zu: bad IP length", i);
				return SIGNER_BAD_REQUEST;
			}
			dns_bytes += san->len;
			break;
		default:
			seterr(err, errlen, "subjectAltName %zu: unknown type", i);
			return SIGNER_BAD_REQUEST;
		}
	}
	if (dns_bytes > SIGNER_MAX_SAN_BYTES) {
		seterr(err, errlen, "subjectAltNames too long (%zu bytes)", dns_bytes);
		return SIGNER_BAD_REQUEST;
	}
	/* Each bound against now first: the difference then cannot overflow. */
	if (req->not_before < now - SIGNER_MAX_BACKDATE ||
	    req->not_after > now + (int64_t)SIGNER_MAX_DAYS * 86400 ||
	    req->not_after <= req->not_before ||
	    req->not_after - req->not_before > (int64_t)SIGNER_MAX_DAYS * 86400) {
		seterr(err, errlen, "validity out of policy (at most %d days, notBefore "
		    "at most %d days back)", SIGNER_MAX_DAYS, SIGNER_MAX_BACKDATE / 86400);
		return SIGNER_BAD_REQUEST;
	}
	if (req->spki_der == NULL || req->spki_len == 0 || req->spki_len > SIGNER_MAX_SPKI) {
		seterr(err, errlen, "bad public key size");
		return SIGNER_BAD_REQUEST;
	}
	if (req->spki_len == s->ca_spki_len &&
	    memcmp(req->spki_der, s->ca_spki, s->ca_spki_len) == 0) {
		seterr(err, errlen, "refusing to certify the CA's own key");
		return SIGNER_BAD_REQUEST;
	}
	if (req->spki_len != s->last_spki_len ||
	    memcmp(req->spki_der, s->last_spki, req->spki_len) != 0) {
		mbedtls_pk_free(&s->leaf_pk);
		mbedtls_pk_init(&s->leaf_pk);
		s->last_spki_len = 0;
		if ((ret = mbedtls_pk_parse_public_key(&s->leaf_pk, req->spki_der,
		    req->spki_len)) != 0) {
			seterr(err, errlen, "public key does not parse (-0x%04x)", -ret);
			return SIGNER_BAD_REQUEST;
		}
		memcpy(s->last_spki, req->spki_der, req->spki_len);
		s->last_spki_len = req->spki_len;
	}
	if (s->pin_spki && s->pinned_spki_len != 0 &&
	    (req->spki_len != s->pinned_spki_len ||
	    memcmp(req->spki_der, s->pinned_spki, req->spki_len) != 0)) {
		seterr(err, errlen, "not the leaf key this signer serves (pinned at "
		    "its first request)");
		return SIGNER_BAD_REQUEST;
	}
	if (s->pin_spki && s->pinned_spki_len == 0) {
		memcpy(s->pinned_spki, req->spki_der, req->spki_len);
		s->pinned_spki_len = req->spki_len;
	}
	return SIGNER_OK;
}

/* Token bucket: 1 if one more leaf may be signed now (and takes it). */
static bool
rate_take(struct signer *s)
{
	struct timespec now;
	double dt;

	if (s->rate_burst <= 0)
		return true;
	clock_gettime(CLOCK_MONOTONIC, &now);
	dt = (double)(now.tv_sec - s->refilled.tv_sec) +
	    (double)(now.tv_nsec - s->refilled.tv_nsec) / 1e9;
	s->refilled = now;
	s->tokens += dt * s->rate_per_s;
	if (s->tokens > s->rate_burst)
		s->tokens = s->rate_burst;
	if (s->tokens < 1) {
		if (!s->limited)
			log_warnx("more than %.0f leaves at once or %.0f a second "
			    "asked for: refusing until the rate falls", s->rate_burst,
			    s->rate_per_s);
		s->limited = true;
		return false;
	}
	s->tokens -= 1;
	s->limited = false;
	return true;
}

static enum signer_status
sign_local(struct signer *s, const struct leaf_request *req, unsigned char *der,
    size_t der_cap, size_t *der_len, char *err, size_t errlen)
{
	static char server_auth_oid[] = MBEDTLS_OID_SERVER_AUTH;
	mbedtls_asn1_sequence eku = {
		.buf = { .tag = MBEDTLS_ASN1_OID, .len = MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH),
		    .p = (unsigned char *)server_auth_oid },
	};
	unsigned char serial[X509U_SERIAL_MAX], *scratch = NULL;
	char subject[CERTNAME_DNS_MAX + 8], nb[16], na[16], why[128];
	mbedtls_x509_san_list *sanlist = NULL;
	enum signer_status st;
	mbedtls_x509write_cert w;
	unsigned int ku;
	size_t i, serial_len, total = 0, off = 0;
	int ret;

	*der_len = 0;
	if (ca_private_key(s->ca) == NULL) {
		seterr(err, errlen, "the CA key is not in this process");
		return SIGNER_FAILED;
	}
	if ((st = check_request(s, req, err, errlen)) != SIGNER_OK)
		return st;

	/* mbedTLS wants non-const SAN buffers: copy the values once. */
	for (i = 0; i < req->nsans; i++)
		total += req->sans[i].len;
	if ((scratch = malloc(total)) == NULL ||
	    (sanlist = calloc(req->nsans, sizeof(*sanlist))) == NULL) {
		free(scratch);
		seterr(err, errlen, "out of memory");
		return SIGNER_FAILED;
	}
	/* The writer emits the list back to front: link it reversed so the
	 * certificate lists the names in request order. */
	for (i = 0; i < req->nsans; i++) {
		mbedtls_x509_san_list *node = &sanlist[i];

		memcpy(scratch + off, req->sans[i].value, req->sans[i].len);
		node->node.type = req->sans[i].type == LEAF_SAN_DNS ?
		    MBEDTLS_X509_SAN_DNS_NAME : MBEDTLS_X509_SAN_IP_ADDRESS;
		node->node.san.unstructured_name.p = scratch + off;
		node->node.san.unstructured_name.len = req->sans[i].len;
		node->next = i > 0 ? &sanlist[i - 1] : NULL;
		off += req->sans[i].len;
	}

	snprintf(subject, sizeof(subject), "CN=%s", req->subject_cn);
	x509u_format_time((time_t)req->not_before, nb);
	x509u_format_time((time_t)req->not_after, na);
	ku = MBEDTLS_X509_KU_DIGITAL_SIGNATURE;
	if (mbedtls_pk_can_do(&s->leaf_pk, MBEDTLS_PK_RSA))
		ku |= MBEDTLS_X509_KU_KEY_ENCIPHERMENT;

	mbedtls_x509write_crt_init(&w);
	mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
	mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
	mbedtls_x509write_crt_set_subject_key(&w, &s->leaf_pk);
	mbedtls_x509write_crt_set_issuer_key(&w, ca_private_key(s->ca));
	if (x509u_random_serial(serial, &serial_len) != 0) {
		ret = MBEDTLS_ERR_X509_BAD_INPUT_DATA;
		goto fail;
	}
	if ((ret = mbedtls_x509write_crt_set_serial_raw(&w, serial, serial_len)) != 0 ||
	    (ret = mbedtls_x509write_crt_set_validity(&w, nb, na)) != 0 ||
	    (ret = mbedtls_x509write_crt_set_subject_name(&w, subject)) != 0 ||
	    (ret = mbedtls_x509write_crt_set_issuer_name(&w, s->issuer)) != 0 ||
	    (ret = mbedtls_x509write_crt_set_basic_constraints(&w, 0, -1)) != 0 ||
	    (ret = mbedtls_x509write_crt_set_key_usage(&w, ku)) != 0 ||
	    (ret = mbedtls_x509write_crt_set_ext_key_usage(&w, &eku)) != 0 ||
	    (ret = mbedtls_x509write_crt_set_authority_key_identifier(&w)) != 0 ||
	    (ret = mbedtls_x509write_crt_set_subject_alternative_name(&w,
	    &sanlist[req->nsans - 1])) != 0)
		goto fail;
	ret = mbedtls_x509write_crt_der(&w, der, der_cap, mbedtls_psa_get_random,
	    MBEDTLS_PSA_RANDOM_STATE);
	if (ret <= 0)
		goto fail;
	memmove(der, der + der_cap - (size_t)ret, (size_t)ret);
	*der_len = (size_t)ret;
	s->signatures++;
	mbedtls_x509write_crt_free(&w);
	free(sanlist);
	free(scratch);
	return SIGNER_OK;
fail:
	(void)tls_strerror(ret, why, sizeof(why));
	seterr(err, errlen, "signing failed: %s", why);
	mbedtls_x509write_crt_free(&w);
	free(sanlist);
	free(scratch);
	return SIGNER_FAILED;
}

/* --- the signer process ------------------------------------------------------ */

/*
 * One decoded request into a leaf_request for sign_local.  Only what the
 * conversion itself needs is checked here (the CN becomes a C string, the
 * SAN array is allocated); the policy is check_request's.  SIGNER_OK or
 * SIGNER_BAD_REQUEST with err set.
 */
static enum signer_status
request_from_msg(const Lc__LeafRequest *m, struct leaf_request *req,
    struct leaf_san *sans, char *cn, size_t cnsize, char *err, size_t errlen)
{
	size_t i;

	memset(req, 0, sizeof(*req));
	if (m->subject_cn.len == 0 || m->subject_cn.len >= cnsize ||
	    memchr(m->subject_cn.data, '\0', m->subject_cn.len) != NULL) {
		seterr(err, errlen, "subject CN is not a normalised host name or address");
		return SIGNER_BAD_REQUEST;
	}
	memcpy(cn, m->subject_cn.data, m->subject_cn.len);
	cn[m->subject_cn.len] = '\0';
	if (m->n_sans == 0 || m->n_sans > SIGNER_MAX_SANS) {
		seterr(err, errlen, "%zu subjectAltNames (1..%d allowed)", m->n_sans,
		    SIGNER_MAX_SANS);
		return SIGNER_BAD_REQUEST;
	}
	for (i = 0; i < m->n_sans; i++) {
		const Lc__LeafSan *ms = m->sans[i];

		switch (ms->type) {
		case LC__LEAF_SAN_TYPE__LEAF_SAN_DNS:
			sans[i].type = LEAF_SAN_DNS;
			break;
		case LC__LEAF_SAN_TYPE__LEAF_SAN_IP:
			sans[i].type = LEAF_SAN_IP;
			break;
		default:
			sans[i].type = (enum leaf_san_type)0;	/* check_request refuses */
			break;
		}
		sans[i].value = ms->value.data;
		sans[i].len = ms->value.len;
	}
	req->subject_cn = cn;
	req->sans = sans;
	req->nsans = m->n_sans;
	req->not_before = m->not_before;
	req->not_after = m->not_after;
	req->spki_der = m->spki.data;
	req->spki_len = m->spki.len;
	return SIGNER_OK;
}

static _Noreturn void
signer_exit(int status, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		log_warnx("%s; exiting", msg);
	}
	_exit(status);
}

/* Answers requests on SIGNER_CHILD_FD until proxyd closes it; never returns. */
static _Noreturn void
serve(struct signer *s)
{
	static unsigned char in[SIGNER_MSG_MAX], out[SIGNER_MSG_MAX];
	static unsigned char der[SIGNER_DER_MAX];
	static struct leaf_san sans[SIGNER_MAX_SANS];
	char cn[CERTNAME_DNS_MAX + 1], err[256];

	for (;;) {
		Lc__LeafResponse resp;
		Lc__LeafRequest *m;
		struct leaf_request req;
		enum signer_status st;
		size_t der_len = 0, len;
		ssize_t n;

		n = recchan_recv(RECCHAN_NATIVE, SIGNER_CHILD_FD, in, sizeof(in),
		    SIGNER_TIMEOUT_MS);
		if (n == 0)
			_exit(SIGNER_EXIT_CLOSED);
		if (n == -1)
			signer_exit(SIGNER_EXIT_IO, "recv: %s", strerror(errno));
		if ((size_t)n > sizeof(in))
			signer_exit(SIGNER_EXIT_PROTOCOL, "a record of %zd bytes (at most "
			    "%d)", n, SIGNER_MSG_MAX);
		if ((m = lc__leaf_request__unpack(NULL, (size_t)n, in)) == NULL)
			signer_exit(SIGNER_EXIT_PROTOCOL, "a record of %zd bytes that is "
			    "not a LeafRequest", n);
		lc__leaf_response__init(&resp);
		err[0] = '\0';
		st = request_from_msg(m, &req, sans, cn, sizeof(cn), err, sizeof(err));
		if (st == SIGNER_OK && !rate_take(s)) {
			seterr(err, sizeof(err), "rate limit: at most %.0f leaves at "
			    "once, %.0f a second", s->rate_burst, s->rate_per_s);
			st = SIGNER_FAILED;
		}
		if (st == SIGNER_OK)
			st = sign_local(s, &req, der, sizeof(der), &der_len, err,
			    sizeof(err));
		resp.id = m->id;
		switch (st) {
		case SIGNER_OK:
			resp.status = LC__LEAF_STATUS__LEAF_STATUS_OK;
			resp.der.data = der;
			resp.der.len = der_len;
			break;
		case SIGNER_BAD_REQUEST:
			resp.status = LC__LEAF_STATUS__LEAF_STATUS_BAD_REQUEST;
			resp.error = err;
			break;
		default:
			resp.status = LC__LEAF_STATUS__LEAF_STATUS_FAILED;
			resp.error = err;
			break;
		}
		/* der <= SIGNER_DER_MAX and err < 256 bytes: always fits. */
		if (lc__leaf_response__get_packed_size(&resp) > sizeof(out))
			signer_exit(SIGNER_EXIT_PROTOCOL, "answer too large");
		len = lc__leaf_response__pack(&resp, out);
		lc__leaf_request__free_unpacked(m, NULL);
		if (recchan_send(RECCHAN_NATIVE, SIGNER_CHILD_FD, out, len) == -1)
			_exit(errno == EPIPE ? SIGNER_EXIT_CLOSED : SIGNER_EXIT_IO);
	}
}

/*
 * The child side of signer_spawn: keep fd (the socket) and stderr, drop
 * everything else proxyd had, confine, serve.  Runs as proxyd's user.
 */
static _Noreturn void
signer_child(struct signer *s, int fd, pid_t parent)
{
	static const int ignored[] = { SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT };
	const struct sandbox sb = { .profile = SANDBOX_SIGNER };
	struct sigaction sa;
	sigset_t all;
	size_t i;
	int null, sig;

	/* Log lines to stderr: syslog's socket is about to be closed, and
	 * reconnecting needs socket(), which the sandbox forbids. */
	log_init("proxyd-signer", 1, log_getlevel());
	if (fd != SIGNER_CHILD_FD) {
		if (dup2(fd, SIGNER_CHILD_FD) == -1)
			signer_exit(SIGNER_EXIT_IO, "dup2: %s", strerror(errno));
		close(fd);
	}
	if ((null = open("/dev/null", O_RDWR | O_CLOEXEC)) != -1) {
		(void)dup2(null, STDIN_FILENO);
		(void)dup2(null, STDOUT_FILENO);
		if (null > SIGNER_CHILD_FD)
			close(null);
	} else {
		close(STDIN_FILENO);
		close(STDOUT_FILENO);
	}
	/* proxyd's listeners, flows, epoll, store, pid file, syslog: all gone. */
	if (plat_close_from(SIGNER_CHILD_FD + 1) == -1)
		signer_exit(SIGNER_EXIT_IO, "closing descriptors: %s", strerror(errno));

	/* libev's handlers would write into a closed pipe: back to defaults.
	 * Termination comes from proxyd (EOF) or its death (PDEATHSIG on Linux;
	 * elsewhere its death closes the channel: EOF again), so a
	 * terminal's ^C or systemd's SIGTERM to the cgroup leave it to proxyd. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	for (i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
		(void)sigaction(ignored[i], &sa, NULL);
	sigfillset(&all);
	(void)sigprocmask(SIG_UNBLOCK, &all, NULL);

	/* Same uid as proxyd: without this proxyd could ptrace us or read
	 * /proc/PID/mem (macOS: attach a debugger).  Also no core file with
	 * the key in it. */
	if (plat_no_dump() == -1)
		signer_exit(SIGNER_EXIT_IO, "no dump: %s", strerror(errno));
	if (plat_die_with_parent() == -1)
		signer_exit(SIGNER_EXIT_IO, "die with parent: %s", strerror(errno));
	if (getppid() != parent)
		_exit(SIGNER_EXIT_CLOSED);	/* proxyd died before we asked */
	tzset();	/* log timestamps: /etc/localtime is out of reach soon */
	/* No capability, even when the parent still had some (tests, tools).
	 * After proxyd's own sandbox_drop there is none to drop; an
	 * unprivileged parent could not empty the bounding set (no
	 * CAP_SETPCAP), and with no_new_privs and no execve it is moot. */
	if (plat_privileged())
		sandbox_drop(&sb);
	sandbox_confine(&sb);
	s->pin_spki = true;
	s->rate_burst = rate_burst;
	s->rate_per_s = rate_per_s;
	s->tokens = rate_burst;
	clock_gettime(CLOCK_MONOTONIC, &s->refilled);
	serve(s);
}

struct signer *
signer_spawn(struct ca *ca, char *err, size_t errlen)
{
	struct signer *local, *s;
	pid_t parent = getpid(), pid;
	int sv[2];

	if ((local = signer_new(ca)) == NULL) {
		seterr(err, errlen, ca_private_key(ca) == NULL ?
		    "the CA key is not in this process" : "out of memory");
		return NULL;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->buf = malloc(SIGNER_MSG_MAX)) == NULL) {
		seterr(err, errlen, "out of memory");
		goto fail;
	}
	if (recchan_pair(RECCHAN_NATIVE, sv) == -1) {
		seterr(err, errlen, "socketpair: %s", strerror(errno));
		goto fail;
	}
	(void)fflush(NULL);	/* nothing buffered may be written twice */
	if ((pid = fork()) == -1) {
		seterr(err, errlen, "fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		goto fail;
	}
	if (pid == 0) {
		close(sv[0]);
		signer_child(local, sv[1], parent);
	}
	close(sv[1]);
	signer_free(local);
	/* From here the key exists in the signer process alone. */
	ca_forget_key(ca);
	s->remote = true;
	s->fd = sv[0];
	s->pid = pid;
	s->next_id = 1;
	s->ca = ca;
	mbedtls_pk_init(&s->leaf_pk);
	return s;
fail:
	if (s != NULL)
		free(s->buf);
	free(s);
	signer_free(local);
	return NULL;
}

/* --- proxyd's side --------------------------------------------------------- */

int
signer_pid(const struct signer *s)
{
	return s->remote ? (int)s->pid : -1;
}

void
signer_on_lost(struct signer *s, void (*cb)(void *), void *arg)
{
	s->lost_cb = cb;
	s->lost_arg = arg;
}

int
signer_fd(const struct signer *s)
{
	return s->remote ? s->fd : -1;
}

/* The signer is gone or broken: say what follows and never use it again. */
static void
channel_lost(struct signer *s, const char *why)
{
	log_warnx("CA signer (pid %d) %s: no new certificates can be forged, so "
	    "TLS to hosts not in the certificate cache fails; restart proxyd (a "
	    "sandboxed proxyd cannot start another signer)", (int)s->pid, why);
	if (s->lost_cb != NULL)
		s->lost_cb(s->lost_arg);
	close(s->fd);
	s->fd = -1;
}

int
signer_check_idle(struct signer *s)
{
	unsigned char b;
	ssize_t n;

	if (!s->remote || s->fd == -1)
		return s->remote ? -1 : 0;
	n = recv(s->fd, &b, sizeof(b), MSG_DONTWAIT | MSG_PEEK);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	channel_lost(s, n == 0 ? "is gone" : n > 0 ? "spoke out of turn" :
	    "socket failed");
	return -1;
}

static enum signer_status
sign_remote(struct signer *s, const struct leaf_request *req, unsigned char *der,
    size_t der_cap, size_t *der_len, char *err, size_t errlen)
{
	Lc__LeafRequest m;
	Lc__LeafSan ms[SIGNER_MAX_SANS], *msp[SIGNER_MAX_SANS];
	Lc__LeafResponse *r;
	enum signer_status st;
	struct pollfd pfd;
	size_t i, len;
	ssize_t n;
	int rc;

	if (s->fd == -1) {
		seterr(err, errlen, "the CA signer process is gone (see the log)");
		return SIGNER_UNAVAILABLE;
	}
	/* The signer judges the request; these bounds only keep it encodable. */
	if (req->nsans == 0 || req->nsans > SIGNER_MAX_SANS || req->sans == NULL) {
		seterr(err, errlen, "%zu subjectAltNames (1..%d allowed)", req->nsans,
		    SIGNER_MAX_SANS);
		return SIGNER_BAD_REQUEST;
	}
	lc__leaf_request__init(&m);
	m.id = s->next_id++;
	if (req->subject_cn != NULL) {
		m.subject_cn.data = (uint8_t *)(uintptr_t)req->subject_cn;
		m.subject_cn.len = strnlen(req->subject_cn, CERTNAME_DNS_MAX + 1);
	}
	for (i = 0; i < req->nsans; i++) {
		lc__leaf_san__init(&ms[i]);
		ms[i].type = req->sans[i].type == LEAF_SAN_DNS ?
		    LC__LEAF_SAN_TYPE__LEAF_SAN_DNS : req->sans[i].type == LEAF_SAN_IP ?
		    LC__LEAF_SAN_TYPE__LEAF_SAN_IP : LC__LEAF_SAN_TYPE__LEAF_SAN_UNSPECIFIED;
		ms[i].value.data = (uint8_t *)(uintptr_t)req->sans[i].value;
		ms[i].value.len = req->sans[i].value != NULL ? req->sans[i].len : 0;
		msp[i] = &ms[i];
	}
	m.sans = msp;
	m.n_sans = req->nsans;
	m.not_before = req->not_before;
	m.not_after = req->not_after;
	m.spki.data = (uint8_t *)(uintptr_t)req->spki_der;
	m.spki.len = req->spki_der != NULL ? req->spki_len : 0;
	if (lc__leaf_request__get_packed_size(&m) > SIGNER_MSG_MAX) {
		seterr(err, errlen, "request too large for the signer (over %d bytes)",
		    SIGNER_MSG_MAX);
		return SIGNER_BAD_REQUEST;
	}
	len = lc__leaf_request__pack(&m, s->buf);
	if (recchan_send(RECCHAN_NATIVE, s->fd, s->buf, len) == -1) {
		channel_lost(s, errno == EPIPE || errno == ECONNRESET ? "is gone" :
		    "socket failed");
		seterr(err, errlen, "the CA signer process is gone");
		return SIGNER_UNAVAILABLE;
	}

	/* One answer, soon: signing takes well under a millisecond. */
	pfd.fd = s->fd;
	pfd.events = POLLIN;
	while ((rc = poll(&pfd, 1, SIGNER_TIMEOUT_MS)) == -1 && errno == EINTR)
		;
	if (rc == 0) {
		channel_lost(s, "did not answer within 10 s");
		seterr(err, errlen, "the CA signer process does not answer");
		return SIGNER_UNAVAILABLE;
	}
	n = recchan_recv(RECCHAN_NATIVE, s->fd, s->buf, SIGNER_MSG_MAX,
	    SIGNER_TIMEOUT_MS);
	if (n <= 0) {
		channel_lost(s, n == 0 ? "is gone" : errno == ETIMEDOUT ?
		    "sent half an answer" : "socket failed");
		seterr(err, errlen, "the CA signer process is gone");
		return SIGNER_UNAVAILABLE;
	}
	if ((size_t)n > SIGNER_MSG_MAX ||
	    (r = lc__leaf_response__unpack(NULL, (size_t)n, s->buf)) == NULL) {
		channel_lost(s, "sent a malformed answer");
		seterr(err, errlen, "the CA signer process is broken");
		return SIGNER_UNAVAILABLE;
	}
	if (r->id != m.id) {
		lc__leaf_response__free_unpacked(r, NULL);
		channel_lost(s, "answered another request");
		seterr(err, errlen, "the CA signer process is broken");
		return SIGNER_UNAVAILABLE;
	}
	switch (r->status) {
	case LC__LEAF_STATUS__LEAF_STATUS_OK:
		if (r->der.len == 0 || r->der.len > der_cap) {
			seterr(err, errlen, "certificate of %zu bytes does not fit (%zu)",
			    r->der.len, der_cap);
			st = SIGNER_FAILED;
			break;
		}
		memcpy(der, r->der.data, r->der.len);
		*der_len = r->der.len;
		s->signatures++;
		st = SIGNER_OK;
		break;
	case LC__LEAF_STATUS__LEAF_STATUS_BAD_REQUEST:
		seterr(err, errlen, "%s", r->error != NULL ? r->error : "refused");
		st = SIGNER_BAD_REQUEST;
		break;
	default:
		seterr(err, errlen, "%s", r->error != NULL && r->error[0] ? r->error :
		    "signing failed");
		st = SIGNER_FAILED;
		break;
	}
	lc__leaf_response__free_unpacked(r, NULL);
	return st;
}

enum signer_status
signer_sign_leaf(struct signer *s, const struct leaf_request *req, unsigned char *der,
    size_t der_cap, size_t *der_len, char *err, size_t errlen)
{
	*der_len = 0;
	if (s->remote)
		return sign_remote(s, req, der, der_cap, der_len, err, errlen);
	return sign_local(s, req, der, der_cap, der_len, err, errlen);
}
