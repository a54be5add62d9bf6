/*
 * Unit tests for the signer process (proxyd/signer.c, signer_spawn): the
 * key leaves the parent, leaves signed across the socket verify with
 * openssl(1), the policy is enforced on the far side of the socket, a
 * request that breaks it costs only that request, garbage or an oversized
 * record ends the signer and the parent gets a clean error, and a signer
 * killed from outside makes the next signing fail cleanly while cached
 * leaves still serve.  Each test forks its own signer from a CA loaded
 * afresh (spawning makes the parent forget the key).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <mbedtls/pem.h>
#include <mbedtls/pk.h>
#include <mbedtls/psa_util.h>
#include <mbedtls/ecp.h>
#include <mbedtls/x509_crt.h>

#include "log.h"
#include "proxyd/ca.h"
#include "proxyd/certforge.h"
#include "proxyd/signer.h"
#include "signer.pb-c.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZER_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZER_BUILD 1
#endif
#endif

static char g_dir[64];

struct fixture {
	struct ca		*ca;
	struct signer		*s;
	struct certforge	*cf;
	char			err[512];
};

static int
group_setup(void **state)
{
	struct ca *ca;
	char err[512];

	(void)state;
	log_init("test_px_signer", 1, LOG_LEVEL_WARN);
	strcpy(g_dir, "/tmp/test_px_signer.XXXXXX");
	if (mkdtemp(g_dir) == NULL)
		return -1;
	if (ca_open(g_dir, CA_LOAD_OR_CREATE, &ca, err, sizeof(err)) != 0) {
		fprintf(stderr, "ca_open: %s\n", err);
		return -1;
	}
	ca_free(ca);
	return 0;
}

static int
group_teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	if (ca_open(g_dir, CA_LOAD_ONLY, &f->ca, f->err, sizeof(f->err)) != 0 ||
	    (f->s = signer_spawn(f->ca, f->err, sizeof(f->err))) == NULL) {
		fprintf(stderr, "setup: %s\n", f->err);
		return -1;
	}
	f->cf = certforge_new(f->s, ca_cert(f->ca), 16, 0, f->err, sizeof(f->err));
	if (f->cf == NULL) {
		fprintf(stderr, "certforge_new: %s\n", f->err);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	certforge_free(f->cf);
	signer_free(f->s);
	ca_free(f->ca);
	free(f);
	return 0;
}

static const char *
run(const char *cmd, int *status)
{
	static char out[16384];
	FILE *p = popen(cmd, "r");
	size_t n;

	assert_non_null(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	*status = pclose(p);
	return out;
}

/* The value of a "Name:\tvalue" line of /proc/PID/status, or -1. */
static long
proc_status(pid_t pid, const char *name)
{
	char path[64], line[256];
	size_t nl = strlen(name);
	long v = -1;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp) != NULL)
		if (strncmp(line, name, nl) == 0 && line[nl] == ':') {
			v = strtol(line + nl + 1, NULL, 16);
			break;
		}
	fclose(fp);
	return v;
}

static size_t
spki(const mbedtls_pk_context *pk, unsigned char *buf, size_t cap)
{
	int n = mbedtls_pk_write_pubkey_der(pk, buf, cap);

	assert_true(n > 0);
	memmove(buf, buf + cap - (size_t)n, (size_t)n);
	return (size_t)n;
}

static struct forged_cert *
get_ok(struct fixture *f, const char *sni)
{
	struct certforge_request req = { .sni = sni, .sni_len = strlen(sni) };
	struct forged_cert *fc = NULL;

	if (certforge_get(f->cf, &req, &fc, f->err, sizeof(f->err)) != 0)
		fail_msg("certforge_get(%s): %s", sni, f->err);
	return fc;
}

/* Waits (bounded) for the signer to end; its wait status. */
static int
reap(pid_t pid)
{
	int status = 0, i;

	for (i = 0; i < 500; i++) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return status;
		assert_int_equal(r, 0);
		usleep(10000);
	}
	fail_msg("signer %d did not exit", (int)pid);
	return -1;
}

/* --- the key moves ---------------------------------------------------------- */

