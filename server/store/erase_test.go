package store_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/internal/eventually"
	"github.com/consentd/consentd/server/internal/redistest"
	"github.com/consentd/consentd/server/store"
	"github.com/consentd/consentd/server/store/storetest"
)

// An erased person is unreadable in every copy Redis keeps: in the stream
// nodes that XDEL only marks, in a DUMP of every key and in the append-only
// file rewritten after the erasure. The one value left that opens is the
// erase notice's subject id, which downstream systems need in order to
// delete their copies (it is trimmed with the feed).
func TestErasureLeavesNothingThatOpens(t *testing.T) {
	srv := redistest.StartDurable(t)
	client := srv.Client(t)
	const prefix = "erasetest"
	// One partition: the erased and the kept share the stream and its nodes.
	s, err := store.New(client, store.Options{Prefix: prefix, HMACKey: storetest.HMACKey, Sealer: storetest.Sealer, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	writeErasedAndKept(t, s)
	// The data keys as they were: with them, what the erased left behind
	// opens; the point is that after the erasure they are nowhere.
	erasedKeys, wrappedKeys := erasedDataKeys(t, client, prefix)

	res, err := s.Erase(ctx, store.Erasure{SubjectID: erasedUser, Actor: "key:privacy", Reason: "ticket 4711", Channel: "rest"})
	if err != nil || !res.Erased || len(res.LinkedVisitors) != 1 || res.LinkedVisitors[0] != erasedVisitor {
		t.Fatalf("Erase(user) = %+v, %v; want erased with its visitor", res, err)
	}
	if res, err := s.Erase(ctx, store.Erasure{SubjectID: erasedVisitor, Actor: "key:privacy", Channel: "rest"}); err != nil || !res.Erased {
		t.Fatalf("Erase(visitor) = %+v, %v", res, err)
	}

	all := everyCopy(t, srv, client)
	checkNothingOfTheErasedOpens(t, all, erasedKeys, wrappedKeys)
	checkOperatorSealedOnlyInNotices(t, all)
	notices := 0
	for _, e := range client.XRange(ctx, prefix+":{p0}:feed", "-", "+").Val() {
		if sub, err := storetest.Sealer.Open(e.Values["sub"].(string)); err == nil && (string(sub) == erasedUser || string(sub) == erasedVisitor) {
			notices++
		}
	}
	if notices != 2 {
		t.Errorf("%d erase notices, want 2 (the user's and its visitor's)", notices)
	}
}

// The people of TestErasureLeavesNothingThatOpens: a user, its linked
// visitor and what they disclosed, erased; and a subject kept.
const (
	erasedUser     = "jane.roe@example.com"
	erasedVisitor  = "v_AAAAAAAAAAAAAAAAAAAAAA"
	erasedClient   = "ua=Firefox/140 Jane-Roe-Laptop"
	erasedGuardian = "Greta Guardian"
	erasedReason   = "complaint by Jane Roe about mail"
	keptUser       = "kept.person@example.com"
	keptFacts      = "ua=Safari/18 kept"
)

// writeErasedAndKept writes everything personal an event can hold (client
// facts, a link both ways, a reason, a guardian, an idempotency record) for
// the user and visitor to erase, and a write of the kept subject among them.
func writeErasedAndKept(t *testing.T, s *store.Store) {
	t.Helper()
	now := time.Unix(1_750_000_000, 0)
	ev := func(typ domain.EventType, src domain.Source, personal func(*store.EventInfo)) store.EventInfo {
		e := store.EventInfo{Type: typ, Actor: "key:app", Source: src, PolicyVersion: "1", Channel: "rest"}
		if personal != nil {
			personal(&e)
		}
		return e
	}
	grant := func(p string, granted bool) map[string]domain.Decision {
		return map[string]domain.Decision{p: {Granted: granted, DecidedAt: now, Source: domain.SourceBanner, PolicyVersion: 1, Region: "DE"}}
	}
	minor := true
	writes := []store.Write{
		{SubjectID: erasedVisitor, Decisions: grant("ads", true), Region: "DE",
			Event: ev(domain.EventUpdate, domain.SourceBanner, func(e *store.EventInfo) { e.Client = erasedClient })},
		{SubjectID: keptUser, Decisions: grant("ads", true),
			Event: ev(domain.EventUpdate, domain.SourceBanner, func(e *store.EventInfo) { e.Client = keptFacts })},
		{SubjectID: erasedVisitor, LinkTo: erasedUser,
			Event: ev(domain.EventLink, domain.SourceLink, func(e *store.EventInfo) { e.Counterpart = erasedUser })},
		{SubjectID: erasedUser, LinkedVisitor: erasedVisitor, Decisions: grant("ads", true),
			Event: ev(domain.EventLink, domain.SourceLink, func(e *store.EventInfo) { e.Counterpart = erasedVisitor })},
		{SubjectID: erasedUser, Restrict: &minor,
			Event: ev(domain.EventRestrict, domain.SourceAPI, func(e *store.EventInfo) { e.Reason = erasedReason })},
		{SubjectID: erasedUser, Minor: &minor,
			Event: ev(domain.EventMinor, domain.SourceAPI, func(e *store.EventInfo) { e.Minor = &minor })},
		{SubjectID: erasedUser, GuardianConfirmed: true,
			Event: ev(domain.EventGuardian, domain.SourceAPI, func(e *store.EventInfo) { e.Guardian = erasedGuardian })},
		{SubjectID: erasedUser, Decisions: grant("ads", false), IdempotencyKey: "withdraw-1", Event: ev(domain.EventWithdraw, domain.SourceAPI, nil)},
	}
	for i, w := range writes {
		w.Now = now.Add(time.Duration(i) * time.Second)
		if _, err := s.Write(t.Context(), w); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
}

// erasedDataKeys opens the stored data key records and returns the erased
// subjects' keys by handle, and their wrapped records.
func erasedDataKeys(t *testing.T, client *redis.Client, prefix string) (keys map[string][]byte, wrapped []string) {
	t.Helper()
	keys = map[string][]byte{}
	for _, name := range client.Keys(t.Context(), prefix+":*:k:*").Val() {
		handle := name[strings.LastIndex(name, ":")+1:]
		w := client.Get(t.Context(), name).Val()
		plain, err := storetest.Sealer.Open(w)
		if err != nil {
			t.Fatal(err)
		}
		var rec struct {
			K []byte `json:"k"`
			S string `json:"s"`
		}
		if err := json.Unmarshal(plain[len(handle)+1:], &rec); err != nil {
			t.Fatal(err)
		}
		if rec.S == erasedUser || rec.S == erasedVisitor {
			keys[handle] = rec.K
			wrapped = append(wrapped, w)
		}
	}
	if len(keys) != 2 {
		t.Fatalf("%d data keys for the user and its visitor, want 2", len(keys))
	}
	return keys, wrapped
}

// everyCopy is every copy Redis keeps, concatenated: a DUMP of every key,
// and the append-only file rewritten, uncompressed, so that what they hold
// can be searched.
func everyCopy(t *testing.T, srv *redistest.Server, client *redis.Client) string {
	t.Helper()
	ctx := t.Context()
	if err := client.ConfigSet(ctx, "rdbcompression", "no").Err(); err != nil {
		t.Fatal(err)
	}
	var copies bytes.Buffer
	for _, name := range client.Keys(ctx, "*").Val() {
		copies.WriteString(client.Dump(ctx, name).Val())
	}
	if err := client.BgRewriteAOF(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, "the AOF rewrite to finish", func() bool {
		info := client.Info(ctx, "persistence").Val()
		return strings.Contains(info, "aof_rewrite_in_progress:0") && strings.Contains(info, "aof_rewrite_scheduled:0")
	})
	files, _ := filepath.Glob(filepath.Join(srv.Dir(), "appendonlydir", "*"))
	if len(files) == 0 {
		t.Fatal("no append-only files")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		copies.Write(b)
	}
	return copies.String()
}

// checkNothingOfTheErasedOpens: what the kept subject wrote is in the copies
// (they are real), nothing of the erased is in the clear, and the erased
// data keys are in no copy, while values sealed with them are (the stream
// node still holds the XDEL'd feed entries).
func checkNothingOfTheErasedOpens(t *testing.T, all string, erasedKeys map[string][]byte, wrappedKeys []string) {
	t.Helper()
	if n := strings.Count(all, "*"); n == 0 {
		t.Fatal("no sealed values in the copies: they are not what the test thinks")
	}
	for _, plain := range []string{erasedUser, erasedVisitor, "Jane", "Roe", "Greta", "Firefox", "complaint"} {
		if strings.Contains(all, plain) {
			t.Errorf("the copies hold %q in the clear", plain)
		}
	}
	for handle := range erasedKeys {
		if strings.Contains(all, ":k:"+handle) {
			t.Errorf("the erased data key %s is still stored", handle)
		}
	}
	for _, wrapped := range wrappedKeys {
		if strings.Contains(all, wrapped) {
			t.Errorf("an erased data key's wrapped record is still in the copies")
		}
	}
	openable := 0
	dataSealed := regexp.MustCompile(`\*[A-Za-z0-9_-]{40,}`)
	for _, v := range dataSealed.FindAllString(all, -1) {
		for handle, key := range erasedKeys {
			if _, err := openData(key, handle, v); err == nil {
				openable++
			}
		}
	}
	if openable == 0 {
		t.Error("no value sealed with the erased data keys is left in the stream: the test no longer shows what shredding protects")
	}
}

// checkOperatorSealedOnlyInNotices: what the operator's key opens in the
// copies is only the erase notices' subject ids (and the kept subject's).
func checkOperatorSealedOnlyInNotices(t *testing.T, all string) {
	t.Helper()
	opSealed := regexp.MustCompile(`storetest\.[A-Za-z0-9_-]{20,}`)
	for _, v := range opSealed.FindAllString(all, -1) {
		plain, err := storetest.Sealer.Open(v)
		if err != nil {
			continue
		}
		switch p := string(plain); {
		case p == erasedUser || p == erasedVisitor:
			// the erase notices: their whole content is the id
			if !strings.Contains(all, `"t":"erase"`) {
				t.Errorf("%q opens outside an erase notice", p)
			}
		case p == keptUser || strings.HasPrefix(p, "{") || strings.Contains(p, "."):
			// the kept subject's, or a kept data key record
		default:
			t.Errorf("a value in the copies opens to %q", p)
		}
	}
}

// openData opens a value sealed with a data key: "*" and base64url of
// nonce|ciphertext|tag, AES-256-GCM with the handle as additional data.
func openData(key []byte, handle, sealed string) ([]byte, error) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(sealed, "*"))
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, err
	}
	return aead.Open(nil, nil, raw, []byte(handle))
}
