-- Remove and return dead letters by message id, and count them out of the group's stats.
-- KEYS[1] dead ZSET, KEYS[2] dead data HASH, KEYS[3] stats HASH.
-- ARGV: per dead letter: message id, its topic (read by the client beforehand).
-- Returns the encoded dead letters found.
local found = {}
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  local record = redis.call('HGET', KEYS[2], id)
  if record then
    redis.call('HDEL', KEYS[2], id)
    redis.call('ZREM', KEYS[1], id)
    redis.call('HINCRBY', KEYS[3], 'dead:' .. ARGV[i + 1], -1)
    found[#found + 1] = record
  end
end
return found