static void
parent_forgets_the_key_signer_holds_it(void **state)
{
	struct fixture *f = *state;
	pid_t pid = signer_pid(f->s);
	struct signer *local;

	assert_true(pid > 0);
	assert_int_not_equal(pid, getpid());
	/* The API-level proof: this process holds the certificate alone. */
	assert_false(ca_has_private_key(f->ca));
	assert_null(ca_private_key(f->ca));
	assert_non_null(ca_cert(f->ca));
	/* No in-process signer can be made from it any more... */
	assert_null(local = signer_new(f->ca));
	/* ...and no second signer process either. */
	assert_null(signer_spawn(f->ca, f->err, sizeof(f->err)));
	assert_non_null(strstr(f->err, "not in this process"));

	/* The signer process is confined. */
	assert_int_equal(proc_status(pid, "NoNewPrivs"), 1);
	assert_int_equal(proc_status(pid, "CapEff"), 0);	/* all zeros */
	if (geteuid() == 0)	/* only a privileged parent can empty it */
		assert_int_equal(proc_status(pid, "CapBnd"), 0);
#ifdef SANITIZER_BUILD
	assert_int_equal(proc_status(pid, "Seccomp"), 0);	/* sandbox.h says why */
#else
	assert_int_equal(proc_status(pid, "Seccomp"), 2);
#endif
}

static void
signer_has_no_other_descriptors(void **state)
{
	char cmd[128];
	const char *out;
	int status, fd, pfd[2];
	struct fixture g;

	(void)state;
	if (geteuid() != 0)
		skip();		/* the signer's /proc/PID/fd is root's alone */
	/* Descriptors this process holds when it forks (not close-on-exec). */
	assert_true((fd = open("/dev/null", O_RDONLY)) > 2);
	assert_int_equal(pipe(pfd), 0);
	memset(&g, 0, sizeof(g));
	assert_int_equal(ca_open(g_dir, CA_LOAD_ONLY, &g.ca, g.err, sizeof(g.err)), 0);
	assert_non_null(g.s = signer_spawn(g.ca, g.err, sizeof(g.err)));
	/* Give it time to tidy up: one signed leaf proves it is serving. */
	assert_non_null(g.cf = certforge_new(g.s, ca_cert(g.ca), 0, 0, g.err,
	    sizeof(g.err)));
	snprintf(cmd, sizeof(cmd), "ls /proc/%d/fd | sort -n | tr '\\n' ' '",
	    signer_pid(g.s));
	out = run(cmd, &status);
	assert_int_equal(status, 0);
	assert_string_equal(out, "0 1 2 3 ");
	certforge_free(g.cf);
	signer_free(g.s);
	ca_free(g.ca);
	close(fd);
	close(pfd[0]);
	close(pfd[1]);
}

/*
 * proxyd and its signer share a uid: the signer's memory must still be out
 * of proxyd's reach (PR_SET_DUMPABLE 0).  Done as an unprivileged user in a
 * child, since root reads any process's memory.
 */
static int
unprivileged_probe(void)
{
	char dir[] = "/tmp/test_px_signer_nobody.XXXXXX", path[64], err[256], cmd[96];
	struct certforge *cf;
	struct signer *s;
	struct ca *ca;
	int fd, rc = 0;

	if (geteuid() == 0 && (setgroups(0, NULL) == -1 || setresgid(65534, 65534,
	    65534) == -1 || setresuid(65534, 65534, 65534) == -1))
		return 10;
	if (mkdtemp(dir) == NULL)
		return 11;
	if (ca_open(dir, CA_LOAD_OR_CREATE, &ca, err, sizeof(err)) != 0 ||
	    (s = signer_spawn(ca, err, sizeof(err))) == NULL) {
		fprintf(stderr, "probe: %s\n", err);
		return 12;
	}
	/* One signature: the signer is past its set-up, serving. */
	if ((cf = certforge_new(s, ca_cert(ca), 0, 0, err, sizeof(err))) == NULL) {
		fprintf(stderr, "probe: %s\n", err);
		return 16;
	}
	certforge_free(cf);
	snprintf(path, sizeof(path), "/proc/%d/mem", signer_pid(s));
	if ((fd = open(path, O_RDONLY)) != -1 || errno != EACCES)
		rc = 13;
	if (fd != -1)
		close(fd);
	if (ptrace(PTRACE_ATTACH, signer_pid(s), NULL, NULL) != -1 || errno != EPERM) {
		fprintf(stderr, "probe: ptrace attach: %s\n", strerror(errno));
		rc = 14;
	}
	signer_free(s);
	ca_free(ca);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0 && rc == 0)
		rc = 15;
	return rc;
}

