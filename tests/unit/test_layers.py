"""The layers the folders show are the layers the imports keep.

Every module of the package belongs to one layer (``LAYER_OF``: the longest matching module
prefix decides) and may import only from the layers ``MAY_IMPORT`` lists for it, besides its own.
The check reads the source with ``ast`` (imports inside functions and ``TYPE_CHECKING`` blocks
count too) and names both files of a forbidden import. No module but the CLI's may import the
top package's facade (``smpp_bridge/__init__.py``): inside the package, names come from where
they live.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import smpp_bridge

from .test_purity import imports_of

PACKAGE_ROOT = Path(smpp_bridge.__file__).parent
TOP = "smpp_bridge"

# Module prefix → layer. The longest prefix that matches a module decides.
LAYER_OF: dict[str, str] = {
    "smpp_bridge.errors": "base",
    "smpp_bridge.log": "base",
    "smpp_bridge.configfile": "base",
    "smpp_bridge.ledger": "base",
    "smpp_bridge.codec": "codec",
    "smpp_bridge.session": "session",
    "smpp_bridge.driver": "driver",
    "smpp_bridge.client": "client",
    # The base every store shares (closing, the SQLite call helper): the pool's in-memory
    # stores build on it, so it sits below the pool, unlike the backends beside it.
    "smpp_bridge.storage.closable": "store-base",
    "smpp_bridge.storage.sqlite_calls": "store-base",
    "smpp_bridge.pool": "pool",
    # The daemon's records: the JSON shapes (send requests, events) and the message store's
    # model and protocol, which the storage backends implement and keep.
    "smpp_bridge.bridge.envelope": "records",
    "smpp_bridge.bridge.store": "records",
    "smpp_bridge.storage": "storage",
    "smpp_bridge.bridge": "bridge",
    "smpp_bridge.testing": "testing",
    "smpp_bridge.simulator": "simulator",
    "smpp_bridge.cli": "cli",
}

_BELOW_CLIENT = {"driver", "session", "codec", "base"}
MAY_IMPORT: dict[str, set[str]] = {
    "base": {"codec"},  # errors.py reads a status name table of the codec, lazily
    "codec": {"base"},
    "session": {"codec", "base"},
    "driver": {"session", "codec", "base"},
    "client": _BELOW_CLIENT,
    "store-base": {"base"},
    "pool": {"client", "store-base"} | _BELOW_CLIENT,
    "records": {"store-base", "pool", "codec", "base"},
    "storage": {"store-base", "records", "pool", "codec", "base"},
    "bridge": {"records", "storage", "store-base", "pool", "client"} | _BELOW_CLIENT,
    "testing": {"base"},
    "simulator": {"testing"} | _BELOW_CLIENT,
    "cli": {
        "bridge",
        "records",
        "storage",
        "store-base",
        "pool",
        "client",
        "simulator",
        "testing",
    }
    | _BELOW_CLIENT,
}


def layer_of(module: str) -> str | None:
    best = max(
        (p for p in LAYER_OF if module == p or module.startswith(p + ".")), key=len, default=None
    )
    return LAYER_OF[best] if best is not None else None


def _modules(root: Path) -> list[tuple[str, Path]]:
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).with_suffix("").parts
        name = ".".join((root.name, *rel)).removesuffix(".__init__")
        out.append((name, path))
    return out


def _file_of(root: Path, module: str) -> str:
    parts = module.split(".")[1:]
    for candidate in (
        root.joinpath(*parts, "__init__.py"),
        root.joinpath(*parts).with_suffix(".py"),
    ):
        if parts and candidate.is_file():
            return str(candidate.relative_to(root.parent))
    return module


def violations(root: Path) -> list[str]:
    """``file:line: layer imports target (layer)`` for every import the table forbids."""
    problems: list[str] = []
    for module, path in _modules(root):
        if module == root.name:  # the facade imports everything by design
            continue
        mine = layer_of(module)
        where = path.relative_to(root.parent)
        if mine is None:
            problems.append(f"{where}: no layer in LAYER_OF")
            continue
        reported: set[int] = set()
        for line, target in imports_of(path.read_text(), module, path.name == "__init__.py"):
            if target.partition(".")[0] != root.name or line in reported:
                continue
            if target == root.name:
                if mine != "cli":
                    reported.add(line)
                    problems.append(f"{where}:{line}: imports the top-level facade {root.name}")
                continue
            theirs = layer_of(target)
            if theirs is None or theirs == mine or theirs in MAY_IMPORT[mine]:
                continue
            reported.add(line)
            problems.append(
                f"{where}:{line}: {mine} may not import {theirs}: "
                f"{target} ({_file_of(root, target)})"
            )
    return problems


def test_every_module_keeps_to_its_layer() -> None:
    assert violations(PACKAGE_ROOT) == []


def test_every_module_has_a_layer() -> None:
    missing = [m for m, _ in _modules(PACKAGE_ROOT) if m != TOP and layer_of(m) is None]
    assert missing == []


def test_the_table_names_only_known_layers() -> None:
    layers = set(LAYER_OF.values())
    assert set(MAY_IMPORT) == layers
    for allowed in MAY_IMPORT.values():
        assert allowed <= layers


@pytest.mark.parametrize(
    ("rel", "source", "expected"),
    [
        (
            "codec/extra.py",
            "from ..pool.pool import BindPool\n",
            "smpp_bridge/codec/extra.py:1: codec may not import pool: smpp_bridge.pool.pool "
            "(smpp_bridge/pool/pool.py)",
        ),
        (
            "session/extra.py",
            "def later():\n    from ..driver import Driver\n",
            "smpp_bridge/session/extra.py:2: session may not import driver: smpp_bridge.driver "
            "(smpp_bridge/driver/__init__.py)",
        ),
        (
            "pool/extra.py",
            "from smpp_bridge.bridge.app import Bridge\n",
            "smpp_bridge/pool/extra.py:1: pool may not import bridge: smpp_bridge.bridge.app "
            "(smpp_bridge/bridge/app.py)",
        ),
        (
            "simulator/extra.py",
            "from ..client.esme import Client\n",
            "smpp_bridge/simulator/extra.py:1: simulator may not import client: "
            "smpp_bridge.client.esme (smpp_bridge/client/esme.py)",
        ),
        (
            "client/extra.py",
            "from .. import Client\n",
            "smpp_bridge/client/extra.py:1: imports the top-level facade smpp_bridge",
        ),
    ],
)
def test_a_forbidden_import_fails_with_both_files(
    tmp_path: Path, rel: str, source: str, expected: str
) -> None:
    import shutil

    copy = tmp_path / TOP
    shutil.copytree(PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert violations(copy) == []
    (copy / rel).write_text(source)
    assert expected in violations(copy)
