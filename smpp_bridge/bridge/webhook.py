"""Webhook sink: events waiting in a durable work queue are POSTed, one per request, to the
user's endpoint, signed, and acknowledged only after a 2xx.

The queue is the outbox: an event stays leased while its delivery is retried (exponential
backoff with full jitter), the leases of everything in flight are renewed periodically, and
on shutdown whatever was not delivered is released for the next run. Nothing is dropped
unless ``max_attempts`` is set; an event that exhausts it goes to the queue's dead letters.

Receivers check authenticity with ``verify_signature``. Each signed POST carries:

- ``X-Smpp-Bridge-Timestamp``: the send time, whole seconds since the Unix epoch, in ASCII
  decimal digits (a retry carries a new timestamp and a new signature);
- ``Idempotency-Key``: the queue entry id, the same on every retry and redelivery of one event,
  so receivers can drop duplicates. It is 1 to 200 visible ASCII characters (``!`` to ``~``)
  other than ``.``; every queue backend's ids are digits and ``-``;
- ``X-Smpp-Bridge-Signature``: ``sha256=`` and the lowercase hex HMAC-SHA256, under the shared
  secret (its UTF-8 bytes), of the bytes::

      <timestamp> "." <idempotency key> "." <raw body>

  for example ``b"1700000000.42." + body``. Neither the timestamp nor the key can contain a
  ``.``, so the three parts cannot be shifted into one another.

``verify_signature`` refuses (returns False, never raises) a bad or missing signature, a key
or body other than the signed ones, a timestamp that is not plain digits, more than
``max_age`` seconds old (default 300) or more than ``max_skew`` seconds ahead (default 60). A
captured request therefore replays only within the window, and then with its key, which the
receiver has already seen.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import math
import random
import re
import ssl
import time
from collections.abc import Callable
from typing import Final

import anyio
import anyio.abc
import httpx
import msgspec
import structlog

from ..errors import QueueClosedError
from ..pool import Backoff
from ..storage.queues.base import Leased, WorkQueue
from .metrics import Metrics

__all__ = [
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookConfig",
    "WebhookForwarder",
    "sign",
    "signable_key",
    "verify_signature",
]

log = structlog.get_logger("smpp_bridge.bridge.webhook")

SIGNATURE_HEADER: Final = "X-Smpp-Bridge-Signature"
TIMESTAMP_HEADER: Final = "X-Smpp-Bridge-Timestamp"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"

# verify_signature's defaults: how old a timestamp may be, and how far ahead of the clock.
DEFAULT_MAX_AGE: Final = 300.0
DEFAULT_MAX_SKEW: Final = 60.0
# A timestamp longer than this is refused before it is turned into a number.
_MAX_TIMESTAMP_DIGITS: Final = 15
# Idempotency keys the signature can cover: visible ASCII but ".", at most 200 characters.
_KEY = re.compile(r"[!-\-/-~]{1,200}")
_DIGEST = re.compile(r"[0-9a-fA-F]{64}")

# Lease renewal when the queue does not tell its visibility timeout.
DEFAULT_RENEW_EVERY: Final = 10.0
# How long shutdown may spend acknowledging and releasing what it holds.
SHUTDOWN_GRACE: Final = 10.0
# POSTs in flight (and connections) at most.
MAX_BATCH: Final = 1000
# How long one consume call waits for entries before the loop looks around again.
CONSUME_WAIT: Final = 1.0


class WebhookConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where and how to POST events. ``batch``: POSTs in flight at once (and entries leased).
    ``max_attempts``: failed POSTs of one event (within one lease) before it is
    dead-lettered; None retries forever."""

    url: str
    secret: str | None = None
    timeout: float = 10.0
    batch: int = 50
    backoff_base: float = 0.5
    backoff_cap: float = 60.0
    verify_tls: bool = True
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        try:
            url = httpx.URL(self.url)
        except httpx.InvalidURL as exc:
            raise ValueError(f"url: invalid URL ({exc})") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("url: must be an absolute http:// or https:// URL")
        if self.secret is not None and not self.secret:
            raise ValueError("secret: must not be empty (leave it out to send unsigned)")
        for name, value in (
            ("timeout", self.timeout),
            ("backoff_base", self.backoff_base),
            ("backoff_cap", self.backoff_cap),
        ):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}: must be a positive number, got {value!r}")
        if self.backoff_cap < self.backoff_base:
            raise ValueError(
                f"backoff_cap: must be at least backoff_base ({self.backoff_base}), "
                f"got {self.backoff_cap}"
            )
        if not 1 <= self.batch <= MAX_BATCH:
            raise ValueError(f"batch: must be between 1 and {MAX_BATCH}, got {self.batch}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"max_attempts: must be at least 1 or absent, got {self.max_attempts}")

    def __repr__(self) -> str:
        # Never show the secret (or credentials in the URL) in logs and tracebacks.
        return (
            f"WebhookConfig(url={redact_url(self.url)!r}, "
            f"secret={'***' if self.secret else None}, timeout={self.timeout}, "
            f"batch={self.batch}, backoff_base={self.backoff_base}, "
            f"backoff_cap={self.backoff_cap}, verify_tls={self.verify_tls}, "
            f"max_attempts={self.max_attempts})"
        )


def redact_url(url: str) -> str:
    """The URL without user info or query string (either may carry a token)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "<invalid url>"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"


# --------------------------------------------------------------------------- signatures


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def signable_key(key: str) -> bool:
    """Whether ``key`` can be an ``Idempotency-Key`` under the signature (see the module)."""
    return _KEY.fullmatch(key) is not None


def sign(secret: str | bytes, timestamp: str, idempotency_key: str, body: bytes) -> str:
    """The ``X-Smpp-Bridge-Signature`` value: ``sha256=<lowercase hex HMAC-SHA256(secret,
    timestamp + "." + idempotency_key + "." + body)>``.

    ValueError when ``timestamp`` is not ASCII digits or ``idempotency_key`` is not signable
    (:func:`signable_key`).
    """
    if not (timestamp.isascii() and timestamp.isdigit()):
        raise ValueError(f"timestamp: expected ASCII decimal digits, got {timestamp!r}")
    if not signable_key(idempotency_key):
        raise ValueError(
            "idempotency key: expected 1 to 200 visible ASCII characters other than '.', "
            f"got {idempotency_key!r}"
        )
    message = b".".join((timestamp.encode("ascii"), idempotency_key.encode("ascii"), body))
    return "sha256=" + hmac.new(_key(secret), message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str | bytes,
    timestamp: str,
    idempotency_key: str,
    body: bytes,
    header: str,
    *,
    max_age: float | None = DEFAULT_MAX_AGE,
    max_skew: float = DEFAULT_MAX_SKEW,
    now: float | None = None,
) -> bool:
    """True when ``header`` (the ``X-Smpp-Bridge-Signature`` value) signs ``timestamp`` (the
    ``X-Smpp-Bridge-Timestamp`` value), ``idempotency_key`` (the ``Idempotency-Key`` value) and
    ``body`` (the raw request body) with ``secret``, and the timestamp is recent.

    Recent: at most ``max_age`` seconds before ``now`` (default: the current time) and at most
    ``max_skew`` seconds after it. ``max_age=None`` drops the age bound, and with it the bound
    on replays: only for a receiver that remembers every idempotency key it has seen.

    Never raises for any header values (False instead); ValueError only for a negative or
    non-finite ``max_age`` or ``max_skew``.
    """
    for name, bound in (("max_age", max_age), ("max_skew", max_skew)):
        if bound is not None and not (math.isfinite(bound) and bound >= 0):
            raise ValueError(f"{name}: must be a finite number >= 0, got {bound!r}")
    if not (
        0 < len(timestamp) <= _MAX_TIMESTAMP_DIGITS and timestamp.isascii() and timestamp.isdigit()
    ):
        return False
    current = time.time() if now is None else now
    age = current - int(timestamp)
    if age < -max_skew or (max_age is not None and age > max_age):
        return False
    if not signable_key(idempotency_key):
        return False
    scheme, _, digest = header.strip().partition("=")
    if scheme != "sha256" or _DIGEST.fullmatch(digest) is None:
        return False
    expected = sign(secret, timestamp, idempotency_key, body)
    return hmac.compare_digest(expected.encode("ascii"), f"sha256={digest.lower()}".encode("ascii"))


# --------------------------------------------------------------------------- the forwarder


def _retry_after(value: str | None, now: float) -> float:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); 0 when
    absent or unreadable."""
    if not value:
        return 0.0
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    if when.tzinfo is None:
        return 0.0
    return max(0.0, when.timestamp() - now)


def _describe(exc: BaseException) -> str:
    """``Type: message`` of a transport error, with the first message found down its cause
    chain (httpx often wraps an ``ssl.SSLCertVerificationError`` in a bare ``ConnectError``)."""
    text = type(exc).__name__
    seen: set[int] = set()
    inner: BaseException | None = exc
    while inner is not None and id(inner) not in seen:
        seen.add(id(inner))
        message = str(inner)
        if message:
            return (
                f"{text}: {message}"
                if inner is exc
                else f"{text}: {message} ({type(inner).__name__})"
            )
        inner = inner.__cause__ or inner.__context__
    return text


class WebhookForwarder:
    """Drains ``queue`` to the webhook: up to ``config.batch`` POSTs in flight over one
    keep-alive ``httpx.AsyncClient``; 2xx acknowledges, anything else retries with backoff
    while the entry stays leased. Acks, dead letters and lease renewals go to the queue in
    batches.

    Optional: ``ssl_context`` (trust a private CA; overrides ``verify_tls``), ``renew_every``
    (seconds between lease renewals; default a third of the queue's ``visibility_timeout``
    when it has one, else 10 s), ``rng`` and ``clock`` (wall time for the timestamp header)
    for tests.
    """

    def __init__(
        self,
        config: WebhookConfig,
        queue: WorkQueue,
        *,
        metrics: Metrics | None = None,
        ssl_context: ssl.SSLContext | None = None,
        renew_every: float | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if renew_every is None:
            visibility = getattr(queue, "visibility_timeout", None)
            renew_every = (
                visibility / 3
                if isinstance(visibility, int | float) and visibility > 0
                else DEFAULT_RENEW_EVERY
            )
        if not (math.isfinite(renew_every) and renew_every > 0):
            raise ValueError(f"renew_every must be a positive number, got {renew_every!r}")
        self.config = config
        self.queue = queue
        self.renew_every = renew_every
        self._verify: ssl.SSLContext | bool = (
            ssl_context if ssl_context is not None else config.verify_tls
        )
        self._backoff = Backoff(base=config.backoff_base, cap=config.backoff_cap)
        self._rng = rng or random.Random()
        self._clock = clock
        self._target = redact_url(config.url)
        # Entries leased and not yet settled (acked, dead-lettered or released), by id.
        self._held: dict[str, Leased] = {}
        self._to_ack: list[str] = []
        self._to_dead: list[tuple[str, str]] = []
        # Held entries whose delivery is over (ack or dead letter pending or being sent):
        # neither renewed nor released.
        self._done: set[str] = set()
        self._settle_wakeup = anyio.Event()
        self._slots = anyio.Semaphore(config.batch)
        family = (metrics or Metrics()).webhook_deliveries_total
        self._delivered = family.labels("delivered")
        self._failed = family.labels("failed")
        self._dead = family.labels("dead_lettered")
        #: Events delivered (2xx) since start.
        self.delivered = 0
        #: Failed POSTs since start.
        self.failures = 0

    @property
    def in_flight(self) -> int:
        """Entries leased by this forwarder and not yet settled."""
        return len(self._held)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Forward until cancelled; then acknowledge what was delivered and release the rest
        (delay 0) so the next run, or another daemon, delivers it."""
        headers = {"content-type": "application/json", "user-agent": "smpp-bridge"}
        limits = httpx.Limits(
            max_connections=self.config.batch, max_keepalive_connections=self.config.batch
        )
        try:
            async with (
                httpx.AsyncClient(
                    headers=headers,
                    timeout=self.config.timeout,
                    verify=self._verify,
                    limits=limits,
                    follow_redirects=False,
                ) as client,
                anyio.create_task_group() as tg,
            ):
                tg.start_soon(self._settle_loop)
                tg.start_soon(self._renew_loop)
                log.info("webhook_started", url=self._target, queue=self.queue.name)
                task_status.started()
                await self._consume_loop(client, tg)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_GRACE):
                await self._shutdown()

    async def _shutdown(self) -> None:
        try:
            await self._flush()
        except Exception as exc:
            log.warning("webhook_settle_failed", error=str(exc))
        # Whatever is still held was not delivered: hand it back at once. (An ack that could
        # not be sent leaves its entry leased: it comes back when the lease runs out.)
        leftover = [i for i in self._held if i not in self._done]
        if leftover:
            try:
                await self.queue.release(leftover, delay=0.0)
            except Exception as exc:
                # The leases run out on their own and the entries come back then.
                log.warning("webhook_release_failed", count=len(leftover), error=str(exc))
            else:
                log.info("webhook_released", count=len(leftover))
        self._held.clear()
        self._done.clear()

    # ------------------------------------------------------------------ consuming

    async def _consume_loop(self, client: httpx.AsyncClient, tg: anyio.abc.TaskGroup) -> None:
        slots = self._slots
        failures = 0
        while True:
            await slots.acquire()
            count = 1
            while count < self.config.batch:
                try:
                    slots.acquire_nowait()
                except anyio.WouldBlock:
                    break
                count += 1
            try:
                leased = await self.queue.consume(count, wait=CONSUME_WAIT)
            except QueueClosedError:
                raise
            except Exception as exc:
                for _ in range(count):
                    slots.release()
                delay = self._backoff.delay(failures, self._rng)
                failures += 1
                log.warning("webhook_consume_failed", error=str(exc), retry_in=round(delay, 3))
                await anyio.sleep(delay)
                continue
            failures = 0
            started = 0
            for entry in leased:
                if entry.id in self._held:
                    # Our lease lapsed and the queue handed the entry back to us while its
                    # delivery is still being retried: the running task keeps it.
                    continue
                self._held[entry.id] = entry
                tg.start_soon(self._deliver, client, entry)
                started += 1
            for _ in range(count - started):
                slots.release()

    async def _deliver(self, client: httpx.AsyncClient, entry: Leased) -> None:
        """POST one event until it is accepted (or ``max_attempts`` failures)."""
        max_attempts = self.config.max_attempts
        failures = 0
        try:
            if self.config.secret is not None and not signable_key(entry.id):
                # Not a queue this package ships (their ids are digits and "-"): the
                # signature could not cover this key, so the event cannot be sent signed.
                reason = f"webhook: entry id {entry.id!r} cannot be signed as an idempotency key"
                self._dead.inc()
                log.warning("webhook_dead_letter", entry=entry.id, reason=reason)
                self._settle_dead(entry.id, reason)
                return
            while True:
                failed = await self._post(client, entry)
                if failed is None:
                    self.delivered += 1
                    self._delivered.inc()
                    self._settle_ack(entry.id)
                    return
                error, asked = failed
                failures += 1
                self.failures += 1
                self._failed.inc()
                if max_attempts is not None and failures >= max_attempts:
                    reason = f"webhook: {failures} attempts failed, last: {error}"
                    self._dead.inc()
                    log.warning("webhook_dead_letter", entry=entry.id, reason=reason)
                    self._settle_dead(entry.id, reason)
                    return
                # A 429/503 Retry-After is honoured, up to the backoff cap.
                delay = max(
                    self._backoff.delay(failures - 1, self._rng),
                    min(asked, self.config.backoff_cap),
                )
                # The first failure and then every tenth: a dead endpoint must not flood logs.
                level = log.warning if failures == 1 or failures % 10 == 0 else log.debug
                level(
                    "webhook_post_failed",
                    url=self._target,
                    entry=entry.id,
                    failures=failures,
                    error=error,
                    retry_in=round(delay, 3),
                )
                await anyio.sleep(delay)
        finally:
            self._slots.release()

    async def _post(self, client: httpx.AsyncClient, entry: Leased) -> tuple[str, float] | None:
        """One POST: None when the endpoint accepted it, else what went wrong and how long
        the endpoint asked us to wait (its ``Retry-After``; 0 when it did not say)."""
        body = entry.data
        timestamp = str(int(self._clock()))
        headers = {TIMESTAMP_HEADER: timestamp, IDEMPOTENCY_HEADER: entry.id}
        secret = self.config.secret
        if secret is not None:
            headers[SIGNATURE_HEADER] = sign(secret, timestamp, entry.id, body)
        try:
            response = await client.post(self.config.url, content=body, headers=headers)
        except (httpx.HTTPError, OSError) as exc:
            return _describe(exc), 0.0
        status = response.status_code
        if 200 <= status < 300:
            return None
        wait = _retry_after(response.headers.get("retry-after"), self._clock())
        return f"HTTP {status}", wait

    # ------------------------------------------------------------------ settling

    def _settle_ack(self, entry_id: str) -> None:
        self._done.add(entry_id)
        self._to_ack.append(entry_id)
        self._settle_wakeup.set()

    def _settle_dead(self, entry_id: str, reason: str) -> None:
        self._done.add(entry_id)
        self._to_dead.append((entry_id, reason))
        self._settle_wakeup.set()

    async def _flush(self) -> None:
        """Acknowledge and dead-letter everything pending: one queue call each. On failure
        the ids stay pending (and held) for the next flush."""
        acks, self._to_ack = self._to_ack, []
        dead, self._to_dead = self._to_dead, []
        try:
            if acks:
                await self.queue.ack(acks)
        except BaseException:
            self._to_ack[:0] = acks
            self._to_dead[:0] = dead
            raise
        for entry_id in acks:
            self._held.pop(entry_id, None)
            self._done.discard(entry_id)
        try:
            if dead:
                await self.queue.dead_letter(dead)
        except BaseException:
            self._to_dead[:0] = dead
            raise
        for entry_id, _ in dead:
            self._held.pop(entry_id, None)
            self._done.discard(entry_id)

    async def _settle_loop(self) -> None:
        failures = 0
        while True:
            await self._settle_wakeup.wait()
            self._settle_wakeup = anyio.Event()
            try:
                await self._flush()
            except QueueClosedError:
                raise
            except Exception as exc:
                delay = self._backoff.delay(failures, self._rng)
                failures += 1
                log.warning("webhook_settle_failed", error=str(exc), retry_in=round(delay, 3))
                self._settle_wakeup.set()
                await anyio.sleep(delay)
            else:
                failures = 0

    async def _renew_loop(self) -> None:
        while True:
            await anyio.sleep(self.renew_every)
            ids = [i for i in self._held if i not in self._done]
            if not ids:
                continue
            try:
                await self.queue.extend(ids)
            except QueueClosedError:
                raise
            except Exception as exc:
                log.warning("webhook_extend_failed", count=len(ids), error=str(exc))
