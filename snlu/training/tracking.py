"""Training curves for every run: TensorBoard event files, ``curves.png``, optionally Weights & Biases.

The trainer calls three hooks: :meth:`Tracker.step` after each optimizer step, :meth:`Tracker.epoch` after
each dev evaluation (with the run's history so far), and :meth:`Tracker.close` when training stops. Every
scalar is indexed by the global step (batches done), so epoch-level values line up with the step curves:

    train/loss, train/<term>    mean over the last ``train.log_every`` steps and over an epoch's last steps
                                (terms: e.g. text_crf, audio_crf, ctc)
    lr/<group>                  learning rate of each parameter group at the end of the epoch
    lr_step/<group>             learning rate of each group at each log (per-step schedules: warm-up, ...)
    dev/<metric>                dev metrics (dev/per_type/<TYPE>/<f1|precision|recall>)
    speed/utt_per_s, speed/epoch_minutes, train/skipped_steps, epoch

Event files go into the run directory itself, so ``tensorboard --logdir SWEEP_DIR`` names each run by its
path. Nothing needs a network: W&B is used only with ``train.wandb: true`` and an installed ``wandb``
(its own ``WANDB_MODE=offline`` keeps it local); if it cannot start, the run goes on without it.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("snlu")
CURVES = "curves.png"


class Tracker:
    """Writes the scalars of one run; nothing is created until the first value arrives (a Trainer used only
    to evaluate leaves no event file)."""

    def __init__(self, run_dir: Path, cfg: DictConfig, metric: str, enabled: bool = True):
        self.run_dir, self.cfg, self.metric, self.enabled = Path(run_dir), cfg, metric, enabled  # off: not rank 0
        self.every = int(cfg.train.get("log_every", 10))
        self.sums: dict[str, float] = {}
        self.count = 0
        self.flushed = 0  # the step of the last log
        self.lrs: dict[str, float] = {}  # each group's lr after the last step
        self.writer: Any = None
        self.wandb: Any = None

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ hooks

    def step(self, step: int, loss: float, terms: dict[str, float], lrs: dict[str, float] | None = None) -> None:
        """One optimizer step (``step``: batches done, this one included); logs every ``log_every`` steps, with
        the learning rate of each group after the step (``lrs``: per-step schedules move them every step)."""
        if not self.enabled:
            return
        if self.writer is None:
            self.open(step)
        for k, v in {"loss": loss, **terms}.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.lrs = dict(lrs or {})
        self.count += 1
        if step // self.every > self.flushed // self.every:  # (steps advance by train.accum_steps batches)
            self.flush_steps(step)

    def flush_steps(self, step: int) -> None:
        """Log the mean of the steps since the last log (at an epoch's end too: no step goes unlogged)."""
        if self.count:
            self.scalars({**{f"train/{k}": v / self.count for k, v in self.sums.items()},
                          **{f"lr_step/{k}": v for k, v in self.lrs.items()}}, step)
        self.sums, self.count, self.flushed = {}, 0, step

    def epoch(self, history: list[dict[str, Any]], step: int) -> None:
        """The epoch just finished (``history[-1]``, as the trainer records it) at global step ``step``."""
        if not self.enabled:
            return
        if self.writer is None:
            self.open(step)
        self.flush_steps(step)
        rec = history[-1]
        values = {"epoch": rec["epoch"], "speed/utt_per_s": rec.get("utt_per_s"),
                  "speed/epoch_minutes": rec.get("seconds", 0.0) / 60, "train/skipped_steps": rec.get("skipped_steps")}
        values.update({f"lr/{k}": v for k, v in rec.get("lrs", {}).items()})
        values.update(flatten(rec.get("dev", {}), "dev"))
        self.scalars(values, step)
        self.writer.flush()  # a crashed or killed run keeps its curves up to here
        try:
            plot_curves(history, self.metric, self.run_dir / CURVES)
        except Exception as e:  # a plot must never stop training
            log.warning("%s: could not draw the training curves: %s", self.run_dir / CURVES, e)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.wandb is not None:
            try:
                self.wandb.finish()
            except Exception as e:
                log.warning("wandb: finish failed: %s", e)
            self.wandb = None

    # ------------------------------------------------------------------ sinks

    def scalars(self, values: dict[str, Any], step: int) -> None:
        values = {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)
        if self.wandb is not None:
            try:
                self.wandb.log(values, step=step)
            except Exception as e:  # offline-safe: W&B trouble never stops training
                log.warning("wandb: log failed (%s); going on without it", e)
                self.wandb = None

    def open(self, first_step: int) -> None:
        """Start the sinks at the first step this process logs."""
        from torch.utils.tensorboard import SummaryWriter  # imported late: tensorboard is slow to import

        # purge_step: a resumed run hides what an earlier attempt logged from its first step on (the steps
        # after the checkpoint it resumed from), so curves have no duplicates
        self.writer = SummaryWriter(str(self.run_dir), purge_step=first_step)
        if self.cfg.train.get("wandb", False):  # .get: configs of runs older than the option
            self.wandb = start_wandb(self.run_dir, self.cfg)


def flatten(values: dict[str, Any], prefix: str) -> dict[str, float]:
    """``{"f1": .5, "per_type": {"PER": {"f1": .4}}}`` -> ``{"dev/f1": .5, "dev/per_type/PER/f1": .4}``."""
    out: dict[str, float] = {}
    for k, v in values.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}/{k}"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}/{k}"] = float(v)
    return out


