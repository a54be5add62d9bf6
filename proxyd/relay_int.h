/*
 * The relay's insides, shared by its files (nothing outside the relay
 * includes this).  One struct rflow per flow, its fields grouped by the
 * layer that owns them; proxyd/README.md draws the stack.
 *
 *   relay.c         the engine, starting flows, the TCP pump (transport)
 *   relay_splice.c  a TCP direction moved to a pipe (transport)
 *   relay_udp.c     the UDP pump (transport; DNS recorded per message)
 *   relay_detect.c  first bytes: TLS ClientHello, HTTP/1, --ignore-hosts
 *   relay_quic.c    UDP: a QUIC attempt held, refused or passed
 *   relay_tls.c     an intercepted flow: sockets <-> mitm engine <-> layer
 *   relay_layer.c   a plain flow whose layer re-frames (h2c): sockets <-> layer
 *   flow_end.c      how a flow ends; FlowClosed reconciliation
 *   recorder.c      what the store learns of a flow (begin, facts, end)
 */
#ifndef LOCALCAP_PROXYD_RELAY_INT_H
#define LOCALCAP_PROXYD_RELAY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/uio.h>

#include <ev.h>

#include "plat.h"
#include "proxyd/dlist.h"
#include "proxyd/flow.h"
#include "proxyd/passmap.h"
#include "proxyd/rbuf.h"
#include "proxyd/relay.h"

struct layer;
struct layer_env;
struct mitm;
struct store_flow_facts;

#define RELAY_HASH_BUCKETS	1024	/* (source, flow id) -> flow */
#define UDP_MAX_DGRAM		65536
#define UDP_BATCH		64	/* datagrams per readiness event */
/*
 * Upstream connect failed before the app sent anything: how long (s) to
 * wait for a ClientHello that would get a 502 rather than a reset.
 */
#define CONNECT_GRACE		0.25
/*
 * A plain flow whose server speaks first with what starts like an HTTP/2
 * SETTINGS frame (a prior-knowledge h2c origin does, as soon as it
 * accepts): how long (s) those bytes wait for the client's first ones, so
 * that the client's preface can still put the HTTP/2 layer on the flow.
 * And the largest such frame held (payload bytes; 6 per setting).
 */
#define SERVER_HOLD		0.3
#define SERVER_HOLD_SETTINGS_MAX	(6 * 64)
/* TCP flows ended on our side whose FlowClosed may still come (see ended). */
#define ENDED_MAX		1024
/*
 * A pipe smaller than this (the user's pipe-user-pages-soft is used up, and
 * new pipes get two pages) would splice slower than copying: not used.
 */
#define SPLICE_MIN_PIPE		(64 * 1024)
/* A ring buffer allocated while the memory budget is spent (membudget.h). */
#define RING_SMALL		(16 * 1024)
/*
 * What a flow's state costs besides its ring buffers and bodies, charged to
 * the memory budget while it runs: the flow and its HTTP parsers; and for
 * an intercepted one the TLS engine (mbedTLS's own record buffers, ~104 KiB
 * measured by bench_mitm, plus the layer's buffers).  The engine's
 * ciphertext buffers (up to mitm_buffer_bytes(), only while they hold
 * bytes) are charged as they are held, after each run (rflow_tls_run).
 */
#define FLOW_STATE_COST		(sizeof(struct rflow) + 8 * 1024)
#define TLS_FLOW_COST		(104 * 1024 + 32 * 1024)
#define ADDR_BUCKETS		256	/* source address -> flows running */

/* Flows running from one source address (max_flows_per_addr). */
struct addr_count {
	struct addr_count	*next;
	struct endpoint	 addr;		/* port 0 */
	size_t			 n;
};

/*
 * A TCP flow that ended on proxyd's side while its source had not sent its
 * FlowClosed yet (the usual order: the flow socket's EOF overtakes the
 * message, and the source's stack still waits for the app's last ACK).  Its
 * row is written at once but left incomplete ("held") for up to
 * cfg.source_wait seconds, so a follower sees it with the source's figures;
 * after that it is completed as it is, and the entry still lets a later
 * FlowClosed put its figures in, until ENDED_MAX newer ones push it out.
 */
struct ended {
	const void	*source;	/* NULL: nothing more to expect */
	uint64_t	 source_flow_id;
	uint64_t	 id;		/* proxyd's: the ring's record */
	int64_t		 store_row;
	ev_tstamp	 until;		/* loop time the hold ends */
	unsigned	 held:1;	/* row not marked complete yet */
};

/*
 * The pipe one direction is spliced through, once nothing looks at its
 * bytes any more.  The kernel does not say how much a pipe holds, so len is
 * counted here: never more than cap (<= bufsize) goes in.
 */
struct spipe {
	int		 rd;			/* -1: the direction copies */
	int		 wr;
	size_t		 len;			/* bytes in the pipe */
	size_t		 cap;
	unsigned	 stalled:1;		/* out of slots before cap: read
						 * again once some went out */
};

