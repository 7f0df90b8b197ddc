-- Move due retries from a member's delayed set back into its inbox.
-- KEYS[1] delayed ZSET, KEYS[2] inbox STREAM, KEYS[3] stats HASH.
-- ARGV[1] now, ARGV[2] at most this many. Returns how many moved.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, record in ipairs(due) do
  local bar = string.find(record, '|', 1, true)
  local bar2 = string.find(record, '|', bar + 1, true)
  local topic = string.sub(record, bar + 1, bar2 - 1)
  redis.call('XADD', KEYS[2], '*', 't', topic, 'a', string.sub(record, 1, bar - 1),
             'e', string.sub(record, bar2 + 1))
  redis.call('ZREM', KEYS[1], record)
  redis.call('HINCRBY', KEYS[3], 'delayed:' .. topic, -1)
  redis.call('HINCRBY', KEYS[3], 'queued:' .. topic, 1)
end
return #due
