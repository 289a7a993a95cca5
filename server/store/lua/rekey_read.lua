-- rekey_read: reads a state's data key at one instant.
--
-- KEYS[1] the state hash
-- ARGV[1] the partition's key prefix, to name the data key
--
-- Reply {ABSENT (0), '', ''} when the state does not exist, else {PRESENT
-- (1), data key handle or '', wrapped data key or ''}.
local ABSENT, PRESENT = 0, 1

local state, base = KEYS[1], ARGV[1]
if redis.call('EXISTS', state) == 0 then return {ABSENT, '', ''} end
local handle = redis.call('HGET', state, '_dk') or ''
local wrapped = ''
if handle ~= '' then wrapped = redis.call('GET', base .. ':k:' .. handle) or '' end
return {PRESENT, handle, wrapped}
