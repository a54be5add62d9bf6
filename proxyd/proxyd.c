/*
 * proxyd — the unprivileged flow consumer.
 *
 * Listens on <runtime>/flow.sock for flow sources (netstackd on Linux,
 * redirectord's macOS backend), each of which hands over flows as NewFlow +
 * one socket fd.  What proxyd does with a flow — TLS interception, HTTP, DNS,
 * raw relay and the flow store — is built in proxyd/'s other modules
 * (intake.c takes the sources' messages, relay.c runs the flows); this file
 * is the process: options, the flow.sock listener, start-up and shutdown.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>
#include <mbedtls/version.h>


#include "daemon.h"
#include "plat.h"
#include "sandbox.h"
#include "proxyd/aead.h"
#include "proxyd/ca.h"
#include "proxyd/certforge.h"
#include "proxyd/hostmatch.h"
#include "proxyd/listen.h"
#include "proxyd/quicgate.h"
#include "proxyd/resolver.h"
#include "proxyd/aeadbench.h"
#include "proxyd/cabundle.h"
#include "proxyd/membudget.h"
#include "proxyd/mitm.h"
#include "proxyd/signer.h"
#include "proxyd/store.h"
#include "ipc.h"
#include "log.h"
#include "flow.pb-c.h"
#include "proxyd/intake.h"
#include "proxyd/relay.h"

#define PROXYD_DEFAULT_STATE_DIR	"/var/lib/localcap"
#define PROXYD_DEFAULT_MEMORY_BUDGET	(256ULL << 20)

enum {
	OPT_CONNECT_TIMEOUT = 256,
	OPT_IDLE_TIMEOUT,
	OPT_UDP_TIMEOUT,
	OPT_UPSTREAM_CA,
	OPT_UPSTREAM_INSECURE,
	OPT_LISTEN,
	OPT_IGNORE_HOSTS,
	OPT_BODY_CAP,
	OPT_STORE_MAX,
	OPT_NO_SPLICE,
	OPT_MEMORY_BUDGET,
	OPT_MAX_FLOWS,
	OPT_MAX_FLOWS_PER_ADDR,
	OPT_NETSTACK_USER,
	OPT_QUIC,
};

struct proxyd {
	struct daemon		 d;
	const char		*state_dir_opt;
	char			 state_dir[256];
	char			 store_dir[300];	/* <state>/store: all it writes */
	struct ipc_listener	*flow_listener;
	struct relay_config	 relay_cfg;
	struct relay		*relay;
	struct intake		*intake;
	const char		*user;		/* --user: drop to it once started */
	/* --netstack-user: the flow source's own user, let onto flow.sock. */
	const char		*netstack_user;
	int			 netstack_user_set;
	unsigned		 netstack_uid, netstack_gid;
	struct store		*store;		/* NULL: flows not recorded */
	struct store_config	 store_cfg;
	/* TLS interception (NULL: off, every flow relayed raw). */
	const char		*upstream_ca;	/* --upstream-ca FILE */
	int			 upstream_insecure;
	struct mitm_options	 mitm_opt;	/* trust bytes read before the sandbox */
	unsigned char		*system_ca_buf;
	unsigned char		*extra_ca_buf;
	struct ca		*ca;		/* the certificate only, once spawned */
	struct signer		*signer;	/* the signer process */
	pid_t			 signer_pid;
	ev_io			 signer_watch;	/* EOF: the signer died */
	ev_child		 signer_child;	/* how it died */
	struct certforge	*certforge;
	struct mitm_ctx		*mitm;
	/* The explicit proxy (--listen), NULL: off. */
	const char		*listen_opt;
	struct plisten		*listener;
	struct resolver		*resolver;	/* its host names */
	/* --ignore-hosts: every list given, then compiled once. */
	const char		*ignore_opt[16];
	size_t			 nignore_opt;
	struct hostmatch	*ignore;
	/* --quic, else the config's quic; NULL: fallback. */
	const char		*quic_opt;
	enum quic_mode		 quic_mode;
	/* The flow store's caps (--body-cap, --store-max), or NULL. */
	const char		*body_cap_opt;
	const char		*store_max_opt;
	/* Memory and flow caps (--memory-budget, --max-flows...), or NULL. */
	const char		*memory_budget_opt;
	const char		*max_flows_opt;
	const char		*max_per_addr_opt;
	bool			 idle_timeout_given;
	struct membudget	 budget;
};

static struct proxyd proxyd = { .d = { .name = "proxyd" } };

