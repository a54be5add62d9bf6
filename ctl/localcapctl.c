/*
 * localcapctl — the admin CLI: a thin client of redirectord's ctl.sock.
 *
 * Each command is one request and one reply over the same framing and
 * handshake as the daemons use (common/ipc.c), run on a private libev loop
 * with a deadline.  Errors are one line on stderr and a non-zero exit:
 * 1 for a failed command, 2 for a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "daemon.h"
#include "ipc.h"
#include "log.h"
#include "control.pb-c.h"
#include "ctl/ctl.h"
#include "ctl/ctlclient.h"
#include "ctl/flows.h"
#include "utf8.h"


static const char usage[] =
    "usage: localcapctl [-r DIR] [-s DIR] [--json] COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  up [--state-dir DIR] [--cgroup PATH] [--config FILE] [--tun-name NAME]\n"
    "     [--fail-closed] [--foreground] [--upstream-ca FILE]\n"
    "     [--ignore-hosts LIST] [--listen ADDR:PORT] [--web ADDR:PORT]\n"
    "     [--quic fallback|pass] [--memory-budget SIZE] [--max-flows N]\n"
    "     [--max-flows-per-addr N]\n"
    "                         start the three daemons (without systemd)\n"
    "  down                   stop them\n"
    "  logs [-f] [-n N] [--daemon NAME]\n"
    "                         the daemons' logs (up's log files, else the journal)\n"
    "  status                 the daemons and the capture state\n"
    "  attach SPEC[,SPEC...]  capture more: NAME, PID, !EXCLUDE, uid:N, user:NAME,\n"
    "                         cgroup:PATH, unit:NAME.service (mitmproxy order rules)\n"
    "  detach SPEC[,SPEC...]  stop capturing those items; detach --all: everything\n"
    "  run [--] CMD [ARG...]  run CMD with it and everything it starts captured;\n"
    "                         exits with CMD's status\n"
    "  flows [--follow] [--json] [--host RE] [--method M] [--status N]\n"
    "        [--process NAME] [--text TEXT] [--since TIME] [--limit N]\n"
    "        [--before ID | --after ID]\n"
    "                         the recorded flows, one line each\n"
    "  show ID [--body] [--json]\n"
    "                         one flow or exchange in full\n"
    "  export --har FILE [filters as for flows]\n"
    "                         HAR 1.2 for browser devtools and HAR viewers\n"
    "  ps [--all] [--json]    running processes: which the spec captures (and\n"
    "                         the item that decided), their flows in the store\n"
    "  ca path | export [--der] | install | uninstall\n"
    "                         the localcap CA: where it is, its certificate, and\n"
    "                         trusting it system-wide (and in NSS browser stores)\n"
    "  web [--listen ADDR:PORT] [--user USER]\n"
    "                         the flow viewer in a browser (foreground): prints\n"
    "                         the URL to open, with its access token\n"
    "  version                this program's version\n"
    "\n"
    "options (before or after the command):\n"
    "  -r, --runtime-dir DIR  where the daemons' sockets are (default: "
    "$LOCALCAP_RUNTIME_DIR,\n"
    "                         else " DAEMON_DEFAULT_RUNTIME_DIR ")\n"
    "  -s, --state-dir DIR    proxyd's state dir: CA, flows (default: "
    "$LOCALCAP_STATE_DIR,\n"
    "                         else /var/lib/localcap)\n"
    "  -j, --json             machine-readable output\n"
    "  -h, --help             this text\n";

static void
json_string(const char *s)
{
	json_str_n(stdout, s, s ? strlen(s) : 0);
}

static int
has_counter(const Lc__DaemonStatus *d, const char *name)
{
	size_t i;

	for (i = 0; i < d->n_counters; i++)
		if (d->counters[i]->name && strcmp(d->counters[i]->name, name) == 0)
			return 1;
	return 0;
}

static unsigned long long
counter(const Lc__DaemonStatus *d, const char *name)
{
	size_t i;

	for (i = 0; i < d->n_counters; i++)
		if (d->counters[i]->name && strcmp(d->counters[i]->name, name) == 0)
			return (unsigned long long)d->counters[i]->value;
	return 0;
}

static void
print_status(const struct ctl *ctl, const struct msg_ctl_reply *reply)
{
	const Lc__StatusReply *st = reply->status;
	char web[512];
	size_t i;

	if (ctl->json) {
		printf("{\"runtime_dir\":");
		json_string(st->runtime_dir);
		printf(",\"capturing\":%s,\"fail_closed\":%s,\"spec\":",
		    st->capturing ? "true" : "false",
		    st->fail_closed ? "true" : "false");
		json_string(st->spec);
		printf(",\"note\":");
		json_string(st->note);
		printf(",\"attach_point\":");
		json_string(st->attach_point);
		printf(",\"tun\":");
		json_string(st->tun_name);
		printf(",\"tun_mtu\":%u", st->tun_mtu);
		printf(",\"web\":");
		if (ctl_web_url(ctl->runtime_dir, web, sizeof(web)) == 0)
			json_string(web);
		else
			printf("null");
		printf(",\"daemons\":[");
		for (i = 0; i < st->n_daemons; i++) {
			const Lc__DaemonStatus *d = st->daemons[i];

			printf("%s{\"name\":", i ? "," : "");
			json_string(d->name);
			printf(",\"running\":%s,\"pid\":%u,",
			    d->running ? "true" : "false", d->pid);
			if (d->uid_known)
				printf("\"uid\":%u,", d->uid);
			printf("\"version\":");
			json_string(d->software_version);
			printf(",\"uptime_s\":%llu,\"counters\":{",
			    (unsigned long long)d->uptime_s);
			for (size_t k = 0; k < d->n_counters; k++) {
				printf("%s", k ? "," : "");
				json_string(d->counters[k]->name);
				printf(":%llu", (unsigned long long)d->counters[k]->value);
			}
			printf("}}");
		}
		printf("]}\n");
		return;
	}
	printf("runtime dir  %s\n", st->runtime_dir ? st->runtime_dir : "?");
	for (i = 0; i < st->n_daemons; i++) {
		const Lc__DaemonStatus *d = st->daemons[i];

		if (!d->running) {
			printf("%-12s DOWN\n", d->name);
			continue;
		}
		printf("%-12s running  pid %-7u ", d->name, d->pid);
		if (d->uid_known) {
			struct passwd *pw = getpwuid((uid_t)d->uid);
			char who[64];

			snprintf(who, sizeof(who), "%s(%u)", pw ? pw->pw_name : "",
			    d->uid);
			printf("user %-22s ", who);
		}
		printf("version %s", d->software_version);
		if (strcmp(d->name, "redirectord") == 0 && d->n_counters)
			printf("  sockets captured %llu",
			    (unsigned long long)counter(d, "sockets_captured"));
		if (strcmp(d->name, "netstackd") == 0 && d->n_counters)
			printf("  flows %llu tcp + %llu udp open, %llu + %llu in "
			    "all, %llu tcp retransmits (%llu timeouts)",
			    (unsigned long long)counter(d, "tcp_flows_active"),
			    (unsigned long long)counter(d, "udp_flows_active"),
			    (unsigned long long)counter(d, "tcp_flows_created"),
			    (unsigned long long)counter(d, "udp_flows_created"),
			    (unsigned long long)counter(d, "tcp_retransmits"),
			    (unsigned long long)counter(d, "tcp_timeouts"));
		if (strcmp(d->name, "proxyd") == 0 && d->n_counters) {
			printf("  flows %llu open, %llu in all; TLS %llu decrypted, "
			    "%llu passed through, %llu upstream failures; QUIC "
			    "%llu refused, %llu passed",
			    (unsigned long long)counter(d, "flows_active"),
			    (unsigned long long)counter(d, "flows_total"),
			    (unsigned long long)counter(d, "tls_intercepted"),
			    (unsigned long long)counter(d, "tls_passthrough"),
			    (unsigned long long)counter(d, "tls_upstream_failed"),
			    (unsigned long long)counter(d, "quic_refused"),
			    (unsigned long long)counter(d, "quic_passed"));
			if (has_counter(d, "aes_gcm_ipsec_mb"))
				printf("; AES-GCM by %s",
				    counter(d, "aes_gcm_ipsec_mb") ? "ipsec-mb" :
				    "mbedTLS");
		}
		putchar('\n');
	}
	printf("capture      %s%s%s\n", st->capturing ? "on" : "off",
	    st->note && st->note[0] ? " — " : "", st->note ? st->note : "");
	if (st->attach_point && st->attach_point[0])
		printf("attached at  %s (%s)\n", st->attach_point,
		    st->fail_closed ? "fail-closed" : "fail-open");
	if (st->tun_name && st->tun_name[0])
		printf("TUN          %s, MTU %u\n", st->tun_name, st->tun_mtu);
	if (st->spec && st->spec[0])
		printf("spec         %s\n", st->spec);
	if (ctl_web_url(ctl->runtime_dir, web, sizeof(web)) == 0)
		printf("viewer       %s\n", web);
}

static void
print_spec(const struct ctl *ctl, const struct msg_ctl_reply *reply)
{
	const char *spec = reply->spec;
	unsigned runs = reply->runs;

	/* As the person wrote it; run sessions' own items are counted apart. */
	if (ctl->json) {
		printf("{\"spec\":");
		json_string(spec);
		printf(",\"runs\":%u}\n", runs);
	} else if (runs > 0)
		printf("capturing: %s (and %u run session%s)\n",
		    spec[0] ? spec : "nothing else", runs, runs == 1 ? "" : "s");
	else
		printf("capturing: %s\n", spec[0] ? spec : "nothing");
}

