-- Refresh a member's last_seen and counters in O(1); 0 if it is not registered (evicted).
-- KEYS[1] members ZSET, KEYS[2] info HASH.
-- ARGV[1] member, ARGV[2] now, ARGV[3] in_flight, ARGV[4] processed, ARGV[5] failed.
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], 'last_seen', ARGV[2], 'in_flight', ARGV[3],
           'processed', ARGV[4], 'failed', ARGV[5])
return 1
