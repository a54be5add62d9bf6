/*
 * The NETransparentProxyProvider: the thin Objective-C shim around the
 * portable core (../core/mx_core.h).  Everything that decides, buffers or
 * counts lives in the core, which is built and tested on Linux; this file
 * only translates between NetworkExtension's objects and the core's
 * function table (struct mx_platform), and is checked here with
 * `clang -fsyntax-only` against ../shim/stubs/ only.  It has not run.
 *
 * Threads.  The core runs on one thread of its own (an ev_run loop).
 * NetworkExtension calls us on its queues: handleNewFlow: asks the core's
 * thread-safe mx_core_decide() for its answer; everything else (the flow
 * itself, each completion) is posted to the core's loop with
 * mx_core_post().  The core calls the platform functions below on its
 * loop thread; NetworkExtension's flow methods may be called from any
 * thread.
 *
 * Completions that arrive after stopProxyWithReason: find no core (shim.core
 * is NULL, under shim.lock) and are dropped: the core has already released
 * their flows.
 *
 * Ownership.  Each intercepted flow is wrapped in an LCFlow, retained for
 * the core as its pflow (CFBridgingRetain) and released in plat_release,
 * which the core calls exactly once.
 */
#import <Foundation/Foundation.h>
#import <NetworkExtension/NetworkExtension.h>
#import <Security/Security.h>
#import <bsm/libbsm.h>
#import <libproc.h>
#import <os/log.h>

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "lc_shim.h"
#include "macos-extension/core/mx_core.h"

static os_log_t lc_log;

