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
/// the group, then per stream the number of ids and the ids. Acknowledges
/// and deletes them (never trimming: that would delete unacknowledged
/// work) and lowers the depth by what was acknowledged here, so an entry
/// settled twice (its holder was presumed dead, and both finished) counts
/// once. Returns how many were acknowledged.
pub const SETTLE: &str = r#"
local group = ARGV[1]
local at = 2
local acked = 0
for k = 2, #KEYS do
  local n = tonumber(ARGV[at])
  at = at + 1
  if n > 0 then
    local ids = {}
    for i = 1, n do
      ids[i] = ARGV[at]
      at = at + 1
    end
    acked = acked + redis.call('XACK', KEYS[k], group, unpack(ids))
    redis.call('XDEL', KEYS[k], unpack(ids))
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
/// letter's work stream. ARGV: the letter's id. Adds its envelope back to
/// the work stream (the group's bound does not refuse a replay) and
/// deletes the letter; 0 when it was gone already.
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
redis.call('XADD', KEYS[3], '*', 'e', envelope)
redis.call('INCR', KEYS[1])
redis.call('XDEL', KEYS[2], ARGV[1])
return 1
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
