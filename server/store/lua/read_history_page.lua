-- read_history_page: reads one page of a subject's history. Every write
-- appends exactly one event and raises the revision by one, so the element
-- at index i holds revision first + i, and a page is one LRANGE.
--
-- KEYS  the history list under each known HMAC key, the active first, then
--       the state hash under each in the same order: the history is in the
--       first list that is not empty (it lives under exactly one name).
-- ARGV[1] before: only events with revision < before; <= 0 for the newest
-- ARGV[2] limit (> 0)
-- ARGV[3] the partition's key prefix, to name the data key
--
-- Reply {first, events, handle, wrapped}: the revision of the list's first
-- event, the page's events oldest first, the data key's handle and its
-- wrapped key ("" for none); {0, {}, '', ''} when there is no history.
local before, limit, base = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]

local list, state, n = nil, nil, 0
local k = #KEYS / 2
for i = 1, k do
  n = redis.call('LLEN', KEYS[i])
  if n > 0 then
    list, state = KEYS[i], KEYS[i + k]
    break
  end
end
if not list then return {0, {}, '', ''} end
local handle = redis.call('HGET', state, '_dk') or ''
local wrapped = ''
if handle ~= '' then wrapped = redis.call('GET', base .. ':k:' .. handle) or '' end
local first = cjson.decode(redis.call('LINDEX', list, 0)).rev
local stop = n - 1
if before > 0 and before - first - 1 < stop then stop = before - first - 1 end
if stop < 0 then return {first, {}, handle, wrapped} end
local start = stop - limit + 1
if start < 0 then start = 0 end
return {first, redis.call('LRANGE', list, start, stop), handle, wrapped}
