-- write: applies a write computed in Go (the second of a write's two round
-- trips; see write.go), if the subject's revision is still the one it was
-- computed from. The event arrives complete and is stored as given.
--
-- KEYS[1] the partition's change feed
-- KEYS[2] the state hash, KEYS[3] the history list, KEYS[4] the idempotency
--         hash, KEYS[5] the data key (all under the active HMAC key's names)
-- KEYS[6] the partition's statistics hash of the write's UTC day (stats.go);
--         touched only when the write counts something
-- KEYS[7], KEYS[8] only when the subject's data is under a previous HMAC
--         key's names (rotation): that state hash and history list, renamed
--         to the active names (a rename moves a hash or list whole, with its
--         TTL). All keys share one slot.
--
-- ARGV[1]  "<revision>|<data key handle>" as read: the write applies only if
--          the state still has both (a subject erased and written again
--          since the read may be back at the same revision, under another
--          data key)
-- ARGV[2]  the history event, stored as given (the feed entry's "ev")
-- ARGV[3]  feed MINID (unix ms): older feed entries may be trimmed; "0" adds
--          the feed entry without trimming; "" adds no feed entry (access and
--          export events change nothing downstream)
-- ARGV[4]  the new revision, the feed entry's "rev"
-- ARGV[5]  the data key's handle, the feed entry's "d"
-- ARGV[6]  the subject id sealed with the data key, the feed entry's "sub"
-- ARGV[7]  the previous event's hash, the feed entry's "p"
-- ARGV[8]  state hash and data key TTL in ms; "0": none, and none to remove
--          (whether a subject is a visitor, whose record expires, depends on
--          its id alone, so a user's never had one)
-- ARGV[9]  history list TTL in ms; "0" removes any TTL (one set while a
--          history retention was configured)
-- ARGV[10] a new wrapped data key to store; "" keeps the stored one
-- ARGV[11] the idempotency key's field, "" for none
-- ARGV[12] the request's fingerprint
-- ARGV[13] the idempotency record's TTL in ms
-- ARGV[14] N, then N pairs of state fields to set (name, value); then D, then
--          the D names of state fields to delete; then the statistics hash's
--          TTL in ms (set only if it has none: PEXPIRE NX, Redis 7.0+, when
--          the first field is new), then C, then the C statistics fields to
--          raise by one (computed in Go; C = 0: the write counts nothing).
--          The statistics are raised before anything else is written, so an
--          increment that fails fails the whole write.
--
-- Reply {APPLIED} (0) when applied, {STALE} (-1) when the revision changed
-- since the read (nothing written).
--
-- Idempotency records are fields of one hash per subject (so erasing a
-- subject deletes them all), each holding its own expiry and the state right
-- after the write (the reply to a replay); the hash lives as long as its
-- last record, and expired fields are pruned when it grows.
local APPLIED, STALE = 0, -1

local feed, state, history, idem, datakey, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local from_state, from_history = KEYS[7], KEYS[8]
local expected, event, minid, rev = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local handle, sealed_subject, prev_hash = ARGV[5], ARGV[6], ARGV[7]
local state_ttl, history_ttl, wrapped = ARGV[8], ARGV[9], ARGV[10]
local idem_field, fingerprint, idem_ttl = ARGV[11], ARGV[12], tonumber(ARGV[13])

local seen = redis.call('HMGET', from_state or state, '_rev', '_dk')
if (seen[1] or '0') .. '|' .. (seen[2] or '') ~= expected then return {STALE} end

local n = tonumber(ARGV[14])
local at = 15 + 2 * n
local d = tonumber(ARGV[at])
-- The statistics first: an increment that fails (a field that is not a
-- number, a key that is not a hash) fails the write before it wrote anything.
local st = at + d + 1
local c = tonumber(ARGV[st + 1])
if c > 0 then
  -- A new hash's first field is new too (HINCRBY answers 1): only then can
  -- the hash lack its expiry, so only then is it set.
  if redis.call('HINCRBY', stats, ARGV[st + 2], 1) == 1 then redis.call('PEXPIRE', stats, ARGV[st], 'NX') end
  for i = st + 3, st + 1 + c do redis.call('HINCRBY', stats, ARGV[i], 1) end
end

if from_state then
  redis.call('RENAME', from_state, state)
  if redis.call('EXISTS', from_history) == 1 then redis.call('RENAME', from_history, history) end
end

if n > 0 then redis.call('HSET', state, unpack(ARGV, 15, 14 + 2 * n)) end
if d > 0 then redis.call('HDEL', state, unpack(ARGV, at + 1, at + d)) end
redis.call('RPUSH', history, event)
if wrapped ~= '' then redis.call('SET', datakey, wrapped) end
if minid == '0' then
  redis.call('XADD', feed, '*', 'd', handle, 'sub', sealed_subject, 'rev', rev, 'p', prev_hash, 'ev', event)
elseif minid ~= '' then
  redis.call('XADD', feed, 'MINID', '~', minid, '*', 'd', handle, 'sub', sealed_subject, 'rev', rev, 'p', prev_hash, 'ev', event)
end
if state_ttl ~= '0' then
  redis.call('PEXPIRE', state, state_ttl)
  redis.call('PEXPIRE', datakey, state_ttl)
end
if history_ttl ~= '0' then redis.call('PEXPIRE', history, history_ttl) else redis.call('PERSIST', history) end

if idem_field ~= '' then
  local time = redis.call('TIME') -- Redis' clock, the one PEXPIRE uses
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  redis.call('HSET', idem, idem_field, cjson.encode({f = fingerprint, s = redis.call('HGETALL', state), x = now + idem_ttl}))
  redis.call('PEXPIRE', idem, idem_ttl)
  if redis.call('HLEN', idem) > 32 then
    local all = redis.call('HGETALL', idem)
    for i = 1, #all, 2 do
      if cjson.decode(all[i + 1]).x <= now then redis.call('HDEL', idem, all[i]) end
    end
  end
end
return {APPLIED}
