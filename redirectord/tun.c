/*
 * Create the capture TUN and its routing over rtnetlink (see tun.h).
 *
 * Order matters: sysctls are written while the device is down (so it never
 * sends a router solicitation), then MTU + up, addresses, the IPv6 table
 * route, and last the IPv6 rule that makes captured IPv6 sockets use that
 * table.  Any failure undoes what was done.
 */
#include "errmsg.h"
#include "tun.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fib_rules.h>
#include <linux/if_addr.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>

#include "log.h"

#define NL_BUF	8192	/* one request, or a batch of acks */

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

/* Send one request and wait for its ACK.  -1 with errno from the kernel. */
static int
nl_talk(struct nlmsghdr *nlh)
{
	char buf[NL_BUF];
	struct mnl_socket *nl;
	unsigned portid, seq;
	ssize_t n;
	int rc = -1, saved;

	if ((nl = mnl_socket_open(NETLINK_ROUTE)) == NULL)
		return -1;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
		goto out;
	portid = mnl_socket_get_portid(nl);
	seq = (unsigned)time(NULL);
	nlh->nlmsg_seq = seq;
	nlh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		goto out;
	while ((n = mnl_socket_recvfrom(nl, buf, sizeof(buf))) > 0) {
		rc = mnl_cb_run(buf, (size_t)n, seq, portid, NULL, NULL);
		if (rc <= MNL_CB_STOP)
			break;
	}
	if (n < 0)
		rc = -1;
out:
	saved = errno;
	mnl_socket_close(nl);
	errno = saved;
	return rc < 0 ? -1 : 0;
}

static int
link_up(const struct tun *t)
{
	char buf[NL_BUF];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi;

	nlh->nlmsg_type = RTM_NEWLINK;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = (int)t->ifindex;
	ifi->ifi_change = IFF_UP;
	ifi->ifi_flags = IFF_UP;
	mnl_attr_put_u32(nlh, IFLA_MTU, t->mtu);
	return nl_talk(nlh);
}

static int
add_addr(const struct tun *t, int family, const char *text)
{
	char buf[NL_BUF];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifaddrmsg *ifa;
	unsigned char addr[16];

	if (inet_pton(family, text, addr) != 1) {
		errno = EINVAL;
		return -1;
	}
	nlh->nlmsg_type = RTM_NEWADDR;
	nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = (unsigned char)family;
	ifa->ifa_prefixlen = family == AF_INET ? 32 : 128;
	/* No duplicate detection: nothing else is on this link. */
	ifa->ifa_flags = family == AF_INET6 ? IFA_F_NODAD : 0;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = t->ifindex;
	if (family == AF_INET) {
		mnl_attr_put(nlh, IFA_LOCAL, 4, addr);
		mnl_attr_put(nlh, IFA_ADDRESS, 4, addr);
	} else
		mnl_attr_put(nlh, IFA_ADDRESS, 16, addr);
	return nl_talk(nlh);
}

static int
add_route6(const struct tun *t)
{
	char buf[NL_BUF];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtmsg *rtm;

	nlh->nlmsg_type = RTM_NEWROUTE;
	nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = AF_INET6;
	rtm->rtm_dst_len = 0;
	rtm->rtm_table = RT_TABLE_UNSPEC;	/* RTA_TABLE says which */
	rtm->rtm_protocol = RTPROT_STATIC;
	rtm->rtm_scope = RT_SCOPE_UNIVERSE;
	rtm->rtm_type = RTN_UNICAST;
	mnl_attr_put_u32(nlh, RTA_TABLE, t->table);
	mnl_attr_put_u32(nlh, RTA_OIF, t->ifindex);
	return nl_talk(nlh);
}

static int
rule6(const struct tun *t, int add)
{
	char buf[NL_BUF];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct fib_rule_hdr *frh;

	nlh->nlmsg_type = add ? RTM_NEWRULE : RTM_DELRULE;
	if (add)
		nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
	frh = mnl_nlmsg_put_extra_header(nlh, sizeof(*frh));
	frh->family = AF_INET6;
	frh->action = FR_ACT_TO_TBL;
	frh->table = RT_TABLE_UNSPEC;
	mnl_attr_put_u32(nlh, FRA_TABLE, t->table);
	mnl_attr_put_u32(nlh, FRA_PRIORITY, TUN_RULE_PRIORITY);
	mnl_attr_put_strz(nlh, FRA_OIFNAME, t->name);
	return nl_talk(nlh);
}

/* Write net.<family>.conf.<dev>.<key>; the device's namespace is ours. */
static int
write_sysctl(const char *family, const char *dev, const char *key,
    const char *value)
{
	char path[128];
	int fd, ok;

	snprintf(path, sizeof(path), "/proc/sys/net/%s/conf/%s/%s", family, dev,
	    key);
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1)
		return -1;
	ok = write(fd, value, strlen(value)) == (ssize_t)strlen(value);
	close(fd);
	return ok ? 0 : -1;
}

/* An integer sysctl under /proc/sys, or -1. */
static int
read_sysctl_int(const char *name)
{
	char path[128], buf[32];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/sys/%s", name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return atoi(buf);
}

