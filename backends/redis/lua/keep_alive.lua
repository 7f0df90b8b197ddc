-- Reset the idle time of entries one process holds in a hybrid topic stream, so no other
-- process claims them. An entry another process claimed meanwhile (this one was paused past
-- the TTL) stays with it: only entries still pending for this consumer are touched.
-- KEYS[1] stream STREAM.
-- ARGV[1] consumer, ARGV[2] lowest id, ARGV[3] highest id, ARGV[4] how many pending entries
-- to scan at most, then the ids. Returns the ids the consumer no longer holds.
local held = {}
local ok, pending = pcall(redis.call, 'XPENDING', KEYS[1], 'broker', ARGV[2], ARGV[3],
                          ARGV[4], ARGV[1])
if ok then
  for _, p in ipairs(pending) do held[p[1]] = true end
end
local claim, gone = {'XCLAIM', KEYS[1], 'broker', ARGV[1], 0}, {}
for i = 5, #ARGV do
  if held[ARGV[i]] then claim[#claim + 1] = ARGV[i] else gone[#gone + 1] = ARGV[i] end
end
if #claim > 5 then
  claim[#claim + 1] = 'JUSTID'  -- resets the idle time, keeps the delivery count
  redis.call(unpack(claim))
end
return gone
