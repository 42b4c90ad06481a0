-- lwcache: one versioned write of keys of one world, atomically.
--
-- KEYS[1]          the world's version key (lw:world:{w}:ver)
-- KEYS[2..1+n]     the keys to put (n = number of puts)
-- KEYS[2+n..1+2n]  their lease keys, in the same order (<key>:lease)
-- KEYS[2+2n]       the world's epoch key (lw:world:{w}:epoch)
-- ARGV[1]          "fill" or "commit"
-- ARGV[2]          the write's version, a decimal string
-- ARGV[3]          a fill's lease token, or the epoch a commit's writer
--                  learned before its source commit ("" when it has none),
--                  a decimal string
-- ARGV[2+2i]       put i's bytes
-- ARGV[3+2i]       put i's TTL in milliseconds, "0" for none
--
-- Publishes a commit's version and landed keys on lw:invalidate.
--
-- Returns {landed, skipped, previous, lost}: how many puts landed and how
-- many did not, the world's highest version before the write ("" when
-- none), and 1 when a commit's epoch was not the world's (0 otherwise).
--
-- A put lands by the rule of lwcache_core::codec::replaces, on raw bytes:
-- never over a newer entry, and at the same version only if it is not a
-- tombstone. A fill's put also needs the key's lease to be the fill's; the
-- lease is released whether or not the put lands. A commit deletes every
-- put's lease and raises the world's version. A commit whose epoch is not
-- the one the epoch key holds (the store lost the world's keys since its
-- writer learned it) puts each value as a tombstone of its version: it may
-- be older than an entry the store lost.
--
-- Versions stay decimal strings: Lua numbers are doubles and would round
-- versions above 2^53. A canonical decimal (no leading zero) compares by
-- length first, then byte by byte. Entry versions are compared as their
-- 8 big-endian header bytes, whose byte order is numeric order. A version
-- is a u64: at most 20 digits, and of 20 digits none above 2^64 - 1.

local U64_MAX = '18446744073709551615'

local function canonical(v)
  if v == '0' then
    return true
  end
  if string.match(v, '^[1-9]%d*$') == nil then
    return false
  end
  return #v < 20 or (#v == 20 and v <= U64_MAX)
end

-- What a key holds, or false when it holds nothing or a value of another
-- Redis type: neither is an entry, and a put replaces both (SET takes any
-- type's place).
local function held(key)
  local v = redis.pcall('GET', key)
  if type(v) == 'table' and v.err then
    return false
  end
  return v
end

local function newer(a, b)
  return #a > #b or (#a == #b and a > b)
end

-- The codec's entry header: "LW", format 1 or 2, flags ("redacted" 1, and
-- in format 2 "stamps in the header" 2), then the version in bytes 5..12,
-- the same in both formats.
local function is_entry(bytes)
  if #bytes < 12 or string.sub(bytes, 1, 2) ~= 'LW' then
    return false
  end
  local format, flags = string.byte(bytes, 3), string.byte(bytes, 4)
  if format == 1 then
    return flags == 0 or flags == 1
  end
  return format == 2 and flags >= 0 and flags <= 3
end

-- A tombstone is the header followed by exactly one byte 5.
local function is_tombstone(bytes)
  return #bytes == 13 and string.byte(bytes, 13) == 5 and is_entry(bytes)
end

-- Compares the versions of two entries: -1, 0 or 1. Byte by byte, as
-- numbers: Lua's string comparison follows the server's collation locale.
local function compare_versions(a, b)
  for i = 5, 12 do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x < y and -1 or 1
    end
  end
  return 0
end

-- The tombstone of an entry's version, as the codec makes it: format 1,
-- no flags, the version's 8 bytes, then 5.
local function tombstone_of(bytes)
  return 'LW\1\0' .. string.sub(bytes, 5, 12) .. '\5'
end

local function replaces(current, new)
  if not is_entry(new) then
    return false
  end
  if not current or not is_entry(current) then
    return true
  end
  local order = compare_versions(current, new)
  return order < 0 or (order == 0 and not is_tombstone(new))
end

local kind = ARGV[1]
local version = ARGV[2]
local token = ARGV[3]
if not canonical(version) then
  return redis.error_reply('LWCACHE bad version argument')
end
if (#ARGV % 2) ~= 1 then
  return redis.error_reply('LWCACHE every put needs bytes and a TTL')
end
local puts = (#ARGV - 3) / 2
if #KEYS ~= 2 + 2 * puts then
  return redis.error_reply('LWCACHE every put needs its key and its lease key, then the epoch key')
end
local lost = false
if kind == 'fill' then
  if not canonical(token) then
    return redis.error_reply('LWCACHE bad lease token')
  end
elseif kind == 'commit' then
  if token ~= '' and not canonical(token) then
    return redis.error_reply('LWCACHE bad epoch')
  end
  lost = token == '' or held(KEYS[2 + 2 * puts]) ~= token
else
  return redis.error_reply('LWCACHE unknown write kind')
end

local previous = redis.call('GET', KEYS[1])
if previous and not canonical(previous) then
  return redis.error_reply('LWCACHE the version key holds no version')
end

local landed, skipped = 0, 0
local landed_keys = {}
for i = 1, puts do
  local key, lease = KEYS[1 + i], KEYS[1 + puts + i]
  local bytes, ttl = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  local lands
  if kind == 'fill' then
    local ours = held(lease) == token
    if ours then
      redis.call('DEL', lease)
    end
    lands = ours and replaces(held(key), bytes)
  else
    redis.call('DEL', lease)
    if lost and is_entry(bytes) and not is_tombstone(bytes) then
      bytes = tombstone_of(bytes)
    end
    lands = replaces(held(key), bytes)
  end
  if lands then
    landed_keys[#landed_keys + 1] = key
    if ttl == '0' then
      redis.call('SET', key, bytes)
    else
      redis.call('SET', key, bytes, 'PX', ttl)
    end
    landed = landed + 1
  else
    skipped = skipped + 1
  end
end

-- A plain SET: the version key never carries a TTL.
if kind == 'commit' and (not previous or newer(version, previous)) then
  redis.call('SET', KEYS[1], version)
end

-- Near caches drop what a commit changed: its version and the keys that
-- landed, one per line, published in the same atomic step as the write.
-- A fill publishes nothing: it never changes what a key means.
if kind == 'commit' and #landed_keys > 0 then
  redis.call('PUBLISH', 'lw:invalidate', version .. '\n' .. table.concat(landed_keys, '\n'))
end

return {landed, skipped, previous or '', lost and 1 or 0}
