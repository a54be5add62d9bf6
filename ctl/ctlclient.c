/*
 * The control-socket client (ctlclient.h): connect, handshake, one
 * CtlRequest, one CtlReply, within CTL_TIMEOUT.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "ipc.h"
#include "control.pb-c.h"
#include "ctl/ctl.h"
#include "ctl/ctlclient.h"

static void
finish(struct ctl *ctl, int code)
{
	ctl->exit_code = code;
	ctl->done = 1;
	ev_timer_stop(ctl->loop, &ctl->deadline);
	ev_break(ctl->loop, EVBREAK_ALL);
}

static void
ctl_ready(struct ipc_peer *peer)
{
	struct ctl *ctl = ipc_user(peer);
	struct msg_ctl_request_pb pb;

	msg_ctl_request_to_pb(&ctl->request, &pb);
	if (ipc_send(peer, LC__MSG_TYPE__MSG_CTL_REQUEST, &pb.m.base, NULL,
	    0) == -1) {
		fprintf(stderr, "localcapctl: cannot send the request: %s\n",
		    strerror(errno));
		finish(ctl, 1);
	}
}

/* The answer a request of this kind expects. */
static enum msg_ctl_answer
expected_answer(enum msg_ctl_op op)
{
	switch (op) {
	case MSG_CTL_STATUS:
		return MSG_CTL_STATUS_REPLY;
	case MSG_CTL_ATTACH:
	case MSG_CTL_DETACH:
		return MSG_CTL_SPEC;
	case MSG_CTL_RUN:
		return MSG_CTL_RUN_REPLY;
	}
	return 0;
}

static void
ctl_message(struct ipc_peer *peer, Lc__MsgType type, const ProtobufCMessage *msg,
    int *fds, size_t nfds)
{
	struct ctl *ctl = ipc_user(peer);
	struct msg_ctl_reply reply;
	const char *why = "unexpected message";

	(void)fds;
	(void)nfds;
	if (type != LC__MSG_TYPE__MSG_CTL_REPLY || msg_ctl_reply_from_pb(&reply,
	    (const Lc__CtlReply *)(const void *)msg, &why) == -1 ||
	    (reply.id != ctl->request.id && (why = "another request's")) ||
	    (reply.answer != MSG_CTL_ERROR &&
	    reply.answer != expected_answer(ctl->request.op) &&
	    (why = "an answer of another kind"))) {
		fprintf(stderr, "localcapctl: unexpected %s from redirectord (%s)\n",
		    ipc_type_name(type), why);
		finish(ctl, 1);
	} else if (reply.answer == MSG_CTL_ERROR) {
		fprintf(stderr, "localcapctl: %s\n", reply.message[0] ?
		    reply.message : "request failed");
		if (reply.code == LC__ERROR_CODE__ERR_BAD_SPEC &&
		    ctl->spec_text && reply.offset <= strlen(ctl->spec_text))
			fprintf(stderr, "  %s\n  %*s^\n", ctl->spec_text,
			    (int)reply.offset, "");
		finish(ctl, 1);
	} else {
		ctl->print(ctl, &reply);
		finish(ctl, 0);
	}
	ipc_close(peer, "done");
}

static void
ctl_close(struct ipc_peer *peer, const char *reason)
{
	struct ctl *ctl = ipc_user(peer);

	if (!ctl->done && ctl->quiet)
		finish(ctl, 1);
	else if (!ctl->done) {
		fprintf(stderr, "localcapctl: redirectord closed the connection: %s\n",
		    reason);
		finish(ctl, 1);
	}
}

static void
deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ctl *ctl = w->data;

	(void)loop;
	(void)revents;
	fprintf(stderr, "localcapctl: no answer from redirectord within %.0f s\n",
	    CTL_TIMEOUT);
	finish(ctl, 1);
}

static const struct ipc_callbacks ctl_cb = {
	.on_ready = ctl_ready,
	.on_message = ctl_message,
	.on_close = ctl_close,
};

int
ctl_request(struct ctl *ctl)
{
	const struct ipc_peer_config cfg = {
		.channel = IPC_CHAN_CTL,
		.self_role = LC__ROLE__ROLE_CTL,
		.accept_roles = 1u << LC__ROLE__ROLE_REDIRECTORD,
		.cb = &ctl_cb,
		.user = ctl,
		.name = "ctl.sock",
	};
	struct ipc_peer *peer;
	int fd;

	if ((fd = ipc_connect_path(ctl->sock_path)) == -1) {
		if (ctl->quiet)
			return 1;
		if (errno == ENOENT || errno == ECONNREFUSED)
			fprintf(stderr, "localcapctl: redirectord is not running "
			    "(nothing listens on %s)\n", ctl->sock_path);
		else if (errno == EACCES || errno == EPERM)
			fprintf(stderr, "localcapctl: permission denied on %s: "
			    "run as root or join the 'localcap' group\n",
			    ctl->sock_path);
		else
			fprintf(stderr, "localcapctl: %s: %s\n", ctl->sock_path,
			    strerror(errno));
		return 1;
	}
	ctl->loop = ev_default_loop(EVFLAG_AUTO);
	if ((peer = ipc_peer_new(ctl->loop, fd, 1, &cfg)) == NULL) {
		fprintf(stderr, "localcapctl: out of memory\n");
		return 1;
	}
	ev_timer_init(&ctl->deadline, deadline_cb, CTL_TIMEOUT, 0.);
	ctl->deadline.data = ctl;
	ev_timer_start(ctl->loop, &ctl->deadline);
	ev_run(ctl->loop, 0);
	return ctl->exit_code;
}

static void
count_running(const struct ctl *ctl, const struct msg_ctl_reply *reply)
{
	struct ctl *c = (struct ctl *)(uintptr_t)ctl;
	size_t i;

	c->running = 0;
	for (i = 0; i < reply->status->n_daemons; i++)
		c->running += reply->status->daemons[i]->running != 0;
}

int
ctl_daemons_running(const char *sock_path)
{
	struct ctl ctl = { .exit_code = 1, .quiet = 1 };

	ctl.request = (struct msg_ctl_request){ .id = (uint64_t)getpid(),
	    .op = MSG_CTL_STATUS };
	ctl.sock_path = sock_path;
	ctl.print = count_running;
	if (ctl_request(&ctl) != 0)
		return -1;
	return ctl.running;
}

static void (*status_fn)(void *, const Lc__StatusReply *);
static void *status_arg;

static void
hand_status(const struct ctl *ctl, const struct msg_ctl_reply *reply)
{
	(void)ctl;
	status_fn(status_arg, reply->status);
}

int
ctl_status_fetch(const char *sock_path, bool quiet,
    void (*fn)(void *, const Lc__StatusReply *), void *arg)
{
	struct ctl ctl = { .exit_code = 1, .quiet = quiet };

	ctl.request = (struct msg_ctl_request){ .id = (uint64_t)getpid(),
	    .op = MSG_CTL_STATUS };
	ctl.sock_path = sock_path;
	ctl.print = hand_status;
	status_fn = fn;
	status_arg = arg;
	return ctl_request(&ctl) == 0 ? 0 : -1;
}
