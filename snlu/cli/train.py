"""``snlu-train RECIPE [key=value ...]``: train, keep the best dev checkpoint, evaluate it on test."""

from __future__ import annotations

import argparse
import json
import logging
import time

from omegaconf import OmegaConf

from snlu.cli.common import run_main
from snlu.config import load_recipe
from snlu.plugins import LOADED
from snlu.registry import DATASETS, TASKS
from snlu.training.run import environment, make_run_dir, seed_everything, setup_logging
from snlu.training.trainer import Trainer

log = logging.getLogger("snlu")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="snlu-train", description=__doc__)
    p.add_argument("recipe", help="recipe YAML file (see recipes/)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. fusion.name=concat train.epochs=2")
    p.add_argument("--print-config", action="store_true", help="print the resolved recipe and exit")
    p.add_argument("--output-dir", help="run directory (default: runs/<recipe>-<timestamp>)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging()
    cfg = load_recipe(args.recipe, args.overrides)
    if args.print_config:
        print(OmegaConf.to_yaml(cfg), end="")
        return 0
    return train(cfg, args.recipe, args.output_dir)


def train(cfg, recipe: str, output_dir: str | None) -> int:
    """The whole job for a validated recipe; returns 0."""
    run_dir = make_run_dir(output_dir, recipe)
    setup_logging(run_dir)
    started = time.perf_counter()
    OmegaConf.save(cfg, run_dir / "config.yaml")
    seed_everything(cfg.seed)
    (run_dir / "environment.json").write_text(json.dumps(environment(cfg.seed, LOADED), indent=1))
    log.info("run directory: %s", run_dir)

    task_cls = TASKS.get(cfg.task.name).cls
    splits = DATASETS.build(cfg.data).load(with_audio=task_cls.uses_audio)
    task = task_cls.from_data(cfg, splits["train"])
    trainer = Trainer(task, cfg, run_dir)
    log.info("task %s: %.2fM parameters, device %s", cfg.task.name,
             sum(p.numel() for p in task.parameters()) / 1e6, trainer.device)
    dev = trainer.fit(splits["train"], splits["dev"])
    trainer.load_best()
    test, preds = trainer.evaluate(splits["test"], desc="test")
    with open(run_dir / "test_predictions.jsonl", "w", encoding="utf-8") as f:
        for utt, pred in zip(splits["test"], preds):
            f.write(json.dumps(task.format_prediction(utt, pred), ensure_ascii=False) + "\n")
    minutes = (time.perf_counter() - started) / 60
    metrics = {"dev": dev, "test": test, "minutes": round(minutes, 2)}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, ensure_ascii=False))
    key = task.main_metric
    log.info("done in %.1f min: best dev %s %.4f, test %s %.4f -> %s", minutes, key, dev[key], key, test[key],
             run_dir / "metrics.json")
    return 0


def entry() -> None:
    run_main(main)
