-- lwcache: takes the leases of keys of one world for one fill, atomically.
--
-- KEYS[1..n]  the lease keys (<key>:lease)
-- ARGV[1]     the lease token, a decimal string
-- ARGV[2]     the lease's TTL in milliseconds, at least 1
--
-- Returns one integer per key: 1 when the token holds the lease now (it
-- was free and is taken, or the token held it already), 0 when another
-- token holds it. A held lease keeps its TTL: taking it again does not
-- extend it.

local token, ttl = ARGV[1], ARGV[2]
local held = {}
for i = 1, #KEYS do
  if redis.call('SET', KEYS[i], token, 'NX', 'PX', ttl) then
    held[i] = 1
  else
    local holder = redis.pcall('GET', KEYS[i])
    if type(holder) == 'table' and holder.err then
      -- A value of another Redis type holds no lease: it is taken over.
      redis.call('SET', KEYS[i], token, 'PX', ttl)
      held[i] = 1
    elseif holder == token then
      held[i] = 1
    else
      held[i] = 0
    end
  end
end
return held
