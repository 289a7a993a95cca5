package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Verification, what `consentd verify` runs: it looks at what is stored the
// way an auditor would, with the operator's keys, for the marks that
// someone who can write to Redis but does not hold the keys leaves (see
// integrity.go for the MACs it checks):
//
//   - every state hash found: its tag, its history's chain, the revision
//     they share, and that its data key record names a subject whose keyed
//     name (under the active or a previous HMAC key) is the name it was
//     found under: a state or history copied onto another subject's name
//     is caught there, since its tag and chain bind the subject id;
//   - every history list and data key found: that the state they belong to
//     exists (one deleted leaves them behind);
//   - every change-feed entry kept: that its event is authentic (its keyed
//     hash), and that the subject it names has not been put back behind it:
//     a state at a lower revision than an authentic entry, or a history
//     whose event at that revision is another one, was rolled back.
//
// What it cannot see, by construction (see also integrity.go): a subject's
// state and history put back together to an earlier authentic copy once
// the feed no longer holds the entries written after it (trimmed after
// Options.FeedRetention), or after the attacker deleted those entries too
// (XDEL leaves no trace in a stream; the feed is authentic entry by entry,
// not as a sequence); a whole subject deleted, state, history, data key and
// feed entries (it reads as never written: only a record kept outside Redis,
// such as a consumer's, shows it existed); a whole database put back to an
// earlier copy; and anything about subjects written before keyed MACs and
// not since ("unauthenticated": their sha1 chain shows accidents, not
// someone who recomputes it).

// FindingKind says what a verification found.
type FindingKind string

// The kinds of findings.
const (
	// FindingHistory: an event edited, deleted, reordered or inserted, or
	// the oldest events dropped.
	FindingHistory FindingKind = "history"
	// FindingState: the state does not match its integrity tag, lost its
	// tag, or is at another revision than its history's last event.
	FindingState FindingKind = "state"
	// FindingRollback: the change feed holds an authentic change the
	// subject's state and history no longer have.
	FindingRollback FindingKind = "rollback"
	// FindingMissing: a state deleted while its history, data key or feed
	// entries remain; a data key deleted while its state or feed entries
	// remain (without an erasure); a history deleted while it is kept as
	// long as the state (Options.HistoryRetention 0).
	FindingMissing FindingKind = "missing"
	// FindingForged: a change-feed entry or a data key record that was not
	// made with the operator's keys.
	FindingForged FindingKind = "forged"
	// FindingMisplaced: a subject's data under a name that is not its own
	// under any known HMAC key (copied from another subject, or left under
	// an HMAC key removed from the key file), or under two of its names.
	FindingMisplaced FindingKind = "misplaced"
	// FindingUnauthenticated: a subject or feed entry written before keyed
	// MACs and not since; a finding only with VerifyOptions.Strict.
	FindingUnauthenticated FindingKind = "unauthenticated"
)

// Finding is one thing a verification found. It names Redis keys, never a
// subject id: a report can be shared like a key listing.
type Finding struct {
	Kind     FindingKind
	Key      string // the key (or "<feed key> <entry id>") it was found at
	Revision int64  // the revision concerned; 0 when none
	Detail   string // what is wrong, for a person to read
}

func (f Finding) String() string {
	rev := ""
	if f.Revision != 0 {
		rev = " revision=" + strconv.FormatInt(f.Revision, 10)
	}
	return fmt.Sprintf("finding kind=%s key=%s%s: %s", f.Kind, f.Key, rev, f.Detail)
}

// VerifyOptions are what a verification reports to as it goes.
type VerifyOptions struct {
	// Strict makes subjects and feed entries written before keyed MACs
	// (unauthenticated) findings too.
	Strict bool
	// OnFinding is called with each finding as it is found.
	OnFinding func(Finding)
	// OnProgress is called after each step (a SCAN reply, a page of the
	// feed) with the cursor to resume after it and the counts so far.
	OnProgress func(cursor string, sofar VerifyReport)
	// Now is the clock feed entries' age is judged by; nil: time.Now.
	Now func() time.Time
}

// VerifyReport counts what a verification did.
type VerifyReport struct {
	Subjects        int // state hashes checked
	Verified        int // of which with no finding and authenticated
	Unauthenticated int // of which written before keyed MACs and not since
	FeedEntries     int // change-feed entries checked
	Findings        map[FindingKind]int
}

