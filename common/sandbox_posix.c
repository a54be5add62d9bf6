/*
 * sandbox.h where there is no Landlock, seccomp or capability set: macOS,
 * and the portable builds on Linux (LC_PORTABLE: `make portable-run`).
 *
 *   sandbox_drop:    setgroups/setgid/setuid to the unprivileged user, and
 *                    no way back (checked)
 *   sandbox_confine: macOS: sandbox_init(3) with the profile's Seatbelt
 *                    file (packaging/macos/sandbox/NAME.sb), the paths of
 *                    struct sandbox prepended as (define ...) forms.
 *                    Linux portable build: nothing more, and the log says
 *                    so (that build exists to run macOS's code paths in
 *                    tests, not to be installed).
 *
 * Capabilities do not exist on macOS: keep_caps is refused there (only
 * redirectord asks for any, and its macOS side runs as root).
 */
#include "plat.h"

#if !LC_PLAT_LINUX
#include "sandbox.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "log.h"

#ifdef __APPLE__
#include <stdint.h>
/*
 * From macOS's <sandbox.h> (libsystem_sandbox), declared here because
 * -Icommon makes <sandbox.h> this tree's common/sandbox.h.  Deprecated
 * since 10.8 and still the public way to apply an SBPL profile.
 */
int	sandbox_init(const char *profile, uint64_t flags, char **errorbuf);
void	sandbox_free_error(char *errorbuf);
#endif

#ifndef LOCALCAP_SANDBOX_DIR
#define LOCALCAP_SANDBOX_DIR	"/usr/local/share/localcap/sandbox"
#endif

int
sandbox_lookup_user(const char *name, unsigned *uid, unsigned *gid)
{
	struct passwd pwd, *res = NULL;
	char buf[4096];

	if (getpwnam_r(name, &pwd, buf, sizeof(buf), &res) != 0 || res == NULL)
		return -1;
	*uid = res->pw_uid;
	*gid = res->pw_gid;
	return 0;
}

void
sandbox_drop(const struct sandbox *sb)
{
	unsigned uid, gid;
	gid_t g;

	if (sb->nkeep_caps > 0)
		fatalx("sandbox: %zu capabilities asked for on a system that has "
		    "none", sb->nkeep_caps);
	if (sb->user == NULL)
		return;
	if (sandbox_lookup_user(sb->user, &uid, &gid) == -1)
		fatalx("sandbox: unknown user '%s'", sb->user);
	if (uid == 0)
		fatalx("sandbox: refusing to 'drop' to root ('%s')", sb->user);
	g = (gid_t)gid;
	if (setgroups(1, &g) == -1)
		fatal("sandbox: setgroups");
	/* As root, setgid/setuid set the real, effective and saved ids. */
	if (setgid(g) == -1)
		fatal("sandbox: setgid %u", gid);
	if (setuid((uid_t)uid) == -1)
		fatal("sandbox: setuid %u", uid);
	if (setuid(0) != -1 || geteuid() == 0 || setgid(0) != -1 || getegid() == 0)
		fatalx("sandbox: could regain root after dropping to %s", sb->user);
}

/* The profile file's name for each profile. */
static const char *
profile_name(enum sandbox_profile p)
{
	switch (p) {
	case SANDBOX_REDIRECTORD:	return "redirectord";
	case SANDBOX_NETSTACKD:		return "netstackd";
	case SANDBOX_PROXYD:		return "proxyd";
	case SANDBOX_SIGNER:		return "signer";
	case SANDBOX_WEBD:		return "webd";
	}
	return "unknown";
}

#ifdef __APPLE__
/* Append (define NAME "VALUE") to *out; a value SBPL cannot quote safely
 * is refused. */
static void
define(char **out, size_t *len, const char *name, const char *value)
{
	char *p;
	int n;

	if (value == NULL)
		value = "/nonexistent/localcap";
	if (strpbrk(value, "\"\\\n") != NULL)
		fatalx("sandbox: path %s cannot go into a profile", value);
	n = snprintf(NULL, 0, "(define %s \"%s\")\n", name, value);
	if (n < 0 || (p = realloc(*out, *len + (size_t)n + 1)) == NULL)
		fatalx("sandbox: out of memory");
	*out = p;
	(void)snprintf(p + *len, (size_t)n + 1, "(define %s \"%s\")\n", name, value);
	*len += (size_t)n;
}

static void
seatbelt(const struct sandbox *sb)
{
	char path[1024], *prof = NULL, *err = NULL, *p;
	size_t len = 0, cap;
	ssize_t n;
	FILE *f;

	(void)snprintf(path, sizeof(path), "%s/%s.sb", LOCALCAP_SANDBOX_DIR,
	    profile_name(sb->profile));
	define(&prof, &len, "rw-dir", sb->rw_dir);
	define(&prof, &len, "remove-dir", sb->remove_dir);
	define(&prof, &len, "ro-file", sb->ro_file);
	define(&prof, &len, "exec-file", sb->exec_file);
	if ((f = fopen(path, "r")) == NULL)
		fatal("sandbox: %s", path);
	cap = len + 65536;
	if ((p = realloc(prof, cap + 1)) == NULL)
		fatalx("sandbox: out of memory");
	prof = p;
	n = (ssize_t)fread(prof + len, 1, cap - len, f);
	if (ferror(f) || !feof(f))
		fatalx("sandbox: %s: unreadable or over 64 KiB", path);
	fclose(f);
	prof[len + (size_t)n] = '\0';
	if (sandbox_init(prof, 0, &err) != 0)
		fatalx("sandbox: %s: %s", path, err != NULL ? err : "refused");
	if (err != NULL)
		sandbox_free_error(err);
	free(prof);
}
#endif

void
sandbox_confine(const struct sandbox *sb)
{
#ifdef __APPLE__
	seatbelt(sb);
	log_info("sandboxed: uid %d, seatbelt profile %s", (int)geteuid(),
	    profile_name(sb->profile));
#else
	log_info("portable build: uid %d, profile %s not confined (Linux has "
	    "no Seatbelt; the real build uses Landlock and seccomp)",
	    (int)geteuid(), profile_name(sb->profile));
#endif
}

void
sandbox_enter(const struct sandbox *sb)
{
	sandbox_drop(sb);
	sandbox_confine(sb);
}
#else
typedef int sandbox_posix_not_this_build;
#endif
