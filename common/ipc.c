/*
 * Framing, handshake, fd passing and back-pressure for every localcap
 * channel.  See ipc.h for the wire format and the rules; this file is the one
 * place that reads and writes it.
 *
 * Call chain, input:  peer_read_cb -> peer_parse -> peer_handle_frame
 *                       -> (handshake) | cb->on_message
 * Call chain, output: ipc_send -> queue_frame -> peer_flush (-> peer_write_cb)
 *
 * A peer is freed only from peer_finish(), and never while a user callback
 * for it is running (in_callback): ipc_close() from inside a callback marks
 * it closed and the outermost frame finishes it.
 */
#include "ipc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "msg.h"
#include "ipc_sys.h"

#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#define IPC_INBUF_MIN		(64u << 10)
#define IPC_READS_PER_EVENT	16	/* fairness between peers */

struct outmsg {
	struct outmsg	*next;
	size_t		 len;		/* header + payload */
	size_t		 off;		/* bytes already written */
	int		 fds[IPC_MAX_FDS];	/* our duplicates, until sent */
	uint8_t		 nfds;
	uint8_t		 fds_sent;	/* they went with the first byte */
	uint8_t		 data[];
};

enum peer_state {
	PEER_HANDSHAKE,		/* nothing but Hello / HelloReply / Error */
	PEER_READY,
	PEER_CLOSED,		/* waiting for the callback stack to unwind */
};

struct ipc_peer {
	struct ev_loop		*loop;
	int			 fd;
	ev_io			 rio;
	ev_io			 wio;
	struct ipc_peer_config	 cfg;
	struct ipc_cred		 cred;
	enum peer_state		 state;
	int			 connecting;	/* we sent Hello */
	Lc__Role		 peer_role;
	char			 peer_version[32];
	char			 close_reason[160];
	int			 in_callback;	/* depth of user callbacks */
	int			 read_paused;
	int			 drain_wanted;	/* an ipc_send saw EAGAIN */
	struct ipc_connector	*conn;		/* owner, if any */

	/* Input: in[in_off, in_len) holds unparsed bytes; in_cap is the size. */
	uint8_t			*in;
	size_t			 in_off;
	size_t			 in_len;
	size_t			 in_cap;
	/* fds received, in arrival order, not yet claimed by a frame. */
	int			 pending_fds[IPC_MAX_PENDING_FDS];
	size_t			 npending;

	/* Output queue; oq_bytes counts unwritten bytes. */
	struct outmsg		*oq_head;
	struct outmsg		**oq_tail;
	size_t			 oq_bytes;
};

struct ipc_listener {
	struct ev_loop		*loop;
	int			 fd;
	ev_io			 io;
	ev_timer		 resume;	/* after EMFILE */
	char			*path;
	struct ipc_peer_config	 cfg;
	ipc_authorize_fn	 authorize;
	ipc_accept_fn		 on_accept;
};

struct ipc_connector {
	struct ev_loop		*loop;
	char			*path;
	struct ipc_peer_config	 cfg;
	ev_timer		 retry;
	struct ipc_peer		*peer;		/* connected or handshaking */
	int			 ready;
	double			 backoff;
	int			 failing;	/* failure already logged */
};

static void	peer_read_cb(struct ev_loop *, ev_io *, int);
static void	peer_write_cb(struct ev_loop *, ev_io *, int);
static void	peer_finish(struct ipc_peer *);
static void	peer_close_warn(struct ipc_peer *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	connector_lost(struct ipc_connector *, int was_ready,
		    const char *reason);
static void	connector_ready(struct ipc_connector *);

const char *
ipc_type_name(Lc__MsgType type)
{
	const struct msg_spec *spec = msg_lookup((unsigned)type);

	return spec ? spec->name : "unknown";
}

static const char *
role_name(Lc__Role role)
{
	switch (role) {
	case LC__ROLE__ROLE_CTL:		return "localcapctl";
	case LC__ROLE__ROLE_REDIRECTORD:	return "redirectord";
	case LC__ROLE__ROLE_NETSTACKD:		return "netstackd";
	case LC__ROLE__ROLE_PROXYD:		return "proxyd";
	default:				return "unknown role";
	}
}

static int
set_nonblock_cloexec(int fd)
{
	int fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) == -1)
		return -1;
	return 0;
}

static void
close_fds(int *fds, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
}

/* --- peers ----------------------------------------------------------------- */

