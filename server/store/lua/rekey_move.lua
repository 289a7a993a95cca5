-- rekey_move: moves one subject from a previous HMAC key's names to the
-- active key's.
--
-- KEYS[1..3] the state hash, history list and idempotency hash under the
--            previous key; KEYS[4..6] the same under the active key. One slot.
-- ARGV none
--
-- Reply MOVED (1) when moved; GONE (0) when there was nothing under the
-- previous names (moved or erased since it was read); BOTH (-1) when the
-- active names already hold a state or history (nothing moved).
local MOVED, GONE, BOTH = 1, 0, -1

local old_state, old_history, old_idem = KEYS[1], KEYS[2], KEYS[3]
local state, history, idem = KEYS[4], KEYS[5], KEYS[6]

if redis.call('EXISTS', old_state) == 0 then return GONE end
if redis.call('EXISTS', state, history) > 0 then return BOTH end
redis.call('RENAME', old_state, state)
if redis.call('EXISTS', old_history) == 1 then redis.call('RENAME', old_history, history) end
if redis.call('EXISTS', old_idem) == 1 and redis.call('EXISTS', idem) == 0 then redis.call('RENAME', old_idem, idem) end
return MOVED
