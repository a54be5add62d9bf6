/*
 * The message table: for each lc.MsgType, its protobuf descriptor, the
 * channels that may carry it, and how many fds it must bring.  The framing
 * layer (ipc.c) refuses anything the table does not permit.
 */
#ifndef LOCALCAP_MSG_H
#define LOCALCAP_MSG_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "common.pb-c.h"

struct msg_spec {
	Lc__MsgType			 type;
	const char			*name;
	const ProtobufCMessageDescriptor *desc;
	uint32_t			 channels;	/* enum ipc_channel bits */
	uint8_t				 nfds;		/* exactly this many */
};

/* NULL for an unknown type. */
const struct msg_spec	*msg_lookup(unsigned type);

#endif
