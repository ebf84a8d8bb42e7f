"""The daemon: send requests from a queue, through the bind pool, events out.

One ``Bridge`` owns a requests queue, an events queue (and, with a webhook, its outbox queue),
the message store, the correlation store and a ``BindPool``. Its life:

1. **Consume** a batch of leased queue entries (each one send request or a bulk array of up to
   100). Parse and validate every request; an invalid one becomes an ``error`` event at once.
2. **Claim** the valid ones in the message store (one call per batch). A request whose dedup key
   (its ``clientId``, else its queue entry and position) is already there is not submitted
   again: a fresh duplicate gets an ``error`` event naming the earlier one; a *redelivered*
   entry (a crash came between submit and outcome) is an unknown outcome, resent marked
   ``possibleDuplicate`` or reported ``unknown`` per the account's policy; one already settled
   is simply acknowledged.
3. **Submit** through the pool, which blocks while every window is full: backpressure reaches
   the queue, and at most ``max_in_flight`` requests are held in memory.
4. **Settle**: the pool reports each message's outcome after storing its correlation; the
   events are published (events queue, webhook outbox), the store updated, and only then is
   the queue entry acknowledged — when every request in it is settled (at-least-once).
5. Receipts and inbound messages arrive as pool callbacks and become events the same way,
   before the SMSC gets its ``deliver_sm_resp``.

Leases of entries still in flight are renewed in the background. ``stop()`` (SIGTERM) drains:
no more consuming, outstanding responses awaited up to the deadline, binds unbound, and the
leases of entries with unsent requests given back so another daemon (or the next start) takes
them at once.
"""

from __future__ import annotations

import collections
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import anyio.abc
import structlog

from ..codec.status import Status
from ..codec.text import profile_named
from ..errors import PoolClosed, QueueClosedError, StoreClosedError
from ..pool import (
    CLOSE_TIMEOUT,
    BindPool,
    CorrelationStore,
    DlrEvent,
    InboundMessage,
    OutboundMessage,
    SubmitOutcome,
    UnknownPolicy,
    open_pool,
    until_done,
)
from ..storage.queues import Leased, WorkQueue
from .claim import OUTCOMES, Claim, classify_claim
from .commit import CommitBatch, GroupCommit
from .config import BridgeConfig, DaemonConfig
from .envelope import (
    Event,
    encode_events,
)
from .events import (
    REDELIVERED_REASON,
    UNMATCHED_REASON,
    dlr_events,
    duplicate_event,
    inbound_event,
    iso_time,
    outcome_event,
    recovered_event,
    unknown_event,
)
from .intake import AccountInfo as _AccountInfo
from .intake import Entry as _Entry
from .intake import Request as _Request
from .intake import read_entries
from .metrics import Metrics
from .store import MessageRecord, MessageStore

log = structlog.get_logger("smpp_bridge.bridge")

# A request is claimed in the store as ``submitting`` (one write, before it goes to the pool):
# a crash before its outcome is recorded leaves an unknown outcome. Requests handed back unsent
# (a drain) are marked ``queued``: their redelivery is sent without doubt (``claim``).
# Shutdown deadlines beyond ``drain_timeout`` (the CLI's watchdog ends the process at
# ``drain_timeout`` + ``daemon.SHUTDOWN_GRACE`` whatever is left).
DRAIN_GRACE = 1.0  # the pool's last publish of outcomes after its drain
# The pool's close after its settling time (its unbinds, ``pool.CLOSE_TIMEOUT``) and a margin
# for its last publish.
POOL_CLOSE_BUDGET = CLOSE_TIMEOUT + 0.5
HAND_BACK_TIMEOUT = 1.5  # releasing unsent entries and marking them queued
T = TypeVar("T")


