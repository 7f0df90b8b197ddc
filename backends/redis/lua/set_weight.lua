-- Change a registered member's weight. KEYS[1] members ZSET, KEYS[2] info HASH,
-- KEYS[3] weights HASH, KEYS[4] version STRING. ARGV[1] member, ARGV[2] weight.
-- Returns 1, or 0 if the member is unknown.
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('HSET', KEYS[2], 'weight', ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('INCR', KEYS[4])
return 1