static const char usage[] =
    "usage: proxyd [options]\n"
    "The localcap flow consumer: TLS interception, HTTP, DNS and the flow store.\n"
    "\n"
    DAEMON_COMMON_HELP
    "  -s, --state-dir DIR     CA and flow store (default "
    PROXYD_DEFAULT_STATE_DIR ")\n"
    "  -u, --user NAME         run as this unprivileged user once started\n"
    "      --netstack-user NAME  the user netstackd runs as (may use flow.sock)\n"
    "      --connect-timeout S upstream connect timeout (default 10)\n"
    "      --idle-timeout S    end TCP flows idle this long (default 600;\n"
    "                          0: never)\n"
    "      --udp-timeout S     end UDP flows idle this long (default 60;\n"
    "                          DNS flows: half of it)\n"
    "      --upstream-ca FILE  also trust this CA (PEM/DER) for servers\n"
    "      --upstream-insecure do not verify servers' certificates\n"
    "                          (the verdict is still recorded)\n"
    "      --listen ADDR:PORT  also be an explicit HTTP proxy there\n"
    "                          (CONNECT and http:// requests; off by default)\n"
    "      --ignore-hosts LIST relay these without looking inside: regular\n"
    "                          expressions matched against host:port\n"
    "                          (comma-separated; repeatable)\n"
    "      --quic MODE         QUIC (HTTP/3) attempts: fallback (default:\n"
    "                          refused, so that clients use TCP+TLS, which is\n"
    "                          decrypted) or pass (relayed undecrypted); both\n"
    "                          record the attempt with its SNI and ALPN\n"
    "      --body-cap SIZE     HTTP body bytes recorded per side (default 1M;\n"
    "                          longer bodies are marked truncated)\n"
    "      --store-max SIZE    flow store size; the oldest flows go first\n"
    "                          (default 1G; suffixes K, M, G)\n"
    "      --memory-budget SIZE  proxyd's memory target: buffers and captured\n"
    "                          bodies are held to it, bodies over it are\n"
    "                          recorded truncated (default 256M; 0: none)\n"
    "      --max-flows N       flows at once; more are refused (default 8192)\n"
    "      --max-flows-per-addr N  flows at once from one address (default\n"
    "                          4096)\n"
    "      --no-splice         copy every relayed byte through proxyd's\n"
    "                          buffers (default: splice(2) bulk raw data\n"
    "                          from servers to netstackd)\n";

static void
print_version(void)
{
	char mbed[64];

	mbedtls_version_get_string_full(mbed);
	printf("proxyd %s (%s, protobuf-c %s, libev %d.%d, protocol %d)\n",
	    LOCALCAP_VERSION, mbed, protobuf_c_version(), ev_version_major(),
	    ev_version_minor(), LC__PROTOCOL__PROTOCOL_VERSION);
}

/* The watcher was unreferenced when started: give the reference back first. */
static void
stop_signer_watch(void)
{
	if (!ev_is_active(&proxyd.signer_watch))
		return;
	ev_ref(proxyd.d.loop);
	ev_io_stop(proxyd.d.loop, &proxyd.signer_watch);
}

/* At shutdown: the signer's exit is expected then (signer_free reaps it). */
static void
stop_signer_child_watch(void)
{
	if (!ev_is_active(&proxyd.signer_child))
		return;
	ev_ref(proxyd.d.loop);
	ev_child_stop(proxyd.d.loop, &proxyd.signer_child);
}

static void
proxyd_shutdown(void *arg)
{
	(void)arg;
	ipc_listener_free(proxyd.flow_listener);
	proxyd.flow_listener = NULL;
	plisten_free(proxyd.listener);
	proxyd.listener = NULL;
	resolver_free(proxyd.resolver);
	proxyd.resolver = NULL;
	intake_free(proxyd.intake);
	proxyd.intake = NULL;
	/* Running flows are reset: a cut stream must not pass for a whole one. */
	relay_free(proxyd.relay);
	proxyd.relay = NULL;
	if (proxyd.budget.limit != 0)
		log_info("memory budget: at most %zu KiB of %zu KiB used, %llu "
		    "requests turned down", proxyd.budget.high_water >> 10,
		    proxyd.budget.limit >> 10,
		    (unsigned long long)proxyd.budget.refused);
	/* After the relay: it records the flows it ended just now. */
	store_close(proxyd.store);
	proxyd.store = NULL;
	mitm_ctx_free(proxyd.mitm);
	proxyd.mitm = NULL;
	hostmatch_free(proxyd.ignore);
	proxyd.ignore = NULL;
	certforge_free(proxyd.certforge);
	proxyd.certforge = NULL;
	stop_signer_watch();
	stop_signer_child_watch();
	signer_free(proxyd.signer);
	proxyd.signer = NULL;
	ca_free(proxyd.ca);
	proxyd.ca = NULL;
}

/* Root, our own uid, or netstackd's (--netstack-user): the flow sources. */
static int
source_authorize(const struct ipc_cred *cred, void *arg)
{
	(void)arg;
	/* macOS: a signed build takes flows only from code localcap's team
	 * signed (the extension), whatever its uid (common/ipc.h). */
	if (cred->code == IPC_CODE_OTHER)
		return 0;
	return cred->uid == 0 || cred->uid == geteuid() ||
	    (proxyd.netstack_user_set && cred->uid == proxyd.netstack_uid);
}

static double
seconds_opt(const char *name, const char *arg)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (errno || end == arg || *end != '\0' || v < 0 || v > 86400 * 365) {
		fprintf(stderr, "proxyd: --%s: '%s' is not a number of seconds\n",
		    name, arg);
		exit(2);
	}
	return v;
}

