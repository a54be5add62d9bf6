/*
 * The permit table: for each lc.MsgType, its protobuf descriptor, the
 * channels that may carry it, the roles that may send it, its size limit,
 * how many fds it must bring, and the checks its decoded form must pass.
 * The framing layer (ipc.c) consults it on both sides: a sender may not
 * queue what its own role may not send, and a receiver closes the peer (one
 * log line; the process goes on) on anything the table does not permit —
 * the shape of OpenSSH's monitor table and relayd's imsg dispatch.
 *
 * Framing goes through the row's descriptor (ipc_send packs with it, the
 * receiver unpacks with it and then runs validate); turning a message's
 * fields into C and back is msgcodec.c's, one encode/decode pair per type.
 */
#ifndef LOCALCAP_MSG_H
#define LOCALCAP_MSG_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "common.pb-c.h"
#include "control.pb-c.h"

/*
 * Status counters travel netstackd -> redirectord -> localcapctl, proxyd's
 * by way of netstackd.  Every hop keeps them in tables of this size, and the
 * permit table refuses a status message with more, or with a longer name:
 * no hop cuts a list or a name without saying so.
 */
#define LC_STATUS_COUNTERS_MAX	64
#define LC_COUNTER_NAME_MAX	48	/* bytes, with the NUL */
#define LC_SOFTWARE_VERSION_MAX	32	/* Hello.software_version, with the NUL */
#define LC_STATUS_DAEMONS_MAX	8	/* StatusReply.daemons */
/* A daemon's row in a StatusReply: its counters, proxyd's after flows_active. */
#define LC_STATUS_ROW_COUNTERS_MAX	(LC_STATUS_COUNTERS_MAX + 1)

/* Role bits for msg_spec.senders. */
#define MSG_ROLE(r)		(1u << LC__ROLE__ROLE_##r)
#define MSG_ROLES_ANY		(MSG_ROLE(CTL) | MSG_ROLE(REDIRECTORD) | \
				    MSG_ROLE(NETSTACKD) | MSG_ROLE(PROXYD))

struct msg_spec {
	Lc__MsgType			 type;
	const char			*name;
	const ProtobufCMessageDescriptor *desc;
	uint32_t			 channels;	/* enum ipc_channel bits */
	uint32_t			 senders;	/* MSG_ROLE() bits */
	uint32_t			 max_len;	/* payload bytes */
	uint8_t				 nfds;		/* exactly this many */
	/*
	 * After decoding: NULL if the message is acceptable, else a short
	 * phrase saying why not (the peer is closed with it).  NULL: no
	 * checks beyond the protobuf decoding.
	 */
	const char			*(*validate)(const ProtobufCMessage *);
	/*
	 * MSG_ROLE() bits of the roles that may receive it; 0: any role on
	 * its channels.  With senders it names the directions a type may
	 * travel where one bit mask is too coarse: FlowClosed goes from a
	 * flow source to proxyd, and from proxyd back only to the macOS
	 * extension (its reset marker, which netstackd never takes).
	 */
	uint32_t			 receivers;
};

/* NULL for an unknown type. */
const struct msg_spec	*msg_lookup(unsigned type);

/* 1 if a peer of this role may send the type (its row's senders). */
int			 msg_role_may_send(const struct msg_spec *, Lc__Role);
/* 1 if the type may go from a peer of role from to one of role to. */
int			 msg_may_travel(const struct msg_spec *, Lc__Role from,
			    Lc__Role to);

/*
 * The checks the table's rows share, for msgcodec.c's decoders too: NULL if
 * acceptable, else why not.  A status reply's daemon rows: at most
 * LC_STATUS_DAEMONS_MAX, each named, counters as a status carries them.
 */
const char		*msg_check_counters(Lc__Counter *const *, size_t n);
const char		*msg_status_reply_check(const Lc__StatusReply *);

#endif
