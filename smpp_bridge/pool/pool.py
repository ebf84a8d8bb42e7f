"""The bind pool: many binds to one or more SMSC accounts, and nothing lost between them.

A ``BindPool`` keeps every configured bind connected (reconnecting with backoff, stopping a bind
whose credentials are refused), routes each message to the healthy bind with the most free
window (all parts of one message through one bind, in order), spends TPS tokens per bind and
per account, slows down when the SMSC pushes back and recovers gradually, retries transient
failures, and turns every message into exactly one *submit outcome*: ``sent`` (every part
accepted, the correlation stored first), ``error`` (a permanent status, with its code) or
``unknown`` (no answer: a timeout or a lost connection, per the account's policy). Receipts are
correlated to their message (parked when they beat the mapping) and inbound messages are
reassembled; both are handed to the application in batches before the SMSC gets its
``deliver_sm_resp``.

Decisions are made without awaiting (the part callbacks run inline in the driver's reader);
awaiting happens in a few long-lived tasks: one supervisor per bind, one settler that stores
correlations and publishes outcomes in batches, one retry scheduler and one housekeeping timer.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal, Protocol

import anyio
import anyio.abc
import msgspec
import structlog

from ..client.delivery import Delivery, parse_delivery
from ..client.driver import ResponseTimeoutError, SessionClosedError
from ..client.esme import BindError, Client, build_submits, open_session
from ..codec.pdus import DataSm, DeliverSm, Pdu, SubmitSm
from ..codec.segment import Concat
from ..codec.text import EncodingProfile, profile_named
from ..codec.tlv import Tag
from ..errors import EncodingError, LocalProtocolError, SmppError
from ..session.connection import WindowFull
from .backoff import Backoff
from .classify import BindFailureClass, StatusClass, classify_bind_failure, classify_status
from .correlation import CorrelationRecord, CorrelationStore, MemoryCorrelationStore
from .dlr import DlrEvent, ReceiptCorrelator
from .inbound import InboundAssembler, InboundMessage, OptOut
from .throttle import AdaptiveThrottle, TokenBucket

log = structlog.get_logger("smpp_bridge.pool")

# What a lost or silent connection raises on our side: retry the bind with normal backoff.
_NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    SessionClosedError,
    ResponseTimeoutError,
    anyio.EndOfStream,
    anyio.BrokenResourceError,
)

UnknownPolicy = Literal["retry", "report"]


class AccountConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One SMSC account: where, who, how many binds, and the limits that apply."""

    name: str
    system_id: str
    password: str = ""
    host: str = "127.0.0.1"
    port: int = 2775
    system_type: str = ""
    bind_type: Literal["tx", "rx", "trx"] = "trx"
    binds: int = 1
    window: int = 10
    tls: bool = False
    profile: str = "spec"
    concat: Concat = "udh8"
    tps: float | None = None  # for the whole account
    bind_tps: float | None = None  # for each bind
    response_timeout: float = 30.0
    enquire_link_interval: float | None = 30.0
    max_retries: int = 5
    unknown_outcome: UnknownPolicy = "retry"
    message_id_mode: str = "auto"

    def __post_init__(self) -> None:
        if self.binds < 1 or self.window < 1:
            raise ValueError(f"account {self.name!r}: binds and window must be at least 1")
        for name in ("tps", "bind_tps"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"account {self.name!r}: {name} must be positive")


class PoolConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    accounts: tuple[AccountConfig, ...]
    unmatched_after: float = 600.0  # a receipt with no mapping this long is published unmatched
    inbound_timeout: float = 120.0  # a concatenated MO missing parts this long is published
    opt_out_keywords: tuple[str, ...] = ("STOP", "BAJA", "UNSUBSCRIBE", "STOPALL", "CANCEL")
    correlation_ttl: float = 7 * 86400.0
    reconnect_base: float = 0.5
    reconnect_cap: float = 30.0
    retry_base: float = 0.2
    retry_cap: float = 10.0


