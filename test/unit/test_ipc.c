/*
 * Unit tests for the framing library (common/ipc.c): round trips, the
 * handshake and its refusals, partial I/O, every malformed-frame shape, fd
 * passing, peer death, back-pressure, listeners and connectors, and the
 * permit table (common/msg.c): every type from a role that may not send it,
 * or over its size, closes the peer.
 *
 * Each test runs its own libev loop over a socketpair.  One end is an
 * ipc_peer under test; the other is either another ipc_peer or a raw fd the
 * test writes bytes to by hand, so malformed input can be anything.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "ipc.h"
#include "log.h"
#include "msg.h"
#include "control.pb-c.h"
#include "data.pb-c.h"
#include "flow.pb-c.h"

struct rec {
	struct ipc_peer	*peer;
	int		 ready;
	int		 closed;
	char		 reason[256];
	int		 nmsg;
	Lc__MsgType	 last_type;
	size_t		 last_npackets;
	uint8_t		 last_packet[64];
	size_t		 last_packet_len;
	int		 keep_fd;	/* take fds[0] from the next message */
	int		 kept_fd;
	int		 drained;
	int		 pause_after_first;
};

static void
rec_ready(struct ipc_peer *p)
{
	struct rec *r = ipc_user(p);

	r->ready++;
}

static void
rec_message(struct ipc_peer *p, Lc__MsgType type, const ProtobufCMessage *msg,
    int *fds, size_t nfds)
{
	struct rec *r = ipc_user(p);

	r->nmsg++;
	r->last_type = type;
	/* The tests' payloads: counter names one way, a cgroup the other. */
	if (type == LC__MSG_TYPE__MSG_NETSTACK_STATUS) {
		const Lc__NetstackStatus *st =
		    (const Lc__NetstackStatus *)(const void *)msg;

		r->last_npackets = st->n_counters;
		if (st->n_counters > 0 &&
		    strlen(st->counters[0]->name) <= sizeof(r->last_packet)) {
			r->last_packet_len = strlen(st->counters[0]->name);
			memcpy(r->last_packet, st->counters[0]->name,
			    r->last_packet_len);
		}
	} else if (type == LC__MSG_TYPE__MSG_OWNER_REPLY) {
		const Lc__OwnerReply *o = (const Lc__OwnerReply *)(const void *)msg;

		r->last_npackets = o->owner && o->owner->cgroup ? 1 : 0;
		r->last_packet_len = r->last_npackets ? strlen(o->owner->cgroup) : 0;
	}
	if (r->keep_fd && nfds > 0) {
		r->kept_fd = fds[0];
		fds[0] = -1;
	}
	if (r->pause_after_first)
		ipc_pause_read(p);
}

static void
rec_close(struct ipc_peer *p, const char *reason)
{
	struct rec *r = ipc_user(p);

	r->closed++;
	snprintf(r->reason, sizeof(r->reason), "%s", reason);
	r->peer = NULL;
}

static void
rec_drain(struct ipc_peer *p)
{
	struct rec *r = ipc_user(p);

	r->drained++;
}

static const struct ipc_callbacks rec_cb = {
	.on_ready = rec_ready,
	.on_message = rec_message,
	.on_close = rec_close,
	.on_drain = rec_drain,
};

struct fixture {
	struct ev_loop	*loop;
	struct rec	 server;	/* accepting side, data channel */
	struct rec	 client;
	int		 raw;		/* the other end, when raw */
	char		 dir[64];
	Lc__Role	 raw_self;	/* raw_peer_closed_by's server; 0: redirectord */
};

static struct ipc_peer_config
server_cfg(struct rec *r)
{
	struct ipc_peer_config cfg = {
		.channel = IPC_CHAN_DATA,
		.self_role = LC__ROLE__ROLE_REDIRECTORD,
		.accept_roles = 1u << LC__ROLE__ROLE_NETSTACKD,
		.cb = &rec_cb,
		.user = r,
		.name = "test-server",
	};
	return cfg;
}

static struct ipc_peer_config
client_cfg(struct rec *r)
{
	struct ipc_peer_config cfg = {
		.channel = IPC_CHAN_DATA,
		.self_role = LC__ROLE__ROLE_NETSTACKD,
		.accept_roles = 1u << LC__ROLE__ROLE_REDIRECTORD,
		.cb = &rec_cb,
		.user = r,
		.name = "test-client",
	};
	return cfg;
}

/* Turn the loop until *flag becomes true, or fail after 2 s. */
static void
run_until(struct ev_loop *loop, const int *flag)
{
	struct timespec start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	while (!*flag) {
		ev_run(loop, EVRUN_NOWAIT);
		if (*flag)
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - start.tv_sec) * 1000 +
		    (now.tv_nsec - start.tv_nsec) / 1000000 > 2000)
			fail_msg("condition not reached within 2 s");
		usleep(1000);
	}
}

static void
spin(struct ev_loop *loop, int rounds)
{
	while (rounds-- > 0) {
		ev_run(loop, EVRUN_NOWAIT);
		usleep(500);
	}
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	log_init("test_ipc", 1, LOG_LEVEL_WARN - 1);	/* quiet */
	f->loop = ev_loop_new(EVFLAG_AUTO);
	f->raw = -1;
	f->client.kept_fd = -1;
	f->server.kept_fd = -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	if (f->server.peer)
		ipc_close(f->server.peer, "teardown");
	if (f->client.peer)
		ipc_close(f->client.peer, "teardown");
	if (f->raw >= 0)
		close(f->raw);
	if (f->client.kept_fd >= 0)
		close(f->client.kept_fd);
	if (f->server.kept_fd >= 0)
		close(f->server.kept_fd);
	ev_loop_destroy(f->loop);
	free(f);
	return 0;
}

/* Server peer on one end of a socketpair, raw fd on the other. */
static void
make_raw_pair(struct fixture *f)
{
	int sv[2];
	struct ipc_peer_config cfg = server_cfg(&f->server);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	f->server.peer = ipc_peer_new(f->loop, sv[0], 0, &cfg);
	assert_non_null(f->server.peer);
	f->raw = sv[1];
}

