package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/domain"
)

// EventInfo describes who wrote, how and why; it goes into the history event.
type EventInfo struct {
	Type          string        // one of the Event* constants
	Actor         string        // who wrote: "visitor", a service key name, "operator:<name>"
	Source        domain.Source // how the subject expressed the choice
	PolicyVersion string        // the policy file's version label
	Channel       string        // "grpc" or "rest" (stored as a letter, see eventHead)
	Reason        string        // why an operator accessed the data (access events)
	// Client is coarse facts about the client that made the choice (the
	// browser's user agent and platform hints; never an IP). It is sealed
	// with the active encryption key before it is stored.
	Client string
	// Counterpart is the other subject of a link event; sealed.
	Counterpart string
	// Guardian is who confirmed a minor's decisions; sealed.
	Guardian string
	// Minor: a mark-minor event's new status.
	Minor *bool
}

// The event types. Access and export events change nothing, so they add
// nothing to the change feed; every other event does.
const (
	EventUpdate   = "update"
	EventWithdraw = "withdraw"
	EventAccess   = "access"   // an operator read the subject's history
	EventExport   = "export"   // the subject's data was exported
	EventRestrict = "restrict" // processing restricted
	EventLift     = "lift"     // restriction lifted
	EventLink     = "link"     // a visitor was linked to a user (on both)
	EventMinor    = "minor"    // marked as a minor, or the mark cleared
	EventGuardian = "guardian" // a guardian confirmed a minor's decisions
	EventErase    = "erase"    // only in the change feed: the subject was erased
)

// inFeed reports whether an event of this type goes to the change feed.
func inFeed(eventType string) bool {
	return eventType != EventAccess && eventType != EventExport
}

// Write is one change to a subject's decisions or statuses.
type Write struct {
	SubjectID string
	// Decisions are the purposes to set; other purposes are left as they are.
	Decisions map[string]domain.Decision
	// Region is the region code to remember on the subject; "" keeps the
	// stored one.
	Region string
	// GPC: the request carried a Global Privacy Control signal. The first
	// time one is seen is remembered and never overwritten.
	GPC bool
	// ExpectedRevision: nil accepts any; otherwise the write applies only if
	// it equals the stored revision (0: the subject was never written).
	ExpectedRevision *int64
	// IdempotencyKey: "" for none. A write retried with the same key (within
	// Options.IdempotencyTTL) applies once and returns the first result; the
	// same key with a different request is ErrIdempotencyMismatch.
	IdempotencyKey string
	Event          EventInfo
	Now            time.Time // the write's time; zero: time.Now()

	// Status changes; the zero value changes nothing.
	Restrict *bool // true: restricted from Now on; false: lifted
	Minor    *bool // true: a minor from Now on; false: the mark and any guardian confirmation cleared
	// GuardianConfirmed: a guardian confirmed the decisions at Now. The
	// confirmation covers the decisions stored when the write applies (the
	// revision before it, recorded atomically): set ExpectedRevision to the
	// revision the guardian was shown, so that it covers exactly those.
	GuardianConfirmed bool
	GPCAt             time.Time // sets the GPC time to this (a link merge), unlike GPC, even if one is stored
	LinkTo            string    // this visitor is linked to the user LinkTo: its reads and writes follow
	// FollowLink: if the subject is a visitor linked to a user, write to the
	// user's record instead (decisions made through the visitor's token
	// after the link belong to the user).
	FollowLink bool
}

// WriteResult is the outcome of a Write.
type WriteResult struct {
	// Record is the full state right after the write; for a replay, the state
	// stored with the idempotency key (later writes are not in it). Linked is
	// set when the write followed a visitor's link to its user.
	Record domain.Record
	// Replayed: the idempotency key had been used; nothing was written.
	Replayed bool
}