class OutboundMessage(msgspec.Struct, kw_only=True):
    """One message a user asked to send (segmented into parts by the pool)."""

    id: str
    source: str
    destination: str
    text: str
    client_id: str | None = None
    encoding: str = "auto"
    request_dlr: bool = True
    max_parts: int = 255
    account: str | None = None
    template: SubmitSm | None = None


class SubmitOutcome(msgspec.Struct):
    """How one message ended: ``sent``, ``error`` (with ``code``) or ``unknown``."""

    message: OutboundMessage
    status: Literal["sent", "error", "unknown"]
    code: int = 0
    message_ids: tuple[str, ...] = ()
    parts: int = 0
    account: str = ""
    bind: str = ""
    reason: str | None = None
    possible_duplicate: bool = False
    attempts: int = 1


class PoolClosed(SmppError):
    """The pool is draining or closed: the message was not sent."""


class PoolHandler(Protocol):
    """Where the pool delivers what happened, in batches. Each call completes before the SMSC
    is answered (receipts, MOs) or before the pool forgets the message (outcomes)."""

    async def on_outcomes(self, outcomes: list[SubmitOutcome]) -> None: ...

    async def on_dlrs(self, events: list[DlrEvent]) -> None: ...

    async def on_inbound(self, messages: list[InboundMessage]) -> None: ...


@dataclass(eq=False)
class _Job:
    message: OutboundMessage
    account: _Account
    pdus: list[SubmitSm]
    message_ids: list[str | None]
    settled: list[bool]
    attempts: list[int]
    # 0: not handed to a bind yet; else 1 + the bind's throttle generation when it was, so a
    # push-back answer to a part sent before the last slow-down is not counted twice.
    sent_gen: list[int] = field(default_factory=list)
    code: int = 0
    error_reason: str | None = None
    unknown: bool = False
    possible_duplicate: bool = False
    bind: _Bind | None = None
    done: bool = False

    @property
    def pending(self) -> bool:
        return not all(self.settled)

    @property
    def started(self) -> bool:
        """Whether any part has been handed to a bind."""
        return any(self.sent_gen)


