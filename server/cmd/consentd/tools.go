package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/consentd/consentd/server/app"
	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/store"
)

// The subcommands: operator tools that work on the store directly, with the
// server's Redis and key settings (config.LoadTool). The work is in the
// store package (Store.Verify, Store.Rekey); these parse flags and print.
//
// Exit codes, for both: 0 done and nothing found; 1 findings (verify) or
// subjects that could not be moved (rekey); 2 bad usage, Redis or key file
// trouble, or a run stopped before its end (a signal) with nothing found so
// far: print and keep its cursor, and resume.
const (
	exitOK       = 0
	exitFindings = 1
	exitTrouble  = 2
)

type tool func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int

var tools = map[string]tool{"verify": verify, "rekey": rekey}

// progressEvery is how often a long run prints its progress and cursor.
const progressEvery = 10 * time.Second

// scopeFlags are the flags that choose what a scan covers.
type scopeFlags struct {
	partition int
	all       bool
	resume    string
}

func (f *scopeFlags) define(fs *flag.FlagSet) {
	fs.IntVar(&f.partition, "partition", -1, "only the subjects and change feed of this partition (0 to partitions-1)")
	fs.BoolVar(&f.all, "all", false, "every subject and every partition's change feed")
	fs.StringVar(&f.resume, "resume", "", "continue a run from the cursor it printed")
}

func (f *scopeFlags) scope() store.ScanScope {
	if f.partition >= 0 {
		return store.ScanScope{Partition: f.partition}
	}
	return store.ScanScope{All: true}
}

// openStore is the store of cfg, and a function closing its client; ok
// false when the tool cannot run: flagErr (from reading the flags and
// settings) or the store failed, and stderr says why.
func openStore(name string, cfg config.Config, flagErr error, stderr io.Writer) (s *store.Store, closeStore func(), ok bool) {
	if flagErr != nil {
		// -h has printed the usage already, which is all it asks for.
		if !errors.Is(flagErr, flag.ErrHelp) {
			fmt.Fprintf(stderr, "consentd %s: %v\n", name, flagErr)
		}
		return nil, nil, false
	}
	s, client, err := app.OpenStore(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "consentd %s: %v\n", name, err)
		return nil, nil, false
	}
	return s, func() { _ = client.Close() }, true
}

// throttled calls print at most once per progressEvery, and always the
// last cursor through final.
type throttled struct {
	last   time.Time
	cursor string
}

func (t *throttled) note(cursor string, print func()) {
	t.cursor = cursor
	if time.Since(t.last) >= progressEvery {
		t.last = time.Now()
		print()
	}
}

func verify(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	var (
		scope   scopeFlags
		subject string
		strict  bool
	)
	cfg, err := config.LoadTool("verify", args, getenv, stderr, func(fs *flag.FlagSet) {
		scope.define(fs)
		fs.StringVar(&subject, "subject", "", "verify this one subject (its state, history, data key and change-feed entries)")
		fs.BoolVar(&strict, "strict", false, "count subjects and feed entries written before keyed MACs (unauthenticated) as findings")
	})
	if err == nil {
		chosen := 0
		for _, set := range []bool{subject != "", scope.partition >= 0, scope.all} {
			if set {
				chosen++
			}
		}
		switch {
		case chosen != 1:
			err = errors.New("give one of --subject ID, --partition N or --all")
		case subject != "" && scope.resume != "":
			err = errors.New("--resume continues a --partition or --all run, not --subject")
		}
	}
	s, closeStore, ok := openStore("verify", cfg, err, stderr)
	if !ok {
		return exitTrouble
	}
	defer closeStore()

	var progress throttled
	opts := store.VerifyOptions{
		Strict:    strict,
		OnFinding: func(f store.Finding) { fmt.Fprintln(stdout, f) },
		OnProgress: func(cursor string, r store.VerifyReport) {
			progress.note(cursor, func() {
				fmt.Fprintf(stderr, "progress: %d subjects, %d feed entries, %d findings; resume with --resume %s\n",
					r.Subjects, r.FeedEntries, r.FindingsTotal(), cursor)
			})
		},
	}
	var report store.VerifyReport
	if subject != "" {
		report, err = s.VerifySubject(ctx, subject, opts)
	} else {
		report, err = s.Verify(ctx, scope.scope(), scope.resume, opts)
	}
	printVerifySummary(stdout, report)
	if err != nil {
		fmt.Fprintln(stderr, "consentd verify: stopped:", err)
		if progress.cursor != "" {
			fmt.Fprintln(stderr, "resume with --resume", progress.cursor)
		}
	}
	switch {
	case report.FindingsTotal() > 0:
		return exitFindings
	case err != nil:
		return exitTrouble
	}
	return exitOK
}

