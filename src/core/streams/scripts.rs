//! The Lua scripts the group runs in Redis. Each runs atomically, so the
//! group's depth counter always equals the entries added and not yet
//! acknowledged, whatever processes die between two of them. Every key a
//! script touches is passed in `KEYS` (one hash tag per bus), as Redis
//! Cluster requires.

/// Adds an emission batch. KEYS: depth counter, types set, then the
/// streams. ARGV: the group's `maxQueueSize`, the number of type names that
/// follow, those names, then per event its stream (an index into KEYS) and
/// its envelope. Adds events in order while the group has room; returns how
/// many it added (the rest are refused as `QUEUE_FULL`).
pub const EMIT: &str = r#"
local depth = tonumber(redis.call('GET', KEYS[1]) or '0')
local room = tonumber(ARGV[1]) - depth
local ntypes = tonumber(ARGV[2])
for i = 1, ntypes do
  redis.call('SADD', KEYS[2], ARGV[2 + i])
end
local first = 3 + ntypes
local count = math.floor((#ARGV - first + 1) / 2)
if room < count then count = math.max(room, 0) end
for i = 0, count - 1 do
  local key = KEYS[tonumber(ARGV[first + 2 * i])]
  redis.call('XADD', key, '*', 'e', ARGV[first + 2 * i + 1])
end
if count > 0 then redis.call('INCRBY', KEYS[1], count) end
return count
"#;

/// Settles finished events. KEYS: depth counter, then the streams. ARGV:
/// the group, then per stream the number of ids and the ids, oldest first
/// (the script looks for those past the trim from the newest back). Acknowledges
/// and deletes them, and lowers the depth by what was acknowledged here, so
/// an entry settled twice (its holder was presumed dead, and both
/// finished) counts once. Returns how many were acknowledged.
///
/// Deleting is most of a settle's cost, and `XDEL` looks up each id: the
/// entries below the stream's oldest unacknowledged one (the oldest
/// pending, else the first never delivered; the group reads in id order,
/// so everything below it was delivered and acknowledged) go with one
/// `XTRIM MINID` instead, and only the ids at or past it with `XDEL`.
/// Never `MAXLEN`: that would delete unacknowledged work.
pub const SETTLE: &str = r#"
local group = ARGV[1]
-- Stream ids compare as (ms, seq), both decimal integers; `b` whole and
-- split. Ids of one length almost always split alike, and compare as text;
-- a wrong answer there only leaves an entry for a later trim, or deletes
-- one already trimmed.
local function below(a, b, bm, bs)
  if #a == #b then return a < b end
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  if not am or not bm then return false end
  if #am ~= #bm then return #am < #bm end
  if am ~= bm then return am < bm end
  if #as ~= #bs then return #as < #bs end
  return as < bs
end
-- The id below which every entry is acknowledged (nil: keep everything).
local function floor(key)
  local summary = redis.call('XPENDING', key, group)
  if tonumber(summary[1]) > 0 then return summary[2] end
  local last
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
    local name, id
    for j = 1, #g, 2 do
      if g[j] == 'name' then name = g[j + 1]
      elseif g[j] == 'last-delivered-id' then id = g[j + 1] end
    end
    if name == group then last = id end
  end
  if not last then return nil end
  local after = redis.call('XRANGE', key, '(' .. last, '+', 'COUNT', 1)
  if after[1] then return after[1][1] end
  return last
end
local at = 2
local acked = 0
for k = 2, #KEYS do
  local n = tonumber(ARGV[at])
  at = at + 1
  if n > 0 then
    -- The ids are ARGV[first..last], read in place.
    local first, last = at, at + n - 1
    at = at + n
    acked = acked + redis.call('XACK', KEYS[k], group, unpack(ARGV, first, last))
    -- No group (Redis lost the stream): nothing to trim.
    local found, low = pcall(floor, KEYS[k])
    if low and found then
      redis.call('XTRIM', KEYS[k], 'MINID', low)
      local lm, ls = string.match(low, '^(%d+)-(%d+)$')
      -- Oldest first: from the newest back to the first trimmed.
      local from = last + 1
      while from > first and not below(ARGV[from - 1], low, lm, ls) do from = from - 1 end
      if from <= last then redis.call('XDEL', KEYS[k], unpack(ARGV, from, last)) end
    else
      redis.call('XDEL', KEYS[k], unpack(ARGV, first, last))
    end
  end
end
if acked > 0 then
  -- Entries added by something else than EMIT were never counted.
  if redis.call('DECRBY', KEYS[1], acked) < 0 then redis.call('SET', KEYS[1], 0) end
end
return acked
"#;

/// The group's state per stream. KEYS: the streams; ARGV: the group.
/// Returns, per stream, its length, the group's pending count and its
/// consumers (0 and 0 when no process has read it yet).
pub const STATS: &str = r#"
local out = {}
for i = 1, #KEYS do
  local len = redis.call('XLEN', KEYS[i])
  local pending, consumers = 0, 0
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[i])
    if ok then
      for _, g in ipairs(groups) do
        local name, p, c
        for j = 1, #g, 2 do
          if g[j] == 'name' then name = g[j + 1]
          elseif g[j] == 'pending' then p = g[j + 1]
          elseif g[j] == 'consumers' then c = g[j + 1] end
        end
        if name == ARGV[1] then
          pending = p or 0
          consumers = c or 0
        end
      end
    end
  end
  out[#out + 1] = len
  out[#out + 1] = pending
  out[#out + 1] = consumers
end
return out
"#;

/// Renews this process's claims. KEYS: a stream; ARGV: the group, this
/// consumer, then ids. Resets the idle time of each id this consumer still
/// owns (`XCLAIM ... JUSTID` counts no delivery) and returns the ids it no
/// longer owns (another process took them over, or they were settled):
/// claiming those back would run them twice.
pub const RENEW: &str = r#"
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] ~= nil and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
"#;

/// Moves a dead-lettered event into the group's dead-letter stream. KEYS:
/// depth counter, its work stream, the dead-letter stream, the letter id
/// counter. ARGV: its entry id, the group, the most letters kept, this
/// consumer, then one JSON description per failed handler. Only while this
/// consumer owns the entry (else another process took it over, and its
/// run decides: -1): copies the envelope into one letter per handler (ids
/// `<n>-0` from the counter, the oldest trimmed past the bound), then
/// settles the work entry as SETTLE does. Returns how many letters it
/// wrote (0: the entry was settled already).
pub const LETTER: &str = r#"
local p = redis.call('XPENDING', KEYS[2], ARGV[2], ARGV[1], ARGV[1], 1)
if p[1] == nil then return 0 end
if p[1][2] ~= ARGV[4] then return -1 end
local found = redis.call('XRANGE', KEYS[2], ARGV[1], ARGV[1])
local envelope = ''
if found[1] ~= nil then
  local fields = found[1][2]
  for j = 1, #fields, 2 do
    if fields[j] == 'e' then envelope = fields[j + 1] end
  end
end
local written = 0
for i = 5, #ARGV do
  local n = redis.call('INCR', KEYS[4])
  redis.call('XADD', KEYS[3], 'MAXLEN', ARGV[3], n .. '-0', 'e', envelope, 'm', ARGV[i], 's', KEYS[2])
  written = written + 1
end
if redis.call('XACK', KEYS[2], ARGV[2], ARGV[1]) > 0 then
  if redis.call('DECRBY', KEYS[1], 1) < 0 then redis.call('SET', KEYS[1], 0) end
end
redis.call('XDEL', KEYS[2], ARGV[1])
return written
"#;

/// Replays a dead letter. KEYS: depth counter, the dead-letter stream, the
/// letter's work stream. ARGV: the letter's id, the failed handler's key
/// ('' when the letter has none: the whole event runs again). Adds its
/// envelope back to the work stream, for that handler alone with fresh
/// attempts (the group's bound does not refuse a replay), and deletes the
/// letter; 0 when it was gone already.
pub const REPLAY: &str = r#"
local found = redis.call('XRANGE', KEYS[2], ARGV[1], ARGV[1])
if found[1] == nil then return 0 end
local fields = found[1][2]
local envelope = ''
for j = 1, #fields, 2 do
  if fields[j] == 'e' then envelope = fields[j + 1] end
end
-- Nothing to run again (the entry was gone when it was lettered).
if envelope == '' then return 0 end
if ARGV[2] ~= '' then
  redis.call('XADD', KEYS[3], '*', 'e', envelope, 'h', ARGV[2], 'a', '0', 'm', '[]')
else
  redis.call('XADD', KEYS[3], '*', 'e', envelope)
end
redis.call('INCR', KEYS[1])
redis.call('XDEL', KEYS[2], ARGV[1])
return 1
"#;

/// Schedules failed handlers' retries in the group's retry set. KEYS: the
/// work stream, the retry set (a sorted set of retry names by due time,
/// Redis's clock), the retries' data (a hash). ARGV: the group, this
/// consumer, then per retry the entry id, the delay in ms, the handler's
/// key, the attempt it will be and its earlier errors (JSON). Only for
/// entries this consumer still owns; copies the entry's envelope, as the
/// entry is settled once its other handlers finish. A retry is named by its
/// stream, entry, attempt and handler: sent again after its reply was lost,
/// it is not scheduled twice. Returns per retry 1 (scheduled), 2 (it
/// already was), -1 (another process took the entry over: its run decides)
/// or 0 (the entry is gone).
pub const RETRY: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 3, #ARGV, 5 do
  local id = ARGV[i]
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  local envelope = ''
  if p[1] ~= nil and p[1][2] == ARGV[2] then
    local found = redis.call('XRANGE', KEYS[1], id, id)
    if found[1] ~= nil then
      local fields = found[1][2]
      for j = 1, #fields, 2 do
        if fields[j] == 'e' then envelope = fields[j + 1] end
      end
    end
  end
  if p[1] ~= nil and p[1][2] ~= ARGV[2] then
    out[#out + 1] = -1
  elseif envelope == '' then
    out[#out + 1] = 0
  else
    local n = KEYS[1] .. '|' .. id .. '|' .. ARGV[i + 3] .. '|' .. ARGV[i + 2]
    if redis.call('ZADD', KEYS[2], 'NX', now + tonumber(ARGV[i + 1]), n) == 1 then
      redis.call('HSET', KEYS[3], n .. ':s', KEYS[1], n .. ':e', envelope, n .. ':h', ARGV[i + 2], n .. ':a', ARGV[i + 3], n .. ':m', ARGV[i + 4])
      out[#out + 1] = 1
    else
      out[#out + 1] = 2
    end
  end
end
return out
"#;

/// Which retries are due (read only). KEYS: the retry set, the retries'
/// data. ARGV: the most to return. Returns the ms until the next one not
/// yet due (-1: none), then per due retry its name and work stream ('' when
/// its data is gone).
pub const DUE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {-1}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[2], id .. ':s') or ''
end
local later = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if later[2] ~= nil then out[1] = math.max(0, math.floor(tonumber(later[2]) - now)) end
return out
"#;

/// Moves due retries to their work streams. KEYS: the retry set, the
/// retries' data, the depth counter, then the work streams. ARGV: per
/// retry its name and its stream's index in KEYS (0: its data is gone).
/// Each retry still in the set is taken out (so it moves once, whichever
/// processes promote at the same time) and added to its stream with its
/// handler's key, attempt and errors. Returns the retries moved and those
/// whose data was gone.
pub const PROMOTE: &str = r#"
local moved, gone = 0, 0
for i = 1, #ARGV, 2 do
  local n = ARGV[i]
  if redis.call('ZREM', KEYS[1], n) == 1 then
    local f = redis.call('HMGET', KEYS[2], n .. ':s', n .. ':e', n .. ':h', n .. ':a', n .. ':m')
    local at = tonumber(ARGV[i + 1])
    if at > 0 and f[1] == KEYS[at] and f[2] then
      redis.call('XADD', KEYS[at], '*', 'e', f[2], 'h', f[3] or '', 'a', f[4] or '1', 'm', f[5] or '[]')
      redis.call('INCR', KEYS[3])
      moved = moved + 1
    else
      gone = gone + 1
    end
    redis.call('HDEL', KEYS[2], n .. ':s', n .. ':e', n .. ':h', n .. ':a', n .. ':m')
  end
end
return {moved, gone}
"#;

/// Hands entries back to the group. KEYS: a stream; ARGV: the group, this
/// consumer, the idle time to give them, then id and delivery count pairs.
/// Only entries this consumer still owns: each is made to look idle (the
/// next process to look takes it over) with the given count.
pub const RELEASE: &str = r#"
for i = 4, #ARGV, 2 do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] ~= nil and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'IDLE', ARGV[3], 'RETRYCOUNT', ARGV[i + 1], 'JUSTID')
  end
end
return 0
"#;
