/* Stub of the NetworkExtension API the shim uses (see ../README.md).
 * Signatures as in Apple's NetworkExtension documentation (macOS 11+). */
#ifndef LC_STUB_NETWORKEXTENSION_H
#define LC_STUB_NETWORKEXTENSION_H
#include <Foundation/Foundation.h>

NS_ASSUME_NONNULL_BEGIN

/* --- endpoints --- */
@interface NWEndpoint : NSObject
@end
@interface NWHostEndpoint : NWEndpoint
+ (instancetype)endpointWithHostname:(NSString *)hostname port:(NSString *)port;
@property (readonly) NSString *hostname;
@property (readonly) NSString *port;
@end

/* --- flows --- */
@interface NEFlowMetaData : NSObject
@property (readonly, nullable) NSData *sourceAppAuditToken;
@property (readonly) NSString *sourceAppSigningIdentifier;
@end

@interface NEAppProxyFlow : NSObject
- (void)openWithLocalEndpoint:(nullable NWHostEndpoint *)localEndpoint completionHandler:(void (^)(NSError * _Nullable error))completionHandler;
- (void)closeReadWithError:(nullable NSError *)error;
- (void)closeWriteWithError:(nullable NSError *)error;
@property (readonly) NEFlowMetaData *metaData;
@end

@interface NEAppProxyTCPFlow : NEAppProxyFlow
- (void)readDataWithCompletionHandler:(void (^)(NSData * _Nullable data, NSError * _Nullable error))completionHandler;
- (void)writeData:(NSData *)data withCompletionHandler:(void (^)(NSError * _Nullable error))completionHandler;
@property (readonly) NWEndpoint *remoteEndpoint;
@end

@interface NEAppProxyUDPFlow : NEAppProxyFlow
- (void)readDatagramsWithCompletionHandler:(void (^)(NSArray<NSData *> * _Nullable datagrams, NSArray<NWEndpoint *> * _Nullable remoteEndpoints, NSError * _Nullable error))completionHandler;
- (void)writeDatagrams:(NSArray<NSData *> *)datagrams sentByEndpoints:(NSArray<NWEndpoint *> *)remoteEndpoints completionHandler:(void (^)(NSError * _Nullable error))completionHandler;
@property (readonly, nullable) NWEndpoint *localEndpoint;
@end

/* --- settings --- */
typedef NS_ENUM(NSInteger, NENetworkRuleProtocol) {
	NENetworkRuleProtocolAny = 0,
	NENetworkRuleProtocolTCP = 1,
	NENetworkRuleProtocolUDP = 2,
};
typedef NS_ENUM(NSInteger, NETrafficDirection) {
	NETrafficDirectionAny = 0,
	NETrafficDirectionInbound = 1,
	NETrafficDirectionOutbound = 2,
};

@interface NENetworkRule : NSObject
- (instancetype)initWithRemoteNetwork:(nullable NWHostEndpoint *)remoteNetwork remotePrefix:(NSUInteger)remotePrefix localNetwork:(nullable NWHostEndpoint *)localNetwork localPrefix:(NSUInteger)localPrefix protocol:(NENetworkRuleProtocol)protocol direction:(NETrafficDirection)direction;
@end

@interface NETunnelNetworkSettings : NSObject
- (instancetype)initWithTunnelRemoteAddress:(NSString *)address;
@end

@interface NETransparentProxyNetworkSettings : NETunnelNetworkSettings
@property (copy, nullable) NSArray<NENetworkRule *> *includedNetworkRules;
@property (copy, nullable) NSArray<NENetworkRule *> *excludedNetworkRules;
@end

/* --- providers --- */
typedef NS_ENUM(NSInteger, NEProviderStopReason) {
	NEProviderStopReasonNone = 0,
	NEProviderStopReasonUserInitiated = 1,
	NEProviderStopReasonProviderFailed = 2,
};

@interface NEVPNProtocol : NSObject
@property (copy, nullable) NSString *serverAddress;
@end

@interface NETunnelProviderProtocol : NEVPNProtocol
@property (copy, nullable) NSDictionary<NSString *, id> *providerConfiguration;
@property (copy, nullable) NSString *providerBundleIdentifier;
@end

@interface NEProvider : NSObject
+ (void)startSystemExtensionMode;
@end

@interface NETunnelProvider : NEProvider
- (void)handleAppMessage:(NSData *)messageData completionHandler:(nullable void (^)(NSData * _Nullable responseData))completionHandler;
- (void)setTunnelNetworkSettings:(nullable NETunnelNetworkSettings *)tunnelNetworkSettings completionHandler:(nullable void (^)(NSError * _Nullable error))completionHandler;
@property (readonly) NEVPNProtocol *protocolConfiguration;
@end

@interface NEAppProxyProvider : NETunnelProvider
- (void)startProxyWithOptions:(nullable NSDictionary<NSString *, id> *)options completionHandler:(void (^)(NSError * _Nullable error))completionHandler;
- (void)stopProxyWithReason:(NEProviderStopReason)reason completionHandler:(void (^)(void))completionHandler;
- (void)cancelProxyWithError:(nullable NSError *)error;
- (BOOL)handleNewFlow:(NEAppProxyFlow *)flow;
- (BOOL)handleNewUDPFlow:(NEAppProxyUDPFlow *)flow initialRemoteEndpoint:(NWEndpoint *)remoteEndpoint;
@end

@interface NETransparentProxyProvider : NEAppProxyProvider
@end

/* --- the configuration, from the host app --- */
typedef NS_ENUM(NSInteger, NEVPNStatus) {
	NEVPNStatusInvalid = 0,
	NEVPNStatusDisconnected = 1,
	NEVPNStatusConnecting = 2,
	NEVPNStatusConnected = 3,
	NEVPNStatusReasserting = 4,
	NEVPNStatusDisconnecting = 5,
};

@interface NEVPNConnection : NSObject
- (BOOL)startVPNTunnelAndReturnError:(NSError **)error;
- (void)stopVPNTunnel;
@property (readonly) NEVPNStatus status;
@end

@interface NETunnelProviderSession : NEVPNConnection
- (BOOL)sendProviderMessage:(NSData *)messageData returnError:(NSError **)error responseHandler:(nullable void (^)(NSData * _Nullable responseData))responseHandler;
@end

@interface NEVPNManager : NSObject
- (void)loadFromPreferencesWithCompletionHandler:(void (^)(NSError * _Nullable error))completionHandler;
- (void)saveToPreferencesWithCompletionHandler:(nullable void (^)(NSError * _Nullable error))completionHandler;
- (void)removeFromPreferencesWithCompletionHandler:(nullable void (^)(NSError * _Nullable error))completionHandler;
@property (strong, nullable) NEVPNProtocol *protocolConfiguration;
@property (copy, nullable) NSString *localizedDescription;
@property (getter=isEnabled) BOOL enabled;
@property (readonly) NEVPNConnection *connection;
@end

@interface NETunnelProviderManager : NEVPNManager
+ (void)loadAllFromPreferencesWithCompletionHandler:(void (^)(NSArray<NETunnelProviderManager *> * _Nullable managers, NSError * _Nullable error))completionHandler;
@end

@interface NETransparentProxyManager : NEVPNManager
+ (void)loadAllFromPreferencesWithCompletionHandler:(void (^)(NSArray<NETransparentProxyManager *> * _Nullable managers, NSError * _Nullable error))completionHandler;
@end

NS_ASSUME_NONNULL_END
#endif
