-- Move entries of a retired group's stream to its dead letters (the group has no live member).
-- KEYS[1] source STREAM (the group backlog, or a hybrid topic stream), KEYS[2] dead ZSET,
-- KEYS[3] dead data HASH, KEYS[4] stats HASH.
-- ARGV[1] failed_at, ARGV[2] dead letter limit, ARGV[3] 1 if the entries count as queued:T,
-- then per entry: stream id, message id, topic, encoded dead letter.
-- Returns how many moved; an entry already gone (taken by a member meanwhile) is skipped.
local moved = 0
local counted = ARGV[3] == '1'
for i = 4, #ARGV, 4 do
  local id, message, topic = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if redis.call('XDEL', KEYS[1], id) == 1 then
    redis.call('ZADD', KEYS[2], ARGV[1], message)
    redis.call('HSET', KEYS[3], message, ARGV[i + 3])
    redis.call('HINCRBY', KEYS[4], 'dead:' .. topic, 1)
    if counted then redis.call('HINCRBY', KEYS[4], 'queued:' .. topic, -1) end
    moved = moved + 1
  end
end
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[2])
if excess > 0 then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, excess - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, excess - 1)
  redis.call('HDEL', KEYS[3], unpack(oldest))
end
return moved
