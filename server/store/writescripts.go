package store

import "github.com/redis/go-redis/v9"

// A write takes two scripts, each one round trip: readForWriteScript reads
// what the write depends on, Go computes the write whole — the new state's
// fields, the history event and its hash, the feed entry, the integrity tag
// (see integrity.go) — and writeScript applies it if the subject's revision
// is still the one read, else the write is computed again from a new read.
// The tags and the event hash are keyed MACs made with the operator's keys,
// which never go to Redis: that is why the write is computed in Go, not in a
// script.

// readForWriteScript reads, at one instant, all a write depends on.
//
// KEYS for each known HMAC key, the active one first: state hash, history
// list, idempotency hash. All share the subject's slot.
// ARGV[1] the idempotency key's field; "" for none
// ARGV[2] the partition's key prefix (<prefix>:{p<partition>}), to name the
// data key: its handle is in the state, so its name cannot be passed as a
// key; it shares the slot.
//
// Returns {names, state, tail, wrapped data key, idempotency record, now}:
// names is the index (1, 2, ...) of the HMAC key whose names hold the
// subject's data (1 when none does), state its HGETALL, tail the history's
// last two events (fewer when it has fewer: the last one's hash is what the
// new event chains to, and the one before lets the write check the last
// one), the wrapped data key "" for none, the
// idempotency record "" for none, now Redis' clock in unix ms (the clock
// idempotency records expire by).
var readForWriteScript = redis.NewScript(`
local from = 1
for i = 1, #KEYS, 3 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    from = i
    break
  end
end
local tail = redis.call('LRANGE', KEYS[from + 1], -2, -1)
local wrapped = ''
local handle = redis.call('HGET', KEYS[from], '_dk')
if handle then wrapped = redis.call('GET', ARGV[2] .. ':k:' .. handle) or '' end
local idem = ''
if ARGV[1] ~= '' then
  for i = 3, #KEYS, 3 do
    local r = redis.call('HGET', KEYS[i], ARGV[1])
    if r then
      idem = r
      break
    end
  end
end
local t = redis.call('TIME')
return {(from + 2) / 3, redis.call('HGETALL', KEYS[from]), tail, wrapped, idem,
  tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}
`)

// writeScript applies a write computed in Go, if the subject's revision is
// still the one it was computed from.
//
// KEYS[1] the partition's change feed, KEYS[2] state hash, KEYS[3] history
// list, KEYS[4] idempotency hash, KEYS[5] the data key; when the subject's
// data is under a previous HMAC key's names (rotation), KEYS[6] that state
// hash and KEYS[7] that history list, which are renamed to the active names
// (a rename moves a hash or list whole, with its TTL). All share one slot.
//
// ARGV[1] "<revision>|<data key handle>" as read: the write applies only if
// the state still has both (a subject erased and written again since the
// read may be back at the same revision, under another data key)
// ARGV[2] the history event
// ARGV[3] feed MINID (unix ms): older feed entries may be trimmed; "0" adds
// the feed entry without trimming (see feedTrimEvery); "" adds no feed entry
// (access and export events change nothing downstream)
// ARGV[4] the new revision
// ARGV[5] the data key's handle, the feed entry's "d"
// ARGV[6] the subject id sealed with the data key, the feed entry's "sub"
// ARGV[7] the previous event's hash, the feed entry's "p" (with it a reader
// checks the event's hash)
// ARGV[8] state hash and data key TTL in ms; "0": none, and none to remove
// (a user's never get one: whether a subject is a visitor depends on its id
// alone, see retention)
// ARGV[9] history list TTL in ms; "0" removes any TTL (one set while
// Options.HistoryRetention was not 0)
// ARGV[10] a new wrapped data key to store; "" keeps the stored one
// ARGV[11] the idempotency key's field, "" for none; ARGV[12] the request's
// fingerprint; ARGV[13] the record's TTL in ms
// ARGV[14] N, then N pairs of state fields to set: name, value; then D and
// the D names of state fields to delete.
//
// Returns {0} when applied, {-1} when the revision changed since the read.
//
// Idempotency records are fields of one hash per subject (so erasing a
// subject can delete them all), each holding its own expiry and the state
// right after the write (the reply to a replay); the hash lives
// Options.IdempotencyTTL after its last record, and expired fields are pruned
// when it grows.
var writeScript = redis.NewScript(`
local feed, state, history, idem, datakey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local from = KEYS[6] or state
local seen = redis.call('HMGET', from, '_rev', '_dk')
if (seen[1] or '0') .. '|' .. (seen[2] or '') ~= ARGV[1] then return {-1} end
if KEYS[6] then
  redis.call('RENAME', KEYS[6], state)
  if redis.call('EXISTS', KEYS[7]) == 1 then redis.call('RENAME', KEYS[7], history) end
end

local n = tonumber(ARGV[14])
if n > 0 then redis.call('HSET', state, unpack(ARGV, 15, 14 + 2 * n)) end
local at = 15 + 2 * n
local d = tonumber(ARGV[at])
if d > 0 then redis.call('HDEL', state, unpack(ARGV, at + 1, at + d)) end
redis.call('RPUSH', history, ARGV[2])
if ARGV[10] ~= '' then redis.call('SET', datakey, ARGV[10]) end
if ARGV[3] == '0' then
  redis.call('XADD', feed, '*', 'd', ARGV[5], 'sub', ARGV[6], 'rev', ARGV[4], 'p', ARGV[7], 'ev', ARGV[2])
elseif ARGV[3] ~= '' then
  redis.call('XADD', feed, 'MINID', '~', ARGV[3], '*', 'd', ARGV[5], 'sub', ARGV[6], 'rev', ARGV[4], 'p', ARGV[7], 'ev', ARGV[2])
end
if ARGV[8] ~= '0' then
  redis.call('PEXPIRE', state, ARGV[8])
  redis.call('PEXPIRE', datakey, ARGV[8])
end
if ARGV[9] ~= '0' then redis.call('PEXPIRE', history, ARGV[9]) else redis.call('PERSIST', history) end

if ARGV[11] ~= '' then
  local time = redis.call('TIME') -- Redis' clock, the one PEXPIRE uses
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local ttl = tonumber(ARGV[13])
  redis.call('HSET', idem, ARGV[11], cjson.encode({f = ARGV[12], s = redis.call('HGETALL', state), x = now + ttl}))
  redis.call('PEXPIRE', idem, ttl)
  if redis.call('HLEN', idem) > 32 then
    local all = redis.call('HGETALL', idem)
    for i = 1, #all, 2 do
      if cjson.decode(all[i + 1]).x <= now then redis.call('HDEL', idem, all[i]) end
    end
  end
end
return {0}
`)