// writeScript applies one write atomically, in one round trip: idempotency
// check, link check, revision check, move from a previous HMAC key's names
// (rotation), state update, history event (hash-chained), change feed entry,
// idempotency record, retention TTLs.
//
// KEYS[1] change feed stream of the subject's partition, then, for each known
// HMAC key, the active one first, a group of three:
//
//	state hash, history list, idempotency hash
//
// With no previous key that is just KEYS[2..4]. All keys share the subject's
// slot.
//
// ARGV[1] request fingerprint; "" when the write has no idempotency key
// ARGV[2] the idempotency key's field in the idempotency hash
// ARGV[3] idempotency record TTL in milliseconds
// ARGV[4] expected revision; "" accepts any
// ARGV[5] region code to store in _reg; "" keeps the stored one
// ARGV[6] unix seconds to store in _gpc unless already set; "" for no signal
// ARGV[7] feed MINID (unix ms): older feed entries may be trimmed; "0" adds
// the feed entry without trimming (see feedTrimEvery); "" adds no feed entry
// (access and export events change nothing downstream)
// ARGV[8] sealed subject id, the feed entry's "sub" field
// ARGV[9] history event JSON without its closing brace (eventTemplate)
// ARGV[10] state hash TTL in ms; "0": none, and none to remove (a user's
// state never gets one: whether a subject is a visitor depends on its id
// alone, see retention)
// ARGV[11] history list TTL in ms; "0" removes any TTL (one set while
// Options.HistoryRetention was not 0)
// ARGV[12] "1": if the state links to a user (_lnk), write nothing and
// return the link
// ARGV[13] "1": a guardian's confirmation; _gdr is set to the revision before
// this write (the decisions it covers)
// ARGV[14] number N of purposes written, then N pairs: purpose id, encoded
// decision (see record.go), sorted by purpose id, to which the script
// appends "|<this write's revision>"; then the number M of internal fields
// to set and M pairs: name, value; then the number D of internal fields to
// delete and their D names.
//
// Returns:
//
//	{0, state}      applied; state is the HGETALL of the state hash after it
//	{1, state}      replay: the key was used by this same request; state is
//	                the one stored with the key, and nothing was written
//	{-1, revision}  expected revision mismatch; revision is the current one
//	{-2}            the key was used by a different request
//	{-3, link}      the subject is a linked visitor (ARGV[12]); link is _lnk
//
// Idempotency records are fields of one hash per subject (so erasing a
// subject can delete them all), each holding its own expiry; the hash lives
// Options.IdempotencyTTL after its last record, and expired fields are pruned
// when it grows.
//
// Rotation: the subject's data (state hash and history list) lives under the
// names of exactly one known key. If it is not under the active names, the
// script RENAMEs it there before writing (same slot, so atomic on a cluster
// too): a rename moves the hash and the list whole, with any TTL. Replays and
// conflicts move nothing. Idempotency records are looked up under every known
// key's name (a retry may reach an instance with another active key during a
// rollout) and stored under the active one.
//
// The event is ARGV[9] completed with ,"rev":N and, when any written purpose
// was decided before, ,"o":"<letters>": one letter per written purpose in
// ARGV's order (the order of the "n" object's keys), "g" or "d" for its
// decision before the write, "-" if it had none. Its hash h is the sha1 hex
// of the event followed by ,"prev":"<h of the previous event, or empty>"},
// and what is stored is the event followed by ,"h":"<h>"}. The previous hash
// is not stored with the event (40 bytes of every event, at millions of
// subjects): it is the last 40 characters before the closing "} of the
// list's last element, and a reader takes it from the event before.
//
// The script's own time is most of a write's cost in Redis, and a
// redis.call costs about as much again as the command it runs (its arguments
// and reply are converted between Lua and Redis), so the script makes as few
// calls as it can: one HMGET reads all the write depends on, TIME is read
// only for idempotency records, a TTL is removed only where one can be (see
// ARGV[10]), the feed is trimmed on some writes only (feedTrimEvery), and the
// event is built by concatenation (no cjson).
var writeScript = redis.NewScript(`
local feed, state, history, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

local now -- Redis' clock (ms), the one PEXPIRE uses: records expire consistently with the hash
if ARGV[1] ~= '' then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  -- KEYS[4], KEYS[7], ...: the subject's idempotency hash under each known key.
  for i = 4, #KEYS, 3 do
    local stored = redis.call('HGET', KEYS[i], ARGV[2])
    if stored then
      local rec = cjson.decode(stored)
      if rec.x > now then
        if rec.f ~= ARGV[1] then return {-2} end
        return {1, rec.s}
      end
    end
  end
end

-- Where the subject's data is now: the active names, or a previous key's.
local from = 2
if #KEYS > 4 and redis.call('EXISTS', state) == 0 then
  for i = 5, #KEYS, 3 do
    if redis.call('EXISTS', KEYS[i]) == 1 then
      from = i
      break
    end
  end
end

-- One read for all the write depends on: the revision, the link and the
-- written purposes' decisions before it.
local at = 14
local n = tonumber(ARGV[at])
local fields = {'_rev', '_lnk'}
for i = 1, n do fields[i + 2] = ARGV[at + 2 * i - 1] end
local before = redis.call('HMGET', KEYS[from], unpack(fields))

if ARGV[12] == '1' and before[2] then return {-3, before[2]} end
local current = tonumber(before[1] or '0')
if ARGV[4] ~= '' and tonumber(ARGV[4]) ~= current then
  return {-1, current}
end
local rev = tostring(current + 1) -- formatted once: HSET, the event and XADD take it

if from ~= 2 then
  redis.call('RENAME', KEYS[from], state)
  if redis.call('EXISTS', KEYS[from + 1]) == 1 then
    redis.call('RENAME', KEYS[from + 1], history)
  end
end

local set = {'_rev', rev}
local old, decided = {}, false
for i = 1, n do
  set[2 * i + 1] = ARGV[at + 2 * i - 1]
  set[2 * i + 2] = ARGV[at + 2 * i] .. '|' .. rev
  local b = before[i + 2]
  if b then
    old[i], decided = string.sub(b, 1, 1), true
  else
    old[i] = '-'
  end
end
at = at + 2 * n + 1
local m = tonumber(ARGV[at])
for i = 1, m do
  set[#set + 1] = ARGV[at + 2 * i - 1]
  set[#set + 1] = ARGV[at + 2 * i]
end
at = at + 2 * m + 1
local d = tonumber(ARGV[at])
if ARGV[5] ~= '' then
  set[#set + 1] = '_reg'
  set[#set + 1] = ARGV[5]
end
if ARGV[13] == '1' and current > 0 then -- at revision 0 there is nothing to cover
  set[#set + 1] = '_gdr'
  set[#set + 1] = tostring(current)
end
redis.call('HSET', state, unpack(set))
if d > 0 then redis.call('HDEL', state, unpack(ARGV, at + 1, at + d)) end
if ARGV[6] ~= '' then redis.call('HSETNX', state, '_gpc', ARGV[6]) end

local prev = ''
local last = redis.call('LINDEX', history, -1)
if last then prev = string.sub(last, -42, -3) end
local content = ARGV[9] .. ',"rev":' .. rev
if decided then content = content .. ',"o":"' .. table.concat(old) .. '"' end
local event = content .. ',"h":"' .. redis.sha1hex(content .. ',"prev":"' .. prev .. '"}') .. '"}'
redis.call('RPUSH', history, event)
if ARGV[7] == '0' then
  redis.call('XADD', feed, '*', 'sub', ARGV[8], 'rev', rev, 'ev', event)
elseif ARGV[7] ~= '' then
  redis.call('XADD', feed, 'MINID', '~', ARGV[7], '*', 'sub', ARGV[8], 'rev', rev, 'ev', event)
end

if ARGV[10] ~= '0' then redis.call('PEXPIRE', state, ARGV[10]) end
if ARGV[11] ~= '0' then redis.call('PEXPIRE', history, ARGV[11]) else redis.call('PERSIST', history) end

local snapshot = redis.call('HGETALL', state)
if ARGV[1] ~= '' then
  local ttl = tonumber(ARGV[3])
  redis.call('HSET', idem, ARGV[2], cjson.encode({f = ARGV[1], s = snapshot, x = now + ttl}))
  redis.call('PEXPIRE', idem, ttl)
  if redis.call('HLEN', idem) > 32 then
    local all = redis.call('HGETALL', idem)
    for i = 1, #all, 2 do
      if cjson.decode(all[i + 1]).x <= now then redis.call('HDEL', idem, all[i]) end
    end
  end
end
return {0, snapshot}
`)

