-- Takes every check or none (one request's admission across nodes), on Redis's own clock so
-- that nodes whose clocks disagree still share one timeline.
-- KEYS[i]: the counter of check i. ARGV[1]: the slot member (node:request), ARGV[2]: the slot
-- lease in ms. Then six arguments per check: kind, a, b, c, d, e.
--   r (GCRA rate):   a = µs per cell, b = burst (cells), c = cells wanted
--   s (slot):        a = max concurrent
--   b (balance):     a = amount wanted, b = seed (the balance, when the counter is absent)
--   c (capped sum):  a = amount wanted, b = cap (refused once reached), c = seed (the sum so far, when absent), d = ttl ms
-- e: a share the node would like to take on top, to admit its next requests from without a
-- round trip (0: none). It is granted only when the request's own amount and the share both
-- fit; otherwise the request alone is judged as it would be without it. A granted slot share
-- is e + 1 members `ARGV[1]:j` (the request's own slot is one of them).
-- Returns {0, remaining_1, reset_us_1, granted_1, ...} when all pass, or {1, i, wait_us, value}
-- for the first check that refuses (nothing written then but the slot sets' expired members).
-- Integers as digits: a Lua number passed as is may be written in exponent form.
local function s(x) return string.format('%d', math.floor(x)) end
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)
local member = ARGV[1]
local lease = tonumber(ARGV[2])
local out = {0}
local writes = {}
for i = 1, #KEYS do
  local o = 2 + (i - 1) * 6
  local kind = ARGV[o + 1]
  local a, b, c, d, e = tonumber(ARGV[o + 2]), tonumber(ARGV[o + 3]), tonumber(ARGV[o + 4]), tonumber(ARGV[o + 5]), tonumber(ARGV[o + 6])
  local k = KEYS[i]
  if kind == 'r' then
    local n = c
    if n > b then n = b end
    local tat = tonumber(redis.call('GET', k)) or now_us
    if tat < now_us then tat = now_us end
    local horizon = now_us + b * a
    if e > 0 and tat + (n + e) * a > horizon then e = 0 end
    local new = tat + (n + e) * a
    if new > horizon then
      return {1, i, new - horizon, tat - now_us}
    end
    writes[#writes + 1] = {'r', k, new}
    out[#out + 1] = math.floor((horizon - new) / a)
    out[#out + 1] = new - now_us
    out[#out + 1] = e
  elseif kind == 's' then
    redis.call('ZREMRANGEBYSCORE', k, '-inf', s(now_ms))
    local n = redis.call('ZCARD', k)
    if e > 0 and n + 1 + e > a then e = 0 end
    if n >= a then
      return {1, i, 1000000, n}
    end
    writes[#writes + 1] = {'s', k, e}
    out[#out + 1] = a - n - 1 - e
    out[#out + 1] = 0
    out[#out + 1] = e
  elseif kind == 'b' then
    local v = tonumber(redis.call('GET', k))
    if v == nil then
      v = b
      redis.call('SET', k, s(v))
    end
    if v <= 0 or v < a then
      return {1, i, 0, v}
    end
    if e > 0 and v < a + e then e = 0 end
    writes[#writes + 1] = {'b', k, a + e}
    out[#out + 1] = v - a - e
    out[#out + 1] = 0
    out[#out + 1] = e
  elseif kind == 'c' then
    local v = tonumber(redis.call('GET', k)) or c
    -- As the per-node budget does: refused once spent (with what is held) reaches the cap.
    if v >= b then
      return {1, i, 0, v}
    end
    if e > 0 and v + a + e > b then e = 0 end
    writes[#writes + 1] = {'c', k, v + a + e, d}
    out[#out + 1] = b - v - a - e
    out[#out + 1] = 0
    out[#out + 1] = e
  end
end
for _, w in ipairs(writes) do
  if w[1] == 'r' then
    redis.call('SET', w[2], s(w[3]), 'PX', s((w[3] - now_us) / 1000 + 1000))
  elseif w[1] == 's' then
    if w[3] > 0 then
      for j = 1, w[3] + 1 do
        redis.call('ZADD', w[2], s(now_ms + lease), member .. ':' .. j)
      end
    else
      redis.call('ZADD', w[2], s(now_ms + lease), member)
    end
    redis.call('PEXPIRE', w[2], s(lease))
  elseif w[1] == 'b' then
    redis.call('DECRBY', w[2], s(w[3]))
  elseif w[1] == 'c' then
    redis.call('SET', w[2], s(w[3]), 'PX', s(w[4]))
  end
end
return out
