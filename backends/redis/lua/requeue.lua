-- Give entries a process holds back to the stream as new entries, so another process reads
-- them at once (a process leaving gracefully).
-- KEYS[1] stream STREAM. ARGV[1] consumer, then stream ids.
-- Returns how many were requeued (entries no longer pending for the consumer are skipped).
local requeued = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  local ok, pending = pcall(redis.call, 'XPENDING', KEYS[1], 'broker', id, id, 1, ARGV[1])
  if ok and #pending == 1 then
    local entry = redis.call('XRANGE', KEYS[1], id, id)[1]
    if entry then
      redis.call('XADD', KEYS[1], '*', unpack(entry[2]))
      requeued = requeued + 1
    end
    redis.call('XACK', KEYS[1], 'broker', id)
    redis.call('XDEL', KEYS[1], id)
  end
end
return requeued