/*
 * Every flow holds two descriptors (its socket and the upstream one): the
 * usual soft limit of 1024 would cap proxyd at about 500 flows.
 */
static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		log_warn("raising the open file limit to %llu",
		    (unsigned long long)rl.rlim_max);
}

static void
prepare_state_dir(void)
{
	const char *sd = proxyd.state_dir_opt ? proxyd.state_dir_opt :
	    conf_get(proxyd.d.conf, "proxyd", "state_dir");
	const char *user = proxyd.user ? proxyd.user :
	    conf_get(proxyd.d.conf, "proxyd", "user");
	unsigned uid, gid;
	struct stat st;

	if (sd == NULL)
		sd = PROXYD_DEFAULT_STATE_DIR;
	daemon_abspath(sd, proxyd.state_dir, sizeof(proxyd.state_dir));
	/* The state dir will hold the CA key: proxyd's alone. */
	if (mkdir(proxyd.state_dir, 0700) == 0) {
		/* Made here as root: it belongs to the user proxyd becomes. */
		if (geteuid() == 0 && user != NULL &&
		    (sandbox_lookup_user(user, &uid, &gid) == -1 ||
		    chown(proxyd.state_dir, uid, gid) == -1))
			fatal("giving state dir %s to user %s", proxyd.state_dir, user);
	} else if (errno != EEXIST)
		fatal("cannot create state dir %s", proxyd.state_dir);
	if (stat(proxyd.state_dir, &st) == -1)
		fatal("state dir %s", proxyd.state_dir);
	if (!S_ISDIR(st.st_mode))
		fatalx("state dir %s is not a directory", proxyd.state_dir);
	if (geteuid() == 0 && user != NULL &&
	    sandbox_lookup_user(user, &uid, &gid) == 0 && st.st_uid != uid)
		fatalx("state dir %s belongs to uid %u, not to %s (uid %u), the "
		    "user proxyd runs as (an instance that ran proxyd as root "
		    "made it?): chown -R %s: %s", proxyd.state_dir,
		    (unsigned)st.st_uid, user, uid, user, proxyd.state_dir);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		fatalx("state dir %s is writable by group or others", proxyd.state_dir);
	snprintf(proxyd.store_dir, sizeof(proxyd.store_dir), "%s/%s",
	    proxyd.state_dir, STORE_DIR_NAME);
}

/*
 * The trust store for servers' certificates, read now because the sandbox
 * (Landlock: the state dir only) will not let proxyd open it later.  A
 * missing system bundle is not fatal: with --upstream-ca or
 * --upstream-insecure interception still works, otherwise TLS is relayed
 * raw (prepare_ca says so).
 */
static void
read_trust(void)
{
	struct mitm_options *o = &proxyd.mitm_opt;
	char err[512];

	memset(o, 0, sizeof(*o));
	o->system_ca_file = MITM_SYSTEM_CA_FILE;
	o->insecure = proxyd.upstream_insecure;
	o->session_cache_max = MITM_DEFAULT_SESSIONS;
	if (aead_aes_gcm_accelerated()) {
		/* Several times ChaCha20's speed: no race to run. */
		o->cipher_pref = MITM_PREFER_AESGCM;
		log_info("record cipher preferred on both legs: AES-128-GCM "
		    "(through %s)", aead_aes_gcm_impl());
	} else {
		double aes, chacha;

		o->cipher_pref = aeadbench_fastest(&aes, &chacha);
		log_info("record cipher preferred on both legs: %s (here, per "
		    "core: AES-128-GCM %.0f MB/s, ChaCha20-Poly1305 %.0f MB/s, "
		    "both mbedTLS's own code)",
		    o->cipher_pref == MITM_PREFER_AESGCM ? "AES-128-GCM" :
		    "ChaCha20-Poly1305", aes, chacha);
	}
	o->ticket_lifetime = MITM_DEFAULT_TICKET_LIFETIME;
	/* The HTTP/2 layer (layer_h2.c) speaks h2 on both legs. */
	o->allow_h2 = true;
	if (cabundle_read(MITM_SYSTEM_CA_FILE, &proxyd.system_ca_buf,
	    &o->system_ca_len, err, sizeof(err)) == -1) {
		log_warnx("system trust store: %s", err);
		o->system_ca_file = "";
	} else
		o->system_ca_buf = proxyd.system_ca_buf;
	if (proxyd.upstream_ca != NULL) {
		/* Asked for explicitly: not being able to use it is fatal. */
		if (cabundle_read(proxyd.upstream_ca, &proxyd.extra_ca_buf,
		    &o->extra_ca_len, err, sizeof(err)) == -1)
			fatalx("--upstream-ca: %s", err);
		o->extra_ca_file = proxyd.upstream_ca;
		o->extra_ca_buf = proxyd.extra_ca_buf;
	}
}

