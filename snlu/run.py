"""From a recipe to a run: the one code path of the library and of every command that trains or measures a
recipe (``snlu-train``, ``snlu-bench``, ``snlu-sweep``'s runs, which are ``snlu-train`` processes).

    import snlu.run

    cfg = snlu.run.load("recipes/fusion_raw_all.yaml", ["train.epochs=2"])   # read, validate, check: no data yet
    built = snlu.run.build(cfg)                                              # the data and a fresh task
    metrics = snlu.run.start(cfg, "recipes/fusion_raw_all.yaml")             # train, keep best dev, test

``load`` runs every check that needs no data (key paths in each error): the recipe's sections against their
config dataclasses, then the task's own checks (a learning rate for every optimiser group it will have; what
its components consume, with a warning for a component nothing consumes). ``start`` makes a run directory and
trains in it; ``resume`` continues one from its latest checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from snlu.config import load_recipe
from snlu.core.devices import check_device
from snlu.core.errors import ConfigError, SnluError
from snlu.core.logs import setup_logging
from snlu.core.seed import seed_everything, set_deterministic
from snlu.data.inputs import write_predictions
from snlu.data.utterance import Utterance
from snlu.plugins import LOADED
from snlu.registry import DATASETS, TASKS
from snlu.rundir import environment, make_run_dir
from snlu.tasks.base import Task
from snlu.training import checkpoint, distributed
from snlu.training.trainer import Trainer

log = logging.getLogger("snlu")
RESUMABLE = ("train.epochs",)  # the only overrides a resumed run accepts: others would change the run midway


def load(recipe: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """The validated recipe with ``overrides`` applied (plugins loaded): every check that needs no data."""
    return load_recipe(recipe, list(overrides))


@dataclasses.dataclass
class Built:
    """A recipe's data and a fresh task made from its training split."""

    task: Task
    splits: dict[str, list[Utterance]]


def build(cfg: DictConfig) -> Built:
    """Seed with the recipe's seed, read the data (rank 0 first under torchrun: it may build the demo corpus),
    make the task from the training split (vocabulary, labels, CMVN, ``init_from``): the same on every rank."""
    seed_everything(cfg.seed)
    task_cls = TASKS.get(cfg.task.name).cls
    place = distributed.place()
    if not place.main:
        distributed.barrier()
    splits = DATASETS.build(cfg.data).load(with_audio=task_cls.uses_audio)
    if place.main:
        distributed.barrier()
    return Built(task_cls.from_data(cfg, splits["train"]), splits)


def start(cfg: DictConfig, recipe: str | Path, output_dir: str | Path | None = None,
          overwrite: bool = False) -> dict[str, Any]:
    """Train a validated recipe in a new run directory (``output_dir``, else ``runs/<recipe>-<timestamp>``);
    its metrics."""
    check_device(cfg.train.device, f"train.device={cfg.train.device}")
    place = distributed.init(cfg.train.device)
    given = Path(output_dir) if output_dir is not None else None
    made_by_user = given is not None and given.is_dir() and not any(given.iterdir())  # an empty folder: it stays
    run_dir = make_run_dir(str(output_dir) if output_dir else None, str(recipe), overwrite=overwrite) \
        if place.main else None
    run_dir = distributed.broadcast(run_dir)  # (rank 0's timestamped name)
    # File plugins resolve relative to the recipe: save them as absolute paths, so the run's config.yaml
    # (which resume and Task.load read) finds them from anywhere.
    cfg.plugins = [LOADED[n]["source"] if n.endswith(".py") and n in LOADED else n for n in cfg.plugins]
    try:
        return train(cfg, run_dir, resumed=False)
    except BaseException:
        if place.main and checkpoint.latest(run_dir) is None:
            discard(run_dir, keep_folder=made_by_user)
        raise


def discard(run_dir: Path, keep_folder: bool = False) -> None:
    """Remove what a start that failed before its first checkpoint wrote (config.yaml, train.log, ...): nothing
    there can be resumed, and the same command can then run again. A folder the user made stays, emptied."""
    for handler in list(log.handlers):  # train.log is open
        if isinstance(handler, logging.FileHandler):
            handler.close()
            log.removeHandler(handler)
    if not keep_folder:
        shutil.rmtree(run_dir, ignore_errors=True)
    for item in run_dir.iterdir() if keep_folder else ():
        if item.is_dir():
            shutil.rmtree(item)
        else:
            item.unlink()
    log.info("%s: removed (the run stopped before its first checkpoint)", run_dir)


def resume_config(run_dir: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """The recipe ``run_dir`` saved, with at most a new ``train.epochs``."""
    path = Path(run_dir)
    for item in overrides:
        if item.split("=", 1)[0] not in RESUMABLE:
            raise ConfigError(f"--resume {run_dir}: '{item}': only {', '.join(RESUMABLE)} may be overridden "
                              f"(the rest of the run's recipe is fixed; start a new run to change it)")
    if not (path / "config.yaml").is_file():
        raise SnluError(f"{path}: not a run directory (no config.yaml)")
    return load(path / "config.yaml", overrides)


def resume(run_dir: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Continue ``run_dir`` from its latest checkpoint with its saved recipe; its metrics."""
    cfg = resume_config(run_dir, overrides)
    check_device(cfg.train.device, f"train.device={cfg.train.device}")
    distributed.init(cfg.train.device)
    return train(cfg, Path(run_dir), resumed=True)


def train(cfg: DictConfig, run_dir: Path, resumed: bool = False) -> dict[str, Any]:
    """Train in ``run_dir`` (continuing from its latest checkpoint when ``resumed``), keep the best dev model in
    ``best/``, test it; write config.yaml, environment.json, metrics.json, test_predictions.jsonl.

    Under torchrun every rank runs this; rank 0 alone writes files and logs below warnings.
    """
    place = distributed.place()
    if place.main:
        setup_logging(run_dir)
    else:
        setup_logging(level=logging.WARNING)
    started = time.perf_counter()
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

    built = build(cfg)
    task, splits = built.task, built.splits
    trainer = Trainer(task, cfg, run_dir, started)
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
    minutes = trainer.seconds() / 60  # over all sessions of a resumed run
    metrics = {"dev": dev, "test": test, "minutes": round(minutes, 2)}
    if place.main:
        write_predictions(run_dir / "test_predictions.jsonl", task, splits["test"], preds)
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, ensure_ascii=False))
    distributed.barrier()
    key = task.main_metric
    log.info("done in %.1f min: best dev %s %.4f, test %s %.4f -> %s", minutes, key, dev[key], key, test[key],
             run_dir / "metrics.json")
    return metrics
