"""Work queues on Redis Streams: several daemons on several machines share one queue.

A queue is the stream ``{prefix}:q:{name}`` read through the consumer group ``{prefix}``
(created with ``MKSTREAM`` from id 0 when the queue is opened); each entry holds the payload in
field ``d`` and the publish time (epoch seconds) in ``t``. A lease is the group's
pending-entries list: delivered and not acknowledged, with Redis's idle time and delivery
counter. Dead letters are appended to the stream ``{prefix}:dlq:{name}`` (fields ``id``,
``data``, ``reason``, ``attempts``, ``t``).

``consume`` takes, in this order: this consumer's own pending entries left by an earlier
process under the same name (``XPENDING`` + ``XCLAIM``, on the first calls of a queue object),
entries whose lease ran out (``XAUTOCLAIM`` with min-idle = ``visibility_timeout``, scanned at
most every ``claim_interval`` seconds and right after a local ``release``: another process's
``release`` is seen within ``claim_interval``), then new entries (``XREADGROUP >``, blocking
until the next scan is due). ``attempts`` is Redis's delivery counter. An entry without a
``d`` field, or delivered ``max_deliveries`` times already, is dead-lettered, never returned.

Batch writes are small Lua scripts, one command each and atomic: a coredis pipeline costs
far more per command than Redis does. ``publish`` is ``XADD`` per payload (with ``MAXLEN ~
retain`` on a ``keep_acked`` queue); ``ack`` is ``XACK`` + ``XDEL`` (``XACK`` only on a
``keep_acked`` queue). ``extend`` and ``release`` act only on entries this consumer still
holds (the script checks the owner, then ``XCLAIM ... IDLE JUSTID``: extend resets the idle
time, release sets it so that the lease runs out after ``delay``; Redis keeps no later
instant, so a ``delay`` longer than ``visibility_timeout`` is shortened to it).
``dead_letter`` copies to the dead-letter stream and removes in one script. The scripts name
two keys at most (queue and dead letters), which Redis Cluster would need in one hash slot:
this backend is for a single Redis (or a primary with replicas), not a cluster.

Needs Redis 7.0 or newer (``XAUTOCLAIM`` reporting deleted entries, ``XCLAIM`` dropping them).
Consumer names must be unique among running consumers: two processes under one name would
take each other's leases as their own leftovers. The scripts, and the parsing of Redis's
replies, are in ``queues.redis_scripts``.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager, suppress
from typing import TYPE_CHECKING, Any, Final, Unpack, cast

import anyio
import structlog

from ...errors import QueueBackendError
from ..redis_client import redis_client
from .base import (
    DeadLetter,
    Entry,
    Leased,
    QueueBase,
    QueueOptions,
    check_count,
    check_dead_items,
    check_payloads,
    check_seconds,
    over_delivered,
)
from .redis_scripts import (
    ACK_LUA,
    AFTER_ID,
    CLAIM_LUA,
    DEAD_LETTER_LUA,
    FORGET_LUA,
    PUBLISH_LUA,
    RELEASE_LUA,
    check_entry_ids,
    field,
    group_info,
    info_value,
    pairs,
    published,
    text,
)

if TYPE_CHECKING:
    import coredis
    from coredis.commands.script import Script
    from coredis.response.types import StreamEntry

log = structlog.get_logger("smpp_bridge.bridge.queues")

MIN_REDIS: Final = (7, 0)
# One blocking command waits at most this long; longer waits loop. Below the client's read
# timeout (``stream_timeout``), so a block never looks like a dead connection.
_MAX_BLOCK: Final = 20.0
_SCRIPT_CHUNK: Final = 500  # entries per script call: keeps Lua's argument lists small


class RedisQueue(QueueBase):
    """A ``WorkQueue`` on a Redis stream (see the module docstring).

    ``client`` is a ``coredis.Redis`` with ``decode_responses=False`` that the caller has
    entered and closes; ``await queue.open()`` (or ``async with queue``) checks the server and
    creates the consumer group. ``RedisQueue.connect(url, name, ...)`` makes its own client and
    closes it with the queue; ``open_queue("redis", ...)`` uses it. Several queues may share
    one client. ``claim_interval`` (default a quarter of ``visibility_timeout``, at most 1 s) is
    how often ``consume`` looks for entries whose lease ran out.

    Raises ``ValueError`` or ``TypeError`` for a bad setting or argument (an entry id that is
    no stream id); every call raises ``QueueClosedError`` after ``aclose``, and
    ``QueueBackendError`` when Redis fails, cannot be reached or is older than 7.0.
    """

    backend = "redis"

    def __init__(
        self,
        client: coredis.Redis[bytes],
        name: str,
        *,
        claim_interval: float | None = None,
        **options: Unpack[QueueOptions],
    ) -> None:
        super().__init__(name, **options)
        if claim_interval is None:
            claim_interval = max(0.01, min(1.0, self.visibility_timeout / 4))
        if not claim_interval > 0:
            raise ValueError(f"claim_interval must be > 0 seconds; got {claim_interval!r}")
        self.client = client
        self.stream = f"{self.prefix}:q:{self.name}"
        self.dlq = f"{self.prefix}:dlq:{self.name}"
        self.group = self.prefix
        self.claim_interval = float(claim_interval)
        self._vt_ms = max(1, round(self.visibility_timeout * 1000))
        self._opened = False
        self._owned: AsyncExitStack | None = None
        self._consume_lock = anyio.Lock()
        self._consumed = False
        self._recovered = False
        self._recover_from = "-"
        self._claim_cursor = "0-0"
        self._next_claim = float("-inf")  # anyio clock
        self._publish_script: Script[bytes] = client.register_script(PUBLISH_LUA)
        self._ack_script: Script[bytes] = client.register_script(ACK_LUA)
        self._claim_script: Script[bytes] = client.register_script(CLAIM_LUA)
        self._release_script: Script[bytes] = client.register_script(RELEASE_LUA)
        self._dead_script: Script[bytes] = client.register_script(DEAD_LETTER_LUA)
        self._forget_script: Script[bytes] = client.register_script(FORGET_LUA)

    @classmethod
    async def connect(
        cls,
        url: str,
        name: str,
        *,
        connect_timeout: float = 5.0,
        stream_timeout: float = 30.0,
        claim_interval: float | None = None,
        **options: Unpack[QueueOptions],
    ) -> RedisQueue:
        """An open queue over a new client for ``url``; ``aclose`` closes the client too.

        The client's lifetime is a task group entered here and left in ``aclose``: close the
        queue in the task that opened it, after anything opened later (``async with``
        does both).
        """
        client = redis_client(url, connect_timeout=connect_timeout, stream_timeout=stream_timeout)
        queue = cls(
            client, name, claim_interval=claim_interval, **options
        )  # bad settings fail here, before any I/O
        stack = AsyncExitStack()
        try:
            await stack.enter_async_context(client)
            queue._owned = stack
            await queue.open()
        except BaseException:
            await stack.aclose()
            raise
        return queue

    # -- plumbing

    @contextmanager
    def _errors(self, op: str) -> Iterator[None]:
        from coredis.exceptions import RedisError

        try:
            yield
        except (RedisError, TimeoutError, OSError) as exc:
            raise QueueBackendError(
                f"redis queue {self.name!r} ({self.stream}): {op} failed:"
                f" {type(exc).__name__}: {exc}"
            ) from exc

    async def _create_group(self) -> None:
        from coredis.exceptions import StreamDuplicateConsumerGroupError

        # BUSYGROUP: someone (maybe we) created it already.
        with suppress(StreamDuplicateConsumerGroupError):
            await self.client.xgroup_create(self.stream, self.group, "0", mkstream=True)

    @asynccontextmanager
    async def _group_guard(self) -> AsyncIterator[None]:
        """Run the body; if the stream or group vanished (deleted by hand), recreate it and
        say so. The body is not repeated: the caller sees an empty result this time."""
        from coredis.exceptions import (
            ResponseError,
            StreamConsumerGroupError,
            StreamDuplicateConsumerGroupError,
        )

        try:
            yield
        except (StreamConsumerGroupError, ResponseError) as exc:
            # NOGROUP comes as StreamConsumerGroupError, some commands say "no such key".
            missing = isinstance(exc, StreamConsumerGroupError) or "no such key" in str(exc)
            if isinstance(exc, StreamDuplicateConsumerGroupError) or not missing:
                raise
            log.error("queue_group_missing", queue=self.name, stream=self.stream)
            await self._create_group()

    def _decode(
        self, entries: Iterable[tuple[str, Mapping[Any, Any] | None, int]]
    ) -> tuple[list[Leased], list[tuple[str, str, int | None]]]:
        """Split ``(id, fields, attempts)`` into leases and dead letters."""
        leased: list[Leased] = []
        # The delivery that found these counted; the dead letter reports the earlier ones.
        dead: list[tuple[str, str, int | None]] = []
        limit = self.max_deliveries
        for entry_id, fields, count in entries:
            data = field(fields, "d")
            if data is None:
                names = sorted(text(k) for k in fields or ())
                reason = f"corrupted entry: no 'd' (payload) field; fields: {names}"
                dead.append((entry_id, reason, count - 1))
            elif count > limit:
                dead.append((entry_id, over_delivered(count - 1), count - 1))
            else:
                leased.append(Leased(entry_id, data, count, published(fields, entry_id)))
        return leased, dead

    async def _bury(self, items: Sequence[tuple[str, str, int | None]]) -> list[str]:
        """Run the dead-letter script over ``(id, reason, attempts)`` (None: the entry's own
        delivery counter); the ids moved."""
        moved: list[str] = []
        keep = "1" if self.keep_acked else "0"
        now = repr(time.time())
        for start in range(0, len(items), _SCRIPT_CHUNK):
            args: list[str] = [self.group, now, keep]
            for entry_id, reason, attempts in items[start : start + _SCRIPT_CHUNK]:
                args += (entry_id, reason, "" if attempts is None else str(attempts))
            result: Any = await self._dead_script([self.stream, self.dlq], args)
            moved.extend(text(v) for v in cast(list[bytes], result or []))
        return moved

    async def _dead_on_consume(self, dead: list[tuple[str, str, int | None]]) -> None:
        if not dead:
            return
        moved = await self._bury(dead)
        log.warning(
            "queue_dead_lettered",
            queue=self.name,
            entries=len(moved),
            first=dead[0][0],
            reason=dead[0][1],
        )

    async def _warn_if_name_active(self) -> None:
        """Before taking this name's pending entries as leftovers: were they touched lately?
        Then another live process may be using the same name."""
        for info in await self.client.xinfo_consumers(self.stream, self.group):
            if text(cast(Any, info_value(info, "name"))) != self.consumer:
                continue
            idle = int(cast(Any, info_value(info, "idle")) or 0)
            pending = int(cast(Any, info_value(info, "pending")) or 0)
            if pending and idle < self._vt_ms:
                log.warning(
                    "queue_consumer_name_active",
                    queue=self.name,
                    consumer=self.consumer,
                    pending=pending,
                    idle_ms=idle,
                    hint="if another process runs under this name, entries go to both",
                )

    async def _recover(self, count: int) -> list[Leased]:
        """This consumer's entries left pending by an earlier process under the same name."""
        if self._recover_from == "-":
            await self._warn_if_name_active()
        pending = cast(
            tuple[Any, ...],
            await self.client.xpending(
                self.stream,
                self.group,
                start=self._recover_from,
                end="+",
                count=count,
                consumer=self.consumer,
            ),
        )
        if len(pending) < count:
            self._recovered = True
        if not pending:
            return []
        ids = [text(p.identifier) for p in pending]
        self._recover_from = "(" + ids[-1]
        # XCLAIM counts the delivery and leaves out (and un-pends) entries deleted meanwhile.
        entries = cast(
            tuple[Any, ...],
            await self.client.xclaim(self.stream, self.group, self.consumer, 0, ids),
        )
        attempts = {text(p.identifier): int(p.delivered) + 1 for p in pending}
        if len(entries) < len(ids):
            log.warning(
                "queue_pending_entries_gone", queue=self.name, entries=len(ids) - len(entries)
            )
        leased, dead = self._decode(
            (i, e.field_values, attempts.get(i, 1)) for e in entries for i in (text(e.identifier),)
        )
        await self._dead_on_consume(dead)
        if leased:
            log.info("queue_leases_recovered", queue=self.name, entries=len(leased))
        return leased

    async def _reclaim(self, count: int) -> list[Leased]:
        """Entries whose lease ran out (a consumer died, or released them)."""
        reply: Any = await self._claim_script(
            [self.stream],
            [self.group, self.consumer, str(self._vt_ms), self._claim_cursor, str(count)],
        )
        cursor, entries, deleted, counts = reply
        self._claim_cursor = text(cursor)
        if self._claim_cursor == "0-0":
            self._next_claim = anyio.current_time() + self.claim_interval
        if deleted:
            log.warning(
                "queue_pending_entries_gone",
                queue=self.name,
                entries=len(deleted),
                first=text(deleted[0]),
            )
        if not entries:
            return []
        leased, dead = self._decode(
            (text(entry_id), pairs(fields), int(n))
            for (entry_id, fields), n in zip(entries, counts, strict=True)
        )
        await self._dead_on_consume(dead)
        return leased

    async def _read_new(self, count: int, block: float) -> list[Leased]:
        block_ms = int(min(block, _MAX_BLOCK) * 1000)
        reply = await self.client.xreadgroup(
            self.group,
            self.consumer,
            {self.stream: ">"},
            count=count,
            block=block_ms if block_ms >= 1 else None,
        )
        if not reply:
            return []
        entries = next(iter(reply.values()))
        leased, dead = self._decode((text(e.identifier), e.field_values, 1) for e in entries)
        await self._dead_on_consume(dead)
        return leased

    async def _consume(self, max_count: int, deadline: float) -> list[Leased]:
        from coredis.exceptions import RedisError

        out: list[Leased] = []
        while True:
            try:
                async with self._group_guard():
                    if not self._recovered:
                        out += await self._recover(max_count)
                    if len(out) < max_count and anyio.current_time() >= self._next_claim:
                        out += await self._reclaim(max_count - len(out))
                    if len(out) < max_count:
                        now = anyio.current_time()
                        # Block only while nothing is in hand, and wake for the next scan.
                        block = 0.0 if out else min(deadline, self._next_claim) - now
                        out += await self._read_new(max_count - len(out), block)
            except (RedisError, TimeoutError, OSError) as exc:
                if not out:
                    raise
                # These are leased to us already: hand them over rather than let their
                # leases run out unused; the next call meets the error again if it lasts.
                log.warning(
                    "queue_consume_partial", queue=self.name, entries=len(out), error=str(exc)
                )
                return out
            if out or anyio.current_time() >= deadline:
                return out

    # -- the WorkQueue interface

    async def open(self) -> None:
        self._check_open()
        if self._opened:
            return
        with self._errors("open"):
            info = await self.client.info("server")
            version = str(text(cast(Any, info.get("redis_version", "0"))))
            numbers = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
            if numbers < MIN_REDIS:
                raise QueueBackendError(
                    f"redis queue {self.name!r}: Redis {version} is too old;"
                    f" {'.'.join(map(str, MIN_REDIS))} or newer is needed"
                )
            await self._create_group()
        self._opened = True

    async def publish(self, payloads: Sequence[bytes]) -> list[str]:
        self._check_open()
        data = check_payloads(payloads)
        if not data:
            return []
        now = repr(time.time()).encode()
        maxlen = str(self.retain).encode() if self.keep_acked else b""
        with self._errors("publish"):
            ids: Any = await self._publish_script([self.stream], [now, maxlen, *data])
        return [text(entry_id) for entry_id in ids]

    async def consume(self, max_count: int, *, wait: float = 1.0) -> list[Leased]:
        check_count("max_count", max_count)
        wait = check_seconds("wait", wait)
        self._check_open()
        async with self._consume_lock:
            self._check_open()
            self._consumed = True
            with self._errors("consume"):
                return await self._consume(max_count, anyio.current_time() + wait)

    async def ack(self, ids: Sequence[str]) -> None:
        self._check_open()
        entry_ids = check_entry_ids(ids)
        if not entry_ids:
            return
        keep = "1" if self.keep_acked else "0"
        with self._errors("ack"):
            await self._ack_script([self.stream], [self.group, keep, *entry_ids])

    async def _reset_leases(self, ids: list[str], idle_ms: int) -> int:
        held = 0
        for start in range(0, len(ids), _SCRIPT_CHUNK):
            chunk = ids[start : start + _SCRIPT_CHUNK]
            result: Any = await self._release_script(
                [self.stream], [self.group, self.consumer, str(idle_ms), *chunk]
            )
            held += int(result)
        return held

    async def release(self, ids: Sequence[str], *, delay: float = 0.0) -> None:
        self._check_open()
        delay = check_seconds("delay", delay)
        entry_ids = check_entry_ids(ids)
        if not entry_ids:
            return
        idle_ms = max(0, self._vt_ms - round(delay * 1000))
        with self._errors("release"):
            held = await self._reset_leases(entry_ids, idle_ms)
        # Scan for them from the start once they are due.
        self._claim_cursor = "0-0"
        due = anyio.current_time() + (self._vt_ms - idle_ms) / 1000.0
        self._next_claim = min(self._next_claim, due)
        if held < len(entry_ids):
            log.warning("queue_release_not_held", queue=self.name, entries=len(entry_ids) - held)

    async def extend(self, ids: Sequence[str]) -> None:
        self._check_open()
        entry_ids = check_entry_ids(ids)
        if not entry_ids:
            return
        with self._errors("extend"):
            held = await self._reset_leases(entry_ids, 0)
        if held < len(entry_ids):
            # Acked meanwhile, dead-lettered, or claimed by another consumer after ours ran out.
            log.warning("queue_lease_lost", queue=self.name, entries=len(entry_ids) - held)

    async def dead_letter(self, items: Sequence[tuple[str, str]]) -> None:
        self._check_open()
        reasons = check_dead_items(items)
        check_entry_ids(list(reasons))
        if not reasons:
            return
        with self._errors("dead_letter"):
            moved = await self._bury([(i, reason, None) for i, reason in reasons.items()])
        log.info("queue_dead_lettered", queue=self.name, entries=len(moved))
        if len(moved) < len(reasons):
            done = set(moved)
            missing = [i for i in reasons if i not in done]
            log.warning(
                "queue_dead_letter_missing", queue=self.name, entries=len(missing), first=missing[0]
            )

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        check_count("limit", limit)
        self._check_open()
        with self._errors("dead_letters"):
            entries = await self.client.xrange(self.dlq, "-", "+", count=limit)
        out: list[DeadLetter] = []
        for entry in entries:
            fields = entry.field_values
            try:
                attempts = int(field(fields, "attempts") or b"0")
            except ValueError:
                attempts = 0
            out.append(
                DeadLetter(
                    (field(fields, "id") or b"").decode("utf-8", "replace"),
                    field(fields, "data") or b"",
                    attempts,
                    (field(fields, "reason") or b"").decode("utf-8", "replace"),
                    published(fields, text(entry.identifier)),
                )
            )
        return out

    async def _group_state(self) -> tuple[int, Mapping[Any, Any] | None]:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.xlen(self.stream)
            pipe.xinfo_groups(self.stream)
        length, groups = cast(tuple[int, Any], pipe.results)
        return int(length), group_info(groups, self.group)

    async def depth(self) -> int:
        self._check_open()
        with self._errors("depth"):
            if not self.keep_acked:
                return int(await self.client.xlen(self.stream))
            length, info = await self._group_state()
        if info is None:
            return length
        lag = info_value(info, "lag")
        pending = int(info_value(info, "pending") or 0)
        if lag is None:
            # Redis cannot tell how many are undelivered: count everything kept.
            return length
        return min(length, int(lag) + pending)

    async def oldest_age(self) -> float:
        self._check_open()
        with self._errors("oldest_age"):
            if not self.keep_acked:
                first = await self.client.xrange(self.stream, "-", "+", count=1)
            else:
                first = await self._oldest_unacked()
        if not first:
            return 0.0
        entry = first[0]
        return max(0.0, time.time() - published(entry.field_values, text(entry.identifier)))

    async def _oldest_unacked(self) -> tuple[StreamEntry, ...]:
        summary = await self.client.xpending(self.stream, self.group)
        oldest = getattr(summary, "minimum_identifier", None)
        if oldest is not None:
            found = await self.client.xrange(self.stream, oldest, oldest, count=1)
            if found:
                return found
        _, info = await self._group_state()
        last = text(info_value(info, "last-delivered-id") or b"0-0") if info else "0-0"
        return await self.client.xrange(self.stream, "(" + last, "+", count=1)

    async def tail(self, after: str | None, limit: int = 100, *, wait: float = 0.0) -> list[Entry]:
        check_count("limit", limit)
        wait = check_seconds("wait", wait)
        self._check_open()
        if after is not None and (not isinstance(after, str) or not AFTER_ID.fullmatch(after)):
            raise ValueError(f"invalid Redis stream id {after!r} for tail: expected 'ms-seq'")
        start = after or "0-0"
        deadline = anyio.current_time() + wait
        with self._errors("tail"):
            while True:
                remaining = deadline - anyio.current_time()
                block_ms = int(min(remaining, _MAX_BLOCK) * 1000)
                reply = await self.client.xread(
                    {self.stream: start}, count=limit, block=block_ms if block_ms >= 1 else None
                )
                if reply or block_ms < 1 or anyio.current_time() >= deadline:
                    break
        if not reply:
            return []
        return [
            Entry(text(entry.identifier), field(entry.field_values, "d") or b"")
            for entry in next(iter(reply.values()))
        ]

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._consumed and self._opened:
                # Best effort, bounded, and done even when the closer is being cancelled.
                with anyio.CancelScope(shield=True), anyio.move_on_after(2.0):
                    try:
                        await self._forget_script([self.stream], [self.group, self.consumer])
                    except Exception as exc:
                        log.debug("queue_forget_consumer_failed", queue=self.name, error=str(exc))
        finally:
            if self._owned is not None:
                owned, self._owned = self._owned, None
                await owned.aclose()


__all__ = ["RedisQueue"]
