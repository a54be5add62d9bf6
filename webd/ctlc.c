/*
 * webd's ctl.sock client (see ctlc.h).  Requests are matched to answers
 * by request_id; each has a deadline, checked by one timer.
 */
#include "webd/ctlc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "log.h"
#include "msgcodec.h"
#include "utf8.h"

static void ctlc_connect(struct ctlc *);

static bool
busy(const struct ctlc_pending *p)
{
	return p->done != NULL || p->status != NULL;
}

static struct ctlc_pending *
find_pending(struct ctlc *c, uint64_t id)
{
	size_t i;

	for (i = 0; i < CTLC_MAX_PENDING; i++)
		if (busy(&c->pending[i]) && c->pending[i].id == id)
			return &c->pending[i];
	return NULL;
}

/*
 * The one answer a request gets.  A status request (p->status) is told
 * the reply, or NULL and the text; the others ok, text and offset.
 */
static void
finish_reply(struct ctlc_pending *p, bool ok, const char *text, long offset,
    const Lc__StatusReply *st)
{
	ctlc_done_fn done = p->done;
	ctlc_status_fn status = p->status;
	void *arg = p->arg;

	p->done = NULL;
	p->status = NULL;
	if (status)
		status(arg, ok ? st : NULL, ok ? NULL : text);
	else
		done(arg, ok, text, offset);
}

static void
finish(struct ctlc_pending *p, bool ok, const char *text, long offset)
{
	finish_reply(p, ok && p->status == NULL, text, offset, NULL);
}

static int
send_one(struct ctlc *c, struct ctlc_pending *p)
{
	struct msg_ctl_request req = { .id = p->id, .spec = p->spec };
	struct msg_ctl_request_pb pb;

	switch (p->op) {
	case CTLC_ATTACH:
		req.op = MSG_CTL_ATTACH;
		break;
	case CTLC_DETACH:
		req.op = MSG_CTL_DETACH;
		break;
	case CTLC_STATUS:
		req.op = MSG_CTL_STATUS;
		break;
	}
	msg_ctl_request_to_pb(&req, &pb);
	if (ipc_send(c->peer, LC__MSG_TYPE__MSG_CTL_REQUEST, &pb.m.base, NULL,
	    0) == -1)
		return -1;
	p->sent = true;
	c->last_sent = ev_now(c->loop);
	return 0;
}

static void
on_ready(struct ipc_peer *peer)
{
	struct ctlc *c = ipc_user(peer);
	size_t i;

	c->ready = true;
	c->last_sent = ev_now(c->loop);
	for (i = 0; i < CTLC_MAX_PENDING; i++)
		if (busy(&c->pending[i]) && !c->pending[i].sent &&
		    send_one(c, &c->pending[i]) == -1)
			finish(&c->pending[i], false, "cannot send to redirectord",
			    -1);
}

