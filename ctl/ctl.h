/*
 * What localcapctl's commands share across its files: redirectord's status
 * through the control-socket client (ctlclient.c), the instance commands
 * up/down/logs (instance.c), the CA (ca.c) and the viewer (web.c).
 * localcapctl.c (main) calls them; none of them calls back into it.
 */
#ifndef LOCALCAP_CTL_H
#define LOCALCAP_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "control.pb-c.h"

/* Daemons reported running (0-3), or -1 if redirectord does not answer. */
int	ctl_daemons_running(const char *ctl_sock_path);
/*
 * redirectord's status, handed to fn while it is valid: 0, or -1 (with a
 * line on stderr unless quiet) if redirectord does not answer.
 */
int	ctl_status_fetch(const char *ctl_sock_path, bool quiet,
	    void (*fn)(void *, const Lc__StatusReply *), void *arg);

int	ctl_up(const char *runtime_dir, int argc, char **argv);
/*
 * instance.c's helpers, open to its tests: the pid a daemon's pid file in
 * runtime_dir names if that process runs that daemon (else 0); the last
 * fatal (else warning) line of its log in logdir, without time and
 * function, control characters shown as '?' ("" if none).
 */
pid_t	ctl_daemon_pid(const char *runtime_dir, const char *name);
void	ctl_last_error(const char *logdir, const char *name, char *out,
	    size_t len);
int	ctl_down(const char *runtime_dir);
int	ctl_logs(const char *runtime_dir, int argc, char **argv);
/* localcapctl ca ...: argv[0] is "ca". */
int	ctl_ca(const char *state_dir, int argc, char **argv);
/*
 * 1 if path is a file `ca install` creates under the trust root root ("" on
 * a real system): uninstall, as root, removes nothing else.
 */
int	ctl_ca_installed_file_ok(const char *root, const char *path);

/*
 * macOS's System keychain through security(1) (ca_keychain.c): the default
 * there; LOCALCAP_CA_STORE=keychain elsewhere.  root prefixes the keychain's
 * path (LOCALCAP_TRUST_ROOT).  install writes "keychain SHA1" to rec;
 * uninstall deletes that certificate (and, given the certificate that was
 * installed, its trust setting).  0, or 1 with a message on stderr.
 */
int	ctl_ca_keychain_install(const char *root, const char *pem_path,
	    const unsigned char *der, size_t der_len, FILE *rec);
int	ctl_ca_keychain_uninstall(const char *root, const char *sha1,
	    const char *pem_path, const unsigned char *der, size_t der_len);
/* The keychain's name for a certificate: SHA-1 of its DER, upper-case hex. */
int	ctl_ca_keychain_sha1(const unsigned char *der, size_t len, char hex[41]);
/* 1 if s is such a name (40 upper-case hex digits). */
int	ctl_ca_keychain_sha1_ok(const char *s);

/*
 * The viewer (ctl/web.c): `localcapctl web` (execs webd in the foreground);
 * where webd is; and the URL of the one `up --web` started, if it runs
 * (0), else -1.
 */
int	ctl_web(const char *runtime_dir, const char *state_dir, int argc,
	    char **argv);
int	ctl_find_webd(char *path, size_t len);
int	ctl_web_url(const char *runtime_dir, char *url, size_t len);

#endif
