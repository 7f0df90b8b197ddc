-- Refresh a member's last_seen and counters, and tell cleanup when to look at its leases
-- next; 0 if it is not registered (evicted). O(log N) in the group's members.
-- KEYS[1] members ZSET, KEYS[2] info HASH, KEYS[3] inbox STREAM, KEYS[4] leases ZSET,
-- KEYS[5] expiry ZSET (member -> its earliest lease deadline; now if an entry it holds has
-- no lease record yet).
-- ARGV[1] member, ARGV[2] now, ARGV[3] in_flight, ARGV[4] processed, ARGV[5] failed.
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], 'last_seen', ARGV[2], 'in_flight', ARGV[3],
           'processed', ARGV[4], 'failed', ARGV[5])
local ok, summary = pcall(redis.call, 'XPENDING', KEYS[3], 'broker')
local pending = ok and tonumber(summary[1]) or 0
if pending == 0 then
  redis.call('ZREM', KEYS[5], ARGV[1])
else
  local due = ARGV[2]
  local first = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
  if first[2] and redis.call('ZCARD', KEYS[4]) >= pending then due = first[2] end
  redis.call('ZADD', KEYS[5], due, ARGV[1])
end
return 1
