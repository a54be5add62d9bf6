/*
 * Error plumbing shared by every module that reports failure as one line
 * in a caller's buffer (char *err, size_t errlen), and the attribute for
 * calls whose failure must not be ignored.
 */
#ifndef LOCALCAP_ERRMSG_H
#define LOCALCAP_ERRMSG_H

#include <stddef.h>

/*
 * On a declaration: the caller must look at the result (sslsplit's habit).
 * For calls whose failure matters — dropping privileges, opening what a
 * daemon needs, publishing a capture spec, loading the CA — where carrying
 * on after a failure would be a silent security or correctness bug.  A
 * caller that really does not care says so with an explicit check.
 */
#define LC_MUST_CHECK	__attribute__((warn_unused_result))

/*
 * Format one line into err (errlen bytes, always NUL-terminated, cut if
 * longer).  err may be NULL or errlen 0: the message is dropped.
 */
void	seterr(char *err, size_t errlen, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

#endif