static int	queue_frame(struct ipc_peer *, Lc__MsgType, const ProtobufCMessage *,
		    const int *, size_t, int force);
static int	peer_flush(struct ipc_peer *);

int
ipc_cred_in_group(const struct ipc_cred *cred, gid_t gid)
{
	int i;

	if (cred->gid == gid)
		return 1;
	for (i = 0; i < cred->ngroups; i++)
		if (cred->groups[i] == gid)
			return 1;
	return 0;
}

struct ipc_peer *
ipc_peer_new(struct ev_loop *loop, int fd, int connecting,
    const struct ipc_peer_config *cfg)
{
	struct ipc_peer *p;

	if ((p = calloc(1, sizeof(*p))) == NULL) {
		close(fd);
		return NULL;
	}
	p->loop = loop;
	p->fd = fd;
	p->cfg = *cfg;
	if (p->cfg.outq_limit == 0)
		p->cfg.outq_limit = IPC_DEFAULT_OUTQ_LIMIT;
	if (p->cfg.name == NULL)
		p->cfg.name = "peer";
	p->connecting = connecting;
	p->oq_tail = &p->oq_head;
	p->state = PEER_HANDSHAKE;
	p->cred.pid = -1;
	p->cred.uid = (uid_t)-1;
	p->cred.gid = (gid_t)-1;
	/* pid, uid, gid and supplementary groups (ipc_sys.h; -1: unknown) */
	p->cred.ngroups = -1;
	(void)ipc_sys_peer_cred(fd, &p->cred);
	if (set_nonblock_cloexec(fd) == -1) {
		close(fd);
		free(p);
		return NULL;
	}
	ev_io_init(&p->rio, peer_read_cb, fd, EV_READ);
	ev_io_init(&p->wio, peer_write_cb, fd, EV_WRITE);
	ev_io_start(loop, &p->rio);

	if (connecting) {
		Lc__Hello hello;

		lc__hello__init(&hello);
		hello.protocol_version = LC__PROTOCOL__PROTOCOL_VERSION;
		hello.role = cfg->self_role;
		hello.software_version = (char *)(uintptr_t)LOCALCAP_VERSION;
		if (queue_frame(p, LC__MSG_TYPE__MSG_HELLO, &hello.base, NULL, 0, 1) == -1 ||
		    peer_flush(p) == -1)
			/* Reported by the write watcher on the next turn. */
			ev_io_start(loop, &p->wio);
	}
	return p;
}

void *
ipc_user(const struct ipc_peer *p)
{
	return p->cfg.user;
}

void
ipc_set_user(struct ipc_peer *p, void *user)
{
	p->cfg.user = user;
}

const struct ipc_cred *
ipc_cred(const struct ipc_peer *p)
{
	return &p->cred;
}

Lc__Role
ipc_peer_role(const struct ipc_peer *p)
{
	return p->peer_role;
}

const char *
ipc_peer_version(const struct ipc_peer *p)
{
	return p->peer_version;
}

size_t
ipc_outq_bytes(const struct ipc_peer *p)
{
	return p->oq_bytes;
}

int
ipc_peer_fd(const struct ipc_peer *p)
{
	return p->fd;
}

int
ipc_is_ready(const struct ipc_peer *p)
{
	return p->state == PEER_READY;
}

void
ipc_pause_read(struct ipc_peer *p)
{
	p->read_paused = 1;
	ev_io_stop(p->loop, &p->rio);
}

void
ipc_resume_read(struct ipc_peer *p)
{
	if (p->state == PEER_CLOSED)
		return;
	p->read_paused = 0;
	ev_io_start(p->loop, &p->rio);
	if (p->in_len > p->in_off)
		ev_feed_event(p->loop, &p->rio, EV_READ);
}

static void
peer_vclose(struct ipc_peer *p, int warn, const char *fmt, va_list ap)
{
	if (p->state == PEER_CLOSED)
		return;
	vsnprintf(p->close_reason, sizeof(p->close_reason), fmt, ap);
	if (warn)
		log_warnx("%s: closing %s (pid %d, uid %d): %s", p->cfg.name,
		    p->peer_role ? role_name(p->peer_role) : "peer",
		    (int)p->cred.pid, (int)p->cred.uid, p->close_reason);
	else
		log_debug("%s: closing %s (pid %d): %s", p->cfg.name,
		    p->peer_role ? role_name(p->peer_role) : "peer",
		    (int)p->cred.pid, p->close_reason);
	p->state = PEER_CLOSED;
	ev_io_stop(p->loop, &p->rio);
	ev_io_stop(p->loop, &p->wio);
	if (p->in_callback == 0)
		peer_finish(p);
}

