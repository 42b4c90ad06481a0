-- lwcache: raises a world's version to at least ARGV[1] and returns the
-- version now cached, as a decimal string.
--
-- KEYS[1]  the world's version key (lw:world:{w}:ver)
-- ARGV[1]  the version to seed, a decimal string

local function canonical(v)
  return v == '0' or (string.match(v, '^[1-9]%d*$') ~= nil and #v <= 20)
end

local function newer(a, b)
  return #a > #b or (#a == #b and a > b)
end

local version = ARGV[1]
if not canonical(version) then
  return redis.error_reply('LWCACHE bad version argument')
end
local cached = redis.call('GET', KEYS[1])
if cached and not canonical(cached) then
  return redis.error_reply('LWCACHE the version key holds no version')
end
if not cached or newer(version, cached) then
  -- A plain SET: the version key never carries a TTL.
  redis.call('SET', KEYS[1], version)
  return version
end
return cached
