"""The SMSC simulator: an SMPP server on the same sans-IO session core and driver as the
client, with configurable behaviours (accounts, throttling, latency, receipts, MO traffic,
faults) and counters for tests to compare with what their client saw."""

from .config import (
    Account,
    ConfigError,
    Exponential,
    Faults,
    Fixed,
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
from .server import Simulator, run_simulator
from .stats import Counters, Stats

__all__ = [
    "Account",
    "ConfigError",
    "Counters",
    "Exponential",
    "Faults",
    "Fixed",
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
    "run_simulator",
    "validate",
]
