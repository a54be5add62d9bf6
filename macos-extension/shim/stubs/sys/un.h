/* Darwin's <sys/un.h> adds the SOL_LOCAL options (see ../README.md): the
 * system's own header, then those. */
#ifndef LC_STUB_SYS_UN_H
#define LC_STUB_SYS_UN_H
#include_next <sys/un.h>
#define SOL_LOCAL		0
#define LOCAL_PEERCRED		0x001	/* struct xucred */
#define LOCAL_PEERPID		0x002	/* pid_t */
#define LOCAL_PEEREPID		0x003
#define LOCAL_PEERTOKEN		0x006	/* audit_token_t */
#endif