struct side {
	int		 fd;
	ev_io		 rd;
	ev_io		 wr;
	int		 domain;		/* AF_UNIX, AF_INET, AF_INET6 */
	int		 type;			/* SOCK_STREAM, SOCK_DGRAM... */
	unsigned	 eof:1;			/* read returned 0 */
	unsigned	 shut_wr:1;		/* we sent it our EOF */
};

struct rflow {
	struct relay		*relay;
	struct flow_record	 rec;		/* what the ring and store keep */

	/* --- transport (relay.c, relay_splice.c, relay_udp.c) --- */
	struct side		 app;
	struct side		 up;
	struct rbuf		 a2u;		/* app -> upstream */
	struct rbuf		 u2a;		/* upstream -> app */
	struct spipe		 pa2u;		/* splice(2) instead of a2u */
	struct spipe		 pu2a;		/* ... of u2a */
	unsigned		 splice_failed:1;	/* no pipe: copy on */
	unsigned		 connecting:1;
	ev_tstamp		 started;	/* loop time */
	struct dl_entry		 connect_dl;
	struct dl_entry		 idle_dl;
	TAILQ_ENTRY(rflow)	 all;

	size_t			 charged;	/* to the memory budget, besides
						 * ring buffers and bodies */
	size_t			 tls_held;	/* of charged: the TLS engine's
						 * buffers, as of its last run */
	unsigned		 addr_counted:1;	/* in relay.addrs */
	char			 refused[128];	/* over a cap: which */

	/* --- the source's view (flow_end.c) --- */
	const void		*source;	/* NULL once the source is gone */
	struct rflow		*hnext;
	unsigned		 hashed:1;
	unsigned		 closed_seen:1;	/* the source's FlowClosed came */

	/*
	 * --- detect (relay_detect.c).  While detecting, the app's first
	 * bytes wait in a2u (nothing goes upstream) until they are known to
	 * be a ClientHello or not; then either m takes the flow or it goes
	 * on raw.  The server's first bytes wait in u2a (server_held) while
	 * they look like an h2c origin's SETTINGS and the client has not
	 * spoken yet, for SERVER_HOLD at most (the grace timer).
	 */
	unsigned		 detecting:1;
	unsigned		 ignored:1;	/* --ignore-hosts: raw from the start */
	unsigned		 sniffed:1;	/* plain flow looked at for HTTP */
	unsigned		 server_held:1;	/* u2a waits for the client */
	int			 connect_err;	/* connect failed while detecting */
	ev_timer		 grace;		/* ... how long to wait for a hello;
						 * or how long u2a is held (never
						 * both: a failed connect has no
						 * server bytes) */
	char			 host[PASSMAP_KEY_MAX];	/* passthrough key */
	char			 pass_reason[PASSMAP_KEY_MAX + 64];
						/* why it was not looked into */

	/*
	 * --- QUIC (relay_quic.c): the gate a UDP flow's datagrams from the
	 * app pass through until it knows the flow (quic_done); kept to the
	 * end for the record when the flow was QUIC.
	 */
	struct qgate		*quic;
	ev_timer		 quic_hold;	/* a split ClientHello's rest */
	unsigned		 quic_done:1;	/* nothing more to ask the gate */
	/* --- TLS (relay_tls.c) --- */
	struct mitm		*m;		/* NULL: not intercepted */
	unsigned		 answered:1;	/* upstream failed: client answered */
	unsigned		 client_done:1;	/* ... or its stream ended first */
	unsigned		 tls_checked:1;	/* ALPN looked at */
	unsigned		 tls_shut[2];	/* close_notify sent towards side */
	uint8_t			 probe[256];	/* client plaintext after an
						 * upstream failure: HTTP? */
	size_t			 probe_len;

	/*
	 * --- protocol layer (layer.h): plain HTTP, or the plaintext of a TLS
	 * flow whose ALPN is http/1.1 or none.  On a plain flow the layer
	 * observes the bytes in the ring buffers; on a TLS flow the
	 * plaintext passes through it.  NULL: raw (a TLS flow's plaintext
	 * then goes across with mitm_relay()).
	 */
	struct layer		*proto;
	unsigned		 layer_pump:1;	/* plain flow whose layer re-frames
						 * (h2c): relay_layer.c moves its
						 * bytes, not the ring buffers */

	/* --- recorder (recorder.c) --- */
	int64_t			 store_row;	/* its row in the flow store, or 0 */
	char			 proto_why[160];/* why the layer ended the flow */
	unsigned		 http_seen:1;	/* observed as HTTP at all */
};

