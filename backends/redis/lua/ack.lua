-- Complete deliveries, fenced: an entry no longer pending for this member is not acked.
-- KEYS[1] inbox STREAM, KEYS[2] leases ZSET, KEYS[3] load HASH, KEYS[4] stats HASH.
-- ARGV[1] member, then per delivery: stream id, topic.
-- Returns one 1 (acked) or 0 (lease lost) per delivery.
local member = ARGV[1]
local result = {}
for i = 2, #ARGV, 2 do
  local id, topic = ARGV[i], ARGV[i + 1]
  local ok, pending = pcall(redis.call, 'XPENDING', KEYS[1], 'broker', id, id, 1, member)
  if ok and #pending == 1 then
    redis.call('XACK', KEYS[1], 'broker', id)
    redis.call('XDEL', KEYS[1], id)
    if redis.call('ZREM', KEYS[2], id) == 1 then
      redis.call('HINCRBY', KEYS[4], 'inflight:' .. topic, -1)
    end
    redis.call('HINCRBY', KEYS[3], member, -1)
    redis.call('HINCRBY', KEYS[4], 'queued:' .. topic, -1)
    redis.call('HINCRBY', KEYS[4], 'processed:' .. topic, 1)
    result[#result + 1] = 1
  else
    result[#result + 1] = 0
  end
end
return result
