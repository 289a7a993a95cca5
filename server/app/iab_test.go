package app

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/internal/redistest"
)

// The IAB test policy and vendor list (server/domain/testdata/iab): TCF in
// eea (DE, FR, ...) and uk with CMP id 300, functional -> TCF purpose 1,
// ads -> 2, 3, 4, 7 and special features 1, 2, analytics -> 5, 6, 8-11; GPP
// in us_opt_out (US, US-CA) with the usca state section.
const (
	iabPolicyPath = "../domain/testdata/iab/policy.yaml"
	iabGVLPath    = "../domain/testdata/iab/vendor-list.json"
)

// IAB strings made once with the IAB's own libraries (node, in a scratch
// folder: npm i @iabtechlabtcf/core@1.5.21 @iabgpp/cmpapi@3.2.0), from the
// test vendor list: TCModel with cmpId 300, cmpVersion 1,
// publisherCountryCode DE, isServiceSpecific, created 2026-12-01T12:00Z, then
// TCString.encode; GPP strings from CmpApi(300, 1) with setFieldValue on the
// sections named, then getGppString. (The same as in server/domain's tests.)
const (
	tcPurposes12 = "CQukyOAQukyOAEsABAENCWFgAMAAAAAAAAYgF5wAgAAgLzAAAAAA.IAAA.YAAAAAAAAAAA"         // consents to TCF purposes 1, 2; vendors 1, 755
	tcAll        = "CQukyOAQukyOAEsABAENCWFsAP_gAEPgAAYgF5wBIAAgAEAAoADIC8wAAAAA.IAAA.YAAAAAAAAAAA" // purposes 1-11, special features 1, 2
	tcSF1        = "CQukyOAQukyOAEsABAENCWFoAIAAAAAAAAYgAAAAAAAA.IAAA.YAAAAAAAAAAA"                 // purpose 1, special feature 1
	tcCmp301     = "CQukyOAQukyOAEtABAENCWFgAIAAAAAAAAYgAAAAAAAA.IAAA.YAAAAAAAAAAA"                 // CMP id 301, purpose 1
	gppUsnat     = "DBABLA~CVQVAAAAAACA.YA"                                                         // usnat, opted out of sale, sharing, targeted ads
	gppUsca      = "DBABBg~BUUAAACA.QA"                                                             // usca, opted out of sale and sharing
	gppUsnatUsca = "DBABrw~CAAgAAAAAACA.QA~BAgAAACA.QA"                                             // usnat and usca
	gppTcf       = "DBABMA~" + tcPurposes12                                                         // tcfeuv2 holding tcPurposes12
)

func startIAB(t *testing.T) *consentd {
	return start(t, redistest.Start(t).URL(), func(c *config.Config) { c.PolicyPath, c.GVLPath = iabPolicyPath, iabGVLPath })
}

func signalsCall(t *testing.T, srv *consentd, req *consentv1.RecordAdSignalsRequest) (*consentv1.Consent, error) {
	t.Helper()
	resp, err := srv.grpc.RecordAdSignals(ctx(t), req)
	return resp.GetConsent(), err
}

func wantField(t *testing.T, err error, code codes.Code, field string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), field+": ") {
		t.Errorf("error %v, want %v naming %s", err, code, field)
	}
}

