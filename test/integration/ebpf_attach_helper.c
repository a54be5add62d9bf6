/*
 * ebpf-attach-helper: the capture programs driven exactly as redirectord
 * drives them (redirectord/bpf.c + redirectord/spec.c), without the rest of
 * the daemon, for test/integration/ebpf_capture.sh.
 *
 *   ebpf-attach-helper --cgroup DIR [--netns NAME] --tun IFNAME
 *       [--spec SPEC] [--exclude-uid N]... [--exclude-cgroup DIR]...
 *
 * Opens the cgroup directory, then enters the network namespace (so that
 * /sys need not be visible there), loads, configures, attaches, prints
 * "ready links=ID,ID,..." and then serves commands on stdin, one per line,
 * answering on stdout and ending every answer with "done":
 *   spec TEXT | enable 0|1 | counters | flows | detach | attach | quit
 * EOF or SIGTERM detaches (the links are owned by this process, so SIGKILL
 * detaches too: that is one of the things the test checks).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "redirectord/bpf.h"
#include "redirectord/spec.h"

#define MAX_EXCL 16

static void
usage(void)
{
	fprintf(stderr, "usage: ebpf-attach-helper --cgroup DIR [--netns NAME] "
	    "--tun IFNAME [--spec SPEC] [--exclude-uid N]... "
	    "[--exclude-cgroup DIR]...\n");
	exit(2);
}

static int
apply_spec(struct rd_bpf *b, const char *text)
{
	struct rd_spec spec;
	struct rd_spec_error err;
	char desc[1024];
	size_t i;

	if (rd_spec_parse(text, NULL, &spec, &err) < 0) {
		printf("error %s\n", err.msg);
		return -1;
	}
	for (i = 0; i < spec.nrules; i++)
		if (spec.name_truncated[i])
			printf("note rule %zu: name compared on its first 15 "
			    "bytes\n", i + 1);
	if (rd_bpf_set_spec(b, &spec) < 0) {
		printf("error set spec: %s\n", strerror(errno));
		return -1;
	}
	rd_spec_format(&spec, desc, sizeof(desc));
	printf("ok generation=%llu spec=%s default=%d\n",
	    (unsigned long long)rd_bpf_generation(b), desc,
	    spec.default_capture);
	return 0;
}

static char cgroup_root[4096];

static int
print_flow(const struct lc_flow_key *k, const struct lc_owner *o, void *arg)
{
	char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN], cg[4096];
	int af = k->family == 4 ? AF_INET : AF_INET6;

	(void)arg;
	inet_ntop(af, k->saddr, s, sizeof(s));
	inet_ntop(af, k->daddr, d, sizeof(d));
	if (rd_cgroup_path(cgroup_root, o->cgroup_id, cg, sizeof(cg)) < 0)
		snprintf(cg, sizeof(cg), "?");
	printf("flow v%u %s %s %u > %s %u pid=%u uid=%u gid=%u cgroup=%llu "
	    "cgpath=%s comm=%.16s\n", k->family, k->proto == 6 ? "tcp" : "udp",
	    s, ntohs(k->sport), d, ntohs(k->dport), o->tgid, o->uid, o->gid,
	    (unsigned long long)o->cgroup_id, cg, o->comm);
	return 0;
}

static void
print_links(struct rd_bpf *b)
{
	uint32_t ids[16];
	size_t i, n = rd_bpf_link_ids(b, ids, 16);

	printf("links=");
	for (i = 0; i < n; i++)
		printf("%s%u", i ? "," : "", ids[i]);
	printf("\n");
}

static void
serve(struct rd_bpf *b, int cgfd)
{
	char line[4096];

	while (fgets(line, sizeof(line), stdin) != NULL) {
		uint64_t c[LC_CNT_MAX];
		size_t n = strlen(line);

		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (strncmp(line, "spec ", 5) == 0 || strcmp(line, "spec") == 0) {
			apply_spec(b, n > 5 ? line + 5 : "");
		} else if (strncmp(line, "enable ", 7) == 0) {
			if (rd_bpf_set_enabled(b, atoi(line + 7) != 0) == 0)
				printf("ok\n");
			else
				printf("error enable\n");
		} else if (strcmp(line, "counters") == 0) {
			if (rd_bpf_counters(b, c) == 0) {
				int i;

				for (i = 0; i < LC_CNT_MAX; i++)
					printf("counter %s %llu\n",
					    rd_bpf_counter_name(i),
					    (unsigned long long)c[i]);
			}
		} else if (strcmp(line, "flows") == 0) {
			rd_bpf_foreach_flow(b, print_flow, NULL);
		} else if (strcmp(line, "detach") == 0) {
			rd_bpf_detach(b);
			printf("ok detached\n");
		} else if (strcmp(line, "attach") == 0) {
			if (rd_bpf_attach_cgroup_fd(b, cgfd) == 0) {
				printf("ok attached ");
				print_links(b);
			} else
				printf("error attach: %s\n", strerror(errno));
		} else if (strcmp(line, "quit") == 0) {
			printf("done\n");
			fflush(stdout);
			return;
		} else {
			printf("error unknown command\n");
		}
		printf("done\n");
		fflush(stdout);
	}
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cgroup", required_argument, NULL, 'c' },
		{ "netns", required_argument, NULL, 'n' },
		{ "tun", required_argument, NULL, 't' },
		{ "spec", required_argument, NULL, 's' },
		{ "exclude-uid", required_argument, NULL, 'u' },
		{ "exclude-cgroup", required_argument, NULL, 'g' },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cgroup = NULL, *netns = NULL, *tun = NULL, *spec = "";
	uint64_t excl_cg[MAX_EXCL], cookie;
	uint32_t excl_uid[MAX_EXCL];
	size_t nuid = 0, ncg = 0, i;
	struct rd_bpf *b = NULL;
	unsigned ifindex;
	int ch, cgfd, verbose = 0;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': cgroup = optarg; break;
		case 'n': netns = optarg; break;
		case 't': tun = optarg; break;
		case 's': spec = optarg; break;
		case 'v': verbose++; break;
		case 'u':
			if (nuid == MAX_EXCL)
				usage();
			excl_uid[nuid++] = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'g':
			if (ncg == MAX_EXCL)
				usage();
			if (rd_cgroup_id(optarg, &excl_cg[ncg]) < 0) {
				perror(optarg);
				return 1;
			}
			ncg++;
			break;
		default:
			usage();
		}
	}
	if (cgroup == NULL || tun == NULL || optind != argc)
		usage();
	log_init("ebpf-attach-helper", 1, LOG_LEVEL_INFO + verbose);
	setvbuf(stdout, NULL, _IOLBF, 0);

	{
		char why[512];

		if (rd_bpf_preflight(why, sizeof(why)) < 0)
			fatalx("%s", why);
	}
	if ((cgfd = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		fatal("open %s", cgroup);
	if (rd_cgroup2_root(cgroup_root, sizeof(cgroup_root)) < 0)
		fatal("no cgroup v2 mount");
	if (netns != NULL) {
		char path[256];
		int nsfd;

		snprintf(path, sizeof(path), "/run/netns/%s", netns);
		if ((nsfd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			fatal("open %s", path);
		if (setns(nsfd, CLONE_NEWNET) < 0)
			fatal("setns %s", path);
		close(nsfd);
	}
	if ((ifindex = if_nametoindex(tun)) == 0)
		fatal("no interface %s", tun);
	if (rd_netns_cookie(&cookie) < 0)
		fatal("SO_NETNS_COOKIE");
	if (rd_bpf_open(&b) < 0)
		fatalx("cannot load the capture programs");
	if (rd_bpf_set_tun(b, ifindex, cookie) < 0 ||
	    rd_bpf_load_local_addrs(b) < 0)
		fatalx("configure");
	for (i = 0; i < nuid; i++)
		if (rd_bpf_exclude_uid(b, excl_uid[i]) < 0)
			fatalx("exclude uid");
	for (i = 0; i < ncg; i++)
		if (rd_bpf_exclude_cgroup(b, excl_cg[i]) < 0)
			fatalx("exclude cgroup");
	if (apply_spec(b, spec) < 0)
		fatalx("bad spec");
	if (rd_bpf_attach_cgroup_fd(b, cgfd) < 0)
		fatalx("attach to %s", cgroup);

	printf("ready ifindex=%u ", ifindex);
	print_links(b);
	fflush(stdout);

	serve(b, cgfd);	/* cgfd stays open for "attach" */
	rd_bpf_destroy(b);
	close(cgfd);
	return 0;
}
