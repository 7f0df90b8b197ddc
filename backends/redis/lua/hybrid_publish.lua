-- Append published messages to a group's topic stream (hybrid mode), all or none, and read
-- the topic's groups token in the same step (see backends/redis/topics.py).
-- KEYS[1] topic STREAM, KEYS[2] the group's state HASH.
-- ARGV[1] topic, ARGV[2] the token's field (gv:TOPIC), then per message: attempt, envelope.
-- Returns the token ('' when none was written yet).
for i = 3, #ARGV, 2 do
  redis.call('XADD', KEYS[1], '*', 't', ARGV[1], 'a', ARGV[i], 'e', ARGV[i + 1])
end
return redis.call('HGET', KEYS[2], ARGV[2]) or ''
