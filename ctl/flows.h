/*
 * localcapctl's flow-store commands: flows (flows.c), show (show.c),
 * export --har (export.c) and ps (ps.c).
 *
 * They read proxyd's store read-only through storeread/ (the library the
 * viewer links too): proxyd keeps writing meanwhile (WAL), and localcapctl
 * needs no daemon to answer.  Each takes the command's own argv (argv[0]
 * is the command name, as for ctl_up) and returns the exit code: 0, 1 for
 * a failure (one line on stderr), 2 for a usage error.
 *
 * The store is found with --state-dir DIR, else the state_dir argument
 * (NULL: none), else $LOCALCAP_STATE_DIR, else /var/lib/localcap.
 */
#ifndef LOCALCAP_CTL_FLOWS_H
#define LOCALCAP_CTL_FLOWS_H

#include <stdint.h>

#define CTL_DEFAULT_STATE_DIR	"/var/lib/localcap"

/* flows [--follow] [--json] [--host RE] [--method M] [--status N]
 *       [--process NAME] [--text TEXT] [--since TIME] [--limit N]
 *       [--before ID | --after ID] */
int	ctl_flows(const char *state_dir, int argc, char **argv);
/* show ID [--body] [--json] — ID is a flow (12) or an exchange (12.3) */
int	ctl_show(const char *state_dir, int argc, char **argv);
/* export --har FILE [filters as for flows] — FILE "-" is stdout */
int	ctl_export(const char *state_dir, int argc, char **argv);

/*
 * ps [--all] [--json] [--state-dir DIR]: running processes and whether the
 * spec redirectord holds captures each (asked over ctl_sock), their flows
 * in the store.  json: the global --json was given.
 */
int	ctl_ps(const char *ctl_sock, const char *state_dir, int json, int argc,
	    char **argv);

/*
 * --since: "30s", "10m", "2h", "1d" before now, or an ISO 8601 time
 * ("2026-11-29T18:00:00Z", "2026-11-29 18:00", "…+01:00", a date alone;
 * local time without a zone).  0, or -1 if s is neither.
 */
int	ctl_parse_since(const char *s, int64_t now_us, int64_t *since_us);

#endif
