/*
 * localcapctl web: the flow viewer (webd) in the foreground, and what
 * `status` and `up --web` need to know about a viewer run as a daemon.
 *
 * webd is found where the daemons are: beside localcapctl (a build tree)
 * or in ../libexec/localcap/ (an installed tree).  It prints the URL to
 * open, with the access token, and runs until interrupted.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl/ctl.h"

int
ctl_find_webd(char *path, size_t len)
{
	char self[PATH_MAX], *slash;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return -1;
	self[n] = '\0';
	if ((slash = strrchr(self, '/')) != NULL)
		*slash = '\0';
	if ((size_t)snprintf(path, len, "%s/webd", self) < len &&
	    access(path, X_OK) == 0)
		return 0;
	if ((size_t)snprintf(path, len, "%s/../libexec/localcap/webd", self) <
	    len && access(path, X_OK) == 0)
		return 0;
	fprintf(stderr, "localcapctl: cannot find webd beside %s or in "
	    "%s/../libexec/localcap\n", self, self);
	return -1;
}

int
ctl_web(const char *runtime_dir, const char *state_dir, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "listen",	required_argument,	NULL, 'l' },
		{ "state-dir",	required_argument,	NULL, 's' },
		{ "user",	required_argument,	NULL, 'u' },
		{ "verbose",	no_argument,		NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	char prog[PATH_MAX];
	char *args[32];
	int n = 0, c;

	if (ctl_find_webd(prog, sizeof(prog)) == -1)
		return 1;
	args[n++] = (char *)(uintptr_t)"webd";
	args[n++] = (char *)(uintptr_t)"--standalone";
	args[n++] = (char *)(uintptr_t)"-r";
	args[n++] = (char *)(uintptr_t)runtime_dir;
	optind = 1;
	while ((c = getopt_long(argc, argv, "l:s:u:v", longopts, NULL)) != -1) {
		if (n > 24) {
			fprintf(stderr, "localcapctl: web: too many options\n");
			return 2;
		}
		switch (c) {
		case 'l':
			args[n++] = (char *)(uintptr_t)"--listen";
			args[n++] = optarg;
			break;
		case 's':
			state_dir = optarg;
			break;
		case 'u':
			args[n++] = (char *)(uintptr_t)"--user";
			args[n++] = optarg;
			break;
		case 'v':
			args[n++] = (char *)(uintptr_t)"-v";
			break;
		default:
			fprintf(stderr, "usage: localcapctl web [--listen ADDR:PORT] "
			    "[--state-dir DIR] [--user USER]\n");
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "localcapctl: web takes options only ('%s'?)\n",
		    argv[optind]);
		return 2;
	}
	args[n++] = (char *)(uintptr_t)"-s";
	args[n++] = (char *)(uintptr_t)state_dir;
	args[n] = NULL;
	execv(prog, args);
	fprintf(stderr, "localcapctl: cannot run %s: %s\n", prog, strerror(errno));
	return 1;
}

int
ctl_web_url(const char *runtime_dir, char *url, size_t len)
{
	char path[PATH_MAX], comm[32] = "";
	FILE *f;
	int pid = 0;

	url[0] = '\0';
	snprintf(path, sizeof(path), "%s/webd.pid", runtime_dir);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	if (fscanf(f, "%d", &pid) != 1)
		pid = 0;
	fclose(f);
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	if (pid <= 0 || (f = fopen(path, "re")) == NULL)
		return -1;
	if (fgets(comm, sizeof(comm), f) == NULL)
		comm[0] = '\0';
	fclose(f);
	if (strcmp(comm, "webd\n") != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/webd.url", runtime_dir);
	if ((f = fopen(path, "re")) == NULL) {
		/* Running, but its URL (a secret) is not ours to read. */
		snprintf(url, len, "(in %s, readable by its owner)", path);
		return 0;
	}
	if (fgets(url, (int)len, f) == NULL)
		url[0] = '\0';
	fclose(f);
	url[strcspn(url, "\n")] = '\0';
	/* Shown on a terminal: nothing but printable ASCII. */
	for (char *p = url; *p; p++)
		if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
			*p = '?';
	return 0;
}
