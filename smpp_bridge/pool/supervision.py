"""Supervision of binds: one task per bind keeps it up for as long as the pool runs
(connecting, binding, reconnecting with backoff, stopping a bind whose credentials are
refused), moves it between its ``BindState`` s, and unbinds it when the pool drains.

``BindSupervision`` is a part of ``BindPool`` (its base class), on the pool's own attributes,
declared here.
"""

from __future__ import annotations

import functools
import random
from typing import TYPE_CHECKING, Final

import anyio
import structlog

from ..client import open_session
from ..codec.pdus import Pdu
from ..errors import BindError, ResponseTimeoutError, SessionClosedError, SmppError
from .backoff import Backoff
from .classify import BindFailureClass, classify_bind_failure
from .routing import Account, Bind, BindState

log = structlog.get_logger("smpp_bridge.pool")

# What a lost or silent connection raises on our side: retry the bind with normal backoff.
_NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    SessionClosedError,
    ResponseTimeoutError,
    anyio.EndOfStream,
    anyio.BrokenResourceError,
)
# Closing a bind at the end of a drain: the unbind waits this long for its unbind_resp, and
# every bind's close together at most ``CLOSE_TIMEOUT`` before the rest is cancelled.
_UNBIND_TIMEOUT: Final = 1.0
CLOSE_TIMEOUT: Final = 3.0


class BindSupervision:
    """The supervisor tasks of the pool's binds (see the module docstring)."""

    # The pool's, set in ``BindPool.__init__``.
    accounts: dict[str, Account]
    stats: dict[str, int]
    _draining: bool
    _reconnect: Backoff
    _rng: random.Random
    _supervisors: int
    _supervisors_done: anyio.Event

    if TYPE_CHECKING:

        async def _on_requests(
            self, bind: Bind, pdus: list[Pdu]
        ) -> list[Pdu | int | None]: ...  # (the receipt path's)

    async def _close_binds(self) -> None:
        """Unbind every bind that is up and wait (``CLOSE_TIMEOUT`` at most) for every
        supervisor to end (draining: none reconnects)."""
        for account in self.accounts.values():
            for bind in account.binds:
                if bind.up_scope is not None:
                    bind.up_scope.cancel()  # its supervisor unbinds
                elif bind.scope is not None and bind.state is not BindState.UP:
                    bind.scope.cancel()
        if self._supervisors:
            with anyio.move_on_after(CLOSE_TIMEOUT):
                await self._supervisors_done.wait()

    async def _supervise(self, bind: Bind) -> None:
        """Keep one bind up for as long as the pool runs (until it drains)."""
        self._supervisors += 1
        try:
            with anyio.CancelScope() as scope:
                bind.scope = scope
                await self._keep_up(bind)
        finally:
            bind.scope = None
            self._supervisors -= 1
            if not self._supervisors:
                self._supervisors_done.set()
            if self._draining and bind.state is not BindState.STOPPED:
                bind.move_to(BindState.CLOSED)
                bind.account.poke()

    async def _keep_up(self, bind: Bind) -> None:
        account = bind.account
        cfg = account.config
        attempt = 0
        while not self._draining:
            bind.move_to(BindState.CONNECTING)
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
                    if self._draining:
                        # Bound just as the drain began: not for sending.
                        await client.unbind(_UNBIND_TIMEOUT)
                        return
                    bind.attach(client)
                    bind.move_to(BindState.UP)
                    attempt = 0
                    log.info("bind up", bind=bind.name, smsc=client.smsc_system_id)
                    account.poke()
                    with anyio.CancelScope() as up:
                        bind.up_scope = up  # a drain cancels it to unbind
                        await client.driver.wait_closed()
                    bind.up_scope = None
                    if not client.driver.closed:
                        # The drain is over: out of the routing, then unbind (briefly).
                        bind.move_to(BindState.CLOSED)
                        account.poke()
                        await client.unbind(_UNBIND_TIMEOUT)
                        log.info("bind closed", bind=bind.name)
                        return
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
                # Out of the routing first, then without a session.
                bind.up_scope = None
                if bind.state is BindState.UP:
                    bind.move_to(BindState.CLOSED if self._draining else BindState.BACKOFF)
                bind.attach(None)
                bind.freed.set()
                account.poke()
            if failure is BindFailureClass.AUTH:
                bind.move_to(BindState.STOPPED)
                log.error(
                    "bind refused: check system_id and password; not retrying",
                    bind=bind.name,
                    reason=reason,
                )
                account.poke()
                return
            if self._draining:
                return  # a bind down stays down
            bind.move_to(BindState.BACKOFF)
            self.stats["reconnects"] += 1
            delay = self._reconnect.delay(attempt, self._rng, long=failure is BindFailureClass.BUSY)
            attempt += 1
            log.info("reconnecting", bind=bind.name, reason=reason, delay=round(delay, 3))
            await anyio.sleep(delay)


__all__ = ["CLOSE_TIMEOUT", "BindSupervision"]