/*
 * The CA is made on first start (key 0600, certificate exports 0644 for
 * `localcapctl ca`) and checked on every start, so a broken or tampered CA
 * stops proxyd here rather than at the first TLS client.
 *
 * Run as the state dir's owner, after sandbox_drop() and before
 * sandbox_confine(): the key goes to a signer process forked here
 * (proxyd/signer.h), and proxyd keeps the certificate alone before it reads
 * a byte from the network.  A signer cannot be restarted from inside the
 * sandbox; if it dies, proxyd goes on with the leaves it has cached.
 */
static void
spawn_signer(void)
{
	char err[512];

	if (ca_open(proxyd.state_dir, CA_LOAD_OR_CREATE, &proxyd.ca, err,
	    sizeof(err)) == -1)
		fatalx("CA: %s", err);
	log_info("%s the localcap CA in %s (%s)", ca_was_created(proxyd.ca) ?
	    "created" : "loaded", proxyd.state_dir, CA_EXPORT_PEM_FILE);
	if ((proxyd.signer = signer_spawn(proxyd.ca, err, sizeof(err))) == NULL)
		fatalx("CA signer: %s", err);
	if (ca_has_private_key(proxyd.ca))
		fatalx("CA signer: the CA key is still in proxyd");
	proxyd.signer_pid = signer_pid(proxyd.signer);
	log_info("CA key handed to the signer process (pid %d); proxyd keeps "
	    "the certificate only (%s build)", (int)proxyd.signer_pid,
	    plat_name());
}

static void
signer_lost(void *arg)
{
	(void)arg;
	stop_signer_watch();
}

/* Readable between requests: the signer is gone (or misbehaves). */
static void
signer_watch_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	(void)signer_check_idle(proxyd.signer);
}

/*
 * libev's default loop reaps every child itself (so daemon.c's SIGCHLD
 * hook never sees one): an ev_child watcher is how the status arrives.
 */
static void
signer_child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	int status = w->rstatus;
	pid_t pid = w->rpid;

	(void)revents;
	ev_ref(loop);
	ev_child_stop(loop, w);
	if (WIFEXITED(status))
		log_warnx("CA signer (pid %d) exited with status %d%s", (int)pid,
		    WEXITSTATUS(status),
		    WEXITSTATUS(status) == SIGNER_EXIT_PROTOCOL ? " (a malformed request)" :
		    WEXITSTATUS(status) == SIGNER_EXIT_CLOSED ? " (its socket was closed)" :
		    WEXITSTATUS(status) == 159 ? " (a forbidden system call)" : "");
	else if (WIFSIGNALED(status))
		log_warnx("CA signer (pid %d) killed by signal %d (%s)", (int)pid,
		    WTERMSIG(status), strsignal(WTERMSIG(status)));
	/* The socket's EOF tells the signer module (signer_watch_cb). */
}

/* In the sandbox: certificate forging through the signer, then TLS. */
static void
prepare_tls(struct ev_loop *loop)
{
	char err[512];

	ev_io_init(&proxyd.signer_watch, signer_watch_cb, signer_fd(proxyd.signer),
	    EV_READ);
	ev_io_start(loop, &proxyd.signer_watch);
	ev_unref(loop);		/* it must not keep the loop alive */
	ev_child_init(&proxyd.signer_child, signer_child_cb, proxyd.signer_pid, 0);
	ev_child_start(loop, &proxyd.signer_child);
	ev_unref(loop);
	signer_on_lost(proxyd.signer, signer_lost, NULL);
	if ((proxyd.certforge = certforge_new(proxyd.signer, ca_cert(proxyd.ca),
	    CERTFORGE_DEFAULT_CACHE, 0, err, sizeof(err))) == NULL)
		fatalx("certificate forging: %s", err);
	proxyd.mitm = mitm_ctx_new(&proxyd.mitm_opt, proxyd.certforge, err,
	    sizeof(err));
	/* The parsed store is in the context now; the bytes are not needed. */
	free(proxyd.system_ca_buf);
	free(proxyd.extra_ca_buf);
	proxyd.system_ca_buf = proxyd.extra_ca_buf = NULL;
	if (proxyd.mitm == NULL) {
		log_warnx("TLS interception off, TLS is relayed raw: %s", err);
		return;
	}
	relay_set_mitm(proxyd.relay, proxyd.mitm);
	log_info("intercepting TLS; servers verified against %s%s%s",
	    proxyd.mitm_opt.system_ca_buf ? MITM_SYSTEM_CA_FILE : "nothing",
	    proxyd.upstream_ca ? " and " : "",
	    proxyd.upstream_ca ? proxyd.upstream_ca : "");
	if (proxyd.upstream_insecure)
		log_warnx("--upstream-insecure: server certificates are not "
		    "enforced (the verdict is recorded)");
}

/*
 * <state>/store, the one tree the sandbox lets proxyd touch: not the state
 * dir itself, which holds the CA key (the signer's) and the certificate
 * `localcapctl ca install` trusts.  A store from before this layout
 * (<state>/flows.db) moves in.  As proxyd's user, before the sandbox.
 */
