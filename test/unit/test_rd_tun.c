/*
 * Tests for redirectord/tun.c: the capture TUN and its routing, and the
 * design facts capture relies on (a socket bound to the TUN sends through
 * it with no route for IPv4, through the policy rule for IPv6, and a reply
 * written into the TUN reaches it).
 *
 * The whole program first moves into a network namespace of its own
 * (unshare(CLONE_NEWNET)), so every device and rule it makes lives and dies
 * with this process; nothing touches the host's namespace.  Needs root:
 * without it every test is skipped.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"
#include "redirectord/tun.h"

static int in_own_netns;

static int
setup(void **state)
{
	(void)state;
	if (!in_own_netns)
		skip();
	return 0;
}

/* Output of a shell command run inside our namespace. */
static char *
run(const char *cmd)
{
	static char out[8192];
	FILE *p = popen(cmd, "r");
	size_t n;

	assert_non_null(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	pclose(p);
	return out;
}

static void
open_configures_device_and_routing(void **state)
{
	struct tun t;
	char err[256];
	struct ifreq ifr;
	int s;

	(void)state;
	assert_int_equal(tun_open(&t, "lctest0", 9000, 2780, err, sizeof(err)), 0);
	assert_true(t.fd >= 0);
	assert_true(t.ifindex > 0);
	assert_true(t.netns_cookie != 0);

	s = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lctest0");
	assert_int_equal(ioctl(s, SIOCGIFMTU, &ifr), 0);
	assert_int_equal(ifr.ifr_mtu, 9000);
	assert_int_equal(ioctl(s, SIOCGIFFLAGS, &ifr), 0);
	assert_true(ifr.ifr_flags & IFF_UP);
	close(s);

	assert_non_null(strstr(run("ip -4 addr show dev lctest0"), "198.18.0.1/32"));
	assert_non_null(strstr(run("ip -6 addr show dev lctest0"), "fd6c:6361:7000::1/128"));
	assert_non_null(strstr(run("ip -6 rule show"), "oif lctest0 lookup 2780"));
	assert_non_null(strstr(run("ip -6 route show table 2780"), "default dev lctest0"));
	/* Off here, since "all" is off in a fresh namespace; never strict. */
	assert_string_equal(run("cat /proc/sys/net/ipv4/conf/all/rp_filter"), "0\n");
	assert_string_equal(run("cat /proc/sys/net/ipv4/conf/lctest0/rp_filter"), "0\n");

	tun_close(&t);
	assert_int_equal(t.fd, -1);
	/* The rule is ours to remove; the device goes with its fd. */
	assert_null(strstr(run("ip -6 rule show"), "lctest0"));
	assert_int_equal(if_nametoindex("lctest0"), 0);
}

static void
strict_rp_filter_for_all_gives_loose_on_the_tun(void **state)
{
	struct tun t;
	char err[256];

	(void)state;
	/* Our own namespace's setting, restored below. */
	assert_int_equal(system("sysctl -qw net.ipv4.conf.all.rp_filter=1"), 0);
	assert_int_equal(tun_open(&t, "lctest5", 1500, 2785, err, sizeof(err)), 0);
	assert_string_equal(run("cat /proc/sys/net/ipv4/conf/lctest5/rp_filter"), "2\n");
	tun_close(&t);
	assert_int_equal(system("sysctl -qw net.ipv4.conf.all.rp_filter=0"), 0);
}

static void
stale_rule_of_a_killed_instance_is_replaced(void **state)
{
	struct tun t;
	char err[256];

	(void)state;
	/* What a SIGKILLed redirectord leaves: the rule, without the device. */
	assert_int_equal(system("ip -6 rule add oif lctest6 lookup 2786 priority 1790"), 0);
	assert_int_equal(tun_open(&t, "lctest6", 1500, 2786, err, sizeof(err)), 0);
	tun_close(&t);
	assert_null(strstr(run("ip -6 rule show"), "lctest6"));
}

static void
existing_interface_is_never_adopted(void **state)
{
	struct tun a, b;
	char err[256];

	(void)state;
	assert_int_equal(tun_open(&a, "lctest1", 1500, 2781, err, sizeof(err)), 0);
	assert_int_equal(tun_open(&b, "lctest1", 1500, 2782, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "already exists"));
	/* The first one is untouched. */
	assert_true(if_nametoindex("lctest1") == a.ifindex);
	tun_close(&b);	/* harmless on a failed open */
	tun_close(&a);
	/* And "lo" is certainly not ours. */
	assert_int_equal(tun_open(&b, "lo", 1500, 2781, err, sizeof(err)), -1);
}

static void
bad_arguments_are_refused_clearly(void **state)
{
	struct tun t;
	char err[256];

	(void)state;
	assert_int_equal(tun_open(&t, "", 1500, 2780, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "bad TUN name"));
	assert_int_equal(tun_open(&t, "a/b", 1500, 2780, err, sizeof(err)), -1);
	assert_int_equal(tun_open(&t, "much-too-long-name", 1500, 2780, err,
	    sizeof(err)), -1);
	assert_int_equal(tun_open(&t, "lctest2", 1000, 2780, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "MTU 1000 out of range"));
	assert_int_equal(tun_open(&t, "lctest2", 70000, 2780, err, sizeof(err)), -1);
	assert_int_equal(tun_open(&t, "lctest2", 1500, 254, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "reserved"));
	assert_int_equal(if_nametoindex("lctest2"), 0);
}

/* Read one packet from the TUN within 1 s. */
static ssize_t
read_packet(int fd, uint8_t *buf, size_t cap)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	ssize_t n;

	for (;;) {
		assert_true(poll(&pfd, 1, 1000) == 1);
		n = read(fd, buf, cap);
		if (n < 0 && errno == EAGAIN)
			continue;
		/* Skip anything the kernel says on its own (e.g. MLD). */
		if (n > 0 && (buf[0] >> 4) == 6 && buf[6] == IPPROTO_ICMPV6)
			continue;
		return n;
	}
}

