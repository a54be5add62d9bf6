/*
 * A CA file (a trust bundle) read into memory, for
 * mitm_options.system_ca_buf / extra_ca_buf: proxyd reads its trust files
 * before it enters its sandbox, where it cannot open them.
 */
#ifndef LOCALCAP_PROXYD_CABUNDLE_H
#define LOCALCAP_PROXYD_CABUNDLE_H

#include <stddef.h>

/*
 * malloc'd, NUL-terminated, *len counts the NUL for PEM (as
 * mbedtls_x509_crt_parse wants it) and not for DER.  At most 16 MiB.
 * 0, or -1 with err set.
 */
int	cabundle_read(const char *path, unsigned char **buf, size_t *len,
	    char *err, size_t errlen);

#endif
