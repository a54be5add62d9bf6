/*
 * storeread: the one reader of proxyd's flow store, linked by localcapctl
 * (flows, show, export, ps) and by the web viewer.
 *
 * The store is written by proxyd (proxyd/store.c), a process that parses
 * network input: its file is opened read-only and defensively (no
 * symlink, SQLITE_DBCONFIG_DEFENSIVE, trusted_schema off, no extensions,
 * our SQL functions usable from our own statements only), and its schema
 * version is checked.  proxyd writes on meanwhile (WAL): nothing here
 * holds a lock for longer than one query.
 *
 * What a person lists is entries: one per HTTP exchange, one per DNS
 * query, and one per flow that has neither (raw TCP/UDP, refused TLS…).
 * An entry's id is "FLOW.SEQ" (or "FLOW" for a flow entry); its place in
 * the order is its key (start time, flow, seq).  Lists are paged by key
 * (keyset pagination: a page never costs more than its own rows, however
 * big the store), newest first or oldest first.  New entries are followed
 * by done_serial: proxyd stamps an increasing serial on each entry when it
 * is complete.
 *
 * Strings in the structs handed to callbacks point into SQLite's row and
 * are valid only during the callback.  Every text field may hold any byte
 * a peer sent: escape it for wherever it goes (utf8.h, or the JSON
 * writers below, which always produce valid JSON).
 *
 * Functions returning int: 0 done, -1 failed (sr_errmsg says why), and
 * where said, 1 for "no such flow/entry".
 */
#ifndef LOCALCAP_STOREREAD_H
#define LOCALCAP_STOREREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "storeread/schema.h"

struct sr_store;

/* --- opening ------------------------------------------------------------------ */

enum sr_open_error {
	SR_OPEN_OK = 0,
	SR_OPEN_EMPTY,		/* no store yet (no file, or never written) */
	SR_OPEN_FAILED,		/* unreadable, not a store, wrong version */
	SR_OPEN_NOT_LIVE,	/* readable, but only while proxyd has it open:
				   its -wal/-shm are gone and this reader may
				   not make them (not the directory's owner) */
};

/*
 * Open <state_dir>/store/flows.db read-only.  NULL on failure, with one
 * line for a person in err (and *why, if not NULL).
 */
struct sr_store	*sr_open(const char *state_dir, char *err, size_t errlen,
		    enum sr_open_error *why);
/* The same for a database file named directly. */
struct sr_store	*sr_open_file(const char *path, char *err, size_t errlen,
		    enum sr_open_error *why);
void		 sr_close(struct sr_store *);	/* NULL is fine */

const char	*sr_path(const struct sr_store *);
int		 sr_schema_version(const struct sr_store *);
/* The last failure's text (the path is not in it). */
const char	*sr_errmsg(const struct sr_store *);

/* --- filters ------------------------------------------------------------------- */

/* What `localcapctl flows` filters on; zero/NULL fields match anything. */
struct sr_filter {
	const char	*host_re;	/* POSIX ERE, case-insensitive, on the host */
	const char	*method;	/* HTTP method, case-insensitive (HTTP only) */
	int		 status;	/* HTTP status (100-999); 0: any */
	const char	*process;	/* process name, exact */
	int64_t		 since_us;	/* entries starting at or after; 0: any */
	const char	*text;		/* substring of url, host or process,
					 * case-insensitive (ASCII) */
	bool		 http_only;	/* HTTP exchanges only (export) */
	bool		 complete_only;	/* entries proxyd has finished (a
					 * done_serial): what --follow lists
					 * before it follows */
};

/* 0, or -1 with a line for a person in err (a bad regex, a bad status). */
int	sr_filter_check(const struct sr_filter *, char *err, size_t errlen);

/* --- entries --------------------------------------------------------------------- */

/* An entry's place in the order: (start_us, flow, seq), seq 0 for a flow. */
struct sr_key {
	int64_t	start_us;
	int64_t	flow;
	int64_t	seq;
};

/*
 * What proxyd knows about a flow (one TCP or UDP connection).  Integers
 * that may be unknown are -1 when they are (NULL in the store).
 */
