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
``deliver_sm_resp``. A receipt parked is saved in the store first (``ParkingStore``), so a
restart does not lose what the SMSC was told we have; a part's mapping is deleted once a
receipt settles it, so the store holds what still waits for receipts.

Decisions are made without awaiting (the part callbacks run inline in the driver's reader);
awaiting happens in a few long-lived tasks: one supervisor per bind, one settler that stores
correlations and publishes outcomes in batches, one retry scheduler and one housekeeping timer.

The hot path costs little per message: a one-part message that finds a free slot goes out
inside ``send`` (or ``send_many``, one clock reading for a run of them) with no task switch;
the job is the driver's callback (no closure per part); texts sent again and again are
segmented once (``TextSplitter``); a batch of receipts first lets the settled messages of the
same receive store their mappings, so receipts that came with their responses are matched at
once rather than parked.
"""

from __future__ import annotations

import heapq
import itertools
import os
import random
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Final, Protocol, TypeVar

import anyio
import anyio.abc
import structlog

from ..codec.constants import CommandId
from ..codec.pdus import Pdu, SubmitSm, SubmitSmResp
from ..codec.text import profile_named
from ..codec.tlv import Tag, Tlv
from ..driver.tasks import BodyError, Signal
from ..errors import (
    EncodingError,
    FieldError,
    LocalProtocolError,
    PoolClosed,
    ResponseTimeoutError,
    SessionClosedError,
    WindowFull,
)
from .backoff import Backoff
from .config import AccountConfig, OutboundMessage, PoolConfig, UnknownPolicy
from .correlation import CorrelationRecord, CorrelationStore, MemoryCorrelationStore, ParkingStore
from .dlr import DlrEvent, ReceiptCorrelator
from .inbound import InboundAssembler, InboundMessage, OptOut
from .job import Job, Outcome, SubmitOutcome, decide, final_status
from .receipts import ReceiptPath, wall_clock
from .routing import Account, Bind, BindSnapshot, BindState, PoolStatus, make_throttle
from .supervision import CLOSE_TIMEOUT, BindSupervision
from .throttle import TokenBucket

log = structlog.get_logger("smpp_bridge.pool")

T = TypeVar("T")

# Plain ints, compared per response.
_CONGESTION_STATE: Final = int(Tag.congestion_state)
_GENERIC_NACK: Final = int(CommandId.generic_nack)


# Seconds past a drain's timeout and close a failing store is tried for before it is given up.
_STORE_GRACE: Final = 1.0


class _Job(Job):
    """A ``Job`` that is also the driver's callback for its parts' responses (no closure per
    part): each answer goes to its pool's ``_on_response``."""

    __slots__ = ("pool",)

    def __init__(
        self, pool: BindPool, message: OutboundMessage, account: Account, pdus: list[SubmitSm]
    ) -> None:
        super().__init__(message, account, pdus)
        self.pool = pool

    def __call__(self, request: Pdu, response: Pdu | None, error: BaseException | None) -> None:
        pdus = self.pdus
        i = 0 if len(pdus) == 1 else next(k for k, pdu in enumerate(pdus) if pdu is request)
        bind = self.sent_on[i]
        assert bind is not None
        self.pool._on_response(self, i, bind, response, error)


class PoolHandler(Protocol):
    """Where the pool delivers what happened, in batches. Each call completes before the SMSC
    is answered (receipts, MOs) or before the pool forgets the message (outcomes)."""

    async def on_outcomes(self, outcomes: list[SubmitOutcome]) -> None: ...

    async def on_dlrs(self, events: list[DlrEvent]) -> None: ...

    async def on_inbound(self, messages: list[InboundMessage]) -> None: ...


class BindPool(BindSupervision, ReceiptPath):
    """Many binds, one interface. Use ``async with open_pool(config, handler) as pool``."""

    def __init__(
        self,
        config: PoolConfig,
        handler: PoolHandler,
        *,
        store: CorrelationStore | None = None,
        rng: random.Random | None = None,
        instance: str = "default",
        forget_settled: bool = True,
        recent_settled: int = 10_000,
    ) -> None:
        """``instance`` names this pool's parked receipts in a store several daemons share
        (each its own name; the same name after a restart). ``forget_settled``: delete a
        part's mapping from the store once a receipt settled it (delivered, failed, expired,
        deleted, rejected; not "accepted", after which some SMSCs send the outcome), so the
        store holds messages still waiting for receipts (and, for ``settled_ttl``, a small
        tombstone of each settled part), not days of finished ones. A receipt that comes
        again for a settled part (found settled in the last ``recent_settled`` parts, or by
        its tombstone; without ``forget_settled`` the mapping itself is marked) is not
        published again: ``duplicate_receipts`` counts them."""
        if not config.accounts:
            raise ValueError("a pool needs at least one account")
        names = [a.name for a in config.accounts]
        if len(set(names)) != len(names):
            raise ValueError(f"account names must be unique: {names}")
        self.config = config
        self.handler = handler
        self.instance = instance
        self.forget_settled = forget_settled
        # (Not ``store or ...``: an empty memory store is falsy.)
        self.store: CorrelationStore = (
            store if store is not None else MemoryCorrelationStore(ttl=config.correlation_ttl)
        )
        # A store that keeps parked receipts (every backend here) keeps ours, so that a
        # receipt the SMSC was told we have survives a restart.
        self._parking = self.store if isinstance(self.store, ParkingStore) else None
        self._rng = rng or random.Random()
        now = anyio.current_time()
        self.accounts: dict[str, Account] = {}
        for ac in config.accounts:
            account = Account(
                ac,
                profile_named(ac.profile),
                TokenBucket(ac.tps, max(1.0, ac.tps / 10), now) if ac.tps else None,
            )
            per_bind = ac.bind_tps or (ac.tps / ac.binds if ac.tps else None)
            for i in range(ac.binds):
                bind = Bind(account, i, tick_start=now, tx=ac.bind_type != "rx")
                bind.refresh_buckets()
                if per_bind is not None:
                    bind.throttle = make_throttle(per_bind, ac.window, now)
                    bind.apply_throttle(now)
                account.binds.append(bind)
            self.accounts[ac.name] = account
        # With one account, a message naming none needs no choosing.
        self._only = next(iter(self.accounts.values())) if len(self.accounts) == 1 else None
        self._reconnect = Backoff(base=config.reconnect_base, cap=config.reconnect_cap)
        self._retry = Backoff(base=config.retry_base, cap=config.retry_cap)
        resolver = self.store.resolver
        for ac in config.accounts:
            resolver.set_mode(ac.name, ac.message_id_mode)
        self._correlator = ReceiptCorrelator(
            unmatched_after=config.unmatched_after,
            resolver=resolver,
            recent_settled=recent_settled,
            journal=self._parking is not None,
            # Parked receipts of every run of this instance live side by side in the store.
            key_prefix=f"{os.urandom(6).hex()}:",
        )
        self._memory_store = self.store if isinstance(self.store, MemoryCorrelationStore) else None
        self._forget: list[CorrelationRecord] = []  # tombstones of settled parts, to store
        self._parking_lock = anyio.Lock()
        self._assembler = InboundAssembler(timeout=config.inbound_timeout)
        self._opt_out = OptOut(config.opt_out_keywords)
        self._settled: list[_Job] = []
        self._settled_signal = Signal()
        # One publisher of settled messages at a time: outcomes reach the handler in order and
        # never from two tasks at once.
        self._settle_lock = anyio.Lock()
        self._retries: list[tuple[float, int, _Job, int]] = []
        # Messages a drain gives back (``_none_accepted``) found by a resend that had no bind.
        self._given_back: list[OutboundMessage] = []
        self._retry_signal = Signal()
        self._tiebreak = itertools.count()
        self._jobs: set[_Job] = set()  # accepted by ``send``, outcome not yet published
        self._idle = Signal()  # fired when the last job in flight is done with
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
            "parked": 0,
            "duplicate_receipts": 0,
            "unmatched_receipts": 0,
            "flagged_receipts": 0,  # published again flagged possible_duplicate (a crash)
            "store_failures": 0,  # correlation/parking store calls that failed and were retried
        }
        self.last_store_error: str | None = None
        # Set by a drain: past it, a store call that keeps failing is given up on (what it
        # was for is left to the caller's redelivery) rather than holding the exit.
        self._give_up_at: float | None = None
        self._drained = anyio.Event()  # the drain has closed every bind
        self._supervisors = 0  # supervisor tasks still running
        self._supervisors_done = anyio.Event()

    # ------------------------------------------------------------------ lifecycle

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        if self._parking is not None:
            # Receipts parked by an earlier run of this instance, answered but not published.
            saved = await self._stored(
                "parked receipts load", self._parking.load_parked, self.instance
            )
            if saved:
                self._correlator.restore(saved, anyio.current_time(), wall_clock())
                log.info("parked receipts restored", count=len(saved))
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
            while (
                sum(b.state is BindState.UP for a in self.accounts.values() for b in a.binds) < want
            ):
                await anyio.sleep(0.01)

    @property
    def duplicate_receipts(self) -> int:
        """Receipts recognised as repeats of one already published for a settled part (sent
        again after a dropped connection, or twice by the SMSC), and not published again."""
        return self._correlator.duplicates

    @property
    def unmatched_receipts(self) -> int:
        """Receipts published unmatched (no mapping within ``unmatched_after``, or parking
        full)."""
        return self.stats["unmatched_receipts"]

    def bind_states(self) -> list[BindSnapshot]:
        """Every bind as it is now, account by account (a read-only snapshot)."""
        out: list[BindSnapshot] = []
        for account in self.accounts.values():
            window = account.config.window
            for bind in account.binds:
                conn = bind.conn
                out.append(
                    BindSnapshot(
                        bind.name,
                        account.name,
                        bind.state,
                        conn.outstanding if conn is not None else 0,
                        window,
                        bind.measured_rate,
                    )
                )
        return out

    def status(self) -> PoolStatus:
        """The binds, the counters and the drain as they are now (a read-only snapshot)."""
        return PoolStatus(tuple(self.bind_states()), dict(self.stats), self._draining)

    @property
    def draining(self) -> bool:
        """Whether ``drain`` has begun (no new message is taken, no bind connects again)."""
        return self._draining

    async def drain(self, timeout: float = 30.0) -> list[OutboundMessage]:
        """Stop taking new messages, wait up to ``timeout`` for what is in flight to settle,
        then unbind everything.

        From the moment it starts no bind connects again: a bind that is down stays down, one
        connecting or binding is abandoned, waits before reconnecting end. Binds that are up
        stay up while what is in flight settles; then each is unbound (waiting at most
        ``_UNBIND_TIMEOUT`` for the unbind_resp) and closed, all within ``CLOSE_TIMEOUT``. So
        it returns within ``timeout`` plus that close time whatever the SMSC does (gone,
        silent, throttling everything).

        Callers blocked in ``send`` get ``PoolClosed`` (their message was not sent), at once
        when no bind of their account is up. Messages that had parts out when time ran up
        get an ``unknown`` outcome (so do those with a part accepted or sent without an
        answer that cannot go on without a bind; a part refused for good: ``error``).
        Those the SMSC has no part of (never handed to a bind, or every part handed out
        refused, throttled say, and waiting for a retry) are returned, to be given back to
        whoever queued them. A second call returns ``[]``.
        """
        if self._draining:
            await self._close_binds()
            return []
        self._draining = True
        self._give_up_at = anyio.current_time() + timeout + CLOSE_TIMEOUT + _STORE_GRACE
        for account in self.accounts.values():
            for bind in account.binds:
                if bind.state is not BindState.UP and bind.scope is not None:
                    bind.scope.cancel()  # backoff or connecting: abandoned
            account.poke()
            for bind in account.binds:
                bind.wake()
        self._retry_signal.fire()
        with anyio.move_on_after(timeout):
            while self._jobs:
                await self._idle.wait()
        for job in list(self._jobs):
            if job.done:
                continue
            if not job.started or self._none_accepted(job):
                self._give_back(job)
                continue
            job.unknown = True
            job.error_reason = f"pool drained after {timeout:g} s with parts unanswered"
            self._finish(job)
        # Unbound before the last publishing: receipts read meanwhile are published too.
        await self._close_binds()
        try:
            # Whatever is settled gets published before we go, and so do MOs still missing
            # parts.
            await self._flush_settled()
            partial = self._assembler.flush()
            if partial:
                self.stats["inbound"] += len(partial)
                await self.handler.on_inbound(partial)
            await self._forget_settled()
            await self._sync_parking()
        except Exception as exc:
            # A store down past the deadline: unpublished outcomes are left to the caller's
            # redelivery (unacknowledged queue entries), unsaved tombstones cost flagged repeats.
            log.error("drain could not publish everything", error=str(exc))
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
        unsent, self._given_back = self._given_back, []
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
        job = self._prepare(message)
        if job is not None and not self._start_now(job, None):
            await self._send_later(job)

    async def send_many(self, messages: Iterable[OutboundMessage]) -> None:
        """``send`` for each message in turn, at less cost per message (one clock reading for
        a run of messages that find free window). Returns once every part of every message
        has been handed to a bind.

        If the pool starts draining meanwhile, raises ``PoolClosed`` whose ``accepted`` says
        how many of the messages were taken (they get outcomes); the rest were not sent.
        """
        now: float | None = None
        for accepted, message in enumerate(messages):
            if self._draining:
                raise PoolClosed("the pool is draining", accepted=accepted)
            job = self._prepare(message)
            if job is not None:
                if now is None:
                    now = anyio.current_time()
                if not self._start_now(job, now):
                    try:
                        await self._send_later(job)
                    except PoolClosed as exc:
                        # A message with parts out was taken: it gets its outcome.
                        exc.accepted = accepted + int(job.started)
                        raise
                    now = None  # we may have waited: read the clock again

    def _prepare(self, message: OutboundMessage) -> _Job | None:
        """The job of a message, counted in flight; None if it cannot be sent at all (it has
        its ``error`` outcome already)."""
        try:
            only = self._only
            if only is not None and (message.account is None or message.account == only.name):
                account = only
            else:
                account = self._account_for(message)
            pdus = account.build(message)
        except (EncodingError, LocalProtocolError, ValueError, KeyError) as exc:
            job = _Job(self, message, next(iter(self.accounts.values())), [])
            job.error_reason = str(exc).strip("'\"")
            self._jobs.add(job)
            self._finish(job)
            return None
        job = _Job(self, message, account, pdus)
        self._jobs.add(job)
        return job

    def _start_now(self, job: _Job, now: float | None) -> bool:
        """Hand a one-part message to the bind with the most free window now, if one has a
        slot and no TPS budget to wait for (the common case: no task switch, no routing
        loop); False to take the general path instead."""
        if len(job.pdus) != 1:
            return False
        bind, _ = job.account.pick()
        if bind is None or bind.buckets:
            return False
        driver = bind.driver
        assert driver is not None
        try:
            driver.start_request(job.pdus[0], job, now=now)
        except FieldError as exc:
            self._unencodable(job, [0], exc)
            return True  # (settled: an error outcome)
        except (SessionClosedError, LocalProtocolError):
            # A full window, a session closed or unbinding: the general path copes (and
            # marks a bind that cannot submit).
            return False
        job.bind = bind
        job.sent_on[0] = bind
        job.sent_gen[0] = bind.generation + 1
        job.out += 1
        return True

    async def _send_later(self, job: _Job) -> None:
        """Send a job ``_start_now`` could not: a one-part message waits for room on any bind
        of its account (the first to free a batch of slots takes it, while a wait on one
        bind would leave the others idle); anything else (several parts, TPS budgets, no bind
        up) goes the general way."""
        account = job.account
        try:
            while len(job.pdus) == 1 and account.submitters:
                if any(b.buckets for b in account.submitters):
                    break
                if self._draining:
                    raise PoolClosed("the pool is draining")
                await account.wait_changed()
                if not self._draining and self._start_now(job, None):
                    return
        except BaseException:
            # Nothing went out: the caller still owns the message.
            self._disown(job)
            raise
        await self._send_job(job)

    async def _send_job(self, job: _Job) -> None:
        try:
            await self._send_parts(job, list(range(len(job.pdus))))
        except BaseException:
            if not job.started:
                # Nothing went out: the caller still owns the message.
                self._disown(job)
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

    def _disown(self, job: _Job) -> None:
        """Nothing of ``job`` went out and its caller is told so (``PoolClosed``, or its own
        cancellation): the pool holds it no more. A drain waiting for the last job hears of
        it (else it would wait out its whole timeout for a message that is gone)."""
        self._jobs.discard(job)
        if not self._jobs:
            self._idle.fire()

    def _account_for(self, message: OutboundMessage) -> Account:
        if message.account is not None:
            try:
                return self.accounts[message.account]
            except KeyError:
                raise KeyError(f"unknown account {message.account!r}") from None
        # The account with the most free capacity right now.
        return max(
            self.accounts.values(),
            key=lambda a: sum(b.free_slots() for b in a.submitters),
        )

    async def _send_parts(self, job: _Job, indexes: list[int]) -> None:
        """Send parts in order on one bind; if it goes away, continue on another."""
        remaining = list(indexes)
        while remaining:
            if self._draining and not job.started:
                raise PoolClosed("the pool is draining")
            if job.done:
                # The drain gave up on it (an outcome is out): nothing more may go.
                raise PoolClosed("the pool drained before every part was sent")
            bind = await self._acquire(job.account, job.bind)
            job.bind = bind
            while remaining:
                i = remaining[0]
                if not await self._wait_slot(bind, job):
                    job.bind = None
                    break  # the bind went away: route the rest elsewhere
                driver = bind.driver
                assert driver is not None
                try:
                    driver.start_request(job.pdus[i], job)
                except WindowFull:
                    continue
                except FieldError as exc:
                    self._unencodable(job, remaining, exc)
                    return
                except (SessionClosedError, LocalProtocolError):
                    # The session ended (or is unbinding) under us; its supervisor will
                    # notice soon, but no one may pick this bind meanwhile (that would spin
                    # without yielding).
                    bind.move_to(BindState.CLOSED if self._draining else BindState.BACKOFF)
                    job.bind = None
                    bind.account.poke()
                    break
                job.sent_on[i] = bind
                job.sent_gen[i] = bind.generation + 1
                job.out += 1
                remaining.pop(0)

    def _unencodable(self, job: _Job, indexes: list[int], exc: FieldError) -> None:
        """A part that cannot be encoded (a field out of range for the wire): it and the parts
        after it are not sent, the message fails with the reason, and the bind is fine."""
        job.error_reason = str(exc)
        for i in indexes:
            job.settled[i] = True
        if not job.pending:
            self._finish(job)

    async def _acquire(self, account: Account, prefer: Bind | None) -> Bind:
        """A bind of ``account`` that can submit, waiting for one if need be."""
        while True:
            if prefer is not None and prefer.can_submit:
                return prefer
            candidates = account.submitters
            if len(candidates) == 1:
                return candidates[0]
            if candidates:
                return max(candidates, key=Bind.free_slots)
            if all(b.state is BindState.STOPPED for b in account.binds):
                raise PoolClosed(f"every bind of account {account.name!r} is stopped")
            if self._draining:
                # No bind connects again: waiting would only hold the drain up.
                raise PoolClosed(f"the pool is draining and no bind of {account.name!r} is up")
            await account.wait_changed()

    async def _wait_slot(self, bind: Bind, job: _Job) -> bool:
        """Wait for a window slot and TPS tokens on ``bind``; False if it stops being usable
        (or the pool starts draining before this message got anything out)."""
        while True:
            if not bind.can_submit or job.done or (self._draining and not job.started):
                return False
            if bind.free_slots() <= 0:
                await bind.wait_freed()
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

    def _on_response(
        self,
        job: _Job,
        i: int,
        bind: Bind,
        response: Pdu | None,
        error: BaseException | None,
    ) -> None:
        """A part's response (or its absence) is in: decide, without awaiting."""
        job.out -= 1
        if bind.waiters:
            bind.response_freed_slot()
        account = bind.account
        if account.waiters and not account.changed.is_set() and bind.has_room():
            account.changed.set()
        if response is not None:
            tlvs: tuple[Tlv, ...] = getattr(response, "tlvs", ())
            if tlvs:
                self._congestion(bind, tlvs, job.sent_gen[i])
            status = response.command_status
            if status == 0:
                # (``decide``'s answer for 0, SETTLE, taken inline: the common case.)
                if not bind.acks:
                    bind.first_ack = anyio.current_time()  # (once a tick)
                bind.acks += 1
                job.message_ids[i] = (
                    response.message_id
                    if type(response) is SubmitSmResp
                    else str(getattr(response, "message_id", ""))
                )
                settled = job.settled
                settled[i] = True
                if len(settled) == 1 or all(settled):
                    self._finish(job)
                return
            now = anyio.current_time()
            cfg = account.config
            outcome = decide(
                status,
                nack=response.command_id == _GENERIC_NACK,
                attempts=job.attempts[i],
                max_retries=cfg.max_retries,
                policy=account.policy,
                unknown=cfg.unknown_outcome,
            )
            if outcome is Outcome.BACKPRESSURE:
                self.stats["throttled"] += 1
                self._push_back(bind, now, job.sent_gen[i])
                self._schedule_retry(job, i, now, unlimited=True)
            elif outcome is Outcome.RETRY:
                self._schedule_retry(job, i, now)
            else:
                job.code = status
                job.error_reason = f"command_status 0x{status:08X}"
                job.settled[i] = True
        else:
            # No answer: the SMSC may or may not have the part. Never silent: either resend
            # and say it may be a duplicate, or report the outcome as unknown.
            cfg = account.config
            timeout = isinstance(error, ResponseTimeoutError)
            outcome = decide(
                None,
                nack=False,
                attempts=job.attempts[i],
                max_retries=cfg.max_retries,
                policy=account.policy,
                unknown=cfg.unknown_outcome,
            )
            if outcome is Outcome.RETRY:
                job.possible_duplicate = True
                self.stats["resubmitted_unknown"] += 1
                self._schedule_retry(job, i, anyio.current_time())
            else:
                job.unknown = True
                job.error_reason = "response timeout" if timeout else f"session lost: {error}"
                job.settled[i] = True
        if not job.pending:
            self._finish(job)

    def _congestion(self, bind: Bind, tlvs: tuple[Tlv, ...], sent_gen: int) -> None:
        """A congestion_state TLV: slow down at 90 and above, else let the throttle adapt."""
        for tlv in tlvs:
            if tlv.tag == _CONGESTION_STATE:
                level = tlv.typed()
                if isinstance(level, int):
                    if level >= 90:
                        self._push_back(bind, anyio.current_time(), sent_gen)
                    elif bind.throttle is not None:
                        now = anyio.current_time()
                        if bind.throttle.on_congestion(level, now):
                            bind.apply_throttle(now)
                return

    def _push_back(self, bind: Bind, now: float, sent_gen: int) -> None:
        """The SMSC said slow down: cut this bind's rate and window (AIMD)."""
        if sent_gen and sent_gen <= bind.generation:
            return  # sent before the last cut, at the old pace: already paid for
        if bind.throttle is None:
            # No rate configured: start from what the bind achieved just before.
            rate = max(bind.current_rate(now), 10.0)
            bind.throttle = make_throttle(rate, bind.account.config.window, now)
        if bind.throttle.on_backpressure(now):
            bind.generation += 1
            bind.apply_throttle(now)

    def _schedule_retry(self, job: _Job, i: int, now: float, *, unlimited: bool = False) -> None:
        job.attempts[i] += 1
        self.stats["retries"] += 1
        attempt = job.attempts[i] if not unlimited else min(job.attempts[i], 6)
        ready = now + self._retry.delay(attempt, self._rng)
        heapq.heappush(self._retries, (ready, next(self._tiebreak), job, i))
        self._retry_signal.fire()

    def _finish(self, job: _Job) -> None:
        if job.done:
            return
        job.done = True
        if not self._settled:
            # The settler takes the whole list each time it wakes: one wake-up per batch.
            self._settled_signal.fire()
        self._settled.append(job)

    # ------------------------------------------------------------------ background tasks

    async def _retrier(self) -> None:
        assert self._tg is not None
        while True:
            if not self._retries:
                await self._retry_signal.wait()
                continue
            ready, _, job, i = self._retries[0]
            delay = ready - anyio.current_time()
            if delay > 0:
                with anyio.move_on_after(delay):
                    await self._retry_signal.wait()
                continue
            heapq.heappop(self._retries)
            self._tg.start_soon(self._resend, job, i)

    def _none_accepted(self, job: _Job) -> bool:
        """``Job.none_accepted``: a drain gives such a message back."""
        return job.none_accepted

    def _give_back(self, job: _Job) -> None:
        """A drain returns ``job``'s message unsent (``_none_accepted``): nothing more of it
        goes out, and no outcome is published for it."""
        job.done = True
        self._given_back.append(job.message)
        self._disown(job)

    async def _resend(self, job: _Job, i: int) -> None:
        if job.done:
            return  # the drain gave up on it: its outcome is out
        try:
            await self._send_parts(job, [i])
        except PoolClosed as exc:
            if job.done:
                return  # given back or given up on by the drain meanwhile
            if self._draining and self._none_accepted(job):
                self._give_back(job)  # no bind to retry on while draining
                return
            # The SMSC may have this part (an unanswered copy) or others of the message:
            # unknown; else it has none of it, and the part was refused: error.
            if job.smsc_may_have:
                job.unknown = True
            job.error_reason = f"not resent: {exc}"
            job.settled[i] = True
            if not job.pending:
                self._finish(job)

    async def _settler(self) -> None:
        event = self._settled_signal.event()
        while True:
            await event.wait()
            # Taken before the flush: a job settled while it runs wakes us again.
            event = self._settled_signal.event()
            await self._flush_settled()

    async def _flush_settled(self) -> None:
        """Store the mappings of every settled message and publish their outcomes.

        Shielded: it runs in whichever task got there first (the settler, a drain, or a
        driver's handler for receipts, which is cancelled when its connection goes), and the
        messages it took must be published whoever is cancelled meanwhile."""
        with anyio.CancelScope(shield=True):
            async with self._settle_lock:
                await self._publish_settled()

    async def _publish_settled(self) -> None:
        jobs, self._settled = self._settled, []
        if not jobs:
            return
        try:
            records = await self._publish_jobs(jobs)
        except BaseException:
            # Not published (a store or handler failure): they stay settled, to go next time.
            self._settled[:0] = jobs
            raise
        if records:
            # Published: parked receipts these mappings announce come out now.
            matched = self._correlator.mappings_stored(records, anyio.current_time())
            if matched:
                await self._publish_dlrs(matched)
                await self._sync_parking()

    async def _publish_jobs(self, jobs: list[_Job]) -> list[CorrelationRecord]:
        """Store the mappings of ``jobs`` and publish their outcomes; the mappings."""
        wall = wall_clock()
        records: list[CorrelationRecord] = []
        outcomes: list[SubmitOutcome] = []
        stats = self.stats
        for job in jobs:
            ids = job.message_ids
            n = len(ids)
            status = final_status(job.code, job.unknown, job.error_reason, any(ids))
            stats[status] += 1
            message = job.message
            name = job.account.name
            if message.request_dlr:
                # (No receipt was asked for otherwise: nothing to correlate.)
                for part, mid in enumerate(ids):
                    if mid:
                        records.append(
                            CorrelationRecord(
                                account=name,
                                message_id=mid,
                                request_id=message.id,
                                client_id=message.client_id,
                                part=part,
                                parts=n,
                                submitted_at=wall,
                            )
                        )
            bind = job.bind
            outcomes.append(
                SubmitOutcome(
                    message,
                    status,
                    job.code,
                    (ids[0] or "",) if n == 1 else tuple(mid or "" for mid in ids),
                    n,
                    name,
                    bind.name if bind is not None else "",
                    job.error_reason,
                    job.possible_duplicate,
                    1 + sum(job.attempts),
                )
            )
        # The mapping is durable before anyone hears the message was sent, so a receipt can
        # always find it.
        if records:
            await self._stored("mapping store", self.store.put_many, records)
        await self.handler.on_outcomes(outcomes)
        self._jobs.difference_update(jobs)
        if not self._jobs:
            self._idle.fire()
        return records

    async def _housekeeping(self) -> None:
        while True:
            await anyio.sleep(1.0)
            now = anyio.current_time()
            for account in self.accounts.values():
                for bind in account.binds:
                    bind.measured_rate = bind.tick_rate(now)
                    bind.acks = 0
                    bind.tick_start = now
                    if bind.throttle is not None and bind.throttle.tick(now):
                        bind.apply_throttle(now)
                account.poke()
            await self._receipts_tick(now)

    def inbound_status(self, message: InboundMessage) -> str:
        """The event status of an inbound message: ``stop`` for an opt-out, else ``inbound``."""
        return self._opt_out.status_of(message)


