/*
 * UTF-8 validation and JSON strings, shared by everything that prints or
 * stores bytes that came off the network (the flow store, localcapctl).
 */
#ifndef LOCALCAP_UTF8_H
#define LOCALCAP_UTF8_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Length (1-4) of the well-formed UTF-8 sequence at s[0..n), or 0 if there
 * is none: no overlong forms, no surrogates, nothing above U+10FFFF.
 */
size_t	utf8_seq(const uint8_t *s, size_t n);

/*
 * Write data[0..n) as a JSON string: valid UTF-8 kept, quotes, backslashes
 * and control characters escaped, any other byte as \u00XX.  Always valid
 * JSON, whatever the bytes.
 */
void	json_str_n(FILE *out, const void *data, size_t n);

#endif
