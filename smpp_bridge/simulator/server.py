"""The simulator as a whole: accounts, the shared scheduler, routing of receipts and MO
traffic, and serving connections over TCP, TLS or any anyio byte stream.

Tests use it directly::

    async with run_simulator(SimulatorConfig(accounts=(Account(system_id="esme",
                                                                password="pw"),))) as sim:
        async with open_session("127.0.0.1", sim.port, "esme", "pw") as client:
            ...
        assert sim.stats.account("esme").accepted == ...

or, without sockets, ``async with Simulator(config) as sim: sim.start_stream(server_end)``.
"""

from __future__ import annotations

import itertools
import math
import random
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import Any, Final, Protocol

import anyio
import anyio.abc
from anyio.streams.tls import TLSListener

from ..codec.compose import address
from ..codec.constants import CommandStatus
from ..codec.pdus import DeliverSm
from ..codec.segment import Concat, split_text
from ..codec.text import EncodingProfile, profile_named
from ..codec.tlv import Tag, Tlv
from ..errors import EncodingError
from ..session import SessionConfig
from . import ledger as _ledger
from .behaviours import (
    MessageIdFactory,
    OutcomePicker,
    ReceiptFormatter,
    ReceiptOutcome,
    constant,
    intermediate_outcome,
    make_sampler,
)
from .chaos import ChaosEngine, chaos_message_ids
from .config import (
    Account,
    BindType,
    ConfigError,
    SimulatorConfig,
    resolve_status,
    validate,
)
from .outbound import AccountState, Kind, Outbound
from .scheduler import Scheduler
from .smsc import SmscSession
from .stats import Stats

S = CommandStatus
# How often stored deliver_sm are checked against ``receipts.store_expiry``.
_SWEEP_INTERVAL: Final = 1.0


class EventLog(Protocol):
    """Where the simulator reports binds and closes: a structlog logger fits."""

    def info(self, event: str, **fields: Any) -> Any: ...