static void
peer_close_warn(struct ipc_peer *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	peer_vclose(p, 1, fmt, ap);
	va_end(ap);
}

static void
peer_close_quiet(struct ipc_peer *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void
peer_close_quiet(struct ipc_peer *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	peer_vclose(p, 0, fmt, ap);
	va_end(ap);
}

void
ipc_close(struct ipc_peer *p, const char *reason)
{
	peer_close_quiet(p, "%s", reason);
}

static void
peer_finish(struct ipc_peer *p)
{
	struct ipc_connector *conn = p->conn;
	int was_ready = p->peer_role != LC__ROLE__ROLE_UNSPECIFIED;
	struct outmsg *m, *next;

	p->in_callback++;	/* nothing may free p under us */
	if (p->cfg.cb && p->cfg.cb->on_close)
		p->cfg.cb->on_close(p, p->close_reason);
	if (conn)
		connector_lost(conn, was_ready, p->close_reason);

	close(p->fd);
	for (m = p->oq_head; m; m = next) {
		next = m->next;
		if (!m->fds_sent)
			close_fds(m->fds, m->nfds);
		free(m);
	}
	close_fds(p->pending_fds, p->npending);
	free(p->cred.groups);
	free(p->in);
	free(p);
}

/* --- output ---------------------------------------------------------------- */

static int
queue_frame(struct ipc_peer *p, Lc__MsgType type, const ProtobufCMessage *msg,
    const int *fds, size_t nfds, int force)
{
	const struct msg_spec *spec = msg_lookup((unsigned)type);
	struct outmsg *m;
	size_t plen, i;

	if (spec == NULL || !(spec->channels & p->cfg.channel) ||
	    !msg_role_may_send(spec, p->cfg.self_role) ||
	    (p->peer_role != LC__ROLE__ROLE_UNSPECIFIED &&
	    !msg_may_travel(spec, p->cfg.self_role, p->peer_role)) ||
	    nfds != spec->nfds || msg->descriptor != spec->desc) {
		errno = EINVAL;
		return -1;
	}
	plen = protobuf_c_message_get_packed_size(msg);
	if (plen > spec->max_len) {
		errno = EMSGSIZE;
		return -1;
	}
	if (!force && p->oq_bytes + IPC_HDR_LEN + plen > p->cfg.outq_limit) {
		p->drain_wanted = 1;
		errno = EAGAIN;
		return -1;
	}
	if ((m = malloc(sizeof(*m) + IPC_HDR_LEN + plen)) == NULL)
		return -1;
	m->next = NULL;
	m->len = IPC_HDR_LEN + plen;
	m->off = 0;
	m->nfds = (uint8_t)nfds;
	m->fds_sent = 0;
	for (i = 0; i < nfds; i++) {
		if ((m->fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0)) == -1) {
			int saved = errno;

			close_fds(m->fds, i);
			free(m);
			errno = saved;
			return -1;
		}
	}
	m->data[0] = (uint8_t)(plen >> 24);
	m->data[1] = (uint8_t)(plen >> 16);
	m->data[2] = (uint8_t)(plen >> 8);
	m->data[3] = (uint8_t)plen;
	m->data[4] = (uint8_t)((unsigned)type >> 8);
	m->data[5] = (uint8_t)type;
	m->data[6] = (uint8_t)nfds;
	m->data[7] = 0;
	protobuf_c_message_pack(msg, m->data + IPC_HDR_LEN);

	*p->oq_tail = m;
	p->oq_tail = &m->next;
	p->oq_bytes += m->len;
	return 0;
}

/*
 * Write what the socket takes.  0: all written or EAGAIN (write watcher
 * armed as needed); -1: the socket failed (errno), nothing closed here.
 */