static uint16_t
csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static uint32_t
csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static void
ipv4_socket_bound_to_tun_needs_no_route_and_gets_replies(void **state)
{
	struct tun t;
	char err[256];
	uint8_t pkt[2048], reply[64];
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(9) };
	struct ip *ip;
	struct udphdr *udp;
	uint32_t sum;
	ssize_t n;
	char got[16] = { 0 };
	int s;

	(void)state;
	assert_int_equal(tun_open(&t, "lctest3", 1500, 2783, err, sizeof(err)), 0);
	inet_pton(AF_INET, "10.77.0.1", &dst.sin_addr);	/* no route to it anywhere */
	s = socket(AF_INET, SOCK_DGRAM, 0);
	assert_int_equal(setsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, "lctest3", 8), 0);
	assert_int_equal(sendto(s, "ping", 4, 0, (struct sockaddr *)&dst,
	    sizeof(dst)), 4);
	n = read_packet(t.fd, pkt, sizeof(pkt));
	assert_int_equal(n, 20 + 8 + 4);
	ip = (struct ip *)pkt;
	udp = (struct udphdr *)(pkt + 20);
	assert_int_equal(ip->ip_v, 4);
	assert_string_equal(inet_ntoa(ip->ip_src), "198.18.0.1");
	assert_string_equal(inet_ntoa(ip->ip_dst), "10.77.0.1");
	assert_memory_equal(pkt + 28, "ping", 4);

	/* Answer as the remote: swap addresses and ports, write into the TUN. */
	memset(reply, 0, sizeof(reply));
	reply[0] = 0x45;
	reply[3] = 20 + 8 + 4;
	reply[8] = 64;
	reply[9] = IPPROTO_UDP;
	memcpy(reply + 12, &ip->ip_dst, 4);
	memcpy(reply + 16, &ip->ip_src, 4);
	sum = csum_add(0, reply, 20);
	reply[10] = (uint8_t)(csum_fold(sum) >> 8);
	reply[11] = (uint8_t)csum_fold(sum);
	memcpy(reply + 20, &udp->uh_dport, 2);
	memcpy(reply + 22, &udp->uh_sport, 2);
	reply[25] = 8 + 4;
	memcpy(reply + 28, "pong", 4);
	sum = csum_add(0, reply + 12, 8) + IPPROTO_UDP + 12;
	sum = csum_add(sum, reply + 20, 12);
	reply[26] = (uint8_t)(csum_fold(sum) >> 8);
	reply[27] = (uint8_t)csum_fold(sum);
	assert_int_equal(write(t.fd, reply, 32), 32);
	{
		struct pollfd pfd = { .fd = s, .events = POLLIN };

		assert_int_equal(poll(&pfd, 1, 1000), 1);
		assert_int_equal(recv(s, got, sizeof(got), 0), 4);
	}
	assert_string_equal(got, "pong");
	close(s);
	tun_close(&t);
}

