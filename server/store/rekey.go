package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Rekeying, what `consentd rekey` runs: it moves every subject still under
// a previous HMAC key's names to the active key's, in the background, so
// that the previous key can leave the key file without waiting for every
// subject's next write (see "Rotating the HMAC key" in store.go).
//
// A move is what a write does first when it finds the subject under a
// previous key (write.lua): one script RENAMEs the state hash, the
// history list and the idempotency hash to the active names, so readers,
// which look under every known name at one instant, see the subject in one
// place before and after. It moves nothing when the active names already
// hold data (a write moved it since, or something is wrong: reported as an
// error), so running it twice, or alongside writes, is harmless; a write
// that read the subject under the old names before the move finds the
// revision gone from them and computes itself again (write.lua's check).
//
// The subject id that names the active names comes from the subject's data
// key record (datakey.go), as the key names are one-way. A subject written
// before data keys and never since has none, and nothing else in Redis
// names it: rekey cannot move it, and cannot give it a data key either
// (the record must hold the subject id). It counts them; one write to each
// (which moves it and gives it a data key), or its expiry, settles it.
//
// Run it with the new key active everywhere (step 2 of the procedure done):
// an instance still on step 1 writes under the old key and moves subjects
// back on their next write.

// RekeyOptions pace a rekey and report its progress.
type RekeyOptions struct {
	// Rate bounds the subjects looked at per second; <= 0: no bound.
	Rate float64
	// OnProgress is called after each SCAN reply with the cursor to resume
	// after it and the counts so far.
	OnProgress func(cursor string, sofar RekeyReport)
	// OnError is called with each subject that could not be moved (counted
	// in Errors), by its state's key name.
	OnError func(key string, err error)
}

// RekeyReport counts what a rekey did.
type RekeyReport struct {
	Moved          int // moved from a previous HMAC key's names to the active key's
	AlreadyActive  int // already under the active key's names (or moved, or erased, meanwhile)
	WithoutDataKey int // written before data keys: no subject id to name them by
	Errors         int // could not be moved (see OnError)
}

// errRekey marks a subject rekey could not move (not a Redis error: the
// run goes on).
var errRekey = errors.New("store: rekey")

// Rekey moves the subjects of sc still under a previous HMAC key to the
// active one, from cursor ("" for the start; otherwise one given to
// OnProgress). It returns when done, at the first Redis error, or when ctx
// ends (with the counts so far: the last cursor given to OnProgress resumes
// it).
func (s *Store) Rekey(ctx context.Context, sc ScanScope, cursor string, opts RekeyOptions) (RekeyReport, error) {
	if err := s.checkScope(sc); err != nil {
		return RekeyReport{}, err
	}
	pos, err := parseScanCursor(sc, cursor)
	if err != nil {
		return RekeyReport{}, err
	}
	if pos.phase == "feed" {
		return RekeyReport{}, fmt.Errorf("store: cursor %q is of a verification", cursor)
	}
	var report RekeyReport
	start, looked := time.Now(), 0
	pace := func() error {
		looked++
		if opts.Rate <= 0 {
			return nil
		}
		wait := time.Until(start.Add(time.Duration(float64(looked) / opts.Rate * float64(time.Second))))
		if wait <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
			return nil
		}
	}
	err = s.scanKeys(ctx, sc, "s", pos, scanPos{phase: "done", where: "-", at: "-"}, func(keys []string, after scanPos) error {
		for _, key := range keys {
			pk, ok := s.parseKey(key)
			if !ok || pk.kind != 's' {
				continue
			}
			if err := pace(); err != nil {
				return err
			}
			err := s.rekeySubject(ctx, pk, key, &report)
			if errors.Is(err, errRekey) {
				report.Errors++
				if opts.OnError != nil {
					opts.OnError(key, err)
				}
				continue
			}
			if err != nil {
				return err
			}
		}
		if opts.OnProgress != nil {
			opts.OnProgress(after.cursor(sc), report)
		}
		return nil
	})
	return report, err
}

// rekeySubject moves the subject whose state a scan found at key, if it is
// under a previous HMAC key's names.
func (s *Store) rekeySubject(ctx context.Context, pk parsedKey, key string, report *RekeyReport) error {
	reply, err := s.runScript(ctx, rekeyReadScript, rekeyReadArgs{state: key, base: pk.base}.call()).Slice()
	if err != nil {
		return wrapErr("rekey", err)
	}
	if len(reply) != 3 {
		return errors.New("store: rekey: unexpected script reply")
	}
	exists, _ := reply[0].(int64)
	handle, _ := reply[1].(string)
	wrapped, _ := reply[2].(string)
	switch {
	case exists == rekeyAbsent:
		return nil // erased, expired or moved since the scan saw it
	case exists != rekeyPresent:
		return errors.New("store: rekey: unexpected script reply")
	case handle == "":
		report.WithoutDataKey++
		return nil
	case wrapped == "":
		return fmt.Errorf("%w: the state's data key is gone (see consentd verify)", errRekey)
	}
	dk, err := openDataKey(s.opts.Sealer, handle, wrapped)
	if err != nil {
		return fmt.Errorf("%w: %v", errRekey, err)
	}
	known := s.knownKeysFor(dk.subject)
	if known[0].base != pk.base {
		return fmt.Errorf("%w: the state is not under its subject's name (see consentd verify)", errRekey)
	}
	if known[0].id == pk.rest {
		report.AlreadyActive++
		return nil
	}
	from := -1
	for i, k := range known[1:] {
		if k.id == pk.rest {
			from = i + 1
		}
	}
	if from < 0 {
		return fmt.Errorf("%w: the state is not under its subject's name for any known HMAC key (see consentd verify)", errRekey)
	}
	old, active := known[from], known[0]
	moved, err := s.runScript(ctx, rekeyMoveScript, rekeyMoveArgs{from: old, to: active}.call()).Int()
	if err != nil {
		return wrapErr("rekey", err)
	}
	switch moved {
	case rekeyMoved:
		report.Moved++
	case rekeyGone:
		report.AlreadyActive++
	case rekeyBoth:
		return fmt.Errorf("%w: the subject has data under both the active and a previous HMAC key's names; nothing moved (see consentd verify)", errRekey)
	default:
		return errors.New("store: rekey: unexpected script reply")
	}
	return nil
}