static int
peer_flush(struct ipc_peer *p)
{
	struct outmsg *m;

	while ((m = p->oq_head) != NULL) {
		union {
			struct cmsghdr	hdr;
			char		buf[CMSG_SPACE(sizeof(int) * IPC_MAX_FDS)];
		} cmsg;
		struct iovec iov = { m->data + m->off, m->len - m->off };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		if (m->nfds && !m->fds_sent) {
			struct cmsghdr *c;

			memset(&cmsg, 0, sizeof(cmsg));
			mh.msg_control = cmsg.buf;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * m->nfds);
			c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * m->nfds);
			memcpy(CMSG_DATA(c), m->fds, sizeof(int) * m->nfds);
		}
		n = sendmsg(p->fd, &mh, IPC_SEND_FLAGS);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				ev_io_start(p->loop, &p->wio);
				return 0;
			}
			return -1;
		}
		if (m->nfds && !m->fds_sent) {
			/* The kernel holds its own references now. */
			close_fds(m->fds, m->nfds);
			m->fds_sent = 1;
		}
		m->off += (size_t)n;
		p->oq_bytes -= (size_t)n;
		if (m->off == m->len) {
			p->oq_head = m->next;
			if (p->oq_head == NULL)
				p->oq_tail = &p->oq_head;
			free(m);
		}
	}
	ev_io_stop(p->loop, &p->wio);
	if (p->drain_wanted && p->oq_bytes <= p->cfg.outq_limit / 2)
		/* Tell the producer from the loop, never from inside ipc_send. */
		ev_feed_event(p->loop, &p->wio, EV_CUSTOM);
	return 0;
}

static void
peer_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ipc_peer *p = container_of(w, struct ipc_peer, wio);

	(void)loop;
	if (p->state == PEER_CLOSED)
		return;
	if (revents & EV_WRITE) {
		if (peer_flush(p) == -1) {
			if (errno == EPIPE || errno == ECONNRESET)
				peer_close_quiet(p, "peer went away");
			else
				peer_close_warn(p, "write: %s", strerror(errno));
			return;
		}
	}
	if (p->drain_wanted && p->oq_bytes <= p->cfg.outq_limit / 2) {
		p->drain_wanted = 0;
		if (p->cfg.cb && p->cfg.cb->on_drain) {
			p->in_callback++;
			p->cfg.cb->on_drain(p);
			p->in_callback--;
			if (p->state == PEER_CLOSED)
				peer_finish(p);
		}
	}
}

int
ipc_send(struct ipc_peer *p, Lc__MsgType type, const ProtobufCMessage *msg,
    const int *fds, size_t nfds)
{
	if (p->state != PEER_READY) {
		errno = ENOTCONN;
		return -1;
	}
	if (queue_frame(p, type, msg, fds, nfds, 0) == -1)
		return -1;
	/* While the write watcher is armed the socket is full: just queue. */
	if (!ev_is_active(&p->wio) && peer_flush(p) == -1)
		/* The write watcher will see the error and close the peer. */
		ev_io_start(p->loop, &p->wio);
	return 0;
}

void
ipc_refuse(struct ipc_peer *p, Lc__ErrorCode code, const char *fmt, ...)
{
	Lc__Error err;
	char text[160];
	va_list ap;

	if (p->state == PEER_CLOSED)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	lc__error__init(&err);
	err.code = code;
	err.message = text;
	/* Best effort: the Error is small, the socket almost always takes it. */
	if (queue_frame(p, LC__MSG_TYPE__MSG_ERROR, &err.base, NULL, 0, 1) == 0)
		(void)peer_flush(p);
	peer_close_warn(p, "refused: %s", text);
}

/* --- input ----------------------------------------------------------------- */

