-- collect_trimmed: finds, for one consumer on one partition, the entries
-- retention trimmed before the consumer acknowledged them, adds their number
-- to the consumer's count in the partition's trimmed hash, and forgets them
-- so they are counted once (see collectTrimmed in feed_lag.go for which
-- entries count).
--
-- KEYS[1] the partition's feed stream, KEYS[2] the partition's trimmed hash
-- ARGV[1] the consumer (group) name
-- ARGV[2] the scan limit: entries after the group's position looked at
--
-- Reply the number newly counted (>= 0); NO_GROUP (-1) when the stream or
-- the consumer's group does not exist.
local NO_GROUP = -1

local stream, trimmed_hash = KEYS[1], KEYS[2]
local group_name, limit = ARGV[1], tonumber(ARGV[2])

local function fields(flat)
  local m = {}
  for i = 1, #flat, 2 do m[flat[i]] = flat[i + 1] end
  return m
end
local function before(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end

if redis.call('EXISTS', stream) == 0 then return NO_GROUP end
local group
for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
  g = fields(g)
  if g['name'] == group_name then
    group = g
    break
  end
end
if not group then return NO_GROUP end
local info = fields(redis.call('XINFO', 'STREAM', stream))
local first = info['first-entry'] and info['first-entry'][1]
local trimmed = 0

local upto = '+'
if first then upto = '(' .. first end
local gone = redis.call('XPENDING', stream, group_name, '-', upto, limit)
if #gone > 0 then
  local ids = {}
  for i, p in ipairs(gone) do ids[i] = p[1] end
  trimmed = redis.call('XACK', stream, group_name, unpack(ids))
end

local lag, last = group['lag'], group['last-delivered-id']
if lag and lag > 0 then
  local kept
  if not first or before(last, first) then
    kept = info['length']
  else
    local rest = redis.call('XRANGE', stream, '(' .. last, '+', 'COUNT', limit + 1)
    if #rest <= limit then kept = #rest end
  end
  if kept and lag > kept then
    trimmed = trimmed + lag - kept
    redis.call('XGROUP', 'SETID', stream, group_name, last, 'ENTRIESREAD', info['entries-added'] - kept)
  end
end
if trimmed > 0 then redis.call('HINCRBY', trimmed_hash, group_name, trimmed) end
return trimmed
