"""The Redis queue's Lua scripts and the parsing of what Redis answers: stream entries' fields,
flat field lists from scripts, ``XINFO`` replies, entry ids. ``queues.redis`` holds the queue
that uses them (its module docstring says what each script is for).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, cast

from .base import check_ids

ENTRY_ID: Final = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
AFTER_ID: Final = re.compile(r"[0-9]{1,20}(-[0-9]{1,20})?")

# Append ARGV[3..] as entries (field d; t = ARGV[1]), trimming to about ARGV[2] entries unless
# it is ''. One command and atomic: coredis pipelines cost far more per command than Redis.
PUBLISH_LUA: Final = """
local t, maxlen = ARGV[1], ARGV[2]
local ids = {}
for i = 3, #ARGV do
  if maxlen == '' then
    ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', 'd', ARGV[i], 't', t)
  else
    ids[#ids + 1] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'd', ARGV[i], 't', t)
  end
end
return ids
"""

# Acknowledge ARGV[3..] in group ARGV[1], and delete them unless ARGV[2] is '1' (a log).
ACK_LUA: Final = """
local group, keep = ARGV[1], ARGV[2]
local acked = 0
for i = 3, #ARGV, 1000 do
  local last = math.min(i + 999, #ARGV)
  acked = acked + redis.call('XACK', KEYS[1], group, unpack(ARGV, i, last))
  if keep ~= '1' then redis.call('XDEL', KEYS[1], unpack(ARGV, i, last)) end
end
return acked
"""

# XAUTOCLAIM plus the delivery counter of each claimed entry (which the claim incremented):
# {next cursor, entries, deleted ids, counters}.
CLAIM_LUA: Final = """
local group, consumer = ARGV[1], ARGV[2]
local r = redis.call('XAUTOCLAIM', KEYS[1], group, consumer, ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local counts = {}
for i, e in ipairs(r[2]) do
  local p = redis.call('XPENDING', KEYS[1], group, e[1], e[1], 1)
  if #p > 0 then counts[i] = p[1][4] else counts[i] = 0 end
end
return {r[1], r[2], r[3] or {}, counts}
"""

# Extend or release the leases this consumer still holds: reset the idle time to ARGV[3] ms
# without counting a delivery. Returns how many were held.
RELEASE_LUA: Final = """
local stream, group, consumer, idle = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local held = {}
for i = 4, #ARGV do
  local p = redis.call('XPENDING', stream, group, ARGV[i], ARGV[i], 1, consumer)
  if #p > 0 then held[#held + 1] = ARGV[i] end
end
if #held > 0 then
  local args = {stream, group, consumer, 0}
  for i = 1, #held do args[#args + 1] = held[i] end
  args[#args + 1] = 'IDLE'
  args[#args + 1] = idle
  args[#args + 1] = 'JUSTID'
  redis.call('XCLAIM', unpack(args))
end
return #held
"""

# Move (id, reason, attempts) triples to the dead-letter stream: copy the payload and the
# delivery count (the pending entry's counter when attempts is ''), then XACK (and XDEL unless
# the queue keeps acknowledged entries). Only unacknowledged entries move; returns the ids
# moved.
DEAD_LETTER_LUA: Final = """
local stream, dlq = KEYS[1], KEYS[2]
local group, now, keep = ARGV[1], ARGV[2], ARGV[3]
local function after(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  if am ~= bm then return am > bm end
  return as > bs
end
local last = nil
if keep == '1' then
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local name, id = nil, nil
    for j = 1, #g, 2 do
      if g[j] == 'name' then name = g[j + 1] end
      if g[j] == 'last-delivered-id' then id = g[j + 1] end
    end
    if name == group then last = id end
  end
end
local moved = {}
for i = 4, #ARGV, 3 do
  local id, reason, attempts = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local found = redis.call('XRANGE', stream, id, id)
  if #found > 0 then
    local pending = redis.call('XPENDING', stream, group, id, id, 1)
    if attempts == '' then
      attempts = 0
      if #pending > 0 then attempts = pending[1][4] end
    end
    -- on a log, an entry that is neither pending nor undelivered was acknowledged already
    if keep == '0' or #pending > 0 or (last ~= nil and after(id, last)) then
      local fields = found[1][2]
      local data = ''
      for j = 1, #fields, 2 do
        if fields[j] == 'd' then data = fields[j + 1] end
      end
      redis.call('XADD', dlq, '*', 'id', id, 'data', data, 'reason', reason,
                 'attempts', attempts, 't', now)
      redis.call('XACK', stream, group, id)
      if keep == '0' then redis.call('XDEL', stream, id) end
      moved[#moved + 1] = id
    end
  end
end
return moved
"""

# On close: forget this consumer in the group if it holds nothing (a consumer that still
# holds entries must stay, or they would be orphaned). Nothing to do if the stream is gone.
FORGET_LUA: Final = """
local p = redis.pcall('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if type(p) ~= 'table' or p.err then return -2 end
if #p == 0 then return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2]) end
return -1
"""


def text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def field(fields: Mapping[Any, Any] | None, name: str) -> bytes | None:
    if not fields:
        return None
    value = fields.get(name.encode())
    if value is None:
        value = fields.get(name)
    if value is None:
        return None
    return value.encode() if isinstance(value, str) else bytes(value)


def pairs(flat: Sequence[Any] | None) -> dict[Any, Any] | None:
    """A flat ``[field, value, ...]`` list (as a Lua script returns it) as a dict."""
    if flat is None:
        return None
    items = iter(flat)
    return dict(zip(items, items, strict=False))


def id_seconds(entry_id: str) -> float:
    """The Redis server time embedded in an automatic stream id."""
    try:
        return int(entry_id.split("-", 1)[0]) / 1000.0
    except ValueError:
        return 0.0


def published(fields: Mapping[Any, Any] | None, entry_id: str) -> float:
    raw = field(fields, "t")
    if raw is not None:
        try:
            value = float(raw)
        except ValueError:
            pass
        else:
            if math.isfinite(value) and value > 0:
                return value
    return id_seconds(entry_id)


def check_entry_ids(ids: Sequence[str]) -> list[str]:
    out = check_ids(ids)
    for entry_id in out:
        if not ENTRY_ID.fullmatch(entry_id):
            raise ValueError(f"invalid Redis stream entry id {entry_id!r}: expected 'ms-seq'")
    return out


def group_info(groups: Any, group: str) -> Mapping[Any, Any] | None:
    for info in groups or ():
        if text(info.get(b"name", info.get("name", b""))) == group:
            return cast(Mapping[Any, Any], info)
    return None


def info_value(info: Mapping[Any, Any], key: str) -> Any:
    value = info.get(key.encode())
    return info.get(key) if value is None else value


__all__ = [
    "ACK_LUA",
    "AFTER_ID",
    "CLAIM_LUA",
    "DEAD_LETTER_LUA",
    "ENTRY_ID",
    "FORGET_LUA",
    "PUBLISH_LUA",
    "RELEASE_LUA",
    "check_entry_ids",
    "field",
    "group_info",
    "id_seconds",
    "info_value",
    "pairs",
    "published",
    "text",
]
