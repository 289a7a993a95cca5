package store

import (
	"context"
	"embed"

	"github.com/redis/go-redis/v9"
)

// Every Lua script the store runs is a file in lua/, whose opening comment
// states its KEYS, ARGV and reply. Each script's keys and arguments are built
// by one Go type's call method, in the order the file states, so no caller
// lists positional arguments; a reply's codes are named constants here and
// named locals in the script, with the same values.

//go:embed lua/*.lua
var luaFiles embed.FS

func loadScript(name string) *redis.Script {
	src, err := luaFiles.ReadFile("lua/" + name + ".lua")
	if err != nil {
		panic("store: script " + name + " is not embedded: " + err.Error())
	}
	return redis.NewScript(string(src))
}

var (
	readForWriteScript    = loadScript("read_for_write")
	writeScript           = loadScript("write")
	readStateScript       = loadScript("read_state")
	readHistoryScript     = loadScript("read_history")
	readHistoryPageScript = loadScript("read_history_page")
	eraseScript           = loadScript("erase")
	createGroupScript     = loadScript("create_group")
	collectTrimmedScript  = loadScript("collect_trimmed")
	rekeyReadScript       = loadScript("rekey_read")
	rekeyMoveScript       = loadScript("rekey_move")
	dataKeyOrphanScript   = loadScript("data_key_orphan")
	readSubjectScript     = loadScript("read_subject")
	writeProbeScript      = loadScript("write_probe")
)

// Reply codes, as the scripts name them.
const (
	writeApplied = 0  // write.lua: APPLIED
	writeStale   = -1 // write.lua: STALE, the revision changed since the read

	eraseNothing = 0 // erase.lua: NOTHING was stored
	eraseErased  = 1 // erase.lua: ERASED

	groupExisted = 0 // create_group.lua: EXISTED
	groupCreated = 1 // create_group.lua: CREATED

	rekeyAbsent  = 0  // rekey_read.lua: ABSENT
	rekeyPresent = 1  // rekey_read.lua: PRESENT
	rekeyMoved   = 1  // rekey_move.lua: MOVED
	rekeyGone    = 0  // rekey_move.lua: GONE
	rekeyBoth    = -1 // rekey_move.lua: BOTH names hold data

	dataKeyHeld   = 0 // data_key_orphan.lua: HELD
	dataKeyOrphan = 1 // data_key_orphan.lua: ORPHAN

	subjectNone = 0 // read_subject.lua: NONE of the pairs holds data
)

// scriptCall is one run's KEYS and ARGV.
type scriptCall struct {
	keys []string
	args []any
}

// runScript runs a script by EVALSHA and, when Redis does not have it cached
// (first use, after a restart or SCRIPT FLUSH, or on a new cluster node),
// by EVAL, which also caches it. Single scripts are only ever run this way:
// EVALSHA inside a pipeline would not fall back to EVAL (see evalEach).
func (s *Store) runScript(ctx context.Context, script *redis.Script, c scriptCall) *redis.Cmd {
	return script.Run(ctx, s.client, c.keys, c.args...)
}

// evalEach runs script n times in one pipeline, call giving each run's keys
// and arguments. A pipelined EVALSHA cannot fall back to EVAL by itself:
// when Redis lacks the script the pipeline is sent again with EVAL. The
// scripts run this way are safe to run twice.
func (s *Store) evalEach(ctx context.Context, script *redis.Script, n int, call func(i int) scriptCall) ([]*redis.Cmd, error) {
	run := func(eval func(redis.Pipeliner, []string, ...any) *redis.Cmd) ([]*redis.Cmd, error) {
		cmds := make([]*redis.Cmd, n)
		_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range cmds {
				c := call(i)
				cmds[i] = eval(p, c.keys, c.args...)
			}
			return nil
		})
		return cmds, err
	}
	cmds, err := run(func(p redis.Pipeliner, keys []string, args ...any) *redis.Cmd {
		return script.EvalSha(ctx, p, keys, args...)
	})
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		cmds, err = run(func(p redis.Pipeliner, keys []string, args ...any) *redis.Cmd {
			return script.Eval(ctx, p, keys, args...)
		})
	}
	return cmds, err
}

// readForWriteArgs: read_for_write.lua.
type readForWriteArgs struct {
	known     []subjectKeys // the subject's names under every known HMAC key, the active first
	idemField string        // "" for none
}

func (a readForWriteArgs) call() scriptCall {
	keys := make([]string, 0, 3*len(a.known))
	for _, k := range a.known {
		keys = append(keys, k.state, k.history, k.idempotency)
	}
	return scriptCall{keys, []any{a.idemField, a.known[0].base}}
}

// writeArgs: write.lua. The fields from expected on are its ARGV, in order.
type writeArgs struct {
	to            subjectKeys  // the active HMAC key's names
	from          *subjectKeys // the names holding the data if a previous key's; nil: to's
	dataKey       string       // the data key's name
	expected      string       // "<revision>|<data key handle>" as read
	event         string       // the complete history event
	minID         any          // feed MINID: 0 no trim, "" no feed entry, else unix ms (any: a 0 boxes without allocating)
	rev           string       // the new revision
	handle        string       // the data key's handle
	sealedSubject string       // the subject id sealed with the data key
	prevHash      string       // the previous event's hash
	stateTTL      int64        // ms; 0: none
	historyTTL    int64        // ms; 0: none (and any removed)
	wrapped       string       // a new wrapped data key; "" keeps the stored one
	idemField     string       // "" for none
	fingerprint   string
	idemTTL       int64  // ms
	set           []any  // state fields to set: name, value, ...
	del           []any  // state fields to delete
	stats         string // the day's statistics hash of the partition (a key, always given)
	statsTTL      int64  // ms, set on the statistics hash if it has none
	statsFields   []any  // statistics fields to raise by one; none: nothing counted
}

