/*
 * What localcapctl's commands share across its files: the control-socket
 * client (localcapctl.c) and the instance commands up/down/logs
 * (instance.c).
 */
#ifndef LOCALCAP_CTL_H
#define LOCALCAP_CTL_H

#include <stddef.h>

/* Daemons reported running (0-3), or -1 if redirectord does not answer. */
int	ctl_daemons_running(const char *ctl_sock_path);

int	ctl_up(const char *runtime_dir, int argc, char **argv);
int	ctl_down(const char *runtime_dir);
int	ctl_logs(const char *runtime_dir, int argc, char **argv);
/* localcapctl ca ...: argv[0] is "ca". */
int	ctl_ca(const char *state_dir, int argc, char **argv);

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
