#!/usr/bin/env python3
"""Write the published JSON Schemas of send requests and events into ``schema/``.

The schemas come from the envelope types themselves (``smpp_bridge.bridge.envelope``), so
they change only when the types do; a test fails when the committed files are stale.

    .venv/bin/python tools/gen_schema.py           # write schema/*.schema.json
    .venv/bin/python tools/gen_schema.py --check   # exit 1 if a file differs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from smpp_bridge.bridge.envelope import json_schemas

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schema"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR, help="where the files go")
    args = parser.parse_args(argv)
    stale: list[str] = []
    for name, text in json_schemas().items():
        path: Path = args.dir / name
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(name)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if args.check and stale:
        print(f"stale: {', '.join(stale)} (run tools/gen_schema.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
