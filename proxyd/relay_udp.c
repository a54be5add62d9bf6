/*
 * The UDP pump: one datagram per message on the flow socket, relayed over
 * a connected UDP socket, expired when idle.  UDP to port 53 is DNS, its
 * messages recorded one by one (recorder.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "proxyd/relay.h"
#include "proxyd/relay_int.h"

/* Relay up to UDP_BATCH datagrams from one side to the other. */
static void
udp_pump(struct rflow *f, int from_app)
{
	struct relay *r = f->relay;
	struct side *in = from_app ? &f->app : &f->up;
	struct side *out = from_app ? &f->up : &f->app;
	ssize_t n;
	int i;

	for (i = 0; i < UDP_BATCH; i++) {
		n = recv(in->fd, r->dgram, UDP_MAX_DGRAM, MSG_DONTWAIT);
		if (n == -1) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			if (!from_app && (errno == ECONNREFUSED ||
			    errno == EHOSTUNREACH || errno == ENETUNREACH)) {
				/* ICMP about an earlier datagram: UDP goes on. */
				f->rec.error = errno;
				continue;
			}
			rflow_end(f, from_app ? FLOW_END_APP_RESET :
			    FLOW_END_UPSTREAM_RESET, errno);
			return;
		}
		/*
		 * A SEQPACKET flow socket reads 0 once the source closed it; on
		 * a DGRAM one, 0 is an empty datagram (its close is not seen:
		 * idle expiry or FlowClosed end the flow).
		 */
		if (n == 0 && from_app && in->type == SOCK_SEQPACKET) {
			rflow_end(f, FLOW_END_CLOSED, 0);
			return;
		}
		dlist_touch(rflow_idle_list(f), &f->idle_dl);
		if (from_app) {
			f->rec.dgrams_from_app++;
			f->rec.bytes_from_app += (size_t)n;
			r->stats.bytes_from_app += (size_t)n;
			if (f->rec.first_from_app_len == 0)
				flow_keep_first(f->rec.first_from_app,
				    &f->rec.first_from_app_len, r->dgram, (size_t)n);
		} else {
			f->rec.dgrams_to_app++;
			f->rec.bytes_to_app += (size_t)n;
			r->stats.bytes_to_app += (size_t)n;
			if (f->rec.first_to_app_len == 0)
				flow_keep_first(f->rec.first_to_app,
				    &f->rec.first_to_app_len, r->dgram, (size_t)n);
		}
		if (f->rec.meta.dst.port == 53)
			recorder_dns(f, r->dgram, (size_t)n);
		/* A side that cannot take it loses it, as on any UDP path. */
		if (send(out->fd, r->dgram, (size_t)n, MSG_DONTWAIT |
		    MSG_NOSIGNAL) == -1) {
			f->rec.dgrams_dropped++;
			r->stats.dgrams_dropped++;
			if (errno != EAGAIN && errno != ENOBUFS &&
			    errno != EMSGSIZE && errno != ECONNREFUSED)
				f->rec.error = errno;
		}
	}
}

void
rflow_udp_app_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	udp_pump(w->data, 1);
}

void
rflow_udp_up_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	udp_pump(w->data, 0);
}

