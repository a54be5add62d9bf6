/*
 * localcap-host: the small app that carries the system extension (in
 * Contents/Library/SystemExtensions/) and is the only process macOS lets
 * install, configure and talk to it.  redirectord's macOS side (or a
 * person) runs it as a command:
 *
 *   localcap-host activate [--wait S]   install, or upgrade in place
 *   localcap-host deactivate [--wait S] uninstall the extension
 *   localcap-host enable [--flow-sock PATH] [--fail-closed] [--own-uid N]...
 *                        [SPEC]          configure and start the proxy
 *   localcap-host disable               stop it (the configuration stays)
 *   localcap-host remove                stop it and remove the configuration
 *   localcap-host spec SPEC             change the running proxy's spec
 *   localcap-host status
 *
 * Exit status: 0 done; 1 failed (one line says why); 2 usage; 3 still
 * waiting for the user's approval when --wait ran out (not a hang: mitmproxy
 * #7236/#7555 are activations that waited forever or timed out silently).
 *
 * Upgrades (mitmproxy #7495: the old extension kept running): activation
 * always answers .replace, and when it replaced a running extension the
 * proxy is restarted so that the new code carries the flows.
 *
 * Syntax-checked on Linux only (clang -fsyntax-only against ./stubs); it
 * has not run.
 */
#import <Foundation/Foundation.h>
#import <NetworkExtension/NetworkExtension.h>
#import <SystemExtensions/SystemExtensions.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_shim.h"

static double wait_seconds = 120;

static void
done(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3),
    noreturn));

static void
done(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(status == 0 ? stdout : stderr, fmt, ap);
	va_end(ap);
	fputc('\n', status == 0 ? stdout : stderr);
	exit(status);
}

/* OSSystemExtensionErrorCode values, with what to do about each. */
static const char *
sysext_advice(NSError *e)
{
	switch (e.code) {
	case 2:
		return "the app lacks the system-extension entitlement "
		    "(provisioning profile)";
	case 3:
		return "the app must be in /Applications to install its "
		    "extension: move localcap.app there and run it again";
	case 4:
		return "the extension is missing from the app bundle";
	case 8:
	case 9:
		return "the extension's code signature or notarization was "
		    "refused (see docs/macos.md, Troubleshooting)";
	case 10:
		return "the system's policy (MDM) forbids this extension";
	case 11:
		return "the request was cancelled";
	case 12:
		return "a newer request replaced this one: run it again";
	case 13:
		return "authorization required: run it as an administrator";
	default:
		return e.localizedDescription.UTF8String;
	}
}

@interface LCInstaller : NSObject <OSSystemExtensionRequestDelegate>
@property (assign) BOOL replaced;
@property (assign) BOOL activating;
@end

static void restart_if_running(void);

@implementation LCInstaller

- (OSSystemExtensionReplacementAction)request:(OSSystemExtensionRequest *)request
    actionForReplacingExtension:(OSSystemExtensionProperties *)existing
    withExtension:(OSSystemExtensionProperties *)ext
{
	(void)request;
	printf("replacing extension %s (%s) with %s (%s)\n",
	    existing.bundleShortVersion.UTF8String,
	    existing.bundleVersion.UTF8String,
	    ext.bundleShortVersion.UTF8String, ext.bundleVersion.UTF8String);
	self.replaced = YES;
	return OSSystemExtensionReplacementActionReplace;
}

- (void)requestNeedsUserApproval:(OSSystemExtensionRequest *)request
{
	(void)request;
	printf("waiting for approval: System Settings > General > Login Items "
	    "& Extensions > Network Extensions > localcap (up to %.0f s)\n",
	    wait_seconds);
	fflush(stdout);
}

- (void)request:(OSSystemExtensionRequest *)request
    didFinishWithResult:(OSSystemExtensionRequestResult)result
{
	(void)request;
	if (result == OSSystemExtensionRequestWillCompleteAfterReboot)
		done(0, "done; it takes effect after a restart");
	if (self.activating && self.replaced) {
		restart_if_running();
		return;
	}
	done(0, "done");
}

- (void)request:(OSSystemExtensionRequest *)request
    didFailWithError:(NSError *)error
{
	(void)request;
	done(1, "localcap-host: %s (OSSystemExtensionError %ld)",
	    sysext_advice(error), (long)error.code);
}