static int
handle_handshake(struct ipc_peer *p, Lc__MsgType type, const ProtobufCMessage *msg)
{
	if (!p->connecting) {
		const Lc__Hello *hello = (const Lc__Hello *)(const void *)msg;
		Lc__HelloReply reply;

		if (type != LC__MSG_TYPE__MSG_HELLO) {
			peer_close_warn(p, "expected Hello, got %s", ipc_type_name(type));
			return -1;
		}
		if (hello->protocol_version != LC__PROTOCOL__PROTOCOL_VERSION) {
			ipc_refuse(p, LC__ERROR_CODE__ERR_VERSION_MISMATCH,
			    "peer speaks localcap protocol version %u, this side "
			    "speaks %u: run the same localcap version everywhere",
			    hello->protocol_version, LC__PROTOCOL__PROTOCOL_VERSION);
			return -1;
		}
		if (hello->role <= 0 || hello->role >= 32 ||
		    !(p->cfg.accept_roles & (1u << hello->role))) {
			ipc_refuse(p, LC__ERROR_CODE__ERR_ROLE_REFUSED,
			    "%s does not serve %s", p->cfg.name,
			    role_name(hello->role));
			return -1;
		}
		p->peer_role = hello->role;
		snprintf(p->peer_version, sizeof(p->peer_version), "%s",
		    hello->software_version ? hello->software_version : "");
		lc__hello_reply__init(&reply);
		reply.protocol_version = LC__PROTOCOL__PROTOCOL_VERSION;
		reply.role = p->cfg.self_role;
		reply.software_version = (char *)(uintptr_t)LOCALCAP_VERSION;
		if (queue_frame(p, LC__MSG_TYPE__MSG_HELLO_REPLY, &reply.base,
		    NULL, 0, 1) == -1 || peer_flush(p) == -1) {
			peer_close_warn(p, "sending HelloReply: %s", strerror(errno));
			return -1;
		}
	} else {
		const Lc__HelloReply *reply = (const Lc__HelloReply *)(const void *)msg;

		if (type == LC__MSG_TYPE__MSG_ERROR) {
			const Lc__Error *err = (const Lc__Error *)(const void *)msg;

			peer_close_warn(p, "refused by peer: %s",
			    err->message ? err->message : "(no reason)");
			return -1;
		}
		if (type != LC__MSG_TYPE__MSG_HELLO_REPLY) {
			peer_close_warn(p, "expected HelloReply, got %s",
			    ipc_type_name(type));
			return -1;
		}
		if (reply->protocol_version != LC__PROTOCOL__PROTOCOL_VERSION) {
			peer_close_warn(p, "peer speaks localcap protocol version "
			    "%u, this side speaks %u", reply->protocol_version,
			    LC__PROTOCOL__PROTOCOL_VERSION);
			return -1;
		}
		if (reply->role <= 0 || reply->role >= 32 ||
		    !(p->cfg.accept_roles & (1u << reply->role))) {
			peer_close_warn(p, "expected another daemon at %s, found %s",
			    p->cfg.name, role_name(reply->role));
			return -1;
		}
		p->peer_role = reply->role;
		snprintf(p->peer_version, sizeof(p->peer_version), "%s",
		    reply->software_version ? reply->software_version : "");
	}
	p->state = PEER_READY;
	if (p->conn)
		connector_ready(p->conn);
	/* The caller holds in_callback: p outlives this call. */
	if (p->cfg.cb && p->cfg.cb->on_ready)
		p->cfg.cb->on_ready(p);
	return 0;
}

/* One complete frame at hdr.  Returns -1 when the peer is closed (maybe freed). */
static int
peer_handle_frame(struct ipc_peer *p, const struct msg_spec *spec,
    const uint8_t *payload, size_t len)
{
	ProtobufCMessage *msg;
	const char *why;
	int fds[IPC_MAX_FDS];
	size_t nfds = spec->nfds;

	if (p->npending < nfds) {
		peer_close_warn(p, "%s claims %zu fd(s) that did not arrive",
		    spec->name, nfds);
		return -1;
	}
	memcpy(fds, p->pending_fds, nfds * sizeof(int));
	p->npending -= nfds;
	memmove(p->pending_fds, p->pending_fds + nfds, p->npending * sizeof(int));

	msg = protobuf_c_message_unpack(spec->desc, NULL, len, payload);
	if (msg == NULL) {
		close_fds(fds, nfds);
		peer_close_warn(p, "undecodable %s (%zu bytes)", spec->name, len);
		return -1;
	}
	if (spec->validate != NULL && (why = spec->validate(msg)) != NULL) {
		protobuf_c_message_free_unpacked(msg, NULL);
		close_fds(fds, nfds);
		peer_close_warn(p, "refused %s: %s", spec->name, why);
		return -1;
	}
	log_trace("%s: received %s (%zu bytes, %zu fds)", p->cfg.name,
	    spec->name, len, nfds);

	/* Hold p: whatever happens below, it is freed only after msg. */
	p->in_callback++;
	if (p->state == PEER_HANDSHAKE)
		(void)handle_handshake(p, spec->type, msg);
	else if (spec->type == LC__MSG_TYPE__MSG_HELLO ||
	    spec->type == LC__MSG_TYPE__MSG_HELLO_REPLY)
		peer_close_warn(p, "unexpected %s after the handshake", spec->name);
	else if (p->cfg.cb && p->cfg.cb->on_message)
		p->cfg.cb->on_message(p, spec->type, msg, fds, nfds);
	p->in_callback--;
	protobuf_c_message_free_unpacked(msg, NULL);
	close_fds(fds, nfds);
	if (p->state == PEER_CLOSED) {
		if (p->in_callback == 0)
			peer_finish(p);
		return -1;
	}
	return 0;
}

