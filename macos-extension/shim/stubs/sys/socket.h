/* Darwin's <sys/socket.h> adds SO_NOSIGPIPE (see ../README.md): the
 * system's own header, then that. */
#ifndef LC_STUB_SYS_SOCKET_H
#define LC_STUB_SYS_SOCKET_H
#include_next <sys/socket.h>
#define SO_NOSIGPIPE	0x1022
#endif
