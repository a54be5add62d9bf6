/* The embedded static files (see assets.h). */
#include "webd/assets.h"

#include <string.h>

#include "webd_assets.inc"

const struct web_asset *
web_asset_find(const char *path)
{
	size_t i;

	for (i = 0; i < sizeof(assets) / sizeof(assets[0]); i++)
		if (strcmp(assets[i].path, path) == 0)
			return &assets[i];
	return NULL;
}
