package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/internal/redistest"
	"github.com/consentd/consentd/server/store"
	"github.com/consentd/consentd/server/store/storetest"
)

// subjectNames lists the state and history names under prefix.
func subjectNames(t *testing.T, c redis.UniversalClient, prefix string) []string {
	t.Helper()
	var names []string
	scan := func(ctx context.Context, node redis.Cmdable) error {
		iter := node.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			if k := iter.Val(); strings.Contains(k, ":s:") || strings.Contains(k, ":h:") {
				names = append(names, k)
			}
		}
		return iter.Err()
	}
	var err error
	if cluster, ok := c.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		err = cluster.ForEachMaster(t.Context(), func(ctx context.Context, m *redis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			return scan(ctx, m)
		})
	} else {
		err = scan(t.Context(), c)
	}
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// rekeyed writes subjects under the old HMAC key and returns the store of
// the rotation's step 2 (the new key active, the old one previous).
func rekeyed(t *testing.T, client redis.UniversalClient, subjects int) (*store.Store, string) {
	t.Helper()
	before, prefix := storetest.NewStore(t, client)
	for i := range subjects {
		writes(t, before, fmt.Sprintf("subject-%d", i), i%3+1)
	}
	return storetest.NewStoreOn(t, client, prefix, storetest.NewHMACKey, storetest.HMACKey), prefix
}

// underOldKey counts the state and history names that are the old key's.
func underOldKey(t *testing.T, client redis.UniversalClient, prefix string, subjects int) int {
	t.Helper()
	names := subjectNames(t, client, prefix)
	n := 0
	for i := range subjects {
		for _, kind := range []string{"s", "h"} {
			if slices.Contains(names, nameOf(prefix, storetest.HMACKey, fmt.Sprintf("subject-%d", i), kind)) {
				n++
			}
		}
	}
	return n
}

func rekeyAll(t *testing.T, s *store.Store, cursor string) store.RekeyReport {
	t.Helper()
	r, err := s.Rekey(t.Context(), store.ScanScope{All: true}, cursor, store.RekeyOptions{
		OnError: func(key string, err error) { t.Errorf("rekey %s: %v", key, err) }})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRekeyMovesEverySubjectOnceAndRunsTwiceHarmlessly(t *testing.T) {
	client := redistest.Start(t).Client(t)
	s, prefix := rekeyed(t, client, 30)
	writes(t, s, "subject-0", 1) // moved by a write already
	// (A SCAN may also meet a subject again under its new name: already
	// active.)
	if r := rekeyAll(t, s, ""); r.Moved != 29 || r.AlreadyActive < 1 || r.WithoutDataKey+r.Errors != 0 {
		t.Errorf("first run: %+v, want 29 moved and the one written already active", r)
	}
	if n := underOldKey(t, client, prefix, 30); n != 0 {
		t.Errorf("%d names left under the old key", n)
	}
	if r := rekeyAll(t, s, ""); r != (store.RekeyReport{AlreadyActive: 30}) {
		t.Errorf("second run: %+v, want all 30 already active", r)
	}
	// What moved reads and verifies with the old key gone from the key file.
	newOnly := storetest.NewStoreOn(t, client, prefix, storetest.NewHMACKey)
	var findings []store.Finding
	report, err := newOnly.Verify(t.Context(), store.ScanScope{All: true}, "", store.VerifyOptions{OnFinding: func(f store.Finding) { findings = append(findings, f) }})
	if err != nil || len(findings) != 0 || report.Verified != 30 {
		t.Errorf("verify after the rekey, old key removed: %+v, %v, %v", report, findings, err)
	}
}

// A subject written before data keys names no subject id: rekey counts it
// and leaves it.
func TestRekeyCountsSubjectsWithoutADataKey(t *testing.T) {
	client := redistest.Start(t).Client(t)
	s, prefix := rekeyed(t, client, 3)
	old := nameOf(prefix, storetest.HMACKey, "subject-1", "s")
	handle := client.HGet(t.Context(), old, "_dk").Val()
	client.HDel(t.Context(), old, "_dk", "_tag")
	client.Del(t.Context(), old[:strings.Index(old, "}:")+2]+"k:"+handle)
	if r := rekeyAll(t, s, ""); r != (store.RekeyReport{Moved: 2, WithoutDataKey: 1}) {
		t.Errorf("rekey: %+v, want 2 moved, 1 without a data key", r)
	}
	if client.Exists(t.Context(), old).Val() != 1 {
		t.Error("the subject without a data key moved")
	}
}

// A rekey stopped partway resumes from the last cursor it gave, and
// together the two runs move every subject.
func TestRekeyResumes(t *testing.T) {
	client := redistest.Start(t).Client(t)
	const subjects = 400 // more than one SCAN reply
	s, prefix := rekeyed(t, client, subjects)
	ctx, stop := context.WithCancel(t.Context())
	var cursor string
	first, err := s.Rekey(ctx, store.ScanScope{All: true}, "", store.RekeyOptions{OnProgress: func(c string, _ store.RekeyReport) {
		cursor = c
		stop()
	}})
	if !errors.Is(err, context.Canceled) || cursor == "" || first.Moved == 0 || first.Moved == subjects {
		t.Fatalf("stopped run: %+v, %v, cursor %q; want it stopped after one SCAN reply", first, err, cursor)
	}
	second := rekeyAll(t, s, cursor)
	if first.Moved+second.Moved != subjects {
		t.Errorf("runs moved %d and %d, want %d in all", first.Moved, second.Moved, subjects)
	}
	if n := underOldKey(t, client, prefix, subjects); n != 0 {
		t.Errorf("%d names left under the old key", n)
	}
	if _, err := s.Rekey(t.Context(), store.ScanScope{Partition: 1}, cursor, store.RekeyOptions{}); err == nil {
		t.Error("a cursor of another scope was taken")
	}
}

// A rekey alongside writers of the same subjects loses no write, and
// leaves each subject under exactly one name.
func TestRekeyUnderLiveWrites(t *testing.T) {
	for name, client := range map[string]redis.UniversalClient{
		"standalone": redistest.Start(t).Client(t),
		"cluster":    redistest.StartCluster(t).Client(t),
	} {
		t.Run(name, func(t *testing.T) {
			const subjects = 40
			s, prefix := rekeyed(t, client, subjects)
			acked := make([]atomic.Int64, subjects)
			for i := range subjects {
				acked[i].Store(int64(i%3 + 1))
			}
			done := make(chan struct{})
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Go(func() {
					for i := w; ; i += 4 {
						select {
						case <-done:
							return
						default:
						}
						id := i % subjects
						if _, err := s.Write(context.Background(), update(fmt.Sprintf("subject-%d", id), i%2 == 0)); err != nil {
							t.Errorf("write: %v", err)
							return
						}
						acked[id].Add(1)
					}
				})
			}
			// Writes move subjects too, so how many the rekey moves
			// depends on the race; what must hold is the end state.
			rekeyAll(t, s, "")
			close(done)
			wg.Wait()
			if n := underOldKey(t, client, prefix, subjects); n != 0 {
				t.Errorf("%d names left under the old key", n)
			}
			if names := subjectNames(t, client, prefix); len(names) != 2*subjects {
				t.Errorf("%d state and history names for %d subjects", len(names), subjects)
			}
			for i := range subjects {
				id := fmt.Sprintf("subject-%d", i)
				rec, err := s.Get(t.Context(), id)
				if err != nil || rec.Revision != acked[i].Load() {
					t.Errorf("%s at revision %d (%v), want %d acknowledged writes", id, rec.Revision, err, acked[i].Load())
				}
			}
			var findings []store.Finding
			if _, err := s.Verify(t.Context(), store.ScanScope{All: true}, "", store.VerifyOptions{OnFinding: func(f store.Finding) { findings = append(findings, f) }}); err != nil || len(findings) != 0 {
				t.Errorf("verify after the rekey: %v, %v", findings, err)
			}
		})
	}
}

