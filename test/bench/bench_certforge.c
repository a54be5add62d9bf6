/*
 * Benchmark for proxyd's certificate forging (not a test: it prints figures).
 *
 *   bench_certforge [SECONDS]      (default 1 second per phase)
 *
 * Phases: CA creation; raw signer (one ECDSA P-256 signature per leaf);
 * certforge misses (sign + parse back, with and without a 50-SAN upstream
 * certificate), with the signer in-process and then in a signer process
 * (signer_spawn, as proxyd runs it: one socketpair round trip per leaf);
 * cache hits (the per-connection cost once a host is known);
 * and, for comparison, what an RSA-2048 CA would cost per signature.
 * Every phase is bounded in time and count.  Build: see docs/proxyd-tls.md.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/pk.h>
#include <mbedtls/psa_util.h>
#include <mbedtls/rsa.h>
#include <mbedtls/sha256.h>
#include <psa/crypto.h>

#include "log.h"
#include "proxyd/ca.h"
#include "proxyd/certforge.h"
#include "proxyd/signer.h"

#define MAX_ITERS	1000000

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
die(const char *what, const char *err)
{
	fprintf(stderr, "bench_certforge: %s: %s\n", what, err);
	exit(1);
}

/* Forges distinct names (all misses) for `secs`; returns leaves per second. */
static double
bench_misses(struct certforge *cf, const unsigned char *up, size_t uplen, double secs)
{
	char name[64], err[256];
	double t0 = now_s(), t;
	long i;

	for (i = 0; i < MAX_ITERS; i++) {
		struct certforge_request req = { .upstream_der = up, .upstream_len = uplen };
		struct forged_cert *fc;

		snprintf(name, sizeof(name), "host%ld.bench.example", i);
		req.sni = name;
		req.sni_len = strlen(name);
		if (certforge_get(cf, &req, &fc, err, sizeof(err)) != 0)
			die("certforge_get", err);
		forged_cert_release(fc);
		if ((i & 7) == 7 && (t = now_s() - t0) >= secs)
			return (double)(i + 1) / t;
	}
	return (double)i / (now_s() - t0);
}

/* Repeats one known name (all hits after the first); returns ns per get. */
static double
bench_hits(struct certforge *cf, const unsigned char *up, size_t uplen, double secs)
{
	struct certforge_request req = { .sni = "hit.bench.example", .sni_len = 17,
	    .upstream_der = up, .upstream_len = uplen };
	char err[256];
	double t0, t;
	long i;

	for (i = 0; i < 2; i++) {	/* warm: forge once */
		struct forged_cert *fc;

		if (certforge_get(cf, &req, &fc, err, sizeof(err)) != 0)
			die("certforge_get", err);
		forged_cert_release(fc);
	}
	t0 = now_s();
	for (i = 0; i < MAX_ITERS; i++) {
		struct forged_cert *fc;

		if (certforge_get(cf, &req, &fc, err, sizeof(err)) != 0)
			die("certforge_get", err);
		forged_cert_release(fc);
		if ((i & 1023) == 1023 && (t = now_s() - t0) >= secs)
			return t * 1e9 / (double)(i + 1);
	}
	return (now_s() - t0) * 1e9 / (double)i;
}

/* An upstream-like certificate with 50 DNS SANs, signed by our own CA. */
static unsigned char *
make_upstream(struct signer *s, struct certforge *cf, size_t *len)
{
	static char names[50][32];
	struct leaf_san sans[50];
	struct leaf_request req;
	unsigned char *der = malloc(SIGNER_DER_MAX), spki[512];
	char err[256];
	int64_t now = (int64_t)time(NULL);
	int i, n;

	for (i = 0; i < 50; i++) {
		snprintf(names[i], sizeof(names[i]), "san%02d.upstream.example", i);
		sans[i].type = LEAF_SAN_DNS;
		sans[i].value = (const unsigned char *)names[i];
		sans[i].len = strlen(names[i]);
	}
	n = mbedtls_pk_write_pubkey_der(certforge_leaf_key(cf), spki, sizeof(spki));
	memset(&req, 0, sizeof(req));
	req.subject_cn = names[0];
	req.sans = sans;
	req.nsans = 50;
	req.not_before = now - 86400;
	req.not_after = now + 90 * 86400;
	req.spki_der = spki + sizeof(spki) - n;
	req.spki_len = (size_t)n;
	if (der == NULL || signer_sign_leaf(s, &req, der, SIGNER_DER_MAX, len, err,
	    sizeof(err)) != SIGNER_OK)
		die("upstream", err);
	return der;
}

/*
 * Microseconds per refused request (a CN not in normal form): no signature,
 * so in a signer process this is the round trip and the encoding alone.
 */
static double
bench_refusal(struct signer *s, double secs)
{
	struct leaf_san san = { LEAF_SAN_DNS, (const unsigned char *)"x.example", 9 };
	struct leaf_request req = { .subject_cn = "NOT.Normal", .sans = &san,
	    .nsans = 1 };
	unsigned char *der = malloc(SIGNER_DER_MAX);
	char err[256];
	double t0 = now_s(), t;
	size_t len;
	long i;

	for (i = 0; i < MAX_ITERS; i++) {
		if (der == NULL || signer_sign_leaf(s, &req, der, SIGNER_DER_MAX, &len,
		    err, sizeof(err)) != SIGNER_BAD_REQUEST)
			die("refusal", "not refused");
		if ((i & 63) == 63 && (t = now_s() - t0) >= secs)
			break;
	}
	free(der);
	return (now_s() - t0) * 1e6 / (double)(i + 1);
}

