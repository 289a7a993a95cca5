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
	const (
		user      = "jane.roe@example.com"
		visitor   = "v_AAAAAAAAAAAAAAAAAAAAAA"
		client1   = "ua=Firefox/140 Jane-Roe-Laptop"
		guardian  = "Greta Guardian"
		reason    = "complaint by Jane Roe about mail"
		keptUser  = "kept.person@example.com"
		keptFacts = "ua=Safari/18 kept"
	)
	now := time.Unix(1_750_000_000, 0)
	ev := func(typ domain.EventType, src domain.Source) store.EventInfo {
		return store.EventInfo{Type: typ, Actor: "key:app", Source: src, PolicyVersion: "1", Channel: "rest"}
	}
	grant := func(p string, granted bool) map[string]domain.Decision {
		return map[string]domain.Decision{p: {Granted: granted, DecidedAt: now, Source: domain.SourceBanner, PolicyVersion: 1, Region: "DE"}}
	}
	minor := true
	writes := []store.Write{
		{SubjectID: visitor, Decisions: grant("ads", true), Region: "DE", Event: func() store.EventInfo {
			e := ev(domain.EventUpdate, domain.SourceBanner)
			e.Client = client1
			return e
		}()},
		{SubjectID: keptUser, Decisions: grant("ads", true), Event: func() store.EventInfo {
			e := ev(domain.EventUpdate, domain.SourceBanner)
			e.Client = keptFacts
			return e
		}()},
		{SubjectID: visitor, LinkTo: user, Event: func() store.EventInfo {
			e := ev(domain.EventLink, domain.SourceLink)
			e.Counterpart = user
			return e
		}()},
		{SubjectID: user, LinkedVisitor: visitor, Decisions: grant("ads", true), Event: func() store.EventInfo {
			e := ev(domain.EventLink, domain.SourceLink)
			e.Counterpart = visitor
			return e
		}()},
		{SubjectID: user, Restrict: &minor, Event: func() store.EventInfo {
			e := ev(domain.EventRestrict, domain.SourceAPI)
			e.Reason = reason
			return e
		}()},
		{SubjectID: user, Minor: &minor, Event: func() store.EventInfo {
			e := ev(domain.EventMinor, domain.SourceAPI)
			e.Minor = &minor
			return e
		}()},
		{SubjectID: user, GuardianConfirmed: true, Event: func() store.EventInfo {
			e := ev(domain.EventGuardian, domain.SourceAPI)
			e.Guardian = guardian
			return e
		}()},
		{SubjectID: user, Decisions: grant("ads", false), IdempotencyKey: "withdraw-1", Event: ev(domain.EventWithdraw, domain.SourceAPI)},
	}
	for i, w := range writes {
		w.Now = now.Add(time.Duration(i) * time.Second)
		if _, err := s.Write(ctx, w); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	// The data keys as they were: with them, what the erased left behind
	// opens; the point is that after the erasure they are nowhere.
	erasedKeys := map[string][]byte{} // handle -> key
	var wrappedKeys []string
	for _, name := range client.Keys(ctx, prefix+":*:k:*").Val() {
		handle := name[strings.LastIndex(name, ":")+1:]
		wrapped := client.Get(ctx, name).Val()
		plain, err := storetest.Sealer.Open(wrapped)
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
		if rec.S == user || rec.S == visitor {
			erasedKeys[handle] = rec.K
			wrappedKeys = append(wrappedKeys, wrapped)
		}
	}
	if len(erasedKeys) != 2 {
		t.Fatalf("%d data keys for the user and its visitor, want 2", len(erasedKeys))
	}

	res, err := s.Erase(ctx, store.Erasure{SubjectID: user, Actor: "key:privacy", Reason: "ticket 4711", Channel: "rest"})
	if err != nil || !res.Erased || len(res.LinkedVisitors) != 1 || res.LinkedVisitors[0] != visitor {
		t.Fatalf("Erase(user) = %+v, %v; want erased with its visitor", res, err)
	}
	if res, err := s.Erase(ctx, store.Erasure{SubjectID: visitor, Actor: "key:privacy", Channel: "rest"}); err != nil || !res.Erased {
		t.Fatalf("Erase(visitor) = %+v, %v", res, err)
	}

	// Every copy: a DUMP of every key, and the append-only file rewritten,
	// uncompressed, so that what they hold can be searched.
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
	all := copies.String()

	// What the kept subject wrote is there (the copies are real), and
	// nothing of the erased in the clear.
	if n := strings.Count(all, "*"); n == 0 {
		t.Fatal("no sealed values in the copies: they are not what the test thinks")
	}
	for _, plain := range []string{user, visitor, "Jane", "Roe", "Greta", "Firefox", "complaint"} {
		if strings.Contains(all, plain) {
			t.Errorf("the copies hold %q in the clear", plain)
		}
	}
	// The stream node still holds the erased's XDEL'd feed entries, sealed
	// with their data keys; the keys themselves are in no copy.
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
	// What the operator's key opens is only the erase notices' subject ids.
	opSealed := regexp.MustCompile(`storetest\.[A-Za-z0-9_-]{20,}`)
	for _, v := range opSealed.FindAllString(all, -1) {
		plain, err := storetest.Sealer.Open(v)
		if err != nil {
			continue
		}
		switch p := string(plain); {
		case p == user || p == visitor:
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
	notices := 0
	for _, e := range client.XRange(ctx, prefix+":{p0}:feed", "-", "+").Val() {
		if sub, err := storetest.Sealer.Open(e.Values["sub"].(string)); err == nil && (string(sub) == user || string(sub) == visitor) {
			notices++
		}
	}
	if notices != 2 {
		t.Errorf("%d erase notices, want 2 (the user's and its visitor's)", notices)
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
