/* Stub of Darwin's <sys/sysctl.h>: a process's credentials by pid, as
 * redirectord/backend_macos.c reads them (see ../README.md).  Only the
 * members it uses; the real struct kinfo_proc has many more. */
#ifndef LC_STUB_SYS_SYSCTL_H
#define LC_STUB_SYS_SYSCTL_H
#include <stddef.h>
#include <sys/types.h>
#define CTL_KERN	1
#define KERN_PROC	14
#define KERN_PROC_PID	1
struct _ucred {
	int32_t		cr_ref;
	uid_t		cr_uid;
	short		cr_ngroups;
	gid_t		cr_groups[16];
};
struct eproc {
	struct _ucred	e_ucred;
};
struct kinfo_proc {
	struct eproc	kp_eproc;
};
int	sysctl(int *name, unsigned int namelen, void *oldp, size_t *oldlenp,
	    void *newp, size_t newlen);
#endif
