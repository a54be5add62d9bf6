/*
 * CA storage and creation (see ca.h for the file layout).
 *
 * Every file is reached through a directory fd opened with O_NOFOLLOW after
 * checking that the directory belongs to us and is not writable by others,
 * so nobody else can swap a file under us.  The secret file is written under
 * a temporary name created with O_CREAT|O_EXCL|O_NOFOLLOW and mode 0600 from
 * the start (never chmod after the key is in it), then published with
 * linkat(), which refuses to replace an existing file: two proxyd starting at
 * once end up sharing one CA, and a crash mid-write leaves no half CA behind.
 *
 * Key type: ECDSA P-256 (docs/proxyd-tls.md says why).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/ecp.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/psa_util.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

#include "proxyd/tlserr.h"
#include "errmsg.h"
#include "log.h"
#include "proxyd/ca.h"
#include "proxyd/x509util.h"

#define PEM_CERT_BEGIN	"-----BEGIN CERTIFICATE-----\n"
#define PEM_CERT_END	"-----END CERTIFICATE-----\n"

struct ca {
	mbedtls_pk_context	key;
	mbedtls_x509_crt	crt;
	bool			created;
};

/* Opens the state directory and checks who may write into it. */
static int
open_state_dir(const char *dir, enum ca_open_mode mode, char *err, size_t errlen)
{
	struct stat st;
	int dfd;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd == -1 && errno == ENOENT && mode == CA_LOAD_OR_CREATE) {
		if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
			seterr(err, errlen, "state dir %s: mkdir: %s", dir, strerror(errno));
			return -1;
		}
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (dfd == -1) {
		seterr(err, errlen, "state dir %s: %s", dir,
		    errno == ELOOP ? "is a symbolic link" : strerror(errno));
		return -1;
	}
	if (fstat(dfd, &st) == -1) {
		seterr(err, errlen, "state dir %s: fstat: %s", dir, strerror(errno));
		close(dfd);
		return -1;
	}
	if (st.st_uid != geteuid()) {
		seterr(err, errlen, "state dir %s: owned by uid %u, not by us (uid %u)",
		    dir, (unsigned)st.st_uid, (unsigned)geteuid());
		close(dfd);
		return -1;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		seterr(err, errlen, "state dir %s: writable by group or other (mode %04o)",
		    dir, (unsigned)(st.st_mode & 07777));
		close(dfd);
		return -1;
	}
	return dfd;
}

static int
write_all(int fd, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Writes a public export atomically (temporary file, then renameat over any
 * old one).  Only called with the certificate: public data, mode 0644.
 */
static int
write_public_file(int dfd, const char *dir, const char *name, const void *data,
    size_t len, char *err, size_t errlen)
{
	char tmp[64];
	int fd;

	snprintf(tmp, sizeof(tmp), ".%s.%ld.tmp", name, (long)getpid());
	(void)unlinkat(dfd, tmp, 0);
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd == -1) {
		seterr(err, errlen, "%s/%s: %s", dir, tmp, strerror(errno));
		return -1;
	}
	if (write_all(fd, data, len) == -1 || fsync(fd) == -1) {
		seterr(err, errlen, "%s/%s: write: %s", dir, tmp, strerror(errno));
		close(fd);
		(void)unlinkat(dfd, tmp, 0);
		return -1;
	}
	close(fd);
	if (renameat(dfd, tmp, dfd, name) == -1) {
		seterr(err, errlen, "%s/%s: rename: %s", dir, name, strerror(errno));
		(void)unlinkat(dfd, tmp, 0);
		return -1;
	}
	return 0;
}

int
ca_cert_pem(const struct ca *ca, char *buf, size_t bufsize)
{
	size_t olen = 0;

	if (mbedtls_pem_write_buffer(PEM_CERT_BEGIN, PEM_CERT_END, ca->crt.raw.p,
	    ca->crt.raw.len, (unsigned char *)buf, bufsize, &olen) != 0)
		return -1;
	/* olen counts the terminating NUL. */
	return (int)(olen > 0 ? olen - 1 : 0);
}

