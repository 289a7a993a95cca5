package auth

import consentv1 "github.com/consentd/consentd/proto/consent/v1"

// Rule says who may call one RPC.
type Rule struct {
	// Public RPCs need no credentials (they are rate limited per client).
	Public bool
	// Scopes: an API key holding any of them may call (admin holds all).
	Scopes []Scope
	// Visitor: a subject token may call, for its own subject only.
	Visitor bool
}

// Rules is the access table of consent.v1.ConsentService. An RPC of the
// service that is missing here is refused to everyone: new RPCs fail closed.
var Rules = map[string]Rule{
	// The policy is what every visitor is shown: a browser's first visit
	// reads it with no credentials (public calls are rate limited per
	// client IP), alongside CreateVisitor.
	consentv1.ConsentService_GetPolicy_FullMethodName:           {Public: true, Scopes: AllScopes, Visitor: true},
	consentv1.ConsentService_GetConsent_FullMethodName:          {Scopes: []Scope{ScopeRead}, Visitor: true},
	consentv1.ConsentService_UpdateConsent_FullMethodName:       {Scopes: []Scope{ScopeWrite}, Visitor: true},
	consentv1.ConsentService_WithdrawConsent_FullMethodName:     {Scopes: []Scope{ScopeWrite}, Visitor: true},
	consentv1.ConsentService_CheckConsent_FullMethodName:        {Scopes: []Scope{ScopeCheck}},
	consentv1.ConsentService_BatchCheckConsent_FullMethodName:   {Scopes: []Scope{ScopeCheck}},
	consentv1.ConsentService_ListConsentEvents_FullMethodName:   {Scopes: []Scope{ScopeRights}, Visitor: true},
	consentv1.ConsentService_FilterSubjects_FullMethodName:      {Scopes: []Scope{ScopeCheck}},
	consentv1.ConsentService_CreateVisitor_FullMethodName:       {Public: true},
	consentv1.ConsentService_IssueSubjectToken_FullMethodName:   {Scopes: []Scope{ScopeToken}},
	consentv1.ConsentService_RefreshSubjectToken_FullMethodName: {Visitor: true},

	// Privacy rights. A person may export and erase their own data with their
	// token; restriction is an operator's answer to a formal request.
	consentv1.ConsentService_ExportSubject_FullMethodName:      {Scopes: []Scope{ScopeRights}, Visitor: true},
	consentv1.ConsentService_EraseSubject_FullMethodName:       {Scopes: []Scope{ScopeRights}, Visitor: true},
	consentv1.ConsentService_RestrictProcessing_FullMethodName: {Scopes: []Scope{ScopeRights}},
	consentv1.ConsentService_LiftRestriction_FullMethodName:    {Scopes: []Scope{ScopeRights}},

	// Linking and minors are done by the site's backend, which knows who
	// logged in and how old they are; a visitor must not unmark itself.
	consentv1.ConsentService_LinkSubjects_FullMethodName:           {Scopes: []Scope{ScopeWrite}},
	consentv1.ConsentService_MarkMinor_FullMethodName:              {Scopes: []Scope{ScopeWrite}},
	consentv1.ConsentService_ConfirmGuardianConsent_FullMethodName: {Scopes: []Scope{ScopeWrite}},

	// The change feed. Streams cannot be checked against a subject, so none
	// allows visitors. Deleting a consumer drops what it had not
	// acknowledged: admin only.
	consentv1.ConsentService_WatchConsentChanges_FullMethodName:       {Scopes: []Scope{ScopeWatch}},
	consentv1.ConsentService_AcknowledgeConsentChanges_FullMethodName: {Scopes: []Scope{ScopeWatch}},
	consentv1.ConsentService_CreateFeedConsumer_FullMethodName:        {Scopes: []Scope{ScopeWatch}},
	consentv1.ConsentService_ListFeedConsumers_FullMethodName:         {Scopes: []Scope{ScopeWatch}},
	consentv1.ConsentService_DeleteFeedConsumer_FullMethodName:        {Scopes: []Scope{ScopeAdmin}},

	// The console's calls. Any valid credentials may ask who they are. The
	// statistics are aggregates without subject ids, for whoever reads
	// consent or answers rights requests. The banner funnel is reported by
	// visitors' browsers anonymously (rate limited per client, like
	// CreateVisitor).
	consentv1.ConsentService_GetCaller_FullMethodName:         {Scopes: AllScopes, Visitor: true},
	consentv1.ConsentService_GetConsentStats_FullMethodName:   {Scopes: []Scope{ScopeRead, ScopeRights}},
	consentv1.ConsentService_RecordBannerEvent_FullMethodName: {Public: true},
	// The IAB strings a visitor's browser built from its decisions are a
	// write of the subject's record, like UpdateConsent.
	consentv1.ConsentService_RecordAdSignals_FullMethodName: {Scopes: []Scope{ScopeWrite}, Visitor: true},
}
