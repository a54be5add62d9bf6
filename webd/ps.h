/*
 * The processes tab's data: ctl/ps.c's list (the one `localcapctl ps`
 * prints), with the capture decision made from redirectord's status.
 */
#ifndef LOCALCAP_WEBD_PS_H
#define LOCALCAP_WEBD_PS_H

#include "control.pb-c.h"

struct sr_store;

/*
 * {"capture":{"spec","capturing","note"}|null[,"capture_error":S],
 *  "processes":[`ps --json` objects]}, malloc'd, or NULL with err.
 * st: redirectord's status, or NULL (capture unknown) with why.
 */
char	*ps_json_for_api(const Lc__StatusReply *st, const char *why,
	    struct sr_store *store, char *err, size_t errlen);

#endif