@end

static LCInstaller *installer;

static void
submit(BOOL activate)
{
	NSString *ident = @LC_EXTENSION_ID;
	OSSystemExtensionRequest *req = activate ?
	    [OSSystemExtensionRequest activationRequestForExtension:ident
	    queue:dispatch_get_main_queue()] :
	    [OSSystemExtensionRequest deactivationRequestForExtension:ident
	    queue:dispatch_get_main_queue()];

	installer = [LCInstaller new];
	installer.activating = activate;
	req.delegate = installer;
	[[OSSystemExtensionManager sharedManager] submitRequest:req];
	dispatch_after(dispatch_time(DISPATCH_TIME_NOW,
	    (int64_t)(wait_seconds * NSEC_PER_SEC)), dispatch_get_main_queue(), ^{
		done(3, "localcap-host: still not approved after %.0f s; approve "
		    "localcap in System Settings > General > Login Items & "
		    "Extensions, then run this again", wait_seconds);
	});
}

/* Our configuration: the first whose provider is our extension; others
 * (left by older versions) are removed, so exactly one remains. */
static void
with_manager(BOOL create, void (^then)(NETransparentProxyManager *m))
{
	[NETransparentProxyManager loadAllFromPreferencesWithCompletionHandler:
	    ^(NSArray<NETransparentProxyManager *> *all, NSError *err) {
		NETransparentProxyManager *mine = nil;

		if (err != nil)
			done(1, "localcap-host: loading configurations: %s",
			    err.localizedDescription.UTF8String);
		for (NSUInteger i = 0; i < all.count; i++) {
			NETransparentProxyManager *m = all[i];
			NETunnelProviderProtocol *p =
			    (NETunnelProviderProtocol *)m.protocolConfiguration;

			if (![p isKindOfClass:[NETunnelProviderProtocol class]] ||
			    ![p.providerBundleIdentifier
			    isEqualToString:@LC_EXTENSION_ID])
				continue;
			if (mine == nil)
				mine = m;
			else
				[m removeFromPreferencesWithCompletionHandler:nil];
		}
		if (mine == nil && create)
			mine = [NETransparentProxyManager new];
		if (mine == nil)
			done(1, "localcap-host: no localcap configuration (run "
			    "enable first)");
		then(mine);
	}];
}

static void
start_tunnel(NETransparentProxyManager *m)
{
	/* Load again before starting: a just-saved configuration is not
	 * startable until reloaded. */
	[m loadFromPreferencesWithCompletionHandler:^(NSError *err) {
		NSError *serr = nil;

		if (err != nil)
			done(1, "localcap-host: reloading: %s",
			    err.localizedDescription.UTF8String);
		if (![m.connection startVPNTunnelAndReturnError:&serr])
			done(1, "localcap-host: starting the proxy: %s",
			    serr.localizedDescription.UTF8String);
		done(0, "enabled");
	}];
}

static void
restart_if_running(void)
{
	with_manager(NO, ^(NETransparentProxyManager *m) {
		if (!m.enabled || m.connection.status == NEVPNStatusDisconnected)
			done(0, "done (the proxy was not running)");
		[m.connection stopVPNTunnel];
		/* The old provider stops; the new one starts in its place. */
		dispatch_after(dispatch_time(DISPATCH_TIME_NOW,
		    (int64_t)(2 * NSEC_PER_SEC)), dispatch_get_main_queue(), ^{
			start_tunnel(m);
		});
	});
}

static void
enable(NSString *sock, NSString *spec, BOOL failClosed, NSArray<NSNumber *> *uids)
{
	with_manager(YES, ^(NETransparentProxyManager *m) {
		NETunnelProviderProtocol *p = [NETunnelProviderProtocol new];

		p.providerBundleIdentifier = @LC_EXTENSION_ID;
		/* Required, though a transparent proxy has no server. */
		p.serverAddress = sock;
		p.providerConfiguration = @{
			@LC_CONF_FLOW_SOCK: sock,
			@LC_CONF_SPEC: spec,
			@LC_CONF_FAIL_CLOSED: @(failClosed),
			@LC_CONF_OWN_UIDS: uids,
		};
		m.protocolConfiguration = p;
		m.localizedDescription = @"localcap";
		m.enabled = YES;
		[m saveToPreferencesWithCompletionHandler:^(NSError *err) {
			if (err != nil)
				done(1, "localcap-host: saving the configuration: "
				    "%s", err.localizedDescription.UTF8String);
			start_tunnel(m);
		}];
	});
}

