/*
 * localcapctl ca path | export [--der] | install | uninstall
 *
 * proxyd creates the CA in its state dir on first start; these commands use
 * only its public certificate (localcap-ca-cert.pem / .der).  install puts
 * it where Debian's tools trust it (update-ca-certificates) and into the
 * NSS databases of the user who asked (Chromium's ~/.pki/nssdb, Firefox
 * profiles) when certutil is available; it records each action so that
 * uninstall removes exactly that and nothing else.  The record lives where
 * only root writes (/var/lib/localcap-ca/), never in the state dir, which
 * proxyd's user owns: root's uninstall must not delete what that user
 * names.  Even so, uninstall honours only paths install itself creates.
 *
 * On macOS install goes into the System keychain instead, through
 * security(1) (ca_keychain.c); LOCALCAP_CA_STORE=keychain|debian picks
 * either on any system (the tests run the keychain path on Linux with a
 * recording security on PATH).
 *
 * LOCALCAP_TRUST_ROOT=DIR prefixes every system path, and runs
 * update-ca-certificates on that tree only: a supported feature (an image's
 * trust store prepared from outside; localcapctl(8)), and how ctl_ca.sh
 * tests install without touching the host.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl/ctl.h"

#define CA_PEM		"localcap-ca-cert.pem"
#define CA_DER		"localcap-ca-cert.der"
#define CA_RECORD	"ca-installed"	/* an older localcapctl's record, in the state dir */
#ifdef __APPLE__
#define RECORD_DIR	"/var/db/localcap-ca"	/* root's: what install did */
#else
#define RECORD_DIR	"/var/lib/localcap-ca"	/* root's: what install did */
#endif
#define LOCAL_CERTS	"/usr/local/share/ca-certificates"

static const char *
trust_root(void)
{
	const char *r = getenv("LOCALCAP_TRUST_ROOT");

	return r && *r ? r : "";
}

/* 1: the System keychain (macOS's default), 0: Debian's store and NSS,
 * -1: LOCALCAP_CA_STORE names neither. */
static int
ca_store_keychain(void)
{
	const char *s = getenv("LOCALCAP_CA_STORE");

	if (s == NULL || *s == '\0') {
#ifdef __APPLE__
		return 1;
#else
		return 0;
#endif
	}
	if (strcmp(s, "keychain") == 0)
		return 1;
	if (strcmp(s, "debian") == 0)
		return 0;
	fprintf(stderr, "localcapctl: LOCALCAP_CA_STORE=%s: keychain or debian\n", s);
	return -1;
}

