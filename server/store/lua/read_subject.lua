-- read_subject: reads a subject's state, history and data key at one
-- instant, under the first of the given names that hold any (verify).
--
-- KEYS  pairs of state hash, history list
-- ARGV[1] the partition's key prefix, to name the data key
--
-- Reply {pair, state, history, wrapped, others}: the pair holding the data
-- (1, 2, ...; NONE (0): no pair does), its state (HGETALL) and history
-- (LRANGE), its wrapped data key or '', and how many further pairs hold data.
local NONE = 0

local base = ARGV[1]
local found, others = NONE, 0
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i], KEYS[i + 1]) > 0 then
    if found == NONE then found = (i + 1) / 2 else others = others + 1 end
  end
end
if found == NONE then return {NONE, {}, {}, '', 0} end
local state = KEYS[2 * found - 1]
local handle = redis.call('HGET', state, '_dk')
local wrapped = ''
if handle then wrapped = redis.call('GET', base .. ':k:' .. handle) or '' end
return {found, redis.call('HGETALL', state), redis.call('LRANGE', KEYS[2 * found], 0, -1), wrapped, others}
