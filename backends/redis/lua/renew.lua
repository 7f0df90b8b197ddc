-- Extend leases still held. KEYS[1] leases ZSET. ARGV[1] new deadline, then stream ids.
-- Returns how many were renewed.
local renewed = 0
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
    renewed = renewed + 1
  end
end
return renewed
