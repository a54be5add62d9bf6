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
typedef unsigned char UInt8;
typedef uint32_t CFStringEncoding;
typedef const struct __CFAllocator *CFAllocatorRef;
typedef struct { CFIndex version; const void *retain, *release, *copyDescription,
    *equal, *hash; } CFDictionaryKeyCallBacks;
typedef struct { CFIndex version; const void *retain, *release, *copyDescription,
    *equal; } CFDictionaryValueCallBacks;
enum { kCFStringEncodingUTF8 = 0x08000100 };
extern const CFDictionaryKeyCallBacks kCFTypeDictionaryKeyCallBacks;
extern const CFDictionaryValueCallBacks kCFTypeDictionaryValueCallBacks;
void	CFRelease(CFTypeRef cf);
CFTypeRef	CFDictionaryGetValue(CFDictionaryRef dict, const void *key);
CFDataRef	CFDataCreate(CFAllocatorRef allocator, const UInt8 *bytes,
		    CFIndex length);
CFDictionaryRef	CFDictionaryCreate(CFAllocatorRef allocator, const void **keys,
		    const void **values, CFIndex numValues,
		    const CFDictionaryKeyCallBacks *keyCallBacks,
		    const CFDictionaryValueCallBacks *valueCallBacks);
CFStringRef	CFStringCreateWithCString(CFAllocatorRef alloc, const char *cStr,
		    CFStringEncoding encoding);
#endif