// feedTrimEvery: one write in feedTrimEvery (counted across the process)
// trims its partition's feed. The trim is approximate (MINID ~): Redis drops
// only whole stream nodes, about a dozen entries each, once all of a node is
// older than Options.FeedRetention, so a trim on every write mostly finds
// nothing to do, and looking cost ~5% of the write script's time in Redis.
// A partition's old entries now go a few of its writes later: on a busy
// partition milliseconds, on a quiet one as long as its next few writes take
// (approximate trimming already kept up to a node's worth longer).
const feedTrimEvery = 8

var feedWrites atomic.Uint32

// Write applies w atomically and returns the state right after it. With
// FollowLink, a write to a linked visitor is applied to its user instead.
func (s *Store) Write(ctx context.Context, w Write) (WriteResult, error) {
	res, link, err := s.write(ctx, w)
	if err != nil || link == "" {
		return res, err
	}
	user, err := s.opts.Sealer.Open(link)
	if err != nil {
		return WriteResult{}, fmt.Errorf("store: a visitor's link cannot be opened with the known encryption keys: %w", err)
	}
	w.SubjectID = string(user)
	w.FollowLink = false // users are never linked: one hop
	res, _, err = s.write(ctx, w)
	res.Record.Linked = true
	return res, err
}

// write runs writeScript once. link is the sealed user id when the subject
// is a linked visitor and w.FollowLink is set; nothing was written then.
func (s *Store) write(ctx context.Context, w Write) (res WriteResult, link string, err error) {
	if w.Now.IsZero() {
		w.Now = time.Now()
	}
	template, err := s.eventTemplate(w)
	if err != nil {
		return WriteResult{}, "", err
	}
	purposes := make([]string, 0, len(w.Decisions))
	for p := range w.Decisions {
		if err := checkPurposeID(p); err != nil {
			return WriteResult{}, "", err
		}
		purposes = append(purposes, p)
	}
	slices.Sort(purposes)

	// The key layout is writeScript's: the feed, then a group of names per
	// known HMAC key, the active one first.
	known := s.knownKeysFor(w.SubjectID)
	keys := make([]string, 0, 1+3*len(known))
	keys = append(keys, known[0].feed)
	for _, k := range known {
		keys = append(keys, k.state, k.history, k.idempotency)
	}
	fp, field := "", "" // fp is never "" with an idempotency key: the script relies on that
	if w.IdempotencyKey != "" {
		fp, field = fingerprint(w), idempotencyField(w.IdempotencyKey)
	}
	expected := ""
	if w.ExpectedRevision != nil {
		expected = strconv.FormatInt(*w.ExpectedRevision, 10)
	}
	gpc := ""
	if w.GPC {
		gpc = strconv.FormatInt(w.Now.Unix(), 10)
	}
	var minID any = 0 // a feed entry, no trimming
	if !inFeed(w.Event.Type) {
		minID = ""
	} else if feedWrites.Add(1)%feedTrimEvery == 0 {
		minID = max(w.Now.UnixMilli()-s.opts.FeedRetention.Milliseconds(), 0)
	}
	stateTTL, historyTTL := s.retention(w.SubjectID)
	follow, guardian := "", ""
	if w.FollowLink {
		follow = "1"
	}
	if w.GuardianConfirmed {
		guardian = "1"
	}
	args := []any{fp, field, s.opts.IdempotencyTTL.Milliseconds(), expected, w.Region, gpc, minID,
		s.opts.Sealer.Seal([]byte(w.SubjectID)), template, stateTTL.Milliseconds(), historyTTL.Milliseconds(), follow,
		guardian, len(purposes)}
	for _, p := range purposes {
		v, err := encodeDecision(w.Decisions[p])
		if err != nil {
			return WriteResult{}, "", fmt.Errorf("%w (purpose %q)", err, p)
		}
		args = append(args, p, v)
	}
	set, del := s.statusFields(w)
	args = append(args, len(set)/2)
	args = append(args, set...)
	args = append(args, len(del))
	args = append(args, del...)

	reply, err := s.runScript(ctx, writeScript, keys, args...).Slice()
	if err != nil {
		return WriteResult{}, "", wrapErr("write", err)
	}
	if len(reply) == 0 {
		return WriteResult{}, "", errors.New("store: write: empty script reply")
	}
	code, _ := reply[0].(int64)
	switch {
	case code == -1 && len(reply) == 2:
		current, _ := reply[1].(int64)
		return WriteResult{}, "", &ConflictError{Expected: *w.ExpectedRevision, Current: current}
	case code == -2:
		return WriteResult{}, "", ErrIdempotencyMismatch
	case code == -3 && len(reply) == 2:
		link, _ := reply[1].(string)
		return WriteResult{}, link, nil
	case (code == 0 || code == 1) && len(reply) == 2:
		fields, err := pairsToMap(reply[1])
		if err != nil {
			return WriteResult{}, "", err
		}
		rec, err := decodeRecord(fields, s.opts.Sealer)
		return WriteResult{Record: rec, Replayed: code == 1}, "", err
	}
	return WriteResult{}, "", fmt.Errorf("store: write: unexpected script reply %v", reply[0])
}