// A verification stopped at any cursor it gave and resumed from it finds
// what a whole run finds.
func TestVerifyResumesFromEveryCursor(t *testing.T) {
	client := redistest.Start(t).Client(t)
	s, prefix := storetest.NewStore(t, client)
	for i := range 300 {
		writes(t, s, fmt.Sprintf("subject-%d", i), 1)
	}
	// One subject's state tampered with, one's feed entry forged.
	state := nameOf(prefix, storetest.HMACKey, "subject-7", "s")
	client.HSet(t.Context(), state, "ads", "d|1750000000|0|a|1||1")
	feed := fmt.Sprintf("%s:{p%d}:feed", prefix, s.PartitionOf("subject-9"))
	entry := client.XRange(t.Context(), feed, "-", "+").Val()[0]
	client.XAdd(t.Context(), &redis.XAddArgs{Stream: feed, Values: []string{"d", entry.Values["d"].(string), "sub", entry.Values["sub"].(string),
		"rev", "2", "p", "", "ev", strings.Replace(entry.Values["ev"].(string), `"rev":1`, `"rev":2`, 1)}})

	type step struct {
		cursor string
		found  int
	}
	var steps []step
	var found []store.Finding
	whole, err := s.Verify(t.Context(), store.ScanScope{All: true}, "", store.VerifyOptions{
		OnFinding:  func(f store.Finding) { found = append(found, f) },
		OnProgress: func(c string, _ store.VerifyReport) { steps = append(steps, step{c, len(found)}) },
	})
	if err != nil || whole.FindingsTotal() != 2 || len(steps) < 3 {
		t.Fatalf("whole run: %+v, %v, %d cursors", whole, err, len(steps))
	}
	for _, st := range steps {
		rest, err := s.Verify(t.Context(), store.ScanScope{All: true}, st.cursor, store.VerifyOptions{})
		if err != nil || st.found+rest.FindingsTotal() != 2 {
			t.Errorf("resumed at %s: %d findings before, %+v after, %v; want 2 in all", st.cursor, st.found, rest, err)
		}
	}
}
