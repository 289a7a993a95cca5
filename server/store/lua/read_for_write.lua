-- read_for_write: reads, at one instant, all a write depends on (the first
-- of a write's two round trips; see write.go).
--
-- KEYS  for each known HMAC key, the active one first: the subject's state
--       hash, history list and idempotency hash. All share the subject's
--       slot.
-- ARGV[1] the idempotency key's field; "" for none
-- ARGV[2] the partition's key prefix (<prefix>:{p<partition>}), to name the
--       data key: its handle is in the state, so its name cannot be passed
--       as a key; it shares the slot.
--
-- Reply {names, state, tail, wrapped, idem, now}:
--   names   the index (1, 2, ...) of the HMAC key whose names hold the
--           subject's data (1 when none does)
--   state   its state hash (HGETALL)
--   tail    the history's last two events, fewer when it has fewer: the
--           last one's hash is what the new event chains to, the one before
--           lets the write check the last one
--   wrapped the wrapped data key, "" for none
--   idem    the idempotency record, "" for none
--   now     Redis' clock in unix ms (the clock idempotency records expire by)
local idem_field, base = ARGV[1], ARGV[2]

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
if handle then wrapped = redis.call('GET', base .. ':k:' .. handle) or '' end
local idem = ''
if idem_field ~= '' then
  for i = 3, #KEYS, 3 do
    local r = redis.call('HGET', KEYS[i], idem_field)
    if r then
      idem = r
      break
    end
  end
end
local t = redis.call('TIME')
return {(from + 2) / 3, redis.call('HGETALL', KEYS[from]), tail, wrapped, idem,
  tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}
