/*
 * proxyd's record channel to its signer (proxyd/recchan.c), both kinds on
 * Linux: SOCK_SEQPACKET (Linux's) and the length-prefixed stream macOS
 * uses.  Records arrive whole and in order, a record larger than the
 * reader's buffer is reported by its size and not read, the peer closing
 * between records is 0, and on a stream a peer closing or stalling inside
 * a record is an error, not a short record.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "proxyd/recchan.h"

/* macOS (macos-extension/shim: make check) has no AF_UNIX SOCK_SEQPACKET. */
#if LC_PLAT_LINUX
static const enum recchan_kind kinds[] = { RECCHAN_SEQPACKET, RECCHAN_STREAM };
#else
static const enum recchan_kind kinds[] = { RECCHAN_STREAM };
#endif
#define NKINDS	(sizeof(kinds) / sizeof(kinds[0]))

static void
fill(unsigned char *p, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char)(i * 31 + seed);
}

static void
records_arrive_whole_and_in_order(void **state)
{
	static unsigned char out[32 * 1024], in[32 * 1024];
	const size_t sizes[] = { 1, 100, 4096, 30000, 7 };
	size_t k, i;
	int sv[2];

	(void)state;
	for (k = 0; k < NKINDS; k++) {
		assert_int_equal(recchan_pair(kinds[k], sv), 0);
		for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			fill(out, sizes[i], (unsigned)i);
			assert_int_equal(recchan_send(kinds[k], sv[0], out, sizes[i]), 0);
		}
		for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			fill(out, sizes[i], (unsigned)i);
			assert_int_equal(recchan_recv(kinds[k], sv[1], in, sizeof(in),
			    1000), (ssize_t)sizes[i]);
			assert_memory_equal(in, out, sizes[i]);
		}
		/* and back the other way */
		assert_int_equal(recchan_send(kinds[k], sv[1], "pong", 4), 0);
		assert_int_equal(recchan_recv(kinds[k], sv[0], in, sizeof(in), -1), 4);
		assert_memory_equal(in, "pong", 4);
		close(sv[0]);
		assert_int_equal(recchan_recv(kinds[k], sv[1], in, sizeof(in), 1000), 0);
		close(sv[1]);
	}
}

/* A stream record larger than the socket buffer: written in pieces by a
 * child while the parent reads, reassembled whole. */
static void
a_stream_record_larger_than_the_socket_buffer(void **state)
{
	const size_t n = 1024 * 1024;
	unsigned char *out = malloc(n), *in = malloc(n);
	int sv[2], st;
	pid_t pid;

	(void)state;
	assert_non_null(out);
	assert_non_null(in);
	fill(out, n, 9);
	assert_int_equal(recchan_pair(RECCHAN_STREAM, sv), 0);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		close(sv[1]);
		_exit(recchan_send(RECCHAN_STREAM, sv[0], out, n) == 0 ? 0 : 1);
	}
	close(sv[0]);
	assert_int_equal(recchan_recv(RECCHAN_STREAM, sv[1], in, n, 5000), (ssize_t)n);
	assert_memory_equal(in, out, n);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(sv[1]);
	free(out);
	free(in);
}

static void
an_oversized_record_is_reported_not_read(void **state)
{
	unsigned char out[100], in[10];
	size_t k;
	int sv[2];

	(void)state;
	memset(out, 'x', sizeof(out));
	for (k = 0; k < NKINDS; k++) {
		assert_int_equal(recchan_pair(kinds[k], sv), 0);
		assert_int_equal(recchan_send(kinds[k], sv[0], out, sizeof(out)), 0);
		assert_int_equal(recchan_recv(kinds[k], sv[1], in, sizeof(in), 1000), 100);
		close(sv[0]);
		close(sv[1]);
	}
}

static void
a_stream_header_past_the_limit_is_oversized(void **state)
{
	unsigned char hdr[4] = { 0xff, 0xff, 0xff, 0xff }, in[64];
	int sv[2];

	(void)state;
	assert_int_equal(recchan_pair(RECCHAN_STREAM, sv), 0);
	assert_int_equal(write(sv[0], hdr, 4), 4);
	assert_true(recchan_recv(RECCHAN_STREAM, sv[1], in, sizeof(in), 1000) >
	    (ssize_t)RECCHAN_STREAM_MAX);
	close(sv[0]);
	close(sv[1]);
	/* and nobody sends one */
	assert_int_equal(recchan_send(RECCHAN_STREAM, 0, in,
	    (size_t)RECCHAN_STREAM_MAX + 1), -1);
	assert_int_equal(errno, EMSGSIZE);
}

static void
a_stream_peer_closing_inside_a_record_is_an_error(void **state)
{
	const unsigned char partial[] = { 0, 0, 0, 10, 'a', 'b', 'c' };
	unsigned char in[64];
	int sv[2];

	(void)state;
	/* inside the body */
	assert_int_equal(recchan_pair(RECCHAN_STREAM, sv), 0);
	assert_int_equal(write(sv[0], partial, sizeof(partial)), (ssize_t)sizeof(partial));
	close(sv[0]);
	errno = 0;
	assert_int_equal(recchan_recv(RECCHAN_STREAM, sv[1], in, sizeof(in), 1000), -1);
	assert_int_equal(errno, EPROTO);
	close(sv[1]);
	/* inside the header */
	assert_int_equal(recchan_pair(RECCHAN_STREAM, sv), 0);
	assert_int_equal(write(sv[0], partial, 2), 2);
	close(sv[0]);
	errno = 0;
	assert_int_equal(recchan_recv(RECCHAN_STREAM, sv[1], in, sizeof(in), 1000), -1);
	assert_int_equal(errno, EPROTO);
	close(sv[1]);
}

static void
a_stream_peer_stalling_inside_a_record_times_out(void **state)
{
	const unsigned char partial[] = { 0, 0, 0, 10, 'a' };
	unsigned char in[64];
	struct timespec t0, t1;
	long ms;
	int sv[2];

	(void)state;
	assert_int_equal(recchan_pair(RECCHAN_STREAM, sv), 0);
	assert_int_equal(write(sv[0], partial, sizeof(partial)), (ssize_t)sizeof(partial));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	errno = 0;
	assert_int_equal(recchan_recv(RECCHAN_STREAM, sv[1], in, sizeof(in), 200), -1);
	assert_int_equal(errno, ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms >= 150 && ms < 3000);
	close(sv[0]);
	close(sv[1]);
}

static void
a_gone_peer_fails_the_send(void **state)
{
	size_t k;
	int sv[2];

	(void)state;
	signal(SIGPIPE, SIG_IGN);	/* as every daemon does */
	for (k = 0; k < NKINDS; k++) {
		assert_int_equal(recchan_pair(kinds[k], sv), 0);
		close(sv[1]);
		assert_int_equal(recchan_send(kinds[k], sv[0], "x", 1), -1);
		assert_true(errno == EPIPE || errno == ECONNRESET);
		close(sv[0]);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(records_arrive_whole_and_in_order),
		cmocka_unit_test(a_stream_record_larger_than_the_socket_buffer),
		cmocka_unit_test(an_oversized_record_is_reported_not_read),
		cmocka_unit_test(a_stream_header_past_the_limit_is_oversized),
		cmocka_unit_test(a_stream_peer_closing_inside_a_record_is_an_error),
		cmocka_unit_test(a_stream_peer_stalling_inside_a_record_times_out),
		cmocka_unit_test(a_gone_peer_fails_the_send),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