/* Two real peers, handshaken. */
static void
make_peer_pair(struct fixture *f)
{
	int sv[2];
	struct ipc_peer_config scfg = server_cfg(&f->server);
	struct ipc_peer_config ccfg = client_cfg(&f->client);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	f->server.peer = ipc_peer_new(f->loop, sv[0], 0, &scfg);
	f->client.peer = ipc_peer_new(f->loop, sv[1], 1, &ccfg);
	run_until(f->loop, &f->client.ready);
	run_until(f->loop, &f->server.ready);
}

/* Encode one frame by hand: header fields as given, payload = msg. */
static size_t
frame(uint8_t *buf, size_t cap, unsigned type, uint8_t nfds, uint8_t reserved,
    const ProtobufCMessage *msg)
{
	size_t plen = msg ? protobuf_c_message_get_packed_size(msg) : 0;

	assert_true(IPC_HDR_LEN + plen <= cap);
	buf[0] = (uint8_t)(plen >> 24);
	buf[1] = (uint8_t)(plen >> 16);
	buf[2] = (uint8_t)(plen >> 8);
	buf[3] = (uint8_t)plen;
	buf[4] = (uint8_t)(type >> 8);
	buf[5] = (uint8_t)type;
	buf[6] = nfds;
	buf[7] = reserved;
	if (msg)
		protobuf_c_message_pack(msg, buf + IPC_HDR_LEN);
	return IPC_HDR_LEN + plen;
}

static size_t
hello_frame(uint8_t *buf, size_t cap, uint32_t version, Lc__Role role)
{
	Lc__Hello hello;

	lc__hello__init(&hello);
	hello.protocol_version = version;
	hello.role = role;
	hello.software_version = (char *)(uintptr_t)"test";
	return frame(buf, cap, LC__MSG_TYPE__MSG_HELLO, 0, 0, &hello.base);
}

/* A NetstackStatus (netstackd -> redirectord) with one counter named label. */
static size_t
status_frame(uint8_t *buf, size_t cap, const char *label)
{
	Lc__NetstackStatus st;
	Lc__Counter c, *cp = &c;

	lc__netstack_status__init(&st);
	lc__counter__init(&c);
	c.name = (char *)(uintptr_t)label;
	st.n_counters = 1;
	st.counters = &cp;
	return frame(buf, cap, LC__MSG_TYPE__MSG_NETSTACK_STATUS, 0, 0, &st.base);
}

/* An OwnerReply (redirectord -> netstackd) whose cgroup is len bytes of 'x'. */
struct owner_reply {
	Lc__OwnerReply	 r;
	Lc__Owner	 p;
	char		*cgroup;
};

static void
owner_reply_init(struct owner_reply *o, size_t len)
{
	lc__owner_reply__init(&o->r);
	lc__owner__init(&o->p);
	o->cgroup = malloc(len + 1);
	assert_non_null(o->cgroup);
	memset(o->cgroup, 'x', len);
	o->cgroup[len] = '\0';
	o->p.cgroup = o->cgroup;
	o->r.owner = &o->p;
	o->r.found = 1;
}

static void
raw_write(int fd, const void *buf, size_t len)
{
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
}

/* Read one whole frame from the raw end; returns its type, payload in buf. */
static unsigned
raw_read_frame(struct fixture *f, uint8_t *buf, size_t cap, size_t *plen)
{
	size_t got = 0, want = IPC_HDR_LEN;
	struct timespec start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	fcntl(f->raw, F_SETFL, O_NONBLOCK);
	while (got < want) {
		ssize_t n = read(f->raw, buf + got, want - got);

		if (n > 0) {
			got += (size_t)n;
			if (got == IPC_HDR_LEN) {
				want = IPC_HDR_LEN + ((size_t)buf[0] << 24 |
				    (size_t)buf[1] << 16 | (size_t)buf[2] << 8 | buf[3]);
				assert_true(want <= cap);
			}
			continue;
		}
		assert_true(n == -1 && errno == EAGAIN);
		ev_run(f->loop, EVRUN_NOWAIT);
		clock_gettime(CLOCK_MONOTONIC, &now);
		assert_true(now.tv_sec - start.tv_sec < 3);
		usleep(500);
	}
	*plen = want - IPC_HDR_LEN;
	return (unsigned)buf[4] << 8 | buf[5];
}

/* Handshake a raw client against the server peer. */
static void
raw_handshake(struct fixture *f)
{
	uint8_t buf[256];
	size_t len, plen;

	len = hello_frame(buf, sizeof(buf), LC__PROTOCOL__PROTOCOL_VERSION,
	    LC__ROLE__ROLE_NETSTACKD);
	raw_write(f->raw, buf, len);
	assert_int_equal(raw_read_frame(f, buf, sizeof(buf), &plen),
	    LC__MSG_TYPE__MSG_HELLO_REPLY);
	run_until(f->loop, &f->server.ready);
}

/* --- the permit table ---------------------------------------------------- */

static const Lc__Role all_roles[] = {
	LC__ROLE__ROLE_CTL, LC__ROLE__ROLE_REDIRECTORD, LC__ROLE__ROLE_NETSTACKD,
	LC__ROLE__ROLE_PROXYD,
};

static enum ipc_channel
first_channel(uint32_t channels)
{
	if (channels & IPC_CHAN_CTL)
		return IPC_CHAN_CTL;
	if (channels & IPC_CHAN_DATA)
		return IPC_CHAN_DATA;
	return IPC_CHAN_FLOW;
}

/*
 * A fresh server on chan that accepts every role, a raw peer handshaken as
 * role; write bytes, and return 1 if the server closed that peer with a
 * reason containing want (0 if it stayed up).  The server's process — this
 * one — goes on either way.
 */
