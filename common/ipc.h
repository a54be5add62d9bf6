/*
 * Framed protobuf-c messages over non-blocking Unix stream sockets, on libev.
 *
 * Every localcap channel (ctl.sock, data.sock, flow.sock) uses this library.
 * A frame is an 8-byte header followed by the protobuf encoding of one
 * message:
 *
 *	u32  payload length (big endian, <= IPC_MAX_PAYLOAD)
 *	u16  message type   (lc.MsgType, big endian)
 *	u8   number of fds  (<= IPC_MAX_FDS) sent with this frame via SCM_RIGHTS
 *	u8   reserved, 0
 *
 * Why SOCK_STREAM rather than SOCK_SEQPACKET: macOS has no AF_UNIX
 * SOCK_SEQPACKET, and the macOS backend speaks the same contract; a stream
 * also lets a message be larger than the socket buffer (a status reply) and
 * lets back-pressure be counted in bytes.  The price is reassembly, which
 * lives here once.
 *
 * fds travel with the first byte of their frame; the receiver queues them in
 * arrival order and hands each frame exactly the number its header claims.
 * Receivers must still check what kind of fd they got before using it.
 *
 * Every connection starts with a handshake: the connecting side sends Hello
 * {protocol version, role}; the accepting side checks both and answers
 * HelloReply, or Error and closes.  Until then no other frame is accepted.
 * After it, only what the permit table (common/msg.c) allows is: the type on
 * this channel, from the peer's role, within the type's size limit, with its
 * fd count, passing its checks once decoded.  The sender's side applies the
 * same table to itself (ipc_send refuses what its own role may not send).
 *
 * Anything malformed or unpermitted — a length over the limit, a reserved
 * byte set, an unknown type, a type this channel or this role may not carry,
 * a payload that does not decode or fails its checks, fds missing or in
 * excess — closes that one peer with a single log line.  The process goes
 * on.
 */
#ifndef LOCALCAP_IPC_H
#define LOCALCAP_IPC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>
#include <protobuf-c/protobuf-c.h>

#include "common.pb-c.h"

#define IPC_HDR_LEN		8
#define IPC_MAX_PAYLOAD		(1u << 20)	/* 1 MiB; each type has its own, lower or equal (msg.c) */
#define IPC_MAX_FDS		4		/* per frame */
#define IPC_MAX_PENDING_FDS	64		/* received, not yet claimed */
#define IPC_DEFAULT_OUTQ_LIMIT	(4u << 20)	/* bytes queued per peer */

enum ipc_channel {
	IPC_CHAN_CTL = 1 << 0,	/* localcapctl <-> redirectord */
	IPC_CHAN_DATA = 1 << 1,	/* redirectord <-> netstackd */
	IPC_CHAN_FLOW = 1 << 2,	/* flow source -> proxyd */
};

struct ipc_peer;

struct ipc_callbacks {
	/* Handshake completed; the peer may now send and receive. */
	void	(*on_ready)(struct ipc_peer *);
	/*
	 * One decoded message.  msg is freed when this returns.  The callee
	 * owns nothing in fds unless it takes one by setting fds[i] = -1;
	 * the rest are closed afterwards.
	 */
	void	(*on_message)(struct ipc_peer *, Lc__MsgType type,
		    const ProtobufCMessage *msg, int *fds, size_t nfds);
	/*
	 * The connection is gone (reason is one line).  The peer is freed
	 * right after this returns: drop every pointer to it.
	 */
	void	(*on_close)(struct ipc_peer *, const char *reason);
	/* The output queue fell back under half its limit. */
	void	(*on_drain)(struct ipc_peer *);
};

/*
 * Identity of the process at the other end, from SO_PEERCRED, and its
 * supplementary groups as the kernel holds them (SO_PEERGROUPS; ngroups -1
 * if the kernel would not say).  Both are taken at connect time.
 */
struct ipc_cred {
	pid_t	 pid;
	uid_t	 uid;
	gid_t	 gid;
	int	 ngroups;
	gid_t	*groups;
	int	 code;		/* enum ipc_code: whose code the peer runs */
};

/*
 * The peer's code signature (macOS: its audit token from LOCAL_PEERTOKEN,
 * checked against localcap's team, LC_TEAM_ID; ipc_darwin.c).  Linux has
 * none: always IPC_CODE_UNKNOWN there, and the uid checks stand alone.
 */
enum ipc_code {
	IPC_CODE_UNKNOWN = 0,	/* no signatures here, or no team configured */
	IPC_CODE_LOCALCAP,	/* valid, and signed by localcap's team */
	IPC_CODE_OTHER,		/* anything else: unsigned, another team, invalid */
};