// statusFields are the internal fields a write sets (name, value pairs) and
// deletes.
func (s *Store) statusFields(w Write) (set, del []any) {
	unix := strconv.FormatInt(w.Now.Unix(), 10)
	if w.Restrict != nil {
		if *w.Restrict {
			set = append(set, fieldRestrict, unix)
		} else {
			del = append(del, fieldRestrict)
		}
	}
	if w.Minor != nil {
		if *w.Minor {
			set = append(set, fieldMinor, unix)
		} else {
			del = append(del, fieldMinor, fieldGuardian, fieldGuardianRevision)
		}
	}
	if w.GuardianConfirmed {
		set = append(set, fieldGuardian, unix)
	}
	if !w.GPCAt.IsZero() {
		set = append(set, fieldGPC, strconv.FormatInt(w.GPCAt.Unix(), 10))
	}
	if w.LinkTo != "" {
		set = append(set, fieldLink, s.opts.Sealer.Seal([]byte(w.LinkTo)))
	}
	return set, del
}

// retention is how long a subject's state hash and history list live after
// its last write; 0: no expiry. Anonymous visitors' records expire after
// Options.VisitorRetention; users' records are kept until erased, and their
// history for Options.HistoryRetention (0: as long as the record).
func (s *Store) retention(subjectID string) (state, history time.Duration) {
	history = s.opts.HistoryRetention
	if domain.IsVisitorID(subjectID) {
		state = s.opts.VisitorRetention
		if history == 0 || history > state {
			history = state
		}
	}
	return state, history
}