static void
same_user_cannot_read_signer_memory(void **state)
{
	pid_t pid;
	int status;

	(void)state;
	assert_true((pid = fork()) != -1);
	if (pid == 0)
		_exit(unprivileged_probe());
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* --- signing across the socket ------------------------------------------------ */

static void
leaf_signed_by_the_process_verifies(void **state)
{
	struct fixture *f = *state;
	uint64_t before = signer_signatures(f->s);	/* certforge's self-test */
	struct forged_cert *fc = get_ok(f, "www.signer.example");
	unsigned char pem[8192];
	const unsigned char *der;
	char path[128], cmd[512];
	mbedtls_x509_crt trust;
	size_t len, olen;
	uint32_t flags = 0;
	const char *out;
	int status;
	FILE *fp;

	assert_int_equal(before, 1);
	assert_int_equal(signer_signatures(f->s), before + 1);
	/* mbedTLS... */
	mbedtls_x509_crt_init(&trust);
	assert_int_equal(mbedtls_x509_crt_parse_der(&trust, ca_cert(f->ca)->raw.p,
	    ca_cert(f->ca)->raw.len), 0);
	assert_int_equal(mbedtls_x509_crt_verify(forged_cert_chain(fc), &trust, NULL,
	    "www.signer.example", &flags, NULL, NULL), 0);
	mbedtls_x509_crt_free(&trust);
	/* ...and openssl. */
	der = forged_cert_der(fc, &len);
	assert_int_equal(mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE-----\n",
	    "-----END CERTIFICATE-----\n", der, len, pem, sizeof(pem), &olen), 0);
	snprintf(path, sizeof(path), "%s/leaf.pem", g_dir);
	assert_non_null(fp = fopen(path, "w"));
	assert_int_equal(fwrite(pem, 1, olen - 1, fp), olen - 1);
	fclose(fp);
	snprintf(cmd, sizeof(cmd), "openssl verify -x509_strict -purpose sslserver "
	    "-verify_hostname www.signer.example -CAfile '%s/%s' '%s' 2>&1", g_dir,
	    CA_EXPORT_PEM_FILE, path);
	out = run(cmd, &status);
	if (status != 0)
		fail_msg("openssl verify: %s", out);
	forged_cert_release(fc);

	/* A second name: the channel carries on. */
	fc = get_ok(f, "10.1.2.3");
	forged_cert_release(fc);
	assert_int_equal(signer_signatures(f->s), before + 2);
}

static enum signer_status
sign(struct fixture *f, const struct leaf_request *req)
{
	static unsigned char der[SIGNER_DER_MAX];
	size_t len;

	f->err[0] = '\0';
	return signer_sign_leaf(f->s, req, der, sizeof(der), &len, f->err,
	    sizeof(f->err));
}

