/* Stub of the Security (SecCode) calls the shim uses (see ../README.md). */
#ifndef LC_STUB_SECURITY_H
#define LC_STUB_SECURITY_H
#include <CoreFoundation/CoreFoundation.h>
typedef struct __SecCode *SecCodeRef;
typedef struct __SecCode const *SecStaticCodeRef;
typedef struct __SecRequirement *SecRequirementRef;
typedef uint32_t SecCSFlags;
enum { kSecCSDefaultFlags = 0, kSecCSSigningInformation = 1u << 1 };
enum { errSecSuccess = 0 };
extern const CFStringRef kSecGuestAttributeAudit;
extern const CFStringRef kSecCodeInfoIdentifier;
extern const CFStringRef kSecCodeInfoTeamIdentifier;
OSStatus	SecCodeCopyGuestWithAttributes(SecCodeRef host,
		    CFDictionaryRef attributes, SecCSFlags flags,
		    SecCodeRef *guest);
OSStatus	SecCodeCheckValidity(SecCodeRef code, SecCSFlags flags,
		    SecRequirementRef requirement);
OSStatus	SecCodeCopySigningInformation(SecStaticCodeRef code,
		    SecCSFlags flags, CFDictionaryRef *information);
OSStatus	SecRequirementCreateWithString(CFStringRef text,
		    SecCSFlags flags, SecRequirementRef *requirement);
#endif
