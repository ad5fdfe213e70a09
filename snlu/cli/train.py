"""``snlu-train RECIPE [key=value ...]``: train, keep the best dev checkpoint, evaluate it on test.

Overrides may come anywhere on the line, before, between or after the options
(``snlu-train RECIPE --print-config train.epochs=2``).

``snlu-train --resume RUN_DIR [train.epochs=N]`` continues an interrupted run from its latest checkpoint,
with the recipe the run saved (only ``train.epochs`` may change, to extend a run). The result is the same
as that of an uninterrupted run (on CPU, bit for bit).

Data-parallel: ``snlu-train --nproc N RECIPE`` (one machine) or ``torchrun [rendezvous flags]
--nproc_per_node=N -m snlu.cli.train RECIPE`` (several machines); rank 0 writes the run directory.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from snlu.cli.common import parse_intermixed, run_main, split_positionals
from snlu.config import load_recipe
from snlu.core.errors import ConfigError, SnluError
from snlu.core.logs import setup_logging
from snlu.inference import write_predictions
from snlu.plugins import LOADED
from snlu.registry import DATASETS, TASKS
from snlu.training import checkpoint, distributed
from snlu.training.run import environment, make_run_dir, seed_everything, set_deterministic
from snlu.training.trainer import Interrupted, Trainer

log = logging.getLogger("snlu")
RESUMABLE = ("train.epochs",)  # the only overrides --resume accepts: others would change the run midway


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
            return resume(args.resume, args.items, args.print_config)  # (it names a word that is no override)
        recipes, overrides = split_positionals(args.items, "recipe")
        if not recipes:
            p.error("a recipe is required (or --resume RUN_DIR)")
        cfg = load_recipe(recipes[0], overrides)
        if args.print_config:
            print(OmegaConf.to_yaml(cfg), end="")
            return 0
        return train(cfg, recipes[0], args.output_dir, overwrite=args.overwrite)
    except Interrupted as e:
        log.warning("%s", e)
        return e.exit_code


def resume(run_dir: str, overrides: list[str], print_config: bool = False) -> int:
    """Continue ``run_dir`` with its saved recipe (and at most a new ``train.epochs``)."""
    path = Path(run_dir)
    for item in overrides:
        if item.split("=", 1)[0] not in RESUMABLE:
            raise ConfigError(f"--resume {run_dir}: '{item}': only {', '.join(RESUMABLE)} may be overridden "
                              f"(the rest of the run's recipe is fixed; start a new run to change it)")
    if not (path / "config.yaml").is_file():
        raise SnluError(f"{path}: not a run directory (no config.yaml)")
    cfg = load_recipe(path / "config.yaml", overrides)
    if print_config:
        print(OmegaConf.to_yaml(cfg), end="")
        return 0
    distributed.init(cfg.train.device)
    return run(cfg, path, resumed=True)


def train(cfg: DictConfig, recipe: str, output_dir: str | None, overwrite: bool = False) -> int:
    """The whole job for a validated recipe in a new run directory; returns 0."""
    place = distributed.init(cfg.train.device)
    run_dir = make_run_dir(output_dir, recipe, overwrite=overwrite) if place.main else None
    run_dir = distributed.broadcast(run_dir)  # (rank 0's timestamped name)
    # File plugins resolve relative to the recipe: save them as absolute paths, so the run's config.yaml
    # (which --resume and Task.load read) finds them from anywhere.
    cfg.plugins = [LOADED[n]["source"] if n.endswith(".py") and n in LOADED else n for n in cfg.plugins]
    return run(cfg, run_dir, resumed=False)


def run(cfg: DictConfig, run_dir: Path, resumed: bool) -> int:
    """Train in ``run_dir`` (continuing from its latest checkpoint when ``resumed``), then test.

    Under torchrun every rank runs this; rank 0 alone writes files and logs below warnings.
    """
    place = distributed.place()
    if place.main:
        setup_logging(run_dir)
    else:
        setup_logging(level=logging.WARNING)
    started = time.perf_counter()
    seed_everything(cfg.seed)
    set_deterministic(cfg.train.deterministic)
    if place.main:
        OmegaConf.save(cfg, run_dir / "config.yaml")
        env = {**environment(cfg.seed, LOADED), "world_size": place.world_size}
        if resumed:  # keep the record of the original start; add this one
            old_path = run_dir / "environment.json"
            old = json.loads(old_path.read_text()) if old_path.is_file() else {}
            env = {**old, "resumes": [*old.get("resumes", []), env]} if old else env
        (run_dir / "environment.json").write_text(json.dumps(env, indent=1))
    log.info("run directory: %s%s", run_dir, " (resuming)" if resumed else "")

    task_cls = TASKS.get(cfg.task.name).cls
    if not place.main:
        distributed.barrier()  # rank 0 builds the demo corpus (if used) first
    splits = DATASETS.build(cfg.data).load(with_audio=task_cls.uses_audio)
    if place.main:
        distributed.barrier()
    task = task_cls.from_data(cfg, splits["train"])  # identical on every rank (same seed)
    trainer = Trainer(task, cfg, run_dir)
    if place.enabled:  # different dropout and SpecAugment draws on each rank
        seed_everything(cfg.seed + 1000 * place.rank)
    log.info("task %s: %.2fM parameters, device %s%s", cfg.task.name,
             sum(p.numel() for p in task.parameters()) / 1e6, trainer.device,
             f", {place.world_size} processes" if place.enabled else "")
    if resumed:
        last = checkpoint.latest(run_dir)
        if last is not None:
            trainer.resume(last)
        else:
            log.warning("%s: no checkpoint yet: starting from the beginning", run_dir)
    dev = trainer.fit(splits["train"], splits["dev"])
    trainer.load_best()
    test, preds = trainer.evaluate(splits["test"], desc="test")
    minutes = (time.perf_counter() - started) / 60
    if place.main:
        write_predictions(run_dir / "test_predictions.jsonl", task, splits["test"], preds)
        metrics = {"dev": dev, "test": test, "minutes": round(minutes, 2)}
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, ensure_ascii=False))
    distributed.barrier()
    key = task.main_metric
    log.info("done in %.1f min: best dev %s %.4f, test %s %.4f -> %s", minutes, key, dev[key], key, test[key],
             run_dir / "metrics.json")
    return 0


def entry() -> None:
    try:
        run_main(main)
    finally:
        distributed.shutdown()


if __name__ == "__main__":  # python -m snlu.cli.train (what snlu-sweep runs)
    entry()