static void
lc_logf(os_log_type_t type, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
lc_logf(os_log_type_t type, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	os_log_with_type(lc_log, type, "%{public}s", line);
}

/* An NSError to the errno the core speaks; 0 for none. */
static int
errno_of(NSError *_Nullable e)
{
	if (e == nil)
		return 0;
	if ([e.domain isEqualToString:NSPOSIXErrorDomain] && e.code > 0)
		return (int)e.code;
	return ECONNABORTED;
}

static NSError *_Nullable
error_of(int err)
{
	if (err == 0)
		return nil;
	return [NSError errorWithDomain:NSPOSIXErrorDomain code:err
	    userInfo:nil];
}

/* "192.0.2.1" / "2001:db8::1" + "443" -> the core's endpoint. */
static struct mx_endpoint
endpoint_of(NWEndpoint *_Nullable ep)
{
	struct mx_endpoint m;
	NWHostEndpoint *h;
	NSInteger port;

	memset(&m, 0, sizeof(m));
	if (ep == nil || ![ep isKindOfClass:[NWHostEndpoint class]])
		return m;	/* family 0: the core leaves such a flow alone */
	h = (NWHostEndpoint *)ep;
	port = h.port.integerValue;
	if (port <= 0 || port > 65535 || h.hostname.UTF8String == NULL)
		return m;
	if (inet_pton(AF_INET, h.hostname.UTF8String, m.addr) == 1)
		m.family = 4;
	else if (inet_pton(AF_INET6, h.hostname.UTF8String, m.addr) == 1)
		m.family = 6;
	else
		return m;	/* a host name, not an address */
	m.port = (uint16_t)port;
	return m;
}

static NWHostEndpoint *
host_endpoint(const struct mx_endpoint *m)
{
	char host[INET6_ADDRSTRLEN];

	inet_ntop(m->family == 6 ? AF_INET6 : AF_INET, m->addr, host,
	    sizeof(host));
	return [NWHostEndpoint endpointWithHostname:
	    [NSString stringWithUTF8String:host]
	    port:[NSString stringWithFormat:@"%u", (unsigned)m->port]];
}

/* --- one intercepted flow ---------------------------------------------------------- */

@interface LCFlow : NSObject
@property (strong) NEAppProxyFlow *flow;
@property (assign) struct mx_flow *core_flow;
/* TCP: bytes NE gave beyond the core's credit, delivered next read. */
@property (strong, nullable) NSData *rest;
@property (assign) NSUInteger restOffset;
@end

@implementation LCFlow
@end

/* A completion on its way to the loop: what the core's entry point needs. */
enum ev_kind { EV_TAKE, EV_OPENED, EV_TCP_READ, EV_UDP_READ, EV_WRITTEN };

struct lc_event {
	enum ev_kind		 kind;
	void			*pflow;		/* EV_TAKE: +1 for the core */
	struct mx_flow		*f;
	int			 err;
	uint8_t			*data;		/* EV_TCP_READ; malloc'ed */
	size_t			 len;
	struct mx_dgram		*dgrams;	/* EV_UDP_READ; data inside */
	size_t			 ndgrams;
	struct mx_flow_meta	 meta;		/* EV_TAKE */
	struct mx_proc		 proc;
};

static void	event_free(struct lc_event *);

static void
run_event(struct mx_core *core, void *arg)
{
	struct lc_event *e = arg;

	switch (e->kind) {
	case EV_TAKE:
		mx_flow_take(core, e->pflow, &e->meta, &e->proc);
		break;
	case EV_OPENED:
		mx_flow_opened(e->f, e->err);
		break;
	case EV_TCP_READ:
		mx_tcp_read_done(e->f, e->data, e->len, e->err);
		break;
	case EV_UDP_READ:
		mx_udp_read_done(e->f, e->dgrams, e->ndgrams, e->err);
		break;
	case EV_WRITTEN:
		mx_write_done(e->f, e->err);
		break;
	}
	event_free(e);
}

/* The one core of this extension process, for completion handlers. */
static struct {
	pthread_mutex_t	 lock;
	struct mx_core	*core;		/* NULL: stopped */
} shim = { PTHREAD_MUTEX_INITIALIZER, NULL };

static void
event_free(struct lc_event *e)
{
	size_t i;

	for (i = 0; i < e->ndgrams; i++)
		free((void *)(uintptr_t)e->dgrams[i].data);
	free(e->dgrams);
	free(e->data);
	free(e);
}

static void
post(struct lc_event *e)
{
	int rc = -1;

	pthread_mutex_lock(&shim.lock);
	if (shim.core != NULL)
		rc = mx_core_post(shim.core, run_event, e);
	pthread_mutex_unlock(&shim.lock);
	if (rc == -1) {
		/* Stopped (the core released every flow), or out of memory. */
		if (e->pflow != NULL) {
			/* a flow we claimed and nobody will carry: refuse it */
			LCFlow *lf = CFBridgingRelease(e->pflow);

			[lf.flow closeReadWithError:error_of(ECONNABORTED)];
			[lf.flow closeWriteWithError:error_of(ECONNABORTED)];
		} else if (shim.core != NULL)
			lc_logf(OS_LOG_TYPE_FAULT, "out of memory: a completion "
			    "is lost");
		event_free(e);
	}
}

@interface LCProxyProvider : NETransparentProxyProvider
@end

@implementation LCProxyProvider {
	struct ev_loop	*_loop;
	struct mx_core	*_core;
	pthread_t	 _thread;
	BOOL		 _running;
	ev_async	 _stop;
}

static struct lc_event *
event_new(enum ev_kind kind, struct mx_flow *f, int err)
{
	struct lc_event *e = calloc(1, sizeof(*e));

	if (e == NULL)
		abort();	/* a completion must never be lost */
	e->kind = kind;
	e->f = f;
	e->err = err;
	return e;
}

/* --- the platform table: called on the core's loop thread ------------------------ */

static int
plat_proc_info(void *ctx, const uint8_t *token, size_t len, struct mx_proc *out)
{
	audit_token_t at;
	char path[PROC_PIDPATHINFO_MAXSIZE];
	SecCodeRef code = NULL;
	CFDictionaryRef info = NULL;
	NSData *tokenData;
	NSDictionary *attrs;

	(void)ctx;
	if (len != sizeof(at))
		return -1;
	memcpy(&at, token, sizeof(at));
	out->pid = (uint32_t)audit_token_to_pid(at);
	out->pidversion = (uint32_t)audit_token_to_pidversion(at);
	out->uid = (uint32_t)audit_token_to_euid(at);
	out->gid = (uint32_t)audit_token_to_egid(at);
	if (proc_pidpath((int)out->pid, path, sizeof(path)) > 0)
		snprintf(out->path, sizeof(out->path), "%s", path);

	/* The signature, from the audit token (not the pid, which may be
	 * reused by now): its identifier, and whether localcap's team
	 * signed it. */
	tokenData = [NSData dataWithBytes:token length:len];
	attrs = @{ (__bridge NSString *)kSecGuestAttributeAudit: tokenData };
	if (SecCodeCopyGuestWithAttributes(NULL,
	    (__bridge CFDictionaryRef)attrs, kSecCSDefaultFlags, &code) !=
	    errSecSuccess || code == NULL)
		return 0;
	if (SecCodeCopySigningInformation((SecStaticCodeRef)code,
	    kSecCSSigningInformation, &info) == errSecSuccess && info != NULL) {
		NSDictionary *d = (__bridge NSDictionary *)info;
		NSString *ident = d[(__bridge NSString *)kSecCodeInfoIdentifier];
		NSString *team = d[(__bridge NSString *)kSecCodeInfoTeamIdentifier];

		if (ident.UTF8String != NULL)
			snprintf(out->signing_id, sizeof(out->signing_id), "%s",
			    ident.UTF8String);
		/* The team is trusted only once the signature checks out. */
		if (strlen(LC_TEAM_ID) > 0 && team != nil &&
		    [team isEqualToString:@LC_TEAM_ID]) {
			SecRequirementRef req = NULL;
			NSString *text = @"anchor apple generic and "
			    "certificate leaf[subject.OU] = \"" LC_TEAM_ID "\"";

			if (SecRequirementCreateWithString(
			    (__bridge CFStringRef)text, kSecCSDefaultFlags,
			    &req) == errSecSuccess) {
				out->localcap_signed = SecCodeCheckValidity(code,
				    kSecCSDefaultFlags, req) == errSecSuccess;
				CFRelease(req);
			}
		}
		CFRelease(info);
	}
	CFRelease(code);
	return 0;
}

static LCFlow *
lcflow(void *pflow)
{
	return (__bridge LCFlow *)pflow;
}

static void
plat_open(void *ctx, void *pflow, struct mx_flow *f)
{
	LCFlow *lf = lcflow(pflow);

	(void)ctx;
	lf.core_flow = f;
	[lf.flow openWithLocalEndpoint:nil completionHandler:^(NSError *e) {
		post(event_new(EV_OPENED, f, errno_of(e)));
	}];
}

/* Hand the core at most max bytes of data from offset off; keep the rest. */
static void
deliver_tcp(LCFlow *lf, struct mx_flow *f,
    NSData *data, NSUInteger off, size_t max)
{
	struct lc_event *e = event_new(EV_TCP_READ, f, 0);
	NSUInteger n = data.length - off;

	if (n > max)
		n = max;
	if ((e->data = malloc(n > 0 ? n : 1)) == NULL)
		abort();
	memcpy(e->data, (const uint8_t *)data.bytes + off, n);
	e->len = n;
	if (off + n < data.length) {
		lf.rest = data;
		lf.restOffset = off + n;
	} else {
		lf.rest = nil;
		lf.restOffset = 0;
	}
	post(e);
}

static void
plat_read(void *ctx, void *pflow, size_t max)
{
	LCFlow *lf = lcflow(pflow);
	struct mx_flow *f = lf.core_flow;

	(void)ctx;
	if ([lf.flow isKindOfClass:[NEAppProxyTCPFlow class]]) {
		NEAppProxyTCPFlow *tcp = (NEAppProxyTCPFlow *)lf.flow;

		/* What NE gave beyond the credit last time comes first: the
		 * core's credit holds whatever NE's read size is. */
		if (lf.rest != nil) {
			deliver_tcp(lf, f, lf.rest, lf.restOffset, max);
			return;
		}
		[tcp readDataWithCompletionHandler:^(NSData *data, NSError *err) {
			if (err != nil || data == nil || data.length == 0) {
				/* EOF is empty data and no error */
				post(event_new(EV_TCP_READ, f,
				    err != nil ? errno_of(err) : 0));
				return;
			}
			deliver_tcp(lf, f, data, 0, max);
		}];
		return;
	}
	[(NEAppProxyUDPFlow *)lf.flow readDatagramsWithCompletionHandler:
	    ^(NSArray<NSData *> *dgrams, NSArray<NWEndpoint *> *eps,
	    NSError *err) {
		struct lc_event *e = event_new(EV_UDP_READ, f, errno_of(err));
		NSUInteger i, n = dgrams.count;

		/* No datagrams and no error: the socket is closed. */
		if (err == nil && n > 0) {
			if (n > MX_UDP_BATCH)
				n = MX_UDP_BATCH;
			if (eps.count < n)
				n = eps.count;
			if ((e->dgrams = calloc(n, sizeof(*e->dgrams))) == NULL)
				abort();
			for (i = 0; i < n; i++) {
				NSData *d = dgrams[i];
				void *copy = malloc(d.length > 0 ? d.length : 1);

				if (copy == NULL)
					abort();
				memcpy(copy, d.bytes, d.length);
				e->dgrams[i].data = copy;
				e->dgrams[i].len = d.length;
				e->dgrams[i].remote = endpoint_of(eps[i]);
			}
			e->ndgrams = n;
		}
		post(e);
	}];
}

static void
plat_write(void *ctx, void *pflow, const void *data, size_t len,
    const struct mx_endpoint *remote)
{
	LCFlow *lf = lcflow(pflow);
	struct mx_flow *f = lf.core_flow;
	NSData *d = [NSData dataWithBytes:data length:len];	/* a copy */

	if (remote == NULL) {
		[(NEAppProxyTCPFlow *)lf.flow writeData:d
		    withCompletionHandler:^(NSError *err) {
			post(event_new(EV_WRITTEN, f, errno_of(err)));
		}];
		return;
	}
	/* One datagram, from the remote it came from (the per-remote split
	 * is undone here, where the app's socket is). */
	[(NEAppProxyUDPFlow *)lf.flow writeDatagrams:@[ d ]
	    sentByEndpoints:@[ host_endpoint(remote) ]
	    completionHandler:^(NSError *err) {
		post(event_new(EV_WRITTEN, f, errno_of(err)));
	}];
}

static void
plat_shutdown(void *ctx, void *pflow, int how, int err)
{
	LCFlow *lf = lcflow(pflow);

	(void)ctx;
	if (how == MX_SHUT_RD)
		[lf.flow closeReadWithError:error_of(err)];
	else
		[lf.flow closeWriteWithError:error_of(err)];
}

static void
plat_release(void *ctx, void *pflow)
{
	(void)ctx;
	(void)CFBridgingRelease(pflow);
}

/* --- the core's thread ------------------------------------------------------------- */

static void
stop_loop(struct ev_loop *loop, ev_async *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

static void *
core_thread(void *arg)
{
	struct ev_loop *loop = arg;

	ev_run(loop, 0);
	return NULL;
}


- (void)startProxyWithOptions:(NSDictionary<NSString *, id> *)options
    completionHandler:(void (^)(NSError *error))completionHandler
{
	NETunnelProviderProtocol *proto =
	    (NETunnelProviderProtocol *)self.protocolConfiguration;
	NSDictionary<NSString *, id> *conf = proto.providerConfiguration;
	NSString *sock = conf[@LC_CONF_FLOW_SOCK];
	NSString *spec = conf[@LC_CONF_SPEC];
	NSNumber *failClosed = conf[@LC_CONF_FAIL_CLOSED];
	NSArray<NSNumber *> *uids = conf[@LC_CONF_OWN_UIDS];
	uint32_t own_uids[16];
	size_t nuids = 0;
	struct mx_config cfg;
	struct ispec_error err;
	NETransparentProxyNetworkSettings *settings;
	struct mx_platform plat = {
		.proc_info = plat_proc_info,
		.open = plat_open,
		.read = plat_read,
		.write = plat_write,
		.shutdown = plat_shutdown,
		.release = plat_release,
	};

	(void)options;
	lc_log = os_log_create(LC_EXTENSION_ID, "provider");
	for (NSUInteger i = 0; i < uids.count &&
	    nuids < sizeof(own_uids) / sizeof(own_uids[0]); i++)
		own_uids[nuids++] = uids[i].unsignedIntValue;
	memset(&cfg, 0, sizeof(cfg));
	cfg.flow_sock = sock.UTF8String != NULL ? sock.UTF8String :
	    LC_DEFAULT_FLOW_SOCK;
	cfg.fail_closed = failClosed.boolValue;
	cfg.own_uids = own_uids;
	cfg.n_own_uids = nuids;

	_loop = ev_loop_new(EVFLAG_AUTO);
	if (_loop == NULL) {
		completionHandler(error_of(ENOMEM));
		return;
	}
	if ((_core = mx_core_new(_loop, &plat, &cfg)) == NULL) {
		ev_loop_destroy(_loop);
		_loop = NULL;
		completionHandler(error_of(errno));
		return;
	}
	pthread_mutex_lock(&shim.lock);
	shim.core = _core;
	pthread_mutex_unlock(&shim.lock);
	/* An empty or refused spec intercepts nothing (and says why). */
	if (mx_core_set_spec(_core, spec.UTF8String, &err) == -1)
		lc_logf(OS_LOG_TYPE_ERROR, "%s", err.msg);
	ev_async_init(&_stop, stop_loop);
	ev_async_start(_loop, &_stop);
	if (pthread_create(&_thread, NULL, core_thread, _loop) != 0) {
		pthread_mutex_lock(&shim.lock);
		shim.core = NULL;
		pthread_mutex_unlock(&shim.lock);
		mx_core_free(_core);
		ev_loop_destroy(_loop);
		_core = NULL;
		_loop = NULL;
		completionHandler(error_of(EAGAIN));
		return;
	}
	_running = YES;

	/* Every outbound TCP and UDP flow of the machine comes to
	 * handleNewFlow:; the core decides which to keep. */
	settings = [[NETransparentProxyNetworkSettings alloc]
	    initWithTunnelRemoteAddress:@"127.0.0.1"];
	settings.includedNetworkRules = @[
		[[NENetworkRule alloc] initWithRemoteNetwork:nil remotePrefix:0
		    localNetwork:nil localPrefix:0
		    protocol:NENetworkRuleProtocolTCP
		    direction:NETrafficDirectionOutbound],
		[[NENetworkRule alloc] initWithRemoteNetwork:nil remotePrefix:0
		    localNetwork:nil localPrefix:0
		    protocol:NENetworkRuleProtocolUDP
		    direction:NETrafficDirectionOutbound],
	];
	[self setTunnelNetworkSettings:settings completionHandler:^(NSError *e) {
		if (e != nil)
			lc_logf(OS_LOG_TYPE_ERROR, "network settings refused: %s",
			    e.localizedDescription.UTF8String);
		completionHandler(e);
	}];
}

- (void)stopProxyWithReason:(NEProviderStopReason)reason
    completionHandler:(void (^)(void))completionHandler
{
	lc_logf(OS_LOG_TYPE_DEFAULT, "stopping (reason %ld)", (long)reason);
	if (_running) {
		/* Stop the loop, then end the core from here: its thread is
		 * gone, so nothing runs it concurrently.  Completions posted
		 * until now run first (mx_core_free drains them); later ones
		 * find no core. */
		ev_async_send(_loop, &_stop);
		pthread_join(_thread, NULL);
		pthread_mutex_lock(&shim.lock);
		shim.core = NULL;
		pthread_mutex_unlock(&shim.lock);
		mx_core_free(_core);
		ev_async_stop(_loop, &_stop);
		ev_loop_destroy(_loop);
		_core = NULL;
		_loop = NULL;
		_running = NO;
	}
	completionHandler();
}

/* The spec, from the host app (sendProviderMessage:, which only the app
 * that owns this configuration may call).  The reply is "ok" or the
 * refusal, naming the item and its offset. */
- (void)handleAppMessage:(NSData *)messageData
    completionHandler:(void (^)(NSData *responseData))completionHandler
{
	char text[ISPEC_MAX_TEXT + 1];
	struct ispec_error err;
	size_t n = messageData.length;
	const char *reply = "ok";

	if (n > ISPEC_MAX_TEXT)
		reply = "intercept spec: too long";
	else if (!_running)
		reply = "the proxy is not running";
	else {
		memcpy(text, messageData.bytes, n);
		text[n] = '\0';
		if (mx_core_set_spec(_core, text, &err) == -1)
			reply = err.msg;
	}
	if (completionHandler != nil)
		completionHandler([NSData dataWithBytes:reply
		    length:strlen(reply)]);
}

/* Yes, no or refuse, synchronously; the flow itself goes to the loop. */
- (BOOL)takeFlow:(NEAppProxyFlow *)flow meta:(struct mx_flow_meta *)m
{
	NSData *token = flow.metaData.sourceAppAuditToken;
	struct lc_event *e;
	struct mx_proc proc;
	LCFlow *lf;
	int rc;

	if (!_running || token == nil || token.length != MX_AUDIT_TOKEN_LEN)
		return NO;
	memcpy(m->audit_token, token.bytes, MX_AUDIT_TOKEN_LEN);
	rc = mx_core_decide(_core, m, &proc);
	if (rc == 0)
		return NO;	/* the system carries it, untouched */
	if (rc == -1) {
		/* fail-closed without proxyd: claim it and refuse it */
		[flow closeReadWithError:error_of(ECONNREFUSED)];
		[flow closeWriteWithError:error_of(ECONNREFUSED)];
		return YES;
	}
	lf = [LCFlow new];
	lf.flow = flow;
	e = event_new(EV_TAKE, NULL, 0);
	/* +1 for the core, until plat_release */
	e->pflow = (void *)(uintptr_t)CFBridgingRetain(lf);
	e->meta = *m;
	e->proc = proc;
	post(e);
	return YES;
}

- (BOOL)handleNewFlow:(NEAppProxyFlow *)flow
{
	struct mx_flow_meta m;

	memset(&m, 0, sizeof(m));
	if ([flow isKindOfClass:[NEAppProxyTCPFlow class]]) {
		m.transport = MX_TCP;
		m.remote = endpoint_of(((NEAppProxyTCPFlow *)flow).remoteEndpoint);
	} else if ([flow isKindOfClass:[NEAppProxyUDPFlow class]]) {
		/* macOS 10.15.4+ calls handleNewUDPFlow:initialRemoteEndpoint:
		 * instead; without a remote the first datagram names it. */
		m.transport = MX_UDP;
		m.local = endpoint_of(((NEAppProxyUDPFlow *)flow).localEndpoint);
	} else
		return NO;
	return [self takeFlow:flow meta:&m];
}

- (BOOL)handleNewUDPFlow:(NEAppProxyUDPFlow *)flow
    initialRemoteEndpoint:(NWEndpoint *)remoteEndpoint
{
	struct mx_flow_meta m;

	memset(&m, 0, sizeof(m));
	m.transport = MX_UDP;
	m.local = endpoint_of(flow.localEndpoint);
	m.remote = endpoint_of(remoteEndpoint);
	return [self takeFlow:flow meta:&m];
}

@end