func TestAdSignalsAreCheckedStoredAndReturnedWhileCurrent(t *testing.T) {
	srv := startIAB(t)
	update := func(subject, region string, decisions map[string]bool) int64 {
		t.Helper()
		c := must(srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: subject, Region: region, Decisions: decisions})).ok(t)
		return c.GetConsent().GetRevision()
	}
	rev := update("eva", "DE", map[string]bool{"functional": true, "ads": true, "analytics": false})

	// Bad input, each naming its field.
	for _, tc := range []struct {
		name  string
		req   *consentv1.RecordAdSignalsRequest
		code  codes.Code
		field string
	}{
		{"no region", &consentv1.RecordAdSignalsRequest{Revision: rev, TcString: tcPurposes12}, codes.InvalidArgument, "region"},
		{"a region without IAB signals", &consentv1.RecordAdSignalsRequest{Region: "JP", Revision: rev, TcString: tcPurposes12}, codes.InvalidArgument, "region"},
		{"no revision", &consentv1.RecordAdSignalsRequest{Region: "DE", TcString: tcPurposes12}, codes.InvalidArgument, "revision"},
		{"an old revision", &consentv1.RecordAdSignalsRequest{Region: "DE", Revision: rev - 1 + 2, TcString: tcPurposes12}, codes.Aborted, "revision"},
		{"no TC string in a TCF region", &consentv1.RecordAdSignalsRequest{Region: "DE", Revision: rev, GppString: gppTcf}, codes.InvalidArgument, "tc_string"},
		{"a TC string that is not base64url", &consentv1.RecordAdSignalsRequest{Region: "DE", Revision: rev, TcString: "CQuky+OAQ"}, codes.InvalidArgument, "tc_string"},
		{"a TC string too long", &consentv1.RecordAdSignalsRequest{Region: "DE", Revision: rev, TcString: strings.Repeat("A", 8193)}, codes.InvalidArgument, "tc_string"},
		{"a TC string of version 1", &consentv1.RecordAdSignalsRequest{Region: "DE", Revision: rev, TcString: "BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA"}, codes.InvalidArgument, "tc_string"},
		{"another CMP's TC string", &consentv1.RecordAdSignalsRequest{Region: "DE", Revision: rev, TcString: tcCmp301}, codes.InvalidArgument, "tc_string"},
		{"consent to a purpose denied", &consentv1.RecordAdSignalsRequest{Region: "DE", Revision: rev, TcString: tcAll}, codes.InvalidArgument, "tc_string"},
		{"a GPP string with the US section in a TCF region", &consentv1.RecordAdSignalsRequest{Region: "DE", Revision: rev, TcString: tcPurposes12, GppString: gppUsnat}, codes.InvalidArgument, "gpp_string"},
		{"a TC string in a GPP region", &consentv1.RecordAdSignalsRequest{Region: "US", Revision: rev, TcString: tcPurposes12, GppString: gppUsnat}, codes.InvalidArgument, "tc_string"},
		{"no GPP string in a GPP region", &consentv1.RecordAdSignalsRequest{Region: "US", Revision: rev}, codes.InvalidArgument, "gpp_string"},
		{"the national section for a listed state", &consentv1.RecordAdSignalsRequest{Region: "US-CA", Revision: rev, GppString: gppUsnat}, codes.InvalidArgument, "gpp_string"},
		{"two sections", &consentv1.RecordAdSignalsRequest{Region: "US-CA", Revision: rev, GppString: gppUsnatUsca}, codes.InvalidArgument, "gpp_string"},
		{"a GPP string whose header is not one", &consentv1.RecordAdSignalsRequest{Region: "US", Revision: rev, GppString: "CVQVAAAAAACA.YA"}, codes.InvalidArgument, "gpp_string"},
		{"a GPP string with a bad character", &consentv1.RecordAdSignalsRequest{Region: "US", Revision: rev, GppString: "DBABLA~CVQ|VAAAAAACA"}, codes.InvalidArgument, "gpp_string"},
		{"an idempotency key with a space", &consentv1.RecordAdSignalsRequest{Region: "DE", Revision: rev, TcString: tcPurposes12, IdempotencyKey: "a b"}, codes.InvalidArgument, "idempotency_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.SubjectId = "eva"
			_, err := signalsCall(t, srv, tc.req)
			wantField(t, err, tc.code, tc.field)
		})
	}
	// A special feature whose purpose is denied.
	rev2 := update("finn", "FR", map[string]bool{"functional": true, "ads": false})
	_, err := signalsCall(t, srv, &consentv1.RecordAdSignalsRequest{SubjectId: "finn", Region: "FR", Revision: rev2, TcString: tcSF1})
	wantField(t, err, codes.InvalidArgument, "tc_string")
	if err == nil || !strings.Contains(err.Error(), "special feature 1") {
		t.Errorf("special feature: %v", err)
	}

	// Good strings: stored, and returned as they came.
	c, err := signalsCall(t, srv, &consentv1.RecordAdSignalsRequest{SubjectId: "eva", Region: "DE", Revision: rev, TcString: tcPurposes12, GppString: gppTcf, IdempotencyKey: "sig-1"})
	if err != nil {
		t.Fatal(err)
	}
	sig := c.GetAdSignals()
	if c.GetRevision() != rev+1 || sig.GetRevision() != rev || sig.GetRegion() != "DE" || sig.GetTcString() != tcPurposes12 || sig.GetGppString() != gppTcf || sig.GetTime() == nil {
		t.Fatalf("after RecordAdSignals: revision %d, ad_signals %v", c.GetRevision(), sig)
	}
	// A retry with the same key answers the same, although the revision moved on.
	again, err := signalsCall(t, srv, &consentv1.RecordAdSignalsRequest{SubjectId: "eva", Region: "DE", Revision: rev, TcString: tcPurposes12, GppString: gppTcf, IdempotencyKey: "sig-1"})
	if err != nil || again.GetRevision() != rev+1 || again.GetAdSignals().GetTcString() != tcPurposes12 {
		t.Fatalf("retry: %v %v", again, err)
	}
	// The same signals again without a key: the revision moved on.
	if _, err := signalsCall(t, srv, &consentv1.RecordAdSignalsRequest{SubjectId: "eva", Region: "DE", Revision: rev, TcString: tcPurposes12}); status.Code(err) != codes.Aborted {
		t.Errorf("stale revision: %v, want ABORTED", err)
	}

	// GetConsent: for any code of the same scope (every TCF region), not for others.
	for region, want := range map[string]bool{"DE": true, "FR": true, "GB": true, "": true, "US": false, "JP": false} {
		got := must(srv.grpc.GetConsent(ctx(t), &consentv1.GetConsentRequest{SubjectId: "eva", Region: region})).ok(t).GetConsent().GetAdSignals()
		if (got != nil) != want || (got != nil && got.GetTcString() != tcPurposes12) {
			t.Errorf("GetConsent in %q: ad_signals %v, want present %v", region, got, want)
		}
	}
	// REST: the JSON the SDK and backends read.
	code, body, _ := srv.rest(t, "GET", "/v1/subjects/eva/consent?region=DE", "")
	if code != 200 || jsonPath(body, "consent.ad_signals.tc_string") != tcPurposes12 || jsonPath(body, "consent.ad_signals.revision") != "1" {
		t.Errorf("REST GetConsent: %d %v", code, body["consent"])
	}
	// Checks: only when asked.
	check := must(srv.grpc.CheckConsent(ctx(t), &consentv1.CheckConsentRequest{SubjectId: "eva", Purpose: "ads", Region: "DE"})).ok(t)
	if check.GetAdSignals() != nil || !check.GetAllowed() {
		t.Errorf("check without ad_signals: %v", check)
	}
	check = must(srv.grpc.CheckConsent(ctx(t), &consentv1.CheckConsentRequest{SubjectId: "eva", Purpose: "ads", Region: "DE", AdSignals: true})).ok(t)
	if check.GetAdSignals().GetTcString() != tcPurposes12 || check.GetAdSignals().GetGppString() != gppTcf {
		t.Errorf("check with ad_signals: %v", check)
	}
	batch := must(srv.grpc.BatchCheckConsent(ctx(t), &consentv1.BatchCheckConsentRequest{Checks: []*consentv1.ConsentCheck{
		{SubjectId: "eva", Purpose: "ads", Region: "DE", AdSignals: true},
		{SubjectId: "eva", Purpose: "ads", Region: "US", AdSignals: true},
		{SubjectId: "eva", Purpose: "ads", Region: "DE"},
	}})).ok(t).GetResults()
	if batch[0].GetAdSignals().GetTcString() != tcPurposes12 || batch[1].GetAdSignals() != nil || batch[2].GetAdSignals() != nil {
		t.Errorf("batch: %v", batch)
	}
	code, body, _ = srv.rest(t, "GET", "/v1/subjects/eva/purposes/ads:check?region=FR&ad_signals=true", "")
	if code != 200 || jsonPath(body, "ad_signals.tc_string") != tcPurposes12 {
		t.Errorf("REST check: %d %v", code, body)
	}

	// History, export and the hash chain.
	export := must(srv.grpc.ExportSubject(ctx(t), &consentv1.ExportSubjectRequest{SubjectId: "eva", Reason: "test"})).ok(t)
	var signals *consentv1.ConsentEvent
	for _, e := range export.GetEvents() {
		if e.GetType() == consentv1.EventType_EVENT_TYPE_SIGNALS {
			signals = e
		}
	}
	if signals == nil || signals.GetRevision() != rev+1 || signals.GetAdSignals().GetTcString() != tcPurposes12 ||
		signals.GetAdSignals().GetGppString() != gppTcf || signals.GetAdSignals().GetRevision() != rev || signals.GetAdSignals().GetRegion() != "DE" {
		t.Errorf("export's signals event: %v", signals)
	}
	if !export.GetChain().GetValid() {
		t.Errorf("chain: %v", export.GetChain())
	}
	// The signals event is no change: the change feed and the statistics do not see it (InFeed false).

	// A later decision makes the stored signals stale.
	update("eva", "DE", map[string]bool{"ads": false})
	if got := must(srv.grpc.GetConsent(ctx(t), &consentv1.GetConsentRequest{SubjectId: "eva", Region: "DE"})).ok(t).GetConsent().GetAdSignals(); got != nil {
		t.Errorf("after a later write: ad_signals %v", got)
	}
	if got := must(srv.grpc.CheckConsent(ctx(t), &consentv1.CheckConsentRequest{SubjectId: "eva", Purpose: "ads", Region: "DE", AdSignals: true})).ok(t).GetAdSignals(); got != nil {
		t.Errorf("check after a later write: ad_signals %v", got)
	}

	// GPP: the state section for a listed state, usnat for the rest.
	revUS := update("gus", "US-CA", map[string]bool{"ads": false})
	c, err = signalsCall(t, srv, &consentv1.RecordAdSignalsRequest{SubjectId: "gus", Region: "US-CA", Revision: revUS, GppString: gppUsca})
	if err != nil || c.GetAdSignals().GetGppString() != gppUsca {
		t.Fatalf("usca: %v %v", c, err)
	}
	for region, want := range map[string]bool{"US-CA": true, "US": false, "DE": false} {
		if got := must(srv.grpc.GetConsent(ctx(t), &consentv1.GetConsentRequest{SubjectId: "gus", Region: region})).ok(t).GetConsent().GetAdSignals(); (got != nil) != want {
			t.Errorf("gus in %s: ad_signals %v, want present %v", region, got, want)
		}
	}
	// Over REST, as the SDK sends them.
	revUS = update("hal", "US", map[string]bool{"ads": false})
	code, body, _ = srv.rest(t, "POST", "/v1/subjects/hal/consent:signals", `{"region":"US","revision":`+jsonInt(revUS)+`,"gpp_string":"`+gppUsnat+`"}`)
	if code != 200 || jsonPath(body, "consent.ad_signals.gpp_string") != gppUsnat || jsonPath(body, "consent.revision") != jsonInt(revUS+1) {
		t.Errorf("REST RecordAdSignals: %d %v", code, body)
	}
}