static void
policy_is_enforced_by_the_process(void **state)
{
	struct fixture *f = *state;
	unsigned char leaf_spki[512], ca_spki[512];
	static const unsigned char ip5[5] = { 1, 2, 3, 4, 5 };
	struct leaf_san san = { LEAF_SAN_DNS, (const unsigned char *)"ok.example", 10 };
	struct leaf_request req;
	int64_t now = (int64_t)time(NULL);

	memset(&req, 0, sizeof(req));
	req.subject_cn = "ok.example";
	req.sans = &san;
	req.nsans = 1;
	req.not_before = now - 86400;
	req.not_after = now + 4 * 86400;
	req.spki_der = leaf_spki;
	req.spki_len = spki(certforge_leaf_key(f->cf), leaf_spki, sizeof(leaf_spki));
	assert_int_equal(sign(f, &req), SIGNER_OK);

	/* Each refusal is the signer's own words, from the other process. */
	req.spki_der = ca_spki;
	req.spki_len = spki(&ca_cert(f->ca)->pk, ca_spki, sizeof(ca_spki));
	assert_int_equal(sign(f, &req), SIGNER_BAD_REQUEST);
	assert_non_null(strstr(f->err, "CA's own key"));
	req.spki_der = leaf_spki;
	req.spki_len = 20;
	assert_int_equal(sign(f, &req), SIGNER_BAD_REQUEST);
	assert_non_null(strstr(f->err, "does not parse"));
	req.spki_len = spki(certforge_leaf_key(f->cf), leaf_spki, sizeof(leaf_spki));

	req.subject_cn = "OK.example";
	assert_int_equal(sign(f, &req), SIGNER_BAD_REQUEST);
	assert_non_null(strstr(f->err, "subject CN"));
	req.subject_cn = "CN=evil,O=x";
	assert_int_equal(sign(f, &req), SIGNER_BAD_REQUEST);
	req.subject_cn = "";
	assert_int_equal(sign(f, &req), SIGNER_BAD_REQUEST);
	req.subject_cn = NULL;
	assert_int_equal(sign(f, &req), SIGNER_BAD_REQUEST);
	req.subject_cn = "ok.example";

	san.type = LEAF_SAN_IP;
	san.value = ip5;
	san.len = 5;
	assert_int_equal(sign(f, &req), SIGNER_BAD_REQUEST);
	assert_non_null(strstr(f->err, "bad IP length"));
	san.type = (enum leaf_san_type)99;
	assert_int_equal(sign(f, &req), SIGNER_BAD_REQUEST);
	assert_non_null(strstr(f->err, "unknown type"));
	san.type = LEAF_SAN_DNS;
	san.value = (const unsigned char *)"ok.example";
	san.len = 10;

	req.not_after = now + 3650LL * 86400;
	assert_int_equal(sign(f, &req), SIGNER_BAD_REQUEST);
	assert_non_null(strstr(f->err, "validity"));
	/* Days, not the 398 the CA/B Forum allows: a month is refused too. */
	req.not_after = now + 30 * 86400;
	assert_int_equal(sign(f, &req), SIGNER_BAD_REQUEST);
	assert_non_null(strstr(f->err, "validity"));
	req.not_after = now + (SIGNER_MAX_DAYS + 1) * 86400LL;
	assert_int_equal(sign(f, &req), SIGNER_BAD_REQUEST);
	req.not_before = now - SIGNER_MAX_BACKDATE - 86400;
	req.not_after = now + 86400;
	assert_int_equal(sign(f, &req), SIGNER_BAD_REQUEST);
	req.not_before = now - 86400;
	req.not_after = now + 4 * 86400;
	/* Extreme times are refused without overflowing (UBSan would abort
	 * the signer in the sanitizer build). */
	req.not_before = INT64_MIN;
	req.not_after = 0;
	assert_int_equal(sign(f, &req), SIGNER_BAD_REQUEST);
	req.not_before = now - 86400;
	req.not_after = INT64_MAX;
	assert_int_equal(sign(f, &req), SIGNER_BAD_REQUEST);
	req.not_after = now + 4 * 86400;

	/* None of that hurt the channel. */
	assert_int_equal(sign(f, &req), SIGNER_OK);
	assert_int_equal(signer_signatures(f->s), 1 + 2);	/* + self-test */
	assert_true(signer_fd(f->s) >= 0);
}

/* A valid request for this fixture's leaf key, good for four days. */
static void
good_request(struct fixture *f, struct leaf_request *req, struct leaf_san *san,
    unsigned char *buf, size_t cap)
{
	int64_t now = (int64_t)time(NULL);

	san->type = LEAF_SAN_DNS;
	san->value = (const unsigned char *)"ok.example";
	san->len = 10;
	memset(req, 0, sizeof(*req));
	req->subject_cn = "ok.example";
	req->sans = san;
	req->nsans = 1;
	req->not_before = now - 86400;
	req->not_after = now + 4 * 86400;
	req->spki_der = buf;
	req->spki_len = spki(certforge_leaf_key(f->cf), buf, cap);
}

/*
 * The signer process certifies only the leaf key of its first request
 * (proxyd's self-test, before any network input): a compromised proxyd
 * cannot have it certify a key of its choosing.
 */
