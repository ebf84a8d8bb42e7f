"""The timers and limits of one session (``SessionConfig``), checked when it is made."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Timers (seconds) and limits of one session. ``None`` disables a timer."""

    window: int = 10
    response_timeout: float = 30.0
    enquire_link_interval: float | None = 30.0
    enquire_link_timeout: float = 10.0
    inactivity_timeout: float | None = None
    session_init_timeout: float | None = None
    max_command_length: int | None = None

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window must be at least 1, got {self.window}")
        for name in ("response_timeout", "enquire_link_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("enquire_link_interval", "inactivity_timeout", "session_init_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or None")


__all__ = ["SessionConfig"]