static void
prepare_store_dir(void)
{
	static const char *const sfx[] = { "", "-wal", "-shm", "-journal" };
	char from[600], to[600];
	size_t i;

	if (mkdir(proxyd.store_dir, 0700) == -1 && errno != EEXIST)
		fatal("cannot create %s", proxyd.store_dir);
	snprintf(to, sizeof(to), "%s/%s", proxyd.store_dir, STORE_DB_NAME);
	snprintf(from, sizeof(from), "%s/%s", proxyd.state_dir, STORE_DB_NAME);
	if (access(to, F_OK) == 0 || access(from, F_OK) == -1)
		return;
	for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(from, sizeof(from), "%s/%s%s", proxyd.state_dir,
		    STORE_DB_NAME, sfx[i]);
		snprintf(to, sizeof(to), "%s/%s%s", proxyd.store_dir,
		    STORE_DB_NAME, sfx[i]);
		if (rename(from, to) == -1 && errno != ENOENT)
			fatal("moving %s into %s", from, proxyd.store_dir);
	}
	log_info("flow store moved into %s", proxyd.store_dir);
}

/*
 * Inside the sandbox: try to open the CA key file, which only the signer
 * should ever have read.  Said either way, so a person (and a test) can see
 * that the sandbox really hides it.
 */
static void
check_key_hidden(void)
{
	char p[600];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", proxyd.state_dir, CA_SECRET_FILE);
	if ((fd = open(p, O_RDONLY | O_CLOEXEC)) != -1) {
		close(fd);
		log_warnx("the CA key %s is readable inside the sandbox: this "
		    "kernel does not restrict files (no Landlock)", p);
		return;
	}
	log_info("the CA key file is out of proxyd's reach (%s)",
	    strerror(errno));
}

/*
 * The flow store: every flow is recorded from its start.  If it cannot be
 * opened proxyd still relays, unrecorded, and says so once.
 */
static void
open_store(struct ev_loop *loop)
{
	char path[512], err[512];

	snprintf(path, sizeof(path), "%s/%s", proxyd.store_dir, STORE_DB_NAME);
	if ((proxyd.store = store_open(path, &proxyd.store_cfg, err,
	    sizeof(err))) == NULL) {
		log_warnx("flows will not be recorded: %s", err);
		return;
	}
	store_set_loop(proxyd.store, loop);
	relay_set_store(proxyd.relay, proxyd.store);
	log_info("recording flows in %s", path);
}

/*
 * A size: digits with an optional K, M or G (powers of 1024), within
 * [min, max].  Options and config keys alike; a bad one is fatal.
 */
static uint64_t
size_arg(const char *what, const char *s, uint64_t min, uint64_t max)
{
	unsigned long long v;
	uint64_t mul = 1;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (end != s && end[0] != '\0' && end[1] == '\0') {
		switch (end[0]) {
		case 'k': case 'K': mul = 1ULL << 10; end++; break;
		case 'm': case 'M': mul = 1ULL << 20; end++; break;
		case 'g': case 'G': mul = 1ULL << 30; end++; break;
		}
	}
	if (errno || end == s || *end != '\0' || s[0] == '-' ||
	    v > max / mul || v * mul < min || v * mul > max)
		fatalx("%s: '%s' is not a size from %llu to %llu bytes (K, M, G "
		    "allowed)", what, s, (unsigned long long)min,
		    (unsigned long long)max);
	return v * mul;
}

/* The flow store's caps: options, else localcap.conf, else defaults. */
static void
prepare_store_config(void)
{
	const char *b = proxyd.body_cap_opt ? proxyd.body_cap_opt :
	    conf_get(proxyd.d.conf, "proxyd", "body_cap");
	const char *m = proxyd.store_max_opt ? proxyd.store_max_opt :
	    conf_get(proxyd.d.conf, "proxyd", "store_max");

	store_config_default(&proxyd.store_cfg);
	if (b != NULL)
		proxyd.store_cfg.body_cap = size_arg("--body-cap", b, 0,
		    64ULL << 20);
	if (m != NULL)
		proxyd.store_cfg.max_bytes = size_arg("--store-max", m,
		    1ULL << 20, 1ULL << 40);
}

/* A count within [min, max]; a bad one is fatal. */
static size_t
count_arg(const char *what, const char *s, size_t min, size_t max)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end != '\0' || s[0] == '-' || v < min ||
	    v > max)
		fatalx("%s: '%s' is not a number from %zu to %zu", what, s, min,
		    max);
	return (size_t)v;
}

/*
 * proxyd's memory budget and flow caps (options, else localcap.conf, else
 * defaults), and the TCP idle timeout from the config if no option gave it.
 */
