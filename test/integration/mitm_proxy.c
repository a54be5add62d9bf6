/*
 * mitm_proxy: a small stand-in for proxyd's relay that drives the TLS
 * interception engine (proxyd/mitm.c) over real sockets, for
 * test/integration/mitm_openssl.sh and by hand.
 *
 *   mitm_proxy STATE_DIR UPSTREAM_IPV4 UPSTREAM_PORT [--upstream-ca FILE]
 *              [--insecure] [--aes]
 *
 * Listens on 127.0.0.1 (an ephemeral port, printed as "listening PORT"),
 * treats every accepted connection as a flow whose original destination is
 * UPSTREAM, connects there and lets the engine intercept it.  Plaintext is
 * relayed as is (mitm_relay); an upstream failure is answered with an HTTP
 * 502 carrying the engine's reason.  Each flow's end is one line on stderr
 * ("flow N: ..."), which the script checks.  SIGTERM ends it cleanly (so a
 * sanitizer build reports leaks).  A poll(2) loop: it is a test driver, the
 * daemon uses libev.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "proxyd/ca.h"
#include "proxyd/certforge.h"
#include "proxyd/aead.h"
#include "proxyd/mitm.h"
#include "proxyd/signer.h"

#define MAX_FLOWS	64

struct flow {
	int		 id;
	int		 fd[2];		/* MITM_CLIENT, MITM_UPSTREAM */
	bool		 connecting;
	bool		 eof[2];
	bool		 shut[2];	/* close_notify + SHUT_WR sent towards side */
	bool		 answered;	/* 502 written */
	bool		 broken;
	struct mitm	*m;
};

static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static void
flow_close(struct flow *f)
{
	const struct mitm_info *in = mitm_get_info(f->m);

	fprintf(stderr, "flow %d: error=%s reason=\"%s\" sni=%s alpn=%s client=%s/%s "
	    "upstream=%s/%s verified=%d resumed=%d/%d offer=%s hs_us=%llu/%llu\n", f->id,
	    mitm_error_str(in->error), in->reason, in->sni[0] ? in->sni : "-",
	    in->alpn[0] ? in->alpn : "-",
	    in->client_version ? in->client_version : "-",
	    in->client_cipher ? in->client_cipher : "-",
	    in->upstream_version ? in->upstream_version : "-",
	    in->upstream_cipher ? in->upstream_cipher : "-",
	    in->upstream_verified, in->client_resumed, in->upstream_resumed,
	    in->client_alpn_offer[0] ? in->client_alpn_offer : "-",
	    (unsigned long long)in->handshake_us, (unsigned long long)in->upstream_handshake_us);
	for (int s = 0; s < 2; s++)
		if (f->fd[s] >= 0)
			close(f->fd[s]);
	mitm_free(f->m);
	f->m = NULL;
}

static void
side_shut(struct flow *f, enum mitm_side s)
{
	if (f->shut[s])
		return;
	f->shut[s] = true;
	(void)mitm_shutdown(f->m, s);
}