/* Read a whole (small) file; NULL with errno. */
static char *
slurp(const char *path, size_t *len)
{
	char *buf;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return NULL;
	if ((buf = malloc(65536)) == NULL) {
		close(fd);
		return NULL;
	}
	n = read(fd, buf, 65535);
	close(fd);
	if (n < 0) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

static int
ca_file(const char *state_dir, const char *name, char *path, size_t len)
{
	snprintf(path, len, "%s/%s", state_dir, name);
	if (access(path, R_OK) == 0)
		return 0;
	if (errno == ENOENT)
		fprintf(stderr, "localcapctl: no CA in %s yet: proxyd creates it on "
		    "its first start (localcapctl up)\n", state_dir);
	else
		fprintf(stderr, "localcapctl: %s: %s%s\n", path, strerror(errno),
		    errno == EACCES ? " (run as root)" : "");
	return -1;
}

/* Run argv, quietly unless it fails; its exit status. */
static int
run(char *const argv[])
{
	pid_t pid = fork();
	int status;

	if (pid == -1)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		if (fd != -1)
			dup2(fd, STDOUT_FILENO);
		execvp(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) == -1)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* fresh: rebuild every link (Debian's way to forget a removed local cert). */
static int
update_ca_certificates(int fresh)
{
	const char *root = trust_root();
	char a[5][PATH_MAX];
	char *argv[16];
	int n = 0;

	argv[n++] = (char *)(uintptr_t)"update-ca-certificates";
	if (fresh)
		argv[n++] = (char *)(uintptr_t)"--fresh";
	if (*root) {
		snprintf(a[0], sizeof(a[0]), "%s/etc/ca-certificates.conf", root);
		snprintf(a[1], sizeof(a[1]), "%s/usr/share/ca-certificates", root);
		snprintf(a[2], sizeof(a[2]), "%s%s", root, LOCAL_CERTS);
		snprintf(a[3], sizeof(a[3]), "%s/etc/ssl/certs", root);
		snprintf(a[4], sizeof(a[4]), "%s/etc/ca-certificates/update.d", root);
		argv[n++] = (char *)(uintptr_t)"--certsconf";
		argv[n++] = a[0];
		argv[n++] = (char *)(uintptr_t)"--certsdir";
		argv[n++] = a[1];
		argv[n++] = (char *)(uintptr_t)"--localcertsdir";
		argv[n++] = a[2];
		argv[n++] = (char *)(uintptr_t)"--etccertsdir";
		argv[n++] = a[3];
		argv[n++] = (char *)(uintptr_t)"--hooksdir";
		argv[n++] = a[4];
	}
	argv[n] = NULL;
	return run(argv);
}

/* The NSS databases of the user who asked (sudo's caller, else us). */
static int
nss_dbs(char dbs[][PATH_MAX], int max)
{
	const char *sudo_user = getenv("SUDO_USER");
	const char *home = getenv("HOME");
	char dir[PATH_MAX], path[PATH_MAX + 32];
	struct passwd *pw;
	struct dirent *de;
	DIR *d;
	int n = 0;

	if (sudo_user && (pw = getpwnam(sudo_user)) != NULL)
		home = pw->pw_dir;
	if (home == NULL)
		return 0;
	snprintf(path, sizeof(path), "%s/.pki/nssdb/cert9.db", home);
	if (access(path, F_OK) == 0 && n < max)
		snprintf(dbs[n++], PATH_MAX, "%s/.pki/nssdb", home);
	snprintf(dir, sizeof(dir), "%s/.mozilla/firefox", home);
	if ((d = opendir(dir)) != NULL) {
		while ((de = readdir(d)) != NULL && n < max) {
			if (de->d_name[0] == '.')
				continue;
			if (snprintf(path, sizeof(path), "%s/%s/cert9.db", dir,
			    de->d_name) >= (int)sizeof(path) || access(path, F_OK) != 0)
				continue;
			if (snprintf(dbs[n], PATH_MAX, "%s/%s", dir, de->d_name) < PATH_MAX)
				n++;
		}
		closedir(d);
	}
	return n;
}

/* mkdir -p, 0755. */
static int
mkdir_p(const char *path)
{
	char buf[PATH_MAX], *p;

	if (strlen(path) >= sizeof(buf))
		return -1;
	strcpy(buf, path);
	for (p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			if (mkdir(buf, 0755) == -1 && errno != EEXIST)
				return -1;
			*p = '/';
		}
	return mkdir(buf, 0755) == -1 && errno != EEXIST ? -1 : 0;
}

/* A stable short name for this CA: FNV-1a of its PEM (a name, not a check). */
static unsigned
ca_tag(const char *pem, size_t len)
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ (uint8_t)pem[i]) * 16777619u;
	return h;
}

/*
 * The install record of a state dir: <trust root>/var/lib/localcap-ca/
 * installed.<FNV-1a of the state dir's real path>.
 */
static int
record_path(const char *state_dir, char *out, size_t len)
{
	char real[PATH_MAX];
	const char *key = realpath(state_dir, real) ? real : state_dir;
	uint32_t h = 2166136261u;

	for (; *key; key++)
		h = (h ^ (uint8_t)*key) * 16777619u;
	return (size_t)snprintf(out, len, "%s%s/installed.%08x", trust_root(),
	    RECORD_DIR, h) >= len ? -1 : 0;
}

/* Ours and not writable by anyone else: what a record and its dir must be. */
static int
trusted_stat(const struct stat *st)
{
	return st->st_uid == geteuid() && !(st->st_mode & (S_IWGRP | S_IWOTH));
}

int
ctl_ca_installed_file_ok(const char *root, const char *path)
{
	size_t rl = strlen(root), ll = strlen(LOCAL_CERTS), i;
	const char *name;

	/* Exactly <root>/usr/local/share/ca-certificates/localcap-XXXXXXXX.crt */
	if (strncmp(path, root, rl) != 0 || strncmp(path + rl, LOCAL_CERTS, ll) != 0 ||
	    path[rl + ll] != '/')
		return 0;
	name = path + rl + ll + 1;
	if (strlen(name) != strlen("localcap-12345678.crt") ||
	    strncmp(name, "localcap-", 9) != 0 || strcmp(name + 17, ".crt") != 0)
		return 0;
	for (i = 9; i < 17; i++)
		if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
			return 0;
	return 1;
}

