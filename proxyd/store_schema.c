/*
 * The flow store's schema: the steps that build it, each a migration from
 * the version before, and the code that runs the ones a file lacks.  The
 * writer (store.c) calls store_migrate when it opens a file; readers rely on
 * what these steps make (docs/flow-store.md "Schema").
 */
#include <stdio.h>

#include <sqlite3.h>

#include "log.h"
#include "proxyd/store.h"
#include "proxyd/store_int.h"

/*
 * The one-line view of flows and their exchanges; FLOW_HOST is what a flow
 * without exchanges shows as its host.
 */
#define ENTRIES_VIEW(FLOW_HOST)						\
	"CREATE VIEW entries AS"	\
	" SELECT f.id AS flow_id, h.seq AS seq, 'http' AS kind,"	\
	"  h.req_start_us AS start_us, h.resp_end_us AS end_us,"	\
	"  f.pid AS pid, f.process AS process, f.uid AS uid,"	\
	"  h.scheme AS proto, h.method AS method, h.host AS host,"	\
	"  h.target AS path, h.url AS url, h.status AS status,"	\
	"  coalesce(h.error, CAST(h.status AS TEXT)) AS result,"	\
	"  h.req_body_size AS bytes_up, h.resp_body_size AS bytes_down,"	\
	"  f.dst_addr AS dst_addr, f.dst_port AS dst_port,"	\
	"  h.done_serial AS done_serial"	\
	" FROM http_exchanges h JOIN flows f ON f.id = h.flow_id"	\
	" UNION ALL"	\
	" SELECT f.id, d.seq, 'dns', d.query_us,"	\
	"  coalesce(d.response_us, f.end_us), f.pid, f.process, f.uid,"	\
	"  'dns', coalesce(d.qtype_name, 'DNS'), d.qname, NULL, NULL, NULL,"	\
	"  coalesce(d.error, d.rcode_name, 'no answer'), NULL, NULL,"	\
	"  f.dst_addr, f.dst_port, d.done_serial"	\
	" FROM dns d JOIN flows f ON f.id = d.flow_id"	\
	" UNION ALL"	\
	" SELECT f.id, NULL, f.transport, f.start_us, f.end_us, f.pid,"	\
	"  f.process, f.uid, coalesce(f.protocol, f.transport),"	\
	"  upper(f.transport), " FLOW_HOST ", NULL, NULL, NULL,"	\
	"  coalesce(f.end_reason, 'running'), f.bytes_up, f.bytes_down,"	\
	"  f.dst_addr, f.dst_port, f.done_serial"	\
	" FROM flows f WHERE NOT EXISTS"	\
	"  (SELECT 1 FROM http_exchanges h WHERE h.flow_id = f.id)"	\
	"  AND NOT EXISTS (SELECT 1 FROM dns d WHERE d.flow_id = f.id);"

/*
 * The schema is the sequence of these steps: a new database runs them all,
 * an older one the ones it lacks, each in the same transaction as its
 * user_version bump.  Never edit a released step; add one.
 */
