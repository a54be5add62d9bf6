/* Stub of libdispatch as the shim uses it (see ../README.md). */
#ifndef LC_STUB_DISPATCH_H
#define LC_STUB_DISPATCH_H
#include <stdint.h>
typedef struct dispatch_queue_s *dispatch_queue_t;
typedef uint64_t dispatch_time_t;
typedef void (^dispatch_block_t)(void);
#define DISPATCH_TIME_NOW	(0ull)
#define NSEC_PER_SEC		1000000000ull
dispatch_queue_t	dispatch_get_main_queue(void);
dispatch_time_t		dispatch_time(dispatch_time_t when, int64_t delta);
void	dispatch_after(dispatch_time_t when, dispatch_queue_t queue,
	    dispatch_block_t block);
void	dispatch_async(dispatch_queue_t queue, dispatch_block_t block);
__attribute__((noreturn)) void dispatch_main(void);
#endif
