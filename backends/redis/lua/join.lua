-- Register (or re-register) a member.
-- KEYS[1] members ZSET, KEYS[2] info HASH, KEYS[3] weights HASH, KEYS[4] version STRING,
-- then the live-member SET of each of its topics.
-- ARGV[1] member, ARGV[2] now, ARGV[3] weight, ARGV[4] topics joined by ','.
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'topics', ARGV[4], 'weight', ARGV[3], 'joined_at', ARGV[2],
           'last_seen', ARGV[2], 'in_flight', 0, 'processed', 0, 'failed', 0)
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
for i = 5, #KEYS do redis.call('SADD', KEYS[i], ARGV[1]) end
redis.call('INCR', KEYS[4])
return 1
