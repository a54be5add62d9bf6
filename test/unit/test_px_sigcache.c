/*
 * Unit tests for the certificate signature cache in our mbedTLS build
 * (scripts/mbedtls/localcap_x509_sigcache.c): a chain verified once is not
 * re-verified cryptographically, but every other check still runs on a hit
 * (host name, expiry); failures are never remembered; a certificate under a
 * different key of the same name, or with a damaged signature, is refused
 * every time; switched off, nothing is remembered.  The PKI is made with
 * openssl(1) in a temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

#if defined(MBEDTLS_X509_LOCALCAP_SIGCACHE)

static char g_dir[64];
static mbedtls_x509_crt g_ca, g_ca2, g_up, g_expired, g_bad;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd) == 0 ? 0 : -1;
}

static int
load(mbedtls_x509_crt *c, const char *name)
{
	char p[128];

	snprintf(p, sizeof(p), "%s/%s", g_dir, name);
	mbedtls_x509_crt_init(c);
	return mbedtls_x509_crt_parse_file(c, p);
}

static int
group_setup(void **state)
{
	const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
	const char *ca = "-subj '/CN=Sigcache Test CA' -days 30 "
	    "-addext basicConstraints=critical,CA:TRUE "
	    "-addext keyUsage=critical,keyCertSign,cRLSign";
	FILE *f;
	unsigned char der[4096];
	size_t n;

	(void)state;
	snprintf(g_dir, sizeof(g_dir), "/tmp/lc-sigcache.XXXXXX");
	if (mkdtemp(g_dir) == NULL || psa_crypto_init() != PSA_SUCCESS)
		return -1;
	/* Two CAs with the same name and different keys; leaves of the first. */
	if (sh("(cd '%s' && openssl req -x509 %s -keyout ca.key -out ca.pem %s && "
	    "openssl req -x509 %s -keyout ca2.key -out ca2.pem %s && "
	    "openssl req -new %s -keyout up.key -out up.csr -subj '/CN=up.test' && "
	    "printf 'subjectAltName=DNS:up.test\\n' >san && "
	    "openssl x509 -req -in up.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
	    "-days 30 -extfile san -out up.pem && "
	    "openssl x509 -req -in up.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
	    "-days -1 -extfile san -out expired.pem && "
	    "openssl x509 -in up.pem -outform DER -out up.der) >/dev/null 2>&1",
	    g_dir, ec, ca, ec, ca, ec) != 0)
		return -1;
	/* up.der with the last byte of its signature changed. */
	{
		char p[128];

		snprintf(p, sizeof(p), "%s/up.der", g_dir);
		if ((f = fopen(p, "rb")) == NULL)
			return -1;
		n = fread(der, 1, sizeof(der), f);
		fclose(f);
		if (n < 100)
			return -1;
		der[n - 1] ^= 0x01;
		mbedtls_x509_crt_init(&g_bad);
		if (mbedtls_x509_crt_parse_der(&g_bad, der, n) != 0)
			return -1;
	}
	if (load(&g_ca, "ca.pem") != 0 || load(&g_ca2, "ca2.pem") != 0 ||
	    load(&g_up, "up.pem") != 0 || load(&g_expired, "expired.pem") != 0)
		return -1;
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	mbedtls_x509_crt_free(&g_ca);
	mbedtls_x509_crt_free(&g_ca2);
	mbedtls_x509_crt_free(&g_up);
	mbedtls_x509_crt_free(&g_expired);
	mbedtls_x509_crt_free(&g_bad);
	sh("rm -rf '%s'", g_dir);
	return 0;
}

static int
setup(void **state)
{
	(void)state;
	/* Each test starts from an empty cache. */
	localcap_x509_sigcache_enable(0);
	localcap_x509_sigcache_enable(1);
	return 0;
}

/* Verifies crt under ca for cn; returns the flags; *hits, *misses: deltas. */
static uint32_t
verify(mbedtls_x509_crt *crt, mbedtls_x509_crt *ca, const char *cn,
    uint64_t *hits, uint64_t *misses)
{
	uint64_t h0, m0, h1, m1;
	uint32_t flags = 0;

	localcap_x509_sigcache_stats(&h0, &m0);
	(void)mbedtls_x509_crt_verify(crt, ca, NULL, cn, &flags, NULL, NULL);
	localcap_x509_sigcache_stats(&h1, &m1);
	*hits = h1 - h0;
	*misses = m1 - m0;
	return flags;
}

static void
test_second_verification_is_a_hit(void **state)
{
	uint64_t h, m;

	(void)state;
	assert_int_equal(verify(&g_up, &g_ca, "up.test", &h, &m), 0);
	assert_int_equal(h, 0);
	assert_int_equal(m, 1);
	assert_int_equal(verify(&g_up, &g_ca, "up.test", &h, &m), 0);
	assert_int_equal(h, 1);
	assert_int_equal(m, 0);
}

static void
test_other_checks_still_run_on_a_hit(void **state)
{
	uint64_t h, m;

	(void)state;
	assert_int_equal(verify(&g_up, &g_ca, "up.test", &h, &m), 0);
	/* The signature is remembered; the name is checked all the same. */
	assert_int_equal(verify(&g_up, &g_ca, "wrong.test", &h, &m),
	    MBEDTLS_X509_BADCERT_CN_MISMATCH);
	assert_int_equal(h, 1);
	/* An expired certificate with a good signature: expired every time. */
	assert_true(verify(&g_expired, &g_ca, "up.test", &h, &m) &
	    MBEDTLS_X509_BADCERT_EXPIRED);
	assert_true(verify(&g_expired, &g_ca, "up.test", &h, &m) &
	    MBEDTLS_X509_BADCERT_EXPIRED);
	assert_int_equal(h, 1);
}

static void
test_failures_are_not_remembered(void **state)
{
	uint64_t h, m;

	(void)state;
	/* Same issuer name, another key: refused, twice, no hit. */
	for (int i = 0; i < 2; i++) {
		assert_true(verify(&g_up, &g_ca2, "up.test", &h, &m) &
		    MBEDTLS_X509_BADCERT_NOT_TRUSTED);
		assert_int_equal(h, 0);
	}
	/* A damaged signature, even after the good certificate was cached. */
	assert_int_equal(verify(&g_up, &g_ca, "up.test", &h, &m), 0);
	for (int i = 0; i < 2; i++) {
		assert_true(verify(&g_bad, &g_ca, "up.test", &h, &m) &
		    MBEDTLS_X509_BADCERT_NOT_TRUSTED);
		assert_int_equal(h, 0);
	}
}

static void
test_switched_off(void **state)
{
	uint64_t h, m;

	(void)state;
	assert_int_equal(verify(&g_up, &g_ca, "up.test", &h, &m), 0);
	localcap_x509_sigcache_enable(0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(verify(&g_up, &g_ca, "up.test", &h, &m), 0);
		assert_int_equal(h + m, 0);
	}
	/* Switching off forgot what was there. */
	localcap_x509_sigcache_enable(1);
	assert_int_equal(verify(&g_up, &g_ca, "up.test", &h, &m), 0);
	assert_int_equal(m, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_second_verification_is_a_hit, setup),
		cmocka_unit_test_setup(test_other_checks_still_run_on_a_hit, setup),
		cmocka_unit_test_setup(test_failures_are_not_remembered, setup),
		cmocka_unit_test_setup(test_switched_off, setup),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

#else /* a stock mbedTLS: nothing to test */

static void
test_no_sigcache(void **state)
{
	(void)state;
	skip();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_sigcache),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
