/*
 * proxyd's flow store: every flow, HTTP exchange and DNS message proxyd
 * sees, written to SQLite (flows.db in the state dir) for localcapctl's
 * flows / show / export to read.
 *
 * proxyd is the only writer.  Writes are batched in transactions (committed
 * every commit_interval_ms or commit_rows rows, whichever comes first) and
 * the database runs in WAL mode with synchronous=NORMAL, so a commit is a
 * write() into the WAL and never an fsync: the event loop does not wait for
 * the disk per flow.  Readers (localcapctl, read-only) never block the writer.
 *
 * The store is bounded (max_flows, max_bytes; the oldest flows are pruned
 * first, a bounded number per commit) and never fatal: any SQLite error (a
 * full disk, an I/O error) is one log line, the batch is dropped and
 * recording pauses for a while; proxyd goes on relaying.  Every function
 * here is safe to call with a NULL store or a row id of 0 (nothing
 * recorded), so callers need no checks of their own.
 *
 * The schema is versioned with PRAGMA user_version and defined by the
 * sequence of migrations in store.c; see docs/flow-store.md.  Readers
 * (localcapctl, the viewer) go through storeread/ and share only
 * storeread/schema.h with this writer.
 */
#ifndef LOCALCAP_PROXYD_STORE_H
#define LOCALCAP_PROXYD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "proxyd/dns.h"
#include "proxyd/flow.h"
#include "proxyd/http.h"

/* STORE_DIR_NAME, STORE_DB_NAME, STORE_SCHEMA_VERSION: the readers' too. */
#include "storeread/schema.h"

struct store_config {
	uint64_t	max_flows;		/* rows in flows; 0: no limit */
	uint64_t	max_bytes;		/* database pages in use; 0: no limit */
	uint64_t	hard_max_bytes;		/* the file never grows past this
						 * (SQLite max_page_count): a write
						 * beyond it fails like a full disk;
						 * 0: no cap */
	size_t		body_cap;		/* body bytes kept per side */
	size_t		header_cap;		/* bytes of one header value kept */
	unsigned	commit_interval_ms;	/* longest a row waits for a commit */
	unsigned	commit_rows;		/* rows per transaction at most */
	unsigned	retry_after_ms;		/* pause after an error */
	unsigned	prune_batch;		/* flows deleted per commit at most */
};

#define STORE_DEFAULT_MAX_FLOWS		1000000
#define STORE_DEFAULT_MAX_BYTES		(1024ULL * 1024 * 1024)
#define STORE_DEFAULT_BODY_CAP		(1024 * 1024)
#define STORE_DEFAULT_HEADER_CAP	(64 * 1024)

struct store_stats {
	uint64_t	flows;		/* rows inserted */
	uint64_t	exchanges;
	uint64_t	dns;
	uint64_t	commits;
	uint64_t	errors;		/* SQLite errors (each pauses recording) */
	uint64_t	dropped;	/* writes skipped while paused */
	uint64_t	pruned;		/* flows deleted to stay under the limits */
};

/*
 * What the protocol handlers learnt about a flow beyond its flow_record.
 * TLS: tls_* is the client's leg (what the app negotiated with proxyd),
 * upstream_tls_* proxyd's leg to the server; mitm.h's struct mitm_info has
 * each field (see docs/flow-store.md for the mapping).
 */
struct store_flow_facts {
	const char	*protocol;	/* "raw", "tls", "http", "https", "dns", … */
	const char	*tls_version;	/* "TLSv1.3" */
	const char	*tls_cipher;
	bool		 tls_resumed;
	const char	*upstream_tls_version;
	const char	*upstream_tls_cipher;
	bool		 upstream_resumed;
	const char	*sni;
	const char	*alpn;		/* agreed */
	const char	*client_alpn_offer;	/* "h2,http/1.1" */
	const char	*server_cert_subject;
	const char	*server_cert_issuer;
	const uint8_t	*server_cert_sha256;	/* 32 bytes, or NULL */
	const uint8_t	*server_cert_der;	/* or NULL */
	size_t		 server_cert_der_len;
	int		 server_cert_verified;	/* 1 good, -1 bad, 0 not checked */
	const char	*passthrough_reason;	/* NULL: decrypted (or not TLS) */
	const char	*error;		/* detail for a person, e.g. why the
					 * upstream certificate was refused */
	uint64_t	 tls_handshake_us;	/* 0: none */
};

/*
 * What a gRPC exchange's bodies held: the 5-byte message framing of each
 * side, and the status the server gave (trailers, or a trailers-only
 * response).
 */
struct store_grpc {
	int			 status;	/* grpc-status; -1: none */
	const char		*message;	/* grpc-message, or NULL */
	uint64_t		 req_messages;
	uint64_t		 resp_messages;
	const uint32_t		*req_sizes;	/* of the first messages */
	size_t			 n_req_sizes;
	const uint32_t		*resp_sizes;
	size_t			 n_resp_sizes;
	bool			 req_partial;	/* a body ended mid-message */
	bool			 resp_partial;
};

