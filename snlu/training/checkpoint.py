"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint is a folder ``RUN_DIR/checkpoints/e<epoch>-b<batch>/`` (``batch`` batches of ``epoch`` done),
written atomically (a temporary folder, fsync, rename), of which the last ``train.keep_checkpoints`` are kept:

    model.safetensors    the task's state dict (weights and buffers, e.g. global CMVN)
    trainer.safetensors  optimizer tensors (AdamW moments and step counts) and the torch RNG states (CPU, CUDA)
    trainer.json         position, optimizer hyper-parameters, scheduler, Python and NumPy RNG states, best-dev
                         bookkeeping, history, running sums of the epoch in progress, fault counters

No pickle anywhere: tensors go to safetensors, everything else to JSON. The batch order of an epoch is a
function of the recipe's seed and the epoch number (``BucketBatchSampler``), so the position alone says
which batches come next; dropout and SpecAugment draw from the torch RNG, restored here. Data-loader
workers only compute features and draw no random numbers, so their number does not change the result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import Tensor

from snlu.core.errors import SnluError

log = logging.getLogger("snlu")
FORMAT = 1
ROOT = "checkpoints"
MODEL, TENSORS, STATE = "model.safetensors", "trainer.safetensors", "trainer.json"
NAME = re.compile(r"^e(\d+)-b(\d+)$")


@dataclasses.dataclass
class Progress:
    """Where a run is and what it has seen: the JSON part of a checkpoint."""

    epoch: int = 1  # the epoch in progress (1-based)
    batch: int = 0  # batches of ``epoch`` already done (trained on or skipped)
    step: int = 0  # batches done over the whole run: checkpoint_every counts these
    best: float | None = None  # best dev value of the main metric so far
    best_epoch: int | None = None
    best_metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    sums: dict[str, Any] = dataclasses.field(default_factory=dict)  # running sums of the epoch in progress
    bad_in_a_row: int = 0  # non-finite steps since the last good one
    bad_steps: int = 0  # non-finite steps over the run
    oom_skips: int = 0  # out-of-memory batches over the run
    scaler: dict[str, Any] = dataclasses.field(default_factory=dict)  # fp16 GradScaler state (loss scale)
    seconds: float = 0.0  # wall time of the run up to this checkpoint, over all its sessions


# ----------------------------------------------------------------------------- state <-> tensors + JSON


def rng_state() -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Python, NumPy and torch (CPU and, once initialised, CUDA) generator states."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors.update({f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    version, state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return tensors, {
        "python": [version, list(state), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }


def set_rng_state(tensors: dict[str, Tensor], info: dict[str, Any]) -> None:
    version, state, gauss = info["python"]
    random.setstate((version, tuple(state), gauss))
    kind, keys, pos, has_gauss, cached = info["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k[9:]))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    elif cuda:
        log.warning("checkpoint has CUDA RNG states for %d devices, this machine has %d: not restored "
                    "(dropout draws will differ from the interrupted run)", len(cuda), torch.cuda.device_count())


def optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``optimizer.state_dict()`` split into tensors (``optim.<param>.<key>``) and JSON."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor], info: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    for idx, values in info["scalars"].items():
        state.setdefault(int(idx), {}).update(values)
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in info["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def fingerprint(task: torch.nn.Module) -> str:
    """What the weights' shapes and meanings depend on besides the recipe: the vocabulary and labels (and the
    auxiliary CTC's units, when there are some)."""
    parts = [json.dumps(task.vocab.stoi, sort_keys=True, ensure_ascii=False)]
    labels = getattr(task, "labels", None)
    if labels is not None:
        parts.append(json.dumps(labels.to_dict(), sort_keys=True, ensure_ascii=False))
    aux = getattr(task, "aux_units", None)
    if aux is not None:
        parts.append(json.dumps(aux.stoi, sort_keys=True, ensure_ascii=False))
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:16]


# ----------------------------------------------------------------------------- files


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(run_dir: Path, task: torch.nn.Module, optimizer: torch.optim.Optimizer,
         scheduler: torch.optim.lr_scheduler.LRScheduler, progress: Progress, keep: int) -> Path:
    """Write a checkpoint of the current state; keep the last ``keep``. Returns its folder."""
    root = Path(run_dir) / ROOT
    root.mkdir(parents=True, exist_ok=True)
    name = f"e{progress.epoch:03d}-b{progress.batch:06d}"
    final, tmp, old = root / name, root / f".{name}.tmp", root / f".{name}.old"
    shutil.rmtree(tmp, ignore_errors=True)  # left by a write that was killed
    tmp.mkdir()
    save_model(task, str(tmp / MODEL))
    opt_tensors, opt_info = optimizer_state(optimizer)
    rng_tensors, rng_info = rng_state()
    save_file({**opt_tensors, **rng_tensors}, str(tmp / TENSORS))
    state = {
        "format": FORMAT,
        "progress": dataclasses.asdict(progress),
        "optimizer": opt_info,
        "scheduler": scheduler.state_dict(),
        "rng": rng_info,
        "fingerprint": fingerprint(task),
    }
    (tmp / STATE).write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
    for f in (MODEL, TENSORS, STATE):
        _fsync(tmp / f)
    if final.exists():  # the same position again (a run stopped right after resuming): swap, then drop
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync(root)  # the rename itself is durable
    shutil.rmtree(old, ignore_errors=True)
    for stale in complete(run_dir)[:-keep]:
        shutil.rmtree(stale)
        log.debug("removed old checkpoint %s", stale)
    return final


def complete(run_dir: Path) -> list[Path]:
    """The finished checkpoints of a run, oldest first (temporary folders of killed writes are ignored)."""
    root = Path(run_dir) / ROOT
    found = []
    for path in root.iterdir() if root.is_dir() else ():
        m = NAME.match(path.name)
        if m and (path / STATE).is_file():
            found.append(((int(m[1]), int(m[2])), path))
    return [p for _, p in sorted(found)]


def latest(run_dir: Path) -> Path | None:
    found = complete(run_dir)
    return found[-1] if found else None


def load(path: Path, task: torch.nn.Module, optimizer: torch.optim.Optimizer,
         scheduler: torch.optim.lr_scheduler.LRScheduler, device: torch.device) -> Progress:
    """Restore everything :func:`save` wrote (RNG states last); returns the position and bookkeeping."""
    path = Path(path)
    try:
        state = json.loads((path / STATE).read_text(encoding="utf-8"))
        tensors = load_file(str(path / TENSORS))
    except (OSError, ValueError, SafetensorError) as e:
        raise SnluError(f"{path}: unreadable checkpoint ({type(e).__name__}: {e})") from None
    if state.get("format") != FORMAT:
        raise SnluError(f"{path / STATE}: checkpoint format {state.get('format')!r}, this snlu reads {FORMAT}")
    if state["fingerprint"] != fingerprint(task):
        raise SnluError(f"{path}: the vocabulary or label set built from the training data differs from the "
                        f"checkpoint's (did the data files change since the run started?)")
    try:
        load_model(task, str(path / MODEL), strict=True, device=str(device))
        load_optimizer_state(optimizer, tensors, state["optimizer"])
    except (RuntimeError, ValueError, KeyError, SafetensorError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SnluError(f"{path}: checkpoint does not match the model: {first}") from None
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(tensors, state["rng"])
    return Progress(**state["progress"])
