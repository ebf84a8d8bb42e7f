"""The Redis message store: one hash per message, an index per message id, the history in a list;
each batch applied by one Lua script, so several daemons share the store safely.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, Final, Self

import msgspec

from ..bridge.envelope import Event, decode_event, encode_events
from ..bridge.store import (
    DEFAULT_DEDUP_WINDOW,
    DEFAULT_RETENTION,
    MessageRecord,
    _namespaced_key,
    _pick,
    _StoreBase,
    decode_record,
    encode_record,
    event_message_ids,
    log,
    message_id_keys,
)
from ..codec.status import Status
from ..pool import canonical_id
from .redis_client import redis_client

if TYPE_CHECKING:
    import coredis

# The scripts' status table, generated from the one vocabulary: ``rank`` in Lua is
# ``Status.rank`` (0 for a string that is no status, as ``status_rank``).
_LUA_RANKS: Final = "{" + ", ".join(f'["{s.value}"] = {s.rank}' for s in sorted(Status)) + "}"
_LUA_RANK_FUNCTION: Final = f"""
local RANK = {_LUA_RANKS}
local function rank(s) return RANK[s] or 0 end"""

# ARGV: prefix, now, window, ttl, then per record: namespaced key, request id, created_at,
# n, and n hash field/value arguments. Returns {position, HGETALL} of records that existed.
_BEGIN_LUA: Final = """
local prefix, now, window, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local out = {}
local i, n = 5, 0
while i <= #ARGV do
  local dk = prefix .. ':k:' .. ARGV[i]
  local rid, created, count = ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local first = i + 4
  i = first + count
  local found = false
  if not redis.call('SET', dk, ARGV[2] .. ' ' .. rid, 'NX', 'EX', ttl) then
    local cur = redis.call('GET', dk)
    local sp = cur and string.find(cur, ' ', 1, true)
    if sp and tonumber(string.sub(cur, 1, sp - 1)) > now - window then
      local fields = redis.call('HGETALL', prefix .. ':m:' .. string.sub(cur, sp + 1))
      if #fields > 0 then
        out[#out + 1] = {n, fields}
        found = true
      end
    end
    if not found then
      redis.call('SET', dk, ARGV[2] .. ' ' .. rid, 'EX', ttl)
    end
  end
  if not found then
    local mk = prefix .. ':m:' .. rid
    redis.call('DEL', mk)
    redis.call('HSET', mk, unpack(ARGV, first, first + count - 1))
    redis.call('EXPIRE', mk, ttl)
    redis.call('ZADD', KEYS[1], created, rid)
  end
  n = n + 1
end
return out
"""

# ARGV: prefix, now, then per event: request id, status, code, ids (JSON array or ""), parts,
# reason, account, possible duplicate ("1"/"0"), part-level ("1"/"0"), the event's JSON, and
# the ids' canonical keys (JSON array, parallel to ids, or ""): each id new to the message is
# indexed in ``{prefix}:i:{key}``, a hash of account → request id, expiring with the message.
_APPLY_LUA: Final = (
    _LUA_RANK_FUNCTION
    + """
local prefix, now = ARGV[1], ARGV[2]
local applied = 0
for i = 3, #ARGV, 11 do
  local rid = ARGV[i]
  local mk = prefix .. ':m:' .. rid
  local cur = redis.call('HGET', mk, 'status')
  if cur then
    applied = applied + 1
    local hk = prefix .. ':h:' .. rid
    redis.call('RPUSH', hk, ARGV[i + 9])
    local left = redis.call('TTL', mk)
    if left > 0 then redis.call('EXPIRE', hk, left) end
    local status = ARGV[i + 1]
    if ARGV[i + 8] == '0' and rank(status) >= rank(cur) then
      redis.call('HSET', mk, 'status', status, 'code', ARGV[i + 2])
      if ARGV[i + 5] ~= '' then
        redis.call('HSET', mk, 'reason', ARGV[i + 5])
      else
        redis.call('HDEL', mk, 'reason')
      end
      if ARGV[i + 4] ~= '' then redis.call('HSET', mk, 'parts', ARGV[i + 4]) end
      if ARGV[i + 6] ~= '' then redis.call('HSET', mk, 'account', ARGV[i + 6]) end
    end
    if ARGV[i + 3] ~= '' then
      local old = redis.call('HGET', mk, 'ids')
      local ids = {}
      if old and old ~= '' then ids = cjson.decode(old) end
      local seen = {}
      for _, v in ipairs(ids) do seen[v] = true end
      local changed = false
      local keys = cjson.decode(ARGV[i + 10])
      local account = redis.call('HGET', mk, 'account') or ''
      for n, v in ipairs(cjson.decode(ARGV[i + 3])) do
        if not seen[v] then
          ids[#ids + 1] = v
          seen[v] = true
          changed = true
          local key = keys[n]
          if key and key ~= '' then
            local ik = prefix .. ':i:' .. key
            redis.call('HSET', ik, account, rid)
            if left > 0 then redis.call('EXPIRE', ik, left) end
          end
        end
      end
      if changed then redis.call('HSET', mk, 'ids', cjson.encode(ids)) end
    end
    if ARGV[i + 7] == '1' then redis.call('HSET', mk, 'dup', '1') end
    redis.call('HSET', mk, 'updated', now)
  end
end
return applied
"""
)

# ARGV: prefix, now, status, request ids...
_MARK_LUA: Final = (
    _LUA_RANK_FUNCTION
    + """
local prefix, now, status = ARGV[1], ARGV[2], ARGV[3]
for i = 4, #ARGV do
  local mk = prefix .. ':m:' .. ARGV[i]
  local cur = redis.call('HGET', mk, 'status')
  if cur and rank(status) >= rank(cur) then
    redis.call('HSET', mk, 'status', status, 'updated', now)
  end
end
return 0
"""
)

# KEYS[1] the index; ARGV: prefix, older_than, how many at most. Returns how many went.
_PURGE_LUA: Final = """
local prefix = ARGV[1]
local rids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2], 'LIMIT', 0,
  tonumber(ARGV[3]))
