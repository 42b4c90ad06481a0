-- lwcache: one versioned write of keys of one world, atomically.
--
-- KEYS[1]          the world's version key (lw:world:{w}:ver)
-- KEYS[2..1+n]     the keys to put (n = number of puts)
-- KEYS[2+n..]      the keys to delete
-- ARGV[1]          "fill" or "commit"
-- ARGV[2]          the write's version, a decimal string
-- ARGV[1+2i]       put i's bytes
-- ARGV[2+2i]       put i's TTL in milliseconds, "0" for none
--
-- Returns {outcome, cached}: outcome is "applied", "rejected", "noversion"
-- or "superseded"; cached is the version that won ("" when none).
--
-- Versions stay decimal strings: Lua numbers are doubles and would round
-- versions above 2^53. A canonical decimal (no leading zero) compares by
-- length first, then byte by byte.

local function canonical(v)
  return v == '0' or (string.match(v, '^[1-9]%d*$') ~= nil and #v <= 20)
end

local function newer(a, b)
  return #a > #b or (#a == #b and a > b)
end

local kind = ARGV[1]
local version = ARGV[2]
if not canonical(version) then
  return redis.error_reply('LWCACHE bad version argument')
end
if (#ARGV % 2) ~= 0 then
  return redis.error_reply('LWCACHE every put needs bytes and a TTL')
end
local puts = (#ARGV - 2) / 2
if #KEYS < 1 + puts then
  return redis.error_reply('LWCACHE fewer keys than puts')
end

local cached = redis.call('GET', KEYS[1])
if cached and not canonical(cached) then
  return redis.error_reply('LWCACHE the version key holds no version')
end

local outcome = 'applied'
if kind == 'fill' then
  if not cached then
    return {'noversion', ''}
  end
  if newer(cached, version) then
    return {'rejected', cached}
  end
elseif kind == 'commit' then
  if cached and newer(cached, version) then
    outcome = 'superseded'
  end
else
  return redis.error_reply('LWCACHE unknown write kind')
end

-- A plain SET: the version key never carries a TTL.
if not cached or newer(version, cached) then
  redis.call('SET', KEYS[1], version)
end

for i = 1, puts do
  local key = KEYS[1 + i]
  if outcome == 'superseded' then
    -- A newer commit's step ran first: this value may be older than what
    -- that commit left, so the key goes rather than the value landing.
    redis.call('DEL', key)
  else
    local ttl = ARGV[2 + 2 * i]
    if ttl == '0' then
      redis.call('SET', key, ARGV[1 + 2 * i])
    else
      redis.call('SET', key, ARGV[1 + 2 * i], 'PX', ttl)
    end
  end
end

for i = 2 + puts, #KEYS do
  redis.call('DEL', KEYS[i])
end

return {outcome, cached or ''}