static int
raw_peer_closed_by(struct fixture *f, enum ipc_channel chan, Lc__Role role,
    const uint8_t *bytes, size_t len, const char *want)
{
	struct ipc_peer_config cfg = server_cfg(&f->server);
	uint8_t buf[256];
	size_t hlen, plen;
	int sv[2], closed;

	memset(&f->server, 0, sizeof(f->server));
	f->server.kept_fd = -1;
	cfg.channel = chan;
	if (f->raw_self != LC__ROLE__ROLE_UNSPECIFIED)
		cfg.self_role = f->raw_self;
	cfg.accept_roles = 0;
	for (size_t i = 0; i < sizeof(all_roles) / sizeof(all_roles[0]); i++)
		cfg.accept_roles |= 1u << all_roles[i];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	f->server.peer = ipc_peer_new(f->loop, sv[0], 0, &cfg);
	f->raw = sv[1];
	hlen = hello_frame(buf, sizeof(buf), LC__PROTOCOL__PROTOCOL_VERSION, role);
	raw_write(f->raw, buf, hlen);
	assert_int_equal(raw_read_frame(f, buf, sizeof(buf), &plen),
	    LC__MSG_TYPE__MSG_HELLO_REPLY);
	run_until(f->loop, &f->server.ready);
	raw_write(f->raw, bytes, len);
	spin(f->loop, 20);
	closed = f->server.closed;
	if (closed && strstr(f->server.reason, want) == NULL)
		fail_msg("close reason '%s' lacks '%s'", f->server.reason, want);
	if (!closed) {
		ipc_close(f->server.peer, "test done");
		f->server.peer = NULL;
	}
	close(f->raw);
	f->raw = -1;
	return closed;
}


/* --- tests --------------------------------------------------------------- */

static void
handshake_then_round_trip(void **state)
{
	struct fixture *f = *state;
	Lc__NetstackStatus st;
	Lc__Counter c[3], *cp[3] = { &c[0], &c[1], &c[2] };
	const char *names[3] = { "one", "two", "three" };
	struct owner_reply o;
	size_t i;

	make_peer_pair(f);
	assert_int_equal(ipc_peer_role(f->server.peer), LC__ROLE__ROLE_NETSTACKD);
	assert_int_equal(ipc_peer_role(f->client.peer), LC__ROLE__ROLE_REDIRECTORD);
	assert_int_equal(ipc_cred(f->server.peer)->pid, getpid());

	lc__netstack_status__init(&st);
	for (i = 0; i < 3; i++) {
		lc__counter__init(&c[i]);
		c[i].name = (char *)(uintptr_t)names[i];
	}
	st.n_counters = 3;
	st.counters = cp;
	assert_int_equal(ipc_send(f->client.peer, LC__MSG_TYPE__MSG_NETSTACK_STATUS,
	    &st.base, NULL, 0), 0);
	run_until(f->loop, &f->server.nmsg);
	assert_int_equal(f->server.last_type, LC__MSG_TYPE__MSG_NETSTACK_STATUS);
	assert_int_equal(f->server.last_npackets, 3);
	assert_memory_equal(f->server.last_packet, "one", 3);

	/* And back the other way. */
	owner_reply_init(&o, 12);
	assert_int_equal(ipc_send(f->server.peer, LC__MSG_TYPE__MSG_OWNER_REPLY,
	    &o.r.base, NULL, 0), 0);
	run_until(f->loop, &f->client.nmsg);
	assert_int_equal(f->client.last_type, LC__MSG_TYPE__MSG_OWNER_REPLY);
	assert_int_equal(f->client.last_packet_len, 12);
	assert_int_equal(f->server.closed + f->client.closed, 0);
	free(o.cgroup);
}

static void
frames_split_one_byte_at_a_time(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[512];
	size_t len, i, plen;

	make_raw_pair(f);
	len = hello_frame(buf, sizeof(buf), LC__PROTOCOL__PROTOCOL_VERSION,
	    LC__ROLE__ROLE_NETSTACKD);
	for (i = 0; i < len; i++) {
		raw_write(f->raw, buf + i, 1);
		spin(f->loop, 2);
		assert_int_equal(f->server.ready, i + 1 == len);
	}
	assert_int_equal(raw_read_frame(f, buf, sizeof(buf), &plen),
	    LC__MSG_TYPE__MSG_HELLO_REPLY);

	len = status_frame(buf, sizeof(buf), "split-me-anywhere");
	for (i = 0; i < len; i++) {
		raw_write(f->raw, buf + i, 1);
		spin(f->loop, 2);
		assert_int_equal(f->server.nmsg, i + 1 == len);
	}
	assert_int_equal(f->server.last_packet_len, strlen("split-me-anywhere"));
	assert_memory_equal(f->server.last_packet, "split-me-anywhere", 17);
	assert_int_equal(f->server.closed, 0);
}

static void
several_frames_in_one_write(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[1024];
	size_t len = 0;

	make_raw_pair(f);
	raw_handshake(f);
	len += status_frame(buf + len, sizeof(buf) - len, "a");
	len += status_frame(buf + len, sizeof(buf) - len, "b");
	len += status_frame(buf + len, sizeof(buf) - len, "c");
	raw_write(f->raw, buf, len);
	spin(f->loop, 20);
	assert_int_equal(f->server.nmsg, 3);
	assert_memory_equal(f->server.last_packet, "c", 1);
}

/* Send raw bytes after a handshake; expect the server to close with reason. */
static void
expect_close_after(struct fixture *f, const uint8_t *bytes, size_t len,
    const char *reason_part)
{
	raw_write(f->raw, bytes, len);
	run_until(f->loop, &f->server.closed);
	if (strstr(f->server.reason, reason_part) == NULL)
		fail_msg("close reason '%s' lacks '%s'", f->server.reason, reason_part);
}

static void
oversized_length_closes_peer(void **state)
{
	struct fixture *f = *state;
	uint8_t hdr[IPC_HDR_LEN] = { 0, 0x10, 0, 1, 0,
	    LC__MSG_TYPE__MSG_NETSTACK_STATUS, 0, 0 };	/* 1 MiB + 1 */

	make_raw_pair(f);
	raw_handshake(f);
	/* Judged on the header alone: no payload needs to arrive. */
	expect_close_after(f, hdr, sizeof(hdr), "exceeds");
}

static void
maximum_length_is_accepted(void **state)
{
	struct fixture *f = *state;
	const struct msg_spec *spec = msg_lookup(LC__MSG_TYPE__MSG_OWNER_REPLY);
	struct owner_reply o;
	size_t len, fixed;

	/* An OwnerReply of exactly its type's limit gets through... */
	make_peer_pair(f);
	/* Length prefixes grow with the string: find the exact fit. */
	for (len = spec->max_len; ; len--) {
		owner_reply_init(&o, len);
		fixed = protobuf_c_message_get_packed_size(&o.r.base);
		if (fixed <= spec->max_len)
			break;
		free(o.cgroup);
	}
	assert_int_equal(fixed, spec->max_len);
	assert_int_equal(ipc_send(f->server.peer, LC__MSG_TYPE__MSG_OWNER_REPLY,
	    &o.r.base, NULL, 0), 0);
	run_until(f->loop, &f->client.nmsg);
	assert_int_equal(f->client.last_packet_len, len);
	free(o.cgroup);

	/* ...one byte over is refused at the sender. */
	owner_reply_init(&o, len + 1);
	assert_int_equal(ipc_send(f->server.peer, LC__MSG_TYPE__MSG_OWNER_REPLY,
	    &o.r.base, NULL, 0), -1);
	assert_int_equal(errno, EMSGSIZE);
	free(o.cgroup);
	assert_int_equal(f->server.closed + f->client.closed, 0);
}