/* Parse every complete frame in the input buffer.  -1: peer closed. */
static int
peer_parse(struct ipc_peer *p)
{
	while (p->in_len - p->in_off >= IPC_HDR_LEN) {
		const uint8_t *h = p->in + p->in_off;
		uint32_t plen = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 |
		    (uint32_t)h[2] << 8 | h[3];
		unsigned type = (unsigned)h[4] << 8 | h[5];
		const struct msg_spec *spec;

		/* Judge the header before waiting for the payload. */
		if (plen > IPC_MAX_PAYLOAD) {
			peer_close_warn(p, "frame of %u bytes exceeds the %u-byte limit",
			    plen, IPC_MAX_PAYLOAD);
			return -1;
		}
		if (h[7] != 0) {
			peer_close_warn(p, "reserved header byte is %u, not 0", h[7]);
			return -1;
		}
		if ((spec = msg_lookup(type)) == NULL) {
			peer_close_warn(p, "unknown message type %u", type);
			return -1;
		}
		if (!(spec->channels & p->cfg.channel)) {
			peer_close_warn(p, "%s is not permitted on %s", spec->name,
			    p->cfg.name);
			return -1;
		}
		if (plen > spec->max_len) {
			peer_close_warn(p, "%s of %u bytes exceeds its %u-byte limit",
			    spec->name, plen, spec->max_len);
			return -1;
		}
		/* Before the handshake only Hello/HelloReply/Error get through. */
		if (p->state != PEER_HANDSHAKE &&
		    !msg_may_travel(spec, p->peer_role, p->cfg.self_role)) {
			peer_close_warn(p, "%s may not come from %s", spec->name,
			    role_name(p->peer_role));
			return -1;
		}
		if (h[6] != spec->nfds) {
			peer_close_warn(p, "%s with %u fd(s); it carries %u",
			    spec->name, h[6], spec->nfds);
			return -1;
		}
		if (p->in_len - p->in_off < IPC_HDR_LEN + (size_t)plen) {
			/* Make room for the whole frame, then wait for it. */
			size_t need = IPC_HDR_LEN + (size_t)plen;

			if (p->in_off > 0) {
				memmove(p->in, p->in + p->in_off, p->in_len - p->in_off);
				p->in_len -= p->in_off;
				p->in_off = 0;
			}
			if (need > p->in_cap) {
				uint8_t *grown = realloc(p->in, need);

				if (grown == NULL) {
					peer_close_warn(p, "out of memory for a %zu-byte frame",
					    need);
					return -1;
				}
				p->in = grown;
				p->in_cap = need;
			}
			return 0;
		}
		p->in_off += IPC_HDR_LEN + plen;
		if (peer_handle_frame(p, spec, h + IPC_HDR_LEN, plen) == -1)
			return -1;
		if (p->read_paused)
			return 0;
	}
	if (p->in_off == p->in_len && p->npending > 0) {
		/* fds travel with their frame's first byte: these have none. */
		peer_close_warn(p, "%zu fd(s) arrived that no frame claims",
		    p->npending);
		return -1;
	}
	if (p->in_off == p->in_len) {
		p->in_off = p->in_len = 0;
		if (p->in_cap > IPC_INBUF_MIN) {
			/* Give back what one large frame needed. */
			free(p->in);
			p->in = NULL;
			p->in_cap = 0;
		}
	} else if (p->in_off > 0) {
		/* Less than a header is left: keep it at the front. */
		memmove(p->in, p->in + p->in_off, p->in_len - p->in_off);
		p->in_len -= p->in_off;
		p->in_off = 0;
	}
	return 0;
}

/* Take the fds out of a control message; -1 if they do not fit. */
static int
take_fds(struct ipc_peer *p, struct msghdr *mh)
{
	struct cmsghdr *c;
	int overflow = 0;

	for (c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t n, i;
		int fd;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++) {
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			ipc_sys_received_fd(fd);
			if (p->npending < IPC_MAX_PENDING_FDS)
				p->pending_fds[p->npending++] = fd;
			else {
				close(fd);
				overflow = 1;
			}
		}
	}
	return overflow ? -1 : 0;
}