// eventHead is the part of a history event built in Go. JSON keys are short
// and MarshalJSON leaves out what can be: every byte is stored once per
// event, for every subject (`make bench` aims at <= 250 B of Redis memory per
// event).
type eventHead struct {
	Type    string            `json:"t,omitempty"` // "" in an update event (see MarshalJSON)
	At      int64             `json:"at"`          // unix ms
	Actor   string            `json:"a,omitempty"`
	Source  string            `json:"s"` // source letter, as in the state hash
	Policy  string            `json:"pv,omitempty"`
	Region  string            `json:"r,omitempty"` // region code given with the write
	Channel string            `json:"c,omitempty"` // a letter for "grpc" and "rest" (see MarshalJSON)
	GPC     bool              `json:"g,omitempty"`
	Why     string            `json:"why,omitempty"` // an access event's reason
	Client  string            `json:"cl,omitempty"`  // sealed client facts (EventInfo.Client)
	Link    string            `json:"lk,omitempty"`  // sealed counterpart of a link event
	Guard   string            `json:"gd,omitempty"`  // sealed guardian of a guardian event
	Minor   *bool             `json:"m,omitempty"`   // a minor event's new status
	New     map[string]string `json:"n"`             // purpose -> "g" or "d"
}

// channelLetters stand for the channels in stored events. Events of the
// earlier layouts spell them out; decodeEvent reads both. (A channel named
// "g" or "r" itself would read back as "grpc" or "rest": there is none.)
var channelLetters = map[string]string{"grpc": "g", "rest": "r"}

