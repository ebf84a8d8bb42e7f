"""Routing over binds: each account's binds (``Bind``: its session when up, its limits, its
health) with their ``BindState``, the choice of the bind with the most free window
(``Account.pick``), the PDUs of a message (``Account.build``), and the read-only snapshots the
daemon sees (``BindSnapshot``, ``PoolStatus``). No task runs here: the pool's tasks move binds
between states (``Bind.move_to``) and wait on the wake-ups these objects give."""

from __future__ import annotations

from enum import StrEnum

import anyio
import msgspec

from ..client import Client
from ..codec.compose import address, build_submits, source_address
from ..codec.pdus import SubmitSm
from ..codec.segment import TextSplitter
from ..codec.text import EncodingProfile
from ..driver.driver import Driver
from ..session.connection import Connection
from .config import AccountConfig, OutboundMessage
from .throttle import AdaptiveThrottle, TokenBucket


class BindState(StrEnum):
    """Where a bind is: connecting (or binding), up, waiting to reconnect (backoff), stopped
    (credentials refused: never retried) or closed (the pool drained)."""

    CONNECTING = "connecting"
    UP = "up"
    BACKOFF = "backoff"
    STOPPED = "stopped"
    CLOSED = "closed"


class BindSnapshot(msgspec.Struct, frozen=True):
    """One bind as ``BindPool.bind_states`` sees it now (read-only, for status and metrics).

    ``state``: ``connecting`` (connecting or binding), ``up``, ``backoff`` (waiting to
    reconnect), ``stopped`` (credentials refused: never retried) or ``closed`` (the pool
    drained). ``outstanding`` is the requests awaiting a response; ``tps`` the accepted
    submits per second over the last second.
    """

    name: str
    account: str
    state: BindState
    outstanding: int
    window: int
    tps: float


class PoolStatus(msgspec.Struct, frozen=True):
    """The pool as ``BindPool.status()`` sees it now: every bind (account by account), the
    pool's counters (a copy of ``BindPool.stats``) and whether it drains. Read-only: the daemon's
    readiness and metrics read this, never the pool's own objects."""

    binds: tuple[BindSnapshot, ...]
    stats: dict[str, int]
    draining: bool

    @property
    def binds_up(self) -> int:
        """How many binds are bound and taking messages."""
        return sum(b.state is BindState.UP for b in self.binds)


