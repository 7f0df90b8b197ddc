-- Acknowledge entries one process holds in a group's topic stream, fenced: only entries still
-- pending for that process are acked (one claimed by another process is not). Then trim what
-- lies below the oldest entry still pending in the group: every entry there was read and acked
-- (the stream has one consumer group), so nothing unread or pending is ever trimmed.
-- KEYS[1] stream STREAM, KEYS[2] stats HASH.
-- ARGV[1] consumer, ARGV[2] topic, ARGV[3] lowest id, ARGV[4] highest id, ARGV[5] how many
-- pending entries to scan at most, then the ids to ack.
-- Returns one 1 (acked) or 0 (no longer held) per id.
local held = {}
local ok, pending = pcall(redis.call, 'XPENDING', KEYS[1], 'broker', ARGV[3], ARGV[4],
                          ARGV[5], ARGV[1])
if ok then
  for _, p in ipairs(pending) do held[p[1]] = true end
end
local acked, result = {}, {}
for i = 6, #ARGV do
  if held[ARGV[i]] then
    acked[#acked + 1] = ARGV[i]
    result[#result + 1] = 1
  else
    result[#result + 1] = 0
  end
end
if #acked > 0 then
  redis.call('XACK', KEYS[1], 'broker', unpack(acked))
  redis.call('HINCRBY', KEYS[2], 'processed:' .. ARGV[2], #acked)
  local summary = redis.call('XPENDING', KEYS[1], 'broker')
  local floor = summary[2]
  if not floor then
    local ms, seq = string.match(ARGV[4], '^(%d+)-(%d+)$')
    floor = ms .. '-' .. (tonumber(seq) + 1)
  end
  redis.call('XTRIM', KEYS[1], 'MINID', floor)
end
return result