struct relay {
	struct ev_loop		*loop;
	struct relay_config	 cfg;
	struct relay_stats	 stats;
	struct flow_ring	 ring;
	uint64_t		 next_id;
	TAILQ_HEAD(, rflow)	 flows;
	struct rflow		*hash[RELAY_HASH_BUCKETS];
	struct addr_count	*addrs[ADDR_BUCKETS];
	struct dlist		 connect_list;
	struct dlist		 tcp_idle;
	struct dlist		 udp_idle;
	struct dlist		 dns_idle;
	uint8_t			*dgram;		/* UDP scratch, UDP_MAX_DGRAM */
	void			(*on_change)(void *);
	void			*on_change_arg;
	/* A flow socket's reset marker by message, if its source takes it. */
	int			(*on_source_reset)(void *, const void *source,
				    uint64_t source_flow_id);
	void			*on_source_reset_arg;
	ev_tstamp		 refusal_logged;	/* loop time */
	unsigned		 refusals_unlogged;
	struct passmap		 pass;		/* hosts passed through for now */
	struct ended		 ended[ENDED_MAX];	/* FIFO, oldest first */
	size_t			 ended_head;	/* next slot written */
	size_t			 ended_count;
	size_t			 nheld;
	ev_timer		 hold_timer;
};

/* relay.c */
uint64_t	 relay_realtime_us(void);
void		 relay_changed(struct relay *);
void		 relay_watch(struct ev_loop *, ev_io *, int on);
size_t		 relay_hash_slot(const void *source, uint64_t id);
void		 relay_refusal_warn(struct relay *, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
void		 rflow_settle(struct rflow *);
void		 rflow_took(struct rflow *, struct rbuf *, int from_app,
		    const struct iovec *, size_t got);
struct dlist	*rflow_idle_list(struct rflow *);
int		 rflow_ring_space(struct relay *, struct rbuf *,
		    struct iovec iov[2], size_t need);
void		 rflow_ring_release(struct relay *, struct rbuf *);
/* The flow no longer counts against max_flows_per_addr. */
void		 rflow_addr_uncount(struct rflow *);

/* relay_splice.c */
void		 spipe_init(struct spipe *);
void		 spipe_close(struct relay *, struct spipe *);
int		 spipe_room(const struct relay *, const struct rbuf *,
		    const struct spipe *);
int		 rflow_splice_in(struct rflow *, struct side *, struct spipe *,
		    int from_app);
int		 rflow_splice_out(struct rflow *, struct side *, struct spipe *,
		    int to_app);
/* 1: the direction drains its ring buffer first, do not read its side. */
int		 rflow_splice_maybe(struct rflow *, int from_app);

/* relay_udp.c */
void		 rflow_udp_app_readable(struct ev_loop *, ev_io *, int);
void		 rflow_udp_up_readable(struct ev_loop *, ev_io *, int);

/* relay_quic.c */
/*
 * A datagram from the app, before it is relayed: 0 relay it, 1 the gate
 * took it (held or released), -1 the flow ended (refused).
 */
int		 rflow_quic_datagram(struct rflow *, const uint8_t *, size_t);
void		 rflow_quic_free(struct rflow *);
/* relay_detect.c */
int		 rflow_detect(struct rflow *);
void		 rflow_http_sniff(struct rflow *);
const char	*rflow_ignore_match(const struct rflow *);
void		 rflow_grace_expired(struct ev_loop *, ev_timer *, int);
/*
 * The server's bytes just read into u2a: 1 if they are held (not to be
 * written to the app yet), 0 if they go on as ever.
 */
int		 rflow_server_hold(struct rflow *);
/*
 * The client's bytes just read into a2u while the server's are held: the
 * hold ends unless they are (the start of) the HTTP/2 preface.
 */
void		 rflow_server_hold_client(struct rflow *);
/* The held server bytes go to the app after all (the hold ends). */
void		 rflow_server_release(struct rflow *);
/* Put the HTTP/1 layer on the flow (when there is a store to record into). */
void		 rflow_proto_start(struct rflow *, const char *scheme,
		    const char *host);
/* The HTTP/2 layer (with or without a store: it re-frames). */
void		 rflow_proto_start_h2(struct rflow *, const char *scheme,
		    const char *host);
/* A plain flow's bytes as they pass, for a transparent layer to look at. */
void		 rflow_proto_observe(struct rflow *, int from_app,
		    const void *, size_t);
void		 rflow_proto_observe_eof(struct rflow *, int from_app);

/* relay_layer.c */
int		 rflow_layer_run(struct rflow *);

/* relay_tls.c */
int		 rflow_tls_start(struct rflow *);
int		 rflow_tls_run(struct rflow *);
int		 rflow_tls_run_woken(struct rflow *, int readable_side);
int		 rflow_tls_connect_failed(struct rflow *, int err);
void		 rflow_tls_side_broken(struct rflow *, int side, int err);

/* flow_end.c */
void		 rflow_end(struct rflow *, enum flow_end, int error);
void		 rflow_side_close(struct relay *, struct side *);
void		 rflow_hash_remove(struct relay *, struct rflow *);
void		 relay_ended_drop(struct relay *, const void *source);
void		 relay_hold_expired(struct ev_loop *, ev_timer *, int);

/* recorder.c */
void		 recorder_flow_begin(struct rflow *);
/* What a protocol layer records through; false: nothing records. */
bool		 recorder_layer_env(struct rflow *, struct layer_env *,
		    const char *scheme, const char *host);
/* Its row ends (left incomplete if hold: its FlowClosed is to come). */
void		 recorder_flow_end(struct rflow *, bool hold);
void		 recorder_dns(struct rflow *, const void *msg, size_t len);

#endif