// FindingsTotal is the number of findings of every kind.
func (r VerifyReport) FindingsTotal() int {
	n := 0
	for _, c := range r.Findings {
		n += c
	}
	return n
}

// verifier is one verification run.
type verifier struct {
	s        *Store
	opts     VerifyOptions
	report   VerifyReport
	reported map[string]bool // kind + key of findings reported, to report each once
}

func (s *Store) newVerifier(opts VerifyOptions) *verifier {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &verifier{s: s, opts: opts, report: VerifyReport{Findings: map[FindingKind]int{}}, reported: map[string]bool{}}
}

func (v *verifier) find(f Finding) {
	id := string(f.Kind) + " " + f.Key
	if v.reported[id] {
		return
	}
	v.reported[id] = true
	v.report.Findings[f.Kind]++
	if v.opts.OnFinding != nil {
		v.opts.OnFinding(f)
	}
}

func (v *verifier) progress(pos scanPos, sc ScanScope) {
	if v.opts.OnProgress != nil {
		v.opts.OnProgress(pos.cursor(sc), v.report)
	}
}

// VerifySubject verifies one subject: its state, history and data key
// under every known HMAC key's names, and its entries in its partition's
// change feed. A subject with nothing stored verifies (and counts no
// subject).
func (s *Store) VerifySubject(ctx context.Context, subjectID string, opts VerifyOptions) (VerifyReport, error) {
	if subjectID == "" {
		return VerifyReport{}, errors.New("store: empty subject id")
	}
	v := s.newVerifier(opts)
	known := s.knownKeysFor(subjectID)
	pairs := make([]string, 0, 2*len(known))
	for _, k := range known {
		pairs = append(pairs, k.state, k.history)
	}
	view, err := s.readSubject(ctx, pairs, known[0].base)
	if err != nil {
		return VerifyReport{}, err
	}
	handle := ""
	if view.found != subjectNone {
		k := known[view.found-1]
		if view.others > 0 {
			v.find(Finding{Kind: FindingMisplaced, Key: k.state, Detail: "the subject's data is under the names of two HMAC keys; reads use the first"})
		}
		handle = view.state[fieldDataKey]
		v.checkSubject(k.state, k.history, subjectID, view)
	}
	partition := s.partitionOf(subjectID)
	err = v.checkFeed(ctx, partition, "-", func(subject, h string) bool { return subject == subjectID || (h != "" && h == handle) }, nil)
	return v.report, err
}

// Verify verifies every subject and change-feed entry of sc, from cursor
// ("" for the start; otherwise one given to OnProgress). It returns when
// done, at the first error, or when ctx ends (with the report so far: the
// last cursor given to OnProgress resumes it).
func (s *Store) Verify(ctx context.Context, sc ScanScope, cursor string, opts VerifyOptions) (VerifyReport, error) {
	if err := s.checkScope(sc); err != nil {
		return VerifyReport{}, err
	}
	pos, err := parseScanCursor(sc, cursor)
	if err != nil {
		return VerifyReport{}, err
	}
	v := s.newVerifier(opts)
	partitions := []int{sc.Partition}
	if sc.All {
		partitions = allPartitions(s.opts.Partitions)
	}
	feedStart := scanPos{phase: "feed", where: strconv.Itoa(partitions[0]), at: "-"}
	if pos.phase != "feed" {
		err := s.scanKeys(ctx, sc, "shk", pos, feedStart, func(keys []string, after scanPos) error {
			for _, key := range keys {
				if err := v.checkKey(ctx, key); err != nil {
					return err
				}
			}
			v.progress(after, sc)
			return nil
		})
		if err != nil {
			return v.report, err
		}
		pos = feedStart
	}
	first, err := strconv.Atoi(pos.where)
	if err != nil {
		return v.report, fmt.Errorf("store: cursor: %q is not a partition", pos.where)
	}
	for i, p := range partitions {
		if p < first {
			continue
		}
		from := "-"
		if p == first {
			from = pos.at
		}
		next := scanPos{phase: "feed", where: strconv.Itoa(p), at: "-"}
		err := v.checkFeed(ctx, p, from, nil, func(last string) {
			next.at = last
			v.progress(next, sc)
		})
		if err != nil {
			return v.report, err
		}
		if i+1 < len(partitions) {
			v.progress(scanPos{phase: "feed", where: strconv.Itoa(partitions[i+1]), at: "-"}, sc)
		}
	}
	return v.report, nil
}
