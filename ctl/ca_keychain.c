/*
 * localcapctl ca install/uninstall into macOS's System keychain, through
 * security(1):
 *
 *   install:   security add-trusted-cert -d -r trustRoot -k KEYCHAIN CERT.pem
 *              (the admin trust domain: every user, and the system)
 *   uninstall: security remove-trusted-cert -d CERT.pem  (the trust setting,
 *              while the state dir still has the certificate)
 *              security delete-certificate -Z SHA1 KEYCHAIN  (the
 *              certificate, by the SHA-1 of its DER, as the keychain names it)
 *
 * The install record (ca.c) gets one line, "keychain SHA1", naming exactly
 * the certificate added; uninstall deletes nothing else.  The default on
 * macOS (ca.c: ctl_ca_store); LOCALCAP_CA_STORE=keychain selects it
 * elsewhere, which is how test_ctl_ca_keychain and ctl_ca.sh run it on
 * Linux with a recording `security` on PATH.  UNVERIFIED against the real
 * security(1): the arguments follow its manual page.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mbedtls/sha1.h>

#include "ctl/ctl.h"

#define KEYCHAIN	"/Library/Keychains/System.keychain"

/* security(1) with argv; its exit status, 127 if it could not run. */
static int
security(char *const argv[])
{
	pid_t pid = fork();
	int status;

	if (pid == -1)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		if (fd != -1)
			dup2(fd, STDOUT_FILENO);
		execvp("security", argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

int
ctl_ca_keychain_sha1(const unsigned char *der, size_t len, char hex[41])
{
	unsigned char md[20];
	int i;

	if (len == 0 || mbedtls_sha1(der, len, md) != 0)
		return -1;
	for (i = 0; i < 20; i++)
		snprintf(hex + 2 * i, 3, "%02X", md[i]);
	return 0;
}

int
ctl_ca_keychain_sha1_ok(const char *s)
{
	size_t i;

	if (strlen(s) != 40)
		return 0;
	for (i = 0; i < 40; i++)
		if (!isxdigit((unsigned char)s[i]) || islower((unsigned char)s[i]))
			return 0;
	return 1;
}

static void
keychain_path(const char *root, char *out, size_t len)
{
	snprintf(out, len, "%s%s", root, KEYCHAIN);
}

int
ctl_ca_keychain_install(const char *root, const char *pem_path,
    const unsigned char *der, size_t der_len, FILE *rec)
{
	char kc[4096], sha1[41];
	char *argv[] = { (char *)(uintptr_t)"security",
	    (char *)(uintptr_t)"add-trusted-cert", (char *)(uintptr_t)"-d",
	    (char *)(uintptr_t)"-r", (char *)(uintptr_t)"trustRoot",
	    (char *)(uintptr_t)"-k", kc, (char *)(uintptr_t)pem_path, NULL };
	int rc;

	if (ctl_ca_keychain_sha1(der, der_len, sha1) == -1) {
		fprintf(stderr, "localcapctl: the CA's DER certificate is empty\n");
		return 1;
	}
	keychain_path(root, kc, sizeof(kc));
	if ((rc = security(argv)) != 0) {
		fprintf(stderr, "localcapctl: security add-trusted-cert failed (%d)%s\n",
		    rc, rc == 127 ? ": no security(1) on PATH" :
		    geteuid() != 0 ? " (run as root)" : "");
		return 1;
	}
	fprintf(rec, "keychain %s\n", sha1);
	fflush(rec);
	printf("installed in %s as a trusted root (SHA-1 %s)\n", kc, sha1);
	return 0;
}

int
ctl_ca_keychain_uninstall(const char *root, const char *sha1,
    const char *pem_path, const unsigned char *der, size_t der_len)
{
	char kc[4096], now[41];
	char *untrust[] = { (char *)(uintptr_t)"security",
	    (char *)(uintptr_t)"remove-trusted-cert", (char *)(uintptr_t)"-d",
	    (char *)(uintptr_t)pem_path, NULL };
	char *del[] = { (char *)(uintptr_t)"security",
	    (char *)(uintptr_t)"delete-certificate", (char *)(uintptr_t)"-Z",
	    (char *)(uintptr_t)sha1, kc, NULL };
	int rc;

	if (!ctl_ca_keychain_sha1_ok(sha1)) {
		fprintf(stderr, "localcapctl: the install record names '%s', not a "
		    "certificate's SHA-1; left alone\n", sha1);
		return 1;
	}
	keychain_path(root, kc, sizeof(kc));
	/* The trust setting needs the certificate itself: only when the state
	 * dir still holds the one that was installed. */
	if (pem_path != NULL && der != NULL &&
	    ctl_ca_keychain_sha1(der, der_len, now) == 0 && strcmp(now, sha1) == 0 &&
	    (rc = security(untrust)) != 0)
		fprintf(stderr, "localcapctl: security remove-trusted-cert failed "
		    "(%d); deleting the certificate removes its use anyway\n", rc);
	if ((rc = security(del)) != 0) {
		fprintf(stderr, "localcapctl: security delete-certificate -Z %s "
		    "failed (%d)\n", sha1, rc);
		return 1;
	}
	printf("removed %s from %s\n", sha1, kc);
	return 0;
}
