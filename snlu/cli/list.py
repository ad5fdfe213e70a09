"""``snlu-list [KIND]``: every registered component with its one-line description."""

from __future__ import annotations

import argparse

from snlu.cli.common import run_main
from snlu.core.errors import RegistryError
from snlu.plugins import load_plugins
from snlu.registry import REGISTRIES


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="snlu-list", description=__doc__)
    p.add_argument("kind", nargs="?", help=f"one of: {', '.join(REGISTRIES)}")
    p.add_argument("--plugins", nargs="*", default=[], help="plugin modules to load first")
    args = p.parse_args(argv)
    load_plugins(args.plugins)
    kinds = list(REGISTRIES)
    if args.kind:
        matches = [k for k in kinds if k == args.kind or REGISTRIES[k].section == args.kind or k.startswith(args.kind)]
        if not matches:
            raise RegistryError(f"unknown kind '{args.kind}' (valid: {', '.join(kinds)})")
        kinds = matches[:1]
    for kind in kinds:
        print(f"{kind}:")
        width = max([14, *(len(e.name) for e in REGISTRIES[kind])])
        for entry in REGISTRIES[kind]:
            print(f"  {entry.name:<{width}} {entry.description}")
    return 0


def entry() -> None:
    run_main(main)