@dataclass
class BridgeState:
    """What /readyz and the tests look at."""

    consuming: bool = False
    stopping: bool = False
    batches: int = 0
    requests: int = 0
    invalid: int = 0
    duplicates: int = 0
    settled: int = 0
    acked_entries: int = 0
    released_entries: int = 0
    last_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Bridge:
    """The daemon. ``await bridge.run()`` until cancelled or ``stop()``; see the module doc."""

    def __init__(
        self,
        config: BridgeConfig,
        *,
        requests: WorkQueue,
        events: WorkQueue,
        store: MessageStore,
        correlation: CorrelationStore,
        outbox: WorkQueue | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.requests = requests
        self.events = events
        self.outbox = outbox
        self.store = store
        self.correlation = correlation
        self.metrics = metrics or Metrics()
        self.state = BridgeState()
        self.pool: BindPool | None = None
        self._pool_config = config.pool_config()
        self._accounts = {
            a.name: _AccountInfo(profile_named(a.profile), a.concat)
            for a in self._pool_config.accounts
        }
        self._default_account = next(iter(self._accounts.values()))
        self._policies = {a.name: a.unknown_outcome for a in self._pool_config.accounts}
        # A request not pinned to an account: the accounts' common policy, else the daemon's.
        common = set(self._policies.values())
        self._policies[""] = common.pop() if len(common) == 1 else config.daemon.unknown_outcome
        self._inflight: dict[str, _Request] = {}
        self._possible_duplicates: set[str] = set()  # resent after a crash: may be doubled
        self._entries: dict[str, _Entry] = {}
        self._room = anyio.Event()
        self._stop_scope: anyio.CancelScope | None = None
        self._give_up_at: float | None = None  # set by a shutdown (``_persist``)
        self._stopped = anyio.Event()
        self._ready = anyio.Event()
        self._commit = GroupCommit(self._flush, on_error=self._commit_failed)
        self._per_entry = 1.0  # requests per queue entry, smoothed
        # Per-message logs (ids, and the text) only when debug is on: checked once, not per call.
        self._debug = log.bind().is_enabled_for(logging.DEBUG)

    # ------------------------------------------------------------------ lifecycle

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run the daemon until cancelled, or until ``stop()`` and its drain. Raises what
        opening the pool raises (``ConfigError`` and the like), and a closed queue's or
        store's error (``QueueClosedError``, ``StoreClosedError``) when a backend is closed
        under it; a backend that fails otherwise is retried, and raised only past the
        shutdown's deadline."""
        daemon = self.config.daemon
        try:
            await self._run(daemon, task_status)
        finally:
            self._stopped.set()

    async def _run(self, daemon: DaemonConfig, task_status: anyio.abc.TaskStatus[None]) -> None:
        async with anyio.create_task_group() as outer:
            # The committer outlives the pool: the drain still publishes outcomes through it.
            outer.start_soon(self._commit.run)
            async with open_pool(
                self._pool_config,
                self,
                store=self.correlation,
                drain_timeout=daemon.drain_timeout,
                # Receipts parked (answered, not yet matched) belong to this daemon across its
                # restarts: the configured name, else the host's.
                instance=daemon.name or socket.gethostname(),
            ) as pool:
                self.pool = pool
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._renew_leases)
                    tg.start_soon(self._observe)
                    with anyio.CancelScope() as consume_scope:
                        self._stop_scope = consume_scope
                        self._ready.set()
                        task_status.started()
                        await self._consume()
                    await self._shutdown(pool)
                    tg.cancel_scope.cancel()
            outer.cancel_scope.cancel()
        log.info("stopped", settled=self.state.settled, acked=self.state.acked_entries)

    async def _shutdown(self, pool: BindPool) -> None:
        """The drain, every step with its own deadline (nothing here waits on a peer or a
        backend without one): the pool settles what it has for ``drain_timeout`` (plus
        ``DRAIN_GRACE`` for its last publish); then whatever was never handed to a bind goes
        back to the queue, within ``HAND_BACK_TIMEOUT``."""
        daemon = self.config.daemon
        self.state.stopping = True
        log.info("draining", in_flight=len(self._inflight), entries=len(self._entries))
        # A backend that keeps failing is given up on once every step's deadline has passed.
        self._give_up_at = (
            anyio.current_time() + daemon.drain_timeout + DRAIN_GRACE + HAND_BACK_TIMEOUT
        )
        unsent: list[OutboundMessage] = []
        with anyio.move_on_after(daemon.drain_timeout + DRAIN_GRACE) as drain_scope:
            # The pool settles for less than ``drain_timeout``: its unbinds and close
            # (``POOL_CLOSE_BUDGET``) and its last publish must fit in the deadline too, or
            # what it gives back would be cut off with it.
            settle = max(0.0, daemon.drain_timeout + DRAIN_GRACE - POOL_CLOSE_BUDGET)
            unsent = await pool.drain(settle)
        drained = not drain_scope.cancelled_caught
        if not drained:
            log.warning(
                "drain overran its deadline: requests without an outcome are left to their "
                "leases (redelivered as unknown outcomes)",
                in_flight=len(self._inflight),
                deadline=daemon.drain_timeout + DRAIN_GRACE,
            )
        with anyio.move_on_after(HAND_BACK_TIMEOUT) as back_scope:
            await self._hand_back([m.id for m in unsent])
            # Requests the pool never held (the drain interrupted a batch) go back too. After a
            # completed drain every request the pool held has had its outcome or was in
            # ``unsent``; after an overrun only those never offered to the pool are certain.
            certain = [r for r, q in self._inflight.items() if drained or not q.offered]
            await self._hand_back(certain)
            if self._inflight:
                await self._hand_back(list(self._inflight), unsure=True)
        if back_scope.cancelled_caught:
            log.warning("hand back overran its deadline: the leases will run out instead")

    def stop(self) -> None:
        """Begin a graceful drain (idempotent). Raises nothing."""
        self.state.stopping = True
        if self._stop_scope is not None:
            self._stop_scope.cancel()
        self._room.set()

    async def wait_ready(self) -> None:
        """Wait until the pool is open and the consumer starts. Raises nothing."""
        await self._ready.wait()

    async def stopped(self) -> None:
        """Wait until ``run`` has drained and returned."""
        await self._stopped.wait()

    @property
    def ready(self) -> tuple[bool, str]:
        """(ready, why not): at least one bind up and consuming."""
        if self.state.stopping:
            return False, "draining"
        pool = self.pool
        if pool is None:
            return False, "starting"
        if not pool.status().binds_up:
            return False, "no bind is up"
        return True, ""

    # ------------------------------------------------------------------ consuming

    async def _consume(self) -> None:
        daemon = self.config.daemon
        batch = daemon.batch
        limit = daemon.max_in_flight
        while True:
            # Backpressure: hold no more than ``max_in_flight`` requests.
            while len(self._inflight) >= limit:
                self._room = anyio.Event()
                await self._room.wait()
            self.state.consuming = True
            # ``batch`` requests per take, however many a queue entry holds (bulk entries of
            # 100 would otherwise make one take of 10 000, holding up every other write).
            entries = max(1, min(batch, round(batch / self._per_entry)))
            leased = await self._persist("consume", self.requests.consume, entries, wait=1.0)
            if not leased:
                continue
            # Taking a batch (store claims, acknowledgements) is not interrupted by a drain;
            # sending is, and what it had not handed to the pool then goes back to the queue.
            with anyio.CancelScope(shield=True):
                to_send = await self._take(leased)
            if to_send:
                await self._send(to_send)

    async def _take(self, leased: Sequence[Leased]) -> list[tuple[_Request, OutboundMessage]]:
        """Parse, validate and claim a batch; the requests to submit."""
        now = anyio.current_time()
        self.state.batches += 1
        wall = time.time()
        event_at = iso_time(wall)  # one timestamp for the whole batch
        taken = self.state.requests
        for item in leased:
            self._entries[item.id] = _Entry(item)
        claims, invalid_events = read_entries(
            leased,
            self._entries,
            self._accounts,
            self._default_account,
            self.config.limits,
            now=now,
            wall=wall,
            event_at=event_at,
            debug=self._debug,
        )
        self.state.requests += len(claims) + len(invalid_events)
        # Requests per entry, smoothed: sizes the next take.
        self._per_entry += ((self.state.requests - taken) / len(leased) - self._per_entry) / 4
        if invalid_events:
            self.state.invalid += len(invalid_events)
            self.metrics.invalid_requests_total.inc(len(invalid_events))
            log.info("invalid requests", count=len(invalid_events))
            await self._emit(invalid_events, store=False)
        existing = (
            await self._persist("claim", self.store.begin, [c[2] for c in claims]) if claims else {}
        )
        to_send: list[tuple[_Request, OutboundMessage]] = []
        settled_events: list[Event] = []
        dup_events: list[Event] = []
        requeued: list[str] = []
        recovered: list[MessageRecord] = []
        for request, message, record in claims:
            before = existing.get(record.request_id)
            case = classify_claim(record, before, self._policy(message.account))
            if case.sends:
                if case is Claim.HANDED_BACK:
                    requeued.append(record.request_id)  # claimed again first
                elif case is Claim.RESEND:
                    self._possible_duplicates.add(record.request_id)
                to_send.append((request, message))
                continue
            assert before is not None  # only a fresh claim has nothing before it
            if case is Claim.SETTLED_BY_RECEIPTS:
                recovered.append(before)
            elif case is Claim.UNKNOWN:
                settled_events.append(unknown_event(before, REDELIVERED_REASON, event_at))
            elif case is Claim.DUPLICATE:
                self.state.duplicates += 1
                dup_events.append(duplicate_event(record, before, event_at))
            # Claim.ANSWERED: its outcome was recorded; acknowledged with its entry.
        if requeued:
            await self._persist("claim", self.store.mark, requeued, Status.SUBMITTING)
        if recovered:
            settled_events += await self._lost_outcomes(recovered, event_at)
        if dup_events:
            await self._emit(dup_events, store=False)
        if settled_events:
            await self._emit(settled_events)
        for request, _ in to_send:
            request.entry.pending += 1
            self._inflight[request.request_id] = request
        # Entries with nothing left to send are done now.
        done = [item.id for item in leased if self._entries[item.id].pending == 0]
        for entry_id in done:
            del self._entries[entry_id]
        if done:
            await self._ack(done)
        return to_send

    def _policy(self, account: str | None) -> UnknownPolicy:
        """The unknown-outcome policy of a request's account (pinned, else the common one)."""
        return self._policies.get(account or "", self._policies[""])

    async def _lost_outcomes(self, records: list[MessageRecord], event_at: str) -> list[Event]:
        """``sent`` events for redelivered requests that receipts settled but whose own outcome
        event never got written (a crash between storing the mapping and publishing)."""
        events: list[Event] = []
        for record in records:
            found = await self._persist("store read", self.store.get, record.request_id)
            history = found[1] if found is not None else []
            if any(e.status in OUTCOMES and e.segment is None for e in history):
                continue
            events.append(recovered_event(record, event_at))
        return events

    async def _send(self, to_send: list[tuple[_Request, OutboundMessage]]) -> None:
        pool = self.pool
        assert pool is not None
        taken = len(to_send)

        def offer() -> Iterator[OutboundMessage]:
            for request, message in to_send:
                request.offered = True
                yield message

        try:
            await pool.send_many(offer())
        except PoolClosed as exc:
            # Draining, or every bind of the account stopped (refused credentials): give the
            # rest back to the queue; outside a drain, not to be retried at once.
            taken = exc.accepted
            if not self.state.stopping:
                log.error("cannot submit: requests go back to the queue", reason=str(exc))
                self.state.last_error = str(exc)
            await self._hand_back(
                [r.request_id for r, _ in to_send[taken:]],
                delay=0.0 if self.state.stopping else 5.0,
            )
        finally:
            counts = collections.Counter(m.account or "" for _, m in to_send[:taken])
            for account, n in counts.items():
                self.metrics.submits_total.labels(account).inc(n)

    async def _hand_back(
        self, request_ids: Sequence[str], *, delay: float = 0.0, unsure: bool = False
    ) -> None:
        """Requests that never left: their entries are released (not acknowledged), so they are
        redelivered; requests of those entries that did settle are recognised by the store.
        ``unsure``: they may have reached a bind, so they are not marked queued (their
        redelivery is an unknown outcome, per the account's policy), only released."""
        release: set[str] = set()
        back: list[str] = []
        for request_id in request_ids:
            request = self._inflight.pop(request_id, None)
            if request is None:
                continue
            back.append(request_id)
            request.entry.unsent = True
            request.entry.pending -= 1
            if request.entry.pending == 0:
                release.add(request.entry.leased.id)
        if back and not unsure:
            # Never handed to a bind: a redelivery may send them without doubt.
            await self._persist("hand back", self.store.mark, back, Status.QUEUED)
        if release:
            ids = sorted(release)
            for entry_id in ids:
                self._entries.pop(entry_id, None)
            await self._persist("release", self.requests.release, ids, delay=delay)
            self.state.released_entries += len(ids)
        self._room.set()

    # ------------------------------------------------------------------ pool callbacks

    async def on_outcomes(self, outcomes: list[SubmitOutcome]) -> None:
        """The pool's callback for settled submits: their events published and stored, then
        the entries whose requests are all settled acknowledged (or released). Returns once
        that is durable; raises only a closed backend's error (a shutdown)."""
        wall = time.time()
        event_at = iso_time(wall)  # one timestamp for the whole batch
        now = anyio.current_time()
        events: list[Event] = []
        done: list[str] = []
        release: list[str] = []
        metrics = self.metrics
        for outcome in outcomes:
            message = outcome.message
            request = self._inflight.pop(message.id, None)
            event = outcome_event(outcome, event_at)
            if self._possible_duplicates and message.id in self._possible_duplicates:
                self._possible_duplicates.discard(message.id)
                event.possible_duplicate = True
            events.append(event)
            metrics.responses_total.labels(outcome.account, outcome.status).inc()
            if self._debug:
                log.debug(
                    "submit settled",
                    request_id=message.id,
                    client_id=message.client_id,
                    status=outcome.status,
                    code=outcome.code,
                    message_id=event.id,
                    bind=outcome.bind,
                    reason=outcome.reason,
                )
            if request is None:
                continue
            metrics.latency_queue_to_resp_seconds.observe(now - request.taken_at)
            entry = request.entry
            entry.pending -= 1
            if entry.pending == 0:
                self._entries.pop(entry.leased.id, None)
                (release if entry.unsent else done).append(entry.leased.id)
        self.state.settled += len(outcomes)
        await self._emit(events)
        if done:
            await self._ack(done)
        if release:
            await self._persist("release", self.requests.release, release)
            self.state.released_entries += len(release)
        if len(self._inflight) < self.config.daemon.max_in_flight:
            self._room.set()

    async def on_dlrs(self, events: list[DlrEvent]) -> None:
        """The pool's callback for receipts: their events, durable before it returns (the
        SMSC gets its deliver_sm_resp after). Raises nothing: a failing write is retried
        while it waits."""
        wall = time.time()
        event_at = iso_time(wall)  # one timestamp for the whole batch
        out: list[Event] = []
        metrics = self.metrics
        unmatched: collections.Counter[str] = collections.Counter()
        for dlr in events:
            metrics.dlrs_total.labels(dlr.status).inc()
            record = dlr.record
            if record is None:
                unmatched[dlr.account] += 1
            if record is not None and record.submitted_at:
                metrics.latency_submit_to_dlr_seconds.observe(max(0.0, wall - record.submitted_at))
            out.extend(dlr_events(dlr, event_at))
            if self._debug:
                log.debug(
                    "receipt",
                    request_id=dlr.request_id,
                    client_id=dlr.client_id,
                    message_id=dlr.message_id,
                    status=dlr.status,
                    bind=dlr.bind,
                    matched=dlr.matched,
                )
        if unmatched:
            for account, n in unmatched.items():
                metrics.unmatched_receipts_total.labels(account).inc(n)
            log.warning(
                "unmatched receipts",
                count=sum(unmatched.values()),
                accounts=dict(unmatched),
                reasons=sorted({d.reason or "" for d in events if d.record is None}),
            )
        await self._emit(out)

    async def on_inbound(self, messages: list[InboundMessage]) -> None:
        """The pool's callback for inbound messages: their events, durable before it
        returns. Raises nothing: a failing write is retried while it waits."""
        wall = time.time()
        event_at = iso_time(wall)  # one timestamp for the whole batch
        pool = self.pool
        out: list[Event] = []
        for message in messages:
            status = pool.inbound_status(message) if pool is not None else Status.INBOUND
            self.metrics.inbound_total.labels(status).inc()
            out.append(inbound_event(message, status, event_at))
        await self._emit(out, store=False)

    # ------------------------------------------------------------------ output

    async def _emit(self, events: list[Event], *, store: bool = True) -> None:
        """Publish events (events queue, webhook outbox) and record them in the store; returns
        once they are durable. Calls from every bind and the settler are committed together."""
        if not events:
            return
        metrics = self.metrics
        for event in events:
            metrics.events_total.labels(event.status).inc()
        await self._commit.submit(events, store)

    async def _flush(self, batch: CommitBatch) -> None:
        """One group commit: one publish per queue, one store call; each step once, however
        often a failure makes the committer try the batch again."""
        steps = batch.steps
        payloads = encode_events(batch.events)
        if "events" not in steps:
            await self.events.publish(payloads)
            steps.add("events")
        if self.outbox is not None and "outbox" not in steps:
            await self.outbox.publish(payloads)
            steps.add("outbox")
        if batch.stored and "store" not in steps:
            await self.store.apply(batch.stored)
            steps.add("store")

    def _commit_failed(self, exc: Exception) -> None:
        self.state.last_error = f"event write failed: {exc}"

    async def _ack(self, ids: list[str]) -> None:
        await self._persist("ack", self.requests.ack, ids)
        self.state.acked_entries += len(ids)

    async def _persist(
        self, what: str, call: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
    ) -> T:
        """``call(*args, **kwargs)``, tried again (with backoff) until it goes through
        (``pool.persist.until_done``): a queue or store that fails (Redis restarting, SQLite
        locked) is a pause, never the end of the consumer or of a pool callback. Every call
        given is safe to repeat: a claim that was recorded before its reply was lost is
        recognised as this one (see ``_take``), acks, releases and marks are idempotent,
        reads are reads, and entries a lost ``consume`` reply leased come back after their
        visibility timeout. A closed backend (shutdown) raises at once."""
        return await until_done(
            what,
            call,
            *args,
            closed=(QueueClosedError, StoreClosedError),
            on_error=self._backend_failed,
            give_up=self._past_shutdown_deadline,
            **kwargs,
        )

    def _past_shutdown_deadline(self) -> bool:
        return self._give_up_at is not None and anyio.current_time() >= self._give_up_at

    def _backend_failed(self, error: str) -> None:
        self.state.last_error = error

    # ------------------------------------------------------------------ background

    async def _renew_leases(self) -> None:
        """Renew the leases of entries still in flight, well before they run out."""
        period = max(0.05, self.config.queue.visibility_timeout / 3)
        while True:
            await anyio.sleep(period)
            ids = list(self._entries)
            if ids:
                try:
                    await self.requests.extend(ids)
                except Exception as exc:  # a queue hiccup must not stop the daemon
                    self.state.last_error = f"lease renewal failed: {exc}"
                    log.warning("lease renewal failed", error=str(exc), entries=len(ids))

    async def _observe(self) -> None:
        """Gauges that are read, not counted: queue depth and lag, binds, windows."""
        metrics = self.metrics
        name = self.requests.name
        while True:
            try:
                metrics.queue_depth.labels(name).set(await self.requests.depth())
                metrics.queue_lag_seconds.labels(name).set(await self.requests.oldest_age())
            except Exception as exc:
                self.state.last_error = f"queue unreachable: {exc}"
                log.warning("queue metrics failed", error=str(exc))
            if self.pool is not None:
                metrics.observe_pool(self.pool.status())
            await anyio.sleep(1.0)


__all__ = ["UNMATCHED_REASON", "Bridge", "BridgeState", "CommitBatch", "GroupCommit"]
