/*
 * What localcapctl's commands share across its files: the control-socket
 * client (localcapctl.c) and the instance commands up/down/logs
 * (instance.c).
 */
#ifndef LOCALCAP_CTL_H
#define LOCALCAP_CTL_H

/* Daemons reported running (0-3), or -1 if redirectord does not answer. */
int	ctl_daemons_running(const char *ctl_sock_path);

int	ctl_up(const char *runtime_dir, int argc, char **argv);
int	ctl_down(const char *runtime_dir);
int	ctl_logs(const char *runtime_dir, int argc, char **argv);
/* localcapctl ca ...: argv[0] is "ca". */
int	ctl_ca(const char *state_dir, int argc, char **argv);
/*
 * 1 if path is a file `ca install` creates under the trust root root ("" on
 * a real system): uninstall, as root, removes nothing else.
 */
int	ctl_ca_installed_file_ok(const char *root, const char *path);

#endif