/* An NSS database install could have used: one nss_dbs() finds now. */
static int
nss_db_ok(const char *db)
{
	char dbs[8][PATH_MAX];
	int i, n = nss_dbs(dbs, 8);

	for (i = 0; i < n; i++)
		if (strcmp(dbs[i], db) == 0)
			return 1;
	return 0;
}

/* Open the record for writing: its dir made root's 0700 if missing. */
static FILE *
record_create(const char *record)
{
	char dir[PATH_MAX];
	struct stat st;
	FILE *f;
	int fd;

	snprintf(dir, sizeof(dir), "%s%s", trust_root(), RECORD_DIR);
	if (mkdir_p(dir) == -1 || chmod(dir, 0700) == -1 || lstat(dir, &st) == -1)
		return NULL;
	if (!S_ISDIR(st.st_mode) || !trusted_stat(&st)) {
		errno = EPERM;
		return NULL;
	}
	if ((fd = open(record, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	    0600)) == -1)
		return NULL;
	if ((f = fdopen(fd, "w")) == NULL)
		close(fd);
	return f;
}

/*
 * The record to read: root's, checked to be ours and unwritable by others;
 * else an older localcapctl's in the state dir (*legacy set), whose lines
 * are then no more trusted than the new one's (see ca_uninstall).
 */
static FILE *
record_open(const char *state_dir, char *path, size_t len, int *legacy)
{
	char dir[PATH_MAX];
	struct stat st, dst;
	FILE *f;
	int fd;

	*legacy = 0;
	if (record_path(state_dir, path, len) == -1) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	snprintf(dir, sizeof(dir), "%s%s", trust_root(), RECORD_DIR);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) != -1) {
		if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || !trusted_stat(&st) ||
		    lstat(dir, &dst) == -1 || !S_ISDIR(dst.st_mode) || !trusted_stat(&dst)) {
			fprintf(stderr, "localcapctl: %s (or its directory) is not "
			    "root's alone; not using it\n", path);
			close(fd);
			errno = EPERM;
			return NULL;
		}
		if ((f = fdopen(fd, "r")) == NULL)
			close(fd);
		return f;
	}
	if (errno != ENOENT)
		return NULL;
	snprintf(path, len, "%s/%s", state_dir, CA_RECORD);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return NULL;
	*legacy = 1;
	if ((f = fdopen(fd, "r")) == NULL)
		close(fd);
	return f;
}

