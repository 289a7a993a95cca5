package store

import (
	"reflect"
	"testing"
	"time"

	"github.com/consentd/consentd/server/domain"
)

// Stored events decode to the Event they record: history entries and
// change-feed entries ("ev") alike.
func TestDecodeEvent(t *testing.T) {
	granted, denied := true, false
	at := time.UnixMilli(1_750_000_000_000).UTC()
	for _, tc := range []struct {
		name, stored string
		want         Event
	}{
		{
			"current: update, type left out, channel letter, decisions before by position",
			`{"at":1750000000000,"a":"visitor","s":"p","pv":"v2","r":"DE","c":"r","n":{"ads":"d","analytics":"g","x":"g"},"rev":4,"o":"g-d","h":"aa"}`,
			Event{Revision: 4, At: at, Type: domain.EventUpdate, Actor: "visitor", Source: domain.SourcePreferenceCenter, PolicyVersion: "v2",
				Region: "DE", Channel: "rest", Hash: "aa",
				Changes: []Change{{Purpose: "ads", Old: &granted, New: false}, {Purpose: "analytics", New: true}, {Purpose: "x", Old: &denied, New: true}}},
		},
		{
			"current: no purpose decided before, no \"o\"",
			`{"t":"withdraw","at":1750000000000,"a":"key:app","s":"a","c":"g","g":true,"n":{"ads":"d"},"rev":1,"h":"bb"}`,
			Event{Revision: 1, At: at, Type: domain.EventWithdraw, Actor: "key:app", Source: domain.SourceAPI, Channel: "grpc", GPC: true, Hash: "bb",
				Changes: []Change{{Purpose: "ads", New: false}}},
		},
		{
			"current: a link event keeps its type spelled out (erase.lua looks for it)",
			`{"t":"link","at":1750000000000,"a":"key:app","s":"l","c":"g","n":{},"rev":2,"h":"cc"}`,
			Event{Revision: 2, At: at, Type: domain.EventLink, Actor: "key:app", Source: domain.SourceLink, Channel: "grpc", Hash: "cc"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeEvent(tc.stored, testSealer, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("decodeEvent =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}

	// Decisions before that do not line up with the purposes are corrupt,
	// not silently misattributed.
	if _, err := decodeEvent(`{"at":1,"s":"a","n":{"ads":"g","b":"g"},"rev":1,"o":"g","h":"aa"}`, testSealer, nil); err == nil {
		t.Error("an \"o\" shorter than the purposes decoded")
	}
}

// What eventHead writes reads back as it was given, for every event type and
// channel, including those written as letters or left out.
func TestEventHeadRoundTrip(t *testing.T) {
	minor := true
	for _, typ := range []domain.EventType{domain.EventUpdate, domain.EventWithdraw, domain.EventAccess, domain.EventExport, domain.EventRestrict, domain.EventLift, domain.EventLink, domain.EventMinor, domain.EventGuardian, domain.EventErase} {
		for _, channel := range []string{"grpc", "rest", "", "cli"} {
			head := eventHead{Type: typ, At: 1_750_000_000_123, Actor: "visitor", Source: "b", Channel: channel, Minor: &minor,
				New: map[string]string{"ads": "g"}}
			b, err := head.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			stored := string(b[:len(b)-1]) + `,"rev":1,"h":"aa"}`
			e, err := decodeEvent(stored, testSealer, nil)
			if err != nil {
				t.Fatalf("%s: %v", stored, err)
			}
			if e.Type != typ || e.Channel != channel || e.At != time.UnixMilli(head.At).UTC() || e.Minor == nil || !*e.Minor {
				t.Errorf("%s read back as type %q, channel %q, at %v", stored, e.Type, e.Channel, e.At)
			}
		}
	}
}
