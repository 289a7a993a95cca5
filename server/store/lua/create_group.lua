-- create_group: creates a feed consumer's group on one partition stream (and
-- the stream if missing), with Redis' count of entries read set so that its
-- lag is right from the start: without it Redis estimates, and could not
-- tell later how many entries trimming took from a consumer that never read.
--
-- KEYS[1] the partition's feed stream
-- ARGV[1] the consumer (group) name
-- ARGV[2] "$": changes from now on; "0": also the entries kept now
--
-- Reply CREATED (1) when created, EXISTED (0) when the group existed already.
local CREATED, EXISTED = 1, 0

local stream, group, start = KEYS[1], ARGV[1], ARGV[2]

local added, length = 0, 0
if redis.call('EXISTS', stream) == 1 then
  local info = redis.call('XINFO', 'STREAM', stream)
  for i = 1, #info, 2 do
    if info[i] == 'entries-added' then added = info[i + 1] end
    if info[i] == 'length' then length = info[i + 1] end
  end
end
local read = added
if start == '0' then read = added - length end
local res = redis.pcall('XGROUP', 'CREATE', stream, group, start, 'MKSTREAM', 'ENTRIESREAD', read)
if type(res) == 'table' and res.err then
  if string.find(res.err, 'BUSYGROUP', 1, true) then return EXISTED end
  return redis.error_reply(res.err)
end
return CREATED