def start_wandb(run_dir: Path, cfg: DictConfig) -> Any:
    """A W&B run for ``run_dir``, or None (with a warning) when wandb is missing or cannot start."""
    try:
        import wandb
    except ImportError:
        log.warning("train.wandb: wandb is not installed (pip install wandb); logging to TensorBoard only")
        return None
    try:
        return wandb.init(project=cfg.train.get("wandb_project", "snlu"), name=run_dir.name, dir=str(run_dir),
                          config=OmegaConf.to_container(cfg, resolve=True))
    except Exception as e:  # no network, no login...: the run matters more than its dashboard
        log.warning("train.wandb: could not start W&B (%s); logging to TensorBoard only "
                    "(WANDB_MODE=offline logs without a network)", e)
        return None


def plot_curves(history: list[dict[str, Any]], metric: str, path: Path) -> None:
    """``curves.png``: training loss and each loss term per epoch (left), the dev ``metric`` (right)."""
    from matplotlib.figure import Figure  # a bare Figure renders with Agg: no pyplot, no global state
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    epochs = [r["epoch"] for r in history]
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax_loss, ax_dev = fig.subplots(1, 2)
    series = {"loss (weighted sum)": [r.get("loss", math.nan) for r in history]}
    for term in dict.fromkeys(k for r in history for k in r.get("terms", {})):
        series[term] = [r.get("terms", {}).get(term, math.nan) for r in history]
    for name, ys in series.items():
        ax_loss.plot(epochs, ys, marker="o", ms=3, lw=2 if name.startswith("loss") else 1.2, label=name)
    if all(y > 0 for ys in series.values() for y in ys if not math.isnan(y)):
        ax_loss.set_yscale("log")  # terms differ by orders of magnitude (CTC vs CRF)
        ax_loss.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # ticks 1 2 5 10 20 50, plain numbers
        ax_loss.yaxis.set_major_formatter(ScalarFormatter())
        ax_loss.yaxis.set_minor_formatter(NullFormatter())
    ax_loss.set(xlabel="epoch", ylabel="training loss (epoch mean)", title="loss terms")
    ax_loss.legend(fontsize=8)
    dev = [r.get("dev", {}).get(metric, math.nan) for r in history]
    name = metric.upper() if metric in ("f1", "cer") else metric
    ax_dev.plot(epochs, dev, marker="o", ms=3, color="tab:green")
    ax_dev.set(xlabel="epoch", ylabel=f"dev {name}", title=f"dev {name}")
    for ax in (ax_loss, ax_dev):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.savefig(path, dpi=90)
