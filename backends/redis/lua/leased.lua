-- Record the leases of entries read with XREADGROUP and count them in flight. Sent a moment
-- after the read, so a quick handler may already have acked (and deleted) an entry: no lease
-- is recorded, nor counted, for an entry no longer pending for the member (every step that
-- acks an entry deletes it in the same script, and none deletes a pending one without
-- acking it, so pending here means still in the inbox and still this member's).
-- Counters: queued:T counts a topic's entries in the group's streams (changed where they are
-- added or deleted); inflight:T counts lease records (changed where they are added or
-- removed), so each moves in the same step as what it counts and none can drift.
-- KEYS[1] leases ZSET, KEYS[2] stats HASH, KEYS[3] inbox STREAM.
-- ARGV[1] lease deadline, ARGV[2] member, then per entry: stream id, topic.
-- Returns how many were recorded.
-- (The counter of each topic passed is touched, by 0 if every entry is gone, so the set of
-- fields in the stats hash does not depend on which came first.)
local member, added = ARGV[2], {}
local recorded = 0
for i = 3, #ARGV, 2 do
  local id, topic = ARGV[i], ARGV[i + 1]
  local one = 0
  local ok, pending = pcall(redis.call, 'XPENDING', KEYS[3], 'broker', id, id, 1, member)
  if ok and #pending == 1 then
    one = redis.call('ZADD', KEYS[1], 'NX', ARGV[1], id)
  end
  added[topic] = (added[topic] or 0) + one
  recorded = recorded + one
end
for topic, count in pairs(added) do
  redis.call('HINCRBY', KEYS[2], 'inflight:' .. topic, count)
end
return recorded
