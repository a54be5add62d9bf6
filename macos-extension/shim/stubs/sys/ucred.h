/* Stub of Darwin's <sys/ucred.h>: the LOCAL_PEERCRED answer (see ../README.md). */
#ifndef LC_STUB_SYS_UCRED_H
#define LC_STUB_SYS_UCRED_H
#include <sys/types.h>
#define XUCRED_VERSION	0
#define NGROUPS		16
struct xucred {
	unsigned int	cr_version;
	uid_t		cr_uid;
	short		cr_ngroups;
	gid_t		cr_groups[NGROUPS];
};
#endif
