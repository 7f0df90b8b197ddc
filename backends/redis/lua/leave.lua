-- Remove a member from the registry if it was last seen before a deadline (eviction), or
-- unconditionally with deadline '+inf' (graceful leave).
-- KEYS[1] members ZSET, KEYS[2] info HASH, KEYS[3] weights HASH, KEYS[4] version STRING,
-- KEYS[5] state HASH, KEYS[6] expiry ZSET, then the live-member SET of each of its topics.
-- ARGV[1] member, ARGV[2] deadline. Returns 1 if removed.
local seen = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not seen then return 0 end
if ARGV[2] ~= '+inf' and tonumber(seen) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[5], 'w:' .. ARGV[1])
redis.call('ZREM', KEYS[6], ARGV[1])
for i = 7, #KEYS do redis.call('SREM', KEYS[i], ARGV[1]) end
redis.call('INCR', KEYS[4])
return 1
