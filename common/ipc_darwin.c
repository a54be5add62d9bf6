/*
 * ipc_sys.h on macOS: no accept4, SOCK_NONBLOCK/SOCK_CLOEXEC, MSG_NOSIGNAL
 * or MSG_CMSG_CLOEXEC; peer credentials from LOCAL_PEERCRED (uid, groups)
 * and LOCAL_PEERPID (pid); the peer's code signature from LOCAL_PEERTOKEN
 * (its audit token, so a reused pid cannot pass for it), checked with
 * Security.framework against localcap's team (LC_TEAM_ID, as the
 * extension's shim does for flows).  Not compiled on Linux (nothing checks it there but
 * the macOS CI job: .github/workflows/macos.yml).
 */
#ifdef __APPLE__
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/ucred.h>
#include <sys/un.h>
#include <unistd.h>

#include <CoreFoundation/CoreFoundation.h>
#include <Security/Security.h>
#include <bsm/libbsm.h>

#include "ipc.h"
#include "ipc_sys.h"

#ifndef LC_TEAM_ID
#define LC_TEAM_ID	""	/* an ad hoc build: nothing to check against */
#endif

static int
prepare(int fd, int nonblock)
{
	int one = 1, fl;

	if (fcntl(fd, F_SETFD, FD_CLOEXEC) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one)) == -1)
		return -1;
	if (nonblock && ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1))
		return -1;
	return 0;
}

int
ipc_sys_socket(int nonblock)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0), saved;

	if (fd != -1 && prepare(fd, nonblock) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

int
ipc_sys_accept(int lfd)
{
	int fd = accept(lfd, NULL, NULL), saved;

	if (fd != -1 && prepare(fd, 1) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* Whose code the peer runs (enum ipc_code), from its audit token. */
static int
peer_code(int fd)
{
	static const char req_text[] = "anchor apple generic and "
	    "certificate leaf[subject.OU] = \"" LC_TEAM_ID "\"";
	audit_token_t at;
	socklen_t len = sizeof(at);
	CFDataRef token = NULL;
	CFDictionaryRef attrs = NULL;
	CFStringRef text = NULL;
	SecRequirementRef req = NULL;
	SecCodeRef code = NULL;
	const void *keys[1], *values[1];
	int verdict = IPC_CODE_OTHER;

	if (LC_TEAM_ID[0] == '\0')
		return IPC_CODE_UNKNOWN;
	if (getsockopt(fd, SOL_LOCAL, LOCAL_PEERTOKEN, &at, &len) == -1 ||
	    len != sizeof(at))
		return IPC_CODE_OTHER;
	if ((token = CFDataCreate(NULL, (const UInt8 *)&at, (CFIndex)sizeof(at))) == NULL)
		goto out;
	keys[0] = kSecGuestAttributeAudit;
	values[0] = token;
	if ((attrs = CFDictionaryCreate(NULL, keys, values, 1,
	    &kCFTypeDictionaryKeyCallBacks, &kCFTypeDictionaryValueCallBacks)) == NULL ||
	    (text = CFStringCreateWithCString(NULL, req_text,
	    kCFStringEncodingUTF8)) == NULL ||
	    SecRequirementCreateWithString(text, kSecCSDefaultFlags, &req) !=
	    errSecSuccess ||
	    SecCodeCopyGuestWithAttributes(NULL, attrs, kSecCSDefaultFlags, &code) !=
	    errSecSuccess || code == NULL)
		goto out;
	if (SecCodeCheckValidity(code, kSecCSDefaultFlags, req) == errSecSuccess)
		verdict = IPC_CODE_LOCALCAP;
out:
	if (code != NULL)
		CFRelease(code);
	if (req != NULL)
		CFRelease(req);
	if (text != NULL)
		CFRelease(text);
	if (attrs != NULL)
		CFRelease(attrs);
	if (token != NULL)
		CFRelease(token);
	return verdict;
}

int
ipc_sys_peer_cred(int fd, struct ipc_cred *cred)
{
	struct xucred xu;
	socklen_t len = sizeof(xu);
	pid_t pid;

	if (getsockopt(fd, SOL_LOCAL, LOCAL_PEERCRED, &xu, &len) == -1 ||
	    xu.cr_version != XUCRED_VERSION)
		return -1;
	cred->uid = xu.cr_uid;
	cred->gid = xu.cr_ngroups > 0 ? xu.cr_groups[0] : (gid_t)-1;
	/* The groups the kernel holds for the peer (at most NGROUPS, 16). */
	if (xu.cr_ngroups > 0 && (cred->groups = calloc((size_t)xu.cr_ngroups,
	    sizeof(gid_t))) != NULL) {
		memcpy(cred->groups, xu.cr_groups,
		    (size_t)xu.cr_ngroups * sizeof(gid_t));
		cred->ngroups = xu.cr_ngroups;
	}
	len = sizeof(pid);
	if (getsockopt(fd, SOL_LOCAL, LOCAL_PEERPID, &pid, &len) == 0)
		cred->pid = pid;
	cred->code = peer_code(fd);
	return 0;
}

void
ipc_sys_received_fd(int fd)
{
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
}
#else
typedef int ipc_darwin_not_this_platform;
#endif
