"""``snlu-list [KIND] [--plugins PLUGIN ...]``: every registered component with its one-line description.

Built-ins and installed plugin packages (entry points) are always listed; a plugin a recipe lists by file or
module name is listed once given: ``snlu-list fusions --plugins film.py`` (a .py file from the working folder,
or a module name; repeat ``--plugins`` for several)."""

from __future__ import annotations

import argparse

from snlu.cli.common import run_main
from snlu.core.errors import RegistryError
from snlu.plugins import load_plugins
from snlu.registry import REGISTRIES


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="snlu-list", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", nargs="?", help=f"one of: {', '.join(REGISTRIES)}")
    p.add_argument("--plugins", action="append", default=[], metavar="PLUGIN",
                   help="a plugin to load first, as a recipe's plugins: list names it: a .py file (relative to the "
                        "working folder) or a module; repeat for several")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
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