struct sr_flow {
	int64_t		 id;
	const char	*transport;	/* "tcp", "udp" */
	const char	*src_addr, *dst_addr;
	int		 src_port, dst_port;
	int64_t		 pid, uid, gid;	/* pid 0: no process known */
	const char	*process, *cgroup;
	const char	*exe;		/* the executable's path; NULL unknown
					   (the flow source did not say) */
	int64_t		 start_us, end_us;	/* end_us -1: running */
	int64_t		 connect_us, tls_handshake_us;	/* durations */
	int64_t		 bytes_up, bytes_down;	/* from / to the app */
	int64_t		 packets_up, packets_down;	/* UDP: datagrams */
	int64_t		 retransmits, rtt_us;	/* TCP, from the source */
	const char	*end_reason;	/* NULL: running */
	const char	*error;		/* why it failed, for a person */
	const char	*protocol;	/* NULL: not detected */
	const char	*host;		/* asked of the explicit proxy */
	const char	*tls_version, *tls_cipher;	/* the app's leg */
	int		 tls_resumed;			/* 0/1 */
	const char	*upstream_tls_version, *upstream_tls_cipher;
	int		 upstream_resumed;
	const char	*sni, *alpn, *client_alpn_offer;
	const char	*cert_subject, *cert_issuer, *cert_sha256;
	int		 cert_verified;	/* 1, 0; -1 not checked */
	const char	*passthrough_reason;	/* NULL: decrypted, or not TLS */
	const uint8_t	*first_up, *first_down;	/* first bytes each way */
	size_t		 first_up_len, first_down_len;
	int64_t		 done_serial;	/* -1: not complete yet */
};

/* One line of the list: the entry's own facts and its flow's. */
struct sr_entry {
	struct sr_key	 key;		/* start_us, flow, seq (0: the flow) */
	const char	*kind;		/* "http", "dns", "tcp", "udp" */
	int64_t		 end_us;	/* -1: not ended */
	const char	*proto;		/* http: scheme; dns: "dns"; else the
					 * flow's protocol or transport */
	const char	*method;	/* http: the method; dns: qtype name */
	const char	*host;		/* http: Host; dns: qname; flow: SNI,
					 * else host, else address */
	const char	*path, *url;	/* http */
	const char	*http_version;	/* http: "HTTP/1.1", … */
	int		 status;	/* http: status; -1 none */
	const char	*reason;	/* http: reason phrase */
	const char	*result;	/* status, rcode, end reason, or error */
	const char	*error;		/* the entry's error, else its flow's */
	int64_t		 bytes_up, bytes_down;	/* http: body sizes */
	int64_t		 done_serial;	/* -1: not complete */
	/* http: request sent, response began, ended (-1: not seen) */
	int64_t		 req_end_us, resp_start_us, resp_end_us;
	bool		 req_truncated, resp_truncated;
	const char	*req_headers, *resp_headers;	/* JSON [[n,v],…] */
	const char	*answers;	/* dns: JSON [{name,type,ttl,data},…] */
	struct sr_flow	 flow;
	/* http (HTTP/2): trailers (JSON as headers; NULL none), gRPC's
	 * status (-1 none), message, and messages each way (-1: not gRPC) */
	const char	*req_trailers, *resp_trailers;
	int64_t		 grpc_status;
	const char	*grpc_message;
	int64_t		 grpc_req_messages, grpc_resp_messages;
};

typedef int (*sr_entry_cb)(void *ctx, const struct sr_entry *);

struct sr_page {
	bool		 newest_first;
	size_t		 limit;		/* 0: every entry */
	/* Start after this entry (exclusive), in the page's direction:
	 * newest first, the entries older than it; NULL: from the end. */
	const struct sr_key *cursor;
	/* Hand the page to cb in the other order (`flows --limit N` takes
	 * the newest N and prints them oldest first). */
	bool		 reversed;
};

/*
 * The entries matching f, in pg's order, each handed to cb (a non-zero
 * return stops the list early).  The number listed, or -1.
 */
long	sr_list(struct sr_store *, const struct sr_filter *f,
	    const struct sr_page *pg, sr_entry_cb cb, void *ctx);

/* An id ("12", "12.3") into its flow and seq (0): 0, or -1 if malformed. */
int	sr_parse_id(const char *id, int64_t *flow, int64_t *seq);
/* The key of an entry by id, for a cursor: 0, 1 no such entry, -1. */
int	sr_key_of(struct sr_store *, int64_t flow, int64_t seq,
	    struct sr_key *out);

/*
 * Following: the greatest done_serial now in the store (0 if none), then
 * repeatedly sr_follow(), which lists the entries that completed after
 * *serial, in the order they completed, and moves *serial on.  The number
 * listed, or -1.  (localcapctl polls it every 250 ms.)
 */
int64_t	sr_max_serial(struct sr_store *);
long	sr_follow(struct sr_store *, const struct sr_filter *f,
	    int64_t *serial, sr_entry_cb cb, void *ctx);

