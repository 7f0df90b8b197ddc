-- Move a delivery to the dead letters, fenced like ack; the oldest beyond the limit go.
-- KEYS[1] stream (a member's inbox, or a hybrid topic stream), KEYS[2] leases ZSET,
-- KEYS[3] load HASH, KEYS[4] stats HASH, KEYS[5] dead ZSET, KEYS[6] dead data HASH.
-- ARGV[1] member (consumer), ARGV[2] stream id, ARGV[3] topic ('' if unknown),
-- ARGV[4] message id, ARGV[5] failed_at, ARGV[6] encoded dead letter, ARGV[7] limit,
-- ARGV[8] '1' if the entry is in the queue counters and the member's load (stored by the
-- scripts), '0' if not (hybrid streams; an entry another tool wrote).
-- Returns 1, or 0 if the lease was lost.
local stream, id, topic = KEYS[1], ARGV[2], ARGV[3]
local ok, pending = pcall(redis.call, 'XPENDING', stream, 'broker', id, id, 1, ARGV[1])
if not ok or #pending ~= 1 then return 0 end
redis.call('XACK', stream, 'broker', id)
redis.call('XDEL', stream, id)
local leased = redis.call('ZREM', KEYS[2], id) == 1
if ARGV[8] == '1' then
  redis.call('HINCRBY', KEYS[3], ARGV[1], -1)
  redis.call('HINCRBY', KEYS[4], 'queued:' .. topic, -1)
  if leased then redis.call('HINCRBY', KEYS[4], 'inflight:' .. topic, -1) end
end
if topic ~= '' then
  redis.call('HINCRBY', KEYS[4], 'failed:' .. topic, 1)
  redis.call('HINCRBY', KEYS[4], 'dead:' .. topic, 1)
end
redis.call('ZADD', KEYS[5], ARGV[5], ARGV[4])
redis.call('HSET', KEYS[6], ARGV[4], ARGV[6])
local excess = redis.call('ZCARD', KEYS[5]) - tonumber(ARGV[7])
if excess > 0 then
  local oldest = redis.call('ZRANGE', KEYS[5], 0, excess - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[5], 0, excess - 1)
  redis.call('HDEL', KEYS[6], unpack(oldest))
end
return 1
