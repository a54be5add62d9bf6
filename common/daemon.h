/*
 * What every localcap daemon does the same way: common options, the config
 * file, logging set-up, the runtime directory, a pid file, and the signals
 * (SIGTERM/SIGINT: shutdown; SIGHUP: reload; SIGCHLD: reap).  Each daemon's
 * main parses its own options, lets daemon_common_opt() take the shared ones,
 * then calls daemon_start() and runs the libev loop.
 */
#ifndef LOCALCAP_DAEMON_H
#define LOCALCAP_DAEMON_H

#include <getopt.h>
#include <sys/types.h>

#include <ev.h>

#include "conf.h"

/* macOS has no /run: its launchd jobs and localcapctl meet in /var/run. */
#ifdef __APPLE__
#define DAEMON_DEFAULT_RUNTIME_DIR	"/var/run/localcap"
#else
#define DAEMON_DEFAULT_RUNTIME_DIR	"/run/localcap"
#endif

/* Short options shared by every daemon, and their long forms. */
#define DAEMON_SHORTOPTS	"c:r:fvhV"
#define DAEMON_LONGOPTS							\
	{ "config",		required_argument,	NULL, 'c' },	\
	{ "runtime-dir",	required_argument,	NULL, 'r' },	\
	{ "foreground",		no_argument,		NULL, 'f' },	\
	{ "verbose",		no_argument,		NULL, 'v' },	\
	{ "help",		no_argument,		NULL, 'h' },	\
	{ "version",		no_argument,		NULL, 'V' }

#define DAEMON_COMMON_HELP						\
	"  -c, --config FILE       read localcap.conf FILE\n"		\
	"  -r, --runtime-dir DIR   sockets and pid files (default "	\
	    DAEMON_DEFAULT_RUNTIME_DIR ")\n"				\
	"  -f, --foreground        stay in the foreground, log to stderr\n" \
	"  -v, --verbose           more log detail (repeat for more)\n"	\
	"  -h, --help              this text\n"				\
	"  -V, --version           print the version and exit\n"

struct daemon_hooks {
	void	(*shutdown)(void *);		/* stop everything, then return */
	void	(*reload)(void *, const struct conf *);	/* after a good SIGHUP read */
	void	(*child_exited)(void *, pid_t, int status);
	void	*arg;
};

struct daemon {
	const char	*name;		/* "proxyd" */
	const char	*config_path;	/* NULL: no config file */
	const char	*runtime_dir_opt;
	int		 foreground;
	int		 verbose;
	/* Set by daemon_start: */
	char		 config_abs[512];
	char		 runtime_dir[256];
	char		 pidfile[300];
	int		 pidfd;		/* holds the single-instance lock */
	struct conf	*conf;
	struct ev_loop	*loop;
	struct daemon_hooks hooks;
	ev_signal	 sigterm, sigint, sighup, sigchld;
	ev_tstamp	 started;
};

/* 1 if c was a common option (handled), 0 if not.  Exits for -h/-V/errors. */
int	daemon_common_opt(struct daemon *, int c, const char *optarg,
	    const char *usage, void (*print_version)(void));

/* Read config, set up logging, runtime dir, pid file and signals; fatal on error. */
void	daemon_start(struct daemon *, struct ev_loop *, const struct daemon_hooks *);

/* Remove the pid file; called on the way out. */
void	daemon_finish(struct daemon *);

/* in made absolute against the current directory; fatal if it does not fit. */
void	daemon_abspath(const char *in, char *out, size_t len);

/* "<runtime_dir>/<name>" into buf; fatal if it does not fit. */
void	daemon_path(const struct daemon *, const char *name, char *buf, size_t len);

/*
 * Start-up code stays mapped, and counted in a daemon's resident set, after
 * it ran (option and config parsing, the sandbox's set-up, in proxyd
 * ipsec-mb's self-test).  daemon_note_text() lists the program's and its
 * libraries' code mappings — call it before the sandbox, which hides /proc;
 * daemon_drop_text() drops them (MADV_DONTNEED) once set-up is done: what
 * the loop runs is mapped again from the page cache on first use (minor
 * faults), the pages stay in the page cache, shared, and a debugger's
 * breakpoints set before it are lost.  Linux only; elsewhere no-ops.
 */
void	daemon_note_text(void);
void	daemon_drop_text(void);

#endif