func (a writeArgs) call() scriptCall {
	keys := make([]string, 6, 8)
	keys[0], keys[1], keys[2], keys[3], keys[4], keys[5] = a.to.feed, a.to.state, a.to.history, a.to.idempotency, a.dataKey, a.stats
	if a.from != nil {
		keys = append(keys, a.from.state, a.from.history)
	}
	args := make([]any, 0, 18+len(a.set)+len(a.del)+len(a.statsFields))
	args = append(args, a.expected, a.event, a.minID, a.rev, a.handle, a.sealedSubject, a.prevHash,
		a.stateTTL, a.historyTTL, a.wrapped, a.idemField, a.fingerprint, a.idemTTL, len(a.set)/2)
	args = append(args, a.set...)
	args = append(args, len(a.del))
	args = append(args, a.del...)
	args = append(args, a.statsTTL, len(a.statsFields))
	args = append(args, a.statsFields...)
	return scriptCall{keys, args}
}

// readStateArgs: read_state.lua.
type readStateArgs struct {
	names  []string // the state hash under each known HMAC key, the active first
	fields []string // none: all
}

func (a readStateArgs) call() scriptCall {
	return scriptCall{a.names, stringsToAny(a.fields)}
}

// readHistoryArgs: read_history.lua.
type readHistoryArgs struct {
	known []subjectKeys
}

func (a readHistoryArgs) call() scriptCall {
	n := len(a.known)
	keys := make([]string, 2*n)
	for i, k := range a.known {
		keys[i], keys[i+n] = k.state, k.history
	}
	return scriptCall{keys, []any{a.known[0].base}}
}

// readHistoryPageArgs: read_history_page.lua.
type readHistoryPageArgs struct {
	known  []subjectKeys
	before int64 // <= 0: from the newest
	limit  int
}

func (a readHistoryPageArgs) call() scriptCall {
	n := len(a.known)
	keys := make([]string, 2*n)
	for i, k := range a.known {
		keys[i], keys[i+n] = k.history, k.state
	}
	return scriptCall{keys, []any{a.before, a.limit, a.known[0].base}}
}

// eraseArgs: erase.lua.
type eraseArgs struct {
	known         []subjectKeys
	sealedSubject string // sealed with the operator's key
	notice        string // the erase event
	tombstone     string
	minID         int64
}

func (a eraseArgs) call() scriptCall {
	keys := make([]string, 0, 2+3*len(a.known))
	keys = append(keys, a.known[0].feed, a.known[0].tombstones())
	for _, k := range a.known {
		keys = append(keys, k.state, k.history, k.idempotency)
	}
	return scriptCall{keys, []any{a.sealedSubject, a.notice, a.tombstone, a.minID, a.known[0].base}}
}

// createGroupArgs: create_group.lua.
type createGroupArgs struct {
	feed     string // the partition's stream
	consumer string
	start    string // "$" or "0"
}

func (a createGroupArgs) call() scriptCall {
	return scriptCall{[]string{a.feed}, []any{a.consumer, a.start}}
}

// collectTrimmedArgs: collect_trimmed.lua.
type collectTrimmedArgs struct {
	feed, trimmed string // the partition's stream and trimmed hash
	consumer      string
	limit         int
}

func (a collectTrimmedArgs) call() scriptCall {
	return scriptCall{[]string{a.feed, a.trimmed}, []any{a.consumer, a.limit}}
}

// rekeyReadArgs: rekey_read.lua.
type rekeyReadArgs struct {
	state string
	base  string // the partition's key prefix
}

func (a rekeyReadArgs) call() scriptCall {
	return scriptCall{[]string{a.state}, []any{a.base}}
}

// rekeyMoveArgs: rekey_move.lua.
type rekeyMoveArgs struct {
	from, to subjectKeys
}

func (a rekeyMoveArgs) call() scriptCall {
	return scriptCall{keys: []string{a.from.state, a.from.history, a.from.idempotency, a.to.state, a.to.history, a.to.idempotency}}
}

// dataKeyOrphanArgs: data_key_orphan.lua.
type dataKeyOrphanArgs struct {
	dataKey string   // its name
	handle  string   // its handle
	states  []string // the subject's state hash under each known HMAC key
}

func (a dataKeyOrphanArgs) call() scriptCall {
	keys := make([]string, 0, 1+len(a.states))
	keys = append(keys, a.dataKey)
	keys = append(keys, a.states...)
	return scriptCall{keys, []any{a.handle}}
}

// readSubjectArgs: read_subject.lua.
type readSubjectArgs struct {
	pairs []string // state hash, history list, ...
	base  string   // the partition's key prefix
}

func (a readSubjectArgs) call() scriptCall {
	return scriptCall{a.pairs, []any{a.base}}
}
