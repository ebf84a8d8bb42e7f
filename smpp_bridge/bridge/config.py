"""The daemon's configuration: one TOML file, read into frozen, typed ``msgspec`` structs.

Every section has defaults, so a file with a single ``[[accounts]]`` table is a working
daemon (SQLite queue and store next to the file, metrics on 127.0.0.1:9400). What is wrong is
named by its TOML key and why (``accounts[0].port: expected int, got str``): a misspelt key
is refused, not ignored, because a setting that silently does nothing is worse than an error.

Secrets stay out of the file: any string may refer to environment variables as ``${NAME}``
(or ``${NAME:-default}``, used when NAME is unset or empty); ``$${`` writes a literal ``${``.
A value that is exactly one reference takes the type of its key, so ``port = "${SMSC_PORT}"``
is an int. Relative paths (the SQLite files) are relative to the file's directory.

Accounts are ``smpp_bridge.pool.AccountConfig`` as they are, and ``[pool]`` holds the rest of
``PoolConfig``: ``BridgeConfig.pool_config()`` puts them together for ``open_pool``.
"""

from __future__ import annotations

import functools
import os
import re
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import msgspec
import msgspec.inspect as mi

from ..codec.text import profile_named
from ..configfile import config_error
from ..errors import ConfigError, EncodingError
from ..pool import AccountConfig, IdMode, PoolConfig, UnknownPolicy
from .envelope import Limits
from .webhook import WebhookConfig

__all__ = [
    "BridgeConfig",
    "ConfigError",
    "DaemonConfig",
    "LimitsConfig",
    "LogConfig",
    "MetricsConfig",
    "PoolSettings",
    "QueueConfig",
    "StoreConfig",
    "WebhookConfig",
    "config_from_dict",
    "load_config",
    "parse_config",
    "parse_listen",
    "redact_url",
]

Positive: TypeAlias = Annotated[float, msgspec.Meta(gt=0)]
NonNegative: TypeAlias = Annotated[float, msgspec.Meta(ge=0)]
AtLeastOne: TypeAlias = Annotated[int, msgspec.Meta(ge=1)]
Name: TypeAlias = Annotated[str, msgspec.Meta(min_length=1)]
QueueBackend = Literal["sqlite", "redis"]
StoreBackend = Literal["sqlite", "redis", "memory"]

# ``[limits]`` and ``[webhook]`` are the structs their modules take, as they are.
LimitsConfig: TypeAlias = Limits

