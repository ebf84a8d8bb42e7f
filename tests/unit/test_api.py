"""The public API is what ``smpp_bridge`` exports, no more, no less, and each name says what
it is. Changing this list is changing the API: do it on purpose."""

from __future__ import annotations

import inspect

import smpp_bridge
from smpp_bridge import errors

EXPORTED = {
    # the client
    "open_session",
    "Client",
    "SubmitResult",
    "Delivery",
    "Receipt",
    # the pool
    "open_pool",
    "BindPool",
    "PoolConfig",
    "AccountConfig",
    "OutboundMessage",
    "SubmitOutcome",
    "DlrEvent",
    "InboundMessage",
    "PoolHandler",
    "PoolStatus",
    "BindSnapshot",
    # vocabulary
    "Status",
    "EncodingProfile",
    "profile_named",
    # errors
    "SmppError",
    "ProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "FieldError",
    "EncodingError",
    "CommandStatusError",
    "BindError",
    "WindowFull",
    "SessionClosedError",
    "ResponseTimeoutError",
    "PoolClosed",
    "ConfigError",
    "QueueError",
    "QueueClosedError",
    "QueueBackendError",
    "StoreClosedError",
    "__version__",
}


def test_the_exports_are_pinned() -> None:
    assert set(smpp_bridge.__all__) == EXPORTED
    assert len(smpp_bridge.__all__) == len(EXPORTED)  # no name twice
    for name in EXPORTED:
        assert hasattr(smpp_bridge, name), name


def test_every_export_has_a_docstring_of_its_own() -> None:
    missing = []
    for name in sorted(EXPORTED - {"__version__"}):
        obj = getattr(smpp_bridge, name)
        doc = inspect.getdoc(obj)
        inherited = inspect.isclass(obj) and any(
            doc == inspect.getdoc(base) for base in obj.__mro__[1:]
        )
        if not doc or not doc.strip() or inherited:
            missing.append(name)
    assert missing == []


def test_every_error_class_is_exported_and_under_smpp_error() -> None:
    classes = {
        name
        for name, obj in vars(errors).items()
        if inspect.isclass(obj)
        and issubclass(obj, BaseException)
        and obj.__module__ == errors.__name__
    }
    assert classes <= EXPORTED
    for name in classes:
        assert issubclass(getattr(errors, name), errors.SmppError), name


def test_no_error_class_is_defined_outside_errors_py() -> None:
    """Every public error lives in ``errors.py`` (private control-flow exceptions, named with
    a leading underscore, may live beside their use)."""
    import importlib
    import pkgutil

    outside = []
    for info in pkgutil.walk_packages(smpp_bridge.__path__, "smpp_bridge."):
        if info.name.startswith("smpp_bridge.cli"):  # the CLI's own usage errors are its own
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == module.__name__
                and module.__name__ != errors.__name__
                and not name.startswith("_")
            ):
                outside.append(f"{module.__name__}.{name}")
    assert outside == []


def test_the_version_is_a_string() -> None:
    assert isinstance(smpp_bridge.__version__, str)
    assert smpp_bridge.__version__.count(".") >= 1


def test_every_export_has_a_reference_entry() -> None:
    """The API reference (``docs/reference``, built by ``tools/docs``) documents every name."""
    from pathlib import Path

    reference = Path(__file__).parents[2] / "docs" / "reference"
    text = "\n".join(p.read_text() for p in sorted(reference.glob("*.md")))
    missing = [
        n for n in sorted(EXPORTED - {"__version__"}) if f"::: smpp_bridge.{n}\n" not in text
    ]
    assert missing == []
