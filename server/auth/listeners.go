package auth

import (
	"context"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
)

// Listener is a set of consentd's API listeners.
type Listener uint8

const (
	// Internal is the internal API: --grpc-addr and --http-addr, the whole API
	// for API keys (TLS and mutual TLS when configured).
	Internal Listener = 1 << iota
	// Public is --public-addr: what a visitor's browser needs, with a subject
	// token or no credentials; never an API key, never client certificates.
	Public
)

// ListenerMetadataKey marks a call that came in through the public
// listener's REST gateway ("public"). The gateway sets it and drops any
// header a caller sends under this name; the authenticator refuses, as not
// found, what the public listener does not expose. A mark can only narrow
// what a call may do, never widen it.
const ListenerMetadataKey = "x-consentd-listener"

// ListenerPublic is ListenerMetadataKey's value on the public listener.
const ListenerPublic = "public"

// Listeners is the route table: which listeners expose each RPC of
// consent.v1.ConsentService. Every RPC is on the internal listener; the
// public one carries the calls of the SDK and of a person with their own
// subject token. An RPC missing here is on no listener (a test fails).
var Listeners = map[string]Listener{
	// A browser's first visit, the banner and its funnel, the IAB strings.
	consentv1.ConsentService_CreateVisitor_FullMethodName:       Internal | Public,
	consentv1.ConsentService_GetPolicy_FullMethodName:           Internal | Public,
	consentv1.ConsentService_RecordBannerEvent_FullMethodName:   Internal | Public,
	consentv1.ConsentService_GetConsent_FullMethodName:          Internal | Public,
	consentv1.ConsentService_UpdateConsent_FullMethodName:       Internal | Public,
	consentv1.ConsentService_WithdrawConsent_FullMethodName:     Internal | Public,
	consentv1.ConsentService_RecordAdSignals_FullMethodName:     Internal | Public,
	consentv1.ConsentService_RefreshSubjectToken_FullMethodName: Internal | Public,
	// A person's rights with their own token.
	consentv1.ConsentService_ListConsentEvents_FullMethodName: Internal | Public,
	consentv1.ConsentService_ExportSubject_FullMethodName:     Internal | Public,
	consentv1.ConsentService_EraseSubject_FullMethodName:      Internal | Public,

	// Services and the console only.
	consentv1.ConsentService_CheckConsent_FullMethodName:              Internal,
	consentv1.ConsentService_BatchCheckConsent_FullMethodName:         Internal,
	consentv1.ConsentService_FilterSubjects_FullMethodName:            Internal,
	consentv1.ConsentService_IssueSubjectToken_FullMethodName:         Internal,
	consentv1.ConsentService_RestrictProcessing_FullMethodName:        Internal,
	consentv1.ConsentService_LiftRestriction_FullMethodName:           Internal,
	consentv1.ConsentService_LinkSubjects_FullMethodName:              Internal,
	consentv1.ConsentService_MarkMinor_FullMethodName:                 Internal,
	consentv1.ConsentService_ConfirmGuardianConsent_FullMethodName:    Internal,
	consentv1.ConsentService_WatchConsentChanges_FullMethodName:       Internal,
	consentv1.ConsentService_AcknowledgeConsentChanges_FullMethodName: Internal,
	consentv1.ConsentService_CreateFeedConsumer_FullMethodName:        Internal,
	consentv1.ConsentService_ListFeedConsumers_FullMethodName:         Internal,
	consentv1.ConsentService_DeleteFeedConsumer_FullMethodName:        Internal,
	consentv1.ConsentService_GetCaller_FullMethodName:                 Internal,
	consentv1.ConsentService_GetConsentStats_FullMethodName:           Internal,
}

// OnPublic reports whether the public listener exposes the RPC (its full
// method name, /consent.v1.ConsentService/Name).
func OnPublic(method string) bool { return Listeners[method]&Public != 0 }

// fromPublicListener reports whether the call carries the public
// listener's mark.
func fromPublicListener(ctx context.Context) bool {
	for _, v := range metadata.ValueFromIncomingContext(ctx, ListenerMetadataKey) {
		if v == ListenerPublic {
			return true
		}
	}
	return false
}

// errNotOnThisListener answers, on the public listener, what it does not
// expose, as the HTTP route filter does: the path does not exist there.
func errNotOnThisListener(method string) error {
	return status.Errorf(codes.NotFound, "%s: not served on this listener", method[strings.LastIndex(method, "/")+1:])
}

// checkPublic refuses, on the public listener, an RPC it does not expose
// and any credential that is not a subject token (an API key, even an
// unknown one): API keys work on the internal listener only.
func checkPublic(ctx context.Context, method string) error {
	if !fromPublicListener(ctx) {
		return nil
	}
	if !OnPublic(method) {
		return errNotOnThisListener(method)
	}
	values := metadata.ValueFromIncomingContext(ctx, "authorization")
	for _, v := range values {
		if c, err := bearerCredential([]string{v}); err == nil && c != "" && !LooksLikeToken(c) {
			return errNotOnThisListener(method)
		}
	}
	return nil
}
