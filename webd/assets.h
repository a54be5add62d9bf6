/*
 * The viewer's page, script and stylesheet, built into webd from
 * webd/www/ (scripts/embed-assets.sh): served from memory, never read
 * from disk at run time.
 */
#ifndef LOCALCAP_WEBD_ASSETS_H
#define LOCALCAP_WEBD_ASSETS_H

#include <stddef.h>

struct web_asset {
	const char		*path;	/* "/", "/app.js" */
	const char		*type;	/* Content-Type */
	const unsigned char	*data;
	size_t			 len;
};

/* The asset served at path, or NULL. */
const struct web_asset	*web_asset_find(const char *path);

#endif
