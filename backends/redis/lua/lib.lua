-- Shared routing library, prepended to every script that places messages.
--
-- Routing scripts share one layout:
--   KEYS[1] weights HASH   KEYS[2] state HASH   KEYS[3] load HASH   KEYS[4] backlog STREAM
--   KEYS[5] version STRING KEYS[6] stats HASH
--   KEYS[7 .. 6+E]          the script's own keys (E = extra, see each script)
--   then one live-member SET per topic, then one inbox STREAM per candidate member
--   ARGV[1] strategy, ARGV[2] topic count T, ARGV[3..2+T] topics, then candidate count C,
--   then C candidate member ids (sorted), then the script's own arguments from ctx.next.
-- A candidate is live for a topic when it is in that topic's SET, checked here, so a
-- member that left or was evicted never receives a message.

local function routing(extra)
  local ctx = {strategy = ARGV[1], sets = {}, cands = {}, live = {}, cache = {}, dirty = {}}
  local topics = tonumber(ARGV[2])
  local k = 6 + extra
  for i = 1, topics do ctx.sets[ARGV[2 + i]] = KEYS[k + i] end
  local a = 3 + topics
  local count = tonumber(ARGV[a])
  for i = 1, count do ctx.cands[i] = {id = ARGV[a + i], inbox = KEYS[k + topics + i]} end
  ctx.next = a + count + 1
  return ctx
end

local function live_for(ctx, topic)
  local found = ctx.live[topic]
  if found then return found end
  found = {}
  local set = ctx.sets[topic]
  if set then
    for _, c in ipairs(ctx.cands) do
      if redis.call('SISMEMBER', set, c.id) == 1 then found[#found + 1] = c end
    end
  end
  ctx.live[topic] = found
  return found
end

local function cached(ctx, key, field, default)
  local slot = key .. '\0' .. field
  local value = ctx.cache[slot]
  if value == nil then
    value = tonumber(redis.call('HGET', key, field) or default) or default
    ctx.cache[slot] = value
  end
  return value
end

local function after(list, last)
  for _, c in ipairs(list) do
    if c.id > last then return c end
  end
  return list[1]
end

local function last_of(ctx, field)
  local value = ctx.dirty[field]
  if value == nil then value = redis.call('HGET', KEYS[2], field) or '' end
  return value
end

local function smooth_weighted(ctx, live)
  local total, best, best_score = 0, nil, 0
  for _, c in ipairs(live) do
    local weight = cached(ctx, KEYS[1], c.id, 1)
    if weight > 0 then
      local score = cached(ctx, KEYS[2], 'w:' .. c.id, 0) + weight
      ctx.cache[KEYS[2] .. '\0w:' .. c.id] = score
      total = total + weight
      if best == nil or score > best_score then best, best_score = c, score end
    end
  end
  if best == nil then
    return after(live, last_of(ctx, 'rr'))
  end
  ctx.cache[KEYS[2] .. '\0w:' .. best.id] = best_score - total
  for _, c in ipairs(live) do
    ctx.dirty['w:' .. c.id] = ctx.cache[KEYS[2] .. '\0w:' .. c.id]
  end
  return best
end

local function least_loaded(ctx, live)
  local least, tied = nil, {}
  for _, c in ipairs(live) do
    local load = cached(ctx, KEYS[3], c.id, 0)
    if least == nil or load < least then
      least, tied = load, {c}
    elseif load == least then
      tied[#tied + 1] = c
    end
  end
  local chosen = after(tied, last_of(ctx, 'lc'))
  ctx.dirty['lc'] = chosen.id
  return chosen
end

local function choose(ctx, topic, hint)
  local live = live_for(ctx, topic)
  if #live == 0 then return nil end
  if hint ~= '' then
    for _, c in ipairs(live) do
      if c.id == hint then return c end
    end
    ctx.stale = 1
  end
  local strategy = ctx.strategy
  if strategy == 'weighted' then return smooth_weighted(ctx, live) end
  if strategy == 'least_conn' then return least_loaded(ctx, live) end
  local chosen = after(live, last_of(ctx, 'rr'))
  ctx.dirty['rr'] = chosen.id
  return chosen
end

-- Append one message to the chosen member's inbox, or to the backlog; returns 1 if placed.
local function place(ctx, topic, attempt, envelope, hint)
  local c = choose(ctx, topic, hint)
  redis.call('HINCRBY', KEYS[6], 'queued:' .. topic, 1)
  if c then
    redis.call('XADD', c.inbox, '*', 't', topic, 'a', attempt, 'e', envelope)
    redis.call('HINCRBY', KEYS[3], c.id, 1)
    ctx.cache[KEYS[3] .. '\0' .. c.id] = cached(ctx, KEYS[3], c.id, 0) + 1
    return 1
  end
  redis.call('XADD', KEYS[4], '*', 't', topic, 'a', attempt, 'e', envelope)
  return 0
end

-- Write the strategy state back; returns {placed, version, stale}.
local function finish(ctx, placed)
  for field, value in pairs(ctx.dirty) do redis.call('HSET', KEYS[2], field, value) end
  return {placed, tonumber(redis.call('GET', KEYS[5]) or '0'), ctx.stale or 0}
end

-- Whether a member still holds entry id of its inbox (pending for it in the consumer group).
local function holds(inbox, id, member)
  local ok, pending = pcall(redis.call, 'XPENDING', inbox, 'broker', id, id, 1, member)
  return ok and #pending == 1
end

local function fields(entry)
  local f = {}
  for i = 1, #entry, 2 do f[entry[i]] = entry[i + 1] end
  return f
end
