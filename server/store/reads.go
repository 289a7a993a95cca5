package store

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/keys"
)

// rotating reports whether a previous HMAC key is known, i.e. whether reads
// must look under more than one name.
func (s *Store) rotating() bool { return len(s.opts.PreviousHMACKeys) > 0 }

// stateNames are the subject's state hash names under every known HMAC key,
// the active first.
func (s *Store) stateNames(subjectID string) []string {
	known := s.knownKeysFor(subjectID)
	names := make([]string, len(known))
	for i, k := range known {
		names[i] = k.state
	}
	return names
}

// Get returns the subject's stored record; for a visitor linked to a user,
// the user's record (Record.Linked). One HGETALL (while rotating the HMAC
// key, one read_state.lua), and one more to follow a link.
func (s *Store) Get(ctx context.Context, subjectID string) (domain.Record, error) {
	rec, err := s.GetOwn(ctx, subjectID)
	if err != nil || rec.LinkedTo == "" {
		return rec, err
	}
	user, err := s.GetOwn(ctx, rec.LinkedTo)
	user.Linked = true
	return user, err
}

// GetOwn returns the subject's own stored record, without following a link.
func (s *Store) GetOwn(ctx context.Context, subjectID string) (domain.Record, error) {
	if !s.rotating() {
		fields, err := s.client.HGetAll(ctx, s.stateKey(subjectID)).Result()
		if err != nil {
			return domain.Record{}, wrapErr("get", err)
		}
		return decodeRecord(fields, s.opts.Sealer)
	}
	reply, err := s.runScript(ctx, readStateScript, readStateArgs{names: s.stateNames(subjectID)}.call()).Result()
	if err != nil {
		return domain.Record{}, wrapErr("get", err)
	}
	fields, err := pairsToMap(reply)
	if err != nil {
		return domain.Record{}, err
	}
	return decodeRecord(fields, s.opts.Sealer)
}

// GetPurposes returns the subject's record with only the purposes asked for
// (and the revision and statuses): one HMGET, what a check needs (while
// rotating the HMAC key, one read_state.lua), and one more for a linked visitor.
func (s *Store) GetPurposes(ctx context.Context, subjectID string, purposes []string) (domain.Record, error) {
	rec, err := s.getPurposesOwn(ctx, subjectID, purposes)
	if err != nil || rec.LinkedTo == "" {
		return rec, err
	}
	user, err := s.getPurposesOwn(ctx, rec.LinkedTo, purposes)
	user.Linked = true
	return user, err
}

func (s *Store) getPurposesOwn(ctx context.Context, subjectID string, purposes []string) (domain.Record, error) {
	fields, err := hmgetFields(purposes)
	if err != nil {
		return domain.Record{}, err
	}
	var values []any
	if !s.rotating() {
		values, err = s.readHMGet(ctx, s.stateKey(subjectID), fields)
	} else {
		values, err = s.runScript(ctx, readStateScript, readStateArgs{names: s.stateNames(subjectID), fields: fields}.call()).Slice()
	}
	if err != nil {
		return domain.Record{}, wrapErr("get purposes", err)
	}
	return decodeHMGet(fields, values, s.opts.Sealer)
}

// readHMGet is a check's HMGET. While only a few reads are in flight it goes
// straight out: there is nothing to batch, and the auto-pipeliner's
// hand-offs (to its flusher goroutine and back) only add latency (`make
// bench`'s open loop at 5,000 checks/s: p50 0.6 ms direct, 0.8-1.1 ms through
// the pipeliner). Beyond that, through the auto-pipeliner. Its own wait ends
// at ctx's deadline only (a stalled Redis held checks in it for up to four
// times the client's timeout), so a read waits Options.SharedReadTimeout at
// most; the command stays queued, and its reply, if one comes, is read by
// nobody.
func (s *Store) readHMGet(ctx context.Context, key string, fields []string) ([]any, error) {
	args := make([]any, 0, 2+len(fields))
	args = append(args, "hmget", key)
	for _, f := range fields {
		args = append(args, f)
	}
	cmd := redis.NewSliceCmd(ctx, args...)
	defer s.readsInFlight.Add(-1)
	if s.readsInFlight.Add(1) <= maxDirectReads {
		_ = s.client.Process(ctx, cmd)
		return cmd.Result()
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.SharedReadTimeout)
	defer cancel()
	if err := s.reads.Submit(ctx, cmd).WaitContext(ctx); err != nil {
		return nil, err
	}
	return cmd.Result()
}

