-- Place messages waiting in the group backlog on live members.
-- KEYS: routing layout with no extra keys; topics: those the client saw in the backlog.
-- ARGV: routing layout, then count.
-- Messages whose topic has no live member stay. Returns {moved, version, stale}.
local ctx = routing(0)
local moved = 0
for _, entry in ipairs(redis.call('XRANGE', KEYS[4], '-', '+', 'COUNT', ARGV[ctx.next])) do
  local f = fields(entry[2])
  if ctx.sets[f.t] and #live_for(ctx, f.t) > 0 then
    redis.call('XDEL', KEYS[4], entry[1])
    redis.call('HINCRBY', KEYS[6], 'queued:' .. f.t, -1)
    place(ctx, f.t, f.a, f.e, '')
    moved = moved + 1
  end
end
return finish(ctx, moved)