/* (Re)writes the exports when one is missing; they are derived data. */
static int
ensure_exports(const struct ca *ca, int dfd, const char *dir, char *err, size_t errlen)
{
	char pem[8192];
	int len;

	if (faccessat(dfd, CA_EXPORT_PEM_FILE, F_OK, AT_SYMLINK_NOFOLLOW) == 0 &&
	    faccessat(dfd, CA_EXPORT_DER_FILE, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	if ((len = ca_cert_pem(ca, pem, sizeof(pem))) < 0) {
		seterr(err, errlen, "%s/%s: certificate does not fit a PEM buffer", dir,
		    CA_SECRET_FILE);
		return -1;
	}
	if (write_public_file(dfd, dir, CA_EXPORT_PEM_FILE, pem, (size_t)len, err,
	    errlen) == -1)
		return -1;
	return write_public_file(dfd, dir, CA_EXPORT_DER_FILE, ca->crt.raw.p,
	    ca->crt.raw.len, err, errlen);
}

static int
load_secret(struct ca *ca, int dfd, const char *dir, char *err, size_t errlen)
{
	unsigned char *buf = NULL;
	char why[128];
	struct stat st;
	size_t len = 0;
	int fd, ret, rc = -1;

	fd = openat(dfd, CA_SECRET_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1) {
		seterr(err, errlen, "%s/%s: %s", dir, CA_SECRET_FILE,
		    errno == ELOOP ? "is a symbolic link" : strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		seterr(err, errlen, "%s/%s: fstat: %s", dir, CA_SECRET_FILE, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		seterr(err, errlen, "%s/%s: not a regular file", dir, CA_SECRET_FILE);
		goto out;
	}
	if (st.st_uid != geteuid()) {
		seterr(err, errlen, "%s/%s: owned by uid %u, not by us (uid %u)", dir,
		    CA_SECRET_FILE, (unsigned)st.st_uid, (unsigned)geteuid());
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		seterr(err, errlen, "%s/%s: private key accessible by group or other "
		    "(mode %04o); chmod 600 it if it was never exposed, otherwise remove "
		    "it and distrust the old CA", dir, CA_SECRET_FILE,
		    (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if (st.st_size <= 0 || st.st_size > CA_FILE_MAX) {
		seterr(err, errlen, "%s/%s: corrupt: size %lld not in 1..%d", dir,
		    CA_SECRET_FILE, (long long)st.st_size, CA_FILE_MAX);
		goto out;
	}
	/* +1: mbedTLS's PEM parsers want the terminating NUL counted. */
	if ((buf = calloc(1, (size_t)st.st_size + 1)) == NULL) {
		seterr(err, errlen, "%s/%s: out of memory", dir, CA_SECRET_FILE);
		goto out;
	}
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			seterr(err, errlen, "%s/%s: read: %s", dir, CA_SECRET_FILE,
			    n == 0 ? "short file" : strerror(errno));
			goto out;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';

	if ((ret = mbedtls_pk_parse_key(&ca->key, buf, len + 1, NULL, 0,
	    mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE)) != 0) {
		seterr(err, errlen, "%s/%s: corrupt: no usable private key (%s)", dir,
		    CA_SECRET_FILE, tls_strerror(ret, why, sizeof(why)));
		goto out;
	}
	if ((ret = mbedtls_x509_crt_parse(&ca->crt, buf, len + 1)) != 0) {
		seterr(err, errlen, "%s/%s: corrupt: no usable certificate (%s)", dir,
		    CA_SECRET_FILE, ret > 0 ? "some certificates failed to parse" :
		    tls_strerror(ret, why, sizeof(why)));
		goto out;
	}
	if (ca->crt.next != NULL) {
		seterr(err, errlen, "%s/%s: holds more than one certificate", dir,
		    CA_SECRET_FILE);
		goto out;
	}
	if (mbedtls_x509_crt_get_ca_istrue(&ca->crt) != 1 ||
	    mbedtls_x509_crt_check_key_usage(&ca->crt, MBEDTLS_X509_KU_KEY_CERT_SIGN) != 0) {
		seterr(err, errlen, "%s/%s: certificate is not a CA certificate "
		    "(basicConstraints CA:TRUE and keyCertSign needed)", dir, CA_SECRET_FILE);
		goto out;
	}
	if ((ret = mbedtls_pk_check_pair(&ca->crt.pk, &ca->key, mbedtls_psa_get_random,
	    MBEDTLS_PSA_RANDOM_STATE)) != 0) {
		seterr(err, errlen, "%s/%s: private key does not match the certificate",
		    dir, CA_SECRET_FILE);
		goto out;
	}
	if (mbedtls_x509_time_is_past(&ca->crt.valid_to)) {
		seterr(err, errlen, "%s/%s: CA certificate expired on %04d-%02d-%02d; "
		    "remove the file to create a new CA", dir, CA_SECRET_FILE,
		    ca->crt.valid_to.year, ca->crt.valid_to.mon, ca->crt.valid_to.day);
		goto out;
	}
	rc = 0;
out:
	if (buf != NULL) {
		mbedtls_platform_zeroize(buf, len);
		free(buf);
	}
	close(fd);
	return rc;
}

/* Builds a fresh key and self-signed certificate into ca (not yet on disk). */
static int
generate(struct ca *ca, char *err, size_t errlen)
{
	unsigned char der[4096], serial[X509U_SERIAL_MAX], rnd[4];
	char subject[64], nb[16], na[16], why[128];
	mbedtls_x509write_cert w;
	size_t serial_len;
	time_t now = time(NULL);
	int ret;

	if ((ret = mbedtls_pk_setup(&ca->key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY))) != 0 ||
	    (ret = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(ca->key),
	    mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE)) != 0) {
		seterr(err, errlen, "CA key generation failed: %s",
		    tls_strerror(ret, why, sizeof(why)));
		return -1;
	}
	/* A short random id keeps two installs' CAs apart in trust stores. */
	if (psa_generate_random(rnd, sizeof(rnd)) != PSA_SUCCESS ||
	    x509u_random_serial(serial, &serial_len) != 0) {
		seterr(err, errlen, "CA creation: no randomness");
		return -1;
	}
	snprintf(subject, sizeof(subject), "O=localcap,CN=localcap CA %02x%02x%02x%02x",
	    rnd[0], rnd[1], rnd[2], rnd[3]);
	/* Backdated a day so clients with a slightly slow clock accept it. */
	x509u_format_time(now - 86400, nb);
	x509u_format_time(now + (time_t)CA_VALIDITY_DAYS * 86400, na);

	mbedtls_x509write_crt_init(&w);
	mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
	mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
	mbedtls_x509write_crt_set_subject_key(&w, &ca->key);
	mbedtls_x509write_crt_set_issuer_key(&w, &ca->key);
	if ((ret = mbedtls_x509write_crt_set_serial_raw(&w, serial, serial_len)) != 0 ||
	    (ret = mbedtls_x509write_crt_set_validity(&w, nb, na)) != 0 ||
	    (ret = mbedtls_x509write_crt_set_subject_name(&w, subject)) != 0 ||
	    (ret = mbedtls_x509write_crt_set_issuer_name(&w, subject)) != 0 ||
	    (ret = mbedtls_x509write_crt_set_basic_constraints(&w, 1, 0)) != 0 ||
	    (ret = mbedtls_x509write_crt_set_key_usage(&w,
	    MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN)) != 0 ||
	    (ret = mbedtls_x509write_crt_set_subject_key_identifier(&w)) != 0 ||
	    (ret = mbedtls_x509write_crt_set_authority_key_identifier(&w)) != 0) {
		mbedtls_x509write_crt_free(&w);
		seterr(err, errlen, "CA certificate: %s", tls_strerror(ret, why, sizeof(why)));
		return -1;
	}
	ret = mbedtls_x509write_crt_der(&w, der, sizeof(der), mbedtls_psa_get_random,
	    MBEDTLS_PSA_RANDOM_STATE);
	mbedtls_x509write_crt_free(&w);
	if (ret < 0) {
		seterr(err, errlen, "CA certificate: %s", tls_strerror(ret, why, sizeof(why)));
		return -1;
	}
	/* mbedTLS writes DER at the end of the buffer. */
	if ((ret = mbedtls_x509_crt_parse_der(&ca->crt, der + sizeof(der) - (size_t)ret,
	    (size_t)ret)) != 0) {
		seterr(err, errlen, "CA certificate does not parse back: %s",
		    tls_strerror(ret, why, sizeof(why)));
		return -1;
	}
	return 0;
}

/*
 * Writes key + certificate to the secret file.  Returns 0 when our file was
 * published, 1 when another process won the race (its CA should be loaded
 * instead), -1 on error.
 */
static int
store_secret(struct ca *ca, int dfd, const char *dir, char *err, size_t errlen)
{
	unsigned char keypem[1024 * 4];
	char certpem[8192], tmp[64], why[128];
	int fd, ret, rc = -1, certlen;

	if ((ret = mbedtls_pk_write_key_pem(&ca->key, keypem, sizeof(keypem))) != 0) {
		seterr(err, errlen, "CA key encoding: %s", tls_strerror(ret, why, sizeof(why)));
		return -1;
	}
	if ((certlen = ca_cert_pem(ca, certpem, sizeof(certpem))) < 0) {
		seterr(err, errlen, "CA certificate encoding failed");
		goto wipe;
	}
	snprintf(tmp, sizeof(tmp), ".%s.%ld.tmp", CA_SECRET_FILE, (long)getpid());
	(void)unlinkat(dfd, tmp, 0);	/* ours from a previous crash, same pid */
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1) {
		seterr(err, errlen, "%s/%s: %s", dir, tmp, strerror(errno));
		goto wipe;
	}
	if (write_all(fd, keypem, strlen((char *)keypem)) == -1 ||
	    write_all(fd, certpem, (size_t)certlen) == -1 || fsync(fd) == -1) {
		seterr(err, errlen, "%s/%s: write: %s", dir, tmp, strerror(errno));
		close(fd);
		(void)unlinkat(dfd, tmp, 0);
		goto wipe;
	}
	close(fd);
	if (linkat(dfd, tmp, dfd, CA_SECRET_FILE, 0) == -1) {
		int saved = errno;

		(void)unlinkat(dfd, tmp, 0);
		if (saved == EEXIST) {
			rc = 1;
			goto wipe;
		}
		seterr(err, errlen, "%s/%s: link: %s", dir, CA_SECRET_FILE, strerror(saved));
		goto wipe;
	}
	(void)unlinkat(dfd, tmp, 0);
	(void)fsync(dfd);
	rc = 0;
wipe:
	mbedtls_platform_zeroize(keypem, sizeof(keypem));
	return rc;
}

/*
 * A creation killed between writing its temporary key file and publishing
 * it leaves a private key behind under ".localcap-ca.pem.<pid>.tmp".  Such
 * a file is removed once its creator is gone; one whose process is alive may
 * belong to a creation racing with us (it will unlink it itself).
 */
static void
remove_stale_temporaries(int dfd, const char *dir)
{
	static const char prefix[] = "." CA_SECRET_FILE ".";
	struct dirent *de;
	DIR *d;
	int fd;

	if ((fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		char *end;
		long pid;

		if (strncmp(de->d_name, prefix, sizeof(prefix) - 1) != 0 || len < 4 ||
		    strcmp(de->d_name + len - 4, ".tmp") != 0)
			continue;
		errno = 0;
		pid = strtol(de->d_name + sizeof(prefix) - 1, &end, 10);
		if (errno != 0 || pid <= 0 || pid > INT_MAX || strcmp(end, ".tmp") != 0)
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;	/* alive (or not ours to know): leave it */
		if (unlinkat(dfd, de->d_name, 0) == 0)
			log_warnx("%s/%s: removed a key file left by an interrupted "
			    "CA creation", dir, de->d_name);
	}
	closedir(d);
}

static struct ca *
ca_alloc(void)
{
	struct ca *ca = calloc(1, sizeof(*ca));

	if (ca == NULL)
		return NULL;
	mbedtls_pk_init(&ca->key);
	mbedtls_x509_crt_init(&ca->crt);
	return ca;
}

void
ca_free(struct ca *ca)
{
	if (ca == NULL)
		return;
	mbedtls_pk_free(&ca->key);
	mbedtls_x509_crt_free(&ca->crt);
	free(ca);
}

int
ca_open(const char *dir, enum ca_open_mode mode, struct ca **out, char *err, size_t errlen)
{
	struct ca *ca = NULL;
	int dfd, rc;

	*out = NULL;
	if (psa_crypto_init() != PSA_SUCCESS) {
		seterr(err, errlen, "psa_crypto_init failed");
		return -1;
	}
	if ((dfd = open_state_dir(dir, mode, err, errlen)) == -1)
		return -1;
	if ((ca = ca_alloc()) == NULL) {
		seterr(err, errlen, "out of memory");
		close(dfd);
		return -1;
	}

	if (faccessat(dfd, CA_SECRET_FILE, F_OK, AT_SYMLINK_NOFOLLOW) == -1 &&
	    errno == ENOENT) {
		if (mode != CA_LOAD_OR_CREATE) {
			seterr(err, errlen, "%s/%s: no CA yet", dir, CA_SECRET_FILE);
			goto fail;
		}
		if (generate(ca, err, errlen) == -1)
			goto fail;
		if ((rc = store_secret(ca, dfd, dir, err, errlen)) == -1)
			goto fail;
		if (rc == 0) {
			ca->created = true;
			log_info("created CA in %s/%s", dir, CA_SECRET_FILE);
		} else {
			/* Lost the race: forget ours, load the winner's. */
			ca_free(ca);
			if ((ca = ca_alloc()) == NULL) {
				seterr(err, errlen, "out of memory");
				goto fail;
			}
		}
	}
	if (!ca->created) {
		if (load_secret(ca, dfd, dir, err, errlen) == -1)
			goto fail;
		remove_stale_temporaries(dfd, dir);
	}
	if (ensure_exports(ca, dfd, dir, err, errlen) == -1)
		goto fail;
	close(dfd);
	*out = ca;
	return 0;
fail:
	ca_free(ca);
	close(dfd);
	return -1;
}

bool
ca_was_created(const struct ca *ca)
{
	return ca->created;
}

const mbedtls_x509_crt *
ca_cert(const struct ca *ca)
{
	return &ca->crt;
}

const unsigned char *
ca_cert_der(const struct ca *ca, size_t *len)
{
	*len = ca->crt.raw.len;
	return ca->crt.raw.p;
}

mbedtls_pk_context *
ca_private_key(struct ca *ca)
{
	return ca_has_private_key(ca) ? &ca->key : NULL;
}

bool
ca_has_private_key(const struct ca *ca)
{
	return mbedtls_pk_get_type(&ca->key) != MBEDTLS_PK_NONE;
}

void
ca_forget_key(struct ca *ca)
{
	/* mbedtls_pk_free zeroizes the key material before freeing it. */
	mbedtls_pk_free(&ca->key);
	mbedtls_pk_init(&ca->key);
}