class Bind:
    """One bind of an account: its session when up, its limits and its health."""

    def __init__(
        self,
        account: Account,
        index: int,
        *,
        tick_start: float,
        tx: bool,
    ) -> None:
        self.account = account
        self.index = index
        self.name = f"{account.config.name}#{index}"
        # Rate and window limits that adapt to the SMSC's push-back. Created up front when
        # the account sets a rate; otherwise at the first push-back, from the rate measured.
        self.throttle: AdaptiveThrottle | None = None
        self.bucket: TokenBucket | None = None
        self.client: Client | None = None
        self.driver: Driver | None = None
        self.conn: Connection | None = None
        self._state = BindState.CONNECTING
        # The supervisor's whole loop (cancelled by a drain to abandon a bind not up) and its
        # wait on an up session (cancelled by a drain to unbind it).
        self.scope: anyio.CancelScope | None = None
        self.up_scope: anyio.CancelScope | None = None
        self.freed = anyio.Event()
        self.acks = 0  # accepted since tick_start
        self.tick_start = tick_start
        self.first_ack = tick_start  # when the first of ``acks`` came
        self.measured_rate = 0.0  # accepted per second over the last full tick
        self.tx = tx  # may submit (not a receiver bind)
        self.generation = 0  # how many times the throttle cut this bind's limits
        self.buckets: tuple[TokenBucket, ...] = ()  # the account's and this bind's
        self.waiters = 0  # tasks waiting on ``freed``

    @property
    def state(self) -> BindState:
        return self._state

    def move_to(self, state: BindState) -> None:
        """Put the bind in ``state`` and refresh its account's list of binds that can submit
        (``Account.refresh_submitters``): routing sees the change at once."""
        self._state = state
        self.account.refresh_submitters()

    @property
    def can_submit(self) -> bool:
        # A session that just closed is still "up" until its supervisor notices; sending on
        # it raises SessionClosedError, which reroutes the message.
        return self._state is BindState.UP and self.tx

    def attach(self, client: Client | None) -> None:
        """The session this bind now runs on (None: none)."""
        self.client = client
        self.driver = client.driver if client is not None else None
        self.conn = client.connection if client is not None else None

    def free_slots(self) -> int:
        """Window slots usable now: the session's, capped by the adaptive window."""
        conn = self.conn
        assert conn is not None
        if self.throttle is None:
            return conn.window_free
        return min(conn.window_free, self.throttle.window - conn.outstanding)

    def wake(self) -> None:
        """Wake whoever waits for a slot on this bind."""
        if self.waiters:
            self.freed.set()

    async def wait_freed(self) -> None:
        """Wait for ``wake`` (or a response that frees a batch of slots)."""
        event = self.freed
        if event.is_set():
            # Set since anyone last waited: a fresh one, made only when someone waits.
            event = self.freed = anyio.Event()
        self.waiters += 1
        try:
            await event.wait()
        finally:
            self.waiters -= 1

    def has_room(self) -> bool:
        """Whether a batch of slots is free (or nothing is outstanding): when a waiting sender
        is worth waking, to refill the window in one go, not one task switch per response."""
        conn = self.conn
        return conn is not None and (
            conn.outstanding == 0 or self.free_slots() >= min(16, max(1, conn.config.window // 4))
        )

    def response_freed_slot(self) -> None:
        """A response freed a slot: wake a sender waiting on this bind if it has room."""
        if self.waiters and not self.freed.is_set() and self.has_room():
            self.freed.set()

    def tick_rate(self, now: float) -> float:
        """Accepted per second in the tick in progress, counted from its first acceptance,
        not from its start: a bind idle until then (a pool just started, say) would
        otherwise read as a slow one, and the throttle made at the first push-back would be
        capped at that."""
        return self.acks / max(now - self.first_ack, 0.005) if self.acks else 0.0

    def current_rate(self, now: float) -> float:
        """Accepted per second, from the last full tick or the one in progress."""
        return max(self.measured_rate, self.tick_rate(now))

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


class Account:
    """One account's binds, its limits and its memory of texts: picks the bind a message goes
    through and builds its PDUs."""

    def __init__(self, config: AccountConfig, profile: EncodingProfile, bucket: TokenBucket | None):
        self.config = config
        self.name = config.name
        self.profile = profile
        self.policy = config.status_policy()
        self.splitter = TextSplitter(profile)
        self.bucket = bucket
        self.binds: list[Bind] = []
        self.submitters: list[Bind] = []  # binds that can submit now
        self.changed = anyio.Event()
        self.waiters = 0  # tasks waiting on ``changed``
        self.reference = 0

    def next_reference(self) -> int:
        self.reference = (self.reference + 1) & 0xFFFF
        return self.reference

    def refresh_submitters(self) -> None:
        """Make ``submitters`` the binds that can submit now (``Bind.move_to`` calls it)."""
        self.submitters = [b for b in self.binds if b.can_submit]

    def pick(self) -> tuple[Bind | None, int]:
        """The bind with the most free window now and its free slots ((None, 0) if every one
        is full or down)."""
        best: Bind | None = None
        most = 0
        for bind in self.submitters:
            free = bind.free_slots()
            if free > most:
                best, most = bind, free
        return best, most

    def build(self, message: OutboundMessage) -> list[SubmitSm]:
        """The message's submit_sm PDUs (``build_submits``, with this account's profile and
        memory of texts)."""
        text = message.text
        if message.template is None and len(text) <= 70:
            # Short texts (most traffic) fit one part whatever the encoding: built here,
            # without the general path's keyword plumbing. (Equal to ``build_submits``.)
            split = self.splitter.split(
                text,
                encoding=message.encoding,
                concat=self.config.concat,
                max_parts=message.max_parts,
            )
            if len(split.segments) == 1:
                segment = split.segments[0]
                s_ton, s_npi, s_addr = source_address(message.source)
                d_ton, d_npi, d_addr = address(message.destination)
                return [
                    SubmitSm(
                        source_addr_ton=s_ton,
                        source_addr_npi=s_npi,
                        source_addr=s_addr,
                        dest_addr_ton=d_ton,
                        dest_addr_npi=d_npi,
                        destination_addr=d_addr,
                        esm_class=segment.esm_class,
                        registered_delivery=1 if message.request_dlr else 0,
                        data_coding=split.data_coding,
                        short_message=segment.short_message,
                        tlvs=segment.tlvs,
                    )
                ]
        return build_submits(
            message.source,
            message.destination,
            text,
            profile=self.profile,
            reference=self.next_reference(),
            encoding=message.encoding,
            concat=self.config.concat,
            registered_delivery=1 if message.request_dlr else 0,
            max_parts=message.max_parts,
            template=message.template,
            splitter=self.splitter,
        )

    def poke(self) -> None:
        """Wake everyone waiting for capacity on this account."""
        if self.waiters:
            self.changed.set()

    async def wait_changed(self) -> None:
        """Wait for ``poke``."""
        event = self.changed
        if event.is_set():
            event = self.changed = anyio.Event()
        self.waiters += 1
        try:
            await event.wait()
        finally:
            self.waiters -= 1


def make_throttle(max_rate: float, window: int, now: float) -> AdaptiveThrottle:
    """The adaptive throttle of a bind: from ``max_rate`` and ``window`` down, and back."""
    return AdaptiveThrottle(
        max_rate=max_rate,
        max_window=window,
        now=now,
        min_rate=min(1.0, max_rate),
        cooldown=0.2,
        recovery_interval=0.5,
    )


__all__ = ["Account", "Bind", "BindSnapshot", "BindState", "PoolStatus", "make_throttle"]
