/*
 * Which message may travel where.  One row per lc.MsgType (proto/common.proto);
 * keep both in step.  A type missing here is refused on every channel.
 */
#include "msg.h"

#include "ipc.h"
#include "common.pb-c.h"
#include "control.pb-c.h"
#include "data.pb-c.h"
#include "flow.pb-c.h"

#define ALL_CHANNELS	(IPC_CHAN_CTL | IPC_CHAN_DATA | IPC_CHAN_FLOW)

static const struct msg_spec msg_table[] = {
	{ LC__MSG_TYPE__MSG_HELLO, "Hello",
	    &lc__hello__descriptor, ALL_CHANNELS, 0 },
	{ LC__MSG_TYPE__MSG_HELLO_REPLY, "HelloReply",
	    &lc__hello_reply__descriptor, ALL_CHANNELS, 0 },
	{ LC__MSG_TYPE__MSG_ERROR, "Error",
	    &lc__error__descriptor, ALL_CHANNELS, 0 },

	{ LC__MSG_TYPE__MSG_CTL_REQUEST, "CtlRequest",
	    &lc__ctl_request__descriptor, IPC_CHAN_CTL, 0 },
	{ LC__MSG_TYPE__MSG_CTL_REPLY, "CtlReply",
	    &lc__ctl_reply__descriptor, IPC_CHAN_CTL, 0 },

	{ LC__MSG_TYPE__MSG_PACKET_BATCH, "PacketBatch",
	    &lc__packet_batch__descriptor, IPC_CHAN_DATA, 0 },
	{ LC__MSG_TYPE__MSG_TUN_HANDOVER, "TunHandover",
	    &lc__tun_handover__descriptor, IPC_CHAN_DATA, 1 },
	{ LC__MSG_TYPE__MSG_NETSTACK_STATUS, "NetstackStatus",
	    &lc__netstack_status__descriptor, IPC_CHAN_DATA, 0 },
	{ LC__MSG_TYPE__MSG_OWNER_QUERY, "OwnerQuery",
	    &lc__owner_query__descriptor, IPC_CHAN_DATA, 0 },
	{ LC__MSG_TYPE__MSG_OWNER_REPLY, "OwnerReply",
	    &lc__owner_reply__descriptor, IPC_CHAN_DATA, 0 },

	{ LC__MSG_TYPE__MSG_NEW_FLOW, "NewFlow",
	    &lc__new_flow__descriptor, IPC_CHAN_FLOW, 1 },
	{ LC__MSG_TYPE__MSG_FLOW_CLOSED, "FlowClosed",
	    &lc__flow_closed__descriptor, IPC_CHAN_FLOW, 0 },
	{ LC__MSG_TYPE__MSG_PROXY_STATUS, "ProxyStatus",
	    &lc__proxy_status__descriptor, IPC_CHAN_FLOW, 0 },
};

const struct msg_spec *
msg_lookup(unsigned type)
{
	size_t i;

	for (i = 0; i < sizeof(msg_table) / sizeof(msg_table[0]); i++)
		if ((unsigned)msg_table[i].type == type)
			return &msg_table[i];
	return NULL;
}
