package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/domain"
)

// The state hash of a subject holds one field per decided purpose and a few
// internal fields whose names start with "_" (purpose ids never do):
//
//	<purpose>  g|<decided unix s>|<expires unix s, 0: never>|<source letter>|<policy version>|<region>
//	           ("d" instead of "g" when denied), e.g. g|1750000000|1784000000|b|2|DE
//	_rev       revision: raised by one on every write
//	_reg       last region code given with a write
//	_gpc       unix seconds of the first write that carried a GPC signal
//
// Short values keep the hash in Redis' compact listpack encoding: at millions
// of subjects every byte per field counts.
const (
	fieldRevision = "_rev"
	fieldRegion   = "_reg"
	fieldGPC      = "_gpc"
)

// internalFields are read along with the purposes by GetPurposes, in this order.
var internalFields = []string{fieldRevision, fieldRegion, fieldGPC}

// Source letters, in the state hash and in history events.
var sourceLetters = map[domain.Source]string{
	domain.SourceBanner:           "b",
	domain.SourcePreferenceCenter: "p",
	domain.SourceAPI:              "a",
	domain.SourceGPC:              "g",
	domain.SourceImport:           "i",
	domain.SourceLink:             "l",
}

var lettersToSource = func() map[string]domain.Source {
	m := make(map[string]domain.Source, len(sourceLetters))
	for s, l := range sourceLetters {
		m[l] = s
	}
	return m
}()

func grantedLetter(granted bool) string {
	if granted {
		return "g"
	}
	return "d"
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func timeOrZero(unix int64) time.Time {
	if unix == 0 {
		return time.Time{}
	}
	return time.Unix(unix, 0).UTC()
}

func encodeDecision(d domain.Decision) (string, error) {
	letter, ok := sourceLetters[d.Source]
	if !ok {
		return "", fmt.Errorf("store: unknown decision source %q", d.Source)
	}
	if strings.Contains(d.Region, "|") {
		return "", fmt.Errorf("store: region %q contains '|'", d.Region)
	}
	return grantedLetter(d.Granted) + "|" +
		strconv.FormatInt(unixOrZero(d.DecidedAt), 10) + "|" +
		strconv.FormatInt(unixOrZero(d.ExpiresAt), 10) + "|" +
		letter + "|" + strconv.Itoa(d.PolicyVersion) + "|" + d.Region, nil
}

var errCorrupt = errors.New("store: corrupt stored value")

func decodeDecision(v string) (domain.Decision, error) {
	parts := strings.SplitN(v, "|", 6)
	if len(parts) != 6 || (parts[0] != "g" && parts[0] != "d") {
		return domain.Decision{}, errCorrupt
	}
	decided, err1 := strconv.ParseInt(parts[1], 10, 64)
	expires, err2 := strconv.ParseInt(parts[2], 10, 64)
	version, err3 := strconv.Atoi(parts[4])
	source, ok := lettersToSource[parts[3]]
	if err := errors.Join(err1, err2, err3); err != nil || !ok {
		return domain.Decision{}, errCorrupt
	}
	return domain.Decision{
		Granted:       parts[0] == "g",
		DecidedAt:     timeOrZero(decided),
		ExpiresAt:     timeOrZero(expires),
		Source:        source,
		PolicyVersion: version,
		Region:        parts[5],
	}, nil
}

// decodeRecord turns state hash fields into a Record. A subject never written
// has no fields and reads as revision 0 with no decisions.
func decodeRecord(fields map[string]string) (domain.Record, error) {
	rec := domain.Record{Decisions: make(map[string]domain.Decision, len(fields))}
	for name, v := range fields {
		var err error
		switch name {
		case fieldRevision:
			rec.Revision, err = strconv.ParseInt(v, 10, 64)
		case fieldRegion:
			rec.Region = v
		case fieldGPC:
			var unix int64
			unix, err = strconv.ParseInt(v, 10, 64)
			rec.GPCSeenAt = timeOrZero(unix)
		default:
			if strings.HasPrefix(name, "_") {
				continue // an internal field of a later version: not a purpose
			}
			rec.Decisions[name], err = decodeDecision(v)
		}
		if err != nil {
			// The purpose id is not personal data; the subject id stays out.
			return domain.Record{}, fmt.Errorf("%w: field %q", errCorrupt, name)
		}
	}
	return rec, nil
}

// pairsToMap turns a flat [field, value, ...] reply (HGETALL from a script)
// into a map.
func pairsToMap(reply any) (map[string]string, error) {
	flat, ok := reply.([]any)
	if !ok || len(flat)%2 != 0 {
		return nil, fmt.Errorf("store: unexpected reply %T", reply)
	}
	m := make(map[string]string, len(flat)/2)
	for i := 0; i < len(flat); i += 2 {
		k, ok1 := flat[i].(string)
		v, ok2 := flat[i+1].(string)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("store: unexpected reply element %T", flat[i])
		}
		m[k] = v
	}
	return m, nil
}

func checkPurposeID(p string) error {
	if p == "" || strings.HasPrefix(p, "_") {
		// "_" names the internal fields of the state hash.
		return fmt.Errorf("store: purpose id %q: must be non-empty and not start with '_'", p)
	}
	return nil
}

// Get returns the subject's stored record: one HGETALL.
func (s *Store) Get(ctx context.Context, subjectID string) (domain.Record, error) {
	fields, err := s.client.HGetAll(ctx, s.keysFor(subjectID).state).Result()
	if err != nil {
		return domain.Record{}, wrapErr("get", err)
	}
	return decodeRecord(fields)
}

// GetPurposes returns the subject's record with only the purposes asked for
// (and the revision, region and GPC time): one HMGET, what a check needs.
func (s *Store) GetPurposes(ctx context.Context, subjectID string, purposes []string) (domain.Record, error) {
	fields, err := hmgetFields(purposes)
	if err != nil {
		return domain.Record{}, err
	}
	values, err := s.client.HMGet(ctx, s.keysFor(subjectID).state, fields...).Result()
	if err != nil {
		return domain.Record{}, wrapErr("get purposes", err)
	}
	return decodeHMGet(fields, values)
}

// Lookup is one subject and the purposes to read for it.
type Lookup struct {
	SubjectID string
	Purposes  []string
}

// GetMany reads several subjects in one round trip: a pipeline of HMGETs
// (a cluster client splits it by node). Result i answers lookups[i].
func (s *Store) GetMany(ctx context.Context, lookups []Lookup) ([]domain.Record, error) {
	if len(lookups) == 0 {
		return nil, nil
	}
	fields := make([][]string, len(lookups))
	for i, l := range lookups {
		var err error
		if fields[i], err = hmgetFields(l.Purposes); err != nil {
			return nil, err
		}
	}
	cmds := make([]*redis.SliceCmd, len(lookups))
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, l := range lookups {
			cmds[i] = p.HMGet(ctx, s.keysFor(l.SubjectID).state, fields[i]...)
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr("get many", err)
	}
	records := make([]domain.Record, len(lookups))
	for i, cmd := range cmds {
		if records[i], err = decodeHMGet(fields[i], cmd.Val()); err != nil {
			return nil, err
		}
	}
	return records, nil
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

func decodeHMGet(fields []string, values []any) (domain.Record, error) {
	if len(values) != len(fields) {
		return domain.Record{}, fmt.Errorf("store: HMGET returned %d values for %d fields", len(values), len(fields))
	}
	m := make(map[string]string, len(fields))
	for i, v := range values {
		if s, ok := v.(string); ok { // nil: field absent
			m[fields[i]] = s
		}
	}
	return decodeRecord(m)
}
