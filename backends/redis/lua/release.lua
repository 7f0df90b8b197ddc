-- Give a leased message back unprocessed and place it on another live member at once.
-- KEYS: routing layout with 2 extra keys: KEYS[7] inbox STREAM, KEYS[8] leases ZSET;
-- one topic.
-- ARGV: routing layout, then member, stream id, deliveries before this one, envelope.
-- Returns {placed, version, stale, released (1, or 0 if the lease was lost)}.
local ctx = routing(2)
local member, id = ARGV[ctx.next], ARGV[ctx.next + 1]
local topic = ARGV[3]
if not holds(KEYS[7], id, member) then
  local result = finish(ctx, 0)
  result[4] = 0
  return result
end
redis.call('XACK', KEYS[7], 'broker', id)
redis.call('XDEL', KEYS[7], id)
if redis.call('ZREM', KEYS[8], id) == 1 then
  redis.call('HINCRBY', KEYS[6], 'inflight:' .. topic, -1)
end
redis.call('HINCRBY', KEYS[3], member, -1)
redis.call('HINCRBY', KEYS[6], 'queued:' .. topic, -1)
local placed = place(ctx, topic, ARGV[ctx.next + 2], ARGV[ctx.next + 3], '')
local result = finish(ctx, placed)
result[4] = 1
return result