func jsonInt(v int64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// A visitor linked to a user: the signals land on the user's record, where
// its decisions are, like UpdateConsent's.
func TestAdSignalsOfALinkedVisitorLandOnTheUser(t *testing.T) {
	srv := startIAB(t)
	visitor := createVisitor(t, srv).GetSubjectId()
	must(srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: visitor, Region: "DE", Decisions: map[string]bool{"functional": true, "ads": true}})).ok(t)
	must(srv.grpc.LinkSubjects(ctx(t), &consentv1.LinkSubjectsRequest{SubjectId: "ida", VisitorId: visitor})).ok(t)
	user := must(srv.grpc.GetConsent(ctx(t), &consentv1.GetConsentRequest{SubjectId: "ida", Region: "DE"})).ok(t).GetConsent()
	c, err := signalsCall(t, srv, &consentv1.RecordAdSignalsRequest{SubjectId: visitor, Region: "DE", Revision: user.GetRevision(), TcString: tcPurposes12})
	if err != nil || !c.GetLinked() || c.GetRevision() != user.GetRevision()+1 {
		t.Fatalf("through the visitor: %v %v", c, err)
	}
	if got := must(srv.grpc.GetConsent(ctx(t), &consentv1.GetConsentRequest{SubjectId: "ida", Region: "DE"})).ok(t).GetConsent().GetAdSignals(); got.GetTcString() != tcPurposes12 {
		t.Errorf("the user's ad_signals: %v", got)
	}
}