class Simulator:
    """An SMSC with the behaviours of ``config``. Enter it (``async with``) to run its
    scheduler; then serve connections with ``listen``, ``serve_stream`` or ``start_stream``.

    ``stats`` holds the counters; ``accounts`` the accounts by system_id (with their current
    binds); ``port`` the listening port once ``listen`` ran. ``log`` (optional) gets one
    event per bind and closed session; refusals (refused binds, connections closed before a
    bind) are rate-limited to one line per reason per ``server.refusal_log_interval``, then one
    line with ``suppressed=N``. ``chaos`` is the chaos engine when the profile is on (its
    ``log`` and ``counts`` show what it did). With ``ledger.path`` the ledger is written when
    the simulator stops.
    """

    def __init__(
        self, config: SimulatorConfig | None = None, *, log: EventLog | None = None
    ) -> None:
        self.config = config = validate(config or SimulatorConfig())
        self.log = log
        seed = config.seed

        def rng(name: str) -> random.Random:
            # One generator per behaviour, so turning MO traffic on does not change receipts.
            return random.Random(f"{seed}:{name}") if seed is not None else random.Random()

        server = config.server
        self.session_config = SessionConfig(
            window=server.window,
            response_timeout=server.response_timeout,
            enquire_link_interval=server.enquire_link_interval,
            inactivity_timeout=server.inactivity_timeout,
            session_init_timeout=server.session_init_timeout,
        )
        submit = config.submit
        ids_config = submit.message_id
        if config.chaos is not None and config.chaos.message_ids:
            ids_config = chaos_message_ids(config.chaos)
        self.ids = MessageIdFactory(ids_config, rng("ids"))
        ledger = None
        if config.ledger.on:
            ledger = _ledger.Ledger(self.ids.for_response, wide_ids=ids_config.format == "uuid")
        self.stats = Stats(ledger)
        self.chaos = ChaosEngine(config.chaos, self) if config.chaos is not None else None
        self.accounts: dict[str, AccountState] = {}
        for account in config.accounts:
            self._add_account(account)
        self.scheduler = Scheduler()
        self.sessions: set[SmscSession] = set()
        self.connections_total = 0
        self.port: int | None = None
        self.started = 0.0
        self._tg: anyio.abc.TaskGroup | None = None
        self._stack: AsyncExitStack | None = None
        self._paused_until = -math.inf  # a restart refuses connections until then
        # Refusal log windows: (event, reason) -> [suppressed count, last fields].
        self._refusals: dict[tuple[str, Any], list[Any]] = {}

        faults = config.faults
        receipts = config.receipts
        self.latency = make_sampler(submit.latency, rng("latency"))
        self.fault_random: Callable[[], float] = rng("faults").random
        self.delay_response = make_sampler(faults.delay_response, rng("delay_response"))
        self.responses_immediate = (
            constant(submit.latency) == 0
            and faults.drop_response_probability == 0
            and faults.delay_response_probability == 0
        )
        self.bursts = faults.queue_full
        self._burst_code = resolve_status(self.bursts.status) if self.bursts is not None else 0
        self.congestion_tlvs: tuple[Tlv, ...] | None = ()
        if faults.congestion_state == "auto":
            self.congestion_tlvs = None
        elif faults.congestion_state is not None:
            self.congestion_tlvs = (Tlv(Tag.congestion_state, bytes((faults.congestion_state,))),)
        self.receipts_on = receipts.enabled
        # Receipts remember the submitting bind for "same" (go to it) and "other" (avoid it).
        self.route_origin = receipts.route != "any"
        self.route_other = receipts.route == "other"
        self.receipt_before_resp = faults.receipt_before_resp
        self.store_expiry = receipts.store_expiry
        self.store_limit = receipts.store_limit
        self.permanent_statuses = frozenset(
            resolve_status(status) for status in receipts.permanent_statuses
        )
        self.receipt_data_coding = receipts.data_coding
        # Receipt dates are wall-clock; derived from the anyio clock read once per batch.
        self.wall_offset = 0.0
        self.receipt_tlvs = receipts.tlvs
        self.outcomes = OutcomePicker(receipts.outcomes, rng("outcomes"))
        self.pick_outcome = self.outcomes.pick
        self.intermediates: tuple[ReceiptOutcome, ...] = tuple(
            intermediate_outcome(stat) for stat in receipts.intermediate
        )
        self.always_intermediate = receipts.intermediate_when == "always"
        self.receipt_delay = make_sampler(receipts.delay, rng("receipt_delay"))
        self.intermediate_delay = make_sampler(receipts.intermediate_delay, rng("intermediate"))
        self.formatter = ReceiptFormatter(receipts)

        mo = config.mo
        try:
            self.mo_profile: EncodingProfile = profile_named(mo.profile)
        except EncodingError as exc:
            raise ConfigError(str(exc), "mo.profile") from None
        for i, text in enumerate(mo.texts):
            try:
                split_text(text, profile=self.mo_profile, encoding=mo.encoding, concat=mo.concat)
            except EncodingError as exc:
                raise ConfigError(str(exc), f"mo.texts[{i}]") from None
        self._mo_texts = itertools.cycle(mo.texts)
        self._mo_reference = itertools.count(1)
        mo_random = rng("mo")
        if mo.rate <= 0:
            self.mo_interval: Callable[[], float] = lambda: math.inf
        elif mo.arrivals == "exponential":
            rate = mo.rate
            self.mo_interval = lambda: mo_random.expovariate(rate)
        else:
            interval = 1.0 / mo.rate
            self.mo_interval = lambda: interval

    # ------------------------------------------------------------------ running

    async def __aenter__(self) -> Simulator:
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            self._tg = await stack.enter_async_context(anyio.create_task_group())
            self._tg.start_soon(self.scheduler.run)
        except BaseException:
            await stack.__aexit__(None, None, None)
            raise
        self.started = anyio.current_time()
        self.wall_offset = time.time() - self.started
        self._stack = stack
        if self.store_expiry is not None:
            self.scheduler.call_at(self.started + _SWEEP_INTERVAL, self._sweep)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        stack, tg = self._stack, self._tg
        self._stack = self._tg = None
        assert stack is not None and tg is not None
        tg.cancel_scope.cancel()
        try:
            result = await stack.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # The task group wraps an error of the ``async with`` body (a failed assertion, a
            # port already in use) in a group of one; hand it back as it was raised.
            if exc is not None and group.exceptions == (exc,):
                raise exc from None
            raise
        finally:
            self.flush_refusals()
            path = self.config.ledger.path
            if path is not None:
                self.stats.write_ledger(path)
        return result

    def _task_group(self) -> anyio.abc.TaskGroup:
        if self._tg is None:
            raise RuntimeError("the simulator is not running: use `async with Simulator(...)`")
        return self._tg

    async def listen(
        self, host: str = "127.0.0.1", port: int = 0, *, ssl_context: ssl.SSLContext | None = None
    ) -> int:
        """Accept connections on ``host:port`` (TLS with ``ssl_context``); return the port."""
        tg = self._task_group()
        tcp = await anyio.create_tcp_listener(local_host=host, local_port=port)
        bound: int = tcp.extra(anyio.abc.SocketAttribute.local_port)
        listener: anyio.abc.Listener[Any] = tcp
        if ssl_context is not None:
            listener = TLSListener(tcp, ssl_context, standard_compatible=False)
        tg.start_soon(self._accept, listener)
        self.port = bound
        return bound

    async def _accept(self, listener: anyio.abc.Listener[Any]) -> None:
        try:
            await listener.serve(self.serve_stream)
        finally:
            # Cancelling ``serve`` leaves the listening socket open.
            with anyio.CancelScope(shield=True):
                await listener.aclose()

    def start_stream(self, stream: anyio.abc.ByteStream) -> None:
        """Serve one connection (e.g. the server end of ``testing.memory_stream_pair``)."""
        self._task_group().start_soon(self.serve_stream, stream)

    async def serve_stream(self, stream: anyio.abc.ByteStream) -> None:
        """Serve one connection until it ends."""
        self._task_group()
        if anyio.current_time() < self._paused_until:
            # Restarting: the connection is closed at once, as through a load balancer in
            # front of an SMSC that is not up yet.
            self.stats.unbound.connections_refused += 1
            with anyio.CancelScope(shield=True):
                await stream.aclose()
            return
        session = SmscSession(self, stream)
        self.sessions.add(session)
        self.connections_total += 1
        try:
            await session.run()
        finally:
            self.sessions.discard(session)

    # ------------------------------------------------------------------ accounts and binds

    def _add_account(self, account: Account) -> AccountState:
        state = AccountState(account, self.stats.account(account.system_id))
        self.accounts[account.system_id] = state
        return state

    def authenticate(
        self, system_id: str, password: str, bind_type: BindType
    ) -> tuple[AccountState | None, int]:
        """The account a bind is for, and 0 or the command_status refusing the bind."""
        server = self.config.server
        # An empty system_id (only possible with accept_any) gets an account named "-".
        account = self.accounts.get(system_id or "-")
        if account is None:
            if not server.accept_any:
                return None, S.ESME_RINVSYSID
            account = self._add_account(Account(system_id=system_id or "-"))
        elif not server.accept_any and password != account.config.password:
            return account, S.ESME_RINVPASWD
        config = account.config
        if bind_type not in config.bind_types:
            return account, S.ESME_RBINDFAIL
        if config.max_binds is not None:
            bound = sum(1 for s in account.sessions if s.conn.bound)
            if bound >= config.max_binds:
                return account, resolve_status(server.bind_limit_status)
        return account, 0

    def bound_receiver(self, session: SmscSession) -> None:
        """A receiving bind came up: hand it what waited for one, start its MO traffic."""
        session.drain()
        if self.config.mo.rate > 0:
            session.schedule_mo(session.stream.now)

    def restart(self, pause: float) -> None:
        """Play an SMSC restart: every connection closed at once (nothing more answered),
        new connections closed for ``pause`` seconds. Stored and scheduled receipts survive."""
        self.stats.unbound.restarts += 1
        self._paused_until = anyio.current_time() + pause
        self.log_event("restart", connections=len(self.sessions), pause=round(pause, 3))
        for session in list(self.sessions):
            session.abort("SMSC restart")

    def log_event(self, event: str, **fields: Any) -> None:
        if self.log is not None:
            self.log.info(event, **fields)

    def log_refusal(self, event: str, key: Any, **fields: Any) -> None:
        """Log a refusal, at most one line per (event, reason) per interval; the lines held
        back are counted and reported in one line when the interval ends."""
        if self.log is None:
            return
        interval = self.config.server.refusal_log_interval
        if interval <= 0:
            self.log.info(event, **fields)
            return
        window_key = (event, key)
        window = self._refusals.get(window_key)
        if window is not None:
            window[0] += 1
            window[1] = fields
            return
        self.log.info(event, **fields)
        self._refusals[window_key] = [0, fields]
        self.scheduler.call_at(
            anyio.current_time() + interval, self._end_refusal_window, window_key
        )

    def _end_refusal_window(self, key: tuple[str, Any]) -> None:
        window = self._refusals.pop(key, None)
        if window is None or not window[0]:
            return
        assert self.log is not None
        self.log.info(key[0], suppressed=window[0], **window[1])
        # This line used the next interval's turn.
        self._refusals[key] = [0, window[1]]
        interval = self.config.server.refusal_log_interval
        self.scheduler.call_at(anyio.current_time() + interval, self._end_refusal_window, key)

    def flush_refusals(self) -> None:
        """Report the refusal lines held back so far (at stop)."""
        refusals = self._refusals
        self._refusals = {}
        for (event, _), (suppressed, fields) in refusals.items():
            if suppressed and self.log is not None:
                self.log.info(event, suppressed=suppressed, **fields)

    # ------------------------------------------------------------------ rate and burst limits

    def burst_status(self, submits: int, now: float) -> int:
        """The status refusing the ``submits``-th submit during a queue-full burst, else 0."""
        bursts = self.bursts
        assert bursts is not None
        if bursts.unit == "submits":
            position = (submits - 1) % bursts.every
        else:
            position = (now - self.started) % bursts.every
        return self._burst_code if position >= bursts.every - bursts.length else 0

    # ------------------------------------------------------------------ deliver_sm routing

    def route(self, out: Outbound) -> None:
        """Send a receipt or MO part to a bind that may take it now, else store it for its
        system_id (store and forward)."""
        self._born(out)
        origin = out.origin
        account = out.account
        if origin is not None:
            out.origin = None  # a preference, spent once
            if out.avoid:
                session = account.ready_receiver(origin)
                if session is not None:
                    session.start(out)
                    return
            elif origin.can_receive:
                origin.deliver(out)
                return
        if not account.store:
            # One receiving bind is the common case: skip the round robin.
            receivers = account.receivers
            session = (
                receivers[0]
                if len(receivers) == 1 and receivers[0].ready
                else account.ready_receiver()
            )
            if session is not None:
                session.start(out)
                return
        self._store(out)

    # A deliver_sm that could not be started (its session ended) is routed again at once.
    reroute = route

    def _born(self, out: Outbound) -> None:
        """Mark when ``out`` first came due (what ``store_expiry`` counts from)."""
        if self.store_expiry is not None and not out.born:
            out.born = anyio.current_time()

    def _store(self, out: Outbound) -> None:
        self._born(out)  # (an MO part sent while no bind could take it)
        account = out.account
        if len(account.store) >= self.store_limit:
            account.counters.store_overflows += 1
            self._give_up(out, _ledger.OVERFLOW)
            return
        account.store.append(out)

    def put_back(self, account: AccountState, outs: list[Outbound]) -> None:
        """deliver_sm a closed connection left unanswered (or never sent): in front of the
        store, in their order, then to any receiving bind with room."""
        for out in outs:
            out.origin = None
            self._born(out)
        account.store.extendleft(reversed(outs))
        account.pump()

    def refused(self, out: Outbound, status: int | None) -> None:
        """The ESME refused a deliver_sm (``status``) or left it unanswered on a live session
        (None): try again later, unless the status is permanent or attempts ran out."""
        counters = out.account.counters
        out.attempts += 1
        if status in self.permanent_statuses or out.attempts >= self.config.receipts.max_attempts:
            counters.deliver_failures += 1
            self._settle(out, _ledger.REFUSED)
            return
        counters.deliver_retries += 1
        due = anyio.current_time() + self.config.receipts.retry_interval
        self.scheduler.call_at(due, self.route, out)

    def expire(self, out: Outbound) -> None:
        """A stored deliver_sm outlived ``receipts.store_expiry``."""
        if out.kind == Kind.RECEIPT:
            out.account.counters.dlrs_expired += 1
        elif out.kind == Kind.MO:
            out.account.counters.mo_expired += 1
        self._give_up(out, _ledger.EXPIRED)

    def _give_up(self, out: Outbound, fate: int) -> None:
        if out.kind == Kind.RECEIPT:
            out.account.counters.dlrs_lost += 1
        self._settle(out, fate)

    def _settle(self, out: Outbound, fate: int) -> None:
        ledger = self.stats.ledger
        if ledger is not None and out.entry >= 0:
            ledger.settle(out.entry, fate)

    def _sweep(self, _: object) -> None:
        """Give up what the stores kept longer than ``receipts.store_expiry``."""
        expiry = self.store_expiry
        assert expiry is not None
        now = anyio.current_time()
        for account in self.accounts.values():
            store = account.store
            if store and any(now - out.born >= expiry for out in store):
                kept = [out for out in store if now - out.born < expiry]
                for out in store:
                    if now - out.born >= expiry:
                        self.expire(out)
                store.clear()
                store.extend(kept)
        self.scheduler.call_at(now + _SWEEP_INTERVAL, self._sweep)

    # ------------------------------------------------------------------ MO traffic

    def next_mo_text(self) -> str:
        return next(self._mo_texts)

    def mo_outbounds(
        self,
        account: AccountState,
        text: str,
        *,
        source_addr: str | None = None,
        destination_addr: str | None = None,
        encoding: str | None = None,
        concat: Concat | None = None,
    ) -> list[Outbound]:
        """The deliver_sm parts of one MO message (counted in ``mos``)."""
        mo = self.config.mo
        split = split_text(
            text,
            profile=self.mo_profile,
            encoding=encoding or mo.encoding,
            concat=concat or mo.concat,
            reference=next(self._mo_reference),
        )
        s_ton, s_npi, s_addr = address(source_addr or mo.source_addr)
        d_ton, d_npi, d_addr = address(destination_addr or mo.destination_addr)
        account.counters.mos += 1
        return [
            Outbound(
                DeliverSm(
                    source_addr_ton=s_ton,
                    source_addr_npi=s_npi,
                    source_addr=s_addr,
                    dest_addr_ton=d_ton,
                    dest_addr_npi=d_npi,
                    destination_addr=d_addr,
                    esm_class=seg.esm_class,
                    data_coding=split.data_coding,
                    short_message=seg.short_message,
                    tlvs=seg.tlvs,
                ),
                Kind.MO,
                "",
                account,
                None,
            )
            for seg in split.segments
        ]

    def send_mo(
        self,
        system_id: str,
        text: str,
        *,
        source_addr: str | None = None,
        destination_addr: str | None = None,
        encoding: str | None = None,
        concat: Concat | None = None,
    ) -> int:
        """Send one MO message to a receiving bind of ``system_id`` (parked if it has none);
        every part goes to the same bind. Returns the number of parts."""
        account = self.accounts.get(system_id)
        if account is None:
            raise KeyError(f"no account {system_id!r}")
        outs = self.mo_outbounds(
            account,
            text,
            source_addr=source_addr,
            destination_addr=destination_addr,
            encoding=encoding,
            concat=concat,
        )
        session = account.receiver()
        for out in outs:
            if session is not None:
                session.deliver(out)
            else:
                self._store(out)
        return len(outs)


@asynccontextmanager
async def run_simulator(
    config: SimulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
    log: EventLog | None = None,
) -> AsyncIterator[Simulator]:
    """Run a simulator listening on ``host:port`` (port 0: any free port, see ``sim.port``)."""
    async with Simulator(config, log=log) as sim:
        await sim.listen(host, port, ssl_context=ssl_context)
        yield sim


__all__ = ["EventLog", "Simulator", "run_simulator"]