static void
undecodable_payload_closes_peer(void **state)
{
	struct fixture *f = *state;
	uint8_t bad[IPC_HDR_LEN + 4] = { 0, 0, 0, 4, 0,
	    LC__MSG_TYPE__MSG_NETSTACK_STATUS, 0, 0, 0x22, 0xff, 0xff, 0xff };
	    /* field 4 (counters), its length runs off */

	make_raw_pair(f);
	raw_handshake(f);
	expect_close_after(f, bad, sizeof(bad), "undecodable");
}

static void
unknown_type_closes_peer(void **state)
{
	struct fixture *f = *state;
	uint8_t hdr[IPC_HDR_LEN] = { 0, 0, 0, 0, 0x7f, 0x7f, 0, 0 };

	make_raw_pair(f);
	raw_handshake(f);
	expect_close_after(f, hdr, sizeof(hdr), "unknown message type 32639");
}

static void
reserved_byte_closes_peer(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[64];
	size_t len;

	make_raw_pair(f);
	raw_handshake(f);
	len = status_frame(buf, sizeof(buf), "x");
	buf[7] = 1;
	expect_close_after(f, buf, len, "reserved");
}

static void
type_not_permitted_on_channel_closes_peer(void **state)
{
	struct fixture *f = *state;
	Lc__CtlRequest req;
	uint8_t buf[64];
	size_t len;

	make_raw_pair(f);
	raw_handshake(f);
	lc__ctl_request__init(&req);
	len = frame(buf, sizeof(buf), LC__MSG_TYPE__MSG_CTL_REQUEST, 0, 0, &req.base);
	expect_close_after(f, buf, len, "not permitted");
}

static void
message_before_hello_closes_peer(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[64];
	size_t len;

	make_raw_pair(f);
	len = status_frame(buf, sizeof(buf), "early");
	expect_close_after(f, buf, len, "expected Hello");
	assert_int_equal(f->server.nmsg, 0);
}

static void
second_hello_closes_peer(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[64];
	size_t len;

	make_raw_pair(f);
	raw_handshake(f);
	len = hello_frame(buf, sizeof(buf), LC__PROTOCOL__PROTOCOL_VERSION,
	    LC__ROLE__ROLE_NETSTACKD);
	expect_close_after(f, buf, len, "after the handshake");
}

static void
version_mismatch_is_refused_with_error(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[512];
	size_t len, plen;
	Lc__Error *err;

	make_raw_pair(f);
	len = hello_frame(buf, sizeof(buf), 99, LC__ROLE__ROLE_NETSTACKD);
	raw_write(f->raw, buf, len);
	assert_int_equal(raw_read_frame(f, buf, sizeof(buf), &plen),
	    LC__MSG_TYPE__MSG_ERROR);
	err = lc__error__unpack(NULL, plen, buf + IPC_HDR_LEN);
	assert_non_null(err);
	assert_int_equal(err->code, LC__ERROR_CODE__ERR_VERSION_MISMATCH);
	assert_non_null(strstr(err->message, "version 99"));
	lc__error__free_unpacked(err, NULL);
	run_until(f->loop, &f->server.closed);
	assert_int_equal(f->server.ready, 0);
}

static void
wrong_role_is_refused(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[512];
	size_t len, plen;
	Lc__Error *err;

	make_raw_pair(f);
	len = hello_frame(buf, sizeof(buf), LC__PROTOCOL__PROTOCOL_VERSION,
	    LC__ROLE__ROLE_CTL);
	raw_write(f->raw, buf, len);
	assert_int_equal(raw_read_frame(f, buf, sizeof(buf), &plen),
	    LC__MSG_TYPE__MSG_ERROR);
	err = lc__error__unpack(NULL, plen, buf + IPC_HDR_LEN);
	assert_non_null(err);
	assert_int_equal(err->code, LC__ERROR_CODE__ERR_ROLE_REFUSED);
	lc__error__free_unpacked(err, NULL);
	run_until(f->loop, &f->server.closed);
}

static void
connecting_side_reports_refusal(void **state)
{
	struct fixture *f = *state;
	int sv[2];
	struct ipc_peer_config scfg = server_cfg(&f->server);
	struct ipc_peer_config ccfg = client_cfg(&f->client);

	/* The client claims a role this server does not serve. */
	ccfg.self_role = LC__ROLE__ROLE_PROXYD;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	f->server.peer = ipc_peer_new(f->loop, sv[0], 0, &scfg);
	f->client.peer = ipc_peer_new(f->loop, sv[1], 1, &ccfg);
	run_until(f->loop, &f->client.closed);
	assert_non_null(strstr(f->client.reason, "refused by peer"));
	assert_non_null(strstr(f->client.reason, "does not serve proxyd"));
	assert_int_equal(f->client.ready, 0);
}

