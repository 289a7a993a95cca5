package storetest

import (
	"reflect"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

func testLinkedVisitor(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, _ := NewStore(t, client)
	write(t, s, store.Write{SubjectID: "user-1", Decisions: decisions(t0, "ads", false)})
	write(t, s, store.Write{SubjectID: visitorA, Decisions: decisions(t0, "ads", true, "analytics", true)})
	link(t, s, visitorA, "user-1")
	user := get(t, s, "user-1")

	own, err := s.GetOwn(ctx(t), visitorA)
	if err != nil || own.LinkedTo != "user-1" || !own.Decisions["analytics"].Granted {
		t.Fatalf("GetOwn(visitor) = %+v, %v", own, err)
	}
	followed := user
	followed.Linked = true
	if got := get(t, s, visitorA); !reflect.DeepEqual(got, followed) {
		t.Fatalf("Get(visitor) = %+v, want the user's record %+v", got, followed)
	}
	p, err := s.GetPurposes(ctx(t), visitorA, []string{"ads"})
	if err != nil || !p.Linked || p.Revision != user.Revision || p.Decisions["ads"].Granted {
		t.Fatalf("GetPurposes(visitor) = %+v, %v", p, err)
	}
	many, err := s.GetMany(ctx(t), []store.Lookup{{SubjectID: "user-1", Purposes: []string{"ads"}}, {SubjectID: visitorA, Purposes: []string{"ads"}}, {SubjectID: visitorB, Purposes: []string{"ads"}}})
	if err != nil || many[0].Linked || !many[1].Linked || many[1].Revision != user.Revision || many[2].Revision != 0 {
		t.Fatalf("GetMany = %+v, %v", many, err)
	}

	res := write(t, s, store.Write{SubjectID: visitorA, FollowLink: true, Decisions: decisions(t0, "analytics", false)})
	if !res.Record.Linked || res.Record.Revision != user.Revision+1 || res.Record.Decisions["analytics"].Granted {
		t.Fatalf("a following write = %+v, want it applied to the user", res.Record)
	}
	if again, _ := s.GetOwn(ctx(t), visitorA); again.Revision != own.Revision {
		t.Fatalf("the following write changed the visitor: %+v", again)
	}
	if res := write(t, s, store.Write{SubjectID: visitorA, Decisions: decisions(t0, "functional", true)}); res.Record.Linked || res.Record.Revision != own.Revision+1 {
		t.Fatalf("a write without FollowLink = %+v, want it applied to the visitor", res.Record)
	}
}

// Visitor ids have the form the service mints; retention treats them apart.
const (
	visitorA = "v_AAAAAAAAAAAAAAAAAAAAAA"
	visitorB = "v_BBBBBBBBBBBBBBBBBBBBBB"
)

// link links visitor to user the way the API does: the visitor's state
// points at the user and both get a link event.
func link(t testing.TB, s *store.Store, visitor, user string) {
	t.Helper()
	write(t, s, store.Write{SubjectID: visitor, LinkTo: user, Event: store.EventInfo{Type: domain.EventLink, Actor: "key:app", Source: domain.SourceLink, Counterpart: user}})
	write(t, s, store.Write{SubjectID: user, Event: store.EventInfo{Type: domain.EventLink, Actor: "key:app", Source: domain.SourceLink, Counterpart: visitor}})
}