static void
signer_pins_the_leaf_key(void **state)
{
	struct fixture *f = *state;
	unsigned char leaf_spki[512], other_spki[512];
	mbedtls_pk_context other;
	struct leaf_request req;
	struct leaf_san san;

	good_request(f, &req, &san, leaf_spki, sizeof(leaf_spki));
	assert_int_equal(sign(f, &req), SIGNER_OK);
	mbedtls_pk_init(&other);
	assert_int_equal(mbedtls_pk_setup(&other,
	    mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)), 0);
	assert_int_equal(mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1,
	    mbedtls_pk_ec(other), mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE), 0);
	req.spki_der = other_spki;
	req.spki_len = spki(&other, other_spki, sizeof(other_spki));
	assert_int_equal(sign(f, &req), SIGNER_BAD_REQUEST);
	assert_non_null(strstr(f->err, "not the leaf key"));
	mbedtls_pk_free(&other);
	/* The pinned one still works. */
	req.spki_der = leaf_spki;
	req.spki_len = spki(certforge_leaf_key(f->cf), leaf_spki, sizeof(leaf_spki));
	assert_int_equal(sign(f, &req), SIGNER_OK);
}

/* At most SIGNER_RATE_BURST leaves at once; the bucket refills with time. */
static void
signer_rate_limits(void **state)
{
	struct fixture *f = *state;
	unsigned char leaf_spki[512];
	struct leaf_request req;
	struct leaf_san san;
	struct timespec t0, t1;
	enum signer_status st = SIGNER_OK;
	double secs;
	int ok = 0, i;

	good_request(f, &req, &san, leaf_spki, sizeof(leaf_spki));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < 4 * SIGNER_RATE_BURST && st == SIGNER_OK; i++)
		if ((st = sign(f, &req)) == SIGNER_OK)
			ok++;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	print_message("# %d leaves signed in %.3f s before the limit\n", ok, secs);
	assert_int_equal(st, SIGNER_FAILED);
	assert_non_null(strstr(f->err, "rate limit"));
	/* The burst (less the self-test's token), plus what refilled meanwhile. */
	assert_true(ok >= SIGNER_RATE_BURST - 1 - 1);
	assert_true(ok <= SIGNER_RATE_BURST + (int)(secs * SIGNER_RATE_PER_S) + 1);
	assert_true(signer_fd(f->s) >= 0);	/* refused, not broken */
	usleep(2 * 1000000 / SIGNER_RATE_PER_S);
	assert_int_equal(sign(f, &req), SIGNER_OK);
}

/* A well-formed record whose CN carries a NUL: an error answer, not an exit. */
static void
request_breaking_the_rules_gets_an_error_answer(void **state)
{
	struct fixture *f = *state;
	static const char cn[] = "ok.example\0.evil";
	unsigned char buf[SIGNER_MSG_MAX];
	Lc__LeafRequest m;
	Lc__LeafSan san, *sanp = &san;
	Lc__LeafResponse *r;
	size_t len;
	ssize_t n;

	lc__leaf_request__init(&m);
	lc__leaf_san__init(&san);
	san.type = LC__LEAF_SAN_TYPE__LEAF_SAN_DNS;
	san.value.data = (uint8_t *)(uintptr_t)"ok.example";
	san.value.len = 10;
	m.id = 4242;
	m.subject_cn.data = (uint8_t *)(uintptr_t)cn;
	m.subject_cn.len = sizeof(cn) - 1;
	m.sans = &sanp;
	m.n_sans = 1;
	m.not_before = (int64_t)time(NULL);
	m.not_after = m.not_before + 86400;
	len = lc__leaf_request__pack(&m, buf);
	assert_int_equal(send(signer_fd(f->s), buf, len, 0), (ssize_t)len);
	n = recv(signer_fd(f->s), buf, sizeof(buf), 0);
	assert_true(n > 0);
	assert_non_null(r = lc__leaf_response__unpack(NULL, (size_t)n, buf));
	assert_int_equal(r->id, 4242);
	assert_int_equal(r->status, LC__LEAF_STATUS__LEAF_STATUS_BAD_REQUEST);
	assert_int_equal(r->der.len, 0);
	assert_non_null(strstr(r->error, "subject CN"));
	lc__leaf_response__free_unpacked(r, NULL);
	/* The signer goes on. */
	forged_cert_release(get_ok(f, "after.example"));
}

/* --- a broken channel ------------------------------------------------------------ */