static uint64_t
current_netns_cookie(void)
{
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd == -1)
		return 0;
	if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) == -1)
		cookie = 0;
	close(fd);
	return cookie;
}

int
tun_open(struct tun *t, const char *name, unsigned mtu, uint32_t table,
    char *err, size_t errlen)
{
	struct ifreq ifr;
	int rc;

	memset(t, 0, sizeof(*t));
	t->fd = -1;
	if (strlen(name) == 0 || strlen(name) >= IFNAMSIZ || strchr(name, '/') ||
	    strchr(name, '%') || strchr(name, ' ')) {
		seterr(err, errlen, "bad TUN name '%s' (1-%d characters, no '/', "
		    "'%%' or spaces)", name, IFNAMSIZ - 1);
		return -1;
	}
	if (mtu < TUN_MIN_MTU || mtu > TUN_MAX_MTU) {
		seterr(err, errlen, "TUN MTU %u out of range %u-%u", mtu,
		    TUN_MIN_MTU, TUN_MAX_MTU);
		return -1;
	}
	if (table == 0 || table == 253 || table == 254 || table == 255) {
		seterr(err, errlen, "routing table %u is reserved", table);
		return -1;
	}
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->mtu = mtu;
	t->table = table;
	/* Never adopt an existing interface: it is someone else's. */
	if (if_nametoindex(name) != 0) {
		seterr(err, errlen, "interface %s already exists (another "
		    "localcap, or choose another --tun-name)", name);
		return -1;
	}
	if ((t->fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK)) == -1) {
		seterr(err, errlen, "/dev/net/tun: %s%s", strerror(errno),
		    errno == ENOENT ? " (no TUN support: load the tun module)" :
		    errno == EACCES || errno == EPERM ? " (needs root)" : "");
		return -1;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	memcpy(ifr.ifr_name, t->name, strlen(t->name));
	if (ioctl(t->fd, TUNSETIFF, &ifr) == -1) {
		seterr(err, errlen, "creating TUN %s: %s", t->name, strerror(errno));
		goto fail;
	}
	if ((t->ifindex = if_nametoindex(t->name)) == 0) {
		seterr(err, errlen, "TUN %s vanished: %s", t->name, strerror(errno));
		goto fail;
	}
	/*
	 * Before it is up.  Replies written into the TUN must pass the
	 * reverse-path check, whose effective mode is max(all, device): off
	 * when "all" is off (loose mode would still want some route back to
	 * the remote), else loose — strict would drop them.  And no router
	 * solicitation chatter.
	 */
	if (write_sysctl("ipv4", t->name, "rp_filter",
	    read_sysctl_int("net/ipv4/conf/all/rp_filter") == 0 ? "0" : "2") == -1) {
		seterr(err, errlen, "rp_filter on %s: %s", t->name, strerror(errno));
		goto fail;
	}
	(void)write_sysctl("ipv6", t->name, "router_solicitations", "0");
	(void)write_sysctl("ipv6", t->name, "accept_ra", "0");
	if (link_up(t) == -1) {
		seterr(err, errlen, "bringing %s up with MTU %u: %s", t->name, mtu,
		    strerror(errno));
		goto fail;
	}
	if (add_addr(t, AF_INET, TUN_ADDR4) == -1) {
		seterr(err, errlen, "address %s on %s: %s", TUN_ADDR4, t->name,
		    strerror(errno));
		goto fail;
	}
	if (add_addr(t, AF_INET6, TUN_ADDR6) == -1) {
		seterr(err, errlen, "address %s on %s: %s%s", TUN_ADDR6, t->name,
		    strerror(errno), errno == EACCES ? " (IPv6 disabled?)" : "");
		goto fail;
	}
	if (add_route6(t) == -1) {
		seterr(err, errlen, "IPv6 default route via %s in table %u: %s",
		    t->name, table, strerror(errno));
		goto fail;
	}
	rc = rule6(t, 1);
	if (rc == -1 && errno == EEXIST) {
		/*
		 * Our priority and table for a device of our name that did not
		 * exist a moment ago: a killed instance left it behind.
		 */
		log_warnx("removing a stale IPv6 rule for %s left by a previous "
		    "instance", t->name);
		if ((rc = rule6(t, 0)) == 0)
			rc = rule6(t, 1);
	}
	if (rc == -1) {
		seterr(err, errlen, "IPv6 rule 'oif %s lookup %u': %s", t->name,
		    table, strerror(errno));
		goto fail;
	}
	t->rule6 = 1;
	t->netns_cookie = current_netns_cookie();
	log_info("TUN %s up (ifindex %u, MTU %u, %s, %s, IPv6 table %u)",
	    t->name, t->ifindex, t->mtu, TUN_ADDR4, TUN_ADDR6, t->table);
	return 0;
fail:
	tun_close(t);
	return -1;
}

void
tun_close(struct tun *t)
{
	if (t->rule6) {
		/* A rule outlives the device: remove it ourselves. */
		if (rule6(t, 0) == -1)
			log_warn("removing IPv6 rule for %s", t->name);
		t->rule6 = 0;
	}
	if (t->fd >= 0) {
		close(t->fd);	/* the device, its addresses and routes go with it */
		t->fd = -1;
	}
}
