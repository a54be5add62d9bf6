/* Helpers for writing and reading certificate fields (see x509util.h). */
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <psa/crypto.h>

#include "proxyd/x509util.h"

int
x509u_random_serial(unsigned char serial[X509U_SERIAL_MAX], size_t *len)
{
	unsigned char rnd[X509U_SERIAL_MAX];
	size_t skip = 0;

	if (psa_generate_random(rnd, sizeof(rnd)) != PSA_SUCCESS)
		return -1;
	/* DER integers are minimal: no leading zero octets (keep one byte). */
	while (skip < sizeof(rnd) - 1 && rnd[skip] == 0)
		skip++;
	if (skip == sizeof(rnd) - 1 && rnd[skip] == 0)
		rnd[skip] = 1;	/* a zero serial is not allowed (2^-128) */
	*len = sizeof(rnd) - skip;
	memcpy(serial, rnd + skip, *len);
	return 0;
}

void
x509u_format_time(time_t t, char out[16])
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(out, 16, "%Y%m%d%H%M%S", &tm) != 14)
		strcpy(out, "19700101000000");	/* unreachable for sane t */
}

int64_t
x509u_time_to_epoch(const mbedtls_x509_time *t)
{
	/* Days from civil date (proleptic Gregorian), no timezone involved. */
	int64_t y = t->year, m = t->mon, d = t->day, era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (era * 146097 + doe - 719468) * 86400 + t->hour * 3600 +
	    t->min * 60 + t->sec;
}