/* --- one flow in full ------------------------------------------------------------ */

struct sr_exchange {
	int64_t		 flow, seq;
	const char	*scheme, *method, *target, *url, *host;
	const char	*http_version;
	int		 status;	/* -1: no response */
	const char	*reason;
	const char	*req_headers, *resp_headers;	/* JSON [[n,v],…] */
	int64_t		 req_body_size, resp_body_size;	/* as seen */
	/* The bytes kept (bodies asked for); else NULL, and the _len
	 * fields still say how many bytes are kept. */
	const uint8_t	*req_body, *resp_body;
	size_t		 req_body_len, resp_body_len;
	bool		 req_truncated, resp_truncated;
	int64_t		 req_start_us, req_end_us, resp_start_us, resp_end_us;
	const char	*error;
	int64_t		 done_serial;
	/* HTTP/2: trailers, gRPC (as in struct sr_entry) */
	const char	*req_trailers, *resp_trailers;
	int64_t		 grpc_status;
	const char	*grpc_message;
	int64_t		 grpc_req_messages, grpc_resp_messages;
};

struct sr_dns {
	int64_t		 flow, seq;
	int		 msg_id;
	const char	*qname, *qtype;
	int64_t		 query_us, response_us;	/* -1: no answer */
	const char	*rcode;
	const char	*answers;	/* JSON [{name,type,ttl,data},…] */
	const char	*error;		/* a malformed message */
};

typedef int (*sr_flow_cb)(void *ctx, const struct sr_flow *);
typedef int (*sr_exchange_cb)(void *ctx, const struct sr_exchange *);
typedef int (*sr_dns_cb)(void *ctx, const struct sr_dns *);

/* The flow's facts: 0, 1 no such flow, -1.  (Here and below, a NULL
 * callback just counts.) */
int	sr_flow_get(struct sr_store *, int64_t flow, sr_flow_cb, void *ctx);
/* Its HTTP exchanges (seq 0: all), bodies included if asked: count, -1. */
long	sr_exchanges(struct sr_store *, int64_t flow, int64_t seq,
	    bool bodies, sr_exchange_cb, void *ctx);
/* Its DNS messages (seq 0: all): count, -1. */
long	sr_dns_list(struct sr_store *, int64_t flow, int64_t seq,
	    sr_dns_cb, void *ctx);

/* Each header of a stored header list, decoded (any bytes, NULs too). */
typedef void (*sr_header_cb)(void *ctx, const char *name, size_t name_len,
	    const char *value, size_t value_len);
int	sr_headers_each(struct sr_store *, const char *json, sr_header_cb,
	    void *ctx);
/* Each answer of a stored DNS answer list (ttl -1: none). */
typedef void (*sr_answer_cb)(void *ctx, const char *name, const char *type,
	    int64_t ttl, const char *data);
int	sr_answers_each(struct sr_store *, const char *json, sr_answer_cb,
	    void *ctx);

/* --- JSON and HAR ------------------------------------------------------------------ */

/*
 * One entry as `localcapctl flows --json` prints it (one object, no
 * newline): the same bytes wherever it is written.  Shape in
 * docs/flow-store.md ("JSON").
 */
void	sr_entry_json(struct sr_store *, FILE *, const struct sr_entry *);
/* A flow as a JSON object (inside entries and details). */
void	sr_flow_json(FILE *, const struct sr_flow *);

/*
 * One flow in full as a JSON object: {"flow":{…},"exchanges":[…],
 * "dns":[…]} (seq 0: every exchange and message, else that one; bodies
 * as {"size","kept","truncated","text"|"base64"} when asked).  0, 1 no
 * such flow (or no such exchange), -1; nothing is written unless 0.
 */
int	sr_detail_json(struct sr_store *, FILE *, int64_t flow, int64_t seq,
	    bool bodies);

/*
 * HAR 1.2 of the HTTP exchanges matching f (oldest first; limit > 0: the
 * newest limit of them), as `localcapctl export --har` writes it.  0, -1
 * (out may then hold a partial HAR).
 */
int	sr_export_har(struct sr_store *, const struct sr_filter *f,
	    size_t limit, FILE *out);

/* --- processes -------------------------------------------------------------------------- */

/*
 * Flows in the store of process pid that started at or after since_us (a
 * running process's start: flows of an earlier process with the same pid
 * are not counted).  The count, or -1.
 */
int64_t	sr_count_flows_of(struct sr_store *, int64_t pid, int64_t since_us);

#endif