func TestVendorListIsServedNarrowedAndConditional(t *testing.T) {
	srv := startIAB(t)
	code, raw, h := srv.restRaw(t, "GET", "/v1/iab/vendor-list.json", "", "Authorization", "")
	if code != 200 || h.Get("Cache-Control") != "no-cache" || h.Get("ETag") == "" || h.Get("Content-Type") != "application/json" {
		t.Fatalf("GET vendor list: %d %v", code, h)
	}
	var gvl struct {
		GVLSpecificationVersion int                        `json:"gvlSpecificationVersion"`
		VendorListVersion       int                        `json:"vendorListVersion"`
		Vendors                 map[string]json.RawMessage `json:"vendors"`
		Stacks                  map[string]json.RawMessage `json:"stacks"`
		Purposes                map[string]json.RawMessage `json:"purposes"`
	}
	if err := json.Unmarshal(raw, &gvl); err != nil {
		t.Fatal(err)
	}
	if gvl.GVLSpecificationVersion != 3 || gvl.VendorListVersion != 150 || len(gvl.Vendors) != 5 || gvl.Vendors["1000"] != nil || len(gvl.Purposes) != 11 || len(gvl.Stacks) == 0 {
		t.Errorf("served vendor list: %+v", gvl)
	}
	code, raw, _ = srv.restRaw(t, "GET", "/v1/iab/vendor-list.json", "", "Authorization", "", "If-None-Match", h.Get("ETag"))
	if code != http.StatusNotModified || len(raw) != 0 {
		t.Errorf("with its ETag: %d, %d bytes", code, len(raw))
	}
	// The policy says where it is.
	code, body, _ := srv.rest(t, "GET", "/v1/policy", "", "Authorization", "")
	if code != 200 || jsonPath(body, "policy.iab.tcf.vendor_list_url") != "/v1/iab/vendor-list.json" || jsonPath(body, "policy.iab.cmp_id") != "300" ||
		jsonPath(body, "policy.iab.gpp.state_sections") == "" || jsonPath(body, "policy.iab.tcf.purposes") == "" {
		t.Errorf("GET /v1/policy: %v", body["policy"])
	}

	// Without --gvl: a JSON 404.
	plain := start(t, redistest.Start(t).URL())
	if _, body, _ := plain.rest(t, "GET", "/v1/policy", "", "Authorization", ""); body["policy"] == nil || body["policy"].(map[string]any)["iab"] != nil {
		t.Errorf("a policy without an iab section: %v", body["policy"])
	}
	code, body, _ = plain.rest(t, "GET", "/v1/iab/vendor-list.json", "", "Authorization", "")
	if code != 404 || !strings.Contains(jsonPath(body, "message"), "--gvl") {
		t.Errorf("no vendor list: %d %v", code, body)
	}
}

