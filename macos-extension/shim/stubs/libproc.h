/* Stub of libproc's proc_pidpath (see README.md). */
#ifndef LC_STUB_LIBPROC_H
#define LC_STUB_LIBPROC_H
#include <stdint.h>
#define PROC_PIDPATHINFO_MAXSIZE	(4 * 1024)
int	proc_pidpath(int pid, void *buffer, uint32_t buffersize);
#endif