/* One round of I/O and engine work; false once the flow is over. */
static bool
service(struct flow *f, const short revents[2])
{
	enum mitm_status st = MITM_HANDSHAKING;
	char page[512], body[300];
	unsigned char buf[4096];

	if (f->connecting && (revents[MITM_UPSTREAM] & (POLLOUT | POLLERR | POLLHUP))) {
		int err = 0;
		socklen_t len = sizeof(err);

		(void)getsockopt(f->fd[MITM_UPSTREAM], SOL_SOCKET, SO_ERROR, &err, &len);
		f->connecting = false;
		if (err != 0) {
			snprintf(body, sizeof(body), "connect: %s", strerror(err));
			mitm_upstream_failed(f->m, body);
			close(f->fd[MITM_UPSTREAM]);
			f->fd[MITM_UPSTREAM] = -1;
		}
	}
	for (int round = 0; round < 64; round++) {
		bool progress = false;
		unsigned w = mitm_wants(f->m);

		for (int s = 0; s < 2; s++) {
			unsigned char *p;
			size_t space;
			ssize_t n;

			if (f->fd[s] < 0 || f->eof[s] || (s == MITM_UPSTREAM && f->connecting) ||
			    !(w & MITM_WANT_READ(s)))
				continue;
			if ((space = mitm_in_space(f->m, (enum mitm_side)s, &p)) == 0)
				continue;
			n = recv(f->fd[s], p, space, MSG_DONTWAIT);
			if (n > 0) {
				mitm_in_commit(f->m, (enum mitm_side)s, (size_t)n);
				progress = true;
			} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				mitm_in_eof(f->m, (enum mitm_side)s);
				f->eof[s] = true;
				progress = true;
			}
		}
		st = mitm_step(f->m);
		if (st == MITM_ESTABLISHED && !f->broken) {
			unsigned eofs;
			ssize_t n = mitm_relay(f->m, &eofs);

			if (n > 0)
				progress = true;
			if (n == MITM_ERROR)
				f->broken = true;
			for (int s = 0; s < 2; s++)
				if ((eofs & (1u << s)) && !f->shut[!s]) {
					side_shut(f, (enum mitm_side)!s);
					progress = true;
				}
		} else if (st == MITM_UPSTREAM_FAILED && !f->answered) {
			/* what the client sent is not for anyone: drop it, answer */
			while (mitm_read(f->m, MITM_CLIENT, buf, sizeof(buf)) > 0)
				;
			snprintf(body, sizeof(body), "%s\n", mitm_get_info(f->m)->reason);
			snprintf(page, sizeof(page), "HTTP/1.1 502 Bad Gateway\r\n"
			    "Content-Type: text/plain\r\nConnection: close\r\n"
			    "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
			if (mitm_write(f->m, MITM_CLIENT, page, strlen(page)) > 0) {
				side_shut(f, MITM_CLIENT);
				f->answered = true;
				progress = true;
			}
		}
		for (int s = 0; s < 2; s++) {
			size_t len;
			const unsigned char *p = mitm_out_peek(f->m, (enum mitm_side)s, &len);
			ssize_t n;

			if (len == 0 || f->fd[s] < 0 || (s == MITM_UPSTREAM && f->connecting))
				continue;
			n = send(f->fd[s], p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n > 0) {
				mitm_out_consume(f->m, (enum mitm_side)s, (size_t)n);
				progress = true;
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				mitm_out_consume(f->m, (enum mitm_side)s, len);	/* peer gone */
				f->broken = true;
			}
		}
		if (!progress)
			break;
	}
	/* half-closes go on the wire once the close_notify is out */
	for (int s = 0; s < 2; s++) {
		size_t len;

		(void)mitm_out_peek(f->m, (enum mitm_side)s, &len);
		if (f->shut[s] && len == 0 && f->fd[s] >= 0)
			(void)shutdown(f->fd[s], SHUT_WR);
	}
	{
		size_t lc, lu;

		(void)mitm_out_peek(f->m, MITM_CLIENT, &lc);
		(void)mitm_out_peek(f->m, MITM_UPSTREAM, &lu);
		if (st == MITM_FAILED || f->broken)
			return lc > 0 && f->fd[MITM_CLIENT] >= 0 && !f->broken;
		if (st == MITM_UPSTREAM_FAILED)
			return !(f->answered && lc == 0);
		if (st == MITM_ESTABLISHED)
			return !(f->shut[0] && f->shut[1] && lc == 0 && lu == 0);
		return !(f->eof[MITM_CLIENT] && f->eof[MITM_UPSTREAM]);
	}
}