static void
fd_passing_delivers_a_working_fd(void **state)
{
	struct fixture *f = *state;
	Lc__TunHandover th;
	int pfd[2];
	char got[8] = { 0 };

	make_peer_pair(f);
	assert_int_equal(pipe(pfd), 0);
	lc__tun_handover__init(&th);
	th.ifname = (char *)(uintptr_t)"tun-test";
	th.mtu = 1500;
	/* Only the server may hand a TUN over... */
	assert_int_equal(ipc_send(f->server.peer, LC__MSG_TYPE__MSG_TUN_HANDOVER,
	    &th.base, &pfd[1], 1), 0);
	/* ...and the sender keeps its own copy, so closing it is fine. */
	close(pfd[1]);
	f->client.keep_fd = 1;
	run_until(f->loop, &f->client.nmsg);
	assert_int_equal(f->client.last_type, LC__MSG_TYPE__MSG_TUN_HANDOVER);
	assert_true(f->client.kept_fd >= 0);
	assert_int_equal(fcntl(f->client.kept_fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	assert_int_equal(write(f->client.kept_fd, "hi", 2), 2);
	close(f->client.kept_fd);
	f->client.kept_fd = -1;
	assert_int_equal(read(pfd[0], got, sizeof(got)), 2);
	assert_string_equal(got, "hi");
	close(pfd[0]);
}

static void
wrong_fd_count_on_send_is_einval(void **state)
{
	struct fixture *f = *state;
	Lc__TunHandover th;
	Lc__OwnerReply b;

	make_peer_pair(f);
	lc__tun_handover__init(&th);
	lc__owner_reply__init(&b);
	/* TunHandover must carry exactly one fd. */
	assert_int_equal(ipc_send(f->server.peer, LC__MSG_TYPE__MSG_TUN_HANDOVER,
	    &th.base, NULL, 0), -1);
	assert_int_equal(errno, EINVAL);
	/* A type with the wrong message body is refused too. */
	assert_int_equal(ipc_send(f->server.peer, LC__MSG_TYPE__MSG_TUN_HANDOVER,
	    &b.base, NULL, 0), -1);
	assert_int_equal(errno, EINVAL);
}

static void
fd_claimed_but_missing_closes_peer(void **state)
{
	struct fixture *f = *state;
	Lc__NewFlow nf;
	uint8_t buf[64];
	size_t len;

	lc__new_flow__init(&nf);
	len = frame(buf, sizeof(buf), LC__MSG_TYPE__MSG_NEW_FLOW, 1, 0, &nf.base);
	assert_true(raw_peer_closed_by(f, IPC_CHAN_FLOW, LC__ROLE__ROLE_NETSTACKD,
	    buf, len, "did not arrive"));
}

static void
unclaimed_fd_closes_peer(void **state)
{
	struct fixture *f = *state;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} cmsg;
	uint8_t buf[64];
	struct iovec iov;
	struct msghdr mh = { 0 };
	struct cmsghdr *c;
	int fd = open("/dev/null", O_RDONLY);

	make_raw_pair(f);
	raw_handshake(f);
	iov.iov_base = buf;
	iov.iov_len = status_frame(buf, sizeof(buf), "x");
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cmsg.buf;
	mh.msg_controllen = sizeof(cmsg.buf);
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	assert_true(sendmsg(f->raw, &mh, 0) > 0);
	close(fd);
	run_until(f->loop, &f->server.closed);
	assert_non_null(strstr(f->server.reason, "no frame claims"));
}

static void
peer_death_is_reported(void **state)
{
	struct fixture *f = *state;

	make_raw_pair(f);
	raw_handshake(f);
	close(f->raw);
	f->raw = -1;
	run_until(f->loop, &f->server.closed);
	assert_non_null(strstr(f->server.reason, "closed the connection"));
}

static void
truncated_frame_is_reported(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[64];
	size_t len;

	make_raw_pair(f);
	raw_handshake(f);
	len = status_frame(buf, sizeof(buf), "cut short");
	raw_write(f->raw, buf, len - 3);
	spin(f->loop, 5);
	assert_int_equal(f->server.closed, 0);
	close(f->raw);
	f->raw = -1;
	run_until(f->loop, &f->server.closed);
	assert_non_null(strstr(f->server.reason, "middle of a frame"));
	assert_int_equal(f->server.nmsg, 0);
}

static void
output_queue_is_bounded_and_drains(void **state)
{
	struct fixture *f = *state;
	struct owner_reply o;
	uint8_t sink[65536];
	int sent = 0, rc;

	make_raw_pair(f);
	raw_handshake(f);
	owner_reply_init(&o, 7000);
	/* The raw end reads nothing: the kernel buffer, then our queue, fill up. */
	while ((rc = ipc_send(f->server.peer, LC__MSG_TYPE__MSG_OWNER_REPLY,
	    &o.r.base, NULL, 0)) == 0)
		assert_true(++sent < 2000);
	assert_int_equal(errno, EAGAIN);
	assert_true(ipc_outq_bytes(f->server.peer) <= IPC_DEFAULT_OUTQ_LIMIT);
	assert_true(ipc_outq_bytes(f->server.peer) > IPC_DEFAULT_OUTQ_LIMIT / 2);
	assert_int_equal(f->server.drained, 0);

	/* The peer starts reading: the producer hears once it is half empty. */
	fcntl(f->raw, F_SETFL, O_NONBLOCK);
	while (!f->server.drained) {
		while (read(f->raw, sink, sizeof(sink)) > 0)
			;
		ev_run(f->loop, EVRUN_NOWAIT);
	}
	assert_true(ipc_outq_bytes(f->server.peer) <= IPC_DEFAULT_OUTQ_LIMIT / 2);
	assert_int_equal(ipc_send(f->server.peer, LC__MSG_TYPE__MSG_OWNER_REPLY,
	    &o.r.base, NULL, 0), 0);
	free(o.cgroup);
}

static void
paused_peer_keeps_frames_until_resumed(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[256];
	size_t len = 0;

	make_raw_pair(f);
	raw_handshake(f);
	f->server.pause_after_first = 1;
	len += status_frame(buf + len, sizeof(buf) - len, "1");
	len += status_frame(buf + len, sizeof(buf) - len, "2");
	raw_write(f->raw, buf, len);
	spin(f->loop, 10);
	assert_int_equal(f->server.nmsg, 1);
	f->server.pause_after_first = 0;
	ipc_resume_read(f->server.peer);
	spin(f->loop, 10);
	assert_int_equal(f->server.nmsg, 2);
	assert_memory_equal(f->server.last_packet, "2", 1);
}

static void
send_before_handshake_is_enotconn(void **state)
{
	struct fixture *f = *state;
	Lc__OwnerReply r;

	make_raw_pair(f);
	lc__owner_reply__init(&r);
	assert_int_equal(ipc_send(f->server.peer, LC__MSG_TYPE__MSG_OWNER_REPLY,
	    &r.base, NULL, 0), -1);
	assert_int_equal(errno, ENOTCONN);
}

/* --- listeners and connectors ------------------------------------------- */

static struct rec *accepted_rec;

static void
accept_into_rec(struct ipc_listener *l, struct ipc_peer *p)
{
	(void)l;
	accepted_rec->peer = p;
	ipc_set_user(p, accepted_rec);
}

static int
refuse_everyone(const struct ipc_cred *cred, void *user)
{
	(void)cred;
	(void)user;
	return 0;
}

static void
make_dir(struct fixture *f)
{
	snprintf(f->dir, sizeof(f->dir), "/tmp/lc-ipc-test.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
}

static void
listener_replaces_stale_socket_and_refuses_live_one(void **state)
{
	struct fixture *f = *state;
	struct ipc_peer_config cfg = server_cfg(&f->server);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct ipc_listener *l, *l2;
	char path[128], file[128];
	int fd;

	make_dir(f);
	snprintf(path, sizeof(path), "%s/s.sock", f->dir);
	/* A stale socket: bound, never listening, its owner gone. */
	assert_true(strlen(path) < sizeof(sun.sun_path));
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	l = ipc_listen(f->loop, path, 0600, &cfg, NULL, NULL);
	assert_non_null(l);
	/* A live one is not taken over. */
	l2 = ipc_listen(f->loop, path, 0600, &cfg, NULL, NULL);
	assert_null(l2);
	assert_int_equal(errno, EADDRINUSE);
	ipc_listener_free(l);
	assert_int_equal(access(path, F_OK), -1);	/* unlinked */

	/* A file that is not a socket is never removed. */
	snprintf(file, sizeof(file), "%s/plain", f->dir);
	fd = open(file, O_CREAT | O_WRONLY, 0600);
	close(fd);
	assert_null(ipc_listen(f->loop, file, 0600, &cfg, NULL, NULL));
	assert_int_equal(errno, EEXIST);
	assert_int_equal(access(file, F_OK), 0);
	unlink(file);
	rmdir(f->dir);
}

static void
listener_sets_socket_mode(void **state)
{
	struct fixture *f = *state;
	struct ipc_peer_config cfg = server_cfg(&f->server);
	struct ipc_listener *l;
	struct stat st;
	char path[128];

	make_dir(f);
	snprintf(path, sizeof(path), "%s/m.sock", f->dir);
	l = ipc_listen(f->loop, path, 0660, &cfg, NULL, NULL);
	assert_non_null(l);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0660);
	ipc_listener_free(l);
	rmdir(f->dir);
}

static void
connector_waits_connects_and_reconnects(void **state)
{
	struct fixture *f = *state;
	struct ipc_peer_config scfg = server_cfg(&f->server);
	struct ipc_peer_config ccfg = client_cfg(&f->client);
	struct ipc_connector *c;
	struct ipc_listener *l;
	char path[128];

	make_dir(f);
	snprintf(path, sizeof(path), "%s/c.sock", f->dir);
	c = ipc_connector_new(f->loop, path, &ccfg);
	assert_non_null(c);
	spin(f->loop, 20);
	assert_null(ipc_connector_peer(c));
	assert_int_equal(f->client.ready, 0);

	accepted_rec = &f->server;
	l = ipc_listen(f->loop, path, 0600, &scfg, NULL, accept_into_rec);
	assert_non_null(l);
	run_until(f->loop, &f->client.ready);
	assert_non_null(ipc_connector_peer(c));

	/* The server side drops the connection: the connector comes back. */
	ipc_close(f->server.peer, "test drops it");
	run_until(f->loop, &f->client.closed);
	assert_null(ipc_connector_peer(c));
	f->server.ready = 0;
	run_until(f->loop, &f->server.ready);
	run_until(f->loop, &f->client.ready);	/* already 1; wait for the peer */
	while (ipc_connector_peer(c) == NULL)
		ev_run(f->loop, EVRUN_ONCE);
	assert_int_equal(f->client.closed, 1);

	ipc_connector_free(c);
	f->client.peer = NULL;
	ipc_listener_free(l);
	rmdir(f->dir);
}

static void
listener_authorize_refusal_reaches_client(void **state)
{
	struct fixture *f = *state;
	struct ipc_peer_config scfg = server_cfg(&f->server);
	struct ipc_peer_config ccfg = client_cfg(&f->client);
	struct ipc_listener *l;
	char path[128];
	int fd;

	make_dir(f);
	snprintf(path, sizeof(path), "%s/a.sock", f->dir);
	l = ipc_listen(f->loop, path, 0600, &scfg, refuse_everyone, NULL);
	assert_non_null(l);
	fd = ipc_connect_path(path);
	assert_true(fd >= 0);
	f->client.peer = ipc_peer_new(f->loop, fd, 1, &ccfg);
	run_until(f->loop, &f->client.closed);
	assert_non_null(strstr(f->client.reason, "may not use"));
	ipc_listener_free(l);
	rmdir(f->dir);
}

/* --- the permit table ---------------------------------------------------- */

/*
 * Every type, from every role its row does not name, or to one that may not
 * take it from there (FlowClosed from proxyd), closes the peer.
 */
static void
every_type_from_a_wrong_role_closes_the_peer(void **state)
{
	struct fixture *f = *state;
	const ProtobufCEnumDescriptor *d = &lc__msg_type__descriptor;
	unsigned i, r, to, refused = 0;

	for (i = 0; i < d->n_values; i++) {
		const struct msg_spec *spec =
		    msg_lookup((unsigned)d->values[i].value);
		uint8_t hdr[IPC_HDR_LEN] = { 0 };

		if (spec == NULL || spec->senders == MSG_ROLES_ANY)
			continue;
		hdr[4] = (uint8_t)((unsigned)spec->type >> 8);
		hdr[5] = (uint8_t)spec->type;
		hdr[6] = spec->nfds;	/* judged on the header: no fd needed */
		for (to = 0; to < sizeof(all_roles) / sizeof(all_roles[0]); to++)
		for (r = 0; r < sizeof(all_roles) / sizeof(all_roles[0]); r++) {
			if (msg_may_travel(spec, all_roles[r], all_roles[to]))
				continue;
			f->raw_self = all_roles[to];
			if (!raw_peer_closed_by(f, first_channel(spec->channels),
			    all_roles[r], hdr, sizeof(hdr), "may not come from"))
				fail_msg("%s from role %d to role %d was accepted",
				    spec->name, all_roles[r], all_roles[to]);
			refused++;
		}
	}
	f->raw_self = LC__ROLE__ROLE_UNSPECIFIED;
	/* 10 one-way types, each with 2 or 3 roles that may not send it, to
	 * each of 4 roles; FlowClosed from proxyd to netstackd or localcapctl. */
	assert_true(refused >= 80);
}

/* netstackd's case from the issue: proxyd may not send it FlowClosed. */
static void
flow_closed_from_proxyd_closes_the_peer(void **state)
{
	struct fixture *f = *state;
	Lc__FlowClosed fc;
	uint8_t buf[64];
	size_t len;

	lc__flow_closed__init(&fc);
	fc.flow_id = 7;
	fc.reason = (char *)(uintptr_t)"reset";
	len = frame(buf, sizeof(buf), LC__MSG_TYPE__MSG_FLOW_CLOSED, 0, 0, &fc.base);
	f->raw_self = LC__ROLE__ROLE_NETSTACKD;
	assert_true(raw_peer_closed_by(f, IPC_CHAN_FLOW, LC__ROLE__ROLE_PROXYD,
	    buf, len, "FlowClosed may not come from proxyd"));
	/* From a flow source it is a message like any other. */
	f->raw_self = LC__ROLE__ROLE_PROXYD;
	assert_false(raw_peer_closed_by(f, IPC_CHAN_FLOW,
	    LC__ROLE__ROLE_NETSTACKD, buf, len, ""));
	assert_int_equal(f->server.nmsg, 1);
	/* proxyd's reset marker to the macOS extension (role redirectord). */
	f->raw_self = LC__ROLE__ROLE_REDIRECTORD;
	assert_false(raw_peer_closed_by(f, IPC_CHAN_FLOW, LC__ROLE__ROLE_PROXYD,
	    buf, len, ""));
	assert_int_equal(f->server.nmsg, 1);
	f->raw_self = LC__ROLE__ROLE_UNSPECIFIED;
}

/*
 * The sending side of the same rule: proxyd's FlowClosed goes to the macOS
 * extension, and ipc_send refuses it towards netstackd (EINVAL, nothing
 * written), so a bug in proxyd cannot get netstackd to close flow.sock.
 */
static void
flow_closed_from_proxyd_is_sent_only_to_the_extension(void **state)
{
	struct fixture *f = *state;
	static const Lc__Role sources[] = {
		LC__ROLE__ROLE_NETSTACKD, LC__ROLE__ROLE_REDIRECTORD,
	};
	Lc__FlowClosed fc;
	uint8_t buf[256];
	size_t i, hlen, plen;

	lc__flow_closed__init(&fc);
	fc.flow_id = 9;
	fc.reason = (char *)(uintptr_t)"reset";
	for (i = 0; i < 2; i++) {
		struct ipc_peer_config cfg = server_cfg(&f->server);
		int sv[2], rc;

		memset(&f->server, 0, sizeof(f->server));
		f->server.kept_fd = -1;
		cfg.channel = IPC_CHAN_FLOW;
		cfg.self_role = LC__ROLE__ROLE_PROXYD;
		cfg.accept_roles = 1u << sources[i];
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		f->server.peer = ipc_peer_new(f->loop, sv[0], 0, &cfg);
		f->raw = sv[1];
		hlen = hello_frame(buf, sizeof(buf),
		    LC__PROTOCOL__PROTOCOL_VERSION, sources[i]);
		raw_write(f->raw, buf, hlen);
		assert_int_equal(raw_read_frame(f, buf, sizeof(buf), &plen),
		    LC__MSG_TYPE__MSG_HELLO_REPLY);
		run_until(f->loop, &f->server.ready);
		errno = 0;
		rc = ipc_send(f->server.peer, LC__MSG_TYPE__MSG_FLOW_CLOSED,
		    &fc.base, NULL, 0);
		if (sources[i] == LC__ROLE__ROLE_NETSTACKD) {
			assert_int_equal(rc, -1);
			assert_int_equal(errno, EINVAL);
		} else {
			assert_int_equal(rc, 0);
			assert_int_equal(raw_read_frame(f, buf, sizeof(buf),
			    &plen), LC__MSG_TYPE__MSG_FLOW_CLOSED);
		}
		ipc_close(f->server.peer, "test done");
		f->server.peer = NULL;
		close(f->raw);
		f->raw = -1;
	}
}

/* Every type, one byte over its own limit, closes the peer on the header. */
static void
every_type_over_its_limit_closes_the_peer(void **state)
{
	struct fixture *f = *state;
	const ProtobufCEnumDescriptor *d = &lc__msg_type__descriptor;
	unsigned i, r;

	for (i = 0; i < d->n_values; i++) {
		const struct msg_spec *spec =
		    msg_lookup((unsigned)d->values[i].value);
		uint32_t plen;
		uint8_t hdr[IPC_HDR_LEN] = { 0 };

		if (spec == NULL || spec->type == LC__MSG_TYPE__MSG_HELLO ||
		    spec->type == LC__MSG_TYPE__MSG_HELLO_REPLY)
			continue;	/* handshake limits: next test */
		assert_true(spec->max_len <= IPC_MAX_PAYLOAD);
		plen = spec->max_len + 1;
		hdr[0] = (uint8_t)(plen >> 24);
		hdr[1] = (uint8_t)(plen >> 16);
		hdr[2] = (uint8_t)(plen >> 8);
		hdr[3] = (uint8_t)plen;
		hdr[4] = (uint8_t)((unsigned)spec->type >> 8);
		hdr[5] = (uint8_t)spec->type;
		hdr[6] = spec->nfds;
		for (r = 0; !msg_role_may_send(spec, all_roles[r]); r++)
			;
		if (!raw_peer_closed_by(f, first_channel(spec->channels),
		    all_roles[r], hdr, sizeof(hdr), "exceeds"))
			fail_msg("%s of %u bytes was accepted", spec->name, plen);
	}
}

static void
oversized_hello_closes_peer(void **state)
{
	struct fixture *f = *state;
	uint8_t hdr[IPC_HDR_LEN] = { 0, 0, 0x01, 0x01, 0, LC__MSG_TYPE__MSG_HELLO,
	    0, 0 };	/* 257 bytes */

	make_raw_pair(f);
	expect_close_after(f, hdr, sizeof(hdr), "exceeds its 256-byte limit");
}

/* A status with more counters, or a longer name, than every hop keeps. */
static void
status_that_would_be_cut_closes_peer(void **state)
{
	struct fixture *f = *state;
	Lc__ProxyStatus ps;
	Lc__Counter c[LC_STATUS_COUNTERS_MAX + 1], *cp[LC_STATUS_COUNTERS_MAX + 1];
	char longname[LC_COUNTER_NAME_MAX + 1];
	uint8_t buf[8192];
	size_t i, len;

	lc__proxy_status__init(&ps);
	for (i = 0; i <= LC_STATUS_COUNTERS_MAX; i++) {
		lc__counter__init(&c[i]);
		c[i].name = (char *)(uintptr_t)"n";
		cp[i] = &c[i];
	}
	ps.counters = cp;
	ps.n_counters = LC_STATUS_COUNTERS_MAX;	/* the most that fits */
	len = frame(buf, sizeof(buf), LC__MSG_TYPE__MSG_PROXY_STATUS, 0, 0, &ps.base);
	assert_false(raw_peer_closed_by(f, IPC_CHAN_FLOW, LC__ROLE__ROLE_PROXYD,
	    buf, len, ""));

	ps.n_counters = LC_STATUS_COUNTERS_MAX + 1;
	len = frame(buf, sizeof(buf), LC__MSG_TYPE__MSG_PROXY_STATUS, 0, 0, &ps.base);
	assert_true(raw_peer_closed_by(f, IPC_CHAN_FLOW, LC__ROLE__ROLE_PROXYD,
	    buf, len, "more counters"));

	memset(longname, 'a', sizeof(longname) - 2);
	longname[sizeof(longname) - 2] = '\0';	/* 47 bytes: fits */
	ps.n_counters = 1;
	c[0].name = longname;
	len = frame(buf, sizeof(buf), LC__MSG_TYPE__MSG_PROXY_STATUS, 0, 0, &ps.base);
	assert_false(raw_peer_closed_by(f, IPC_CHAN_FLOW, LC__ROLE__ROLE_PROXYD,
	    buf, len, ""));
	longname[sizeof(longname) - 2] = 'a';	/* 48: does not */
	longname[sizeof(longname) - 1] = '\0';
	len = frame(buf, sizeof(buf), LC__MSG_TYPE__MSG_PROXY_STATUS, 0, 0, &ps.base);
	assert_true(raw_peer_closed_by(f, IPC_CHAN_FLOW, LC__ROLE__ROLE_PROXYD,
	    buf, len, "counter name"));
}

/* The sender's side: ipc_send refuses what its own role may not send. */
static void
sending_what_the_own_role_may_not_is_einval(void **state)
{
	struct fixture *f = *state;
	Lc__NetstackStatus st;
	struct owner_reply o;

	make_peer_pair(f);
	lc__netstack_status__init(&st);
	owner_reply_init(&o, 1);
	/* The server is redirectord: NetstackStatus is netstackd's to send. */
	assert_int_equal(ipc_send(f->server.peer, LC__MSG_TYPE__MSG_NETSTACK_STATUS,
	    &st.base, NULL, 0), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(ipc_send(f->client.peer, LC__MSG_TYPE__MSG_OWNER_REPLY,
	    &o.r.base, NULL, 0), -1);
	assert_int_equal(errno, EINVAL);
	free(o.cgroup);
}

/* Every MsgType in proto/common.proto has a row in common/msg.c, and back. */
static void
every_message_type_has_a_table_row(void **state)
{
	const ProtobufCEnumDescriptor *d = &lc__msg_type__descriptor;
	unsigned i, v, rows = 0;

	(void)state;
	for (i = 0; i < d->n_values; i++) {
		const struct msg_spec *spec;

		if (d->values[i].value == LC__MSG_TYPE__MSG_NONE)
			continue;
		spec = msg_lookup((unsigned)d->values[i].value);
		if (spec == NULL)
			fail_msg("%s has no row in common/msg.c", d->values[i].name);
		assert_int_equal(spec->type, d->values[i].value);
		assert_non_null(spec->desc);
		assert_true(spec->channels != 0);
		assert_true(spec->senders != 0);
		assert_true(spec->max_len > 0 && spec->max_len <= IPC_MAX_PAYLOAD);
	}
	for (v = 0; v < 65536; v++)
		rows += msg_lookup(v) != NULL;
	assert_int_equal(rows, d->n_values - 1);
	assert_null(msg_lookup(LC__MSG_TYPE__MSG_NONE));
}

int
main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(handshake_then_round_trip),
		T(frames_split_one_byte_at_a_time),
		T(several_frames_in_one_write),
		T(oversized_length_closes_peer),
		T(maximum_length_is_accepted),
		T(undecodable_payload_closes_peer),
		T(unknown_type_closes_peer),
		T(reserved_byte_closes_peer),
		T(type_not_permitted_on_channel_closes_peer),
		T(message_before_hello_closes_peer),
		T(second_hello_closes_peer),
		T(version_mismatch_is_refused_with_error),
		T(wrong_role_is_refused),
		T(connecting_side_reports_refusal),
		T(fd_passing_delivers_a_working_fd),
		T(wrong_fd_count_on_send_is_einval),
		T(fd_claimed_but_missing_closes_peer),
		T(unclaimed_fd_closes_peer),
		T(peer_death_is_reported),
		T(truncated_frame_is_reported),
		T(output_queue_is_bounded_and_drains),
		T(paused_peer_keeps_frames_until_resumed),
		T(send_before_handshake_is_enotconn),
		T(listener_replaces_stale_socket_and_refuses_live_one),
		T(listener_sets_socket_mode),
		T(connector_waits_connects_and_reconnects),
		T(listener_authorize_refusal_reaches_client),
		T(every_type_from_a_wrong_role_closes_the_peer),
		T(flow_closed_from_proxyd_closes_the_peer),
		T(flow_closed_from_proxyd_is_sent_only_to_the_extension),
		T(every_type_over_its_limit_closes_the_peer),
		T(oversized_hello_closes_peer),
		T(status_that_would_be_cut_closes_peer),
		T(sending_what_the_own_role_may_not_is_einval),
		cmocka_unit_test(every_message_type_has_a_table_row),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