# The defaults of the pool's own settings are the pool's: one place to change them.
_POOL = PoolConfig(accounts=())
# Except this one, the daemon's own: a receipt no request claims is reported (an ``unknown``
# event, "unmatched receipt") after two minutes, not left unseen for ten. Its message's
# mapping is stored before the ``sent`` outcome is published, so a receipt that has waited
# this long will not be matched by waiting longer.
DEFAULT_UNMATCHED_AFTER = 120.0


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every section: immutable, keyword-only, unknown keys refused."""


class DaemonConfig(_Section, frozen=True):
    """How the daemon takes work from the queue and lets it go."""

    name: str | None = None  # consumer name on the queue; None: hostname-pid
    drain_timeout: NonNegative = 30.0  # on SIGTERM: seconds to wait for outstanding responses
    batch: AtLeastOne = 100  # queue entries leased per consume call
    max_in_flight: AtLeastOne = 5000  # requests taken from the queue and not yet settled
    unknown_outcome: UnknownPolicy = "retry"  # for accounts that do not set their own
    dedup_window: NonNegative = 86400.0  # seconds a clientId is remembered

    @property
    def consumer(self) -> str:
        """The consumer name: ``name``, or this host and process."""
        return self.name or f"{socket.gethostname()}-{os.getpid()}"


class QueueConfig(_Section, frozen=True):
    """Where send requests come from and events go."""

    backend: QueueBackend = "sqlite"
    path: str | None = "smpp-bridge.db"  # sqlite: the database file
    url: str | None = None  # redis: redis://host:port/db (rediss:// for TLS)
    prefix: Name = "smpp-bridge"  # redis: key prefix and consumer group
    requests: Name = "requests"
    events: Name = "events"
    visibility_timeout: Positive = 60.0  # a lease not renewed for this long is redelivered
    max_deliveries: AtLeastOne = 5  # then the entry goes to the dead letters
    events_retain: AtLeastOne = 1_000_000  # events kept for `smpp-bridge events`


class StoreConfig(_Section, frozen=True):
    """The correlation and message store. Unset fields take the queue's values, so after
    ``parse_config`` ``backend`` is never None (``memory`` keeps nothing across restarts)."""

    backend: StoreBackend | None = None
    path: str | None = None
    url: str | None = None
    prefix: str | None = None
    correlation_ttl: Positive = _POOL.correlation_ttl  # seconds a receipt can still be matched


class PoolSettings(_Section, frozen=True):
    """``PoolConfig`` without its accounts (``[[accounts]]``) and ``correlation_ttl``
    (``[store]``)."""

    unmatched_after: Positive = DEFAULT_UNMATCHED_AFTER
    settled_ttl: Positive = _POOL.settled_ttl  # seconds a settled part's repeat is still known
    inbound_timeout: Positive = _POOL.inbound_timeout
    opt_out_keywords: tuple[str, ...] = _POOL.opt_out_keywords
    reconnect_base: Positive = _POOL.reconnect_base
    reconnect_cap: Positive = _POOL.reconnect_cap
    retry_base: Positive = _POOL.retry_base
    retry_cap: Positive = _POOL.retry_cap


class MetricsConfig(_Section, frozen=True):
    """The HTTP listener for ``/metrics``, ``/healthz`` and ``/readyz``."""

    listen: str = "127.0.0.1:9400"  # host:port ([::1]:9400 for IPv6); "" disables

    @property
    def address(self) -> tuple[str, int] | None:
        """``(host, port)`` to listen on, or None when disabled."""
        return parse_listen(self.listen)


class LogConfig(_Section, frozen=True):
    level: Literal["debug", "info", "warning", "error"] = "info"
    json: bool | Literal["auto"] = "auto"  # auto: JSON lines unless stderr is a terminal

    @property
    def json_lines(self) -> bool | None:
        """``configure_logging``'s ``json`` argument (None: decide by the stream)."""
        return None if self.json == "auto" else self.json


class BridgeConfig(_Section, frozen=True):
    """The whole file. Build it with ``load_config`` or ``parse_config``, which also check
    what types alone cannot (backends, unique account names, ...) and fill in defaults."""

    accounts: tuple[AccountConfig, ...] = ()
    daemon: DaemonConfig = msgspec.field(default_factory=DaemonConfig)
    queue: QueueConfig = msgspec.field(default_factory=QueueConfig)
    store: StoreConfig = msgspec.field(default_factory=StoreConfig)
    limits: Limits = msgspec.field(default_factory=Limits)
    pool: PoolSettings = msgspec.field(default_factory=PoolSettings)
    webhook: WebhookConfig | None = None
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    log: LogConfig = msgspec.field(default_factory=LogConfig)

    def pool_config(self) -> PoolConfig:
        """The accounts and pool settings as ``open_pool`` takes them."""
        return PoolConfig(
            accounts=self.accounts,
            correlation_ttl=self.store.correlation_ttl,
            **msgspec.structs.asdict(self.pool),
        )

    def summary(self) -> dict[str, Any]:
        """What the file configures, for ``config check``: no passwords, secrets or URL
        credentials."""
        queue, store, webhook = self.queue, self.store, self.webhook
        return {
            "accounts": [a.name for a in self.accounts],
            "binds": {
                a.name: {
                    "host": a.host,
                    "port": a.port,
                    "system_id": a.system_id,
                    "bind_type": a.bind_type,
                    "binds": a.binds,
                    "tls": a.tls,
                }
                for a in self.accounts
            },
            "queue": {
                "backend": queue.backend,
                **_location(queue.backend, queue.path, queue.url, queue.prefix),
                "requests": queue.requests,
                "events": queue.events,
            },
            "store": {
                "backend": store.backend,
                **_location(store.backend, store.path, store.url, store.prefix),
            },
            "webhook": None
            if webhook is None
            else {"url": redact_url(webhook.url), "signed": webhook.secret is not None},
            "metrics": self.metrics.listen or None,
            "log": {"level": self.log.level, "json": self.log.json},
        }


