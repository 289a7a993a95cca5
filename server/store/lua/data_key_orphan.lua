-- data_key_orphan: reports whether a data key exists while no state names
-- it, at one instant: a legitimate erasure or expiry takes both at once, a
-- write makes both at once, a rotation moves the state between the names
-- given.
--
-- KEYS[1] the data key, then the subject's state hash under each known HMAC
--         key
-- ARGV[1] the data key's handle
--
-- Reply ORPHAN (1) when the data key exists and no state has it in _dk,
-- else HELD (0).
local HELD, ORPHAN = 0, 1

local handle = ARGV[1]
if redis.call('EXISTS', KEYS[1]) == 0 then return HELD end
for i = 2, #KEYS do
  if redis.call('HGET', KEYS[i], '_dk') == handle then return HELD end
end
return ORPHAN