static void
usage(void)
{
	done(2, "usage: localcap-host activate|deactivate [--wait S]\n"
	    "       localcap-host enable [--flow-sock PATH] [--fail-closed] "
	    "[--own-uid N]... [SPEC]\n"
	    "       localcap-host disable|remove|status\n"
	    "       localcap-host spec SPEC");
}

int
main(int argc, char **argv)
{
	const char *cmd;
	int i;

	if (argc < 2)
		usage();
	cmd = argv[1];
	@autoreleasepool {
		if (strcmp(cmd, "activate") == 0 ||
		    strcmp(cmd, "deactivate") == 0) {
			if (argc == 4 && strcmp(argv[2], "--wait") == 0)
				wait_seconds = atof(argv[3]);
			else if (argc != 2)
				usage();
			submit(strcmp(cmd, "activate") == 0);
		} else if (strcmp(cmd, "enable") == 0) {
			NSString *sock = @LC_DEFAULT_FLOW_SOCK, *spec = @"";
			NSArray<NSNumber *> *uids = @[];
			BOOL failClosed = NO;

			for (i = 2; i < argc; i++) {
				if (strcmp(argv[i], "--flow-sock") == 0 &&
				    i + 1 < argc)
					sock = [NSString
					    stringWithUTF8String:argv[++i]];
				else if (strcmp(argv[i], "--fail-closed") == 0)
					failClosed = YES;
				else if (strcmp(argv[i], "--own-uid") == 0 &&
				    i + 1 < argc) {
					NSNumber *u = @((unsigned)strtoul(
					    argv[++i], NULL, 10));

					uids = uids.count == 0 ? @[ u ] :
					    @[ uids[0], u ];
				} else if (argv[i][0] != '-' && i == argc - 1)
					spec = [NSString
					    stringWithUTF8String:argv[i]];
				else
					usage();
			}
			enable(sock, spec, failClosed, uids);
		} else if (strcmp(cmd, "disable") == 0 ||
		    strcmp(cmd, "remove") == 0) {
			BOOL rm = strcmp(cmd, "remove") == 0;

			with_manager(NO, ^(NETransparentProxyManager *m) {
				[m.connection stopVPNTunnel];
				if (rm) {
					[m removeFromPreferencesWithCompletionHandler:
					    ^(NSError *err) {
						if (err != nil)
							done(1, "localcap-host: %s",
							    err.localizedDescription.UTF8String);
						done(0, "removed");
					}];
					return;
				}
				m.enabled = NO;
				[m saveToPreferencesWithCompletionHandler:
				    ^(NSError *err) {
					if (err != nil)
						done(1, "localcap-host: %s",
						    err.localizedDescription.UTF8String);
					done(0, "disabled");
				}];
			});
		} else if (strcmp(cmd, "spec") == 0 && argc == 3) {
			const char *text = argv[2];

			with_manager(NO, ^(NETransparentProxyManager *m) {
				NETunnelProviderSession *s =
				    (NETunnelProviderSession *)m.connection;
				NSError *err = nil;

				if (![s sendProviderMessage:[NSData dataWithBytes:text
				    length:strlen(text)] returnError:&err
				    responseHandler:^(NSData *reply) {
					NSUInteger n = reply.length;

					if (n == 2 && memcmp(reply.bytes, "ok", 2) == 0)
						done(0, "spec set");
					done(1, "localcap-host: %.*s", (int)n,
					    (const char *)reply.bytes);
				}])
					done(1, "localcap-host: the proxy is not "
					    "running: %s",
					    err.localizedDescription.UTF8String);
			});
		} else if (strcmp(cmd, "status") == 0) {
			with_manager(NO, ^(NETransparentProxyManager *m) {
				static const char *const names[] = {
					"invalid", "disconnected", "connecting",
					"connected", "reasserting",
					"disconnecting",
				};
				NEVPNStatus st = m.connection.status;

				done(0, "configuration %s, proxy %s",
				    m.enabled ? "enabled" : "disabled",
				    st >= 0 && st <= 5 ? names[st] : "unknown");
			});
		} else
			usage();
	}
	dispatch_main();
}
