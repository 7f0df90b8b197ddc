-- Complete deliveries, fenced: an entry no longer pending for this member is not acked.
-- KEYS[1] inbox STREAM, KEYS[2] leases ZSET, KEYS[3] load HASH, KEYS[4] stats HASH.
-- ARGV[1] member, then per delivery: stream id, topic.
-- Returns one 1 (acked) or 0 (lease lost, or the same id earlier in this call) per delivery.
-- The entries are acked and deleted together and the counters moved once per topic, all in
-- this one step (a batch costs a few commands more than one delivery, not a few per entry).
local member = ARGV[1]
local result, ids, seen, done, leased = {}, {}, {}, {}, {}
for i = 2, #ARGV, 2 do
  local id, topic = ARGV[i], ARGV[i + 1]
  local ok, pending = false, nil
  if not seen[id] then
    seen[id] = true
    ok, pending = pcall(redis.call, 'XPENDING', KEYS[1], 'broker', id, id, 1, member)
  end
  if ok and #pending == 1 then
    ids[#ids + 1] = id
    done[topic] = (done[topic] or 0) + 1
    leased[topic] = (leased[topic] or 0) + redis.call('ZREM', KEYS[2], id)
    result[#result + 1] = 1
  else
    result[#result + 1] = 0
  end
end
for first = 1, #ids, 1000 do
  local last = math.min(first + 999, #ids)
  redis.call('XACK', KEYS[1], 'broker', unpack(ids, first, last))
  redis.call('XDEL', KEYS[1], unpack(ids, first, last))
end
if #ids > 0 then redis.call('HINCRBY', KEYS[3], member, -#ids) end
for topic, count in pairs(done) do
  redis.call('HINCRBY', KEYS[4], 'inflight:' .. topic, 0 - leased[topic])
  redis.call('HINCRBY', KEYS[4], 'queued:' .. topic, -count)
  redis.call('HINCRBY', KEYS[4], 'processed:' .. topic, count)
end
return result