def _location(
    backend: str | None, path: str | None, url: str | None, prefix: str | None
) -> dict[str, Any]:
    if backend == "sqlite":
        return {"path": path}
    if backend == "redis":
        return {"url": redact_url(url or ""), "prefix": prefix}
    return {}


def redact_url(url: str) -> str:
    """``url`` without its secrets: the password and every query value become ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "***"
    netloc = parts.netloc
    if password is not None:
        host = netloc.rpartition("@")[2]
        netloc = f"{parts.username or ''}:***@{host}"
    query = "&".join(f"{k}=***" for k, _ in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def parse_listen(value: str) -> tuple[str, int] | None:
    """``"host:port"`` (``"[::1]:9400"``) as ``(host, port)``; ``""`` is None (disabled)."""
    if value == "":
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"write an IPv6 address in brackets ([::1]:9400), got {value!r}")
    return host, int(port)


# ------------------------------------------------------------------ environment references

_REF = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)\}|\$\{")
_NAME = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?$", re.DOTALL)
_WHOLE = re.compile(r"^\$\{[^}]*\}$")

KeyPath: TypeAlias = tuple[str | int, ...]


def _dotted(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _substitute(value: str, path: KeyPath, env: Mapping[str, str]) -> str:
    def replace(m: re.Match[str]) -> str:
        text = m.group(0)
        if text == "$${":
            return "${"
        body = m.group("body")
        if body is None:
            raise ConfigError("unclosed ${ (write $${ for a literal ${)", _dotted(path))
        ref = _NAME.match(body)
        if ref is None:
            raise ConfigError(
                f"bad reference ${{{body}}}: expected ${{NAME}} or ${{NAME:-default}}",
                _dotted(path),
            )
        name, default = ref.group("name"), ref.group("default")
        found = env.get(name)
        if found is None or (found == "" and default is not None):
            if default is None:
                raise ConfigError(f"environment variable {name} is not set", _dotted(path))
            return default
        return found

    return _REF.sub(replace, value)


def _expand(node: Any, path: KeyPath, env: Mapping[str, str], whole: dict[KeyPath, str]) -> Any:
    """``node`` with every reference replaced; ``whole`` collects the values that were exactly
    one reference (their path and variable), which take the type of their key."""
    if isinstance(node, str):
        if "${" not in node:
            return node
        if _WHOLE.match(node):
            whole[path] = node
        return _substitute(node, path, env)
    if isinstance(node, dict):
        return {k: _expand(v, (*path, k), env, whole) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, (*path, i), env, whole) for i, v in enumerate(node)]
    return node


@functools.cache
def _root_type() -> mi.Type:
    return mi.type_info(BridgeConfig)


def _step(t: mi.Type, part: str | int) -> mi.Type | None:
    if isinstance(t, mi.Metadata):
        return _step(t.type, part)
    if isinstance(t, mi.UnionType):
        for member in t.types:
            found = _step(member, part)
            if found is not None:
                return found
        return None
    if isinstance(t, mi.StructType) and isinstance(part, str):
        return next((f.type for f in t.fields if f.encode_name == part), None)
    if isinstance(t, mi.ListType | mi.VarTupleType | mi.SetType) and isinstance(part, int):
        return t.item_type
    if isinstance(t, mi.TupleType) and isinstance(part, int) and part < len(t.item_types):
        return t.item_types[part]
    if isinstance(t, mi.DictType) and isinstance(part, str):
        return t.value_type
    return None


def _members(t: mi.Type) -> list[mi.Type]:
    if isinstance(t, mi.Metadata):
        return _members(t.type)
    if isinstance(t, mi.UnionType):
        return [m for member in t.types for m in _members(member)]
    return [t]


def _typed(value: str, path: KeyPath) -> Any:
    """An environment value as the type its key wants: a number or a boolean when the key
    takes no string (left as it is otherwise, for the type error to say so)."""
    t: mi.Type | None = _root_type()
    for part in path:
        t = None if t is None else _step(t, part)
    if t is None:
        return value
    kinds = _members(t)
    for kind in kinds:
        if isinstance(kind, mi.StrType | mi.AnyType):
            return value
        if isinstance(kind, mi.LiteralType) and value in kind.values:
            return value
    for kind in kinds:
        if isinstance(kind, mi.BoolType) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        try:
            if isinstance(kind, mi.IntType):
                return int(value)
            if isinstance(kind, mi.FloatType):
                return float(value)
        except ValueError:
            continue
    return value


def _set(node: Any, path: KeyPath, value: Any) -> None:
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


# ------------------------------------------------------------------ loading and checking

# Keys people put in the wrong table.
_MOVED = {
    "pool.correlation_ttl": "it belongs in [store]",
    "pool.accounts": "accounts are [[accounts]] tables",
}


def config_from_dict(
    data: Mapping[str, Any],
    *,
    env: Mapping[str, str] | None = None,
    base_dir: str | Path | None = None,
) -> BridgeConfig:
    """A checked ``BridgeConfig`` from parsed TOML (or JSON); ``ConfigError`` naming the key
    otherwise. ``env`` (default ``os.environ``) resolves ``${NAME}``; relative paths are
    taken relative to ``base_dir`` (left as they are without one)."""
    whole: dict[KeyPath, str] = {}
    expanded = _expand(dict(data), (), os.environ if env is None else env, whole)
    for path in whole:
        _set(expanded, path, _typed(_get(expanded, path), path))
    try:
        config = msgspec.convert(expanded, BridgeConfig)
    except msgspec.ValidationError as exc:
        error = _at_key(config_error(exc, plain=True))
        hint = _MOVED.get(error.path) if error.reason == "unknown key" else None
        ref = next((v for p, v in whole.items() if _dotted(p) == error.path), None)
        if hint is not None:
            raise ConfigError(f"unknown key ({hint})", error.path) from None
        if ref is not None:
            raise ConfigError(f"{error.reason} (from {ref})", error.path) from None
        raise error from None
    config = _fill_in(config, expanded, None if base_dir is None else Path(base_dir))
    _check(config)
    return config


_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_KEYED = re.compile(r"^(?P<key>[a-z_][a-z0-9_]*): (?P<reason>.+)$", re.DOTALL)


def _at_key(error: ConfigError) -> ConfigError:
    """A section's own check names its key first (``limits: max_parts: must be ...``): report
    it at that key (``limits.max_parts: must be ...``)."""
    m = _KEYED.match(error.reason)
    if m is None:
        return error
    t: mi.Type | None = _root_type()
    for name, index in _PART.findall(error.path):
        t = None if t is None else _step(t, int(index) if index else name)
    if t is None or _step(t, m.group("key")) is None:
        return error
    return ConfigError(m.group("reason"), _join_key(error.path, m.group("key")))


def _join_key(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _get(node: Any, path: KeyPath) -> Any:
    for part in path:
        node = node[part]
    return node


def parse_config(
    text: str,
    *,
    source: str = "<string>",
    env: Mapping[str, str] | None = None,
    base_dir: str | Path | None = None,
) -> BridgeConfig:
    """A checked ``BridgeConfig`` from TOML text (``source`` names it in syntax errors)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML in {source}: {exc}") from None
    return config_from_dict(data, env=env, base_dir=base_dir)