int
main(int argc, char **argv)
{
	struct mitm_options opt;
	struct sockaddr_in up, me;
	struct flow flows[MAX_FLOWS];
	struct pollfd pfd[1 + 2 * MAX_FLOWS];
	struct ca *ca;
	struct signer *sg;
	struct certforge *cf;
	struct mitm_ctx *ctx;
	char err[512];
	socklen_t sl = sizeof(me);
	int lfd, next_id = 1, one = 1;

	if (argc < 4) {
		fprintf(stderr, "usage: %s STATE_DIR UPSTREAM_IPV4 PORT [--upstream-ca FILE] "
		    "[--insecure] [--aes]\n", argv[0]);
		return 2;
	}
	log_init("mitm_proxy", 1, LOG_LEVEL_WARN);
	/* Which AES-GCM the records use (LOCALCAP_AEAD=mbedtls forces ours off). */
	fprintf(stderr, "aes-gcm %s\n", aead_aes_gcm_impl());
	memset(&opt, 0, sizeof(opt));
	opt.session_cache_max = MITM_DEFAULT_SESSIONS;
	opt.ticket_lifetime = MITM_DEFAULT_TICKET_LIFETIME;
	for (int i = 4; i < argc; i++) {
		if (strcmp(argv[i], "--upstream-ca") == 0 && i + 1 < argc)
			opt.extra_ca_file = argv[++i];
		else if (strcmp(argv[i], "--insecure") == 0)
			opt.insecure = true;
		else if (strcmp(argv[i], "--aes") == 0)
			opt.cipher_pref = MITM_PREFER_AESGCM;
		else {
			fprintf(stderr, "unknown option %s\n", argv[i]);
			return 2;
		}
	}
	memset(&up, 0, sizeof(up));
	up.sin_family = AF_INET;
	up.sin_port = htons((uint16_t)atoi(argv[3]));
	if (inet_pton(AF_INET, argv[2], &up.sin_addr) != 1) {
		fprintf(stderr, "bad upstream address %s\n", argv[2]);
		return 2;
	}
	if (ca_open(argv[1], CA_LOAD_OR_CREATE, &ca, err, sizeof(err)) != 0) {
		fprintf(stderr, "ca: %s\n", err);
		return 1;
	}
	/* The CA key in a signer process, as in proxyd. */
	if ((sg = signer_spawn(ca, err, sizeof(err))) == NULL ||
	    (cf = certforge_new(sg, ca_cert(ca), CERTFORGE_DEFAULT_CACHE, 0, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "certforge: %s\n", err);
		return 1;
	}
	if ((ctx = mitm_ctx_new(&opt, cf, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mitm: %s\n", err);
		return 1;
	}

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	memset(&me, 0, sizeof(me));
	me.sin_family = AF_INET;
	me.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	(void)setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&me, sizeof(me)) != 0 ||
	    listen(lfd, 64) != 0 || getsockname(lfd, (struct sockaddr *)&me, &sl) != 0) {
		perror("listen");
		return 1;
	}
	printf("listening %u\n", ntohs(me.sin_port));
	fflush(stdout);

	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	signal(SIGPIPE, SIG_IGN);
	memset(flows, 0, sizeof(flows));
	for (int i = 0; i < MAX_FLOWS; i++)
		flows[i].fd[0] = flows[i].fd[1] = -1;

	while (!stop) {
		int n = 0, idx[MAX_FLOWS][2];

		pfd[n].fd = lfd;
		pfd[n++].events = POLLIN;
		for (int i = 0; i < MAX_FLOWS; i++) {
			struct flow *f = &flows[i];
			unsigned w;

			idx[i][0] = idx[i][1] = -1;
			if (f->m == NULL)
				continue;
			w = mitm_wants(f->m);
			for (int s = 0; s < 2; s++) {
				if (f->fd[s] < 0)
					continue;
				pfd[n].fd = f->fd[s];
				pfd[n].events = 0;
				if (s == MITM_UPSTREAM && f->connecting)
					pfd[n].events = POLLOUT;
				else {
					if ((w & MITM_WANT_READ(s)) && !f->eof[s])
						pfd[n].events |= POLLIN;
					if (w & MITM_WANT_WRITE(s))
						pfd[n].events |= POLLOUT;
				}
				idx[i][s] = n++;
			}
		}
		if (poll(pfd, (nfds_t)n, 1000) < 0) {
			if (errno == EINTR)
				continue;
			perror("poll");
			break;
		}
		if (pfd[0].revents & POLLIN) {
			int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			int slot = -1;

			for (int i = 0; i < MAX_FLOWS && cfd >= 0; i++)
				if (flows[i].m == NULL) {
					slot = i;
					break;
				}
			if (cfd >= 0 && slot < 0)
				close(cfd);
			if (cfd >= 0 && slot >= 0) {
				struct flow *f = &flows[slot];

				memset(f, 0, sizeof(*f));
				f->id = next_id++;
				f->fd[MITM_CLIENT] = cfd;
				f->m = mitm_new(ctx, (const unsigned char *)&up.sin_addr, 4,
				    ntohs(up.sin_port));
				f->fd[MITM_UPSTREAM] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
				    SOCK_CLOEXEC, 0);
				(void)setsockopt(f->fd[MITM_UPSTREAM], IPPROTO_TCP, TCP_NODELAY,
				    &one, sizeof(one));
				(void)setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				if (f->m == NULL || f->fd[MITM_UPSTREAM] < 0) {
					fprintf(stderr, "out of resources\n");
					return 1;
				}
				if (connect(f->fd[MITM_UPSTREAM], (struct sockaddr *)&up,
				    sizeof(up)) == 0 || errno == EINPROGRESS)
					f->connecting = true;
				else {
					mitm_upstream_failed(f->m, strerror(errno));
					close(f->fd[MITM_UPSTREAM]);
					f->fd[MITM_UPSTREAM] = -1;
				}
			}
		}
		for (int i = 0; i < MAX_FLOWS; i++) {
			short rev[2] = { 0, 0 };

			if (flows[i].m == NULL)
				continue;
			for (int s = 0; s < 2; s++)
				if (idx[i][s] >= 0)
					rev[s] = pfd[idx[i][s]].revents;
			if (!service(&flows[i], rev))
				flow_close(&flows[i]);
		}
	}
	for (int i = 0; i < MAX_FLOWS; i++)
		if (flows[i].m != NULL)
			flow_close(&flows[i]);
	close(lfd);
	mitm_ctx_free(ctx);
	certforge_free(cf);
	signer_free(sg);
	ca_free(ca);
	return 0;
}