// maxDirectReads is how many checks' reads may be in flight for a read to
// skip the auto-pipeliner (see readHMGet).
const maxDirectReads = 4

// Lookup is one subject and the purposes to read for it.
type Lookup struct {
	SubjectID string
	Purposes  []string
	// Signals: read the subject's IAB signals too (Record.Signals), in
	// the same HMGET.
	Signals bool
}

// GetMany reads several subjects in one round trip: a pipeline of HMGETs (a
// cluster client splits it by node), or of read_state.lua runs while rotating the
// HMAC key. Linked visitors cost a second round trip for their users. Result
// i answers lookups[i].
func (s *Store) GetMany(ctx context.Context, lookups []Lookup) ([]domain.Record, error) {
	records, err := s.getManyOwn(ctx, lookups)
	if err != nil {
		return nil, err
	}
	var linked []int
	var users []Lookup
	for i, rec := range records {
		if rec.LinkedTo != "" {
			linked = append(linked, i)
			users = append(users, Lookup{SubjectID: rec.LinkedTo, Purposes: lookups[i].Purposes, Signals: lookups[i].Signals})
		}
	}
	if len(users) == 0 {
		return records, nil
	}
	userRecords, err := s.getManyOwn(ctx, users)
	if err != nil {
		return nil, err
	}
	for j, i := range linked {
		records[i] = userRecords[j]
		records[i].Linked = true
	}
	return records, nil
}

func (s *Store) getManyOwn(ctx context.Context, lookups []Lookup) ([]domain.Record, error) {
	if len(lookups) == 0 {
		return nil, nil
	}
	fields := make([][]string, len(lookups))
	for i, l := range lookups {
		var err error
		if fields[i], err = hmgetFields(l.Purposes); err != nil {
			return nil, err
		}
		if l.Signals {
			fields[i] = append(fields[i], fieldSignals)
		}
	}
	var values [][]any
	var err error
	if !s.rotating() {
		values, err = s.hmgetMany(ctx, lookups, fields)
	} else {
		values, err = s.scriptMany(ctx, lookups, fields)
	}
	if err != nil {
		return nil, wrapErr("get many", err)
	}
	records := make([]domain.Record, len(lookups))
	for i := range lookups {
		if records[i], err = decodeHMGet(fields[i], values[i], s.opts.Sealer); err != nil {
			return nil, err
		}
	}
	return records, nil
}

func (s *Store) hmgetMany(ctx context.Context, lookups []Lookup, fields [][]string) ([][]any, error) {
	cmds := make([]*redis.SliceCmd, len(lookups))
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, l := range lookups {
			cmds[i] = p.HMGet(ctx, s.stateKey(l.SubjectID), fields[i]...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	values := make([][]any, len(cmds))
	for i, cmd := range cmds {
		values[i] = cmd.Val()
	}
	return values, nil
}

// scriptMany pipelines one read_state.lua per lookup (only while rotating).
func (s *Store) scriptMany(ctx context.Context, lookups []Lookup, fields [][]string) ([][]any, error) {
	cmds, err := s.evalEach(ctx, readStateScript, len(lookups), func(i int) scriptCall {
		return readStateArgs{names: s.stateNames(lookups[i].SubjectID), fields: fields[i]}.call()
	})
	if err != nil {
		return nil, err
	}
	values := make([][]any, len(cmds))
	for i, cmd := range cmds {
		if values[i], err = cmd.Slice(); err != nil {
			return nil, err
		}
	}
	return values, nil
}

func stringsToAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// hmgetFields lists the internal fields, then the purposes.
func hmgetFields(purposes []string) ([]string, error) {
	fields := make([]string, 0, len(internalFields)+len(purposes))
	fields = append(fields, internalFields...)
	for _, p := range purposes {
		if err := checkPurposeID(p); err != nil {
			return nil, err
		}
		fields = append(fields, p)
	}
	return fields, nil
}

func decodeHMGet(fields []string, values []any, sealer *keys.Sealer) (domain.Record, error) {
	if len(values) != len(fields) {
		return domain.Record{}, fmt.Errorf("store: HMGET returned %d values for %d fields", len(values), len(fields))
	}
	rec := domain.Record{Decisions: make(map[string]domain.Decision, len(fields)-len(internalFields))}
	for i, v := range values {
		if s, ok := v.(string); ok { // nil: field absent
			if err := decodeField(&rec, fields[i], s, sealer); err != nil {
				return domain.Record{}, err
			}
		}
	}
	return rec, nil
}
