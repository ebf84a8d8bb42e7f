"""smpp-bridge: an SMPP client (ESME) library, a queue-driven daemon and an SMSC simulator."""

__version__ = "0.1.0"
