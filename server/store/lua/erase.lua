-- erase: deletes a subject's state hash, history list, idempotency hash and
-- data key under every known HMAC key's names and, if anything was there,
-- adds an "erase" notice to the change feed (so downstream systems delete
-- what they hold) and an anonymous tombstone (no subject id, no key name) to
-- the partition's tombstone list. One slot, so atomic on a cluster too.
-- Deleting the data key erases everything sealed with it, wherever a copy is.
--
-- KEYS[1] the partition's change feed, KEYS[2] its tombstone list, then per
--         known HMAC key: state hash, history list, idempotency hash
-- ARGV[1] the subject id sealed with the operator's key, the notice's "sub"
-- ARGV[2] the notice's event, stored as given
-- ARGV[3] the tombstone, stored as given
-- ARGV[4] feed MINID (unix ms), as in write
-- ARGV[5] the partition's key prefix, to name the data key
--
-- Reply {NOTHING} (0) if nothing was stored; otherwise {ERASED (1), notice
-- id, link events, handle, wrapped}: the history's link events (written
-- before users' data keys kept their linked visitors) and the data
-- key's handle and record as they were ('' for none), from which the caller
-- reads the linked visitors.
local NOTHING, ERASED = 0, 1

local sealed_subject, notice, tombstone, minid, base = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

-- A link event is known by its type; an event that does not decode is not
-- one (an erasure must not fail on a damaged history).
local function is_link(e)
  local ok, ev = pcall(cjson.decode, e)
  return ok and type(ev) == 'table' and ev.t == 'link'
end

local existed = false
local links, handle, wrapped = {}, '', ''
for i = 3, #KEYS, 3 do
  if redis.call('EXISTS', KEYS[i], KEYS[i + 1]) > 0 then
    existed = true
    handle = redis.call('HGET', KEYS[i], '_dk') or ''
    for _, e in ipairs(redis.call('LRANGE', KEYS[i + 1], 0, -1)) do
      if is_link(e) then links[#links + 1] = e end
    end
  end
  redis.call('DEL', KEYS[i], KEYS[i + 1], KEYS[i + 2])
end
if not existed then return {NOTHING} end
if handle ~= '' then
  local key = base .. ':k:' .. handle
  wrapped = redis.call('GET', key) or ''
  redis.call('DEL', key)
end
local id = redis.call('XADD', KEYS[1], 'MINID', '~', minid, '*', 'd', handle, 'sub', sealed_subject, 'rev', 0, 'p', '', 'ev', notice)
redis.call('RPUSH', KEYS[2], tombstone)
return {ERASED, id, links, handle, wrapped}
