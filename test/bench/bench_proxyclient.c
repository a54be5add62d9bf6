/*
 * The client of the proxy benchmark (test/bench/proxy_bench.sh): HTTPS over
 * OpenSSL, straight to a TLS endpoint or through an explicit proxy's
 * CONNECT, so that the client is never the slow part of what it measures.
 * Not a test: it prints figures.
 *
 *   bench_proxyclient -m bulk|keepalive|connect -a ADDR:PORT [-x ADDR:PORT]
 *       [-C CAFILE] [-p PATH] [-t SECONDS] [-c CONNECTIONS] [-i VERIFY_IP] [-P]
 *
 *   -P  plain HTTP: no TLS at all (the capture benchmark's HTTP figures)
 *   -a  where the TLS connection goes: with -x, the CONNECT target (and the
 *       Host header); without, the address the client connects to
 *   -x  an explicit HTTP proxy: "CONNECT ADDR:PORT" first, then TLS inside
 *   -C  the CA the server's certificate must chain to (always verified,
 *       with the IP address -i, default 127.0.0.1, in its SAN)
 *   bulk       one connection per thread, GET PATH again and again until
 *              the time is up, counting body bytes (the large file)
 *   keepalive  one connection per thread, GET PATH (a small file) again and
 *              again, counting complete responses
 *   connect    a new TCP + (CONNECT) + full TLS handshake for each GET PATH,
 *              no session resumption, counting complete connections
 *
 * Prints one line: "secs=S bytes=B reqs=R conns=N errors=E".  Bounded:
 * every socket has a 5 s timeout and every loop ends at the deadline.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

enum mode { M_BULK, M_KEEPALIVE, M_CONNECT };

static enum mode mode;
static struct sockaddr_in tcp_to;	/* proxy, or the endpoint itself */
static const char *authority;		/* -a as given */
static int via_proxy;
static int plain;			/* -P: HTTP without TLS */
static const char *path = "/";
static const char *verify_ip = "127.0.0.1";
static double seconds = 4;
static double deadline;
static SSL_CTX *ctx;

static atomic_ullong total_bytes, total_reqs, total_conns, total_errors;
static atomic_int first_error_told;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
fail(const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "";

	atomic_fetch_add(&total_errors, 1);
	if (atomic_exchange(&first_error_told, 1))
		return;
	if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	fprintf(stderr, "bench_proxyclient: %s%s%s%s%s\n", what,
	    errno ? ": " : "", errno ? strerror(errno) : "", buf[0] ? ": " : "",
	    buf);
}

static int
parse_addr(const char *s, struct sockaddr_in *sin)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	long port;
	char *end;

	if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port <= 0 || port > 65535)
		return -1;
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &sin->sin_addr) == 1 ? 0 : -1;
}

/* Read until the end of an HTTP head; what came after it stays in buf. */
struct rbuf {
	char	data[16384];
	size_t	len;
};

static ssize_t
head_end(const struct rbuf *b)
{
	size_t i;

	for (i = 3; i < b->len; i++)
		if (memcmp(b->data + i - 3, "\r\n\r\n", 4) == 0)
			return (ssize_t)i + 1;
	return -1;
}

/* Content-Length of a response head, or -1. */
static long long
content_length(const char *head, size_t len)
{
	const char *p = head, *end = head + len;
	static const char name[] = "\ncontent-length:";

	for (; p + sizeof(name) - 1 < end; p++) {
		if (strncasecmp(p, name, sizeof(name) - 1) == 0) {
			char num[32];
			size_t n = 0;

			p += sizeof(name) - 1;
			while (p < end && *p == ' ')
				p++;
			while (p < end && *p >= '0' && *p <= '9' &&
			    n < sizeof(num) - 1)
				num[n++] = *p++;
			num[n] = '\0';
			return n ? atoll(num) : -1;
		}
	}
	return -1;
}

