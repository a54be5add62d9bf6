/*
 * Validation and normalisation of names that end up in forged certificates
 * (see certname.h).  Deliberately strict: the SNI must be an A-label host name
 * (RFC 6066 §3 forbids raw UTF-8 and literal addresses, but clients send
 * addresses anyway, so those are recognised and returned as IPs).  Underscore
 * is allowed in labels because real host names carry it (_dmarc, service
 * names behind CDNs) and browsers accept it.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "proxyd/certname.h"

static bool
label_char_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
	    c == '_';
}

/* name is lower-case already; checks LDH labels and the numeric-TLD rule. */
static bool
dns_name_ok(const char *name, size_t len, bool allow_wildcard)
{
	size_t i, start = 0, labels = 0;
	bool all_digits = true;

	if (len == 0 || len > CERTNAME_DNS_MAX)
		return false;
	if (allow_wildcard && len > 2 && name[0] == '*' && name[1] == '.')
		start = i = 2;
	else
		i = 0;
	for (; i <= len; i++) {
		if (i == len || name[i] == '.') {
			size_t l = i - start;

			if (l == 0 || l > CERTNAME_LABEL_MAX)
				return false;
			if (name[start] == '-' || name[i - 1] == '-')
				return false;
			labels++;
			if (i < len)
				all_digits = true;	/* reset: only the last counts */
			start = i + 1;
			continue;
		}
		if (!label_char_ok((unsigned char)name[i]))
			return false;
		if (name[i] < '0' || name[i] > '9')
			all_digits = false;
	}
	/* A wildcard needs at least two labels under it ("*.com" is refused). */
	if (name[0] == '*' && labels < 2)
		return false;
	return !all_digits;
}

enum certname_kind
certname_parse(const char *name, size_t len, bool allow_wildcard, struct certname *out)
{
	char buf[CERTNAME_DNS_MAX + 2];
	unsigned char ip[16];
	size_t i;

	if (name == NULL || len == 0 || len > CERTNAME_DNS_MAX + 1)
		return CERTNAME_INVALID;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		/* Anything outside printable ASCII (NUL, UTF-8 IDN, controls) is
		 * refused before inet_pton or strlen could see it. */
		if (c <= 0x20 || c >= 0x7f)
			return CERTNAME_INVALID;
		buf[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : (char)c;
	}
	buf[len] = '\0';

	if (inet_pton(AF_INET, buf, ip) == 1) {
		if (out != NULL) {
			memset(out, 0, sizeof(*out));
			out->kind = CERTNAME_IPV4;
			memcpy(out->ip, ip, 4);
			out->iplen = 4;
			certname_ip_to_text(ip, 4, out->text, sizeof(out->text));
			out->textlen = strlen(out->text);
		}
		return CERTNAME_IPV4;
	}
	if (inet_pton(AF_INET6, buf, ip) == 1) {
		if (out != NULL) {
			memset(out, 0, sizeof(*out));
			out->kind = CERTNAME_IPV6;
			memcpy(out->ip, ip, 16);
			out->iplen = 16;
			certname_ip_to_text(ip, 16, out->text, sizeof(out->text));
			out->textlen = strlen(out->text);
		}
		return CERTNAME_IPV6;
	}

	/* One trailing dot (the absolute form) means the same host. */
	if (buf[len - 1] == '.')
		buf[--len] = '\0';
	if (!dns_name_ok(buf, len, allow_wildcard))
		return CERTNAME_INVALID;
	if (out != NULL) {
		memset(out, 0, sizeof(*out));
		out->kind = CERTNAME_DNS;
		memcpy(out->text, buf, len + 1);
		out->textlen = len;
	}
	return CERTNAME_DNS;
}

bool
certname_ip_to_text(const unsigned char *ip, size_t iplen, char *buf, size_t bufsize)
{
	int af;

	if (iplen == 4)
		af = AF_INET;
	else if (iplen == 16)
		af = AF_INET6;
	else
		return false;
	return inet_ntop(af, ip, buf, (socklen_t)bufsize) != NULL;
}
