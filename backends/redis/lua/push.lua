-- Append messages to one member's inbox, or to the backlog if it is not registered.
-- KEYS[1] members ZSET, KEYS[2] inbox STREAM, KEYS[3] backlog STREAM, KEYS[4] load HASH,
-- KEYS[5] stats HASH.
-- ARGV[1] member ('' for the backlog), then per message: topic, attempt, envelope.
-- Returns how many went to the backlog.
local live = ARGV[1] ~= '' and redis.call('ZSCORE', KEYS[1], ARGV[1])
local backlogged = 0
for i = 2, #ARGV, 3 do
  redis.call('HINCRBY', KEYS[5], 'queued:' .. ARGV[i], 1)
  if live then
    redis.call('XADD', KEYS[2], '*', 't', ARGV[i], 'a', ARGV[i + 1], 'e', ARGV[i + 2])
    redis.call('HINCRBY', KEYS[4], ARGV[1], 1)
  else
    redis.call('XADD', KEYS[3], '*', 't', ARGV[i], 'a', ARGV[i + 1], 'e', ARGV[i + 2])
    backlogged = backlogged + 1
  end
end
return backlogged
