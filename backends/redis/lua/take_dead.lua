-- Remove and return dead letters by message id.
-- KEYS[1] dead ZSET, KEYS[2] dead data HASH, KEYS[3] stats HASH. ARGV: message ids.
-- Returns the encoded dead letters found.
local found = {}
for _, id in ipairs(ARGV) do
  local record = redis.call('HGET', KEYS[2], id)
  if record then
    redis.call('HDEL', KEYS[2], id)
    redis.call('ZREM', KEYS[1], id)
    found[#found + 1] = record
  end
end
return found
