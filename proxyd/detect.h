/*
 * Protocol detection on the first bytes of a flow, for proxyd.
 *
 * proxyd keeps a flow's first bytes and asks detect_tcp() again as more
 * arrive until it answers something other than DETECT_NEED_MORE; the bytes
 * are only looked at, never consumed or changed, so whichever handler wins
 * (or the raw relay after a wrong guess) replays them untouched.  Decisions
 * are stable: a prefix that got an answer gets the same answer when longer.
 * UDP flows are classified per datagram by detect_udp().
 */
#ifndef LOCALCAP_PROXYD_DETECT_H
#define LOCALCAP_PROXYD_DETECT_H

#include <stddef.h>
#include <stdint.h>

enum detect_proto {
	DETECT_NEED_MORE = 0,
	DETECT_TLS,		/* a TLS handshake record carrying a ClientHello */
	DETECT_HTTP1,		/* an HTTP/1.x request line */
	DETECT_HTTP2,		/* the HTTP/2 prior-knowledge preface */
	DETECT_DNS,
	DETECT_RAW,		/* anything else: relay untouched */
};

/* Longest request line we wait for before calling it HTTP anyway (the HTTP
 * parser then refuses it with a proper 414). */
#define DETECT_MAX_REQUEST_LINE	8192

enum detect_proto detect_tcp(const uint8_t *buf, size_t len);
/* DNS when the flow goes to port 53 and the datagram has a sane DNS header
 * (length, opcode, counts that fit); otherwise DETECT_RAW. */
enum detect_proto detect_udp(const uint8_t *buf, size_t len, uint16_t dst_port);
const char *detect_proto_str(enum detect_proto p);

#endif
