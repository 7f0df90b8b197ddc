-- Hand a member's messages to live members (it left or was evicted).
-- KEYS: routing layout with 3 extra keys: KEYS[7] inbox STREAM, KEYS[8] leases ZSET,
-- KEYS[9] delayed ZSET of the member that goes; topics: every topic its messages carry
-- (the client reads them first; messages of a topic not passed stay for the next call).
-- ARGV: routing layout, then member, leased ('1': take leased entries too and delete the
-- inbox when empty, for a dead member; '0': leave leased ones, for a graceful leave), count.
-- Leased entries moved count as a delivery (their attempt grows by one).
-- Returns {moved, version, stale, remaining entries}.
local ctx = routing(3)
local member, take_leased, count = ARGV[ctx.next], ARGV[ctx.next + 1] == '1', ARGV[ctx.next + 2]
local inbox, leases, delayed = KEYS[7], KEYS[8], KEYS[9]
local pending = {}
local ok, list = pcall(redis.call, 'XPENDING', inbox, 'broker', '-', '+', count)
if ok then
  for _, p in ipairs(list) do pending[p[1]] = true end
end
local moved = 0
for _, entry in ipairs(redis.call('XRANGE', inbox, '-', '+', 'COUNT', count)) do
  local id, f = entry[1], fields(entry[2])
  local leased = pending[id]
  if (take_leased or not leased) and ctx.sets[f.t] then
    redis.call('XDEL', inbox, id)
    local attempt = tonumber(f.a) or 0
    if leased then
      redis.call('XACK', inbox, 'broker', id)
      if redis.call('ZREM', leases, id) == 1 then
        redis.call('HINCRBY', KEYS[6], 'inflight:' .. f.t, -1)
      end
      attempt = attempt + 1
    end
    redis.call('HINCRBY', KEYS[6], 'queued:' .. f.t, -1)
    redis.call('HINCRBY', KEYS[3], member, -1)
    place(ctx, f.t, attempt, f.e or '', '')
    moved = moved + 1
  end
end
for _, record in ipairs(redis.call('ZRANGE', delayed, 0, count - 1)) do
  local bar = string.find(record, '|', 1, true)
  local bar2 = string.find(record, '|', bar + 1, true)
  local topic = string.sub(record, bar + 1, bar2 - 1)
  if ctx.sets[topic] then
    redis.call('ZREM', delayed, record)
    redis.call('HINCRBY', KEYS[6], 'delayed:' .. topic, -1)
    redis.call('HINCRBY', KEYS[3], member, -1)
    place(ctx, topic, string.sub(record, 1, bar - 1), string.sub(record, bar2 + 1), '')
    moved = moved + 1
  end
end
local remaining = redis.call('XLEN', inbox) + redis.call('ZCARD', delayed)
if take_leased and remaining == 0 then
  redis.call('DEL', inbox, leases, delayed)
  redis.call('HDEL', KEYS[3], member)
end
local result = finish(ctx, moved)
result[4] = remaining
return result
