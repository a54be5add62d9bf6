/*
 * Unit tests for proxyd/ca.c: the CA is created once with a private key file
 * that is never readable by others, reused afterwards, exported as PEM and
 * DER, and refused with a message naming the file when it looks wrong.
 * Certificate fields are checked both through mbedTLS and with openssl(1).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <mbedtls/x509_crt.h>

#include "log.h"
#include "proxyd/ca.h"

struct fixture {
	char	dir[64];
	char	err[512];
};

/* A second install next to the fixture's (inside its directory). */
static void
other_install(const struct fixture *f, struct fixture *other)
{
	memset(other, 0, sizeof(*other));
	assert_true(strlen(f->dir) + 7 < sizeof(other->dir));
	memcpy(other->dir, f->dir, strlen(f->dir));
	strcat(other->dir, "/other");
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	strcpy(f->dir, "/tmp/test_px_ca.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void
path_in(const struct fixture *f, const char *name, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/%s", f->dir, name);
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	assert_true(n >= 0);
	rewind(fp);
	buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	if (len != NULL)
		*len = (size_t)n;
	return buf;
}

static void
spew(const char *path, const char *data, size_t len, mode_t mode)
{
	int fd;

	(void)unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* Runs a shell command and returns its stdout (static buffer) or NULL. */
static const char *
run(const char *cmd, int *status)
{
	static char out[8192];
	FILE *p = popen(cmd, "r");
	size_t n;

	assert_non_null(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	*status = pclose(p);
	return out;
}

static struct ca *
open_ok(struct fixture *f)
{
	struct ca *ca = NULL;

	if (ca_open(f->dir, CA_LOAD_OR_CREATE, &ca, f->err, sizeof(f->err)) != 0)
		fail_msg("ca_open: %s", f->err);
	return ca;
}

static void
ca_created_once_then_reused(void **state)
{
	struct fixture *f = *state;
	struct ca *a, *b;
	const unsigned char *da, *db;
	size_t la, lb;
	char path[128];
	struct stat st;

	a = open_ok(f);
	assert_true(ca_was_created(a));
	path_in(f, CA_SECRET_FILE, path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_nlink, 1);	/* temporary link removed */

	b = open_ok(f);
	assert_false(ca_was_created(b));
	da = ca_cert_der(a, &la);
	db = ca_cert_der(b, &lb);
	assert_int_equal(la, lb);
	assert_memory_equal(da, db, la);
	ca_free(a);
	ca_free(b);
}

static void
ca_state_dir_created_private(void **state)
{
	struct fixture *f = *state;
	struct ca *ca = NULL;
	char sub[128];
	struct stat st;

	snprintf(sub, sizeof(sub), "%s/state", f->dir);
	assert_int_equal(ca_open(sub, CA_LOAD_OR_CREATE, &ca, f->err, sizeof(f->err)), 0);
	assert_int_equal(stat(sub, &st), 0);
	assert_int_equal(st.st_mode & 077, 0);
	ca_free(ca);
}

static void
ca_load_only_refuses_missing_ca(void **state)
{
	struct fixture *f = *state;
	struct ca *ca = NULL;

	assert_int_equal(ca_open(f->dir, CA_LOAD_ONLY, &ca, f->err, sizeof(f->err)), -1);
	assert_null(ca);
	assert_non_null(strstr(f->err, CA_SECRET_FILE));
}

static void
ca_refuses_key_readable_by_group(void **state)
{
	struct fixture *f = *state;
	struct ca *ca;
	char path[128];

	ca_free(open_ok(f));
	path_in(f, CA_SECRET_FILE, path, sizeof(path));
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(ca_open(f->dir, CA_LOAD_OR_CREATE, &ca, f->err, sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, path));
	assert_non_null(strstr(f->err, "group or other"));
	assert_int_equal(chmod(path, 0604), 0);
	assert_int_equal(ca_open(f->dir, CA_LOAD_OR_CREATE, &ca, f->err, sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, "0604"));
}

static void
ca_refuses_key_owned_by_someone_else(void **state)
{
	struct fixture *f = *state;
	struct ca *ca;
	char path[128];

	if (geteuid() != 0)
		skip();		/* only root can give a file away */
	ca_free(open_ok(f));
	path_in(f, CA_SECRET_FILE, path, sizeof(path));
	assert_int_equal(chown(path, 65534, 65534), 0);
	assert_int_equal(ca_open(f->dir, CA_LOAD_OR_CREATE, &ca, f->err, sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, path));
	assert_non_null(strstr(f->err, "owned by uid 65534"));
}

static void
ca_refuses_symlinked_key(void **state)
{
	struct fixture *f = *state;
	struct ca *ca;
	char path[128], real[128];

	ca_free(open_ok(f));
	path_in(f, CA_SECRET_FILE, path, sizeof(path));
	path_in(f, "real.pem", real, sizeof(real));
	assert_int_equal(rename(path, real), 0);
	assert_int_equal(symlink(real, path), 0);
	assert_int_equal(ca_open(f->dir, CA_LOAD_OR_CREATE, &ca, f->err, sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, "symbolic link"));
}

static void
ca_refuses_writable_state_dir(void **state)
{
	struct fixture *f = *state;
	struct ca *ca;

	assert_int_equal(chmod(f->dir, 0777), 0);
	assert_int_equal(ca_open(f->dir, CA_LOAD_OR_CREATE, &ca, f->err, sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, f->dir));
	assert_non_null(strstr(f->err, "writable"));
	assert_int_equal(chmod(f->dir, 0700), 0);
}

/* Splits a secret file at the end of the key block. */
static size_t
key_part_len(const char *pem)
{
	const char *end = strstr(pem, "-----END EC PRIVATE KEY-----\n");

	assert_non_null(end);
	return (size_t)(end - pem) + strlen("-----END EC PRIVATE KEY-----\n");
}

static void
ca_refuses_mismatched_key(void **state)
{
	struct fixture *f = *state;
	struct fixture other;
	struct ca *ca;
	char pa[128], pb[128], *a, *b, *mixed;
	size_t ka, kb, lb;

	ca_free(open_ok(f));
	other_install(f, &other);
	ca_free(open_ok(&other));

	path_in(f, CA_SECRET_FILE, pa, sizeof(pa));
	path_in(&other, CA_SECRET_FILE, pb, sizeof(pb));
	a = slurp(pa, NULL);
	b = slurp(pb, &lb);
	ka = key_part_len(a);
	kb = key_part_len(b);
	/* Our key, the other install's certificate. */
	mixed = calloc(1, ka + lb);
	assert_non_null(mixed);
	memcpy(mixed, a, ka);
	memcpy(mixed + ka, b + kb, lb - kb);
	spew(pa, mixed, ka + lb - kb, 0600);
	assert_int_equal(ca_open(f->dir, CA_LOAD_OR_CREATE, &ca, f->err, sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, pa));
	assert_non_null(strstr(f->err, "does not match"));
	free(a);
	free(b);
	free(mixed);
}

static void
ca_refuses_corrupt_files(void **state)
{
	struct fixture *f = *state;
	static const char garbage[] = "-----BEGIN EC PRIVATE KEY-----\nnot base64 at all\n"
	    "-----END EC PRIVATE KEY-----\n";
	struct ca *ca;
	char path[128], *good, *trunc;
	size_t len;

	ca_free(open_ok(f));
	path_in(f, CA_SECRET_FILE, path, sizeof(path));
	good = slurp(path, &len);

	spew(path, garbage, sizeof(garbage) - 1, 0600);
	assert_int_equal(ca_open(f->dir, CA_LOAD_OR_CREATE, &ca, f->err, sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, path));
	assert_non_null(strstr(f->err, "corrupt"));

	/* Key intact, certificate cut in half. */
	trunc = strndup(good, len - 200);
	spew(path, trunc, strlen(trunc), 0600);
	assert_int_equal(ca_open(f->dir, CA_LOAD_OR_CREATE, &ca, f->err, sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, "corrupt"));

	spew(path, "", 0, 0600);
	assert_int_equal(ca_open(f->dir, CA_LOAD_OR_CREATE, &ca, f->err, sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, "corrupt"));

	/* Key only: a CA needs its certificate too. */
	spew(path, good, key_part_len(good), 0600);
	assert_int_equal(ca_open(f->dir, CA_LOAD_OR_CREATE, &ca, f->err, sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, "certificate"));
	free(good);
	free(trunc);
}

static void
ca_certificate_has_required_fields(void **state)
{
	struct fixture *f = *state;
	const mbedtls_x509_crt *crt;
	char subject[256];
	struct ca *ca;
	int years;

	ca = open_ok(f);
	crt = ca_cert(ca);
	assert_int_equal(mbedtls_x509_crt_get_ca_istrue(crt), 1);
	assert_int_equal(mbedtls_x509_crt_check_key_usage(crt, MBEDTLS_X509_KU_KEY_CERT_SIGN |
	    MBEDTLS_X509_KU_CRL_SIGN), 0);
	assert_int_equal(mbedtls_x509_crt_check_key_usage(crt,
	    MBEDTLS_X509_KU_DIGITAL_SIGNATURE), MBEDTLS_ERR_X509_BAD_INPUT_DATA);
	assert_true(crt->subject_key_id.len == 20);
	assert_true(crt->serial.len >= 8 && crt->serial.len <= 17);
	assert_true(mbedtls_pk_can_do(&crt->pk, MBEDTLS_PK_ECKEY));
	assert_true(mbedtls_x509_dn_gets(subject, sizeof(subject), &crt->subject) > 0);
	assert_non_null(strstr(subject, "O=localcap"));
	assert_non_null(strstr(subject, "CN=localcap CA "));
	years = crt->valid_to.year - crt->valid_from.year;
	assert_true(years == 10 || years == 9);
	ca_free(ca);
}

static void
ca_two_installs_have_distinct_subjects(void **state)
{
	struct fixture *f = *state;
	struct fixture other;
	struct ca *a, *b;
	char sa[256], sb[256];

	other_install(f, &other);
	a = open_ok(f);
	b = open_ok(&other);
	assert_true(mbedtls_x509_dn_gets(sa, sizeof(sa), &ca_cert(a)->subject) > 0);
	assert_true(mbedtls_x509_dn_gets(sb, sizeof(sb), &ca_cert(b)->subject) > 0);
	assert_string_not_equal(sa, sb);
	ca_free(a);
	ca_free(b);
}

static void
ca_extensions_as_openssl_sees_them(void **state)
{
	struct fixture *f = *state;
	const char *out;
	char cmd[512];
	int status;

	ca_free(open_ok(f));
	snprintf(cmd, sizeof(cmd), "openssl x509 -noout -in '%s/%s' "
	    "-ext basicConstraints,keyUsage,subjectKeyIdentifier 2>&1", f->dir,
	    CA_EXPORT_PEM_FILE);
	out = run(cmd, &status);
	assert_int_equal(status, 0);
	assert_non_null(strstr(out, "X509v3 Basic Constraints: critical"));
	assert_non_null(strstr(out, "CA:TRUE, pathlen:0"));
	assert_non_null(strstr(out, "X509v3 Key Usage: critical"));
	assert_non_null(strstr(out, "Certificate Sign, CRL Sign"));
	assert_non_null(strstr(out, "Subject Key Identifier"));
}

static void
ca_exports_pem_and_der_match(void **state)
{
	struct fixture *f = *state;
	const unsigned char *der;
	char path[128], pem[8192], *file;
	struct ca *ca;
	size_t len, flen;
	int n, status;

	ca = open_ok(f);
	der = ca_cert_der(ca, &len);
	path_in(f, CA_EXPORT_DER_FILE, path, sizeof(path));
	file = slurp(path, &flen);
	assert_int_equal(flen, len);
	assert_memory_equal(file, der, len);
	free(file);

	n = ca_cert_pem(ca, pem, sizeof(pem));
	assert_true(n > 0);
	path_in(f, CA_EXPORT_PEM_FILE, path, sizeof(path));
	file = slurp(path, &flen);
	assert_int_equal(flen, (size_t)n);
	assert_memory_equal(file, pem, flen);
	free(file);

	/* A deleted export comes back on the next start, identical. */
	path_in(f, CA_EXPORT_DER_FILE, path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	ca_free(ca);
	ca = open_ok(f);
	file = slurp(path, &flen);
	assert_int_equal(flen, len);
	ca_free(ca);
	free(file);

	snprintf(pem, sizeof(pem), "openssl x509 -inform DER -in '%s' -noout -subject", path);
	(void)run(pem, &status);
	assert_int_equal(status, 0);
}

static void
ca_removes_key_left_by_interrupted_creation(void **state)
{
	struct fixture *f = *state;
	char stale[128], other[128], live[128], name[64];
	struct stat st;
	pid_t dead;

	ca_free(open_ok(f));
	/* A pid that no longer exists: a child we have reaped. */
	fflush(NULL);
	if ((dead = fork()) == 0)
		_exit(0);
	assert_int_equal(waitpid(dead, NULL, 0), dead);
	snprintf(name, sizeof(name), "." CA_SECRET_FILE ".%ld.tmp", (long)dead);
	path_in(f, name, stale, sizeof(stale));
	/* Our own pid stands for a creation still running: left alone. */
	snprintf(name, sizeof(name), "." CA_SECRET_FILE ".%ld.tmp", (long)getpid());
	path_in(f, name, live, sizeof(live));
	spew(live, "racing", 6, 0600);
	path_in(f, "unrelated.tmp", other, sizeof(other));
	spew(stale, "secret", 6, 0600);
	spew(other, "keep", 4, 0600);
	ca_free(open_ok(f));
	assert_int_equal(stat(stale, &st), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(stat(other, &st), 0);
	assert_int_equal(stat(live, &st), 0);
}

/* Several first starts at once must all end up with the same CA. */
static void
ca_concurrent_first_starts_share_one_ca(void **state)
{
	struct fixture *f = *state;
	enum { N = 4 };
	unsigned char first[2048], buf[2048];
	struct dirent *de;
	DIR *dir;
	int entries = 0;
	pid_t pids[N];
	int pipes[N][2], i, status;
	size_t firstlen = 0;
	struct ca *ca;

	fflush(NULL);
	for (i = 0; i < N; i++) {
		assert_int_equal(pipe(pipes[i]), 0);
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			const unsigned char *der;
			size_t len;

			alarm(20);
			if (ca_open(f->dir, CA_LOAD_OR_CREATE, &ca, f->err, sizeof(f->err)) != 0)
				_exit(1);
			der = ca_cert_der(ca, &len);
			_exit(write(pipes[i][1], der, len) == (ssize_t)len ? 0 : 2);
		}
		close(pipes[i][1]);
	}
	for (i = 0; i < N; i++) {
		ssize_t n = read(pipes[i][0], buf, sizeof(buf));

		close(pipes[i][0]);
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		assert_true(n > 0);
		if (i == 0) {
			memcpy(first, buf, (size_t)n);
			firstlen = (size_t)n;
		} else {
			assert_int_equal((size_t)n, firstlen);
			assert_memory_equal(buf, first, firstlen);
		}
	}
	ca = open_ok(f);
	assert_false(ca_was_created(ca));
	assert_memory_equal(ca_cert_der(ca, &firstlen), first, firstlen);
	ca_free(ca);
	/* Nothing but the CA and its two exports: no temporary survives. */
	dir = opendir(f->dir);
	assert_non_null(dir);
	while ((de = readdir(dir)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			entries++;
	closedir(dir);
	assert_int_equal(entries, 3);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(ca_created_once_then_reused, setup, teardown),
		cmocka_unit_test_setup_teardown(ca_state_dir_created_private, setup, teardown),
		cmocka_unit_test_setup_teardown(ca_load_only_refuses_missing_ca, setup, teardown),
		cmocka_unit_test_setup_teardown(ca_refuses_key_readable_by_group, setup, teardown),
		cmocka_unit_test_setup_teardown(ca_refuses_key_owned_by_someone_else, setup, teardown),
		cmocka_unit_test_setup_teardown(ca_refuses_symlinked_key, setup, teardown),
		cmocka_unit_test_setup_teardown(ca_refuses_writable_state_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(ca_refuses_mismatched_key, setup, teardown),
		cmocka_unit_test_setup_teardown(ca_refuses_corrupt_files, setup, teardown),
		cmocka_unit_test_setup_teardown(ca_certificate_has_required_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(ca_two_installs_have_distinct_subjects, setup, teardown),
		cmocka_unit_test_setup_teardown(ca_extensions_as_openssl_sees_them, setup, teardown),
		cmocka_unit_test_setup_teardown(ca_exports_pem_and_der_match, setup, teardown),
		cmocka_unit_test_setup_teardown(ca_removes_key_left_by_interrupted_creation, setup, teardown),
		cmocka_unit_test_setup_teardown(ca_concurrent_first_starts_share_one_ca, setup, teardown),
	};

	log_init("test_px_ca", 1, LOG_LEVEL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