static int
tcp_open(void)
{
	struct timeval tv = { 5, 0 };
	int one = 1, fd;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&tcp_to, sizeof(tcp_to)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The proxy's answer to CONNECT: read its head byte by byte (it is short,
 * and nothing after it may be consumed: the TLS handshake follows). */
static int
proxy_connect(int fd)
{
	char req[256], head[1024];
	size_t n = 0;
	int len;

	len = snprintf(req, sizeof(req),
	    "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", authority, authority);
	if (len < 0 || (size_t)len >= sizeof(req) ||
	    write(fd, req, (size_t)len) != len)
		return -1;
	while (n < sizeof(head) - 1) {
		if (read(fd, head + n, 1) != 1)
			return -1;
		n++;
		if (n >= 4 && memcmp(head + n - 4, "\r\n\r\n", 4) == 0)
			break;
	}
	head[n] = '\0';
	if (strncmp(head, "HTTP/1.", 7) != 0 || strncmp(head + 8, " 200", 4) != 0)
		return -1;
	return 0;
}

static SSL *
tls_open(int *fdp)
{
	SSL *ssl;
	int fd;

	if ((fd = tcp_open()) == -1) {
		fail("connect");
		return NULL;
	}
	if (plain) {
		/* No TLS object: a dummy non-NULL marks the connection open. */
		*fdp = fd;
		return (SSL *)(void *)&plain;
	}
	if (via_proxy && proxy_connect(fd) == -1) {
		fail("CONNECT refused");
		close(fd);
		return NULL;
	}
	if ((ssl = SSL_new(ctx)) == NULL) {
		close(fd);
		return NULL;
	}
	X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), verify_ip);
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) != 1) {
		fail("TLS handshake");
		SSL_free(ssl);
		close(fd);
		return NULL;
	}
	*fdp = fd;
	return ssl;
}

static void
tls_close(SSL *ssl, int fd)
{
	if (plain) {
		close(fd);
		return;
	}
	SSL_shutdown(ssl);	/* our close_notify; no wait for theirs */
	SSL_free(ssl);
	close(fd);
}

/* One connection's bytes, through TLS unless -P. */
static int
io_write(SSL *ssl, int fd, const void *buf, int len)
{
	return plain ? (int)write(fd, buf, (size_t)len) : SSL_write(ssl, buf, len);
}

static int
io_read(SSL *ssl, int fd, void *buf, int len)
{
	return plain ? (int)read(fd, buf, (size_t)len) : SSL_read(ssl, buf, len);
}

/*
 * One GET; returns 0 when the whole response came (or, in bulk mode, when
 * the deadline fell in its body), -1 on an error.  *bytes gets the body.
 */
static int
get(SSL *ssl, int fd, int close_after, unsigned long long *bytes)
{
	char req[512];
	struct rbuf b;
	long long clen, got;
	ssize_t hend;
	int len, r;

	len = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n",
	    path, authority, close_after ? "Connection: close\r\n" : "");
	if (len < 0 || (size_t)len >= sizeof(req))
		return -1;
	if (io_write(ssl, fd, req, len) != len) {
		fail("write request");
		return -1;
	}
	b.len = 0;
	while ((hend = head_end(&b)) == -1) {
		if (b.len == sizeof(b.data)) {
			fail("response head too long");
			return -1;
		}
		if ((r = io_read(ssl, fd, b.data + b.len,
		    (int)(sizeof(b.data) - b.len))) <= 0) {
			fail("read response head");
			return -1;
		}
		b.len += (size_t)r;
	}
	if (strncmp(b.data, "HTTP/1.1 200", 12) != 0) {
		fail("status not 200");
		return -1;
	}
	if ((clen = content_length(b.data, (size_t)hend)) < 0) {
		fail("no Content-Length");
		return -1;
	}
	got = (long long)b.len - hend;
	if (got > clen) {
		fail("more than Content-Length");
		return -1;
	}
	while (got < clen) {
		char chunk[65536];
		long long want = clen - got;

		if (mode == M_BULK && now() >= deadline)
			break;
		if ((r = io_read(ssl, fd, chunk, want < (long long)sizeof(chunk) ?
		    (int)want : (int)sizeof(chunk))) <= 0) {
			fail("read response body");
			*bytes += (unsigned long long)got;
			return -1;
		}
		got += r;
	}
	*bytes += (unsigned long long)got;
	return 0;
}