@asynccontextmanager
async def open_pool(
    config: PoolConfig,
    handler: PoolHandler,
    *,
    store: CorrelationStore | None = None,
    rng: random.Random | None = None,
    drain_timeout: float = 30.0,
    instance: str = "default",
    forget_settled: bool = True,
    recent_settled: int = 10_000,
) -> AsyncIterator[BindPool]:
    """Run a pool for the duration of the block; on exit, drain and unbind. (The keyword
    arguments are ``BindPool``'s.)"""
    pool = BindPool(
        config,
        handler,
        store=store,
        rng=rng,
        instance=instance,
        forget_settled=forget_settled,
        recent_settled=recent_settled,
    )
    # An error of the caller's block is re-raised as it is, not wrapped in an exception group.
    saved = BodyError()
    async with anyio.create_task_group() as tg:
        await tg.start(pool.run)
        try:
            with saved:
                yield pool
        finally:
            with anyio.CancelScope(shield=True):
                await pool.drain(drain_timeout)
            tg.cancel_scope.cancel()
    saved.reraise()


__all__ = [
    "CLOSE_TIMEOUT",
    "AccountConfig",
    "BindPool",
    "BindSnapshot",
    "OutboundMessage",
    "PoolClosed",
    "PoolConfig",
    "PoolHandler",
    "PoolStatus",
    "SubmitOutcome",
    "UnknownPolicy",
    "open_pool",
]