static int
ca_install(const char *state_dir)
{
	char pem_path[PATH_MAX], dest[PATH_MAX + 64], dir[PATH_MAX], record[PATH_MAX];
	char nick[64], der_path[PATH_MAX];
	char dbs[8][PATH_MAX], sqldb[PATH_MAX + 8];
	size_t len, der_len = 0;
	char *pem, *der = NULL;
	FILE *rec;
	int fd, i, ndb, rc, keychain;

	if ((keychain = ca_store_keychain()) == -1)
		return 2;
	if (ca_file(state_dir, CA_PEM, pem_path, sizeof(pem_path)) == -1)
		return 1;
	if ((pem = slurp(pem_path, &len)) == NULL) {
		fprintf(stderr, "localcapctl: %s: %s\n", pem_path, strerror(errno));
		return 1;
	}
	if (keychain && ca_file(state_dir, CA_DER, der_path, sizeof(der_path)) == -1) {
		free(pem);
		return 1;
	}
	if (keychain && (der = slurp(der_path, &der_len)) == NULL) {
		fprintf(stderr, "localcapctl: %s: %s\n", der_path, strerror(errno));
		free(pem);
		return 1;
	}
	snprintf(nick, sizeof(nick), "localcap CA %08x", ca_tag(pem, len));
	snprintf(dest, sizeof(dest), "%s%s/localcap-%08x.crt", trust_root(),
	    LOCAL_CERTS, ca_tag(pem, len));
	if (record_path(state_dir, record, sizeof(record)) == -1 ||
	    (rec = record_create(record)) == NULL) {
		fprintf(stderr, "localcapctl: the install record %s: %s%s\n", record,
		    strerror(errno), errno == EACCES ? " (run as root)" : "");
		free(pem);
		free(der);
		return 1;
	}
	fprintf(rec, "state %s\n", state_dir);
	/* An older localcapctl's record in the state dir is superseded. */
	snprintf(dir, sizeof(dir), "%s/%s", state_dir, CA_RECORD);
	(void)unlink(dir);

	if (keychain) {
		rc = ctl_ca_keychain_install(trust_root(), pem_path,
		    (const unsigned char *)der, der_len, rec);
		fclose(rec);
		free(pem);
		free(der);
		return rc;
	}

	/* The system store. */
	snprintf(dir, sizeof(dir), "%s%s", trust_root(), LOCAL_CERTS);
	if (mkdir_p(dir) == -1) {
		fprintf(stderr, "localcapctl: %s: %s\n", dir, strerror(errno));
		goto fail;
	}
	if ((fd = open(dest, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	    0644)) == -1 || write(fd, pem, len) != (ssize_t)len || close(fd) == -1) {
		fprintf(stderr, "localcapctl: writing %s: %s%s\n", dest, strerror(errno),
		    errno == EACCES ? " (run as root)" : "");
		goto fail;
	}
	fprintf(rec, "file %s\n", dest);
	fflush(rec);
	if ((rc = update_ca_certificates(0)) != 0) {
		fprintf(stderr, "localcapctl: update-ca-certificates failed (%d); "
		    "%s is in place\n", rc, dest);
		goto fail;
	}
	printf("installed in the system trust store: %s\n", dest);

	/* Browsers with their own store. */
	ndb = nss_dbs(dbs, 8);
	for (i = 0; i < ndb; i++) {
		char *argv[] = { (char *)(uintptr_t)"certutil", (char *)(uintptr_t)"-A",
		    (char *)(uintptr_t)"-d", sqldb, (char *)(uintptr_t)"-t",
		    (char *)(uintptr_t)"C,,", (char *)(uintptr_t)"-n", nick,
		    (char *)(uintptr_t)"-i", pem_path, NULL };

		if (snprintf(sqldb, sizeof(sqldb), "sql:%s", dbs[i]) >= (int)sizeof(sqldb))
			continue;
		if ((rc = run(argv)) == 0) {
			fprintf(rec, "nss %s\n", dbs[i]);
			printf("installed in the NSS database %s as '%s'\n", dbs[i], nick);
		} else
			fprintf(stderr, "localcapctl: certutil could not add the CA to "
			    "%s%s\n", dbs[i], rc == 127 ? " (install libnss3-tools)" : "");
	}
	fprintf(rec, "nick %s\n", nick);
	fclose(rec);
	free(pem);
	return 0;
fail:
	fclose(rec);
	free(pem);
	return 1;
}