/* 1 if gid is the peer's primary group or one of its supplementary groups. */
int	ipc_cred_in_group(const struct ipc_cred *, gid_t gid);

struct ipc_peer_config {
	enum ipc_channel	channel;
	Lc__Role		self_role;
	/* Accepting side: roles allowed to connect (bit 1 << Lc__Role). */
	uint32_t		accept_roles;
	size_t			outq_limit;	/* 0: IPC_DEFAULT_OUTQ_LIMIT */
	const struct ipc_callbacks *cb;
	void			*user;
	const char		*name;		/* for log lines: "ctl.sock" */
};

/*
 * Wrap a connected socket.  connecting = 1 sends Hello at once; 0 waits for
 * one.  The fd is made non-blocking and close-on-exec and is owned by the
 * peer from now on (also on failure).  NULL on allocation failure.
 */
struct ipc_peer	*ipc_peer_new(struct ev_loop *, int fd, int connecting,
		    const struct ipc_peer_config *);

/*
 * Queue one message (and up to IPC_MAX_FDS fds, which are duplicated: the
 * caller keeps its own).  Returns 0, or -1 with errno:
 *	EAGAIN   the output queue is over its limit (back-pressure: wait for
 *		 on_drain),
 *	EMSGSIZE the encoding exceeds the type's size limit (msg.c),
 *	ENOTCONN handshake not finished or peer closing,
 *	EINVAL   type, fd count or own role not permitted on this channel.
 */
int	ipc_send(struct ipc_peer *, Lc__MsgType, const ProtobufCMessage *,
	    const int *fds, size_t nfds);

/* Send an Error frame and close once it is written (or immediately on failure). */
void	ipc_refuse(struct ipc_peer *, Lc__ErrorCode, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

/* Close now: log one line with reason, call on_close, free. */
void	ipc_close(struct ipc_peer *, const char *reason);

/* Stop/restart reading (back-pressure towards the peer). */
void	ipc_pause_read(struct ipc_peer *);
void	ipc_resume_read(struct ipc_peer *);

void			*ipc_user(const struct ipc_peer *);
void			 ipc_set_user(struct ipc_peer *, void *);
const struct ipc_cred	*ipc_cred(const struct ipc_peer *);
Lc__Role		 ipc_peer_role(const struct ipc_peer *);
const char		*ipc_peer_version(const struct ipc_peer *);
size_t			 ipc_outq_bytes(const struct ipc_peer *);
/* The socket, to poll for the peer's hang-up (never to read or write). */
int			 ipc_peer_fd(const struct ipc_peer *);
int			 ipc_is_ready(const struct ipc_peer *);

/*
 * A listening socket at path.  A stale socket file from a dead instance is
 * replaced; a live one (something accepts connections there) is an error, as
 * is a non-socket file.  mode is applied to the socket file.  authorize (may
 * be NULL: allow all) vets SO_PEERCRED before the handshake; returning 0
 * refuses with ERR_PERMISSION_DENIED.  on_accept sees each new peer before
 * its handshake and may set its user pointer.
 */
struct ipc_listener;
typedef int	(*ipc_authorize_fn)(const struct ipc_cred *, void *user);
typedef void	(*ipc_accept_fn)(struct ipc_listener *, struct ipc_peer *);

struct ipc_listener	*ipc_listen(struct ev_loop *, const char *path, mode_t mode,
			    const struct ipc_peer_config *, ipc_authorize_fn,
			    ipc_accept_fn);
/* Stop listening and unlink the socket file.  Peers already accepted live on. */
void			 ipc_listener_free(struct ipc_listener *);
void			*ipc_listener_user(const struct ipc_listener *);

/*
 * A connection that keeps itself up: connects to path, and whenever the
 * connection fails or is lost, retries with back-off (100 ms doubling to 2 s).
 * The first failure of a series and every success are logged; retries are
 * not.  Callbacks are those of the config; on_close fires on every loss.
 */
struct ipc_connector;
struct ipc_connector	*ipc_connector_new(struct ev_loop *, const char *path,
			    const struct ipc_peer_config *);
/* The live peer, or NULL while disconnected or handshaking. */
struct ipc_peer		*ipc_connector_peer(const struct ipc_connector *);
void			 ipc_connector_free(struct ipc_connector *);

/* Connect once, blocking up to timeout_ms (for localcapctl).  -1 + errno. */
int	ipc_connect_path(const char *path);

/* Name of a message type, for log lines. */
const char	*ipc_type_name(Lc__MsgType);

#endif