static void
peer_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ipc_peer *p = container_of(w, struct ipc_peer, rio);
	int round;

	(void)loop;
	(void)revents;
	/* Frames left over from a pause come first. */
	if (p->in_len > p->in_off && peer_parse(p) == -1)
		return;
	for (round = 0; round < IPC_READS_PER_EVENT && !p->read_paused; round++) {
		union {
			struct cmsghdr	hdr;
			char		buf[CMSG_SPACE(sizeof(int) * IPC_MAX_FDS)];
		} cmsg;
		struct iovec iov;
		struct msghdr mh;
		ssize_t n;

		if (p->in == NULL) {
			if ((p->in = malloc(IPC_INBUF_MIN)) == NULL) {
				peer_close_warn(p, "out of memory");
				return;
			}
			p->in_cap = IPC_INBUF_MIN;
		}
		if (p->in_len == p->in_cap) {
			/* peer_parse guarantees room for a partial frame. */
			peer_close_warn(p, "input buffer full");
			return;
		}
		iov.iov_base = p->in + p->in_len;
		iov.iov_len = p->in_cap - p->in_len;
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cmsg.buf;
		mh.msg_controllen = sizeof(cmsg.buf);
		n = recvmsg(p->fd, &mh, IPC_RECV_FLAGS);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == ECONNRESET)
				peer_close_quiet(p, "connection reset by peer");
			else
				peer_close_warn(p, "read: %s", strerror(errno));
			return;
		}
		if (take_fds(p, &mh) == -1 || (mh.msg_flags & MSG_CTRUNC)) {
			peer_close_warn(p, "peer sent more fds than frames claim");
			return;
		}
		if (n == 0) {
			if (p->in_len > p->in_off)
				peer_close_warn(p, "peer closed in the middle of a "
				    "frame (%zu bytes pending)", p->in_len - p->in_off);
			else if (p->state == PEER_HANDSHAKE)
				peer_close_warn(p, "peer closed during the handshake");
			else
				peer_close_quiet(p, "peer closed the connection");
			return;
		}
		p->in_len += (size_t)n;
		if (peer_parse(p) == -1)
			return;
	}
}

/* --- listener -------------------------------------------------------------- */

static void listener_accept_cb(struct ev_loop *, ev_io *, int);

static void
listener_resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ipc_listener *l = container_of(w, struct ipc_listener, resume);

	(void)revents;
	ev_io_start(loop, &l->io);
}

static void
listener_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ipc_listener *l = container_of(w, struct ipc_listener, io);

	(void)revents;
	for (;;) {
		struct ipc_peer *p;
		int fd = ipc_sys_accept(l->fd);

		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* EMFILE and friends: back off instead of spinning. */
			log_warn("%s: accept", l->cfg.name);
			ev_io_stop(loop, &l->io);
			ev_timer_set(&l->resume, 0.1, 0.);
			ev_timer_start(loop, &l->resume);
			return;
		}
		if ((p = ipc_peer_new(loop, fd, 0, &l->cfg)) == NULL) {
			log_warnx("%s: out of memory for a new peer", l->cfg.name);
			continue;
		}
		if (l->authorize && !l->authorize(&p->cred, l->cfg.user)) {
			ipc_refuse(p, LC__ERROR_CODE__ERR_PERMISSION_DENIED,
			    "uid %d may not use %s", (int)p->cred.uid, l->cfg.name);
			continue;
		}
		log_debug("%s: connection from pid %d uid %d", l->cfg.name,
		    (int)p->cred.pid, (int)p->cred.uid);
		if (l->on_accept)
			l->on_accept(l, p);
	}
}

int
ipc_connect_path(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = ipc_sys_socket(0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

struct ipc_listener *
ipc_listen(struct ev_loop *loop, const char *path, mode_t mode,
    const struct ipc_peer_config *cfg, ipc_authorize_fn authorize,
    ipc_accept_fn on_accept)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct ipc_listener *l;
	struct stat st;
	mode_t old_umask;
	int fd, rc, saved;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			errno = EEXIST;	/* not ours to remove */
			return NULL;
		}
		if ((fd = ipc_connect_path(path)) != -1) {
			close(fd);
			errno = EADDRINUSE;	/* a live instance owns it */
			return NULL;
		}
		if (unlink(path) == -1 && errno != ENOENT)
			return NULL;
	}
	if ((fd = ipc_sys_socket(1)) == -1)
		return NULL;
	/* The file is born with its final mode: no window with a wider one. */
	old_umask = umask((mode_t)~mode & 0777);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	saved = errno;
	umask(old_umask);
	if (rc == -1 || listen(fd, 128) == -1) {
		if (rc == -1)
			errno = saved;
		saved = errno;
		close(fd);
		errno = saved;
		return NULL;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL || (l->path = strdup(path)) == NULL) {
		free(l);
		close(fd);
		unlink(path);
		errno = ENOMEM;
		return NULL;
	}
	l->loop = loop;
	l->fd = fd;
	l->cfg = *cfg;
	if (l->cfg.name == NULL)
		l->cfg.name = l->path;
	l->authorize = authorize;
	l->on_accept = on_accept;
	ev_io_init(&l->io, listener_accept_cb, fd, EV_READ);
	ev_timer_init(&l->resume, listener_resume_cb, 0.1, 0.);
	ev_io_start(loop, &l->io);
	return l;
}