static void
prepare_limits(void)
{
	const char *b = proxyd.memory_budget_opt ? proxyd.memory_budget_opt :
	    conf_get(proxyd.d.conf, "proxyd", "memory_budget");
	const char *n = proxyd.max_flows_opt ? proxyd.max_flows_opt :
	    conf_get(proxyd.d.conf, "proxyd", "max_flows");
	const char *a = proxyd.max_per_addr_opt ? proxyd.max_per_addr_opt :
	    conf_get(proxyd.d.conf, "proxyd", "max_flows_per_addr");
	const char *i = conf_get(proxyd.d.conf, "proxyd", "idle_timeout");
	uint64_t total = PROXYD_DEFAULT_MEMORY_BUDGET;

	if (b != NULL) {
		total = size_arg("--memory-budget", b, 0, 1ULL << 40);
		if (total != 0 && total < 32ULL << 20)
			fatalx("--memory-budget: %s is less than 32M, too little "
			    "to relay with", b);
	}
	membudget_init(&proxyd.budget, (size_t)total);
	proxyd.relay_cfg.budget = &proxyd.budget;
	if (n != NULL)
		proxyd.relay_cfg.max_flows = count_arg("--max-flows", n, 0,
		    1u << 24);
	if (a != NULL)
		proxyd.relay_cfg.max_flows_per_addr = count_arg(
		    "--max-flows-per-addr", a, 0, 1u << 24);
	if (i != NULL && !proxyd.idle_timeout_given) {
		char *end;
		double v = strtod(i, &end);

		if (end == i || *end != '\0' || v < 0 || v > 86400 * 365)
			fatalx("idle_timeout: '%s' is not a number of seconds", i);
		proxyd.relay_cfg.tcp_idle_timeout = v;
	}
	if (total != 0)
		log_info("memory budget %llu MiB (%zu MiB for buffers and "
		    "bodies), at most %zu flows, %zu per address",
		    (unsigned long long)(total >> 20), proxyd.budget.limit >> 20,
		    proxyd.relay_cfg.max_flows,
		    proxyd.relay_cfg.max_flows_per_addr);
}

/* --quic, else the config's quic, else fallback. */
static void
prepare_quic(void)
{
	const char *q = proxyd.quic_opt ? proxyd.quic_opt :
	    conf_get(proxyd.d.conf, "proxyd", "quic");

	if (q != NULL && quic_mode_parse(q, &proxyd.quic_mode) == -1)
		fatalx("%s: '%s' is neither fallback nor pass",
		    proxyd.quic_opt ? "--quic" : "quic (localcap.conf)", q);
	log_info("QUIC attempts: %s", proxyd.quic_mode == QUIC_MODE_PASS ?
	    "passed undecrypted and recorded" :
	    "refused so that clients fall back to TCP, and recorded");
}

/* --ignore-hosts (every one given), else the config's ignore_hosts. */
static void
prepare_ignore(void)
{
	const char *c = conf_get(proxyd.d.conf, "proxyd", "ignore_hosts");
	char err[512];
	size_t i;

	if (proxyd.nignore_opt == 0 && c != NULL)
		proxyd.ignore_opt[proxyd.nignore_opt++] = c;
	if (proxyd.nignore_opt == 0)
		return;
	if ((proxyd.ignore = hostmatch_new()) == NULL)
		fatalx("out of memory");
	for (i = 0; i < proxyd.nignore_opt; i++)
		if (hostmatch_add(proxyd.ignore, proxyd.ignore_opt[i], err,
		    sizeof(err)) == -1)
			fatalx("--ignore-hosts: %s", err);
	log_info("not looking inside connections to %zu host pattern%s",
	    hostmatch_count(proxyd.ignore),
	    hostmatch_count(proxyd.ignore) == 1 ? "" : "s");
}

/*
 * The explicit proxy's socket is bound now, before the sandbox; it starts
 * accepting once the CA and the store are ready.
 */
static void
prepare_listener(struct ev_loop *loop)
{
	const char *l = proxyd.listen_opt ? proxyd.listen_opt :
	    conf_get(proxyd.d.conf, "proxyd", "listen");
	struct resolver_config rc;
	struct endpoint a;
	char err[512], where[64];

	if (l == NULL)
		return;
	if (plisten_parse_addr(l, &a, err, sizeof(err)) == -1)
		fatalx("--listen: %s", err);
	if ((proxyd.listener = plisten_new(loop, proxyd.relay, &a, err,
	    sizeof(err))) == NULL)
		fatalx("--listen: %s", err);
	a.port = plisten_port(proxyd.listener);
	log_info("explicit HTTP proxy on %s", flow_addr_str(&a, where,
	    sizeof(where)));
	/* The files are read now: the sandbox will not let proxyd later. */
	/* As many lookups as clients may wait: one client cannot take all. */
	memset(&rc, 0, sizeof(rc));
	rc.max_pending = PLISTEN_MAX_PENDING;
	if ((proxyd.resolver = resolver_new(loop, &rc)) == NULL)
		fatalx("out of memory");
	if (resolver_load(proxyd.resolver, NULL, NULL, err, sizeof(err)) == -1)
		log_warnx("host names: %s; only addresses will work", err);
}

/* The listener's resolve hook over the resolver (listen.h). */
struct lookup {
	struct resolver_query	*q;
	plisten_resolved	 done;
	void			*arg;
};

