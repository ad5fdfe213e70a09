"""``snlu-train RECIPE [key=value ...]``: train, keep the best dev checkpoint, evaluate it on test.

Overrides may come anywhere on the line, before, between or after the options
(``snlu-train RECIPE --print-config train.epochs=2``).

The recipe goes the library's one way to a run (snlu.run: load and check, build, train).

``snlu-train --resume RUN_DIR [train.epochs=N]`` continues an interrupted run from its latest checkpoint,
with the recipe the run saved (only ``train.epochs`` may change, to extend a run). The result is the same
as that of an uninterrupted run (on CPU, bit for bit).

Data-parallel: ``snlu-train --nproc N RECIPE`` (one machine) or ``torchrun [rendezvous flags]
--nproc_per_node=N -m snlu.cli.train RECIPE`` (several machines); rank 0 writes the run directory.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys

from omegaconf import OmegaConf

from snlu import run
from snlu.cli.common import parse_intermixed, run_main, split_positionals
from snlu.core.logs import setup_logging
from snlu.training import distributed
from snlu.training.trainer import Interrupted

log = logging.getLogger("snlu")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="snlu-train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("items", nargs="*", metavar="RECIPE | key=value",
                   help="the recipe YAML file (see recipes/) and key=value overrides, e.g. fusion.name=concat "
                        "train.epochs=2, anywhere on the line")
    p.add_argument("--print-config", action="store_true", help="print the resolved recipe and exit")
    p.add_argument("--output-dir", help="run directory (default: runs/<recipe>-<timestamp>); must be empty")
    p.add_argument("--overwrite", action="store_true",
                   help="if the run directory is not empty, move it aside to <dir>.old-<timestamp> first")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its latest checkpoint")
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="data-parallel training in N processes on this machine (torchrun; one GPU each on CUDA, "
                        "gloo on CPU); train.batch_size is per process")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def launch(n: int, argv: list[str]) -> int:
    """Run this command again under ``torchrun --standalone --nproc_per_node=n``; its exit status."""
    rest, skip = [], False
    for a in argv:  # drop --nproc N / --nproc=N
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            rest.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
           "-m", "snlu.cli.train", *rest]
    log.info("starting %d processes: %s", n, " ".join(cmd))
    return subprocess.call(cmd)


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = parse_intermixed(p, argv)
    setup_logging()
    if args.nproc < 1:
        p.error("--nproc must be >= 1")
    if args.nproc > 1 and not distributed.launched():
        return launch(args.nproc, list(sys.argv[1:] if argv is None else argv))
    try:
        if args.resume:
            if args.output_dir or args.overwrite:
                p.error("--resume continues RUN_DIR in place: no --output-dir or --overwrite")
            if args.print_config:  # (a word that is no override is named by resume_config)
                print(OmegaConf.to_yaml(run.resume_config(args.resume, args.items)), end="")
            else:
                run.resume(args.resume, args.items)
            return 0
        recipes, overrides = split_positionals(args.items, "recipe")
        if not recipes:
            p.error("a recipe is required (or --resume RUN_DIR)")
        cfg = run.load(recipes[0], overrides)
        if args.print_config:
            print(OmegaConf.to_yaml(cfg), end="")
            return 0
        run.start(cfg, recipes[0], args.output_dir, overwrite=args.overwrite)
        return 0
    except Interrupted as e:
        log.warning("%s", e)
        return e.exit_code


def entry() -> None:
    try:
        run_main(main)
    finally:
        distributed.shutdown()


if __name__ == "__main__":  # python -m snlu.cli.train (what snlu-sweep runs)
    entry()
