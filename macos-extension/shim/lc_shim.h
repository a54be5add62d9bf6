/*
 * Names shared by the extension and its host app.  The identifiers must
 * match the bundles' Info.plist files and the provisioning profiles.
 */
#ifndef LOCALCAP_LC_SHIM_H
#define LOCALCAP_LC_SHIM_H

#define LC_EXTENSION_ID		"org.localcap.extension"
#define LC_HOST_ID		"org.localcap.host"
/* proxyd's flow.sock on macOS: /var/run/localcap is root:wheel 0755, the
 * socket root:_localcap 0660 (docs/macos.md, "Sockets"). */
#define LC_DEFAULT_FLOW_SOCK	"/var/run/localcap/flow.sock"

/* The team that signs localcap: its processes are never intercepted, and
 * only its code may talk to the extension.  Set by the Makefile
 * (TEAM_ID=...); an unset team matches no process. */
#ifndef LC_TEAM_ID
#define LC_TEAM_ID		""
#endif

/* providerConfiguration keys, written by the host app. */
#define LC_CONF_FLOW_SOCK	"flowSocket"
#define LC_CONF_SPEC		"spec"
#define LC_CONF_FAIL_CLOSED	"failClosed"
#define LC_CONF_OWN_UIDS	"ownUids"

#endif
