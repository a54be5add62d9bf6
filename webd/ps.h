/*
 * The processes tab's data: the running processes as `localcapctl ps
 * --json` lists them, with their flows in the store.
 */
#ifndef LOCALCAP_WEBD_PS_H
#define LOCALCAP_WEBD_PS_H

struct api;

/* Before the sandbox: remember the user names. */
void	ps_init(void);

/* A JSON array (malloc'd), or NULL. */
char	*ps_json_for_api(struct api *);

#endif