static const char *const migrations[STORE_SCHEMA_VERSION] = {
	/* 1: the three tables. */
	"CREATE TABLE flows ("
	"  id INTEGER PRIMARY KEY,"
	"  proxyd_id INTEGER,"		/* proxyd's, per process run */
	"  source_flow_id INTEGER,"
	"  transport TEXT NOT NULL,"	/* tcp, udp */
	"  src_addr TEXT, src_port INTEGER,"
	"  dst_addr TEXT, dst_port INTEGER,"
	"  pid INTEGER, process TEXT, uid INTEGER, gid INTEGER,"
	"  cgroup TEXT, cgroup_id INTEGER,"
	"  start_us INTEGER NOT NULL, end_us INTEGER,"	/* NULL: running */
	"  connect_us INTEGER, tls_handshake_us INTEGER,"
	"  bytes_up INTEGER, bytes_down INTEGER,"	/* from / to the app */
	"  packets_up INTEGER, packets_down INTEGER, dropped INTEGER,"
	"  retransmits INTEGER, rtt_us INTEGER,"
	"  end_reason TEXT, error TEXT,"
	"  protocol TEXT,"
	"  tls_version TEXT, tls_cipher TEXT, tls_resumed INTEGER,"	/* client leg */
	"  upstream_tls_version TEXT, upstream_tls_cipher TEXT,"
	"  upstream_resumed INTEGER,"
	"  sni TEXT, alpn TEXT, client_alpn_offer TEXT,"
	"  server_cert_subject TEXT, server_cert_issuer TEXT,"
	"  server_cert_sha256 TEXT, server_cert_der BLOB,"
	"  server_cert_verified INTEGER,"	/* 1, 0; NULL: not checked */
	"  passthrough_reason TEXT,"
	"  first_up BLOB, first_down BLOB,"
	"  done_serial INTEGER"
	");"
	"CREATE TABLE http_exchanges ("
	"  id INTEGER PRIMARY KEY,"
	"  flow_id INTEGER NOT NULL REFERENCES flows(id) ON DELETE CASCADE,"
	"  seq INTEGER NOT NULL,"
	"  scheme TEXT, method TEXT, target TEXT, url TEXT, host TEXT,"
	"  http_version TEXT, status INTEGER, reason TEXT,"
	"  req_headers TEXT, resp_headers TEXT,"	/* JSON [[name,value],…] */
	"  req_body_size INTEGER, resp_body_size INTEGER,"
	"  req_body BLOB, resp_body BLOB,"
	"  req_body_truncated INTEGER, resp_body_truncated INTEGER,"
	"  req_start_us INTEGER, req_end_us INTEGER,"
	"  resp_start_us INTEGER, resp_end_us INTEGER,"
	"  error TEXT,"
	"  done_serial INTEGER,"
	"  UNIQUE (flow_id, seq)"
	");"
	"CREATE TABLE dns ("
	"  id INTEGER PRIMARY KEY,"
	"  flow_id INTEGER NOT NULL REFERENCES flows(id) ON DELETE CASCADE,"
	"  seq INTEGER NOT NULL,"
	"  msg_id INTEGER, qname TEXT, qtype INTEGER, qtype_name TEXT,"
	"  query_us INTEGER, response_us INTEGER,"
	"  rcode INTEGER, rcode_name TEXT,"	/* NULL: not answered */
	"  answers TEXT,"	/* JSON [{name,type,ttl,data},…] */
	"  error TEXT,"
	"  done_serial INTEGER"
	");",

	/* 2: what the CLI filters and follows on, and the one-line view. */
	"CREATE INDEX flows_start ON flows(start_us);"
	"CREATE INDEX flows_process ON flows(process);"
	"CREATE INDEX flows_done ON flows(done_serial);"
	"CREATE INDEX http_host ON http_exchanges(host);"
	"CREATE INDEX http_status ON http_exchanges(status);"
	"CREATE INDEX http_done ON http_exchanges(done_serial);"
	"CREATE INDEX dns_flow ON dns(flow_id, seq);"
	"CREATE INDEX dns_qname ON dns(qname);"
	"CREATE INDEX dns_done ON dns(done_serial);"
	ENTRIES_VIEW("coalesce(f.sni, f.dst_addr)"),

	/* 3: the host name a source knew for a flow (the explicit proxy's
	 * client asked for it), shown where a flow has no SNI. */
	"ALTER TABLE flows ADD COLUMN host TEXT;"
	"DROP VIEW entries;"
	ENTRIES_VIEW("coalesce(f.sni, f.host, f.dst_addr)"),

	/* 4: what the readers' pages walk (storeread/list.c): each kind of
	 * entry in time order, so that the newest page of a big store
	 * reads only its own rows; a status filter in time order; a
	 * process's flows by pid (ps).  http_status is the new index's
	 * prefix. */
	"CREATE INDEX http_start ON http_exchanges(req_start_us, flow_id, seq);"
	"CREATE INDEX dns_start ON dns(coalesce(query_us, response_us),"
	"  flow_id, seq);"
	"DROP INDEX http_status;"
	"CREATE INDEX http_status_start ON http_exchanges(status, req_start_us,"
	"  flow_id, seq);"
	"CREATE INDEX flows_pid ON flows(pid, start_us);",
	/* 5: HTTP/2 exchanges (http_version "HTTP/2.0") carry trailers and,
	 * for gRPC, the message framing and status (JSON, see
	 * docs/flow-store.md). */
	"ALTER TABLE http_exchanges ADD COLUMN req_trailers TEXT;"
	"ALTER TABLE http_exchanges ADD COLUMN resp_trailers TEXT;"
	"ALTER TABLE http_exchanges ADD COLUMN grpc TEXT;",
	/* 6: the executable's path, where the flow's source knows it (the
	 * macOS extension; NULL from netstackd). */
	"ALTER TABLE flows ADD COLUMN exe TEXT;",
};

/* --- running them ---------------------------------------------------------- */

static int
user_version(sqlite3 *db, int *v)
{
	sqlite3_stmt *q;
	int rc;

	if ((rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q,
	    NULL)) != SQLITE_OK)
		return rc;
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		*v = sqlite3_column_int(q, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(q);
	return rc;
}

/* Bring db from its version up to target, each step in its own transaction. */
int
store_migrate(sqlite3 *db, int target, char *err, size_t errlen)
{
	char sql[64];
	char *msg = NULL;
	int v = 0, rc;

	if ((rc = user_version(db, &v)) != SQLITE_OK) {
		snprintf(err, errlen, "reading the schema version: %s",
		    sqlite3_errmsg(db));
		return -1;
	}
	if (v > STORE_SCHEMA_VERSION) {
		snprintf(err, errlen, "schema version %d is newer than this "
		    "proxyd's (%d); use a newer localcap or move the file away",
		    v, STORE_SCHEMA_VERSION);
		return -1;
	}
	for (; v < target; v++) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
		if ((rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL,
		    &msg)) != SQLITE_OK ||
		    (rc = sqlite3_exec(db, migrations[v], NULL, NULL,
		    &msg)) != SQLITE_OK ||
		    (rc = sqlite3_exec(db, sql, NULL, NULL, &msg)) != SQLITE_OK ||
		    (rc = sqlite3_exec(db, "COMMIT", NULL, NULL, &msg)) !=
		    SQLITE_OK) {
			snprintf(err, errlen, "migrating the schema to version "
			    "%d: %s", v + 1, msg ? msg : sqlite3_errstr(rc));
			sqlite3_free(msg);
			(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
		if (v > 0)
			log_info("flow store: schema migrated to version %d",
			    v + 1);
	}
	return 0;
}