static void
ipv6_socket_bound_to_tun_uses_the_policy_rule(void **state)
{
	struct tun t;
	char err[256];
	uint8_t pkt[2048];
	struct sockaddr_in6 dst = { .sin6_family = AF_INET6, .sin6_port = htons(9) };
	char src[64];
	ssize_t n;
	int s;

	(void)state;
	assert_int_equal(tun_open(&t, "lctest4", 1500, 2784, err, sizeof(err)), 0);
	inet_pton(AF_INET6, "2001:db8::77", &dst.sin6_addr);
	s = socket(AF_INET6, SOCK_DGRAM, 0);
	assert_int_equal(setsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, "lctest4", 8), 0);
	assert_int_equal(sendto(s, "ping6", 5, 0, (struct sockaddr *)&dst,
	    sizeof(dst)), 5);
	n = read_packet(t.fd, pkt, sizeof(pkt));
	assert_int_equal(n, 40 + 8 + 5);
	assert_int_equal(pkt[0] >> 4, 6);
	assert_int_equal(pkt[6], IPPROTO_UDP);
	inet_ntop(AF_INET6, pkt + 8, src, sizeof(src));
	assert_string_equal(src, "fd6c:6361:7000::1");
	assert_memory_equal(pkt + 48, "ping6", 5);
	close(s);
	tun_close(&t);

	/* Without the rule (after close), the same send has nowhere to go. */
	s = socket(AF_INET6, SOCK_DGRAM, 0);
	assert_int_equal(sendto(s, "x", 1, 0, (struct sockaddr *)&dst, sizeof(dst)), -1);
	close(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(open_configures_device_and_routing, setup),
		cmocka_unit_test_setup(strict_rp_filter_for_all_gives_loose_on_the_tun, setup),
		cmocka_unit_test_setup(stale_rule_of_a_killed_instance_is_replaced, setup),
		cmocka_unit_test_setup(existing_interface_is_never_adopted, setup),
		cmocka_unit_test_setup(bad_arguments_are_refused_clearly, setup),
		cmocka_unit_test_setup(ipv4_socket_bound_to_tun_needs_no_route_and_gets_replies, setup),
		cmocka_unit_test_setup(ipv6_socket_bound_to_tun_uses_the_policy_rule, setup),
	};

	log_init("test_rd_tun", 1, LOG_LEVEL_WARN);
	/* A namespace of our own: everything below dies with this process. */
	if (geteuid() == 0 && unshare(CLONE_NEWNET) == 0) {
		in_own_netns = 1;
		if (system("ip link set lo up") != 0)
			fprintf(stderr, "cannot bring lo up in the test namespace\n");
	} else
		fprintf(stderr, "test_rd_tun: not root or no unshare(CLONE_NEWNET): "
		    "skipping\n");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
