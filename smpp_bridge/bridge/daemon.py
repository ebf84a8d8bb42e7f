"""Opening what a configuration names (queues, stores, sinks, the HTTP endpoint) and running
the daemon over it, with signals: the first SIGTERM/SIGINT drains, a second exits at once.

The drain has a hard deadline: ``drain_timeout`` + ``SHUTDOWN_GRACE`` after the first signal
the process ends whatever is still running (the CLI, ``hard_exit``: from a watchdog thread,
so that not even a blocked event loop holds it; exit status ``EXIT_SHUTDOWN_DEADLINE``).
Nothing is lost by it: entries not acknowledged are redelivered when their leases run out,
and what was not settled is recognised by the message store."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import anyio
import anyio.abc
import structlog

from ..pool import CorrelationStore, MemoryCorrelationStore
from ..storage.correlation_sqlite import SqliteCorrelationStore
from ..storage.messages_redis import RedisMessageStore
from ..storage.messages_sqlite import SqliteMessageStore
from ..storage.queues import WorkQueue, open_queue
from .app import Bridge
from .config import BridgeConfig
from .metrics import CONTENT_TYPE, Metrics
from .store import MemoryMessageStore, MessageStore

log = structlog.get_logger("smpp_bridge.bridge")

EXIT_SECOND_SIGNAL = 130
EXIT_SHUTDOWN_DEADLINE = 124  # as timeout(1): the drain overran drain_timeout + SHUTDOWN_GRACE
# Seconds past ``drain_timeout`` the whole shutdown may take (drain, last group commit, hand
# back, closing stores and the webhook forwarder); the brief is drain_timeout + 5 s.
SHUTDOWN_GRACE = 4.5


@dataclass
class Backends:
    """Everything a daemon (or a CLI command that looks inside) talks to."""

    requests: WorkQueue
    events: WorkQueue
    store: MessageStore
    correlation: CorrelationStore
    outbox: WorkQueue | None = None


@asynccontextmanager
async def open_backends(
    config: BridgeConfig,
    *,
    consumer: str | None = None,
    correlation: bool = True,
) -> AsyncIterator[Backends]:
    """Open the queues and stores ``config`` names, for the duration of the block."""
    q = config.queue
    s = config.store
    name = consumer or config.daemon.consumer
    common = {
        "path": q.path,
        "url": q.url,
        "prefix": q.prefix,
        "consumer": name,
        "visibility_timeout": q.visibility_timeout,
        "max_deliveries": q.max_deliveries,
    }
    async with AsyncExitStack() as stack:
        requests = await stack.enter_async_context(
            await open_queue(q.backend, q.requests, **common)  # type: ignore[arg-type]
        )
        events = await stack.enter_async_context(
            await open_queue(
                q.backend,
                q.events,
                keep_acked=True,
                retain=q.events_retain,
                **common,  # type: ignore[arg-type]
            )
        )
        outbox: WorkQueue | None = None
        if config.webhook is not None:
            # Webhook events wait as long as the endpoint is down, across restarts: a release
            # at every restart must not count them into the dead letters.
            outbox_opts = {**common, "max_deliveries": 1_000_000_000}
            outbox = await stack.enter_async_context(
                await open_queue(q.backend, f"{q.events}-webhook", **outbox_opts)  # type: ignore[arg-type]
            )
        store: MessageStore
        corr: CorrelationStore
        dedup = config.daemon.dedup_window
        if s.backend == "redis":
            from ..storage.correlation_redis import RedisCorrelationStore

            assert s.url is not None
            store = await stack.enter_async_context(
                RedisMessageStore(s.url, prefix=f"{s.prefix}:msg", dedup_window=dedup)
            )
            if correlation:
                corr = await stack.enter_async_context(
                    RedisCorrelationStore.connect(
                        s.url, prefix=f"{s.prefix}:corr", ttl=s.correlation_ttl
                    )
                )
            else:
                corr = MemoryCorrelationStore(ttl=s.correlation_ttl)
        elif s.backend == "sqlite":
            assert s.path is not None
            store = SqliteMessageStore(s.path, dedup_window=dedup)
            stack.push_async_callback(store.aclose)
            corr = SqliteCorrelationStore(s.path, ttl=s.correlation_ttl, synchronous="NORMAL")
            stack.push_async_callback(corr.aclose)
        else:
            # Memory: correlations, status and dedup live as long as the process.
            store = MemoryMessageStore(dedup_window=dedup)
            corr = MemoryCorrelationStore(ttl=s.correlation_ttl)
        yield Backends(requests, events, store, corr, outbox)


async def run_daemon(
    config: BridgeConfig,
    *,
    signals: bool = True,
    hard_exit: bool = False,
    task_status: anyio.abc.TaskStatus[Bridge] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run until a signal (or cancellation): consume, submit, publish; drain on the way out.

    ``hard_exit``: a second signal, or the shutdown deadline, ends the process at once (the
    CLI); otherwise they cancel.
    """
    metrics = Metrics()
    # Armed by the first signal, disarmed only once the backends are closed too.
    watchdog = _Watchdog(config.daemon.drain_timeout + SHUTDOWN_GRACE, hard_exit)
    try:
        async with open_backends(config) as backends:
            bridge = Bridge(
                config,
                requests=backends.requests,
                events=backends.events,
                store=backends.store,
                correlation=backends.correlation,
                outbox=backends.outbox,
                metrics=metrics,
            )
            await _run(
                config,
                bridge,
                backends=backends,
                metrics=metrics,
                watchdog=watchdog,
                signals=signals,
                task_status=task_status,
            )
    finally:
        watchdog.cancel()


