/*
 * The flow store's contract between its one writer (proxyd/store.c) and
 * its readers (storeread/, linked by localcapctl and the viewer): where the
 * database lives and which schema version it carries.  This is all the two
 * sides share: the schema itself is defined by proxyd's migrations and
 * documented in docs/flow-store.md; readers query its tables by name.
 */
#ifndef LOCALCAP_STOREREAD_SCHEMA_H
#define LOCALCAP_STOREREAD_SCHEMA_H

/*
 * <state dir>/STORE_DIR_NAME/STORE_DB_NAME.  The store lives in its own
 * directory: the only tree proxyd's sandbox may write (and read), so that
 * the CA key and the certificate `ca install` trusts, beside it, are out of
 * its reach.
 */
#define STORE_DIR_NAME		"store"
#define STORE_DB_NAME		"flows.db"

/* PRAGMA user_version of a store proxyd writes. */
#define STORE_SCHEMA_VERSION	6

/*
 * The oldest version a reader still reads: version 4 only added indexes,
 * so a version-3 file reads the same, only slower on a big store.
 */
#define STORE_READ_MIN_VERSION	3

#endif