def load_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> BridgeConfig:
    """Read and check a TOML file; paths in it are relative to its directory.

    ``ConfigError`` when the file is wrong, ``OSError`` (``FileNotFoundError``, ...) when it
    cannot be read."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None
    return parse_config(text, source=str(path), env=env, base_dir=file.resolve().parent)


def _relative_to(path: str | None, base: Path | None) -> str | None:
    if path is None or base is None or path in ("", ":memory:") or path.startswith("file:"):
        return path
    return str(base / Path(path).expanduser())


def _fill_in(config: BridgeConfig, data: Mapping[str, Any], base: Path | None) -> BridgeConfig:
    """Defaults that depend on other keys, and paths made absolute."""
    replace = msgspec.structs.replace
    raw_accounts = data.get("accounts", [])
    accounts = tuple(
        replace(account, unknown_outcome=config.daemon.unknown_outcome)
        if isinstance(raw, Mapping) and "unknown_outcome" not in raw
        else account
        for account, raw in zip(config.accounts, raw_accounts, strict=True)
    )
    queue = replace(config.queue, path=_relative_to(config.queue.path, base))
    store = config.store
    store = replace(
        store,
        backend=store.backend or queue.backend,
        path=queue.path if store.path is None else _relative_to(store.path, base),
        url=queue.url if store.url is None else store.url,
        prefix=queue.prefix if store.prefix is None else store.prefix,
    )
    return replace(config, accounts=accounts, queue=queue, store=store)


# SMPP's C-octet string limits, less the terminating NUL.
_LIMITS = {"system_id": 15, "password": 8, "system_type": 12}


def _check_account(i: int, account: AccountConfig) -> None:
    at = f"accounts[{i}]"
    if not account.name:
        raise ConfigError("must not be empty", f"{at}.name")
    if not account.system_id:
        raise ConfigError("must not be empty", f"{at}.system_id")
    for key, limit in _LIMITS.items():
        if len(getattr(account, key)) > limit:
            raise ConfigError(f"longer than SMPP's {limit} characters", f"{at}.{key}")
    if not account.host:
        raise ConfigError("must not be empty", f"{at}.host")
    if not 1 <= account.port <= 65535:
        raise ConfigError("must be within 1..65535", f"{at}.port")
    if account.response_timeout <= 0:
        raise ConfigError("must be positive", f"{at}.response_timeout")
    if account.enquire_link_interval is not None and account.enquire_link_interval <= 0:
        raise ConfigError("must be positive when set", f"{at}.enquire_link_interval")
    if account.max_retries < 0:
        raise ConfigError("must not be negative", f"{at}.max_retries")
    try:
        profile_named(account.profile)
    except EncodingError as exc:
        raise ConfigError(str(exc), f"{at}.profile") from None
    try:
        IdMode(account.message_id_mode)
    except ValueError:
        known = ", ".join(m.value for m in IdMode)
        raise ConfigError(
            f"unknown mode {account.message_id_mode!r} (known: {known})", f"{at}.message_id_mode"
        ) from None


def _check_backend(section: str, backend: str, path: str | None, url: str | None) -> None:
    if backend == "sqlite" and not path:
        raise ConfigError('required when the backend is "sqlite"', f"{section}.path")
    if backend == "redis":
        if not url:
            raise ConfigError('required when the backend is "redis"', f"{section}.url")
        if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise ConfigError("expected a redis://, rediss:// or unix:// URL", f"{section}.url")


def _check(config: BridgeConfig) -> None:
    """What the types alone do not say."""
    if not config.accounts:
        raise ConfigError("at least one [[accounts]] table is required", "accounts")
    seen: dict[str, int] = {}
    for i, account in enumerate(config.accounts):
        _check_account(i, account)
        if account.name in seen:
            raise ConfigError(
                f"duplicate account name {account.name!r} (also accounts[{seen[account.name]}])",
                f"accounts[{i}].name",
            )
        seen[account.name] = i
    daemon = config.daemon
    if daemon.max_in_flight < daemon.batch:
        raise ConfigError(f"must be at least daemon.batch ({daemon.batch})", "daemon.max_in_flight")
    queue = config.queue
    _check_backend("queue", queue.backend, queue.path, queue.url)
    if queue.events == queue.requests:
        raise ConfigError(f"same queue name as queue.requests ({queue.requests!r})", "queue.events")
    store = config.store
    assert store.backend is not None  # filled in from the queue's
    _check_backend("store", store.backend, store.path, store.url)
    pool = config.pool
    if pool.reconnect_cap < pool.reconnect_base:
        raise ConfigError("must be at least pool.reconnect_base", "pool.reconnect_cap")
    if pool.retry_cap < pool.retry_base:
        raise ConfigError("must be at least pool.retry_base", "pool.retry_cap")
    try:
        parse_listen(config.metrics.listen)
    except ValueError as exc:
        raise ConfigError(str(exc), "metrics.listen") from None
