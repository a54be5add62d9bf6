/* Stub of Darwin's <sys/ptrace.h>: PT_DENY_ATTACH (see ../README.md). */
#ifndef LC_STUB_SYS_PTRACE_H
#define LC_STUB_SYS_PTRACE_H
#include <sys/types.h>
#define PT_DENY_ATTACH	31
int	ptrace(int request, pid_t pid, char *addr, int data);
#endif
