-- Place newly published messages of one topic on live members by the strategy.
-- KEYS: routing layout (lib.lua) with no extra keys; one topic.
-- ARGV: routing layout, then per message: hint (member id chosen by the client for
--       client-side strategies, or ''), encoded envelope.
-- Returns {placed, registry version, stale (1 if a hint named a member that is gone)}.
local ctx = routing(0)
local topic = ARGV[3]
local placed = 0
for i = ctx.next, #ARGV, 2 do
  placed = placed + place(ctx, topic, 0, ARGV[i + 1], ARGV[i])
end
return finish(ctx, placed)