static void *
worker(void *arg)
{
	unsigned long long bytes = 0, reqs = 0, conns = 0;
	SSL *ssl = NULL;
	int fd = -1;

	(void)arg;
	while (now() < deadline) {
		if (ssl == NULL) {
			if ((ssl = tls_open(&fd)) == NULL) {
				usleep(10000);	/* an error: do not spin */
				continue;
			}
			conns++;
		}
		if (get(ssl, fd, mode == M_CONNECT, &bytes) == 0)
			reqs++;
		else {
			tls_close(ssl, fd);
			ssl = NULL;
			continue;
		}
		if (mode == M_CONNECT) {
			tls_close(ssl, fd);
			ssl = NULL;
		}
	}
	if (ssl != NULL)
		tls_close(ssl, fd);
	atomic_fetch_add(&total_bytes, bytes);
	atomic_fetch_add(&total_reqs, reqs);
	atomic_fetch_add(&total_conns, conns);
	return NULL;
}

static void
usage(void)
{
	fprintf(stderr, "usage: bench_proxyclient -m bulk|keepalive|connect "
	    "-a ADDR:PORT [-x ADDR:PORT] [-C CAFILE] [-p PATH] [-t SECONDS] "
	    "[-c CONNECTIONS] [-i VERIFY_IP] [-P]\n");
	exit(2);
}

int
main(int argc, char *argv[])
{
	const char *cafile = NULL, *proxy = NULL, *m = NULL;
	pthread_t th[64];
	double start;
	int nthreads = 1, ch, i;

	while ((ch = getopt(argc, argv, "a:C:c:i:m:p:Pt:x:")) != -1) {
		switch (ch) {
		case 'a': authority = optarg; break;
		case 'C': cafile = optarg; break;
		case 'c': nthreads = atoi(optarg); break;
		case 'i': verify_ip = optarg; break;
		case 'm': m = optarg; break;
		case 'p': path = optarg; break;
		case 'P': plain = 1; break;
		case 't': seconds = atof(optarg); break;
		case 'x': proxy = optarg; break;
		default: usage();
		}
	}
	if (m == NULL || authority == NULL || nthreads < 1 || nthreads > 64 ||
	    !(seconds > 0 && seconds <= 600))
		usage();
	if (strcmp(m, "bulk") == 0)
		mode = M_BULK;
	else if (strcmp(m, "keepalive") == 0)
		mode = M_KEEPALIVE;
	else if (strcmp(m, "connect") == 0)
		mode = M_CONNECT;
	else
		usage();
	if (parse_addr(proxy != NULL ? proxy : authority, &tcp_to) == -1) {
		fprintf(stderr, "bench_proxyclient: want an IPv4 ADDR:PORT\n");
		return 2;
	}
	via_proxy = proxy != NULL;
	signal(SIGPIPE, SIG_IGN);	/* a peer that closes is an error, not our end */

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return 1;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (cafile != NULL && SSL_CTX_load_verify_locations(ctx, cafile,
	    NULL) != 1) {
		fprintf(stderr, "bench_proxyclient: cannot load %s\n", cafile);
		return 1;
	}
	/* Every connection a full handshake: no session reuse. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);

	start = now();
	deadline = start + seconds;
	for (i = 0; i < nthreads; i++)
		if (pthread_create(&th[i], NULL, worker, NULL) != 0)
			return 1;
	for (i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	printf("secs=%.3f bytes=%llu reqs=%llu conns=%llu errors=%llu\n",
	    now() - start, (unsigned long long)total_bytes,
	    (unsigned long long)total_reqs, (unsigned long long)total_conns,
	    (unsigned long long)total_errors);
	return 0;
}