@dataclass(eq=False)
class _Bind:
    account: _Account
    index: int
    # Rate and window limits that adapt to the SMSC's push-back. Created up front when the
    # account sets a rate; otherwise at the first push-back, starting from the rate measured.
    throttle: AdaptiveThrottle | None
    bucket: TokenBucket | None
    client: Client | None = None
    state: str = "connecting"  # connecting, up, backoff, stopped
    freed: anyio.Event = field(default_factory=anyio.Event)
    acks: int = 0  # accepted since tick_start
    tick_start: float = 0.0
    measured_rate: float = 0.0  # accepted per second over the last full tick
    tx: bool = True  # may submit (not a receiver bind)
    generation: int = 0  # how many times the throttle cut this bind's limits
    buckets: tuple[TokenBucket, ...] = ()  # the account's and this bind's, spent per submit
    waiters: int = 0  # tasks waiting on ``freed``

    @property
    def name(self) -> str:
        return f"{self.account.config.name}#{self.index}"

    @property
    def can_submit(self) -> bool:
        # A session that just closed is still "up" until its supervisor notices; sending on
        # it raises SessionClosedError, which reroutes the message.
        return self.state == "up" and self.tx

    def free_slots(self) -> int:
        """Window slots usable now: the session's, capped by the adaptive window."""
        assert self.client is not None
        conn = self.client.connection
        if self.throttle is None:
            return conn.window_free
        return min(conn.window_free, self.throttle.window - conn.outstanding)

    def wake(self) -> None:
        """Wake whoever waits for a slot on this bind (a fresh event only when needed)."""
        if self.waiters:
            self.freed.set()
            self.freed = anyio.Event()

    def response_freed_slot(self) -> None:
        """A response freed a slot: wake a waiting sender once a batch of slots is free (or
        nothing is outstanding), so it refills the window in one go, not one task switch per
        response."""
        if self.waiters and self.client is not None:
            conn = self.client.connection
            if conn.outstanding == 0 or self.free_slots() >= min(
                16, max(1, conn.config.window // 4)
            ):
                self.freed.set()
                self.freed = anyio.Event()

    def current_rate(self, now: float) -> float:
        """Accepted per second, from the last full tick or the one in progress."""
        elapsed = now - self.tick_start
        partial = self.acks / elapsed if elapsed > 0.02 else 0.0
        return max(self.measured_rate, partial)

    def apply_throttle(self, now: float) -> None:
        """Make the token bucket follow the throttle's current rate."""
        if self.throttle is None:
            return
        rate = self.throttle.rate
        burst = max(1.0, rate / 20)
        if self.bucket is None:
            self.bucket = TokenBucket(rate, burst, now)
        else:
            self.bucket.set_rate(rate, now, burst=burst)
        self.refresh_buckets()

    def refresh_buckets(self) -> None:
        self.buckets = tuple(b for b in (self.account.bucket, self.bucket) if b is not None)


@dataclass(eq=False)
class _Account:
    config: AccountConfig
    profile: EncodingProfile
    bucket: TokenBucket | None
    binds: list[_Bind] = field(default_factory=list)
    changed: anyio.Event = field(default_factory=anyio.Event)
    waiters: int = 0  # tasks waiting on ``changed``
    reference: int = 0

    def next_reference(self) -> int:
        self.reference = (self.reference + 1) & 0xFFFF
        return self.reference

    def poke(self) -> None:
        """Wake everyone waiting for capacity on this account."""
        if self.waiters:
            self.changed.set()
            self.changed = anyio.Event()


class BindPool:
    """Many binds, one interface. Use ``async with open_pool(config, handler) as pool``."""

    def __init__(
        self,
        config: PoolConfig,
        handler: PoolHandler,
        *,
        store: CorrelationStore | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not config.accounts:
            raise ValueError("a pool needs at least one account")
        names = [a.name for a in config.accounts]
        if len(set(names)) != len(names):
            raise ValueError(f"account names must be unique: {names}")
        self.config = config
        self.handler = handler
        self.store: CorrelationStore = store or MemoryCorrelationStore(ttl=config.correlation_ttl)
        self._rng = rng or random.Random()
        now = anyio.current_time()
        self.accounts: dict[str, _Account] = {}
        for ac in config.accounts:
            account = _Account(
                ac,
                profile_named(ac.profile),
                TokenBucket(ac.tps, max(1.0, ac.tps / 10), now) if ac.tps else None,
            )
            per_bind = ac.bind_tps or (ac.tps / ac.binds if ac.tps else None)
            for i in range(ac.binds):
                bind = _Bind(account, i, None, None, tick_start=now, tx=ac.bind_type != "rx")
                bind.refresh_buckets()
                if per_bind is not None:
                    bind.throttle = _throttle(per_bind, ac.window, now)
                    bind.apply_throttle(now)
                account.binds.append(bind)
            self.accounts[ac.name] = account
        self._reconnect = Backoff(base=config.reconnect_base, cap=config.reconnect_cap)
        self._retry = Backoff(base=config.retry_base, cap=config.retry_cap)
        resolver = self.store.resolver
        for ac in config.accounts:
            resolver.set_mode(ac.name, ac.message_id_mode)
        self._correlator = ReceiptCorrelator(
            unmatched_after=config.unmatched_after, resolver=resolver
        )
        self._assembler = InboundAssembler(timeout=config.inbound_timeout)
        self._opt_out = OptOut(config.opt_out_keywords)
        self._settled: list[_Job] = []
        self._settled_event = anyio.Event()
        self._retries: list[tuple[float, int, _Job, int]] = []
        self._retry_event = anyio.Event()
        self._tiebreak = itertools.count()
        self._jobs: set[_Job] = set()  # accepted by ``send``, outcome not yet published
        self._idle = anyio.Event()
        self._draining = False
        self._tg: anyio.abc.TaskGroup | None = None
        self.stats: dict[str, int] = {
            "sent": 0,
            "error": 0,
            "unknown": 0,
            "retries": 0,
            "resubmitted_unknown": 0,
            "throttled": 0,
            "reconnects": 0,
            "dlrs": 0,
            "inbound": 0,
        }

    # ------------------------------------------------------------------ lifecycle

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for account in self.accounts.values():
                for bind in account.binds:
                    tg.start_soon(self._supervise, bind)
            tg.start_soon(self._settler)
            tg.start_soon(self._retrier)
            tg.start_soon(self._housekeeping)
            task_status.started()

    async def wait_ready(self, binds: int | None = None, timeout: float = 30.0) -> None:
        """Wait until ``binds`` binds (default: all of them) are up."""
        want = binds if binds is not None else sum(len(a.binds) for a in self.accounts.values())
        with anyio.fail_after(timeout):
            while sum(b.state == "up" for a in self.accounts.values() for b in a.binds) < want:
                await anyio.sleep(0.01)

    async def drain(self, timeout: float = 30.0) -> list[OutboundMessage]:
        """Stop taking new messages, wait up to ``timeout`` for what is in flight to settle,
        then unbind everything.

        Callers blocked in ``send`` get ``PoolClosed`` (their message was not sent). Messages
        that had parts out when time ran up get an ``unknown`` outcome; those with no part
        ever handed to a bind are returned, to be given back to whoever queued them.
        """
        self._draining = True
        for account in self.accounts.values():
            account.poke()
            for bind in account.binds:
                bind.wake()
        with anyio.move_on_after(timeout):
            while self._jobs:
                self._idle = anyio.Event()
                await self._idle.wait()
        unsent: list[OutboundMessage] = []
        for job in list(self._jobs):
            if job.done:
                continue
            if not job.started:
                self._jobs.discard(job)
                unsent.append(job.message)
                continue
            job.unknown = True
            job.error_reason = f"pool drained after {timeout:g} s with parts unanswered"
            self._finish(job)
        # Whatever is settled gets published before we go, and so do MOs still missing parts.
        await self._publish_settled()
        partial = self._assembler.flush()
        if partial:
            self.stats["inbound"] += len(partial)
            await self.handler.on_inbound(partial)
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
        return unsent

    # ------------------------------------------------------------------ sending

    async def send(self, message: OutboundMessage) -> None:
        """Submit one message; return once every part has been handed to a bind.

        Blocks while no bind has window or TPS budget (backpressure). The outcome arrives
        later through ``handler.on_outcomes``. An invalid message (text that cannot be
        encoded, too many parts, unknown account) gets an ``error`` outcome at once.
        """
        if self._draining:
            raise PoolClosed("the pool is draining")
        try:
            account = self._account_for(message)
            pdus = build_submits(
                message.source,
                message.destination,
                message.text,
                profile=account.profile,
                reference=account.next_reference(),
                encoding=message.encoding,
                concat=account.config.concat,
                registered_delivery=1 if message.request_dlr else 0,
                max_parts=message.max_parts,
                template=message.template,
            )
        except (EncodingError, LocalProtocolError, ValueError, KeyError) as exc:
            job = _Job(message, next(iter(self.accounts.values())), [], [], [], [])
            job.error_reason = str(exc).strip("'\"")
            self._jobs.add(job)
            self._finish(job)
            return
        n = len(pdus)
        job = _Job(message, account, pdus, [None] * n, [False] * n, [0] * n, [0] * n)
        self._jobs.add(job)
        try:
            await self._send_parts(job, list(range(n)))
        except BaseException:
            if not job.started:
                # Nothing went out: the caller still owns the message.
                self._jobs.discard(job)
                raise
            # Some parts are out: the rest will not follow; the outcome says so.
            job.unknown = True
            job.error_reason = "interrupted before every part was sent"
            for i, sent in enumerate(job.sent_gen):
                if not sent:
                    job.settled[i] = True
            if not job.pending:
                self._finish(job)
            raise

    def _account_for(self, message: OutboundMessage) -> _Account:
        if message.account is not None:
            try:
                return self.accounts[message.account]
            except KeyError:
                raise KeyError(f"unknown account {message.account!r}") from None
        # The account with the most free capacity right now.
        return max(
            self.accounts.values(),
            key=lambda a: sum(b.free_slots() for b in a.binds if b.can_submit and b.client),
        )

    async def _send_parts(self, job: _Job, indexes: list[int]) -> None:
        """Send parts in order on one bind; if it goes away, continue on another."""
        remaining = list(indexes)
        while remaining:
            if self._draining and not job.started:
                raise PoolClosed("the pool is draining")
            bind = await self._acquire(job.account, job.bind)
            job.bind = bind
            while remaining:
                i = remaining[0]
                if not await self._wait_slot(bind, job):
                    job.bind = None
                    break  # the bind went away: route the rest elsewhere
                assert bind.client is not None
                callback = functools.partial(self._on_response, job, i, bind)
                try:
                    bind.client.driver.start_request(job.pdus[i], callback)
                    job.sent_gen[i] = bind.generation + 1
                except WindowFull:
                    continue
                except SessionClosedError:
                    # The session ended under us; its supervisor will notice soon, but no
                    # one may pick this bind meanwhile (that would spin without yielding).
                    bind.state = "backoff"
                    job.bind = None
                    bind.account.poke()
                    break
                remaining.pop(0)

    async def _acquire(self, account: _Account, prefer: _Bind | None) -> _Bind:
        """A bind of ``account`` that can submit, waiting for one if need be."""
        while True:
            if prefer is not None and prefer.can_submit:
                return prefer
            candidates = [b for b in account.binds if b.can_submit]
            if len(candidates) == 1:
                return candidates[0]
            if candidates:
                return max(candidates, key=_Bind.free_slots)
            if all(b.state == "stopped" for b in account.binds):
                raise PoolClosed(f"every bind of account {account.config.name!r} is stopped")
            account.waiters += 1
            try:
                await account.changed.wait()
            finally:
                account.waiters -= 1

    async def _wait_slot(self, bind: _Bind, job: _Job) -> bool:
        """Wait for a window slot and TPS tokens on ``bind``; False if it stops being usable
        (or the pool starts draining before this message got anything out)."""
        while True:
            if not bind.can_submit or (self._draining and not job.started):
                return False
            if bind.free_slots() <= 0:
                bind.waiters += 1
                try:
                    await bind.freed.wait()
                finally:
                    bind.waiters -= 1
                continue
            buckets = bind.buckets
            if not buckets:
                return True
            now = anyio.current_time()
            wait = max(b.wait_time(now) for b in buckets)
            if wait > 0:
                await anyio.sleep(wait)
                continue
            for b in buckets:
                b.try_take(now)
            return True

    def _on_response(  # noqa: PLR0917 - bound with functools.partial, called by the driver
        self,
        job: _Job,
        i: int,
        bind: _Bind,
        request: Pdu,
        response: Pdu | None,
        error: BaseException | None,
    ) -> None:
        """A part's response (or its absence) is in: decide, without awaiting."""
        bind.response_freed_slot()
        bind.account.poke()
        cfg = bind.account.config
        now = anyio.current_time() if response is None or response.command_status else 0.0
        if response is not None:
            congestion = response.tlv(Tag.congestion_state)
            if congestion is not None and isinstance(level := congestion.typed(), int):
                now = anyio.current_time()
                if level >= 90:
                    self._push_back(bind, now, job.sent_gen[i])
                elif bind.throttle is not None and bind.throttle.on_congestion(level, now):
                    bind.apply_throttle(now)
            status = response.command_status
            if status == 0:
                bind.acks += 1
                job.message_ids[i] = str(getattr(response, "message_id", ""))
                job.settled[i] = True
            else:
                kind = classify_status(status)
                if kind is StatusClass.BACKPRESSURE:
                    self.stats["throttled"] += 1
                    self._push_back(bind, now, job.sent_gen[i])
                    self._schedule_retry(job, i, now, unlimited=True)
                elif kind in (StatusClass.TRANSIENT, StatusClass.SESSION) and (
                    job.attempts[i] < cfg.max_retries
                ):
                    self._schedule_retry(job, i, now)
                else:
                    job.code = status
                    job.error_reason = f"command_status 0x{status:08X}"
                    job.settled[i] = True
        else:
            # No answer: the SMSC may or may not have the part. Never silent: either resend
            # and say it may be a duplicate, or report the outcome as unknown.
            timeout = isinstance(error, ResponseTimeoutError)
            if cfg.unknown_outcome == "retry" and job.attempts[i] < cfg.max_retries:
                job.possible_duplicate = True
                self.stats["resubmitted_unknown"] += 1
                self._schedule_retry(job, i, now)
            else:
                job.unknown = True
                job.error_reason = "response timeout" if timeout else f"session lost: {error}"
                job.settled[i] = True
        if not job.pending:
            self._finish(job)

    def _push_back(self, bind: _Bind, now: float, sent_gen: int) -> None:
        """The SMSC said slow down: cut this bind's rate and window (AIMD)."""
        if sent_gen and sent_gen <= bind.generation:
            return  # sent before the last cut, at the old pace: already paid for
        if bind.throttle is None:
            # No rate configured: start from what the bind achieved just before.
            rate = max(bind.current_rate(now), 10.0)
            bind.throttle = _throttle(rate, bind.account.config.window, now)
        if bind.throttle.on_backpressure(now):
            bind.generation += 1
            bind.apply_throttle(now)

    def _schedule_retry(self, job: _Job, i: int, now: float, *, unlimited: bool = False) -> None:
        job.attempts[i] += 1
        self.stats["retries"] += 1
        attempt = job.attempts[i] if not unlimited else min(job.attempts[i], 6)
        ready = now + self._retry.delay(attempt, self._rng)
        heapq.heappush(self._retries, (ready, next(self._tiebreak), job, i))
        self._retry_event.set()

    def _finish(self, job: _Job) -> None:
        if job.done:
            return
        job.done = True
        self._settled.append(job)
        self._settled_event.set()

    # ------------------------------------------------------------------ background tasks

    async def _retrier(self) -> None:
        assert self._tg is not None
        while True:
            if not self._retries:
                self._retry_event = anyio.Event()
                await self._retry_event.wait()
                continue
            ready, _, job, i = self._retries[0]
            delay = ready - anyio.current_time()
            if delay > 0:
                with anyio.move_on_after(delay):
                    self._retry_event = anyio.Event()
                    await self._retry_event.wait()
                continue
            heapq.heappop(self._retries)
            self._tg.start_soon(self._resend, job, i)

    async def _resend(self, job: _Job, i: int) -> None:
        try:
            await self._send_parts(job, [i])
        except PoolClosed as exc:
            job.unknown = job.unknown or job.possible_duplicate
            job.error_reason = f"not resent: {exc}"
            job.code = job.code or 0
            job.settled[i] = True
            if not job.pending:
                self._finish(job)

    async def _settler(self) -> None:
        while True:
            await self._settled_event.wait()
            self._settled_event = anyio.Event()
            await self._publish_settled()

    async def _publish_settled(self) -> None:
        jobs, self._settled = self._settled, []
        if not jobs:
            return
        now = anyio.current_time()
        wall = _wall_clock()
        records: list[CorrelationRecord] = []
        outcomes: list[SubmitOutcome] = []
        for job in jobs:
            accepted = [mid for mid in job.message_ids if mid]
            if job.code:
                status: Literal["sent", "error", "unknown"] = "error"
            elif job.unknown:
                status = "unknown"
            elif job.error_reason is not None and not accepted:
                status = "error"
            else:
                status = "sent"
            self.stats[status] += 1
            for part, mid in enumerate(job.message_ids):
                if mid:
                    records.append(
                        CorrelationRecord(
                            account=job.account.config.name,
                            message_id=mid,
                            request_id=job.message.id,
                            client_id=job.message.client_id,
                            part=part,
                            parts=len(job.pdus),
                            submitted_at=wall,
                        )
                    )
            outcomes.append(
                SubmitOutcome(
                    message=job.message,
                    status=status,
                    code=job.code,
                    message_ids=tuple(mid or "" for mid in job.message_ids),
                    parts=len(job.pdus),
                    account=job.account.config.name,
                    bind=job.bind.name if job.bind else "",
                    reason=job.error_reason,
                    possible_duplicate=job.possible_duplicate,
                    attempts=1 + sum(job.attempts),
                )
            )
        # The mapping is durable before anyone hears the message was sent, so a receipt can
        # always find it.
        if records:
            await self.store.put_many(records)
        await self.handler.on_outcomes(outcomes)
        self._jobs.difference_update(jobs)
        if not self._jobs:
            self._idle.set()
        matched = self._correlator.mappings_stored(records, now)
        if matched:
            await self._publish_dlrs(matched)

    async def _housekeeping(self) -> None:
        while True:
            await anyio.sleep(1.0)
            now = anyio.current_time()
            for account in self.accounts.values():
                for bind in account.binds:
                    elapsed = now - bind.tick_start
                    if elapsed > 0:
                        bind.measured_rate = bind.acks / elapsed
                    bind.acks = 0
                    bind.tick_start = now
                    if bind.throttle is not None and bind.throttle.tick(now):
                        bind.apply_throttle(now)
                account.poke()
            # Parked receipts look again (another daemon, or a newly decided id conversion, may
            # have the mapping now); those never found are published unmatched.
            events: list[DlrEvent] = []
            correlator = self._correlator
            for account_name, ids in correlator.relookups_due(now).items():
                found = await self.store.get_many(account_name, ids)
                events += correlator.receipts_found(account_name, found, now)
            events += correlator.expire(now)
            if events:
                await self._publish_dlrs(events)
            expired = self._assembler.expire(now)
            if expired:
                self.stats["inbound"] += len(expired)
                await self.handler.on_inbound(expired)

    async def _publish_dlrs(self, events: list[DlrEvent]) -> None:
        self.stats["dlrs"] += len(events)
        await self.handler.on_dlrs(events)

    # ------------------------------------------------------------------ binds

    async def _supervise(self, bind: _Bind) -> None:
        """Keep one bind up for as long as the pool runs."""
        account = bind.account
        cfg = account.config
        attempt = 0
        while True:
            bind.state = "connecting"
            try:
                async with open_session(
                    cfg.host,
                    cfg.port,
                    cfg.system_id,
                    cfg.password,
                    cfg.bind_type,
                    tls=cfg.tls,
                    window=cfg.window,
                    system_type=cfg.system_type,
                    response_timeout=cfg.response_timeout,
                    enquire_link_interval=cfg.enquire_link_interval,
                    profile=account.profile,
                    on_request_batch=functools.partial(self._on_requests, bind),
                ) as client:
                    bind.client = client
                    bind.state = "up"
                    attempt = 0
                    log.info("bind up", bind=bind.name, smsc=client.smsc_system_id)
                    account.poke()
                    await client.driver.wait_closed()
                    reason = client.driver.closed_reason
                    log.warning("bind lost", bind=bind.name, reason=reason)
                failure = BindFailureClass.NETWORK
            except BindError as exc:
                failure = classify_bind_failure(exc.command_status, exc)
                reason = str(exc)
            except (OSError, TimeoutError, SmppError, anyio.BrokenResourceError) as exc:
                failure = classify_bind_failure(None, exc, network_errors=_NETWORK_ERRORS)
                reason = f"{type(exc).__name__}: {exc}"
            finally:
                bind.client = None
                if bind.state == "up":
                    bind.state = "backoff"
                bind.freed.set()
                account.poke()
            if failure is BindFailureClass.AUTH:
                bind.state = "stopped"
                log.error(
                    "bind refused: check system_id and password; not retrying",
                    bind=bind.name,
                    reason=reason,
                )
                account.poke()
                return
            bind.state = "backoff"
            self.stats["reconnects"] += 1
            delay = self._reconnect.delay(attempt, self._rng, long=failure is BindFailureClass.BUSY)
            attempt += 1
            log.info("reconnecting", bind=bind.name, reason=reason, delay=round(delay, 3))
            await anyio.sleep(delay)

    async def _on_requests(self, bind: _Bind, pdus: list[Pdu]) -> list[Pdu | int | None]:
        """Receipts and inbound messages of one receive: publish, then let the SMSC know."""
        account = bind.account
        receipts: list[Delivery] = []
        inbound: list[InboundMessage] = []
        now = anyio.current_time()
        for pdu in pdus:
            if not isinstance(pdu, DeliverSm | DataSm):
                continue
            delivery = parse_delivery(pdu, account.profile)
            if delivery.receipt is not None:
                receipts.append(delivery)
            else:
                inbound += self._assembler.add(
                    delivery, account.config.name, now, profile=account.profile
                )
        if receipts:
            ids = [d.receipt.message_id for d in receipts if d.receipt is not None]
            found = await self.store.get_many(account.config.name, ids)
            events = self._correlator.receipts_arrived(
                account.config.name,
                [d.receipt for d in receipts if d.receipt],
                found,
                now,
                bind=bind.name,
            )
            if events:
                await self._publish_dlrs(events)
        if inbound:
            self.stats["inbound"] += len(inbound)
            await self.handler.on_inbound(inbound)
        return [None] * len(pdus)

    def inbound_status(self, message: InboundMessage) -> str:
        """The event status of an inbound message: ``stop`` for an opt-out, else ``inbound``."""
        return self._opt_out.status_of(message)


def _throttle(max_rate: float, window: int, now: float) -> AdaptiveThrottle:
    return AdaptiveThrottle(
        max_rate=max_rate,
        max_window=window,
        now=now,
        min_rate=min(1.0, max_rate),
        cooldown=0.2,
        recovery_interval=0.5,
    )


def _wall_clock() -> float:
    """Seconds since the epoch, for the records users read (timers use the anyio clock)."""
    return time.time()


@asynccontextmanager
async def open_pool(
    config: PoolConfig,
    handler: PoolHandler,
    *,
    store: CorrelationStore | None = None,
    rng: random.Random | None = None,
    drain_timeout: float = 30.0,
) -> AsyncIterator[BindPool]:
    """Run a pool for the duration of the block; on exit, drain and unbind."""
    pool = BindPool(config, handler, store=store, rng=rng)
    # An error of the caller's block is re-raised as it is, not wrapped in an exception group.
    saved: BaseException | None = None
    async with anyio.create_task_group() as tg:
        await tg.start(pool.run)
        try:
            yield pool
        except BaseException as exc:
            saved = exc
        finally:
            with anyio.CancelScope(shield=True):
                await pool.drain(drain_timeout)
            tg.cancel_scope.cancel()
    if saved is not None:
        raise saved


__all__ = [
    "AccountConfig",
    "BindPool",
    "OutboundMessage",
    "PoolClosed",
    "PoolConfig",
    "PoolHandler",
    "SubmitOutcome",
    "open_pool",
]