void *
ipc_listener_user(const struct ipc_listener *l)
{
	return l->cfg.user;
}

void
ipc_listener_free(struct ipc_listener *l)
{
	if (l == NULL)
		return;
	ev_io_stop(l->loop, &l->io);
	ev_timer_stop(l->loop, &l->resume);
	close(l->fd);
	if (unlink(l->path) == -1 && errno != ENOENT)
		log_warn("unlink %s", l->path);
	free(l->path);
	free(l);
}

/* --- connector ------------------------------------------------------------- */

#define BACKOFF_MIN	0.1
#define BACKOFF_MAX	2.0

static void
connector_schedule(struct ipc_connector *c)
{
	ev_timer_stop(c->loop, &c->retry);
	ev_timer_set(&c->retry, c->backoff, 0.);
	ev_timer_start(c->loop, &c->retry);
	c->backoff *= 2;
	if (c->backoff > BACKOFF_MAX)
		c->backoff = BACKOFF_MAX;
}

static void
connector_try(struct ipc_connector *c)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	memcpy(sun.sun_path, c->path, strlen(c->path) + 1);
	fd = ipc_sys_socket(1);
	if (fd == -1 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		if (!c->failing)
			log_info("waiting for %s at %s (%s)", c->cfg.name,
			    c->path, strerror(errno));
		c->failing = 1;
		if (fd != -1)
			close(fd);
		connector_schedule(c);
		return;
	}
	if ((c->peer = ipc_peer_new(c->loop, fd, 1, &c->cfg)) == NULL) {
		log_warnx("%s: out of memory", c->cfg.name);
		connector_schedule(c);
		return;
	}
	c->peer->conn = c;
}

static void
connector_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ipc_connector *c = container_of(w, struct ipc_connector, retry);

	(void)loop;
	(void)revents;
	if (c->peer == NULL)
		connector_try(c);
}

static void
connector_ready(struct ipc_connector *c)
{
	c->ready = 1;
	c->failing = 0;
	c->backoff = BACKOFF_MIN;
	log_info("connected to %s (pid %d, version %s)", c->cfg.name,
	    (int)c->peer->cred.pid, c->peer->peer_version);
}

static void
connector_lost(struct ipc_connector *c, int was_ready, const char *reason)
{
	c->peer = NULL;
	if (c->ready)
		log_warnx("lost %s: %s; reconnecting", c->cfg.name, reason);
	else if (!was_ready)
		c->failing = 1;
	c->ready = 0;
	connector_schedule(c);
}

struct ipc_connector *
ipc_connector_new(struct ev_loop *loop, const char *path,
    const struct ipc_peer_config *cfg)
{
	struct sockaddr_un sun;
	struct ipc_connector *c;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL || (c->path = strdup(path)) == NULL) {
		free(c);
		errno = ENOMEM;
		return NULL;
	}
	c->loop = loop;
	c->cfg = *cfg;
	if (c->cfg.name == NULL)
		c->cfg.name = c->path;
	c->backoff = BACKOFF_MIN;
	ev_timer_init(&c->retry, connector_retry_cb, 0., 0.);
	connector_try(c);
	return c;
}

struct ipc_peer *
ipc_connector_peer(const struct ipc_connector *c)
{
	return c->ready ? c->peer : NULL;
}

void
ipc_connector_free(struct ipc_connector *c)
{
	if (c == NULL)
		return;
	ev_timer_stop(c->loop, &c->retry);
	if (c->peer) {
		struct ipc_peer *p = c->peer;

		p->conn = NULL;
		c->peer = NULL;
		ipc_close(p, "shutting down");
	}
	free(c->path);
	free(c);
}
