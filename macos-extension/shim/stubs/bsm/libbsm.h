/* Stub of libbsm's audit-token accessors (see ../README.md). */
#ifndef LC_STUB_LIBBSM_H
#define LC_STUB_LIBBSM_H
#include <sys/types.h>
typedef struct { unsigned int val[8]; } audit_token_t;
pid_t	audit_token_to_pid(audit_token_t atoken);
int	audit_token_to_pidversion(audit_token_t atoken);
uid_t	audit_token_to_euid(audit_token_t atoken);
gid_t	audit_token_to_egid(audit_token_t atoken);
#endif
