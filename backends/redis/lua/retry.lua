-- A failed delivery waits in the member's delayed set until it is due, fenced like ack.
-- KEYS[1] inbox STREAM, KEYS[2] leases ZSET, KEYS[3] delayed ZSET, KEYS[4] stats HASH.
-- ARGV[1] member, ARGV[2] stream id, ARGV[3] topic, ARGV[4] due time,
-- ARGV[5] "attempt|topic|envelope". Returns 1, or 0 if the lease was lost.
local inbox, id, topic = KEYS[1], ARGV[2], ARGV[3]
local ok, pending = pcall(redis.call, 'XPENDING', inbox, 'broker', id, id, 1, ARGV[1])
if not ok or #pending ~= 1 then return 0 end
redis.call('XACK', inbox, 'broker', id)
redis.call('XDEL', inbox, id)
if redis.call('ZREM', KEYS[2], id) == 1 then
  redis.call('HINCRBY', KEYS[4], 'inflight:' .. topic, -1)
end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
redis.call('HINCRBY', KEYS[4], 'queued:' .. topic, -1)
redis.call('HINCRBY', KEYS[4], 'delayed:' .. topic, 1)
redis.call('HINCRBY', KEYS[4], 'failed:' .. topic, 1)
return 1
