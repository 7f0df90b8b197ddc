-- Take back the leases of one member that ran out and place the messages on live members.
-- Also entries pending for the member with no lease record, idle longer than a lease (their
-- fetch reply was lost, so no lease was ever recorded). Then record in the group's expiry
-- index when to look at this member again (or drop it: nothing pending).
-- KEYS: routing layout with 3 extra keys: KEYS[7] inbox STREAM, KEYS[8] leases ZSET,
-- KEYS[9] expiry ZSET; topics: the member's topics.
-- ARGV: routing layout, then member, now, count, lease in milliseconds.
-- Returns {moved, version, stale}.
local ctx = routing(3)
local member, now, count = ARGV[ctx.next], ARGV[ctx.next + 1], ARGV[ctx.next + 2]
local lease_ms = ARGV[ctx.next + 3]
local inbox, leases, expiry = KEYS[7], KEYS[8], KEYS[9]
local moved = 0
local late = redis.call('ZRANGEBYSCORE', leases, '-inf', '(' .. now, 'LIMIT', 0, count)
local ok, pending = pcall(redis.call, 'XPENDING', inbox, 'broker', 'IDLE', lease_ms,
                          '-', '+', count, member)
if ok then
  for _, p in ipairs(pending) do
    if not redis.call('ZSCORE', leases, p[1]) then late[#late + 1] = p[1] end
  end
end
for _, id in ipairs(late) do
  local entry = redis.call('XRANGE', inbox, id, id)[1]
  if entry == nil then
    redis.call('ZREM', leases, id)
  else
    local f = fields(entry[2])
    if ctx.sets[f.t] then
      redis.call('XACK', inbox, 'broker', id)
      redis.call('XDEL', inbox, id)
      if redis.call('ZREM', leases, id) == 1 then
        redis.call('HINCRBY', KEYS[6], 'inflight:' .. f.t, -1)
      end
      redis.call('HINCRBY', KEYS[3], member, -1)
      redis.call('HINCRBY', KEYS[6], 'queued:' .. f.t, -1)
      place(ctx, f.t, (tonumber(f.a) or 0) + 1, f.e or '', '')
      moved = moved + 1
    end
  end
end
local held_ok, summary = pcall(redis.call, 'XPENDING', inbox, 'broker')
local held = held_ok and tonumber(summary[1]) or 0
if held == 0 then
  redis.call('ZREM', expiry, member)
else
  local due = tonumber(now) + tonumber(lease_ms) / 1000
  local first = redis.call('ZRANGE', leases, 0, 0, 'WITHSCORES')
  if first[2] and tonumber(first[2]) < due then due = tonumber(first[2]) end
  redis.call('ZADD', expiry, due, member)
end
return finish(ctx, moved)
