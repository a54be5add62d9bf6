/*
 * tun-reader: a test helper for test/integration/ebpf_capture.sh.
 *
 * Creates a TUN device (IFF_TUN | IFF_NO_PI, not persistent: it goes away
 * with this process) and prints one line per packet read from it:
 *   v4 tcp 10.0.0.1:40000 > 10.200.0.5:80 len=60 flags=0x02
 *   v6 udp [fd00::1]:5353 > [fd99::5]:53 len=52
 * so that a test can prove which connects came out of the TUN.  Never
 * answers anything.  Exits on SIGTERM or after a safety timeout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static void
print_packet(const unsigned char *p, size_t n)
{
	char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
	const unsigned char *l4;
	unsigned proto;
	size_t l4len;
	int v;

	if (n < 1)
		return;
	v = p[0] >> 4;
	if (v == 4 && n >= 20) {
		size_t ihl = (size_t)(p[0] & 0xf) * 4;

		if (ihl < 20 || ihl > n)
			return;
		inet_ntop(AF_INET, p + 12, src, sizeof(src));
		inet_ntop(AF_INET, p + 16, dst, sizeof(dst));
		proto = p[9];
		l4 = p + ihl;
		l4len = n - ihl;
	} else if (v == 6 && n >= 40) {
		inet_ntop(AF_INET6, p + 8, src, sizeof(src));
		inet_ntop(AF_INET6, p + 24, dst, sizeof(dst));
		proto = p[6];
		l4 = p + 40;
		l4len = n - 40;
	} else {
		printf("v%d other len=%zu\n", v, n);
		return;
	}
	if ((proto == 6 || proto == 17) && l4len >= 4) {
		unsigned sport = (unsigned)(l4[0] << 8 | l4[1]);
		unsigned dport = (unsigned)(l4[2] << 8 | l4[3]);

		if (v == 4)
			printf("v4 %s %s:%u > %s:%u", proto == 6 ? "tcp" : "udp",
			    src, sport, dst, dport);
		else
			printf("v6 %s [%s]:%u > [%s]:%u",
			    proto == 6 ? "tcp" : "udp", src, sport, dst, dport);
		printf(" len=%zu", n);
		if (proto == 6 && l4len >= 14)
			printf(" flags=0x%02x", l4[13]);
		printf("\n");
	} else {
		printf("v%d proto=%u %s > %s\n", v, proto, src, dst);
	}
}

int
main(int argc, char **argv)
{
	unsigned char buf[65536];
	struct ifreq ifr;
	int fd;

	if (argc != 2 || strlen(argv[1]) >= IFNAMSIZ) {
		fprintf(stderr, "usage: tun-reader IFNAME\n");
		return 2;
	}
	if ((fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC)) < 0) {
		perror("tun-reader: /dev/net/tun");
		return 1;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", argv[1]);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		perror("tun-reader: TUNSETIFF");
		return 1;
	}
	alarm(600);	/* never outlive a forgotten test */
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %s\n", ifr.ifr_name);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("tun-reader: read");
			return 1;
		}
		print_packet(buf, (size_t)n);
	}
}
