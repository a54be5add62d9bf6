/*
 * The system extension's entry point: hand the process to
 * NetworkExtension, which instantiates LCProxyProvider (named in
 * Extension-Info.plist, NEProviderClasses) when the host app enables the
 * configuration.  Syntax-checked on Linux only (see LCProxyProvider.m).
 */
#import <Foundation/Foundation.h>
#import <NetworkExtension/NetworkExtension.h>

int
main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	@autoreleasepool {
		[NEProvider startSystemExtensionMode];
	}
	dispatch_main();
}
