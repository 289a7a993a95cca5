-- read_state: reads a subject's state hash while a previous HMAC key is
-- known, from the first of its names that exists (its data lives under
-- exactly one), atomically, so a write moving the data between names cannot
-- make the read miss it. Without previous keys reads are plain HGETALL and
-- HMGET instead.
--
-- KEYS  the subject's state hash under each known HMAC key, the active first
-- ARGV  the fields to read (HMGET); none: all of them (HGETALL)
--
-- Reply what HMGET or HGETALL replies.
local key = KEYS[1]
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    key = KEYS[i]
    break
  end
end
if #ARGV == 0 then return redis.call('HGETALL', key) end
return redis.call('HMGET', key, unpack(ARGV))