for _, rid in ipairs(rids) do
  local mk = prefix .. ':m:' .. rid
  local dk = prefix .. ':k:r:' .. rid
  local base = redis.call('HGET', mk, 'base')
  if base then
    local ok, rec = pcall(cjson.decode, base)
    if ok and type(rec) == 'table' and type(rec['clientId']) == 'string'
        and rec['clientId'] ~= '' then
      dk = prefix .. ':k:c:' .. rec['clientId']
    end
  end
  local cur = redis.call('GET', dk)
  local sp = cur and string.find(cur, ' ', 1, true)
  if sp and string.sub(cur, sp + 1) == rid then redis.call('DEL', dk) end
  redis.call('DEL', mk, prefix .. ':h:' .. rid)
  redis.call('ZREM', KEYS[1], rid)
end
return #rids
"""

_PURGE_CHUNK: Final = 1000
_HISTORY_CHUNK: Final = 200
_REDIS_BATCH: Final = 1000  # records or events per script call: no script runs for long


def _hash_fields(record: MessageRecord) -> list[str | bytes]:
    fields: list[str | bytes] = [
        "base",
        encode_record(record),
        "status",
        record.status,
        "code",
        str(record.code),
        "ids",
        msgspec.json.encode(record.message_ids) if record.message_ids else "",
        "parts",
        str(record.parts),
        "dup",
        "1" if record.possible_duplicate else "0",
        "updated",
        repr(record.updated_at),
    ]
    if record.reason is not None:
        fields += ["reason", record.reason]
    if record.account is not None:
        fields += ["account", record.account]
    return fields


def _record_from_hash(fields: Mapping[bytes, bytes]) -> MessageRecord | None:
    base = fields.get(b"base")
    if base is None:
        return None
    record = decode_record(base)
    record.status = fields[b"status"].decode()
    record.code = int(fields.get(b"code", b"0"))
    ids = fields.get(b"ids", b"")
    record.message_ids = msgspec.json.decode(ids, type=list[str]) if ids else []
    record.parts = int(fields.get(b"parts", b"0"))
    reason = fields.get(b"reason")
    record.reason = reason.decode() if reason is not None else None
    account = fields.get(b"account")
    record.account = account.decode() if account is not None else None
    record.possible_duplicate = fields.get(b"dup") == b"1"
    record.updated_at = float(fields.get(b"updated", b"0"))
    return record


def _pairs(flat: Sequence[bytes]) -> dict[bytes, bytes]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


class RedisMessageStore(_StoreBase):
    """Records in Redis, shared by every daemon on the same server (not Redis Cluster: a
    script touches the keys of many messages).

    Keys under ``prefix``: ``{prefix}:m:{request id}`` a hash per message, expiring after
    ``retention`` seconds (at least the dedup window); ``{prefix}:h:{request id}`` its
    history, a list of event JSON; ``{prefix}:k:c:{clientId}`` / ``{prefix}:k:r:{request
    id}`` the dedup key (``SET NX EX``, value "instant request-id": a key older than the
    window is taken over); ``{prefix}:idx`` a sorted set of request ids by ``created_at``.

    ``client_or_url``: a ``coredis.Redis`` the caller has entered, or a URL; with a URL the
    store makes its own client, which has to be entered and left in one task: use
    ``async with RedisMessageStore(url) as store`` or ``store = await
    RedisMessageStore.connect(url)`` ... ``await store.aclose()``.

    Raises ``ValueError`` for an empty prefix or a bad dedup window; every call raises
    ``StoreClosedError`` after ``aclose`` (``RuntimeError`` on a store made from a URL and not
    connected yet), and lets the client's errors (``coredis.exceptions.RedisError``,
    ``TimeoutError``, ``OSError``) through.
    """

    def __init__(
        self,
        client_or_url: coredis.Redis[bytes] | str,
        prefix: str = "smpp-bridge",
        dedup_window: float = DEFAULT_DEDUP_WINDOW,
        *,
        retention: float = DEFAULT_RETENTION,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(dedup_window, clock)
        if not prefix:
            raise ValueError("prefix: empty")
        self.prefix = prefix
        self.retention = max(retention, dedup_window)
        self._ttl = max(1, math.ceil(self.retention))
        self._url: str | None = None
        self._client: coredis.Redis[bytes] | None = None
        self._stack: AsyncExitStack | None = None
        if isinstance(client_or_url, str):
            self._url = client_or_url
        else:
            self._client = client_or_url

    @classmethod
    async def connect(
        cls,
        url: str,
        prefix: str = "smpp-bridge",
        dedup_window: float = DEFAULT_DEDUP_WINDOW,
        *,
        retention: float = DEFAULT_RETENTION,
        clock: Callable[[], float] = time.time,
    ) -> RedisMessageStore:
        """A store over its own client for ``url``, connected now; ``aclose`` it from the
        same task."""
        store = cls(url, prefix, dedup_window, retention=retention, clock=clock)
        return await store.__aenter__()

    @property
    def index_key(self) -> str:
        return f"{self.prefix}:idx"

    @property
    def client(self) -> coredis.Redis[bytes]:
        self._check_open()
        if self._client is None:
            raise RuntimeError(
                "RedisMessageStore made from a URL is not connected: use it as `async with`, "
                "or make it with `await RedisMessageStore.connect(url)`"
            )
        return self._client

    async def __aenter__(self) -> Self:
        self._check_open()
        if self._url is not None and self._client is None:
            stack = AsyncExitStack()
            client = redis_client(self._url)
            await stack.enter_async_context(client)
            self._stack = stack
            self._client = client
        return self

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        stack, self._stack = self._stack, None
        if stack is not None:
            self._client = None
            await stack.aclose()

    async def _script(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return await self.client.eval(source, keys=list(keys), args=list(args))

    async def begin(self, records: Sequence[MessageRecord]) -> dict[str, MessageRecord]:
        self._check_open()
        existing: dict[str, MessageRecord] = {}
        now = repr(self._clock())
        for start in range(0, len(records), _REDIS_BATCH):
            chunk = records[start : start + _REDIS_BATCH]
            args: list[Any] = [self.prefix, now, repr(self.dedup_window), self._ttl]
            for record in chunk:
                fields = _hash_fields(record)
                args += [
                    _namespaced_key(record),
                    record.request_id,
                    repr(record.created_at),
                    len(fields),
                    *fields,
                ]
            found = await self._script(_BEGIN_LUA, [self.index_key], args)
            for position, flat in found:
                earlier = _record_from_hash(_pairs(flat))
                if earlier is not None:
                    existing[chunk[int(position)].request_id] = earlier
        return existing

    async def mark(self, request_ids: Sequence[str], status: str) -> None:
        self._check_open()
        now = repr(self._clock())
        for start in range(0, len(request_ids), _REDIS_BATCH):
            chunk = list(request_ids[start : start + _REDIS_BATCH])
            await self._script(_MARK_LUA, [], [self.prefix, now, status, *chunk])

    async def apply(self, events: Sequence[Event]) -> None:
        self._check_open()
        relevant = [e for e in events if e.request_id is not None]
        now = repr(self._clock())
        for start in range(0, len(relevant), _REDIS_BATCH):
            chunk = relevant[start : start + _REDIS_BATCH]
            args: list[Any] = [self.prefix, now]
            for event, data in zip(chunk, encode_events(chunk), strict=True):
                ids = event_message_ids(event)
                args += [
                    event.request_id,
                    event.status,
                    str(event.code),
                    msgspec.json.encode(ids) if ids else "",
                    str(event.parts) if event.parts else "",
                    event.reason or "",
                    event.account or "",
                    "1" if event.possible_duplicate else "0",
                    "0" if event.segment is None else "1",
                    data,
                    msgspec.json.encode([canonical_id(i) for i in ids]) if ids else "",
                ]
            await self._script(_APPLY_LUA, [], args)

    async def get(self, key: str) -> tuple[MessageRecord, list[Event]] | None:
        self._check_open()
        client = self.client
        pointer = await client.get(f"{self.prefix}:k:c:{key}")
        request_ids = [key]
        if pointer is not None:
            request_ids.insert(0, pointer.split(b" ", 1)[1].decode())
        for request_id in request_ids:
            record = await self._record(request_id)
            if record is None:
                continue
            return record, await self._history_of(request_id)
        return None

    async def _record(self, request_id: str) -> MessageRecord | None:
        fields = await self.client.hgetall(f"{self.prefix}:m:{request_id}")
        return _record_from_hash({_as_bytes(k): _as_bytes(v) for k, v in fields.items()})

    async def _history_of(self, request_id: str) -> list[Event]:
        history = await self.client.lrange(f"{self.prefix}:h:{request_id}", 0, -1)
        return [decode_event(item) for item in history]

    async def get_by_message_id(
        self, message_id: str, account: str | None = None
    ) -> tuple[MessageRecord, list[Event]] | None:
        self._check_open()
        for key in message_id_keys(message_id):
            pointers = await self.client.hgetall(f"{self.prefix}:i:{key}")
            found: list[tuple[MessageRecord, str]] = []
            for indexed, request_id in pointers.items():
                record = await self._record(_as_bytes(request_id).decode())
                if record is not None:
                    found.append((record, _as_bytes(indexed).decode()))
            chosen = _pick(found, account)
            if chosen is not None:
                return chosen, await self._history_of(chosen.request_id)
        return None

    async def history(
        self, since: float | None, limit: int = 100, status: str | None = None
    ) -> list[MessageRecord]:
        from coredis.tokens import PureToken  # coredis is imported by now: a client exists

        self._check_open()
        client = self.client
        found: list[MessageRecord] = []
        stale: list[str] = []
        offset = 0
        chunk = max(_HISTORY_CHUNK, limit)
        while len(found) < limit:
            # ZRANGE ... BYSCORE [REV]: with REV the range is written from the top.
            members = await client.zrange(
                self.index_key,
                "+inf" if since is None else repr(since),
                "-inf" if since is None else "+inf",
                sortby=PureToken.BYSCORE,
                rev=since is None or None,
                offset=offset,
                count=chunk,
            )
            if not members:
                break
            request_ids = [_as_bytes(m).decode() for m in members]
            async with client.pipeline(transaction=False) as pipe:
                requests = [pipe.hgetall(f"{self.prefix}:m:{rid}") for rid in request_ids]
            for rid, request in zip(request_ids, requests, strict=True):
                fields = await request
                record = _record_from_hash({_as_bytes(k): _as_bytes(v) for k, v in fields.items()})
                if record is None:
                    stale.append(rid)  # expired: its index entry goes too
                elif status is None or record.status == status:
                    found.append(record)
                    if len(found) == limit:
                        break
            if len(members) < chunk:
                break
            offset += chunk
        if stale:
            await client.zrem(self.index_key, stale)
        return found if since is not None else found[::-1]

    async def purge(self, older_than: float) -> int:
        self._check_open()
        total = 0
        while True:
            count = int(
                await self._script(
                    _PURGE_LUA, [self.index_key], [self.prefix, repr(older_than), _PURGE_CHUNK]
                )
            )
            total += count
            if count < _PURGE_CHUNK:
                break
        if total:
            log.info("purged messages", count=total, older_than=older_than)
        return total