/* Signatures per second with an RSA-2048 key (what an RSA CA would cost). */
static double
bench_rsa2048(double secs)
{
	unsigned char hash[32] = { 1 }, sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
	mbedtls_pk_context pk;
	double t0, t;
	size_t siglen;
	long i;

	mbedtls_pk_init(&pk);
	if (mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)) != 0 ||
	    mbedtls_rsa_gen_key(mbedtls_pk_rsa(pk), mbedtls_psa_get_random,
	    MBEDTLS_PSA_RANDOM_STATE, 2048, 65537) != 0)
		die("rsa", "key generation failed");
	t0 = now_s();
	for (i = 0; i < MAX_ITERS; i++) {
		if (mbedtls_pk_sign(&pk, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig,
		    sizeof(sig), &siglen, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE) != 0)
			die("rsa", "sign failed");
		if ((t = now_s() - t0) >= secs) {
			mbedtls_pk_free(&pk);
			return (double)(i + 1) / t;
		}
	}
	mbedtls_pk_free(&pk);
	return (double)i / (now_s() - t0);
}

int
main(int argc, char **argv)
{
	char dir[] = "/tmp/bench_certforge.XXXXXX", err[512], cmd[128];
	double secs = argc > 1 ? atof(argv[1]) : 1.0, t0;
	struct certforge *nocache, *cached;
	struct signer *s;
	struct ca *ca;
	unsigned char *up;
	size_t uplen;

	if (secs <= 0 || secs > 60)
		secs = 1.0;
	log_init("bench_certforge", 1, LOG_LEVEL_WARN);
	if (mkdtemp(dir) == NULL)
		die("mkdtemp", "failed");

	t0 = now_s();
	if (ca_open(dir, CA_LOAD_OR_CREATE, &ca, err, sizeof(err)) != 0)
		die("ca_open", err);
	printf("CA creation (P-256 key, self-signed, files):   %8.2f ms\n",
	    (now_s() - t0) * 1e3);
	if ((s = signer_new(ca)) == NULL)
		die("signer_new", "failed");
	if ((nocache = certforge_new(s, ca_cert(ca), 0, 0, err, sizeof(err))) == NULL ||
	    (cached = certforge_new(s, ca_cert(ca), 4096, 0, err, sizeof(err))) == NULL)
		die("certforge_new", err);
	up = make_upstream(s, nocache, &uplen);

	printf("leaf forging, SNI only (sign + parse):         %8.0f leaves/s\n",
	    bench_misses(nocache, NULL, 0, secs));
	printf("leaf forging, 50-SAN upstream cert (%4zu B):    %8.0f leaves/s\n", uplen,
	    bench_misses(nocache, up, uplen, secs));
	{
		/* The same again with the key in a signer process, as in
		 * proxyd.  The CA is opened a second time: spawning makes
		 * the opener forget its key. */
		struct certforge *remote_cf;
		struct signer *remote;
		struct ca *ca2;
		double in_proc, sep;

		if (ca_open(dir, CA_LOAD_ONLY, &ca2, err, sizeof(err)) != 0)
			die("ca_open", err);
		/* Throughput, not proxyd's rate limit, is what is measured. */
		signer_set_rate_limit(0, 0);
		if ((remote = signer_spawn(ca2, err, sizeof(err))) == NULL ||
		    (remote_cf = certforge_new(remote, ca_cert(ca2), 0, 0, err,
		    sizeof(err))) == NULL)
			die("signer_spawn", err);
		double in_up = 0, sep_up = 0, v;
		int r;

		/* Interleaved short rounds, best of each: on a shared machine
		 * one long run each mostly measures who else was running. */
		in_proc = sep = 0;
		for (r = 0; r < 8; r++) {
			if ((v = bench_misses(nocache, NULL, 0, secs / 8)) > in_proc)
				in_proc = v;
			if ((v = bench_misses(remote_cf, NULL, 0, secs / 8)) > sep)
				sep = v;
			if ((v = bench_misses(nocache, up, uplen, secs / 8)) > in_up)
				in_up = v;
			if ((v = bench_misses(remote_cf, up, uplen, secs / 8)) > sep_up)
				sep_up = v;
		}
		printf("SNI only, signer in-process / process:         %8.0f / %.0f "
		    "leaves/s (%.2fx, %+.0f us/leaf)\n", in_proc, sep, sep / in_proc,
		    (1 / sep - 1 / in_proc) * 1e6);
		printf("50-SAN upstream, signer in-process / process:  %8.0f / %.0f "
		    "leaves/s (%.2fx, %+.0f us/leaf)\n", in_up, sep_up, sep_up / in_up,
		    (1 / sep_up - 1 / in_up) * 1e6);
		printf("refused request, signer in-process / process: %8.1f / %.1f us\n",
		    bench_refusal(s, secs / 4), bench_refusal(remote, secs / 4));
		certforge_free(remote_cf);
		signer_free(remote);
		ca_free(ca2);
	}
	printf("cache hit, SNI only:                           %8.0f ns/get\n",
	    bench_hits(cached, NULL, 0, secs));
	printf("cache hit, with upstream cert (SHA-256 of it): %8.0f ns/get\n",
	    bench_hits(cached, up, uplen, secs));
	printf("for comparison, RSA-2048 CA signatures:        %8.0f signs/s\n",
	    bench_rsa2048(secs));

	free(up);
	certforge_free(nocache);
	certforge_free(cached);
	signer_free(s);
	ca_free(ca);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : 1;
}
