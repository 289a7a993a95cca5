package store

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/keys"
)

// The state hash of a subject holds one field per decided purpose and a few
// internal fields whose names start with "_" (purpose ids never do):
//
//	<purpose>  g|<decided unix s>|<expires unix s, 0: never>|<source letter>|<policy version>|<region>|<revision>
//	           ("d" instead of "g" when denied), e.g. g|1750000000|1784000000|b|2|DE|7;
//	           <revision> is the write's that stored it, appended by the write.
//	           Values stored before it was recorded end after the region and
//	           read with revision 0.
//	_rev       revision: raised by one on every write
//	_reg       last region code given with a write
//	_gpc       unix seconds of the first write that carried a GPC signal
//	_rst       unix seconds since processing is restricted (absent: not restricted)
//	_min       unix seconds since the subject is marked a minor (absent: not a minor)
//	_gdn       unix seconds of a guardian's last confirmation of a minor's decisions
//	_gdr       the revision that confirmation saw: it covers the decisions stored
//	           at or before it (absent in confirmations stored before it was
//	           recorded; a field of its own, not a part of _gdn, so that an
//	           earlier consentd still reads _gdn during a rolling upgrade)
//	_lnk       a linked visitor's user id, sealed: reads and writes follow it
//	_sig       the IAB strings last recorded (a signals event):
//	           <for revision>|<event revision>|<unix ms>|<region code>|<TC string>|<GPP string>
//	           (none of them holds "|"); read only when asked for (Get, GetMany
//	           with Lookup.Signals), not by a plain check. Its strings are longer
//	           than hash-max-listpack-value (64 B), so a subject with signals
//	           leaves the listpack encoding: MEMORY USAGE on Redis 7.0 for a state of
//	           three decisions and a 77-character TC string, 280 B -> 694 B.
//
// Short values keep the hash in Redis' compact listpack encoding: at millions
// of subjects every byte per field counts.
const (
	fieldRevision         = "_rev"
	fieldRegion           = "_reg"
	fieldGPC              = "_gpc"
	fieldRestrict         = "_rst"
	fieldMinor            = "_min"
	fieldGuardian         = "_gdn"
	fieldGuardianRevision = "_gdr"
	fieldLink             = "_lnk"
	fieldSignals          = "_sig"
)

// internalFields are read along with the purposes by GetPurposes, in this order.
var internalFields = []string{fieldRevision, fieldRegion, fieldGPC, fieldRestrict, fieldMinor, fieldGuardian, fieldGuardianRevision, fieldLink}

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

func parseUnix(v string) (time.Time, error) {
	unix, err := strconv.ParseInt(v, 10, 64)
	return timeOrZero(unix), err
}

// encodeDecision is a stored decision's first six parts. The write appends
// its own revision (see nextState) once it knows it; d.Revision is not
// written (a decision copied from another record gets the new write's).
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

// decodeDecision reads a stored decision: seven "|"-separated parts, or six
// in values stored before the revision was appended (Revision 0). A region
// never holds "|" (encodeDecision refuses it), so a sixth "|" starts the
// revision.
func decodeDecision(v string) (domain.Decision, error) {
	// Cut one by one: a split would allocate a slice on every check.
	var parts [6]string
	rest := v
	for i := range 5 {
		var found bool
		if parts[i], rest, found = strings.Cut(rest, "|"); !found {
			return domain.Decision{}, errCorrupt
		}
	}
	var revision int64
	if region, rev, found := strings.Cut(rest, "|"); found {
		var ok bool
		if revision, ok = parseRevision(rev); !ok {
			return domain.Decision{}, errCorrupt
		}
		rest = region
	}
	parts[5] = rest
	if parts[0] != "g" && parts[0] != "d" {
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
		Revision:      revision,
	}, nil
}

// parseRevision reads a revision as the write script formats one: a
// positive decimal without sign or leading zero.
func parseRevision(v string) (int64, bool) {
	if v == "" || v[0] == '0' {
		return 0, false
	}
	for i := range len(v) {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

// decodeRecord turns state hash fields into a Record. A subject never written
// has no fields and reads as revision 0 with no decisions. A link sealed with
// an encryption key no longer known reads as no link: the visitor's own
// record answers.
func decodeRecord(fields map[string]string, sealer *keys.Sealer) (domain.Record, error) {
	rec := domain.Record{Decisions: make(map[string]domain.Decision, len(fields))}
	for name, v := range fields {
		if err := decodeField(&rec, name, v, sealer); err != nil {
			return domain.Record{}, err
		}
	}
	return rec, nil
}

// decodeField sets the part of rec that one state hash field holds.
func decodeField(rec *domain.Record, name, v string, sealer *keys.Sealer) error {
	var err error
	switch name {
	case fieldRevision:
		rec.Revision, err = strconv.ParseInt(v, 10, 64)
	case fieldRegion:
		rec.Region = v
	case fieldGPC:
		rec.GPCSeenAt, err = parseUnix(v)
	case fieldRestrict:
		rec.RestrictedAt, err = parseUnix(v)
	case fieldMinor:
		rec.MinorSince, err = parseUnix(v)
	case fieldGuardian:
		rec.GuardianAt, err = parseUnix(v)
	case fieldGuardianRevision:
		var ok bool
		if rec.GuardianRevision, ok = parseRevision(v); !ok {
			err = errCorrupt
		}
	case fieldLink:
		if id, openErr := sealer.Open(v); openErr == nil {
			rec.LinkedTo = string(id)
		}
	case fieldSignals:
		rec.Signals, err = decodeSignals(v)
	default:
		if strings.HasPrefix(name, "_") {
			return nil // an internal field of a later version: not a purpose
		}
		rec.Decisions[name], err = decodeDecision(v)
	}
	if err != nil {
		// The purpose id is not personal data; the subject id stays out.
		return fmt.Errorf("%w: field %q", errCorrupt, name)
	}
	return nil
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
