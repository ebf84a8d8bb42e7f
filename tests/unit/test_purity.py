"""The sans-IO core stays pure: nothing under codec/ or session/ imports I/O, clocks or threads.

Static check on the source (ast), so it sees imports inside functions and ``try`` blocks too. It
follows imports inside the package (``from ..errors import X`` brings errors.py in, and importing
a module runs its parent packages' ``__init__``), so a helper outside codec/ cannot smuggle
``import time`` into the core. The one parent it does not follow is the top package: its
``__init__`` is the public facade and imports the whole library by design (the layering test,
``test_layers.py``, forbids every module inside the package from importing that facade).
Dynamic imports (``importlib``) and calls such as ``datetime.now()`` are out of its scope.
"""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest

import smpp_bridge

FORBIDDEN = frozenset(
    {"anyio", "trio", "asyncio", "socket", "time", "threading", "selectors", "ssl"}
)
PACKAGE_ROOT = Path(smpp_bridge.__file__).parent
PURE_SUBPACKAGES = ("codec", "session")


def imports_of(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import in ``source``, relative ones resolved.

    ``from pkg import name`` yields both ``pkg`` and ``pkg.name``: the name may be a submodule.
    """
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                if node.module:
                    base = f"{base}.{node.module}"
            else:
                base = node.module or ""
            found.append((node.lineno, base))
            found.extend((node.lineno, f"{base}.{a.name}") for a in node.names if a.name != "*")
    return found


def forbidden_in(source: str, module: str = "pkg.mod", is_package: bool = False) -> list[str]:
    """The forbidden modules ``source`` imports (the checker's core, testable on snippets)."""
    return [
        name
        for _, name in imports_of(source, module, is_package)
        if name.partition(".")[0] in FORBIDDEN
    ]


def _module_file(root: Path, module: str) -> Path | None:
    parts = module.split(".")[1:]
    package_init = root.joinpath(*parts, "__init__.py")
    if package_init.is_file():
        return package_init
    plain = root.joinpath(*parts).with_suffix(".py") if parts else None
    return plain if plain is not None and plain.is_file() else None


def _with_parents(module: str) -> list[str]:
    """``module`` and the packages above it, the top package (the facade) left out."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(2, len(parts) + 1)]


def check_package(root: Path, subpackages: Iterable[str]) -> tuple[list[str], set[str]]:
    """Walk ``subpackages`` of the package at ``root`` and everything they import from it.

    Returns the violations (``file:line: imports name``) and the modules visited.
    """
    top = root.name
    queue = [
        f"{top}.{'.'.join(path.relative_to(root).with_suffix('').parts)}".removesuffix(".__init__")
        for sub in subpackages
        for path in sorted((root / sub).rglob("*.py"))
    ]
    seen: set[str] = set()
    problems: list[str] = []
    while queue:
        module = queue.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _module_file(root, module)
        if path is None:  # an attribute imported from a package, or a file not written yet
            continue
        for line, name in imports_of(path.read_text(), module, path.name == "__init__.py"):
            if name.partition(".")[0] in FORBIDDEN:
                problems.append(f"{path.relative_to(root.parent)}:{line}: imports {name}")
            elif name.partition(".")[0] == top:
                queue.extend(_with_parents(name))
    return problems, {m for m in seen if _module_file(root, m) is not None}


# --------------------------------------------------------------------------------------------


def test_codec_and_session_are_pure() -> None:
    problems, visited = check_package(PACKAGE_ROOT, PURE_SUBPACKAGES)
    assert problems == []
    # The walk really covered the core, and followed imports out of it.
    for module in ("smpp_bridge.codec.pdus", "smpp_bridge.codec.framing", "smpp_bridge.errors"):
        assert module in visited
    for sub in PURE_SUBPACKAGES:
        for path in (PACKAGE_ROOT / sub).glob("*.py"):
            name = f"smpp_bridge.{sub}.{path.stem}".removesuffix(".__init__")
            assert name in visited


@pytest.mark.parametrize(
    "snippet",
    [
        "import time",
        "import os, socket",
        "from asyncio import sleep",
        "import trio.lowlevel",
        "from anyio.abc import ByteStream",
        "import selectors as sel",
        "def later():\n    import threading\n",
        "try:\n    import ssl\nexcept ImportError:\n    ssl = None\n",
        "from time import monotonic as clock",
    ],
)
def test_checker_flags_forbidden_imports(snippet: str) -> None:
    assert forbidden_in(snippet)


@pytest.mark.parametrize(
    "snippet",
    [
        "import struct, typing",
        "import timeit",  # not "time"
        "from datetime import datetime",  # datetime.now() use is out of this check's scope
        "from . import time",  # pkg.time, a sibling module: followed, not forbidden by name
        "from .time import helper",
        "from ..errors import FieldError",
    ],
)
def test_checker_allows_pure_imports(snippet: str) -> None:
    assert forbidden_in(snippet) == []


def test_relative_imports_resolve() -> None:
    found = imports_of("from ..errors import X\nfrom . import y", "pkg.codec.a", False)
    assert [name for _, name in found] == ["pkg.errors", "pkg.errors.X", "pkg.codec", "pkg.codec.y"]
    found = imports_of("from .tlv import T", "pkg.codec", True)
    assert [name for _, name in found] == ["pkg.codec.tlv", "pkg.codec.tlv.T"]


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_checker_follows_imports_out_of_the_core(tmp_path: Path) -> None:
    pkg = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/codec/__init__.py": "from .a import A\n",
            "pkg/codec/a.py": "from ..util import helper\nA = 1\n",
            "pkg/util.py": "import struct\nimport time\n",
            "pkg/session/__init__.py": "from ..io.stream import S\n",
            "pkg/io/__init__.py": "import socket\n",  # runs when pkg.io.stream is imported
            "pkg/io/stream.py": "S = 1\n",
            "pkg/cli.py": "import asyncio\n",  # never imported by the core: fine
        },
    )
    problems, visited = check_package(pkg, ("codec", "session"))
    assert sorted(problems) == [
        "pkg/io/__init__.py:1: imports socket",
        "pkg/util.py:2: imports time",
    ]
    assert "pkg.cli" not in visited


def test_adding_import_time_to_a_codec_module_fails(tmp_path: Path) -> None:
    copy = tmp_path / "smpp_bridge"
    shutil.copytree(PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert check_package(copy, PURE_SUBPACKAGES)[0] == []
    framing = copy / "codec" / "framing.py"
    framing.write_text(framing.read_text() + "\nimport time\n")
    problems, _ = check_package(copy, PURE_SUBPACKAGES)
    assert len(problems) == 1
    assert problems[0].startswith("smpp_bridge/codec/framing.py:")
    assert problems[0].endswith("imports time")
