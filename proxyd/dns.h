/*
 * DNS message parser for proxyd (RFC 1035 and friends), I/O-free.
 *
 * proxyd forwards DNS unchanged and records what it saw: this parser turns
 * one message into a struct (header, questions, resource records with rdata
 * decoded for the common types, raw otherwise) and refuses anything whose
 * lengths lie: counts beyond the data, rdlength beyond the message, names
 * over 255 bytes or labels over 63, compression pointers that do not point
 * strictly backwards (so no loop is possible) or chain too long.  Names are
 * rendered as presentation text ("www.example.com", "." for the root) with
 * odd bytes escaped ("\." "\\" "\DDD").  DNS over TCP's 2-byte length framing
 * is in dns_tcp_frame().
 */
#ifndef LOCALCAP_PROXYD_DNS_H
#define LOCALCAP_PROXYD_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_HEADER_LEN		12
#define DNS_MAX_NAME_WIRE	255	/* RFC 1035 §3.1, incl. length bytes */
#define DNS_MAX_LABEL		63
#define DNS_MAX_POINTERS	64	/* jumps while reading one name */
#define DNS_NAME_TEXT_MAX	1024	/* 255 wire bytes, each ≤ 4 chars */
#define DNS_MAX_STORED_RRS	256	/* parsed all, keep this many */
#define DNS_MAX_STORED_QUESTIONS 16

enum dns_error {
	DNS_OK = 0,
	DNS_ERR_SHORT_HEADER,
	DNS_ERR_NAME_TRUNCATED,
	DNS_ERR_LABEL_TYPE,		/* 0x40 / 0x80 label types */
	DNS_ERR_NAME_TOO_LONG,
	DNS_ERR_POINTER_NOT_BACKWARD,	/* forward or self pointer: loop */
	DNS_ERR_TOO_MANY_POINTERS,
	DNS_ERR_QUESTION_TRUNCATED,
	DNS_ERR_RR_TRUNCATED,
	DNS_ERR_RDLENGTH,		/* rdata past the end of the message */
	DNS_ERR_RDATA,			/* rdata does not fit its type */
	DNS_ERR_BAD_OPT,
	DNS_ERR_TRAILING_DATA,
	DNS_ERR_TCP_LENGTH,
	DNS_ERR_NOMEM,
	DNS_ERR__COUNT,
};

enum dns_section {
	DNS_SEC_ANSWER,
	DNS_SEC_AUTHORITY,
	DNS_SEC_ADDITIONAL,
};

#define DNS_T_A		1
#define DNS_T_NS	2
#define DNS_T_CNAME	5
#define DNS_T_SOA	6
#define DNS_T_PTR	12
#define DNS_T_MX	15
#define DNS_T_TXT	16
#define DNS_T_AAAA	28
#define DNS_T_SRV	33
#define DNS_T_OPT	41
#define DNS_T_HTTPS	65

struct dns_question {
	const char	*name;
	uint16_t	 type;
	uint16_t	 qclass;
};

struct dns_rr {
	enum dns_section section;
	const char	*name;
	uint16_t	 type;
	uint16_t	 rclass;
	uint32_t	 ttl;
	const uint8_t	*rdata;		/* into the caller's message */
	uint16_t	 rdlength;
	bool		 decoded;	/* false: only rdata/rdlength */
	union {
		uint8_t		 a[4];
		uint8_t		 aaaa[16];
		const char	*target;	/* CNAME, NS, PTR */
		struct {
			uint16_t	 preference;
			const char	*exchange;
		} mx;
		struct {
			uint16_t	 priority, weight, port;
			const char	*target;
		} srv;
		struct {
			const char	*mname, *rname;
			uint32_t	 serial, refresh, retry, expire, minimum;
		} soa;
		struct {
			const char	*text;	/* "a" "b c" (quoted, escaped) */
			size_t		 nstrings;
		} txt;
	} u;
};

/*
 * A parsed message.  Strings live in an arena owned by the struct; rdata
 * points into the message given to dns_parse(), which must outlive it.
 */
struct dns_msg {
	uint16_t	 id;
	uint16_t	 flags;		/* raw header flags */
	bool		 qr, aa, tc, rd, ra, ad, cd;
	uint8_t		 opcode;
	uint16_t	 rcode;		/* with the EDNS extended bits */
	uint16_t	 qdcount, ancount, nscount, arcount;

	struct dns_question *questions;
	size_t		 nquestions;	/* stored (≤ qdcount) */
	struct dns_rr	*rrs;		/* answer, authority, additional */
	size_t		 nrrs;		/* stored */
	bool		 store_truncated;	/* more were parsed than kept */
	bool		 incomplete;	/* TC set and the data stopped early */

	bool		 has_edns;
	uint16_t	 edns_udp_size;
	bool		 edns_do;

	char		*arena;		/* private */
	size_t		 arena_len, arena_cap;
};

/* Zeroes *out first; call dns_msg_free() after any result. */
enum dns_error dns_parse(const uint8_t *msg, size_t len, struct dns_msg *out);
void	 dns_msg_free(struct dns_msg *m);
const char *dns_error_str(enum dns_error err);

/*
 * DNS over TCP: the first complete message in buf.  Returns 1 with
 * msg, msg_len and consumed set, 0 when more bytes are needed, -1 (with *err)
 * when the length prefix is impossible (< 12 bytes).
 */
int	 dns_tcp_frame(const uint8_t *buf, size_t len, const uint8_t **msg,
	    size_t *msg_len, size_t *consumed, enum dns_error *err);

/* Read one name at *pos of msg as presentation text into out (at least
 * DNS_NAME_TEXT_MAX bytes); *pos moves past it.  Exposed for the tests. */
enum dns_error dns_read_name(const uint8_t *msg, size_t len, size_t *pos,
	    char *out);

const char *dns_type_str(uint16_t type);	/* "A", … or NULL */
const char *dns_rcode_str(uint16_t rcode);	/* "NOERROR", … or NULL */
/* rdata as presentation text ("192.0.2.1", "10 mx.example.com", …; raw
 * types as RFC 3597 "\# len hex").  Truncates to outsz; returns out. */
char	*dns_rr_format(const struct dns_rr *rr, char *out, size_t outsz);

#endif