static void
lookup_done(const struct resolver_result *res, void *arg)
{
	struct lookup *l = arg;
	plisten_resolved done = l->done;
	void *darg = l->arg;

	free(l);
	done(darg, res->naddrs > 0 ? res->addrs : NULL, res->naddrs,
	    res->error ? res->error : resolver_status_str(res->status));
}

static void *
lookup_start(void *ctx, const char *name, plisten_resolved done, void *arg)
{
	struct lookup *l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->done = done;
	l->arg = arg;
	if ((l->q = resolver_lookup(ctx, name, lookup_done, l)) == NULL) {
		free(l);
		return NULL;
	}
	return l;
}

static void
lookup_cancel(void *handle)
{
	struct lookup *l = handle;

	resolver_cancel(l->q);
	free(l);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		DAEMON_LONGOPTS,
		{ "state-dir", required_argument, NULL, 's' },
		{ "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },
		{ "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
		{ "udp-timeout", required_argument, NULL, OPT_UDP_TIMEOUT },
		{ "user", required_argument, NULL, 'u' },
		{ "upstream-ca", required_argument, NULL, OPT_UPSTREAM_CA },
		{ "upstream-insecure", no_argument, NULL, OPT_UPSTREAM_INSECURE },
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "ignore-hosts", required_argument, NULL, OPT_IGNORE_HOSTS },
		{ "body-cap", required_argument, NULL, OPT_BODY_CAP },
		{ "store-max", required_argument, NULL, OPT_STORE_MAX },
		{ "no-splice", no_argument, NULL, OPT_NO_SPLICE },
		{ "memory-budget", required_argument, NULL, OPT_MEMORY_BUDGET },
		{ "max-flows", required_argument, NULL, OPT_MAX_FLOWS },
		{ "max-flows-per-addr", required_argument, NULL,
		    OPT_MAX_FLOWS_PER_ADDR },
		{ "netstack-user", required_argument, NULL, OPT_NETSTACK_USER },
		{ "quic", required_argument, NULL, OPT_QUIC },
		{ NULL, 0, NULL, 0 },
	};
	struct ipc_peer_config cfg = {
		.channel = IPC_CHAN_FLOW,
		.self_role = LC__ROLE__ROLE_PROXYD,
		.accept_roles = 1u << LC__ROLE__ROLE_NETSTACKD |
		    1u << LC__ROLE__ROLE_REDIRECTORD,
		.cb = &intake_callbacks,
		.name = "flow.sock",
	};
	const struct daemon_hooks hooks = { .shutdown = proxyd_shutdown };
	struct ev_loop *loop;
	char path[300];
	int c;

	relay_config_default(&proxyd.relay_cfg);
	while ((c = getopt_long(argc, argv, DAEMON_SHORTOPTS "s:u:", longopts,
	    NULL)) != -1) {
		if (daemon_common_opt(&proxyd.d, c, optarg, usage, print_version))
			continue;
		switch (c) {
		case 's':
			proxyd.state_dir_opt = optarg;
			break;
		case OPT_NETSTACK_USER:
			proxyd.netstack_user = optarg;
			break;
		case 'u':
			proxyd.user = optarg;
			break;
		case OPT_CONNECT_TIMEOUT:
			proxyd.relay_cfg.connect_timeout =
			    seconds_opt("connect-timeout", optarg);
			break;
		case OPT_IDLE_TIMEOUT:
			proxyd.relay_cfg.tcp_idle_timeout =
			    seconds_opt("idle-timeout", optarg);
			proxyd.idle_timeout_given = true;
			break;
		case OPT_UDP_TIMEOUT:
			proxyd.relay_cfg.udp_idle_timeout =
			    seconds_opt("udp-timeout", optarg);
			proxyd.relay_cfg.dns_idle_timeout =
			    proxyd.relay_cfg.udp_idle_timeout / 2;
			break;
		case OPT_UPSTREAM_CA:
			proxyd.upstream_ca = optarg;
			break;
		case OPT_UPSTREAM_INSECURE:
			proxyd.upstream_insecure = 1;
			break;
		case OPT_LISTEN:
			proxyd.listen_opt = optarg;
			break;
		case OPT_BODY_CAP:
			proxyd.body_cap_opt = optarg;
			break;
		case OPT_STORE_MAX:
			proxyd.store_max_opt = optarg;
			break;
		case OPT_MEMORY_BUDGET:
			proxyd.memory_budget_opt = optarg;
			break;
		case OPT_MAX_FLOWS:
			proxyd.max_flows_opt = optarg;
			break;
		case OPT_MAX_FLOWS_PER_ADDR:
			proxyd.max_per_addr_opt = optarg;
			break;
		case OPT_NO_SPLICE:
			proxyd.relay_cfg.splice = RELAY_SPLICE_OFF;
			break;
		case OPT_QUIC:
			proxyd.quic_opt = optarg;
			break;
		case OPT_IGNORE_HOSTS:
			if (proxyd.nignore_opt == sizeof(proxyd.ignore_opt) /
			    sizeof(proxyd.ignore_opt[0])) {
				fprintf(stderr, "proxyd: too many --ignore-hosts "
				    "(join the lists with commas)\n");
				return 2;
			}
			proxyd.ignore_opt[proxyd.nignore_opt++] = optarg;
			break;
		default:
			fprintf(stderr, "%s", usage);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "proxyd: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (proxyd.state_dir_opt) {
		/* Resolved before daemon_start, which moves us to /. */
		static char abs_state[256];

		daemon_abspath(proxyd.state_dir_opt, abs_state, sizeof(abs_state));
		proxyd.state_dir_opt = abs_state;
	}
	if ((loop = ev_default_loop(EVFLAG_AUTO)) == NULL)
		fatalx("cannot initialise libev");
	daemon_start(&proxyd.d, loop, &hooks);
	/* Options first: a bad one stops proxyd before it creates anything. */
	prepare_ignore();
	prepare_quic();
	prepare_store_config();
	prepare_limits();
	{
		const char *l = proxyd.listen_opt ? proxyd.listen_opt :
		    conf_get(proxyd.d.conf, "proxyd", "listen");
		struct endpoint a;
		char err[256];

		if (l != NULL && plisten_parse_addr(l, &a, err, sizeof(err)) == -1)
			fatalx("--listen: %s", err);
	}
	prepare_state_dir();
	raise_fd_limit();
	if (proxyd.upstream_ca == NULL)
		proxyd.upstream_ca = conf_get(proxyd.d.conf, "proxyd",
		    "upstream_ca");
	read_trust();
	proxyd.relay_cfg.ignore = proxyd.ignore;
	proxyd.relay_cfg.quic = proxyd.quic_mode;

	if ((proxyd.relay = relay_new(loop, &proxyd.relay_cfg)) == NULL ||
	    (proxyd.intake = intake_new(loop, proxyd.relay)) == NULL)
		fatalx("out of memory");
	cfg.user = proxyd.intake;
	prepare_listener(loop);

	if (proxyd.netstack_user == NULL)
		proxyd.netstack_user = conf_get(proxyd.d.conf, "proxyd", "netstack_user");
	if (proxyd.netstack_user) {
		if (sandbox_lookup_user(proxyd.netstack_user, &proxyd.netstack_uid,
		    &proxyd.netstack_gid) == -1)
			fatalx("--netstack-user: unknown user '%s'", proxyd.netstack_user);
		proxyd.netstack_user_set = 1;
	}
	daemon_path(&proxyd.d, "flow.sock", path, sizeof(path));
	if ((proxyd.flow_listener = ipc_listen(loop, path, 0660, &cfg,
	    source_authorize, intake_accept)) == NULL)
		fatal("cannot listen on %s", path);
	log_info("listening for flow sources on %s; state dir %s", path,
	    proxyd.state_dir);

	/*
	 * From here proxyd handles what captured programs and servers send:
	 * no capabilities, files only in its state dir (and its config),
	 * sockets of the kinds a proxy needs, nothing else.
	 */
	{
		const char *user = proxyd.user ? proxyd.user :
		    conf_get(proxyd.d.conf, "proxyd", "user");
		unsigned uid, gid;

		/*
		 * flow.sock was made as root: give it to the user proxyd becomes,
		 * so a netstackd running as that same user can reconnect.  Under
		 * a unit without CAP_CHOWN it stays root's (netstackd runs as
		 * root there, without capabilities), and we do not even try.
		 */
		if (user && plat_can_chown() && (sandbox_lookup_user(user, &uid, &gid) == -1 ||
		    chown(path, uid, proxyd.netstack_user_set ? proxyd.netstack_gid :
		    gid) == -1))
			fatal("giving %s to user %s", path, user);
		const struct sandbox sb = {
			.profile = SANDBOX_PROXYD,
			.user = user,
			.rw_dir = proxyd.store_dir,
			.remove_dir = proxyd.d.runtime_dir,
			.ro_file = proxyd.d.config_path,
		};

		/* As the user that owns the state dir, with no capability:
		 * the CA, whose key leaves with the signer; then the sandbox. */
		daemon_note_text();	/* before the sandbox hides /proc */
		sandbox_drop(&sb);
		spawn_signer();
		prepare_store_dir();
		sandbox_confine(&sb);
		check_key_hidden();
	}
	prepare_tls(loop);
	open_store(loop);
	if (proxyd.listener != NULL) {
		const struct plisten_resolver hook = {
			.resolve = lookup_start,
			.cancel = lookup_cancel,
			.ctx = proxyd.resolver,
		};

		plisten_start(proxyd.listener, &hook);
		intake_set_listener(proxyd.intake, proxyd.listener);
	}

	/*
	 * Start-up code — most of all ipsec-mb's self-test, which runs every
	 * cipher of the library once when the AEAD is set up: 1.5 MiB of the
	 * 2.3 MiB of proxyd's own text mapped at start — leaves proxyd's
	 * resident set (common/daemon.h).
	 */
	daemon_drop_text();
	ev_run(loop, 0);
	daemon_finish(&proxyd.d);
	return 0;
}
