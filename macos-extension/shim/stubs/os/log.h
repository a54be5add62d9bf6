/* Stub of os_log as the shim uses it (see ../README.md).  The real macros
 * take a format literal with os_log's own specifiers ({public}), which no
 * compiler here checks; the shim formats its own lines with snprintf and
 * logs them with "%{public}s". */
#ifndef LC_STUB_OS_LOG_H
#define LC_STUB_OS_LOG_H
#include <stdint.h>
typedef struct os_log_s *os_log_t;
typedef uint8_t os_log_type_t;
#define OS_LOG_TYPE_DEFAULT	((os_log_type_t)0x00)
#define OS_LOG_TYPE_INFO	((os_log_type_t)0x01)
#define OS_LOG_TYPE_DEBUG	((os_log_type_t)0x02)
#define OS_LOG_TYPE_ERROR	((os_log_type_t)0x10)
#define OS_LOG_TYPE_FAULT	((os_log_type_t)0x11)
os_log_t	os_log_create(const char *subsystem, const char *category);
void		_lc_stub_os_log(os_log_t, os_log_type_t, const char *, ...);
#define os_log_with_type(log, type, fmt, ...) \
	_lc_stub_os_log((log), (type), (fmt), __VA_ARGS__)
#endif