class _Watchdog:
    """The shutdown deadline, armed by the first signal. With ``hard_exit`` a thread ends the
    process at the deadline (a stuck event loop cannot hold it); otherwise ``scope`` (the
    daemon's task group) is cancelled then."""

    def __init__(self, deadline: float, hard_exit: bool) -> None:
        self.deadline = deadline
        self.hard_exit = hard_exit
        self._timer: threading.Timer | None = None

    def arm(self, tg: anyio.abc.TaskGroup) -> None:
        if self.hard_exit:
            if self._timer is None:
                self._timer = threading.Timer(self.deadline, self._exit)
                self._timer.daemon = True
                self._timer.start()
        else:
            tg.start_soon(self._cancel_later, tg.cancel_scope)

    def _exit(self) -> None:
        log.error("shutdown deadline passed: exiting now", deadline=self.deadline)
        sys.stderr.flush()
        os._exit(EXIT_SHUTDOWN_DEADLINE)

    async def _cancel_later(self, scope: anyio.CancelScope) -> None:
        await anyio.sleep(self.deadline)
        log.error("shutdown deadline passed: cancelling", deadline=self.deadline)
        scope.cancel()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


async def _run(
    config: BridgeConfig,
    bridge: Bridge,
    *,
    backends: Backends,
    metrics: Metrics,
    watchdog: _Watchdog,
    signals: bool,
    task_status: anyio.abc.TaskStatus[Bridge],
) -> None:
    async with anyio.create_task_group() as tg:
        if signals:
            tg.start_soon(_signals, bridge, tg, watchdog)
        if config.metrics.listen:
            await tg.start(_serve_http, config, bridge, metrics)
        if config.webhook is not None and backends.outbox is not None:
            from .webhook import WebhookForwarder

            forwarder = WebhookForwarder(config.webhook, backends.outbox, metrics=metrics)
            tg.start_soon(forwarder.run)
        await tg.start(bridge.run)
        log.info(
            "daemon started",
            name=config.daemon.name,
            queue=config.queue.backend,
            accounts=[a.name for a in config.accounts],
        )
        task_status.started(bridge)
        await bridge.stopped()
        tg.cancel_scope.cancel()


async def _signals(bridge: Bridge, tg: anyio.abc.TaskGroup, watchdog: _Watchdog) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as received:
        count = 0
        async for signum in received:
            count += 1
            if count == 1:
                log.info(
                    "signal: draining",
                    signal=signal.Signals(signum).name,
                    deadline=watchdog.deadline,
                )
                watchdog.arm(tg)
                bridge.stop()
            else:
                # Leases not acknowledged run out and the work is redelivered: nothing is lost.
                log.warning("second signal: exiting now", signal=signal.Signals(signum).name)
                if watchdog.hard_exit:
                    os._exit(EXIT_SECOND_SIGNAL)
                tg.cancel_scope.cancel()
                return


async def _serve_http(
    config: BridgeConfig,
    bridge: Bridge,
    metrics: Metrics,
    *,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    from .http import serve_http

    address = config.metrics.address
    assert address is not None
    host, port = address

    async def get_metrics() -> tuple[int, str, bytes]:
        return 200, CONTENT_TYPE, metrics.render()

    async def healthz() -> tuple[int, str, bytes]:
        return 200, "application/json", b'{"status":"ok"}'

    async def readyz() -> tuple[int, str, bytes]:
        ready, why = bridge.ready
        if ready:
            try:
                await bridge.requests.depth()
            except Exception as exc:
                ready, why = False, f"queue unreachable: {exc}"
        body = json.dumps({"ready": ready, "reason": why or None}).encode()
        return (200 if ready else 503), "application/json", body

    routes = {"/metrics": get_metrics, "/healthz": healthz, "/readyz": readyz}
    await serve_http(host, port, routes, task_status=task_status)


__all__ = ["Backends", "open_backends", "run_daemon"]
