package app

import (
	"crypto/sha1"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/internal/redistest"
)

// With --history-retention a user's history goes after a while, and with it
// the link events; the user's data key keeps its linked visitors, so erasing
// the user still erases them.
func TestErasingAUserFindsItsVisitorsAfterItsHistoryExpired(t *testing.T) {
	redisSrv := redistest.Start(t)
	srv := start(t, redisSrv.URL(), func(c *config.Config) { c.HistoryRetention = time.Hour })
	const user = "hilde@example.com"
	visitor := createVisitor(t, srv).GetSubjectId()
	update(t, srv, visitor, map[string]bool{"analytics": true})
	must(srv.grpc.LinkSubjects(ctx(t), &consentv1.LinkSubjectsRequest{SubjectId: user, VisitorId: visitor})).ok(t)

	// The hour passes for the user's history (its TTL runs out: the same as
	// deleting it), not for the visitor's record, which lives 396 days.
	client := redisSrv.Client(t)
	history := client.Keys(ctx(t), "*:h:"+keyID(t, user)).Val()
	if len(history) != 1 || client.PTTL(ctx(t), history[0]).Val() <= 0 {
		t.Fatalf("the user's history %v has no retention TTL", history)
	}
	client.Del(ctx(t), history[0])

	erased := must(srv.grpc.EraseSubject(as(ctx(t), apiKeys["rights"]), &consentv1.EraseSubjectRequest{SubjectId: user, Reason: "ticket 9"})).ok(t)
	if !erased.GetErased() || erased.GetLinkedSubjectsErased() != 1 {
		t.Fatalf("erase = %v, want the user and its one visitor", erased)
	}
	got := must(srv.grpc.GetConsent(ctx(t), &consentv1.GetConsentRequest{SubjectId: visitor})).ok(t).GetConsent()
	if got.GetRevision() != 0 || got.GetLinked() {
		t.Errorf("the visitor after its user's erasure: %v", got)
	}
	if n := len(client.Keys(ctx(t), "*:s:"+keyID(t, visitor)).Val()); n != 0 {
		t.Errorf("the visitor's state is still stored")
	}
}

// Someone who can write to Redis but holds no key of the key file edits a
// subject's state or history: the export says the chain is not valid.
func TestExportReportsTamperingBySomeoneWithoutTheKeys(t *testing.T) {
	redisSrv := redistest.Start(t)
	srv := start(t, redisSrv.URL())
	client := redisSrv.Client(t)
	rights := as(ctx(t), apiKeys["rights"])

	// write gives a subject four revisions: ads granted, denied, granted,
	// denied; the last denial is what the tampering undoes.
	write := func(subject string) (state, history string) {
		for _, ads := range []bool{true, false, true, false} {
			must(srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: subject, Decisions: map[string]bool{"ads": ads}})).ok(t)
		}
		return onlyKeyLike(t, client, "*:s:"+keyID(t, subject)), onlyKeyLike(t, client, "*:h:"+keyID(t, subject))
	}
	exportChain := func(subject string) *consentv1.ChainVerification {
		return must(srv.grpc.ExportSubject(rights, &consentv1.ExportSubjectRequest{SubjectId: subject, Reason: "audit"})).ok(t).GetChain()
	}

	// A copy taken before the last write, and put back after it: state,
	// its tag and history together, all authentic. Only the change feed,
	// which still holds the last write, tells.
	t.Run("state and history put back together to an earlier copy", func(t *testing.T) {
		const subject = "rolled-back"
		for _, ads := range []bool{true, false, true} {
			must(srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: subject, Decisions: map[string]bool{"ads": ads}})).ok(t)
		}
		state, history := onlyKeyLike(t, client, "*:s:"+keyID(t, subject)), onlyKeyLike(t, client, "*:h:"+keyID(t, subject))
		savedState, savedHistory := client.Dump(ctx(t), state).Val(), client.Dump(ctx(t), history).Val()
		must(srv.grpc.WithdrawConsent(ctx(t), &consentv1.WithdrawConsentRequest{SubjectId: subject})).ok(t)
		client.RestoreReplace(ctx(t), state, 0, savedState)
		client.RestoreReplace(ctx(t), history, 0, savedHistory)
		if c := exportChain(subject); c.GetValid() || !strings.Contains(c.GetProblem(), "feed") {
			t.Errorf("after the rollback: %v, want not valid, from the feed", c)
		}
	})

	write("untouched")
	if c := exportChain("untouched"); !c.GetValid() || c.GetEventsChecked() != 5 {
		t.Fatalf("an untouched subject: %v, want valid, 5 events (4 writes and the export)", c)
	}
	for name, tamper := range map[string]func(state, history string){
		"a denial flipped to a grant with HSET": func(state, _ string) {
			v := client.HGet(ctx(t), state, "ads").Val()
			client.HSet(ctx(t), state, "ads", "g"+v[1:])
		},
		"the last event removed, the revision lowered and the decision before restored": func(state, history string) {
			client.RPop(ctx(t), history)
			v := client.HGet(ctx(t), state, "ads").Val() // "d|...|4": the denial of revision 4
			client.HSet(ctx(t), state, "_rev", "3", "ads", "g"+v[1:len(v)-1]+"3")
		},
		"an event edited and the unkeyed chain recomputed after it": func(_, history string) {
			events := client.LRange(ctx(t), history, 0, -1).Val()
			events[1] = strings.Replace(events[1], `"ads":"d"`, `"ads":"g"`, 1)
			prev := events[0][len(events[0])-42 : len(events[0])-2]
			for i := 1; i < len(events); i++ {
				events[i] = rehash(events[i], prev)
				prev = events[i][len(events[i])-42 : len(events[i])-2]
				client.LSet(ctx(t), history, int64(i), events[i])
			}
		},
		"the oldest events cut off": func(_, history string) {
			client.LTrim(ctx(t), history, 2, -1)
		},
		"the oldest events cut off and the rest rehashed as a chain that starts there": func(_, history string) {
			client.LTrim(ctx(t), history, 2, -1)
			prev := "" // as a history that expired and started again
			for i, e := range client.LRange(ctx(t), history, 0, -1).Val() {
				e = rehash(e, prev)
				prev = e[len(e)-42 : len(e)-2]
				client.LSet(ctx(t), history, int64(i), e)
			}
		},
		"an event in the middle deleted": func(_, history string) {
			client.LSet(ctx(t), history, 1, "x")
			client.LRem(ctx(t), history, 1, "x")
		},
	} {
		t.Run(name, func(t *testing.T) {
			subject := "tamper-" + strings.ReplaceAll(name[:12], " ", "-") + strconv.Itoa(len(name))
			state, history := write(subject)
			tamper(state, history)
			if c := exportChain(subject); c.GetValid() || c.GetProblem() == "" {
				t.Errorf("after tampering: %v, want not valid, with the problem", c)
			}
		})
	}
}

// rehash gives an event the hash of the unkeyed layout (sha1 of the event
// without its hash, followed by the previous hash), as anyone can.
func rehash(event, prev string) string {
	content := event[:len(event)-len(`,"h":"`)-40-len(`"}`)]
	sum := sha1.Sum([]byte(content + `,"prev":"` + prev + `"}`))
	return content + `,"h":"` + hex.EncodeToString(sum[:]) + `"}`
}

func onlyKeyLike(t *testing.T, client *redis.Client, pattern string) string {
	t.Helper()
	keys := client.Keys(ctx(t), pattern).Val()
	if len(keys) != 1 {
		t.Fatalf("keys like %s: %v", pattern, keys)
	}
	return keys[0]
}
