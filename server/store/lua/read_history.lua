-- read_history: reads a subject's state hash, whole history list and data
-- key at one instant, under the first known HMAC key's names that hold any.
--
-- KEYS  the state hash under each known HMAC key, the active first, then the
--       history list under each in the same order. One slot.
-- ARGV[1] the partition's key prefix, to name the data key
--
-- Reply {state (HGETALL), history (LRANGE), wrapped data key or ''}.
local base = ARGV[1]
local k = #KEYS / 2
for i = 1, k do
  if redis.call('EXISTS', KEYS[i], KEYS[i + k]) > 0 then
    local handle = redis.call('HGET', KEYS[i], '_dk')
    local wrapped = ''
    if handle then wrapped = redis.call('GET', base .. ':k:' .. handle) or '' end
    return {redis.call('HGETALL', KEYS[i]), redis.call('LRANGE', KEYS[i + k], 0, -1), wrapped}
  end
end
return {{}, {}, ''}