static int
ca_uninstall(const char *state_dir)
{
	char record[PATH_MAX], line[PATH_MAX + 16], nick[64] = "";
	char sqldb[PATH_MAX + 8], pem_path[PATH_MAX], der_path[PATH_MAX];
	int removed_file = 0, failed = 0, legacy;
	size_t der_len = 0;
	char *der;
	FILE *rec;

	if ((rec = record_open(state_dir, record, sizeof(record), &legacy)) == NULL) {
		if (errno == ENOENT) {
			printf("nothing to uninstall: localcapctl ca install has not "
			    "run for %s\n", state_dir);
			return 0;
		}
		fprintf(stderr, "localcapctl: %s: %s\n", record, strerror(errno));
		return 1;
	}
	if (legacy)
		printf("using the record an older localcapctl left in %s; only "
		    "what ca install itself creates is removed\n", record);
	/* The nickname comes last; read it first. */
	while (fgets(line, sizeof(line), rec))
		if (strncmp(line, "nick ", 5) == 0) {
			line[strcspn(line, "\n")] = '\0';
			if (snprintf(nick, sizeof(nick), "%s", line + 5) >= (int)sizeof(nick))
				nick[0] = '\0';
		}
	rewind(rec);
	while (fgets(line, sizeof(line), rec)) {
		line[strcspn(line, "\n")] = '\0';
		/*
		 * Whoever wrote the record, only the names install creates:
		 * root must not unlink (or edit) what another user names.
		 */
		if (strncmp(line, "file ", 5) == 0 &&
		    !ctl_ca_installed_file_ok(trust_root(), line + 5)) {
			fprintf(stderr, "localcapctl: %s names %s, which ca install "
			    "does not create; left alone\n", record, line + 5);
			failed = 1;
		} else if (strncmp(line, "nss ", 4) == 0 && !nss_db_ok(line + 4)) {
			fprintf(stderr, "localcapctl: %s names the NSS database %s, "
			    "not one of yours; left alone\n", record, line + 4);
			failed = 1;
		} else if (strncmp(line, "file ", 5) == 0) {
			if (unlink(line + 5) == 0 || errno == ENOENT) {
				removed_file = 1;
				printf("removed %s\n", line + 5);
			} else {
				fprintf(stderr, "localcapctl: %s: %s\n", line + 5,
				    strerror(errno));
				failed = 1;
			}
		} else if (strncmp(line, "keychain ", 9) == 0) {
			/* The certificate, if the state dir still has it, for
			 * its trust setting; the SHA-1 alone names what goes. */
			snprintf(pem_path, sizeof(pem_path), "%s/%s", state_dir, CA_PEM);
			snprintf(der_path, sizeof(der_path), "%s/%s", state_dir, CA_DER);
			der = slurp(der_path, &der_len);
			if (ctl_ca_keychain_uninstall(trust_root(), line + 9,
			    der != NULL && access(pem_path, R_OK) == 0 ? pem_path : NULL,
			    (const unsigned char *)der, der_len) != 0)
				failed = 1;
			free(der);
		} else if (strncmp(line, "nss ", 4) == 0 && nick[0]) {
			char *argv[] = { (char *)(uintptr_t)"certutil",
			    (char *)(uintptr_t)"-D", (char *)(uintptr_t)"-d", sqldb,
			    (char *)(uintptr_t)"-n", nick, NULL };

			if (snprintf(sqldb, sizeof(sqldb), "sql:%s", line + 4) <
			    (int)sizeof(sqldb) && run(argv) == 0)
				printf("removed '%s' from %s\n", nick, line + 4);
			else {
				fprintf(stderr, "localcapctl: certutil could not remove "
				    "'%s' from %s\n", nick, line + 4);
				failed = 1;
			}
		}
	}
	fclose(rec);
	if (removed_file && update_ca_certificates(1) != 0) {
		fprintf(stderr, "localcapctl: update-ca-certificates failed\n");
		failed = 1;
	}
	if (!failed)
		unlink(record);
	return failed;
}

int
ctl_ca(const char *state_dir, int argc, char **argv)
{
	char path[PATH_MAX];
	const char *sub = argc > 1 ? argv[1] : NULL;

	if (sub == NULL) {
		fprintf(stderr, "localcapctl: ca needs a command: path, export "
		    "[--der], install, uninstall\n");
		return 2;
	}
	if (strcmp(sub, "path") == 0 && argc == 2) {
		if (ca_file(state_dir, CA_PEM, path, sizeof(path)) == -1)
			return 1;
		printf("%s\n", path);
		return 0;
	}
	if (strcmp(sub, "export") == 0 && (argc == 2 ||
	    (argc == 3 && strcmp(argv[2], "--der") == 0))) {
		int der = argc == 3;
		size_t len;
		char *data;

		if (ca_file(state_dir, der ? CA_DER : CA_PEM, path, sizeof(path)) == -1)
			return 1;
		if (der && isatty(STDOUT_FILENO)) {
			fprintf(stderr, "localcapctl: refusing to write DER to a "
			    "terminal; redirect it to a file\n");
			return 1;
		}
		if ((data = slurp(path, &len)) == NULL ||
		    fwrite(data, 1, len, stdout) != len) {
			fprintf(stderr, "localcapctl: %s: %s\n", path, strerror(errno));
			free(data);
			return 1;
		}
		free(data);
		return 0;
	}
	if (strcmp(sub, "install") == 0 && argc == 2)
		return ca_install(state_dir);
	if (strcmp(sub, "uninstall") == 0 && argc == 2)
		return ca_uninstall(state_dir);
	fprintf(stderr, "localcapctl: ca %s: unknown (path, export [--der], "
	    "install, uninstall)\n", sub);
	return 2;
}
