-- Record the leases of entries just read with XREADGROUP, and move them from queued to
-- in flight in the counters.
-- KEYS[1] leases ZSET, KEYS[2] stats HASH.
-- ARGV[1] lease deadline, then per entry: stream id, topic.
for i = 2, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
  redis.call('HINCRBY', KEYS[2], 'queued:' .. ARGV[i + 1], -1)
  redis.call('HINCRBY', KEYS[2], 'inflight:' .. ARGV[i + 1], 1)
end
return (#ARGV - 1) / 2
