"""``smpp-bridge simulator``: run the SMSC simulator over TCP or TLS until interrupted.

It logs one ``listening`` line, then one ``stats`` line per interval (binds, submits per
second, receipts and MO messages sent, errors) to stderr, as ``key=value`` pairs. With
``--ledger PATH`` (or ``ledger.path`` in the config) the per-message ledger is written to PATH
when it stops (Ctrl-C, SIGTERM, ``--duration``); ``--chaos SEED`` turns the seeded chaos profile
on (the config's ``[chaos]`` rates, with this seed).
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
from typing import TYPE_CHECKING, Any

from . import EXIT_OK, CliError

if TYPE_CHECKING:
    import ssl

    import anyio

    from ..simulator import Simulator, SimulatorConfig
    from . import Subparsers


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "simulator",
        help="run the SMSC simulator",
        description=(
            "Run an SMPP SMSC simulator with the behaviours of a TOML file (accounts, "
            "throttling, latency, receipts, MO traffic, faults). Logs a stats line per second "
            "to stderr; stops on Ctrl-C."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=2775, help="TCP port (0: any free port)")
    parser.add_argument("--config", metavar="FILE", help="TOML file of behaviours")
    parser.add_argument("--system-id", help="add (or update) an account with this system_id")
    parser.add_argument("--password", default="", help="password of the --system-id account")
    parser.add_argument(
        "--accept-any", action="store_true", help="accept any system_id and password"
    )
    parser.add_argument(
        "--write-per-pdu",
        action="store_true",
        help="write each PDU in its own send instead of one send per batch",
    )
    parser.add_argument("--tls-cert", metavar="FILE", help="serve TLS with this certificate")
    parser.add_argument("--tls-key", metavar="FILE", help="private key of --tls-cert")
    parser.add_argument("--seed", type=int, help="seed every random choice (repeatable runs)")
    parser.add_argument(
        "--chaos",
        type=int,
        metavar="SEED",
        help="play the seeded chaos profile (drops, stalls, bursts, restarts, receipt races)",
    )
    parser.add_argument(
        "--ledger",
        metavar="PATH",
        help="write the per-message ledger (JSON) to PATH when the simulator stops",
    )
    parser.add_argument(
        "--stats-interval", type=float, default=1.0, help="seconds between stats lines"
    )
    parser.add_argument(
        "--duration", type=float, help="stop after this many seconds (default: run until Ctrl-C)"
    )
    parser.set_defaults(handler=run)


def build_config(args: argparse.Namespace) -> SimulatorConfig:
    """The config file (or the defaults) with the command-line overrides applied."""
    import msgspec

    from ..simulator import (
        Account,
        Chaos,
        ConfigError,
        SimulatorConfig,
        load_config,
        validate,
    )

    try:
        config = load_config(args.config) if args.config else SimulatorConfig()
        if args.system_id:
            others = tuple(a for a in config.accounts if a.system_id != args.system_id)
            found = [a for a in config.accounts if a.system_id == args.system_id]
            account = (
                msgspec.structs.replace(found[0], password=args.password)
                if found
                else Account(system_id=args.system_id, password=args.password)
            )
            config = msgspec.structs.replace(config, accounts=(*others, account))
        if args.accept_any:
            server = msgspec.structs.replace(config.server, accept_any=True)
            config = msgspec.structs.replace(config, server=server)
        if args.write_per_pdu:
            server = msgspec.structs.replace(config.server, write_per_pdu=True)
            config = msgspec.structs.replace(config, server=server)
        if args.seed is not None:
            config = msgspec.structs.replace(config, seed=args.seed)
        if args.chaos is not None:
            chaos = config.chaos or Chaos()
            config = msgspec.structs.replace(
                config, chaos=msgspec.structs.replace(chaos, seed=args.chaos)
            )
        if args.ledger:
            ledger = msgspec.structs.replace(config.ledger, path=args.ledger)
            config = msgspec.structs.replace(config, ledger=ledger)
        return validate(config)
    except (ConfigError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise CliError(exc.reason, path=exc.path, file=args.config) from None
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot read the config file: {exc.strerror}", file=args.config) from None


def _tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    import ssl

    if not args.tls_cert and not args.tls_key:
        return None
    if not (args.tls_cert and args.tls_key):
        raise CliError("--tls-cert and --tls-key go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise CliError(f"cannot load the TLS certificate or key: {exc}") from None
    return context


def _stats_fields(sim: Simulator, previous: dict[str, int], elapsed: float) -> dict[str, Any]:
    """One stats line: totals, and submits per second since the last line."""
    total = sim.stats.total()
    submits = total.submits
    rate = (submits - previous.get("submits", 0)) / elapsed if elapsed > 0 else 0.0
    previous["submits"] = submits
    return {
        "binds": total.binds,
        "connections": len(sim.sessions),
        "submits_per_s": round(rate, 1),
        "submits": submits,
        "accepted": total.accepted,
        "rejected": total.rejected_total,
        "dlrs_sent": total.dlrs_total,
        "mos_sent": total.mos,
        "errors": total.protocol_errors + total.deliver_failures + total.garbled,
    }


async def _stop_on_signal(scope: anyio.CancelScope) -> None:
    """SIGINT or SIGTERM end the run cleanly (with a last line of totals)."""
    import anyio

    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            scope.cancel()
            return


def run(args: argparse.Namespace) -> int:
    import anyio
    import structlog

    from ..simulator import run_simulator

    config = build_config(args)
    ssl_context = _tls_context(args)
    if args.stats_interval <= 0:
        raise CliError("--stats-interval must be positive")
    log = structlog.wrap_logger(
        structlog.PrintLogger(sys.stderr),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.KeyValueRenderer(
                key_order=["timestamp", "level", "event"], drop_missing=True
            ),
        ],
    )

    async def serve() -> None:
        async with run_simulator(
            config, host=args.host, port=args.port, ssl_context=ssl_context, log=log
        ) as sim:
            log.info(
                "listening",
                host=args.host,
                port=sim.port,
                tls=ssl_context is not None,
                accounts=len(config.accounts),
                accept_any=config.server.accept_any,
                chaos=config.chaos.seed if config.chaos is not None else None,
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(_stop_on_signal, tg.cancel_scope)
                with anyio.move_on_after(math.inf if args.duration is None else args.duration):
                    previous: dict[str, int] = {}
                    last = anyio.current_time()
                    while True:
                        await anyio.sleep(args.stats_interval)
                        now = anyio.current_time()
                        log.info("stats", **_stats_fields(sim, previous, now - last))
                        last = now
                tg.cancel_scope.cancel()
            log.info("stopped", **sim.stats.total().as_dict())
        # Leaving ``run_simulator`` wrote the ledger.
        if config.ledger.path is not None:
            ledger = sim.stats.ledger
            log.info("ledger written", path=config.ledger.path, messages=len(ledger or ()))

    try:
        anyio.run(serve, backend="trio")
    except OSError as exc:
        if config.ledger.path is not None and exc.filename is not None:
            raise CliError(f"cannot write the ledger: {exc}") from None
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    except KeyboardInterrupt:
        pass
    return EXIT_OK


__all__ = ["build_config", "register", "run"]