func TestIABConfigurationMistakesStopTheStartAndKeepTheOldPolicyOnReload(t *testing.T) {
	redisURL := redistest.Start(t).URL()
	dir := t.TempDir()
	gvlRaw, err := os.ReadFile(iabGVLPath)
	if err != nil {
		t.Fatal(err)
	}
	policyRaw, err := os.ReadFile(iabPolicyPath)
	if err != nil {
		t.Fatal(err)
	}
	file := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	badGVL := file("bad-gvl.json", strings.Replace(string(gvlRaw), `"gvlSpecificationVersion": 3`, `"gvlSpecificationVersion": 2`, 1))
	notJSON := file("not.json", "{")
	unknownVendor := file("policy-vendor.yaml", strings.Replace(string(policyRaw), "vendors: [1, 2, 10, 25, 755]", "vendors: [1, 2, 10, 25, 756]", 1))
	noCMP := file("policy-nocmp.yaml", strings.Replace(string(policyRaw), "  cmp_id: 300\n", "", 1))
	for _, tc := range []struct {
		name        string
		policy, gvl string
		want        string
	}{
		{"TCF without a vendor list", iabPolicyPath, "", "needs the IAB's Global Vendor List: give its file with --gvl"},
		{"a vendor list of another version", iabPolicyPath, badGVL, "bad-gvl.json: gvlSpecificationVersion: must be 3"},
		{"a vendor list that is not JSON", iabPolicyPath, notJSON, "not.json: not a vendor list"},
		{"a policy vendor not in the list", unknownVendor, iabGVLPath, "policy-vendor.yaml: iab.tcf.vendors[4]: vendor 756 is not in the vendor list"},
		{"no CMP id", noCMP, iabGVLPath, "iab.cmp_id: required: TCF and GPP need the CMP id you registered with the IAB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, redisURL)
			cfg.PolicyPath, cfg.GVLPath = tc.policy, tc.gvl
			a, err := New(cfg, slog.New(slog.DiscardHandler))
			if err == nil {
				a.shutdown()
				t.Fatal("consentd started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
		})
	}

	// Reload: a bad vendor list, or a policy naming a vendor it lacks, keeps both in force.
	policyPath, gvlPath := file("policy.yaml", string(policyRaw)), file("gvl.json", string(gvlRaw))
	cfg := testConfig(t, redisURL)
	cfg.PolicyPath, cfg.GVLPath = policyPath, gvlPath
	a, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.shutdown() })
	before := a.policy.Load()
	file("gvl.json", "{")
	if err := a.ReloadPolicy(); err == nil || !strings.Contains(err.Error(), "gvl.json: not a vendor list") {
		t.Errorf("reload with a bad vendor list: %v", err)
	}
	file("gvl.json", string(gvlRaw))
	file("policy.yaml", strings.Replace(string(policyRaw), "vendors: [1, 2, 10, 25, 755]", "vendors: [1, 2, 10, 25, 756]", 1))
	if err := a.ReloadPolicy(); err == nil || !strings.Contains(err.Error(), "vendor 756 is not in the vendor list") {
		t.Errorf("reload with an unknown vendor: %v", err)
	}
	if a.policy.Load() != before || a.vendorList() == nil {
		t.Error("a failed reload changed the policy or the vendor list in force")
	}
	// A good reload with a new vendor list version takes both.
	file("policy.yaml", string(policyRaw))
	file("gvl.json", strings.Replace(string(gvlRaw), `"vendorListVersion": 150`, `"vendorListVersion": 151`, 1))
	if err := a.ReloadPolicy(); err != nil {
		t.Fatal(err)
	}
	if v := a.policy.Load().VendorList.VendorListVersion; v != 151 {
		t.Errorf("after reload: vendor list version %d", v)
	}
}