func printVerifySummary(out io.Writer, r store.VerifyReport) {
	fmt.Fprintf(out, "subjects checked: %d\n", r.Subjects)
	fmt.Fprintf(out, "subjects verified: %d\n", r.Verified)
	fmt.Fprintf(out, "subjects unauthenticated (legacy): %d\n", r.Unauthenticated)
	fmt.Fprintf(out, "feed entries checked: %d\n", r.FeedEntries)
	var byKind []string
	for kind, n := range r.Findings {
		byKind = append(byKind, fmt.Sprintf("%s %d", kind, n))
	}
	slices.Sort(byKind)
	line := fmt.Sprintf("findings: %d", r.FindingsTotal())
	if len(byKind) > 0 {
		line += " (" + strings.Join(byKind, ", ") + ")"
	}
	fmt.Fprintln(out, line)
}

// defaultRekeyRate bounds a rekey's pace unless --rate says otherwise: a
// move is two small scripts, so this is a few hundred commands a second, a
// load a live Redis does not notice.
const defaultRekeyRate = 200

func rekey(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	var (
		scope scopeFlags
		rate  float64
	)
	cfg, err := config.LoadTool("rekey", args, getenv, stderr, func(fs *flag.FlagSet) {
		scope.define(fs)
		fs.Float64Var(&rate, "rate", defaultRekeyRate, "subjects looked at per second at most; 0: no bound")
	})
	if err == nil && scope.all && scope.partition >= 0 {
		err = errors.New("give --partition N or --all (the default), not both")
	}
	if err == nil && rate < 0 {
		err = fmt.Errorf("--rate %v: must be 0 (no bound) or more", rate)
	}
	s, closeStore, ok := openStore("rekey", cfg, err, stderr)
	if !ok {
		return exitTrouble
	}
	defer closeStore()

	var progress throttled
	report, err := s.Rekey(ctx, scope.scope(), scope.resume, store.RekeyOptions{
		Rate: rate,
		OnProgress: func(cursor string, r store.RekeyReport) {
			progress.note(cursor, func() {
				fmt.Fprintf(stderr, "progress: %d moved, %d already active, %d without data key, %d errors; resume with --resume %s\n",
					r.Moved, r.AlreadyActive, r.WithoutDataKey, r.Errors, cursor)
			})
		},
		OnError: func(key string, err error) { fmt.Fprintf(stderr, "error: %s: %v\n", key, err) },
	})
	fmt.Fprintf(stdout, "moved: %d\n", report.Moved)
	fmt.Fprintf(stdout, "already active: %d\n", report.AlreadyActive)
	fmt.Fprintf(stdout, "without data key: %d\n", report.WithoutDataKey)
	if report.WithoutDataKey > 0 {
		fmt.Fprintln(stdout, "  (written before data keys and not since: nothing in Redis names their subject, so rekey cannot move them;"+
			" one write to each moves it, or it expires; keep the previous HMAC key until then)")
	}
	fmt.Fprintf(stdout, "errors: %d\n", report.Errors)
	if err != nil {
		fmt.Fprintln(stderr, "consentd rekey: stopped:", err)
		if progress.cursor != "" {
			fmt.Fprintln(stderr, "resume with --resume", progress.cursor)
		}
		return exitTrouble
	}
	if report.Errors > 0 {
		return exitFindings
	}
	return exitOK
}
