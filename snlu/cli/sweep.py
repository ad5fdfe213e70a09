"""``snlu-sweep SWEEP.yaml [key=value ...] [--var NAME=VALUE] [--jobs N] [--dry-run]``: run an ablation sweep.

Every variant of the sweep file runs once per seed, each run as its own ``snlu-train`` process in
``SWEEP_DIR/<variant>/seed<N>/`` (default SWEEP_DIR: ``runs/sweeps/<sweep file name>``). Run the same
command again to continue an interrupted sweep: complete runs (with a metrics.json) are skipped, incomplete
ones moved aside and started again. ``key=value`` overrides apply to every run (data paths, say). Failed
runs are listed at the end (exit status 1); the others go on. Then: ``snlu-report SWEEP_DIR``.
Overrides may come anywhere on the line, before, between or after the options.

Ctrl-C, ``kill -INT PID`` or ``kill PID`` (SIGTERM) stops the sweep, even where it was started with SIGINT
ignored (``nohup snlu-sweep ... &`` from a script): each running run gets one SIGINT, writes a checkpoint and
stops (exit status 130); a second signal stops them at once.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from snlu.cli.common import parse_intermixed, run_main, split_positionals
from snlu.core.logs import setup_logging
from snlu.experiments.sweep import SweepRunner
from snlu.experiments.sweep_file import load_sweep, validate
from snlu.plugins import load_builtins

log = logging.getLogger("snlu")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="snlu-sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("items", nargs="+", metavar="SWEEP | key=value",
                   help="the sweep file (see recipes/sweeps/) and key=value overrides for every run, "
                        "e.g. data.train=..., anywhere on the line")
    p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                   help="set a variable of the sweep file's `vars` (repeatable)")
    p.add_argument("--output-dir", help="sweep directory (default: runs/sweeps/<sweep file name>)")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1; each gets cores/N threads)")
    p.add_argument("--dry-run", action="store_true", help="print the runs and their commands, run nothing")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = parse_intermixed(p, argv)
    setup_logging()
    sweeps, overrides = split_positionals(args.items, "sweep")
    if not sweeps:
        p.error("a sweep file is required")
    variables = {}
    for item in args.var:
        name, sep, value = item.partition("=")
        if not sep or not name:
            p.error(f"--var {item}: expected NAME=VALUE")
        variables[name] = value
    load_builtins()
    sweep = load_sweep(sweeps[0], variables, overrides)
    validate(sweep)  # every variant's recipe, before the first run starts
    out = Path(args.output_dir) if args.output_dir else Path("runs") / "sweeps" / Path(sweeps[0]).stem
    runner = SweepRunner(sweep, out, jobs=args.jobs)
    if args.dry_run:
        runner.check_record()
        print(runner.describe())
        return 0
    outcomes = runner.run()  # SIGINT and SIGTERM stop it (each running run gets one SIGINT)
    failed = [o for o in outcomes if o.status in ("failed", "interrupted")]
    counts = {s: sum(o.status == s for o in outcomes) for s in ("complete", "done", "failed", "interrupted")}
    log.info("sweep finished: %d runs done now, %d complete before, %d failed -> %s", counts["done"],
             counts["complete"], len(failed), out)
    for o in failed:
        log.error("  %s: %s (exit %s): %s", o.run.name, o.status, o.returncode, o.error)
    if failed:
        log.error("fix the cause and run the same command again: complete runs are skipped")
    log.info("report: snlu-report %s", out)
    return 1 if failed else 0


def entry() -> None:
    run_main(main)
