/*
 * What proxyd's flow store shares between its files: the writer (store.c)
 * and the schema (store_schema.c).  Not for use outside them.
 */
#ifndef LOCALCAP_PROXYD_STORE_INT_H
#define LOCALCAP_PROXYD_STORE_INT_H

#include <stddef.h>

#include <sqlite3.h>

/*
 * Bring db from the schema version it has (PRAGMA user_version) up to
 * target, each step in its own transaction with its version bump.  A file
 * newer than this proxyd is refused.  -1 with err set on failure.
 */
int	store_migrate(sqlite3 *db, int target, char *err, size_t errlen);

#endif
