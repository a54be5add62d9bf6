/* Stub of the CoreFoundation the shim uses (see ../README.md). */
#ifndef LC_STUB_COREFOUNDATION_H
#define LC_STUB_COREFOUNDATION_H
#include <stdint.h>
#include <stdbool.h>
typedef const void *CFTypeRef;
typedef const struct __CFString *CFStringRef;
typedef const struct __CFDictionary *CFDictionaryRef;
typedef const struct __CFData *CFDataRef;
typedef signed long CFIndex;
typedef int32_t OSStatus;
typedef unsigned char Boolean;
void	CFRelease(CFTypeRef cf);
CFTypeRef	CFDictionaryGetValue(CFDictionaryRef dict, const void *key);
#endif
