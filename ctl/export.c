/*
 * localcapctl export --har FILE [filters]: HAR 1.2 of the recorded HTTP
 * exchanges (storeread/har.c writes it).  A HAR holds decrypted cookies
 * and Authorization headers, so FILE is created 0600: written to a fresh
 * temp file beside it (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600: never an
 * existing file or a symlink planted there) and renamed over FILE, so a
 * failed export leaves no half HAR.  FILE "-" is stdout.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl/flowopts.h"
#include "ctl/flows.h"

/* A new temp file beside path, 0600: its stream, or NULL after a line. */
static FILE *
open_private_temp(const char *path, char *tmp, size_t len)
{
	unsigned i;
	FILE *f;
	int fd = -1;

	for (i = 0; i < 100 && fd == -1; i++) {
		if ((size_t)snprintf(tmp, len, "%s.tmp.%ld.%u", path,
		    (long)getpid(), i) >= len) {
			fprintf(stderr, "localcapctl: %s: name too long\n", path);
			return NULL;
		}
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
		if (fd == -1 && errno != EEXIST)
			break;
	}
	if (fd == -1) {
		fprintf(stderr, "localcapctl: %s: %s\n", tmp, strerror(errno));
		return NULL;
	}
	/* Whatever the umask: the owner only. */
	if (fchmod(fd, 0600) == -1 || (f = fdopen(fd, "w")) == NULL) {
		fprintf(stderr, "localcapctl: %s: %s\n", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		return NULL;
	}
	return f;
}

int
ctl_export(const char *state_dir, int argc, char **argv)
{
	static const struct option longopts[] = {
		FILTER_LONGOPTS,
		{ "har",	required_argument,	NULL, OPT_HAR },
		{ NULL, 0, NULL, 0 },
	};
	struct flow_opts o = { 0 };
	struct sr_store *st;
	const char *har = NULL;
	char tmp[4096];
	FILE *out;
	int c, rc;

	/* 0, not 1: glibc then forgets the "+" (stop at the first
	 * non-option) of localcapctl's own parse, so options may follow
	 * the ID. */
	optind = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == OPT_HAR)
			har = optarg;
		else if (c == '?' || flow_option(&o, c, optarg))
			return 2;
	}
	if (har == NULL || optind != argc) {
		fprintf(stderr, "usage: localcapctl export --har FILE [--host RE] "
		    "[--method M] [--status N] [--process NAME] [--since TIME] "
		    "[--limit N]\n");
		return 2;
	}
	if ((st = ctl_store_open(ctl_state_dir(o.state_dir, state_dir))) ==
	    NULL)
		return 1;
	if (strcmp(har, "-") == 0)
		out = stdout;
	else if ((out = open_private_temp(har, tmp, sizeof(tmp))) == NULL) {
		sr_close(st);
		return 1;
	}
	if ((rc = sr_export_har(st, &o.f, (size_t)o.limit, out)) != 0) {
		fprintf(stderr, "localcapctl: %s: %s\n", sr_path(st),
		    sr_errmsg(st));
		rc = 1;
	}
	if (out != stdout) {
		if (fclose(out) == EOF && rc == 0) {
			fprintf(stderr, "localcapctl: %s: %s\n", tmp,
			    strerror(errno));
			rc = 1;
		}
		if (rc == 0 && rename(tmp, har) == -1) {
			fprintf(stderr, "localcapctl: %s: %s\n", har,
			    strerror(errno));
			rc = 1;
		}
		if (rc != 0)
			unlink(tmp);
	} else if (fflush(stdout) == EOF) {
		fprintf(stderr, "localcapctl: writing the HAR: %s\n",
		    strerror(errno));
		rc = 1;
	}
	sr_close(st);
	return rc;
}