static char run_cgroup[300];

static void
print_run(const struct ctl *ctl, const struct msg_ctl_reply *reply)
{
	(void)ctl;
	snprintf(run_cgroup, sizeof(run_cgroup), "%s", reply->cgroup);
}

/*
 * The global options are accepted after the command too, where people type
 * them (`localcapctl up --runtime-dir DIR`, `localcapctl status --json`), as
 * systemctl does.  They are taken out of argv[first..*argc) here, so the
 * command's own parser never sees them, with three exceptions: nothing after
 * "--", nothing from run's command on (its options are its own), and an
 * option the command has itself (up's -s/--state-dir, the store readers'
 * -j/--json) is left to it.  Returns 0, or 2 (usage) for a missing value.
 */
static int
take_global_options(const char *cmd, int first, int *argc, char **argv,
    const char **runtime_dir, const char **state_dir, int *json)
{
	int own_state = strcmp(cmd, "up") == 0;
	int own_json = strcmp(cmd, "flows") == 0 || strcmp(cmd, "show") == 0 ||
	    strcmp(cmd, "ps") == 0;
	int in, out = first;

	for (in = first; in < *argc; in++) {
		const char *a = argv[in], **dst = NULL, *val = NULL;
		size_t n;

		if (strcmp(a, "--") == 0 || (strcmp(cmd, "run") == 0 && a[0] != '-'))
			break;
		if (strcmp(a, "-j") == 0 || strcmp(a, "--json") == 0) {
			if (own_json) {
				argv[out++] = argv[in];
				continue;
			}
			*json = 1;
			continue;
		}
		if (strcmp(a, "-r") == 0 || strncmp(a, "--runtime-dir", 13) == 0) {
			dst = runtime_dir;
			n = a[1] == 'r' ? 2 : 13;
		} else if (!own_state && (strcmp(a, "-s") == 0 ||
		    strncmp(a, "--state-dir", 11) == 0)) {
			dst = state_dir;
			n = a[1] == 's' ? 2 : 11;
		} else {
			argv[out++] = argv[in];
			continue;
		}
		if (a[n] == '=')
			val = a + n + 1;
		else if (a[n] != '\0') {	/* --runtime-directory: not ours */
			argv[out++] = argv[in];
			continue;
		} else if (in + 1 < *argc)
			val = argv[++in];
		else {
			fprintf(stderr, "localcapctl: %s needs a value\n", a);
			return 2;
		}
		*dst = val;
	}
	while (in < *argc)
		argv[out++] = argv[in++];
	argv[out] = NULL;
	*argc = out;
	return 0;
}

