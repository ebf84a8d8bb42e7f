"""The SMSC simulator: an SMPP server on the same sans-IO session core and driver as the
client, with configurable behaviours (accounts, throttling, latency, receipts, MO traffic,
faults, a seeded chaos profile) and counters and a per-message ledger for tests to compare
with what their client saw."""

from .config import (
    Account,
    Chaos,
    ConfigError,
    Exponential,
    Faults,
    Fixed,
    LedgerConfig,
    MessageIds,
    MobileOriginated,
    Normal,
    Outcome,
    QueueFullBursts,
    Receipts,
    ServerConfig,
    SimulatorConfig,
    SubmitBehaviour,
    Uniform,
    config_from_dict,
    load_config,
    validate,
)
from .ledger import Ledger, LedgerRow, read_ledger
from .server import Simulator, run_simulator
from .stats import Counters, Stats

__all__ = [
    "Account",
    "Chaos",
    "ConfigError",
    "Counters",
    "Exponential",
    "Faults",
    "Fixed",
    "Ledger",
    "LedgerConfig",
    "LedgerRow",
    "MessageIds",
    "MobileOriginated",
    "Normal",
    "Outcome",
    "QueueFullBursts",
    "Receipts",
    "ServerConfig",
    "Simulator",
    "SimulatorConfig",
    "Stats",
    "SubmitBehaviour",
    "Uniform",
    "config_from_dict",
    "load_config",
    "read_ledger",
    "run_simulator",
    "validate",
]
