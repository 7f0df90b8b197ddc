-- Place newly published messages of one topic on live members by the strategy.
-- KEYS: routing layout (lib.lua) with no extra keys; one topic.
-- ARGV: routing layout, then required ('1': a message that finds no live member is not
--       stored at all; '0': it waits in the backlog), then per message: hint (member id
--       chosen by the client for client-side strategies, or ''), encoded envelope.
-- Returns {placed, registry version, stale (1 if a hint named a member that is gone),
--          the topic's groups token (field gv:T of the state hash, '' if none),
--          positions (1-based) of the messages not stored (required only)}.
local ctx = routing(0)
local topic = ARGV[3]
local required = ARGV[ctx.next] == '1'
local placed, refused = 0, {}
for i = ctx.next + 1, #ARGV, 2 do
  if required and #live_for(ctx, topic) == 0 then
    refused[#refused + 1] = (i - ctx.next + 1) / 2
  else
    placed = placed + place(ctx, topic, 0, ARGV[i + 1], ARGV[i])
  end
end
local result = finish(ctx, placed)
result[4] = redis.call('HGET', KEYS[2], 'gv:' .. topic) or ''
result[5] = refused
return result
