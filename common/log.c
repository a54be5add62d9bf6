/*
 * Logging backend: stderr (foreground, with timestamps) or syslog (daemon).
 * See log.h for the API.
 */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static const char *log_ident = "localcap";
static int log_to_stderr = 1;
static int log_level = LOG_LEVEL_INFO;

void
log_init(const char *ident, int to_stderr, int level)
{
	log_ident = ident;
	log_to_stderr = to_stderr;
	log_level = level;
	if (!to_stderr)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
log_setlevel(int level)
{
	log_level = level;
}

int
log_getlevel(void)
{
	return log_level;
}

static void
log_vemit(int with_errno, int level, int prio, const char *func,
    const char *fmt, va_list ap)
{
	char msg[1024];
	int saved = errno;
	int n;

	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return;
	if (with_errno && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", strerror(saved));

	if (log_to_stderr) {
		struct timespec ts;
		struct tm tm;
		char when[32];
		static const char *names[] = { "warn", "info", "debug", "trace" };

		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof(when), "%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ld %s[%d] %s: %s: %s\n", when,
		    ts.tv_nsec / 1000000, log_ident, (int)getpid(),
		    level == -1 ? "fatal" : names[level], func, msg);
	} else
		syslog(prio, "%s: %s", func, msg);
	errno = saved;
}

void
log_emit(int with_errno, int level, const char *func, const char *fmt, ...)
{
	static const int prios[] = { LOG_WARNING, LOG_INFO, LOG_DEBUG, LOG_DEBUG };
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	log_vemit(with_errno, level, prios[level], func, fmt, ap);
	va_end(ap);
}

void
log_fatal(int with_errno, const char *func, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(with_errno, -1, LOG_CRIT, func, fmt, ap);
	va_end(ap);
	exit(1);
}
