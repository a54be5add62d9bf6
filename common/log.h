/*
 * One logging API for every localcap process (after OpenBSD's log.c).
 *
 * In the foreground, lines go to stderr with a timestamp; as a daemon, to
 * syslog (and so to journald).  Every line is prefixed with the calling
 * function's name.  fatal()/fatalx() log and exit(1); fatal() and log_warn()
 * append strerror(errno).
 */
#ifndef LOCALCAP_LOG_H
#define LOCALCAP_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LEVEL_WARN = 0,	/* warnings and errors only */
	LOG_LEVEL_INFO = 1,	/* default */
	LOG_LEVEL_DEBUG = 2,	/* -v */
	LOG_LEVEL_TRACE = 3,	/* -vv: per-message detail */
};

/* ident: process name in every line; to_stderr: foreground mode. */
void	log_init(const char *ident, int to_stderr, int level);
void	log_setlevel(int level);
int	log_getlevel(void);

void	log_emit(int prio_errno, int level, const char *func, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));
_Noreturn void log_fatal(int with_errno, const char *func, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

#define LOG_WITH_ERRNO	1
#define LOG_NO_ERRNO	0

#define fatal(...)	log_fatal(LOG_WITH_ERRNO, __func__, __VA_ARGS__)
#define fatalx(...)	log_fatal(LOG_NO_ERRNO, __func__, __VA_ARGS__)
#define log_warn(...)	log_emit(LOG_WITH_ERRNO, LOG_LEVEL_WARN, __func__, __VA_ARGS__)
#define log_warnx(...)	log_emit(LOG_NO_ERRNO, LOG_LEVEL_WARN, __func__, __VA_ARGS__)
#define log_info(...)	log_emit(LOG_NO_ERRNO, LOG_LEVEL_INFO, __func__, __VA_ARGS__)
#define log_debug(...)	log_emit(LOG_NO_ERRNO, LOG_LEVEL_DEBUG, __func__, __VA_ARGS__)
#define log_trace(...)	log_emit(LOG_NO_ERRNO, LOG_LEVEL_TRACE, __func__, __VA_ARGS__)

#endif