/* The status as the JSON the page reads: spec, capturing, note. */
static char *
status_json(const Lc__StatusReply *st)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		return NULL;
	fputs("{\"spec\":", f);
	json_str_n(f, st->spec ? st->spec : "", st->spec ? strlen(st->spec) : 0);
	fprintf(f, ",\"capturing\":%s,\"note\":", st->capturing ? "true" :
	    "false");
	json_str_n(f, st->note ? st->note : "", st->note ? strlen(st->note) : 0);
	fputs("}", f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static void
on_message(struct ipc_peer *peer, Lc__MsgType type, const ProtobufCMessage *msg,
    int *fds, size_t nfds)
{
	struct ctlc *c = ipc_user(peer);
	struct msg_ctl_reply reply;
	struct ctlc_pending *p;
	const char *why;
	char *json;

	(void)fds;
	(void)nfds;
	if (type != LC__MSG_TYPE__MSG_CTL_REPLY) {
		ipc_close(peer, "unexpected message from redirectord");
		return;
	}
	if (msg_ctl_reply_from_pb(&reply, (const Lc__CtlReply *)(const void *)msg,
	    &why) == -1) {
		ipc_close(peer, why);
		return;
	}
	if ((p = find_pending(c, reply.id)) == NULL)
		return;		/* its deadline passed */
	switch (reply.answer) {
	case MSG_CTL_ERROR:
		finish(p, false, reply.message[0] ? reply.message :
		    "request refused", reply.code == LC__ERROR_CODE__ERR_BAD_SPEC ?
		    (long)reply.offset : -1);
		break;
	case MSG_CTL_SPEC:
		finish(p, p->op != CTLC_STATUS, p->op != CTLC_STATUS ? reply.spec :
		    "unexpected answer from redirectord", -1);
		break;
	case MSG_CTL_STATUS_REPLY:
		if (p->op != CTLC_STATUS) {
			finish(p, false, "unexpected answer from redirectord", -1);
			break;
		}
		if (p->status) {
			finish_reply(p, true, NULL, -1, reply.status);
			break;
		}
		json = status_json(reply.status);
		finish(p, json != NULL, json ? json : "out of memory", -1);
		free(json);
		break;
	default:
		finish(p, false, "unexpected answer from redirectord", -1);
	}
}

static void
on_close(struct ipc_peer *peer, const char *reason)
{
	struct ctlc *c = ipc_user(peer);
	char msg[256];
	size_t i;

	c->peer = NULL;
	c->ready = false;
	snprintf(msg, sizeof(msg), "redirectord closed the connection: %s",
	    reason);
	for (i = 0; i < CTLC_MAX_PENDING; i++)
		if (busy(&c->pending[i]))
			finish(&c->pending[i], false, msg, -1);
}

static const struct ipc_callbacks ctlc_cb = {
	.on_ready = on_ready,
	.on_message = on_message,
	.on_close = on_close,
};

static void
ctlc_connect(struct ctlc *c)
{
	const struct ipc_peer_config cfg = {
		.channel = IPC_CHAN_CTL,
		.self_role = LC__ROLE__ROLE_CTL,
		.accept_roles = 1u << LC__ROLE__ROLE_REDIRECTORD,
		.cb = &ctlc_cb,
		.user = c,
		.name = "ctl.sock",
	};
	int fd;

	if (c->peer)
		return;
	if ((fd = ipc_connect_path(c->path)) == -1) {
		log_debug("%s: %s", c->path, strerror(errno));
		return;
	}
	c->ready = false;
	c->peer = ipc_peer_new(c->loop, fd, 1, &cfg);
}

/* The keep-alive's answer: nothing to do with it (a lost one shows later). */
static void
keepalive_done(void *arg, const Lc__StatusReply *st, const char *error)
{
	(void)arg;
	(void)st;
	if (error)
		log_debug("ctl.sock keep-alive: %s", error);
}

static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ctlc *c = w->data;
	ev_tstamp now = ev_now(loop);
	size_t i;

	(void)revents;
	for (i = 0; i < CTLC_MAX_PENDING; i++)
		if (busy(&c->pending[i]) && c->pending[i].deadline <= now)
			finish(&c->pending[i], false, "no answer from redirectord",
			    -1);
	if (c->ready && now - c->last_sent >= CTLC_KEEPALIVE)
		ctlc_status(c, keepalive_done, NULL);
}

void
ctlc_init(struct ctlc *c, struct ev_loop *loop, const char *sock_path)
{
	memset(c, 0, sizeof(*c));
	c->loop = loop;
	snprintf(c->path, sizeof(c->path), "%s", sock_path);
	c->next_id = 1;
	ev_timer_init(&c->timer, timer_cb, 1.0, 1.0);
	c->timer.data = c;
	ev_timer_start(loop, &c->timer);
	ev_unref(loop);		/* the timer alone does not keep webd running */
	ctlc_connect(c);
}

static void
start(struct ctlc *c, enum ctlc_op op, const char *spec, ctlc_done_fn done,
    ctlc_status_fn status, void *arg)
{
	struct ctlc_pending *p = NULL, early = { .done = done, .status = status,
	    .arg = arg };
	size_t i;

	for (i = 0; i < CTLC_MAX_PENDING; i++)
		if (c->pending[i].done == NULL && c->pending[i].status == NULL) {
			p = &c->pending[i];
			break;
		}
	if (p == NULL) {
		finish(&early, false, "too many requests to redirectord at once",
		    -1);
		return;
	}
	if (spec && strlen(spec) >= sizeof(p->spec)) {
		finish(&early, false, "spec too long", -1);
		return;
	}
	ctlc_connect(c);
	if (c->peer == NULL) {
		finish(&early, false, "redirectord is not running, or this viewer "
		    "may not use its control socket", -1);
		return;
	}
	memset(p, 0, sizeof(*p));
	p->id = c->next_id++;
	p->op = op;
	p->arg = arg;
	p->deadline = ev_now(c->loop) + CTLC_TIMEOUT;
	snprintf(p->spec, sizeof(p->spec), "%s", spec ? spec : "");
	p->done = done;
	p->status = status;
	if (c->ready && send_one(c, p) == -1)
		finish(p, false, "cannot send to redirectord", -1);
}

void
ctlc_request(struct ctlc *c, enum ctlc_op op, const char *spec,
    ctlc_done_fn done, void *arg)
{
	start(c, op, spec, done, NULL, arg);
}

void
ctlc_status(struct ctlc *c, ctlc_status_fn done, void *arg)
{
	start(c, CTLC_STATUS, NULL, NULL, done, arg);
}

void
ctlc_free(struct ctlc *c)
{
	size_t i;

	for (i = 0; i < CTLC_MAX_PENDING; i++)
		if (busy(&c->pending[i]))
			finish(&c->pending[i], false, "shutting down", -1);
	ev_ref(c->loop);
	ev_timer_stop(c->loop, &c->timer);
	if (c->peer)
		ipc_close(c->peer, "shutting down");
}
