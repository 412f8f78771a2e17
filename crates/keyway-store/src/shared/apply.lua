-- Corrections after the fact: give back or add what a request took once its real size is
-- known, free its slots. Counters that are gone (expired, or Redis restarted) stay gone: the
-- next admission seeds them again.
-- KEYS[i]: a counter. ARGV[1]: the slot member. Then two arguments per key: kind, value.
--   r: move the GCRA arrival time by value µs (negative gives cells back)
--   s: free this member's slot
--   m: free a returned share's value slots (members `ARGV[1]:1` .. `ARGV[1]:value`)
--   n: add value to a balance or a capped sum, if it exists
-- Integers as digits: a Lua number passed as is may be written in exponent form.
local function s(x) return string.format('%d', math.floor(x)) end
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local member = ARGV[1]
for i = 1, #KEYS do
  local kind = ARGV[2 * i]
  local v = tonumber(ARGV[2 * i + 1])
  local k = KEYS[i]
  if kind == 'r' then
    local tat = tonumber(redis.call('GET', k))
    if tat ~= nil then
      tat = tat + v
      if tat > now_us then
        redis.call('SET', k, s(tat), 'PX', s((tat - now_us) / 1000 + 1000))
      else
        redis.call('DEL', k)
      end
    end
  elseif kind == 's' then
    redis.call('ZREM', k, member)
  elseif kind == 'm' then
    for j = 1, v do
      redis.call('ZREM', k, member .. ':' .. j)
    end
  elseif kind == 'n' then
    if redis.call('EXISTS', k) == 1 then
      redis.call('INCRBY', k, s(v))
    end
  end
end
return 1
