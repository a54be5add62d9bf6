/*
 * The capture TUN device and the routing around it (Linux).
 *
 * redirectord creates one TUN in its network namespace; captured sockets
 * are bound to it by the eBPF programs, so their packets come out of the TUN
 * fd, which redirectord reads or hands to netstackd.  Around the device:
 *
 *   - MTU, link up, and one address per family (TUN_ADDR4 / TUN_ADDR6), so
 *     captured sockets have a source address on the device;
 *   - IPv6 only: a policy rule `oif <tun> lookup <table>` and a default route
 *     via the TUN in that table (IPv4 sockets bound to a device need no
 *     route; IPv6 ones do);
 *   - rp_filter 2 (loose) on the device, so replies written into it are not
 *     dropped; no IPv6 router solicitations from it.
 *
 * Everything goes through rtnetlink (libmnl), never by running ip(8).
 * tun_close() removes the rule; the device, its addresses and routes vanish
 * with its last fd.
 */
#ifndef REDIRECTORD_TUN_H
#define REDIRECTORD_TUN_H

#include <net/if.h>
#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"

#define TUN_DEFAULT_NAME	"localcap0"
#define TUN_DEFAULT_MTU		65535	/* a virtual link: big segments, few packets */
#define TUN_MIN_MTU		1280	/* IPv6 minimum */
#define TUN_MAX_MTU		65535
#define TUN_DEFAULT_TABLE	2780	/* IPv6 routing table for captured sockets */
#define TUN_RULE_PRIORITY	1790

/* Source addresses of captured sockets; netstackd answers to them. */
#define TUN_ADDR4		"198.18.0.1"	/* RFC 2544 benchmarking range */
#define TUN_ADDR6		"fd6c:6361:7000::1"	/* ULA: "lca" */

struct tun {
	int		 fd;		/* -1 when closed */
	char		 name[IFNAMSIZ];
	unsigned	 ifindex;
	unsigned	 mtu;
	uint32_t	 table;
	int		 rule6;		/* the IPv6 rule is ours to delete */
	uint64_t	 netns_cookie;	/* of the namespace the TUN lives in */
};

/*
 * Create and configure the device.  Fails (-1, one line in err) if the name
 * is taken — we never adopt or change an interface we did not create.
 */
LC_MUST_CHECK
int	tun_open(struct tun *, const char *name, unsigned mtu, uint32_t table,
	    char *err, size_t errlen);

/* Undo what tun_open did; safe on a closed or half-opened tun. */
void	tun_close(struct tun *);

#endif
