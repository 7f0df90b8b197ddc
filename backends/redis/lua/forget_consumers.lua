-- Delete the consumers of processes gone for good from a hybrid topic stream's group: nothing
-- pending for them and silent longer than the limit (a live reader reads every half second).
-- Checked and deleted in one step, so a consumer that reads meanwhile keeps its entries.
-- KEYS[1] topic STREAM. ARGV[1] consumer group, ARGV[2] this process's consumer (kept),
-- ARGV[3] idle limit in ms. Returns how many consumers were deleted.
local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if not ok then return 0 end
local limit, deleted = tonumber(ARGV[3]), 0
for _, consumer in ipairs(consumers) do
  local info = {}
  for i = 1, #consumer, 2 do info[consumer[i]] = consumer[i + 1] end
  if info.name ~= ARGV[2] and tonumber(info.pending) == 0 and tonumber(info.idle) > limit then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info.name)
    deleted = deleted + 1
  end
end
return deleted
