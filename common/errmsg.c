/*
 * seterr (errmsg.h): once, rather than a static copy in every module that
 * fills a caller's error buffer.
 */
#include "errmsg.h"

#include <stdarg.h>
#include <stdio.h>

void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}