static void
garbage_record_ends_the_signer(void **state)
{
	struct fixture *f = *state;
	struct certforge_request req = { .sni = "new.example", .sni_len = 11 };
	unsigned char junk[100];
	struct forged_cert *fc;
	pid_t pid = signer_pid(f->s);
	int status;

	memset(junk, 0xff, sizeof(junk));	/* an endless varint: never decodes */
	assert_int_equal(send(signer_fd(f->s), junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
	status = reap(pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), SIGNER_EXIT_PROTOCOL);

	/* The parent: a clean error, now and later. */
	assert_int_equal(certforge_get(f->cf, &req, &fc, f->err, sizeof(f->err)), -1);
	assert_null(fc);
	assert_non_null(strstr(f->err, "signer"));
	assert_int_equal(signer_fd(f->s), -1);
	assert_int_equal(certforge_get(f->cf, &req, &fc, f->err, sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, "gone"));
	assert_int_equal(signer_check_idle(f->s), -1);
}

static void
oversized_record_ends_the_signer(void **state)
{
	struct fixture *f = *state;
	static unsigned char big[SIGNER_MSG_MAX + 1];
	struct leaf_san san = { LEAF_SAN_DNS, (const unsigned char *)"a.example", 9 };
	struct leaf_request req = { .subject_cn = "a.example", .sans = &san, .nsans = 1 };
	unsigned char der[SIGNER_DER_MAX];
	pid_t pid = signer_pid(f->s);
	size_t len;
	int status;

	assert_int_equal(send(signer_fd(f->s), big, sizeof(big), 0), (ssize_t)sizeof(big));
	status = reap(pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), SIGNER_EXIT_PROTOCOL);
	assert_int_equal(signer_sign_leaf(f->s, &req, der, sizeof(der), &len, f->err,
	    sizeof(f->err)), SIGNER_UNAVAILABLE);
	assert_int_equal(len, 0);
}

static void
killed_signer_fails_cleanly_cache_still_serves(void **state)
{
	struct fixture *f = *state;
	struct certforge_request req = { .sni = "new.example", .sni_len = 11 };
	struct forged_cert *fc, *cached = get_ok(f, "cached.example");
	pid_t pid = signer_pid(f->s);
	int status;

	forged_cert_release(cached);
	assert_int_equal(kill(pid, SIGKILL), 0);
	status = reap(pid);
	assert_true(WIFSIGNALED(status));
	/* An event loop watching the fd learns it between requests. */
	assert_int_equal(signer_check_idle(f->s), -1);
	assert_int_equal(signer_fd(f->s), -1);

	assert_int_equal(certforge_get(f->cf, &req, &fc, f->err, sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, "gone"));
	/* Hosts already forged keep working. */
	fc = get_ok(f, "cached.example");
	forged_cert_release(fc);
}

static void
signer_exits_when_its_parent_closes(void **state)
{
	struct fixture *f = *state;
	pid_t pid = signer_pid(f->s);
	int status;

	/* signer_free closes and reaps; check the exit reason ourselves. */
	shutdown(signer_fd(f->s), SHUT_RDWR);
	status = reap(pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), SIGNER_EXIT_CLOSED);
}

/* The signer ignores the terminal's ^C and SIGTERM: proxyd ends it. */
static void
signer_ignores_sigterm_and_sigint(void **state)
{
	struct fixture *f = *state;
	pid_t pid = signer_pid(f->s);

	assert_int_equal(kill(pid, SIGTERM), 0);
	assert_int_equal(kill(pid, SIGINT), 0);
	usleep(50000);
	assert_int_equal(waitpid(pid, NULL, WNOHANG), 0);
	forged_cert_release(get_ok(f, "still.example"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(parent_forgets_the_key_signer_holds_it,
		    setup, teardown),
		cmocka_unit_test(signer_has_no_other_descriptors),
		cmocka_unit_test(same_user_cannot_read_signer_memory),
		cmocka_unit_test_setup_teardown(leaf_signed_by_the_process_verifies,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(signer_pins_the_leaf_key, setup, teardown),
		cmocka_unit_test_setup_teardown(signer_rate_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(policy_is_enforced_by_the_process,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    request_breaking_the_rules_gets_an_error_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(garbage_record_ends_the_signer,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(oversized_record_ends_the_signer,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    killed_signer_fails_cleanly_cache_still_serves, setup, teardown),
		cmocka_unit_test_setup_teardown(signer_exits_when_its_parent_closes,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(signer_ignores_sigterm_and_sigint,
		    setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
