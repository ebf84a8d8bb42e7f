"""The ESME client: connect, bind, keep alive, submit through a window, unbind on exit.

``open_session`` is the entry point::

    async with open_session("127.0.0.1", 2775, "system", "secret") as smpp:
        resp = await smpp.submit(SubmitSm(source_addr="ACME", destination_addr="34600000001", ...))
        parts = await smpp.submit_text("ACME", "+34600000001", "Your code is 1234")

It runs on anyio: trio (our runtime) or asyncio hosts alike.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from typing import Literal

import anyio
import anyio.abc
import msgspec

from ..codec.compose import build_submits
from ..codec.constants import INTERFACE_VERSION_34, CommandStatus
from ..codec.pdus import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    DataSm,
    DeliverSm,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Unbind,
)
from ..codec.segment import Concat
from ..codec.text import DEFAULT_PROFILE, EncodingProfile
from ..driver.driver import BatchHandler, Callback, Driver, RequestHandler
from ..driver.tasks import BodyError
from ..errors import (
    BindError,
    SessionClosedError,
    SmppError,
    WindowFull,
)
from ..session import Connection, Role, SessionConfig
from .delivery import Delivery, parse_delivery

BindType = Literal["tx", "rx", "trx"]
_BIND_TYPES: dict[str, type[BindTransmitter]] = {
    "tx": BindTransmitter,
    "rx": BindReceiver,
    "trx": BindTransceiver,
}

DeliveryHandler = Callable[[Delivery], Awaitable[int | None]]


class SubmitResult(msgspec.Struct, frozen=True):
    """The settled outcome of one request sent through ``submit_stream``.

    Exactly one of ``response`` and ``error`` is set. ``response`` may carry a non-zero
    command_status (the SMSC rejected it); ``error`` is a timeout (outcome unknown) or the
    session closing before the response came (outcome unknown too).

    (A frozen ``msgspec.Struct``, like the PDUs: one is made per message, and a frozen
    dataclass costs five times more to make.)
    """

    request: Pdu
    response: Pdu | None
    error: BaseException | None
    tag: object = None

    @property
    def ok(self) -> bool:
        return self.response is not None and self.response.command_status == 0

    @property
    def message_id(self) -> str | None:
        r = self.response
        return getattr(r, "message_id", None) if r is not None else None


class Client:
    """A bound ESME session. Create it with ``open_session``."""

    def __init__(self, driver: Driver, *, profile: EncodingProfile, system_id: str) -> None:
        self._driver = driver
        self.profile = profile
        self.smsc_system_id = system_id
        self._ref = 0

    @property
    def driver(self) -> Driver:
        return self._driver

    @property
    def connection(self) -> Connection:
        return self._driver.conn

    @property
    def closed(self) -> bool:
        return self._driver.closed

    async def request(self, pdu: Pdu, *, timeout: float | None = None, check: bool = True) -> Pdu:
        """Send any request and return its response (``CommandStatusError`` if non-zero)."""
        return await self._driver.request(pdu, timeout=timeout, check=check)

    async def submit(self, pdu: SubmitSm, *, timeout: float | None = None) -> SubmitSmResp:
        """Submit one submit_sm; return its submit_sm_resp or raise ``CommandStatusError``."""
        resp = await self._driver.request(pdu, timeout=timeout)
        assert isinstance(resp, SubmitSmResp)
        return resp

    def next_reference(self) -> int:
        """A concatenation reference number for the next multipart message (16-bit, wrapping)."""
        self._ref = (self._ref + 1) & 0xFFFF
        return self._ref

    def build_text(
        self,
        source: str,
        destination: str,
        text: str,
        *,
        encoding: str = "auto",
        concat: Concat = "udh8",
        registered_delivery: int = 1,
        max_parts: int = 255,
        template: SubmitSm | None = None,
    ) -> list[SubmitSm]:
        """The submit_sm PDUs of one text message, segmented under the session's profile."""
        return build_submits(
            source,
            destination,
            text,
            profile=self.profile,
            reference=self.next_reference(),
            encoding=encoding,
            concat=concat,
            registered_delivery=registered_delivery,
            max_parts=max_parts,
            template=template,
        )

    async def submit_text(
        self,
        source: str,
        destination: str,
        text: str,
        *,
        encoding: str = "auto",
        concat: Concat = "udh8",
        registered_delivery: int = 1,
        max_parts: int = 255,
        timeout: float | None = None,
    ) -> list[SubmitSmResp]:
        """Segment and submit one text; return every part's submit_sm_resp, in part order.

        Parts are sent in order on this one bind. If a part is rejected, ``CommandStatusError``
        is raised (parts already accepted stay accepted).
        """
        pdus = self.build_text(
            source,
            destination,
            text,
            encoding=encoding,
            concat=concat,
            registered_delivery=registered_delivery,
            max_parts=max_parts,
        )
        results: list[SubmitSmResp] = []
        for pdu in pdus:
            results.append(await self.submit(pdu, timeout=timeout))
        return results

    async def submit_stream(
        self,
        pdus: Iterable[Pdu] | AsyncIterable[Pdu],
        *,
        tags: Iterable[object] | None = None,
        yield_every: int = 32,
        refill: int | None = None,
    ) -> AsyncIterator[list[SubmitResult]]:
        """Pipeline many requests through the window; yield settled results in batches.

        The producer blocks only while the window is full; results arrive in completion order,
        a batch per wake-up (one list per batch, not one object per message, keeps the per-
        message cost low). Every request yields exactly one result.

        Once the window is full, the producer waits for ``refill`` free slots (default: a
        twelfth of the window) and sends them as one run: against an SMSC that writes each
        response in its own segment, refilling slot by slot costs a wake-up and a write per
        message (a fifth more CPU). The price is a window at most ``refill - 1`` slots short
        while it waits (a few percent of throughput when the window, not the CPU, is the
        limit); ``refill=1`` refills slot by slot.
        """
        driver = self._driver
        done: list[SubmitResult] = []
        wake = anyio.Event()
        pending = 0
        finished_feeding = False
        feed_error: list[BaseException] = []

        # The consumer waits only while ``done`` is empty, so waking it when the first result
        # lands is enough (a set() per result cost more than the rest of settling it).
        def settle(request: Pdu, response: Pdu | None, error: BaseException | None) -> None:
            done.append(SubmitResult(request, response, error))
            if len(done) == 1:
                wake.set()

        tag_iter = iter(tags) if tags is not None else None

        def make_callback(tag: object) -> Callable[[Pdu, Pdu | None, BaseException | None], None]:
            def cb(request: Pdu, response: Pdu | None, error: BaseException | None) -> None:
                done.append(SubmitResult(request, response, error, tag))
                if len(done) == 1:
                    wake.set()

            return cb

        conn = driver.conn
        start_request = driver.start_request
        if refill is None:
            refill = max(1, conn.config.window // 12)
        # The clock, read once per run of submits between awaits (not once per submit):
        # response deadlines need no finer time than that.
        now = 0.0

        def try_send(pdu: Pdu, callback: Callback) -> bool:
            """Start ``pdu`` unless the window is full (False: wait for a slot, try again).

            A plain function, not a coroutine: most submits find a free slot, and creating
            and awaiting a coroutine per message costs more than the rest of this.
            """
            nonlocal pending
            if conn.window_free <= 0:
                return False
            try:
                start_request(pdu, callback, now=now)
            except WindowFull:
                return False
            except SessionClosedError as exc:
                callback(pdu, None, exc)
                return True
            pending += 1
            return True

        async def feed() -> None:
            nonlocal finished_feeding, now
            count = 0
            now = anyio.current_time()
            try:
                if isinstance(pdus, AsyncIterable):
                    async for pdu in pdus:
                        now = anyio.current_time()  # the iterator may have awaited
                        callback = make_callback(next(tag_iter)) if tag_iter is not None else settle
                        while not try_send(pdu, callback):
                            await driver.wait_window(refill)
                            now = anyio.current_time()
                        count += 1
                        if count % yield_every == 0:
                            await anyio.lowlevel.checkpoint()
                else:
                    for pdu in pdus:
                        callback = make_callback(next(tag_iter)) if tag_iter is not None else settle
                        while not try_send(pdu, callback):
                            await driver.wait_window(refill)
                            now = anyio.current_time()
                        count += 1
                        if count % yield_every == 0:
                            await anyio.lowlevel.checkpoint()
                            now = anyio.current_time()
            except BaseException as exc:
                feed_error.append(exc)
                raise
            finally:
                finished_feeding = True
                wake.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(feed)
            delivered = 0
            while True:
                if not done:
                    if finished_feeding and delivered >= pending:
                        break
                    await wake.wait()
                    wake = anyio.Event()
                    continue
                batch = done[:]
                done.clear()
                delivered += len(batch)
                yield batch
        if feed_error:
            raise feed_error[0]

    async def unbind(self, timeout: float = 5.0) -> None:
        """Unbind (waiting up to ``timeout`` for unbind_resp) and close the session."""
        driver = self._driver
        if driver.closed:
            return
        with anyio.move_on_after(timeout):
            with suppress(SmppError, anyio.ClosedResourceError):
                await driver.request(Unbind(), check=False, timeout=timeout)
        driver.close("unbound")


async def _connect(
    host: str, port: int, tls: ssl.SSLContext | bool | None, connect_timeout: float
) -> anyio.abc.ByteStream:
    with anyio.fail_after(connect_timeout):
        if tls:
            context = tls if isinstance(tls, ssl.SSLContext) else ssl.create_default_context()
            return await anyio.connect_tcp(
                host, port, tls=True, ssl_context=context, tls_standard_compatible=False
            )
        return await anyio.connect_tcp(host, port)


@asynccontextmanager
async def open_session(
    host: str,
    port: int,
    system_id: str,
    password: str,
    bind: BindType = "trx",
    *,
    tls: ssl.SSLContext | bool | None = None,
    window: int = 10,
    system_type: str = "",
    interface_version: int = INTERFACE_VERSION_34,
    address_range: str = "",
    response_timeout: float = 30.0,
    enquire_link_interval: float | None = 30.0,
    enquire_link_timeout: float = 10.0,
    bind_timeout: float = 10.0,
    connect_timeout: float = 10.0,
    profile: EncodingProfile = DEFAULT_PROFILE,
    on_delivery: DeliveryHandler | None = None,
    on_request: RequestHandler | None = None,
    on_request_batch: BatchHandler | None = None,
    stream: anyio.abc.ByteStream | None = None,
    close_drain_timeout: float = 30.0,
) -> AsyncIterator[Client]:
    """Connect (TCP, or TLS with certificate verification by default), bind, and yield a
    ``Client``; on exit, unbind and close.

    Incoming deliver_sm/data_sm go to ``on_delivery`` as parsed ``Delivery`` objects (receipt
    or inbound text); its return value (None = OK, or a command_status) becomes the response,
    sent only after it returns. ``on_request`` takes raw PDUs instead, for anything else;
    ``on_request_batch`` takes every request of one receive at once (and replaces both).
    ``stream`` replaces the TCP connection (tests use an in-memory stream pair).

    Every request read off the connection reaches the handlers, even one that arrives just
    before the SMSC drops the connection: leaving the block (or losing the session) waits for
    them, up to ``close_drain_timeout`` seconds (see ``Driver``); their answers are dropped if
    the connection is gone.
    """
    try:
        bind_cls = _BIND_TYPES[bind]
    except KeyError:
        raise ValueError(f"bind must be one of tx, rx, trx; got {bind!r}") from None
    config = SessionConfig(
        window=window,
        response_timeout=response_timeout,
        enquire_link_interval=enquire_link_interval,
        enquire_link_timeout=enquire_link_timeout,
    )
    if stream is None:
        stream = await _connect(host, port, tls, connect_timeout)
    conn = Connection(Role.ESME, config, now=anyio.current_time())

    async def handle(pdu: Pdu) -> Pdu | int | None:
        if on_delivery is not None and isinstance(pdu, DeliverSm | DataSm):
            return await on_delivery(parse_delivery(pdu, profile))
        if on_request is not None:
            return await on_request(pdu)
        return None

    driver = Driver(
        stream,
        conn,
        on_request=handle,
        batch_handler=on_request_batch,
        close_drain_timeout=close_drain_timeout,
    )
    bind_pdu = bind_cls(
        system_id=system_id,
        password=password,
        system_type=system_type,
        interface_version=interface_version,
        address_range=address_range,
    )
    # Errors from the bind or from the caller's block are re-raised after the driver's task
    # group has exited, so callers see them as they are, not wrapped in an exception group.
    saved = BodyError()
    async with anyio.create_task_group() as tg:
        await tg.start(driver.run)
        with saved:
            try:
                resp = await driver.request(bind_pdu, timeout=bind_timeout, check=False)
                if resp.command_status != 0:
                    driver.close("bind refused")
                    raise BindError(
                        resp.command_status, f"{bind_cls.command_name} as {system_id!r}"
                    )
                client = Client(driver, profile=profile, system_id=getattr(resp, "system_id", ""))
                try:
                    yield client
                finally:
                    with anyio.CancelScope(shield=True):
                        await client.unbind()
            except BaseException:
                driver.close("session ended by an error")
                raise
        # The session is closed on every path here. The task group waits for ``driver.run``
        # to hand the requests already read to the handlers (bounded by the driver's
        # ``close_drain_timeout``); cancelling it would lose them. A cancellation from outside
        # still reaches it at once.
    saved.reraise()


__all__ = [
    "BindType",
    "Client",
    "CommandStatus",
    "SubmitResult",
    "open_session",
]