/*
 * One HTTP request and its response, recorded when the exchange ends (or
 * fails).  Strings are NUL-terminated; header values are taken by length
 * and may hold any byte.  Bodies are what the caller kept of each side
 * (de-chunked); *_body_size is the full size seen, so a body longer than
 * what is stored (or than body_cap) is marked truncated.
 */
struct store_http {
	uint32_t		 seq;		/* 1, 2, … in the connection */
	const char		*scheme;	/* "http" or "https" */
	const char		*method;
	const char		*target;	/* as sent: origin or absolute form */
	const char		*host;		/* Host, else SNI, else address */
	int			 version_minor;	/* HTTP/1.x */
	const char		*http_version;	/* NULL: "HTTP/1.<minor>";
						 * "HTTP/2.0" */
	int			 status;	/* 0: no response */
	const char		*reason;
	const struct http_field	*req_fields;
	size_t			 n_req_fields;
	const struct http_field	*resp_fields;
	size_t			 n_resp_fields;
	uint64_t		 req_body_size;
	uint64_t		 resp_body_size;
	const uint8_t		*req_body;
	size_t			 req_body_len;
	const uint8_t		*resp_body;
	size_t			 resp_body_len;
	/* The body was cut short by proxyd's memory budget (membudget.h):
	 * recorded truncated, *_body_truncated = 2. */
	bool			 req_body_budget_cut;
	bool			 resp_body_budget_cut;
	uint64_t		 req_start_us;	/* CLOCK_REALTIME, like flows */
	uint64_t		 req_end_us;
	uint64_t		 resp_start_us;	/* first byte of the status line */
	uint64_t		 resp_end_us;
	const char		*error;		/* NULL when it completed */
	const struct http_field	*req_trailers;
	size_t			 n_req_trailers;
	const struct http_field	*resp_trailers;
	size_t			 n_resp_trailers;
	const struct store_grpc	*grpc;		/* NULL: not gRPC */
};

struct store;

void	store_config_default(struct store_config *);

/*
 * Open (creating it 0600) the database at path and bring its schema up to
 * STORE_SCHEMA_VERSION.  A schema newer than that is refused.  NULL with one
 * line in err on failure.  cfg may be NULL for the defaults.
 */
struct store	*store_open(const char *path, const struct store_config *cfg,
		    char *err, size_t errlen);
/* Commits what is pending and closes.  NULL is fine. */
void		 store_close(struct store *);

/*
 * Commit pending rows after commit_interval_ms from a timer on this loop
 * (without a loop, only commit_rows, store_flush and store_close commit).
 */
void	store_set_loop(struct store *, struct ev_loop *);
/* Commit now (and prune if over a limit).  0, or -1 (logged). */
int	store_flush(struct store *);

/* Insert a flow's row when it starts: its row id, or 0 (not recorded). */
int64_t	store_flow_begin(struct store *, const struct flow_record *);
/*
 * Update it when the flow ends; facts may be NULL.  A TCP record's source
 * figures (has_tcp_stats) go into packets_up/down, retransmits, rtt_us.
 * 0 or -1.
 */
int	store_flow_end(struct store *, int64_t row, const struct flow_record *,
	    const struct store_flow_facts *);
/*
 * The same, but the row is not marked complete (no done_serial) yet: the
 * source's figures are still to come.  store_flow_finish() completes it (a
 * row left so by a previous run is completed at the next open).
 */
int	store_flow_end_held(struct store *, int64_t row,
	    const struct flow_record *, const struct store_flow_facts *);
/*
 * After the row ended: write the source's TCP figures (tcp NULL: none came)
 * and, if complete, mark a held row complete (a row already marked keeps
 * its done_serial).  0 or -1.
 */
int	store_flow_finish(struct store *, int64_t row,
	    const struct flow_tcp_stats *tcp, bool complete);

/* Record an HTTP exchange of the flow: its row id, or 0. */
int64_t	store_http_add(struct store *, int64_t flow_row,
	    const struct store_http *);

/*
 * Record a DNS message of the flow.  A query inserts one row per question;
 * a response fills in the row of the query it answers (same id and name),
 * or gets a row of its own when there was none.  err != DNS_OK records a
 * malformed message (m may then be NULL).  0 or -1.
 */
int	store_dns_add(struct store *, int64_t flow_row, uint64_t time_us,
	    const struct dns_msg *m, enum dns_error err);
/* The same from the bytes of one datagram (parsed here). */
int	store_dns_add_wire(struct store *, int64_t flow_row, uint64_t time_us,
	    const uint8_t *msg, size_t len);

const struct store_stats *store_stats(const struct store *);
/* Body bytes kept per side of an exchange (the configured body_cap). */
size_t	store_body_cap(const struct store *);

/*
 * For tests of the migration path: create a database at an older schema
 * version (1 ≤ version ≤ STORE_SCHEMA_VERSION).  0, or -1 with err.
 */
int	store_create_at_version(const char *path, int version, char *err,
	    size_t errlen);

#endif
