-- Record the leases of entries read with XREADGROUP, and move them from queued to in flight
-- in the counters. Sent a moment after the read, so a quick handler may already have acked
-- (and deleted) an entry: no lease is recorded for an entry the inbox no longer holds.
-- KEYS[1] leases ZSET, KEYS[2] stats HASH, KEYS[3] inbox STREAM.
-- ARGV[1] lease deadline, then per entry: stream id, topic.
for i = 2, #ARGV, 2 do
  if #redis.call('XRANGE', KEYS[3], ARGV[i], ARGV[i], 'COUNT', 1) == 1 then
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
  end
  redis.call('HINCRBY', KEYS[2], 'queued:' .. ARGV[i + 1], -1)
  redis.call('HINCRBY', KEYS[2], 'inflight:' .. ARGV[i + 1], 1)
end
return (#ARGV - 1) / 2
