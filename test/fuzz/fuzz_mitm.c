/*
 * libFuzzer harness for the TLS interception engine (proxyd/mitm.c): both
 * of its peers are untrusted — the captured program and the server.  The
 * input is split in two at its first byte: the first part is what the
 * client sends, the rest what the "server" answers once the engine has
 * started its upstream handshake.  Whatever the bytes, the engine must
 * settle (no endless HANDSHAKING with nothing to do), never crash, and
 * free everything.  Seeds in test/fuzz/corpus/mitm/ start with real
 * ClientHellos (curl, openssl) so the upstream leg is reached.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <psa/crypto.h>

#include "log.h"
#include "proxyd/ca.h"
#include "proxyd/certforge.h"
#include "proxyd/mitm.h"
#include "proxyd/signer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct mitm_ctx *ctx;
static char dir[] = "/tmp/fuzz_mitm.XXXXXX";

/* The CA made for the run goes with it. */
static void
remove_dir(void)
{
	static const char *files[] = { CA_SECRET_FILE, CA_EXPORT_PEM_FILE,
	    CA_EXPORT_DER_FILE };
	char path[64];
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
}

static int
init(void)
{
	struct mitm_options o;
	struct certforge *cf;
	struct signer *signer;
	struct ca *ca;
	char err[512];

	log_init("fuzz_mitm", 1, LOG_LEVEL_WARN - 1);
	if (psa_crypto_init() != PSA_SUCCESS || mkdtemp(dir) == NULL ||
	    atexit(remove_dir) != 0 ||
	    ca_open(dir, CA_LOAD_OR_CREATE, &ca, err, sizeof(err)) != 0 ||
	    (signer = signer_new(ca)) == NULL ||
	    (cf = certforge_new(signer, ca_cert(ca), 16, 0, err, sizeof(err))) == NULL)
		return -1;
	memset(&o, 0, sizeof(o));
	o.system_ca_file = "";	/* trust nothing: no file reads per run */
	o.insecure = 1;		/* so random "servers" get as far as possible */
	o.session_cache_max = 4;
	o.ticket_lifetime = 600;
	if ((ctx = mitm_ctx_new(&o, cf, err, sizeof(err))) == NULL)
		return -1;
	return 0;
}

/* Feed one side as much as it takes; 1 if anything moved. */
static int
feed(struct mitm *m, enum mitm_side side, const uint8_t **p, size_t *n)
{
	size_t k;

	if (*n == 0)
		return 0;
	k = mitm_feed(m, side, *p, *n);
	*p += k;
	*n -= k;
	if (*n == 0)
		mitm_in_eof(m, side);
	return k > 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char dst[4] = { 10, 0, 0, 1 };
	const uint8_t *client, *server;
	size_t nclient, nserver, len, split;
	struct mitm *m;
	int rounds;

	if (ctx == NULL && init() == -1)
		abort();
	if (size < 1 || size > 65536)
		return 0;
	split = (size_t)data[0] * (size - 1) / 255;
	client = data + 1;
	nclient = split;
	server = client + split;
	nserver = size - 1 - split;
	if ((m = mitm_new(ctx, dst, sizeof(dst), 443)) == NULL)
		return 0;
	for (rounds = 0; rounds < 200; rounds++) {
		enum mitm_status st = mitm_step(m);
		int moved = 0;

		if (st == MITM_FAILED || st == MITM_UPSTREAM_FAILED ||
		    st == MITM_ESTABLISHED)
			break;
		/* Drain what the engine wants to send: nobody is listening. */
		while (mitm_out_peek(m, MITM_CLIENT, &len) && len) {
			mitm_out_consume(m, MITM_CLIENT, len);
			moved = 1;
		}
		while (mitm_out_peek(m, MITM_UPSTREAM, &len) && len) {
			mitm_out_consume(m, MITM_UPSTREAM, len);
			moved = 1;
		}
		moved |= feed(m, MITM_CLIENT, &client, &nclient);
		if (mitm_wants(m) & MITM_WANT_READ_UPSTREAM)
			moved |= feed(m, MITM_UPSTREAM, &server, &nserver);
		if (!moved && nclient == 0 && nserver == 0)
			break;
	}
	mitm_free(m);
	return 0;
}
