-- Record the leases of entries read with XREADGROUP and count them in flight. Sent a moment
-- after the read, so a quick handler may already have acked (and deleted) an entry: no lease
-- is recorded, nor counted, for an entry the inbox no longer holds.
-- Counters: queued:T counts a topic's entries in the group's streams (changed where they are
-- added or deleted); inflight:T counts lease records (changed where they are added or
-- removed), so each moves in the same step as what it counts and none can drift.
-- KEYS[1] leases ZSET, KEYS[2] stats HASH, KEYS[3] inbox STREAM.
-- ARGV[1] lease deadline, then per entry: stream id, topic. Returns how many were recorded.
-- (The counter is touched by 0 for an entry already gone, so the set of fields in the stats
-- hash does not depend on which came first.)
local recorded = 0
for i = 2, #ARGV, 2 do
  local added = 0
  if #redis.call('XRANGE', KEYS[3], ARGV[i], ARGV[i], 'COUNT', 1) == 1 then
    added = redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[i])
  end
  redis.call('HINCRBY', KEYS[2], 'inflight:' .. ARGV[i + 1], added)
  recorded = recorded + added
end
return recorded