var lettersToChannel = map[string]string{"g": "grpc", "r": "rest"}

// MarshalJSON writes the head in the stored layout: the type of the most
// common event, an update, is left out (a missing type reads as an update),
// and the channel is a letter. Other types stay spelled out: eraseScript
// finds link events by "t":"link".
func (h eventHead) MarshalJSON() ([]byte, error) {
	type plain eventHead // the same fields without this method
	p := plain(h)
	if p.Type == EventUpdate {
		p.Type = ""
	}
	if letter, ok := channelLetters[p.Channel]; ok {
		p.Channel = letter
	}
	return json.Marshal(p)
}

// eventTemplate is the event's JSON without its closing brace: the write
// script appends the revision, old values and the chain hashes.
func (s *Store) eventTemplate(w Write) (string, error) {
	if w.SubjectID == "" {
		return "", errors.New("store: empty subject id")
	}
	if w.Event.Type == "" {
		return "", errors.New("store: event type is required")
	}
	letter, ok := sourceLetters[w.Event.Source]
	if !ok {
		return "", fmt.Errorf("store: unknown event source %q", w.Event.Source)
	}
	head := eventHead{
		Type: w.Event.Type, At: w.Now.UnixMilli(), Actor: w.Event.Actor, Source: letter,
		Policy: w.Event.PolicyVersion, Region: w.Region, Channel: w.Event.Channel, GPC: w.GPC, Why: w.Event.Reason,
		New: make(map[string]string, len(w.Decisions)),
	}
	if w.Event.Client != "" {
		head.Client = s.opts.Sealer.Seal([]byte(w.Event.Client))
	}
	if w.Event.Counterpart != "" {
		head.Link = s.opts.Sealer.Seal([]byte(w.Event.Counterpart))
	}
	if w.Event.Guardian != "" {
		head.Guard = s.opts.Sealer.Seal([]byte(w.Event.Guardian))
	}
	head.Minor = w.Event.Minor
	for p, d := range w.Decisions {
		head.New[p] = grantedLetter(d.Granted)
	}
	b, err := head.MarshalJSON() // map keys come out sorted, as writeScript's purposes
	if err != nil {
		return "", err
	}
	return string(b[:len(b)-1]), nil
}

// fingerprint identifies a request for its idempotency key: what it asks to
// change, not when (a retry comes later) nor through which channel.
func fingerprint(w Write) string {
	granted := make(map[string]bool, len(w.Decisions))
	for p, d := range w.Decisions {
		granted[p] = d.Granted
	}
	canonical := struct {
		Decisions map[string]bool `json:"d"` // encoded with sorted keys
		Region    string          `json:"r"`
		GPC       bool            `json:"g"`
		Expected  *int64          `json:"e"`
		Type      string          `json:"t"`
		Source    domain.Source   `json:"s"`
		Actor     string          `json:"a"`
	}{granted, w.Region, w.GPC, w.ExpectedRevision, w.Event.Type, w.Event.Source, w.Event.Actor}
	b, _ := json.Marshal(canonical) // cannot fail: plain strings, bools and ints
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