/* "a", "b,c", "d" -> "a,b,c,d" */
static char *
join_args(int n, char **args)
{
	size_t len = 1;
	char *out;
	int i;

	for (i = 0; i < n; i++)
		len += strlen(args[i]) + 1;
	if ((out = calloc(1, len)) == NULL) {
		fprintf(stderr, "localcapctl: out of memory\n");
		return NULL;
	}
	for (i = 0; i < n; i++) {
		if (i)
			strcat(out, ",");
		strcat(out, args[i]);
	}
	return out;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "runtime-dir",	required_argument,	NULL, 'r' },
		{ "json",		no_argument,		NULL, 'j' },
		{ "state-dir",		required_argument,	NULL, 's' },
		{ "help",		no_argument,		NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl ctl = { .exit_code = 1 };
	char *spec = NULL;
	const char *runtime_dir = getenv("LOCALCAP_RUNTIME_DIR");
	const char *state_dir = getenv("LOCALCAP_STATE_DIR");
	char path[300];
	const char *cmd;
	int c, n;

	while ((c = getopt_long(argc, argv, "+r:s:jh", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			runtime_dir = optarg;
			break;
		case 's':
			state_dir = optarg;
			break;
		case 'j':
			ctl.json = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		fputs(usage, stderr);
		return 2;
	}
	cmd = argv[optind++];
	if ((c = take_global_options(cmd, optind, &argc, argv, &runtime_dir,
	    &state_dir, &ctl.json)) != 0)
		return c;
	/* Client errors are printed by us; keep the library's log quiet. */
	log_init("localcapctl", 1, LOG_LEVEL_WARN - 1);

	if (strcmp(cmd, "version") == 0) {
		printf("localcapctl %s (protocol %d)\n", LOCALCAP_VERSION,
		    LC__PROTOCOL__PROTOCOL_VERSION);
		return 0;
	}
	if (runtime_dir == NULL || runtime_dir[0] == '\0')
		runtime_dir = DAEMON_DEFAULT_RUNTIME_DIR;
	n = snprintf(path, sizeof(path), "%s/ctl.sock", runtime_dir);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		fprintf(stderr, "localcapctl: runtime dir too long\n");
		return 2;
	}
	ctl.sock_path = path;
	ctl.runtime_dir = runtime_dir;

	if (state_dir == NULL || state_dir[0] == '\0')
		state_dir = "/var/lib/localcap";
	if (strcmp(cmd, "web") == 0)
		return ctl_web(runtime_dir, state_dir, argc - optind + 1,
		    argv + optind - 1);
	if (strcmp(cmd, "ca") == 0)
		return ctl_ca(state_dir, argc - optind + 1, argv + optind - 1);
	/* The flow store's readers (ctl/flows.c): --json is their own option. */
	if (strcmp(cmd, "flows") == 0)
		return ctl_flows(state_dir, argc - optind + 1, argv + optind - 1);
	if (strcmp(cmd, "show") == 0)
		return ctl_show(state_dir, argc - optind + 1, argv + optind - 1);
	if (strcmp(cmd, "export") == 0)
		return ctl_export(state_dir, argc - optind + 1, argv + optind - 1);
	if (strcmp(cmd, "ps") == 0)
		return ctl_ps(path, state_dir, ctl.json, argc - optind + 1,
		    argv + optind - 1);
	if (strcmp(cmd, "up") == 0)
		return ctl_up(runtime_dir, argc - optind + 1, argv + optind - 1);
	if (strcmp(cmd, "down") == 0) {
		if (optind != argc) {
			fprintf(stderr, "localcapctl: down takes no arguments\n");
			return 2;
		}
		return ctl_down(runtime_dir);
	}
	if (strcmp(cmd, "logs") == 0)
		return ctl_logs(runtime_dir, argc - optind + 1, argv + optind - 1);

	ctl.request.id = (uint64_t)getpid();
	if (strcmp(cmd, "status") == 0) {
		if (optind != argc) {
			fprintf(stderr, "localcapctl: status takes no arguments\n");
			return 2;
		}
		ctl.request.op = MSG_CTL_STATUS;
		ctl.print = print_status;
	} else if (strcmp(cmd, "attach") == 0 || strcmp(cmd, "detach") == 0) {
		int all = strcmp(cmd, "detach") == 0 && optind < argc &&
		    strcmp(argv[optind], "--all") == 0;

		if (!all && optind >= argc) {
			fprintf(stderr, "localcapctl: %s needs a spec, e.g. "
			    "'localcapctl %s curl,!1234'\n", cmd, cmd);
			return 2;
		}
		/* Several arguments are items too: attach curl wget == curl,wget */
		if (!all && (spec = join_args(argc - optind, argv + optind)) == NULL)
			return 1;
		ctl.spec_text = spec;
		ctl.request.op = cmd[0] == 'a' ? MSG_CTL_ATTACH : MSG_CTL_DETACH;
		ctl.request.spec = spec ? spec : "";
		ctl.request.all = all;
		ctl.print = print_spec;
	} else if (strcmp(cmd, "run") == 0) {
		int rc;

		if (optind < argc && strcmp(argv[optind], "--") == 0)
			optind++;
		if (optind >= argc) {
			fprintf(stderr, "localcapctl: run needs a command: "
			    "localcapctl run -- CMD [ARG...]\n");
			return 2;
		}
		ctl.request.op = MSG_CTL_RUN;
		ctl.request.pid = (uint32_t)getpid();
		ctl.print = print_run;
		/*
		 * redirectord moves us into a fresh capture cgroup; then we
		 * become CMD, so CMD and all it starts are in there.
		 */
		if ((rc = ctl_request(&ctl)) != 0)
			return rc;
		if (getenv("LOCALCAP_VERBOSE"))
			fprintf(stderr, "localcapctl: capturing in cgroup %s\n",
			    run_cgroup);
		execvp(argv[optind], argv + optind);
		fprintf(stderr, "localcapctl: cannot run %s: %s\n", argv[optind],
		    strerror(errno));
		return errno == ENOENT ? 127 : 126;
	} else {
		fprintf(stderr, "localcapctl: unknown command '%s'\n", cmd);
		fputs(usage, stderr);
		return 2;
	}
	c = ctl_request(&ctl);
	free(spec);
	return c;
}
